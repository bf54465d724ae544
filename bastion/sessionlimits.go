package bastion

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/recorder"
)

// SessionLimits bound what one session may take of the bastion. The zero
// value sets no limit; the config package supplies the defaults serve
// runs with.
type SessionLimits struct {
	// MaxDuration ends a proxied connection this long after it was
	// authenticated; its users are warned before (durationWarning).
	// Zero: no limit.
	MaxDuration time.Duration
	// RecordingMaxSize caps each recording (one per session channel or
	// forwarded connection), in bytes. Zero: no cap.
	RecordingMaxSize int64
	// StopRecordingAtLimit keeps a session going, unrecorded, when its
	// recording reaches RecordingMaxSize or the disk its floor. False
	// (the default, fail closed): the session ends.
	StopRecordingAtLimit bool
	// MinFreeDisk is the free space, in bytes, below which new recorded
	// sessions are refused and running ones end (or stop recording, with
	// StopRecordingAtLimit). It needs a Recording.Store that is a
	// recorder.SpaceReporter. Zero: no floor.
	MinFreeDisk uint64
}

// Names of the limits, in audit records and recordings' index entries.
const (
	limitDuration  = "max_session_duration"
	limitRecording = "recording_max_size"
	limitDisk      = "min_free_disk"
)

// limitReached is where every session limit refuses or ends something:
// it writes the audit record (event session_limit) naming the limit, what
// was done (refused, ended, recording_stopped, warned) and what the user
// was told. It is the one place to count limits reached.
func (c *conn) limitReached(limit, action, notice string, attrs ...any) {
	c.s.metrics.LimitReached(limit, action)
	audit.Record(c.log, audit.SessionLimit, append([]any{"limit", limit, "action", action, "notice", notice}, attrs...)...)
}

// diskCheckEvery is how much the recordings grow, all together, between
// two checks of the free-disk floor: the running sessions write about
// this much past it, plus what their writers buffer (up to a chunk each).
// Counting each recording's growth alone would let many sessions, each
// writing a little less, go far past the floor unseen.
const diskCheckEvery = 1 << 20

// diskWatch decides when the free-disk floor is checked: each time the
// recordings have grown by diskCheckEvery in all, and at every write
// while the disk is below it. The zero value is ready; it is safe for
// concurrent use.
type diskWatch struct {
	grown atomic.Int64 // bytes recorded since the last check
	low   atomic.Bool  // the last check found the disk below the floor
}

// due counts n more bytes recorded and reports whether the floor is to be
// checked now.
func (d *diskWatch) due(n int64) bool {
	if d.grown.Add(n) < diskCheckEvery && !d.low.Load() {
		return false
	}
	d.grown.Store(0)
	return true
}

// belowDiskFloor reports whether the recordings' file system has less
// free space than the floor, and how much it has. A store that cannot
// say has no floor.
func (s *Server) belowDiskFloor() (free uint64, below bool) {
	lim := s.cfg.SessionLimits.MinFreeDisk
	if lim == 0 || s.cfg.Recording == nil {
		return 0, false
	}
	sr, ok := s.cfg.Recording.Store.(recorder.SpaceReporter)
	if !ok {
		return 0, false
	}
	free, err := sr.FreeSpace(context.Background())
	if err != nil {
		s.log.Warn("free disk space unknown", "err", err.Error())
		return 0, false
	}
	s.disk.low.Store(free < lim)
	return free, free < lim
}

// refuseBelowDiskFloor is the cause that refuses a new recorded session
// while the disk is below its floor, or nil.
func (c *conn) refuseBelowDiskFloor(n uint32) error {
	free, below := c.s.belowDiskFloor()
	if !below {
		return nil
	}
	notice := "postern: the bastion's disk is nearly full (" + formatSize(int64(free)) + " free, the floor is " +
		formatSize(int64(c.s.cfg.SessionLimits.MinFreeDisk)) + "), so new sessions are refused; ask an operator to free space"
	c.limitReached(limitDisk, "refused", notice, "channel", n, "free_bytes", free, "min_free_disk", c.s.cfg.SessionLimits.MinFreeDisk)
	return endCause(notice)
}

// formatSize writes n bytes the way the config takes sizes: 1GiB, 512MiB,
// 1000B.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			if n%u.size == 0 {
				return strconv.FormatInt(n/u.size, 10) + u.name
			}
			return strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// durationWarning is how long before MaxDuration the users are warned: five
// minutes, or a quarter of a shorter limit.
func durationWarning(d time.Duration) time.Duration { return min(5*time.Minute, d/4) }

// watchDuration ends the connection MaxDuration after start, warning every
// open session channel durationWarning before, and returns when ctx ends
// and every warning it wrote has returned (a write to a client that does
// not read returns when its channel closes, which the end of ctx brings).
func (c *conn) watchDuration(ctx context.Context, start time.Time) {
	d := c.s.cfg.SessionLimits.MaxDuration
	if d <= 0 {
		return
	}
	end := start.Add(d)
	lead := durationWarning(d)
	var tells sync.WaitGroup
	defer tells.Wait()
	warn := time.NewTimer(time.Until(end.Add(-lead)))
	defer warn.Stop()
	select {
	case <-ctx.Done():
		return
	case <-warn.C:
	}
	notice := durationNotice(d, lead.Round(time.Millisecond), end)
	c.limitReached(limitDuration, "warned", notice, "max_duration", d.String())
	// Stored first: a channel that can take notices only after the list
	// is read is warned by openNotices (notices.go).
	c.durationEnd.Store(&end)
	// As a drain's notice (Announce): on stderr and as a marker in the
	// recording; one the recording cannot take (its cap) ends the channel.
	for _, st := range c.live.all() {
		if st.ctx.Err() == nil && st.canNotice() && st.notes.warned.CompareAndSwap(false, true) {
			tells.Go(func() { st.announce(notice) })
		}
	}
	stop := time.NewTimer(time.Until(end))
	defer stop.Stop()
	select {
	case <-ctx.Done():
		return
	case <-stop.C:
	}
	ended := fmt.Sprintf("postern: this connection reached the bastion's maximum session duration (%s) and was ended", d)
	c.limitReached(limitDuration, "ended", ended, "max_duration", d.String())
	c.terminate(endCauseErr(ended, errors.New(limitDuration)))
}

// checkDiskLocked counts the recording's growth towards the next check
// of the free-disk floor (diskWatch), checks it when due, and reaches the
// limit below it. r.mu is held and r.w is not nil.
func (r *recording) checkDiskLocked() error {
	if r.c.s.cfg.SessionLimits.MinFreeDisk == 0 {
		return nil
	}
	size := r.w.Size()
	grown := size - r.counted
	r.counted = size
	if !r.c.s.disk.due(grown) {
		return nil
	}
	free, below := r.c.s.belowDiskFloor()
	if !below {
		return nil
	}
	what := "the bastion's free disk space (" + formatSize(int64(free)) + ") is below its floor (" + formatSize(int64(r.c.s.cfg.SessionLimits.MinFreeDisk)) + ")"
	return r.limitLocked(limitDisk, what, "free_bytes", free, "min_free_disk", r.c.s.cfg.SessionLimits.MinFreeDisk)
}

// limitLocked handles a session limit its recording reached: a marker
// saying so ends the recording; then either the recording stops and the
// session goes on unrecorded (StopRecordingAtLimit, sealed as
// interrupted), or the session ends with the returned cause (sealed as
// closed: the recording holds all the user saw). r.mu is held.
func (r *recording) limitLocked(limit, what string, attrs ...any) error {
	r.meta.Limit = limit
	attrs = append(attrs, "channel", r.n, "recording", r.meta.ID)
	if r.c.s.cfg.SessionLimits.StopRecordingAtLimit {
		r.w.FinalMarker("postern: " + what + "; recording stopped, the session continues unrecorded")
		r.w.Close()
		r.w = nil
		r.stopped = true
		r.c.limitReached(limit, "recording_stopped", "", attrs...)
		return nil
	}
	notice := "postern: " + what + "; the session was ended"
	r.w.FinalMarker(notice)
	r.limited = true
	r.err = endCauseErr(notice, errors.New(limit))
	r.c.limitReached(limit, "ended", notice, attrs...)
	return r.err
}
