package recorder

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestLockSharedUnlockBeforeClose: a process forked while the scan holds
// its shared lock (here a child given the open file, as a fork does until
// exec) must not keep the lock once the scan is done, or the writer's
// exclusive lock right after it (OpenStore) waits for that child. Closing
// the file alone leaves the lock with the child; lockShared's unlock does
// not.
func TestLockSharedUnlockBeforeClose(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), IndexFile)
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	exclusive := func() error {
		g, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		return syscall.Flock(int(g.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	for _, unlockFirst := range []bool{false, true} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		unlock, err := lockShared(f, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		child := exec.Command("sleep", "60")
		child.ExtraFiles = []*os.File{f}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		if unlockFirst {
			unlock()
		}
		f.Close()
		err = exclusive()
		child.Process.Kill()
		child.Wait()
		switch {
		case !unlockFirst && err == nil:
			t.Fatal("closing alone released the lock a child holds: the test does not reproduce the cause")
		case unlockFirst && err != nil:
			t.Fatalf("after unlock and close, a writer cannot lock the file while the child lives: %v", err)
		}
	}
}
