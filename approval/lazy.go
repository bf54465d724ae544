package approval

import "bytes"

// Output reaches the emulator lazily: parsing it costs tens of
// microseconds per scrolled line, and a program's output (cat of a log)
// is only needed for the screen it leaves behind. Write keeps the output
// in pending; the emulator takes it when the screen is read (a key, Line).
// Past maxPending, the oldest part is folded: of it, only the sequences
// that set modes (DEC private modes: the alternate screen, bracketed
// paste, autowrap; and scroll regions) reach the emulator, and its text is
// dropped: it had scrolled off the screen by the time anyone reads it, as
// keepPending bytes of newer output follow.
const (
	maxPending  = 16 << 10
	keepPending = 8 << 10
)

// queue adds output to pending, folding its oldest part past maxPending.
// mu is held.
func (t *Tracker) queue(p []byte) {
	t.pending = append(t.pending, p...)
	if len(t.pending) <= maxPending {
		return
	}
	// Cut after a newline or before an escape, so that no sequence is
	// split between the part folded and the part kept.
	end := len(t.pending) - keepPending
	cut := bytes.LastIndexByte(t.pending[:end], '\n') + 1
	if e := bytes.LastIndexByte(t.pending[:end], 0x1b); e > cut || cut == 0 && e >= 0 {
		cut = e
	}
	if cut <= 0 {
		cut = end // no newline, no escape: plain text
	}
	t.fold(t.pending[:cut])
	t.pending = append(t.pending[:0], t.pending[cut:]...)
}

// fold gives the emulator the mode and scroll-region sequences of p.
func (t *Tracker) fold(p []byte) {
	for {
		i := bytes.Index(p, []byte("\x1b["))
		if i < 0 {
			return
		}
		p = p[i:]
		j := 2
		for j < len(p) && (p[j] >= '0' && p[j] <= '9' || p[j] == ';' || p[j] == '?') {
			j++
		}
		if j < len(p) && (p[j] == 'h' || p[j] == 'l') && len(p) > 2 && p[2] == '?' || j < len(p) && p[j] == 'r' {
			t.term.Write(p[:j+1])
		}
		p = p[min(j, len(p)):]
	}
}

// catchUp gives the emulator the pending output. mu is held.
func (t *Tracker) catchUp() {
	if len(t.pending) > 0 && !t.closed {
		t.term.Write(t.pending)
	}
	t.pending = t.pending[:0]
}
