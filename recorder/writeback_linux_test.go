package recorder

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/postern/postern/internal/testenv"
	"golang.org/x/sys/unix"
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
	if w.pace.off { // read after Close: run has returned
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
