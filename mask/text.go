package mask

import (
	"unicode"
	"unicode/utf8"
)

// MaskText masks PANs in text that is stored rather than shown on a
// terminal: a log line, an index field, a record. It appends src to dst
// and returns the extended buffer and how many PANs it masked.
//
// It judges src twice: as a terminal would show it (like Mask, escape
// sequences transparent), and as plain text in which every control (C0,
// DEL, and C1 as raw bytes or in UTF-8) is one space and characters that
// show as nothing are left out: Unicode format characters (zero-width
// spaces and joiners, word joiner, soft hyphen, BOM) and the rest of the
// default-ignorable characters (combining grapheme joiner, variation
// selectors, Hangul fillers; see invisible). Digits masked by
// either are masked. The second judgement matters because stored text is
// read by people and programs that do not interpret escape sequences: the
// digits of "ESC [ 4111111111111111 m" are invisible on a terminal but
// stand together in a JSON log line, where ESC is written as \u001b.
//
// It detects card numbers as DetectBrands says; Detect.MaskText chooses.
func MaskText(dst, src []byte, mode Mode) ([]byte, int) {
	return DetectBrands.MaskText(dst, src, mode)
}

// MaskText is the package's MaskText with the card numbers d detects.
func (d Detect) MaskText(dst, src []byte, mode Mode) ([]byte, int) {
	start := len(dst)
	dst, n := d.Mask(dst, src, mode)
	if !hasControl(src) {
		return dst, n
	}
	// The plain view: controls become one space each, characters that
	// show as nothing (U+200B, U+2060, U+FEFF, U+034F, U+FE00, the soft
	// hyphen and the like) are left out, so digits they separate stand
	// together as a reader of the stored text sees them. at maps it back
	// to src.
	plain := make([]byte, 0, len(src))
	at := make([]int, 0, len(src))
	for i := 0; i < len(src); {
		r, size := utf8.DecodeRune(src[i:])
		switch {
		case size == 1 && (src[i] < 0x20 || src[i] == 0x7f || src[i] >= 0x80 && src[i] < 0xa0):
			plain, at = append(plain, ' '), append(at, i)
		case r >= 0x80 && r < 0xa0:
			plain, at = append(plain, ' '), append(at, i) // C1 in UTF-8
		case size > 1 && invisible(r):
		default:
			for k := range size {
				plain, at = append(plain, src[i+k]), append(at, i+k)
			}
		}
		i += size
	}
	m := d.MaskInPlace(plain, mode)
	if m == 0 {
		return dst, n
	}
	out := dst[start:]
	for j, c := range plain {
		if i := at[j]; c == '*' && src[i] >= '0' && src[i] <= '9' {
			out[i] = '*'
		}
	}
	return dst, max(n, m)
}

// hasControl reports whether b holds a byte that the plain view of
// MaskText changes: a control, or the start of a character beyond ASCII.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return true
		}
	}
	return false
}

// invisible reports whether r is drawn as nothing by text viewers, which
// Unicode calls default-ignorable (DerivedCoreProperties.txt,
// Default_Ignorable_Code_Point): the format characters (Cf), and besides
// them U+034F COMBINING GRAPHEME JOINER, the Hangul fillers (U+115F,
// U+1160, U+3164, U+FFA0), U+17B4 and U+17B5, the variation selectors
// (U+180B to U+180D, U+180F, U+FE00 to U+FE0F, U+E0100 to U+E01EF) and the
// code points Unicode reserves as ignorable (U+2065, U+FFF0 to U+FFF8,
// U+E0000 to U+E0FFF). All of Cf counts, including the few format
// characters Unicode leaves out of the property (the interlinear
// annotation marks, Egyptian hieroglyph format controls, prepended
// concatenation marks), as before: leaving one out can only join digits,
// which fails closed. No character of the set is white space, so none is
// a separator.
func invisible(r rune) bool {
	return r >= 0xad && unicode.In(r, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}
