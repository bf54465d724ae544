package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// CheckDir refuses a data directory that others could change: one
// writable by group or others, or owned by another user than the one
// postern runs as. Whoever can write the directory can replace the
// recordings, the index or the admin socket, so the evidence would prove
// nothing. A directory that does not exist yet is fine: Lock creates it
// 0700.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("data directory %s is writable by group or others (mode %04o): whoever can write it can replace recordings, the index or the admin socket; run 'chmod 700 %s'", dir, perm, dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("data directory %s is owned by uid %d, not by the user postern runs as (uid %d): run postern as its owner, or 'chown' it to this user", dir, st.Uid, os.Geteuid())
	}
	return nil
}

// LockHolder returns the process that holds data directory dir's lock,
// and whether one does: the process whose ID the lock file holds, if it
// still has that file open (an App keeps it open exactly as long as it
// holds the lock; if its open files cannot be read, the lock file's word
// is taken). It reads /proc: elsewhere it reports no holder.
func LockHolder(dir string) (pid int, ok bool) {
	path := filepath.Join(dir, LockFile)
	pid = holder(path)
	if pid <= 0 {
		return 0, false
	}
	lock, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	fds := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(fds)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false // no such process: a stale lock file
	}
	if err != nil {
		// A live process whose files cannot be checked: take the lock
		// file's word, so that only that process is trusted.
		return pid, true
	}
	for _, e := range entries {
		if fi, err := os.Stat(filepath.Join(fds, e.Name())); err == nil && os.SameFile(fi, lock) {
			return pid, true
		}
	}
	return 0, false
}
