package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the data directory's lock file. Whoever holds an
// exclusive flock on it owns the directory; the kernel releases it when the
// process ends, however it ends.
const LockFile = "lock"

// InUseError is returned by Lock when another process holds the data
// directory.
type InUseError struct {
	Dir string
	PID int // the holder, as it wrote itself into the lock file; 0 if unknown
}

func (e *InUseError) Error() string {
	who := "another postern"
	if e.PID > 0 {
		who += " (pid " + strconv.Itoa(e.PID) + ")"
	}
	return fmt.Sprintf("data directory %s is in use by %s: stop that one first, or give this one another data directory; nothing was changed", e.Dir, who)
}

// DirLock is a held data directory lock. Close releases it.
type DirLock struct {
	f *os.File
}

// Lock takes the exclusive lock of data directory dir, creating dir (0700)
// and its lock file if missing, and writes this process's ID into the
// file. If another process holds it, Lock returns an *InUseError at once
// and changes nothing. The lock belongs to the open file, not the process:
// a second Lock in the same process fails too.
func Lock(dir string) (*DirLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &InUseError{Dir: dir, PID: holder(path)}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := writePID(f); err != nil {
		(&DirLock{f: f}).Close()
		return nil, fmt.Errorf("write lock file %s: %w", path, err)
	}
	return &DirLock{f: f}, nil
}

// writePID replaces f's content with this process's ID.
func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// holder reads the process ID the lock's holder wrote (0 if unreadable).
func holder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Close releases the lock. The file stays: removing it would let a third
// process lock a new file while a second still waits on the old one.
//
// It unlocks before it closes: a child forked at that moment by another
// goroutine holds a copy of the descriptor until it execs, and the lock,
// which belongs to the open file, would outlive the close until then.
func (l *DirLock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	unlock := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := errors.Join(unlock, l.f.Close())
	l.f = nil
	return err
}
