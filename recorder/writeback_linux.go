package recorder

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// writebackWindow is how often a recording's pacer acts: every window of
// new bytes starts being written out, and what it started the time before
// is waited for and dropped from the page cache. So at most about two
// windows of a recording are in the cache.
const writebackWindow = 4 << 20

// pacer pushes a recording to disk as it grows and then drops it from the
// page cache. Recordings are written once and read rarely, so without it a
// busy bastion fills memory with dirty pages of typescripts, evicting
// everything else, and leaves up to vm.dirty_expire_centisecs (30 s by
// default) of evidence only in RAM. Pacing also keeps the pages a recording
// uses few and reused, where fresh page cache costs the data path more CPU
// than SHA-256 does (first-touch faults on VMs, reclaim on full hosts).
type pacer struct {
	fd      int
	started int64 // bytes [0, started) have had writeback started
	dropped int64 // bytes [0, dropped) are on disk and were dropped from the cache
	off     bool  // the file system does not support it

	syncRange func(fd int, off, n int64, flags int) error  // unix.SyncFileRange
	advise    func(fd int, off, n int64, advice int) error // unix.Fadvise
}

func newPacer(f *os.File) pacer {
	return pacer{fd: int(f.Fd()), syncRange: unix.SyncFileRange, advise: unix.Fadvise}
}

// wrote tells the pacer the file is now size bytes long. It returns a
// write-back error: one reported here is not reported again by fsync, so
// the caller must treat it as a failed write.
func (p *pacer) wrote(size int64) error {
	if p.off || size-p.started < writebackWindow {
		return nil
	}
	// Start writing out what is new, then wait for what was started a
	// window ago (done by now unless the disk is slower than the
	// session) and drop it. Whole pages only: the last one is still
	// being filled.
	if err := p.syncRange(p.fd, p.started, size-p.started, unix.SYNC_FILE_RANGE_WRITE); err != nil {
		return p.fail(err)
	}
	// Wait only for what the previous call started, at least a window
	// ago, never for what was just submitted.
	end := p.started &^ int64(unix.Getpagesize()-1)
	p.started = size
	if end <= p.dropped {
		return nil
	}
	flags := unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	if err := p.syncRange(p.fd, p.dropped, end-p.dropped, flags); err != nil {
		return p.fail(err)
	}
	// Advice only: an error changes nothing about the data.
	_ = p.advise(p.fd, p.dropped, end-p.dropped, unix.FADV_DONTNEED)
	p.dropped = end
	return nil
}

// fail switches pacing off where the file system does not support it and
// passes any other error on.
func (p *pacer) fail(err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ESPIPE) || errors.Is(err, unix.EOPNOTSUPP) {
		p.off = true
		return nil
	}
	return err
}
