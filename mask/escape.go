package mask

// The scanner's escape-sequence states: a terminal shows nothing for an
// escape sequence, so one between digit groups does not end a candidate
// (up to maxGap bytes of them), and the text payload of a string escape
// is judged on its own.

// startEscape begins an escape sequence at b[i] (ESC).
func (s *scanner) startEscape(b []byte, i int) int {
	s.esc, s.escAt, s.escLen = escStart, i, 1
	if s.gap+1 > maxGap {
		s.brk(b)
	}
	return i + 1
}

// escape consumes bytes of the escape sequence in progress.
func (s *scanner) escape(b []byte, i int) int {
	for ; i < len(b); i++ {
		c := b[i]
		s.escLen++
		term := 0 // length of a string terminator
		switch s.esc {
		case escStart:
			switch {
			case c == '[':
				s.esc = escCSI
			case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
				s.esc = escStr
			case c >= 0x20 && c <= 0x2f:
				s.esc = escNF
			case c >= 0x30 && c <= 0x7e:
				s.esc = escNone
			default:
				return s.broken(b)
			}
		case escCSI:
			switch {
			case c >= 0x20 && c <= 0x3f:
			case c >= 0x40 && c <= 0x7e:
				s.esc = escNone
			default:
				return s.broken(b)
			}
		case escNF:
			switch {
			case c >= 0x20 && c <= 0x2f:
			case c >= 0x30 && c <= 0x7e:
				s.esc = escNone
			default:
				return s.broken(b)
			}
		case escStr:
			switch c {
			case 0x07:
				s.esc, term = escNone, 1
			case escByte:
				s.esc = escStrEsc
			case 0x18, 0x1a:
				return s.broken(b)
			}
		case escStrEsc:
			if c != '\\' {
				return s.broken(b)
			}
			s.esc, term = escNone, 2
		}
		if s.esc == escNone {
			if term > 0 {
				s.payload(b, s.escAt+2, i+1-term)
			}
			s.gap += s.escLen
			if s.gap > maxGap {
				s.brk(b)
			}
			return i + 1
		}
		if s.escLen >= maxEscape {
			return s.broken(b)
		}
		if s.gap+s.escLen > maxGap {
			s.brk(b)
		}
	}
	return i
}

// broken handles an escape sequence that is malformed, too long or
// unterminated: its ESC is a break and the bytes after it are text.
func (s *scanner) broken(b []byte) int {
	s.esc = escNone
	s.brk(b)
	return s.escAt + 1
}

// payload masks PANs in the text b[from:to] of a string escape (an OSC
// window title, say), judged on its own.
func (s *scanner) payload(b []byte, from, to int) {
	if to-from < minDigits {
		return
	}
	sub := scanner{mode: s.mode, detect: s.detect}
	if s.out == nil { // read-only and nothing masked yet: look first
		sub.ro = true // and no src: hide only records that it was called
		sub.scan(b[from:to], 0, true)
		if sub.count == 0 {
			return
		}
		s.out = append(s.spare, s.src...)
		sub = scanner{mode: s.mode, detect: s.detect}
	}
	sub.scan(s.out[from:to], 0, true)
	s.count += sub.count
}

const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)
