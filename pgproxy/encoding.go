package pgproxy

import (
	"unicode/utf8"

	"github.com/postern/postern/mask"
)

// The masker judges bytes as UTF-8. A client may ask for another
// encoding (client_encoding, SET NAMES, PGCLIENTENCODING, options), and
// the server then converts what it sends: the same stored text reaches
// the client as other bytes, which UTF-8 rules misjudge.
//
//   - In SJIS, BIG5, GBK, UHC, GB18030 and JOHAB the second (and in
//     GB18030's four-byte form, the fourth) byte of a character may be an
//     ASCII letter or digit: "カード番号：4111…" in SJIS ends its colon in
//     'F', a word byte that would keep the number after it from being a
//     card number; GB18030 writes U+200B (zero width space) as 81 36 A4
//     37, two digits among the card's.
//   - In LATIN1 to LATIN10, WIN1250 to WIN1258 and the like, a soft hyphen
//     is the single byte AD, which is not UTF-8: the UTF-8 soft hyphen
//     between groups is left out and the groups stand together, the
//     single byte is not.
//
// The relay does not know the encoding of each value for sure: a change
// is reported (ParameterStatus) only when the statement that made it has
// ended, after the rows of the statements after it in the same Query or
// pipeline. So a value that is not valid UTF-8, or any value once the
// server has reported an encoding other than UTF8 or SQL_ASCII, is judged
// also in three more views, and a digit masked in any of them is masked:
//
//   - multibyte, shown: every byte beyond ASCII, and the ASCII byte after
//     one (a possible trail byte), is a visible byte that is no word byte
//     (0xFF);
//   - multibyte, hidden: the same bytes show as nothing (NUL, transparent
//     to the masker), as a character that is invisible would;
//   - single byte: every byte beyond ASCII that is not part of a UTF-8
//     character shows as nothing.
//
// Each view keeps every byte's place, so a digit masked in a view is the
// same digit of the value. The views only take digits away or join them
// (a trail byte is never a digit of the number), so they can mask more
// than the text holds, never less than the UTF-8 judgement: a false
// positive needs a character beyond ASCII right before or inside a number
// that is a card number once one byte is left out, in text that is not
// UTF-8 already.

// viewKind is one of the views above.
type viewKind int

const (
	viewMultiShown viewKind = iota
	viewMultiHidden
	viewSingle
	viewKinds
)

// hasHigh reports whether v holds a byte beyond ASCII.
func hasHigh(v []byte) bool {
	for _, c := range v {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// encodingView appends to dst the view k of v.
func encodingView(dst, v []byte, k viewKind) []byte {
	start := len(dst)
	dst = append(dst, v...)
	p := dst[start:]
	switch k {
	case viewMultiShown, viewMultiHidden:
		fill := byte(0xff)
		if k == viewMultiHidden {
			fill = 0
		}
		after := false // the byte before was beyond ASCII
		for i, c := range v {
			high := c >= 0x80
			if high || after {
				p[i] = fill
			}
			after = high
		}
	case viewSingle:
		for i := 0; i < len(v); {
			if v[i] < 0x80 {
				i++
				continue
			}
			r, size := utf8.DecodeRune(v[i:])
			if r == utf8.RuneError && size == 1 {
				p[i] = 0
			}
			i += size
		}
	}
	return dst
}

// needViews reports whether v is judged in the encoding views too: it
// has a byte beyond ASCII and is not UTF-8, or the connection's encoding
// is not UTF-8 (legacy).
func needViews(v []byte, legacy bool) bool {
	return hasHigh(v) && (legacy || !utf8.Valid(v))
}

// maskEncodings masks in v the digits that any encoding view of orig (v
// before it was masked) finds in a card number, and returns the most card
// numbers one view found.
func maskEncodings(v, orig []byte, d mask.Detect, mode mask.Mode) int {
	n := 0
	var p, out, scratch []byte
	for k := range viewKinds {
		p = encodingView(p[:0], orig, k)
		var m int
		if len(p) > textJudgeMax {
			m = plainMask(p, d, mode, &scratch)
		} else {
			out, m = d.MaskText(out[:0], p, mode)
			p = append(p[:0], out...)
		}
		if m == 0 {
			continue
		}
		for i, c := range p {
			if c == '*' && orig[i]-'0' < 10 {
				v[i] = '*'
			}
		}
		n = max(n, m)
	}
	return n
}
