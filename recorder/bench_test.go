package recorder

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkGrep measures search speed over a recording of realistic
// terminal output (log lines and tables with colour), in MB/s of file.
func BenchmarkGrep(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.cast")
	w, err := Create(path, Header{})
	if err != nil {
		b.Fatal(err)
	}
	var chunk bytes.Buffer
	for i := 0; chunk.Len() < 32<<10; i++ {
		fmt.Fprintf(&chunk, "2026-11-25T10:%02d:%02d.123Z \x1b[32mINFO\x1b[0m request id=%08x path=/api/v1/orders/%d status=200 bytes=%d\r\n", i%60, i%60, i*7919, i, i*13)
		fmt.Fprintf(&chunk, "| %6d | customer-%04d | %10.2f | shipped |\r\n", i, i%9999, float64(i)*1.5)
	}
	for written := 0; written < 64<<20; written += chunk.Len() {
		if err := w.Output(chunk.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
	w.Output([]byte("the needle we are looking for\r\n"))
	if _, _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(path)
	re := regexp.MustCompile(`needle we are`)
	b.SetBytes(st.Size())
	b.ResetTimer()
	for b.Loop() {
		f, _ := os.Open(path)
		r, err := NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		hits, err := Grep(r, re, 0)
		f.Close()
		if err != nil || len(hits) != 1 {
			b.Fatalf("hits %d err %v", len(hits), err)
		}
	}
}

// BenchmarkWriterOutput measures recording terminal output: escaping,
// hashing and writing, in MB/s of output, and in cpu-ns/B the process's
// CPU time per byte (both goroutines, and the kernel's work for the
// writes), which is what recording costs a busy bastion.
func BenchmarkWriterOutput(b *testing.B) {
	w, err := Create(filepath.Join(b.TempDir(), "out.cast"), Header{})
	if err != nil {
		b.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("2026-11-25T10:00:00Z INFO request path=/api/v1/orders status=200\r\n"), 500)[:32<<10]
	b.SetBytes(int64(len(chunk)))
	start := cpuTime()
	for b.Loop() {
		if err := w.Output(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if _, _, err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N*len(chunk)), "cpu-ns/B")
}

// BenchmarkAppendJSONString is the escaping alone, on terminal text with a
// line break every 40 bytes.
func BenchmarkAppendJSONString(b *testing.B) {
	chunk := bytes.Repeat([]byte("terminal output, 0123456789 abcdefghij\n"), 1000)[:32<<10]
	out := make([]byte, 0, 2*len(chunk))
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		out = appendJSONString(out[:0], chunk)
	}
}

// BenchmarkSessionIndex is what the index costs a session: Begin, then
// Finish with its audit chain entry, each a commit to the database the
// store keeps open. Parallel, as sessions come and go on a busy bastion;
// cpu-ns/op is the process's CPU time per session.
func BenchmarkSessionIndex(b *testing.B) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	s, err := OpenStore(b.TempDir(), Options{Key: key})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var n atomic.Int64
	b.ReportAllocs()
	start := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("%08d-1", n.Add(1))
			rec := Session{ID: id, Identity: "alice", Target: "db01", Login: "root", Kind: "exec", Start: time.Now(), Path: "recordings/" + id + ".cast"}
			if err := s.Begin(b.Context(), rec); err != nil {
				b.Fatal(err)
			}
			end := time.Now()
			rec.End = &end
			if _, err := s.Finish(b.Context(), rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkAppendJSONStringUTF8 is the escaping of output with UTF-8 in
// every line: box drawing, accents and CJK, as psql or ls print them.
func BenchmarkAppendJSONStringUTF8(b *testing.B) {
	chunk := bytes.Repeat([]byte("│ 42 │ café crème │ 東京都 │ ok \x1b[0m\r\n"), 1000)[:32<<10]
	out := make([]byte, 0, 2*len(chunk))
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		out = appendJSONString(out[:0], chunk)
	}
}
