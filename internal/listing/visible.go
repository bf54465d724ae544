// Package listing renders what Postern shows a person about its sessions:
// the sessions table and JSON document, and the escaping every cell and
// message goes through first (DESIGN invariant 7: evidence shown to a
// person cannot act on their terminal). The CLI on the bastion host and
// the admin connection (ssh postern@bastion sessions) both print with it,
// so their output is the same.
package listing

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Visible returns s fit for a line of human output: every character that
// could act on a terminal or break a table (C0 and C1 controls, DEL,
// Unicode format characters such as bidirectional overrides, line and
// paragraph separators), every character a terminal draws as nothing
// (hidden), and every byte that is not UTF-8 is written as an escape: \n,
// \r, \t, \x1b and \xff for bytes, \u009b and \u202e for characters,
// \U000e0100 beyond U+FFFF. A backslash becomes \\, so an escape in the
// output always means the character, never the same text in the data.
// Everything from the index, a recording or a certificate goes through it
// before the CLI or the admin connection shows it.
func Visible(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if needsEscape(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !needsEscape(r, size):
			b = append(b, s[i:i+size]...)
		case r == utf8.RuneError && size == 1:
			b = appendHex(b, `\x`, uint64(s[i]), 2)
		case r == '\\':
			b = append(b, `\\`...)
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, `\t`...)
		case r < 0x80:
			b = appendHex(b, `\x`, uint64(r), 2)
		case r > 0xffff:
			b = appendHex(b, `\U`, uint64(r), 8)
		default:
			b = appendHex(b, `\u`, uint64(r), 4)
		}
		i += size
	}
	return string(b)
}

// VisibleText is Visible for messages of several lines: newlines and tabs
// stay as they are, every other control is escaped.
func VisibleText(s string) string {
	var b strings.Builder
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\t' {
			b.WriteString(Visible(s[start:i]))
			b.WriteByte(s[i])
			start = i + 1
		}
	}
	b.WriteString(Visible(s[start:]))
	return b.String()
}

func needsEscape(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r < 0x20, r == '\\', r >= 0x7f && r <= 0x9f:
		return true
	case r < 0xa0:
		return false
	}
	return hidden(r)
}

// hidden reports whether r, beyond Latin-1's controls, must be escaped:
// format characters (Cf: bidirectional overrides, zero-width spaces and
// joiners), line and paragraph separators, and the rest of Unicode's
// default-ignorable characters (U+034F COMBINING GRAPHEME JOINER, the
// variation selectors, the Hangul fillers, U+17B4, U+17B5 and the code
// points reserved as ignorable), which a terminal draws as nothing: digits
// joined by them would read as one number, a card number the masker does
// not see as one.
func hidden(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector)
}

func appendHex(b []byte, prefix string, v uint64, width int) []byte {
	b = append(b, prefix...)
	h := strconv.FormatUint(v, 16)
	for range width - len(h) {
		b = append(b, '0')
	}
	return append(b, h...)
}

// Clip shortens s for a table cell, after making it visible.
func Clip(s string, n int) string {
	s = Visible(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// WriteJSON writes v as indented JSON, escaped by EscapeJSON.
func WriteJSON(w io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(EscapeJSON(data), '\n'))
	return err
}

// EscapeJSON returns the JSON text data with every character a terminal
// would act on or hide written as a \u escape, which decodes to the same
// text: encoding/json (and log/slog) escape C0 controls and U+2028/U+2029
// but write DEL, the C1 controls (U+0080 to U+009F, a CSI among them) and
// format or default-ignorable characters as they are. Outside strings JSON
// is ASCII, so the bytes replaced can only be inside one. It returns data
// itself when nothing needs escaping.
func EscapeJSON(data []byte) []byte {
	var out []byte
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == 0x7f:
			out = appendHex(lazy(out, data, i), `\u`, 0x7f, 4)
		case c == 0xc2 && i+1 < len(data) && data[i+1] >= 0x80 && data[i+1] <= 0x9f:
			out = appendHex(lazy(out, data, i), `\u`, uint64(data[i+1]), 4)
			i++
		case c >= 0xc0:
			// Format characters (bidirectional overrides and the like),
			// line separators and characters drawn as nothing reorder,
			// break or hide what a terminal shows: \u escapes, as for
			// C1, and a UTF-16 surrogate pair beyond U+FFFF (RFC 8259
			// §7).
			r, size := utf8.DecodeRune(data[i:])
			if size > 1 && hidden(r) {
				out = lazy(out, data, i)
				if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
					out = appendHex(appendHex(out, `\u`, uint64(r1), 4), `\u`, uint64(r2), 4)
				} else {
					out = appendHex(out, `\u`, uint64(r), 4)
				}
				i += size - 1
			} else if out != nil {
				out = append(out, data[i:i+size]...)
				i += size - 1
			}
		case out != nil:
			out = append(out, c)
		}
	}
	if out == nil {
		return data
	}
	return out
}

// lazy starts the rewritten copy of data at its first change, at i.
func lazy(out, data []byte, i int) []byte {
	if out == nil {
		out = bytes.Clone(data[:i])
	}
	return out
}
