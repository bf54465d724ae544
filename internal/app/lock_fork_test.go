package app

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestLockCloseWhileForked: Close releases the lock even while another
// copy of its descriptor is open, as one is in a child that another
// goroutine forked and that has not exec'd yet (the lock belongs to the
// open file, which that copy keeps alive). Here a dup stands in for the
// child's copy. Without the explicit unlock, TestNewUndoes failed now and
// then in CI: its Lock after New's undo found the directory "in use" by
// its own process.
func TestLockCloseWhileForked(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	l, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	child, err := syscall.Dup(int(l.f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(child)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Lock(dir)
	if err != nil {
		t.Fatalf("Lock after Close, the descriptor still open in a child: %v", err)
	}
	again.Close()
}
