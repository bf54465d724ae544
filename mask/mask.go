package mask

// Mask appends src to dst with every PAN masked as mode says, and returns
// the extended buffer and the number of PANs masked. It judges src as a
// whole stream of terminal output: the same as writing src to a Writer
// and closing it. It detects card numbers as DetectBrands says;
// Detect.Mask chooses.
func Mask(dst, src []byte, mode Mode) ([]byte, int) {
	return DetectBrands.Mask(dst, src, mode)
}

// MaskInPlace masks every PAN in b in place, judging b as a whole stream
// like Mask, and returns the number of PANs masked. It detects card numbers
// as DetectBrands says; Detect.MaskInPlace chooses.
func MaskInPlace(b []byte, mode Mode) int {
	return DetectBrands.MaskInPlace(b, mode)
}

// Mask is the package's Mask with the card numbers d detects.
func (d Detect) Mask(dst, src []byte, mode Mode) ([]byte, int) {
	return d.maskStream(dst, src, mode, false)
}

// MaskInPlace is the package's MaskInPlace with the card numbers d
// detects.
func (d Detect) MaskInPlace(b []byte, mode Mode) int {
	s := scanner{mode: mode, detect: d}
	s.scan(b, 0, true)
	return int(s.count)
}

// maskStream is d.Mask for terminal output (input false) or typed input.
func (d Detect) maskStream(dst, src []byte, mode Mode, input bool) ([]byte, int) {
	start := len(dst)
	dst = append(dst, src...)
	s := scanner{mode: mode, detect: d, input: input}
	s.scan(dst[start:], 0, true)
	return dst, int(s.count)
}
