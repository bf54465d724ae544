package recorder

import (
	"crypto/ed25519"
	"crypto/rand"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkBeginFinish is one session's index work, Begin then Finish with
// its chain entry, one after another. Besides time it reports the CPU time
// the process spent per session (cpu-ns/op, user and system): commits wait
// for fsync, so wall time mostly measures the disk, CPU time what the
// index costs the bastion.
func BenchmarkBeginFinish(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := OpenStore(b.TempDir(), Options{Key: key})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	start := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := Session{ID: "bench-" + strconv.Itoa(i), Start: time.Now(), Path: "recordings/x/" + strconv.Itoa(i) + ".cast"}
		if err := s.Begin(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Finish(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time this process has used, user and system, in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
