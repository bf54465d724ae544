package recorder

// The asciicast event encoding: JSON strings without encoding/json, so
// that a chunk of output costs no allocation.

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"unicode/utf8"
)

// incompleteTail returns the length of a trailing UTF-8 sequence in b that
// is a valid prefix of a longer character, or 0.
func incompleteTail(b []byte) int {
	for i := 1; i <= 3 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0
		}
		if c >= 0xC0 { // a leading byte
			need := 2
			switch {
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			}
			if need > i {
				return i
			}
			return 0
		}
	}
	return 0
}

const hexDigits = "0123456789abcdef"

// special8 returns the high bit of each byte of v that may need escaping
// or UTF-8 decoding: below 0x20, '"', '\\', or 0x80 and above. Borrows
// can mark bytes above a marked one, never below, so the lowest mark is
// exact; a zero result means all eight bytes are plain. (A byte below
// 0x80 that is none of those subtracts without a borrow and without
// setting its high bit, so the usual "and not v" of a zero-byte test is
// not needed: bytes with the high bit set are marked anyway.)
func special8(v uint64) uint64 {
	const lo = 0x0101010101010101
	const hi = 0x8080808080808080
	less20 := v - 0x20*lo
	quote := (v ^ 0x22*lo) - lo
	backslash := (v ^ 0x5c*lo) - lo
	return (v | less20 | quote | backslash) & hi
}

// skipPlain returns the index of the first byte of s that needs escaping
// or UTF-8 decoding, or len(s).
func skipPlain(s []byte) int {
	i := 0
	// Sixteen bytes at a time: most terminal output needs no escaping,
	// and a word that does says where.
	for ; i+16 <= len(s); i += 16 {
		m0 := special8(binary.LittleEndian.Uint64(s[i:]))
		m1 := special8(binary.LittleEndian.Uint64(s[i+8:]))
		if m0 != 0 {
			return i + bits.TrailingZeros64(m0)>>3
		}
		if m1 != 0 {
			return i + 8 + bits.TrailingZeros64(m1)>>3
		}
	}
	if i+8 <= len(s) {
		if m := special8(binary.LittleEndian.Uint64(s[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return i
		}
	}
	return i
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does; it does not allocate beyond b's growth.
//
// With AVX2, escapeAVX2 does the common part: plain text, line breaks,
// tabs, quotes and backslashes. Where it stops (other control characters,
// UTF-8, the last bytes), Go takes plain text and valid UTF-8 up to the
// next byte to escape, copies that run at once and writes the escape.
func appendJSONString(b []byte, s []byte) []byte {
	b = append(b, '"')
	for len(s) > 0 {
		if hasAVX2 && len(s) >= 32 {
			if cap(b)-len(b) < 64 {
				b = slices.Grow(b, len(s)+64)
			}
			nd, ns := escapeAVX2(b[len(b):cap(b)], s)
			b, s = b[:len(b)+nd], s[ns:]
		}
		k := 0
		for {
			if k += skipPlain(s[k:]); k == len(s) || s[k] < utf8.RuneSelf {
				break
			}
			r, size := utf8.DecodeRune(s[k:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			k += size
		}
		b = append(b, s[:k]...)
		if s = s[k:]; len(s) == 0 {
			break
		}
		if c := s[0]; c < utf8.RuneSelf {
			b = appendEscape(b, c)
		} else {
			b = append(b, `\ufffd`...)
		}
		s = s[1:]
	}
	return append(b, '"')
}

// appendEscape appends c, a byte below utf8.RuneSelf that needs escaping,
// as a JSON escape.
func appendEscape(b []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}
