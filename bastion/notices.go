package bastion

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Notices the bastion gives a session channel's user of its own accord (a
// drain's, the maximum duration's warning) go on the channel's stderr and
// into its recording (announce). A channel can take them once its program
// runs, or is held for approval and its user was told so: before, it has
// no recording to hold them, and nothing may reach the client before the
// reply to the request that starts its program. A notice that comes
// earlier is kept and given then (openNotices), as are a drain's and the
// duration warning that came before the channel opened: a user who waits
// on an approver learns as others do that the session is about to end.

// maxKeptNotices bounds the notices a channel keeps until it can take
// them: the bastion's own, never more than a few.
const maxKeptNotices = 4

// notices is a channel's state for notices. The zero value is closed (the
// channel cannot take notices yet) and empty; it is safe for concurrent
// use.
type notices struct {
	mu     sync.Mutex  // guards open and kept
	open   bool        // the channel can take notices
	kept   []string    // notices that came before, in order
	warned atomic.Bool // the duration warning was given, or is being: once
}

// noticeNow reports whether the channel can take msg now (announce); if
// not, msg is kept and given once it can.
func (st *channel) noticeNow(msg string) bool {
	n := &st.notes
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.open && len(n.kept) < maxKeptNotices && !slices.Contains(n.kept, msg) {
		n.kept = append(n.kept, msg)
	}
	return n.open
}

// canNotice reports whether the channel can take notices.
func (st *channel) canNotice() bool {
	st.notes.mu.Lock()
	defer st.notes.mu.Unlock()
	return st.notes.open
}

// openNotices lets the channel take notices from now on and gives it, on
// a goroutine of the connection's, those that came before: kept ones, a
// running drain's, and the duration warning if it was given. It is called
// on the channel's own goroutines: once its program's start was answered
// (setReady), or once its user was told that its command is held (hold).
func (st *channel) openNotices() {
	n := &st.notes
	n.mu.Lock()
	if n.open {
		n.mu.Unlock()
		return
	}
	n.open = true
	msgs := n.kept
	n.kept = nil
	n.mu.Unlock()
	if d := st.c.s.drain.Load(); d != nil && !slices.Contains(msgs, *d) {
		msgs = append(msgs, *d)
	}
	// The deadline is stored before the open channels are listed
	// (watchDuration), and open is set before it is read here: one of
	// the two gives the warning, warned makes it once.
	if end := st.c.durationEnd.Load(); end != nil && time.Now().Before(*end) && n.warned.CompareAndSwap(false, true) {
		msgs = append(msgs, durationNotice(st.c.s.cfg.SessionLimits.MaxDuration, time.Until(*end).Round(time.Second), *end))
	}
	if len(msgs) == 0 {
		return
	}
	st.c.goSafe(func() {
		for _, msg := range msgs {
			st.announce(msg)
		}
	})
}

// durationNotice warns that the connection reaches its maximum duration d
// in left, at end.
func durationNotice(d, left time.Duration, end time.Time) string {
	return fmt.Sprintf("postern: this connection reaches the bastion's maximum session duration (%s) in %s, at %s; it will then be ended",
		d, left, end.UTC().Format(time.RFC3339))
}
