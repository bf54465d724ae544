package mask

// How the scanner classifies bytes: what a terminal shows, what it shows
// nothing for, and what erases.

const (
	escByte = 0x1b
	bsByte  = 0x08 // BS: erases the byte before it
	delByte = 0x7f // DEL: ignored in output, erases in input
	etxByte = 0x03 // ^C: ignored in output, drops the line in input
	nakByte = 0x15 // ^U: ignored in output, kills the line in input
)

// kills reports whether c, typed (input), drops the line being typed:
// ^C (interrupt) and ^U (the tty's and every line editor's kill-line key).
// What was typed before it is gone, so it is a break.
func kills(c byte, input bool) bool { return input && (c == etxByte || c == nakByte) }

// Byte classes.
const (
	cDigit = 1 << iota
	cSep   // ' ' or '-': may join the digit groups of one PAN
	cWord  // [0-9A-Za-z_]: a PAN never touches one
	cStop  // digit or ESC: where the fast skip stops
	cSlow  // ESC, an ignored control, BS or DEL: a digit run next to one takes the slow path
	cIgn   // a control a terminal shows nothing for (DEL in output only)
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit | cWord | cStop
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cWord
		t[c-'a'+'A'] |= cWord
	}
	t['_'] = cWord
	t[' '] = cSep
	t['-'] = cSep
	for c := range 0x20 {
		if ignorable(byte(c)) {
			t[c] = cIgn | cSlow
		}
	}
	t[delByte] = cIgn | cSlow
	t[bsByte] = cSlow
	t[escByte] = cStop | cSlow
	return t
}()

// ignorable reports whether the C0 control c moves nothing on a terminal:
// all but BS (erase), HT, LF, VT, FF and CR (they move the cursor) and
// CAN, SUB and ESC (they end or start escape sequences).
func ignorable(c byte) bool {
	switch c {
	case bsByte, '\t', '\n', '\v', '\f', '\r', 0x18, 0x1a, escByte:
		return false
	}
	return c < 0x20
}
