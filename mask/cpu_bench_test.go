//go:build linux

package mask

import (
	"io"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// BenchmarkMaskCPU is BenchmarkMask's writer on the terminal text and the
// dense CSV, reporting MB/s of its thread's CPU time (cpu-MB/s), which
// other load on a shared machine disturbs far less than the wall clock.
// Both are 64 MiB, read from memory, not cache: text-256k is the text's
// first 256 KiB written again and again, which stays in cache, as a
// session's writes do, so that it shows the masker's own cost.
func BenchmarkMaskCPU(b *testing.B) {
	text256k := func() []byte { return benchText()[:256<<10] }
	for _, ds := range []struct {
		name string
		data func() []byte
	}{{"text", benchText}, {"dense", benchDense}, {"text-256k", text256k}} {
		b.Run(ds.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			data := ds.data()
			w := NewWriter(io.Discard, Config{Deadline: -1})
			defer w.Close()
			w.Write(data[:32<<10])
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			t0 := threadCPU(b)
			for b.Loop() {
				for i := 0; i < len(data); i += 32 << 10 {
					w.Write(data[i:min(i+32<<10, len(data))])
				}
			}
			d := threadCPU(b) - t0
			b.ReportMetric(float64(b.N)*float64(len(data))/d.Seconds()/1e6, "cpu-MB/s")
		})
	}
}

// threadCPU is the calling OS thread's CPU time.
func threadCPU(b *testing.B) time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
