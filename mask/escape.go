package mask

// The scanner's escape-sequence states: a terminal shows nothing for an
// escape sequence, so one between digit groups does not end a candidate,
// and the text payload of a string escape is judged on its own. A sequence
// is held whole while it is at most maxEscape bytes long, so that one that
// turns out broken can be read as text; past that it is committed: it is
// a sequence to its end, whatever comes, and a string's payload is judged
// as it passes.

// Escape sequence parser states.
const (
	escNone   uint8 = iota
	escStart        // after ESC
	escCSI          // ESC [ parameters and intermediates
	escNF           // ESC and intermediates (0x20-0x2F)
	escStr          // OSC, DCS, SOS, PM or APC payload, held
	escStrEsc       // ESC inside a held string: only ST (ESC \) may follow
	escPay          // the payload of a committed string, judged as it passes
	escPayEsc       // ESC inside a committed string
)

// startEscape begins an escape sequence at b[i] (ESC).
func (s *scanner) startEscape(b []byte, i int) int {
	s.esc, s.escAt, s.escLen, s.escLong = escStart, i, 1, false
	return i + 1
}

// inSeq reports whether the control c, inside an escape sequence, is
// executed and leaves the sequence going on, as in the DEC parser of
// xterm, VTE and tmux: an ignored control (in typed input, not DEL, ^C or
// ^U).
func (s *scanner) inSeq(c byte) bool {
	return class[c]&cIgn != 0 && (c != delByte || !s.input) && !kills(c, s.input)
}

// escape consumes bytes of the escape sequence in progress.
func (s *scanner) escape(b []byte, i int) int {
	for ; i < len(b); i++ {
		c := b[i]
		s.escLen++
		term := 0 // length of a string terminator
		switch s.esc {
		case escStart, escCSI, escNF:
			switch {
			case c == 0x18 || c == 0x1a: // CAN, SUB: aborted, shows nothing
				s.esc = escNone
			case c == escByte: // aborted; this ESC starts the next
				s.restart(i)
				continue
			case s.inSeq(c): // executed; the sequence goes on
			case !s.seqByte(c, i):
				return s.disallowed(b, i)
			}
		case escStr:
			switch c {
			case 0x07, 0x18, 0x1a: // BEL ends it; CAN and SUB abort it
				s.esc, term = escNone, 1
			case escByte:
				s.esc = escStrEsc
			}
		case escStrEsc:
			if c != '\\' {
				// The string ended before the ESC, which starts the
				// next sequence; c is read again in it.
				s.hold(i - 2)
				s.payload(b, s.escFrom, i-1)
				s.esc, s.escAt, s.escLen = escStart, i-1, 1
				i--
				continue
			}
			s.esc, term = escNone, 2
		}
		if s.esc == escNone {
			s.hold(i)
			s.escLong = false
			if term > 0 {
				s.payload(b, s.escFrom, i+1-term)
			}
			return i + 1
		}
		if !s.escLong && s.escLen >= maxEscape {
			if s.esc == escStr || s.esc == escStrEsc {
				// Judge the payload as it passes, from its start.
				s.esc, s.escLong = escPay, true
				s.saved, s.cand = s.cand, cand{}
				return s.escFrom
			}
			s.escLong = true
		}
		if s.escLong {
			s.hold(i)
		}
	}
	return i
}

// seqByte moves an ESC, CSI or nF sequence on by its byte c at i, and
// reports whether its grammar allows c there.
func (s *scanner) seqByte(c byte, i int) bool {
	switch s.esc {
	case escStart:
		switch {
		case c == '[':
			s.esc = escCSI
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
			s.esc, s.escFrom = escStr, i+1
		case c >= 0x20 && c <= 0x2f:
			s.esc = escNF
		case c >= 0x30 && c <= 0x7e:
			s.esc = escNone
		default:
			return false
		}
	case escCSI:
		switch {
		case c >= 0x20 && c <= 0x3f:
		case c >= 0x40 && c <= 0x7e:
			s.esc = escNone
		default:
			return false
		}
	default: // escNF
		switch {
		case c >= 0x20 && c <= 0x2f:
		case c >= 0x30 && c <= 0x7e:
			s.esc = escNone
		default:
			return false
		}
	}
	return true
}

// restart ends the sequence in progress before the ESC at b[i], which
// aborts it and starts the next.
func (s *scanner) restart(i int) {
	s.hold(i - 1)
	s.esc, s.escAt, s.escLen, s.escLong = escStart, i, 1, false
}

// disallowed handles b[i], a byte the grammar of the sequence in progress
// does not allow: a held sequence is broken; a committed one ends before
// it, and b[i] is read as if no sequence had been.
func (s *scanner) disallowed(b []byte, i int) int {
	if !s.escLong {
		return s.broken(b)
	}
	s.esc, s.escLong = escNone, false
	return i
}

// broken handles an escape sequence that is malformed, too long or
// unterminated: its ESC is a break and the bytes after it are text.
func (s *scanner) broken(b []byte) int {
	s.esc, s.escLong = escNone, false
	s.brk(b)
	return s.escAt + 1
}

// unterminated ends the escape sequence in progress at the end of the
// stream, and returns where reading goes on.
func (s *scanner) unterminated(b []byte) int {
	switch {
	case s.esc == escPay:
		s.endPay(b)
		return len(b)
	case s.esc == escPayEsc:
		// The string ended before its last byte, a lone ESC.
		s.endPay(b)
		return s.broken(b)
	case s.escLong:
		s.esc, s.escLong = escNone, false
		return len(b)
	}
	return s.broken(b)
}

// payload masks PANs in the text b[from:to] of a held string escape (an
// OSC window title, say), judged on its own.
func (s *scanner) payload(b []byte, from, to int) {
	if to-from < minDigits {
		return
	}
	// exact: the skim is not for a string's text, which is judged as
	// a stream of its own (and is shorter than the skim's minimum anyway).
	sub := scanner{mode: s.mode, detect: s.detect, input: s.input, exact: true}
	if s.out == nil { // read-only and nothing masked yet: look first
		sub.ro = true // and no src: hide only records that it was called
		sub.scan(b[from:to], 0, true)
		if sub.count == 0 {
			return
		}
		s.out = append(s.spare, s.src...)
		sub = scanner{mode: s.mode, detect: s.detect, input: s.input, exact: true}
	}
	sub.scan(s.out[from:to], 0, true)
	s.count += sub.count
}

// pay consumes bytes of a committed string: its payload is judged as a
// stream of its own (the outer stream's state waits in saved) up to the
// terminator.
func (s *scanner) pay(b []byte, i int) int {
	if s.esc == escPayEsc {
		if b[i] == '\\' { // ST
			s.holdSaved(i)
			s.endPay(b)
			return i + 1
		}
		// The string ended before the ESC, which starts a sequence.
		s.endPay(b)
		s.esc, s.escLen = escStart, 1
		return i
	}
	t := i
	for t < len(b) && b[t] != 0x07 && b[t] != escByte && b[t] != 0x18 && b[t] != 0x1a {
		t++
	}
	if t > i {
		s.holdSaved(t - 1)
		for p := b[:t]; i < t; {
			i = s.step(p, i)
		}
	}
	if t == len(b) {
		return t
	}
	switch b[t] {
	case 0x07:
		s.holdSaved(t)
		s.endPay(b)
		return t + 1
	case escByte:
		s.esc, s.escAt = escPayEsc, t
		return t + 1
	}
	s.holdSaved(t) // CAN or SUB aborts the string and is part of it
	s.endPay(b)
	return t + 1
}

// holdSaved applies the hold bound to the outer stream's candidate while
// a committed string passes: i is a byte of the string.
func (s *scanner) holdSaved(i int) {
	if sv := &s.saved; sv.nd > sv.nf && i-sv.dp[sv.nf] >= holdLimit {
		s.force(sv)
	}
}

// endPay ends a committed string: its payload ends as a stream does, and
// the outer stream's state returns.
func (s *scanner) endPay(b []byte) {
	s.brk(b)
	s.cand = s.saved
	s.esc, s.escLong = escNone, false
}

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)
