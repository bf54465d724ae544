package mask

// Mask appends src to dst with every PAN masked as mode says, and returns
// the extended buffer and the number of PANs masked. It judges src as a
// whole stream of terminal output: the same as writing src to a Writer
// and closing it.
func Mask(dst, src []byte, mode Mode) ([]byte, int) {
	return maskStream(dst, src, mode, false)
}

// maskStream is Mask for terminal output (input false) or typed input.
func maskStream(dst, src []byte, mode Mode, input bool) ([]byte, int) {
	start := len(dst)
	dst = append(dst, src...)
	var s scanner
	s.mode, s.input = mode, input
	s.scan(dst[start:], 0, true)
	return dst, int(s.count)
}

// MaskInPlace masks every PAN in b in place, judging b as a whole stream
// like Mask, and returns the number of PANs masked.
func MaskInPlace(b []byte, mode Mode) int {
	var s scanner
	s.mode = mode
	s.scan(b, 0, true)
	return int(s.count)
}
