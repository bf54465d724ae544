package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// CheckDir refuses a data directory that others could change: one
// writable by group or others, or owned by another user than the one
// postern runs as. Whoever can write the directory can replace the
// recordings, the index or the admin socket, so the evidence would prove
// nothing. The same holds for the directories the evidence lives in,
// which a restore or a mount can leave loose under a sound data
// directory: recordings and the directories of its layout (YEAR/MONTH/DAY;
// the recordings in them are not read), and ca and its files (that its
// private keys are 0600 is certs' to check, as it reads them). A
// directory that does not exist yet is fine: Lock creates the data
// directory 0700, the recorder and certs create theirs 0700.
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
	if err := checkOwned("data directory", dir, fi, "chmod 700"); err != nil {
		return err
	}
	if err := checkRecordings(filepath.Join(dir, "recordings")); err != nil {
		return err
	}
	return checkCA(filepath.Join(dir, "ca"))
}

// recordingsDepth is how deep the recordings layout goes below
// DATA_DIR/recordings (YEAR/MONTH/DAY): CheckDir checks the directories
// down to it and does not read the days' directories, which hold only
// recordings.
const recordingsDepth = 3

// checkRecordings checks DATA_DIR/recordings and the directories of its
// layout. A symbolic link there is refused, as RecordingFile refuses every
// recording reached through one; links further down are not followed
// (RecordingFile judges each path that uses one).
func checkRecordings(rdir string) error {
	fi, err := os.Lstat(rdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recordings directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("recordings directory %s is a symbolic link or not a directory: make it a directory (mount the storage there instead of linking it)", rdir)
	}
	return filepath.WalkDir(rdir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("recordings directory: %w", err)
		}
		if !d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("recordings directory: %w", err)
		}
		if err := checkOwned("recordings directory", p, fi, "chmod 700"); err != nil {
			return err
		}
		if rel, _ := filepath.Rel(rdir, p); rel != "." && strings.Count(rel, string(filepath.Separator)) >= recordingsDepth-1 {
			return filepath.SkipDir
		}
		return nil
	})
}

// checkCA checks DATA_DIR/ca and every file in it (keys, public keys),
// following symbolic links as certs does when it reads them.
func checkCA(cdir string) error {
	fi, err := os.Stat(cdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("CA directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("CA directory %s is not a directory", cdir)
	}
	if err := checkOwned("CA directory", cdir, fi, "chmod 700"); err != nil {
		return err
	}
	entries, err := os.ReadDir(cdir)
	if err != nil {
		return fmt.Errorf("CA directory: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(cdir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("CA directory: %w", err)
		}
		if err := checkOwned("CA file", p, fi, "chmod go-w"); err != nil {
			return err
		}
	}
	return nil
}

// checkOwned refuses path, which fi describes (what names it), if group or
// others may write it or another user than postern's owns it; fix is the
// command that corrects the mode.
func checkOwned(what, path string, fi fs.FileInfo, fix string) error {
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s %s is writable by group or others (mode %04o): whoever can write it can replace recordings, the index, the CA keys or the admin socket; run '%s %s'", what, path, perm, fix, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s %s is owned by uid %d, not by the user postern runs as (uid %d): run postern as its owner, or 'chown' it to this user", what, path, st.Uid, os.Geteuid())
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
