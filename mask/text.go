package mask

// MaskText masks PANs in text that is stored rather than shown on a
// terminal: a log line, an index field, a record. It appends src to dst
// and returns the extended buffer and how many PANs it masked.
//
// It judges src twice: as a terminal would show it (like Mask, escape
// sequences transparent), and as plain text in which every control byte
// (C0, DEL, and C1 as raw bytes or in UTF-8) is a space. Digits masked by
// either are masked. The second judgement matters because stored text is
// read by people and programs that do not interpret escape sequences: the
// digits of "ESC [ 4111111111111111 m" are invisible on a terminal but
// stand together in a JSON log line, where ESC is written as \u001b.
func MaskText(dst, src []byte, mode Mode) ([]byte, int) {
	start := len(dst)
	dst, n := Mask(dst, src, mode)
	if !hasControl(src) {
		return dst, n
	}
	plain := make([]byte, len(src))
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0:
			plain[i] = ' '
		case c == 0xc2 && i+1 < len(src) && src[i+1] >= 0x80 && src[i+1] < 0xa0:
			plain[i], plain[i+1] = ' ', ' ' // C1 in UTF-8
			i++
		default:
			plain[i] = c
		}
	}
	m := MaskInPlace(plain, mode)
	if m == 0 {
		return dst, n
	}
	out := dst[start:]
	for i, c := range plain {
		if c == '*' && src[i] >= '0' && src[i] <= '9' {
			out[i] = '*'
		}
	}
	return dst, max(n, m)
}

// hasControl reports whether b holds a byte MaskText treats as a space.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0 || c == 0xc2 {
			return true
		}
	}
	return false
}
