package testenv

// The reference tokeniser's byte classes and escape sequence grammar.

// refIgnored reports whether a terminal shows nothing for the byte c: the
// C0 controls but BS, HT, LF, VT, FF, CR, CAN, SUB and ESC, and DEL.
func refIgnored(c byte) bool {
	switch c {
	case 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x18, 0x1a, 0x1b:
		return false
	}
	return c < 0x20 || c == refDEL
}

// refInSeq reports whether the control c, inside an escape sequence, is
// executed and leaves the sequence going on (as in the DEC parser of
// xterm, VTE and tmux): an ignored control, read as in typed input if
// input is set (where DEL erases and ^C and ^U drop the line).
func refInSeq(c byte, input bool) bool {
	return refIgnored(c) && !(input && (c == refDEL || c == 0x03 || c == 0x15))
}

// refEscape parses the escape sequence at the start of b. It returns its
// length, or 0 if b does not start with one, and for a string sequence
// the payload bounds. CAN or SUB inside a sequence aborts it and is part
// of it; an ESC inside one aborts it before the ESC, which starts the
// next (in a string, an ESC not followed by '\' ends the string there);
// an ignored control inside ESC, nF or CSI sequences is passed over. A
// sequence broken by another byte its grammar does not allow, or
// unterminated, is none (0), unless it has not ended or broken within
// refMaxEsc bytes: then it is committed, and lasts to its final byte or
// terminator, or ends before the first byte it does not allow.
func refEscape(b []byte, input bool) (n, payFrom, payTo int) {
	committed := func(i int) bool { return i >= refMaxEsc } // at byte i, before it
	bad := func(i int) (int, int, int) {
		if committed(i) {
			return i, 0, 0
		}
		return 0, 0, 0
	}
	j := 1
	for j < len(b) && refInSeq(b[j], input) {
		j++
	}
	if j == len(b) {
		return bad(j)
	}
	switch c := b[j]; {
	case c == 0x18 || c == 0x1a:
		return j + 1, 0, 0
	case c == refESC:
		return j, 0, 0
	case c == '[' || c >= 0x20 && c <= 0x2f:
		lo, hi := byte(0x20), byte(0x3f) // CSI parameters and intermediates
		final := func(x byte) bool { return x >= 0x40 && x <= 0x7e }
		if c != '[' {
			hi = 0x2f
			final = func(x byte) bool { return x >= 0x30 && x <= 0x7e }
		}
		for i := j + 1; i < len(b); i++ {
			switch x := b[i]; {
			case final(x):
				return i + 1, 0, 0
			case x >= lo && x <= hi, refInSeq(x, input):
			case x == 0x18 || x == 0x1a:
				return i + 1, 0, 0
			case x == refESC:
				return i, 0, 0
			default:
				return bad(i)
			}
		}
		return bad(len(b))
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		from := j + 1
		for i := from; i < len(b); i++ {
			switch b[i] {
			case 0x07:
				return i + 1, from, i
			case refESC:
				if i+1 == len(b) { // unterminated, or a lone ESC at the end
					if committed(i + 1) { // the ESC itself commits it
						return i, from, i
					}
					return 0, 0, 0
				}
				if b[i+1] == '\\' {
					return i + 2, from, i
				}
				return i, from, i // ends the string, starts the next
			case 0x18, 0x1a:
				return i + 1, from, i
			}
		}
		if committed(len(b)) {
			return len(b), from, len(b)
		}
	case c >= 0x30 && c <= 0x7e:
		return j + 1, 0, 0
	default:
		return bad(j)
	}
	return 0, 0, 0
}
