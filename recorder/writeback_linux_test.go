package recorder

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/postern/postern/internal/testenv"
)

// TestWriterKeepsRecordingOutOfPageCache checks that a long recording is
// pushed to disk and dropped from the page cache as it grows, not left
// resident and dirty until Close.
func TestWriterKeepsRecordingOutOfPageCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		if testenv.InCI() {
			t.Fatalf("%s is in memory, so the pacer cannot be tested: point TMPDIR at a disk", dir)
		}
		t.Skipf("%s is in memory: its pages cannot leave the page cache", dir)
	}
	path := filepath.Join(dir, "big.cast")
	w, err := Create(path, Header{})
	if err != nil {
		t.Fatal(err)
	}
	line := bytes.Repeat([]byte("some terminal text 0123456789 abcdef\r\n"), 1000)
	const total = 8 * writebackWindow
	for n := 0; n < total; n += len(line) {
		if err := w.Output(line); err != nil {
			t.Fatal(err)
		}
	}
	// Still open: Close's fsync must not be what gets the bytes out.
	w.mu.Lock()
	w.handOff()
	w.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deadline := time.Now().Add(10 * time.Second)
	fi, err := f.Stat()
	for err == nil && fi.Size() < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		fi, err = f.Stat()
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < total {
		t.Fatalf("the recording reached only %d of %d bytes in 10 s", fi.Size(), total)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	pages := (len(m) + os.Getpagesize() - 1) / os.Getpagesize()
	vec := make([]byte, pages)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	if _, _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.sink.(*fileSink).pace.off { // read after Close: run has returned
		if testenv.InCI() {
			t.Fatalf("the file system under %s does not support sync_file_range, so the pacer cannot be tested: point TMPDIR at another", dir)
		}
		t.Skipf("the file system under %s does not support sync_file_range", dir)
	}
	// The last two windows may still be in flight; everything before
	// them was written out and dropped.
	limit := 3 * writebackWindow / os.Getpagesize()
	if resident > limit {
		t.Errorf("%d of %d pages of a %d-byte recording are in the page cache, want at most %d", resident, pages, fi.Size(), limit)
	}
}

// TestPacerRanges: each call starts write-back of what is new, and waits
// for and drops only what the call before started, whole pages, never the
// bytes it has just submitted.
func TestPacerRanges(t *testing.T) {
	t.Parallel()
	type call struct {
		what     string
		off, end int64
	}
	var calls []call
	p := pacer{
		syncRange: func(_ int, off, n int64, flags int) error {
			what := "start"
			if flags&unix.SYNC_FILE_RANGE_WAIT_AFTER != 0 {
				what = "wait"
			}
			calls = append(calls, call{what, off, off + n})
			return nil
		},
		advise: func(_ int, off, n int64, advice int) error {
			if advice == unix.FADV_DONTNEED {
				calls = append(calls, call{"drop", off, off + n})
			}
			return nil
		},
	}
	page := int64(os.Getpagesize())
	// Each call comes some pages after a full window, as chunks do.
	s1 := int64(writebackWindow + 100)
	s2 := s1 + writebackWindow + 3*page + 7
	s3 := s2 + writebackWindow/2 // less than a window: nothing to do
	s4 := s2 + writebackWindow + 5*page + 3
	for _, size := range []int64{writebackWindow - 1, s1, s2, s3, s4} {
		if err := p.wrote(size); err != nil {
			t.Fatal(err)
		}
	}
	end1, end2 := s1&^(page-1), s2&^(page-1)
	want := []call{
		{"start", 0, s1},
		{"start", s1, s2}, {"wait", 0, end1}, {"drop", 0, end1},
		{"start", s2, s4}, {"wait", end1, end2}, {"drop", end1, end2},
	}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls\n%v\nwant\n%v", calls, want)
	}
	// A write-back error is a write error; EINVAL means unsupported.
	p.syncRange = func(int, int64, int64, int) error { return unix.EIO }
	if err := p.wrote(s4 + writebackWindow); !errors.Is(err, unix.EIO) {
		t.Fatalf("EIO from sync_file_range: %v", err)
	}
	p.syncRange = func(int, int64, int64, int) error { return unix.EINVAL }
	if err := p.wrote(s4 + 2*writebackWindow); err != nil || !p.off {
		t.Fatalf("EINVAL: %v, off %v", err, p.off)
	}
}
