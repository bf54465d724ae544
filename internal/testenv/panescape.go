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

// refEscape parses the escape sequence at the start of b. It returns its
// length, or 0 if b does not start with one, and for a string sequence
// the payload bounds. A sequence that has not ended or broken within
// refMaxEsc bytes is committed: it lasts to its final byte or
// terminator, or ends before the first byte it does not allow.
func refEscape(b []byte) (n, payFrom, payTo int) {
	if len(b) < 2 {
		return 0, 0, 0
	}
	committed := func(i int) bool { return i >= refMaxEsc } // at byte i, before it
	switch c := b[1]; {
	case c == '[' || c >= 0x20 && c <= 0x2f:
		lo, hi := byte(0x20), byte(0x3f) // CSI parameters and intermediates
		final := func(x byte) bool { return x >= 0x40 && x <= 0x7e }
		if c != '[' {
			hi = 0x2f
			final = func(x byte) bool { return x >= 0x30 && x <= 0x7e }
		}
		for i := 2; i < len(b); i++ {
			switch x := b[i]; {
			case final(x):
				return i + 1, 0, 0
			case x < lo || x > hi:
				if committed(i) {
					return i, 0, 0
				}
				return 0, 0, 0
			}
		}
		if committed(len(b)) {
			return len(b), 0, 0
		}
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		for i := 2; i < len(b); i++ {
			switch b[i] {
			case 0x07:
				return i + 1, 2, i
			case refESC:
				if i+1 < len(b) && b[i+1] == '\\' {
					return i + 2, 2, i
				}
				if committed(i + 1) { // the ESC itself commits it
					return i, 2, i
				}
				return 0, 0, 0
			case 0x18, 0x1a:
				if committed(i) {
					return i, 2, i
				}
				return 0, 0, 0
			}
		}
		if committed(len(b)) {
			return len(b), 2, len(b)
		}
	case c >= 0x30 && c <= 0x7e:
		return 2, 0, 0
	}
	return 0, 0, 0
}
