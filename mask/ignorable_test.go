package mask

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// refIgnorable lists Unicode's Default_Ignorable_Code_Point ranges
// (DerivedCoreProperties.txt, Unicode 15 and 16), written out from the
// data file rather than derived from the unicode package's tables, so the
// tests check which tables invisible is built from.
var refIgnorable = [][2]rune{
	{0x00ad, 0x00ad}, {0x034f, 0x034f}, {0x061c, 0x061c}, {0x115f, 0x1160},
	{0x17b4, 0x17b5}, {0x180b, 0x180f}, {0x200b, 0x200f}, {0x202a, 0x202e},
	{0x2060, 0x206f}, {0x3164, 0x3164}, {0xfe00, 0xfe0f}, {0xfeff, 0xfeff},
	{0xffa0, 0xffa0}, {0xfff0, 0xfff8}, {0x1bca0, 0x1bca3}, {0x1d173, 0x1d17a},
	{0xe0000, 0xe0fff},
}

// refInvisible is what MaskText's plain view leaves out: every format
// character (Cf) and every default-ignorable code point.
func refInvisible(r rune) bool {
	for _, x := range refIgnorable {
		if r >= x[0] && r <= x[1] {
			return true
		}
	}
	return unicode.Is(unicode.Cf, r)
}

// refPlain is the plain view of MaskText, written out for the tests: a
// control byte (C0, DEL, C1 as a raw byte) or a C1 control in UTF-8 is one
// space, an invisible character is left out, anything else stays.
func refPlain(b []byte) []byte {
	var out []byte
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case size == 1 && (b[0] < 0x20 || b[0] == 0x7f || b[0] >= 0x80 && b[0] < 0xa0):
			out = append(out, ' ')
		case r >= 0x80 && r < 0xa0:
			out = append(out, ' ')
		case size > 1 && refInvisible(r):
		default:
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

// TestInvisibleIsDefaultIgnorable: invisible holds exactly the format
// characters and the default-ignorable code points, none of them white
// space, and nothing in ASCII or Latin-1 but the soft hyphen.
func TestInvisibleIsDefaultIgnorable(t *testing.T) {
	t.Parallel()
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if got, want := invisible(r), refInvisible(r); got != want {
			t.Fatalf("invisible(%U) = %v, want %v", r, got, want)
		}
		if invisible(r) && (unicode.IsSpace(r) || r < 0x100 && r != 0xad) {
			t.Fatalf("invisible(%U): a space or a Latin-1 character", r)
		}
	}
}

// TestMaskTextDefaultIgnorableJoins: a card number whose groups are joined
// by a character that shows as nothing reads as the number whole, in
// stored text and in a JSON log line, so MaskText masks it (like Cf,
// covered by attack4) whichever default-ignorable character joins it.
func TestMaskTextDefaultIgnorableJoins(t *testing.T) {
	t.Parallel()
	for _, sep := range []string{
		"\u034f", "\ufe00", "\ufe0f", "\U000e0100", "\U000e01ef", "\u115f", "\u1160", "\u3164", "\uffa0",
		"\u17b4", "\u17b5", "\u180b", "\u180c", "\u180d", "\u180e", "\u180f", "\u2065", "\ufff0", "\U000e0000",
		"\U000e0020", "\U000e0fff", "\u200b\u034f", "\ufe0f\u200d",
	} {
		for _, joined := range []string{
			strings.Join([]string{"4111", "1111", "1111", "1111"}, sep),
			strings.Join(strings.Split("4111111111111111", ""), sep),
			strings.Join([]string{"4111", "1111", "1111", "1111"}, " "+sep),
		} {
			src := "id " + joined + " end"
			out, n := MaskText(nil, []byte(src), ModeFull)
			if n == 0 || bytes.ContainsAny(out, "4") || len(out) != len(src) {
				t.Errorf("separator %+q: MaskText(%+q) = %+q, %d", sep, src, out, n)
			}
			var b bytes.Buffer
			slog.New(NewHandler(slog.NewJSONHandler(&b, nil))).Info("x", "key_id", src)
			if strings.Contains(b.String(), "4111") {
				t.Errorf("separator %+q: the JSON log line holds the number: %s", sep, b.String())
			}
		}
	}
}

// TestMaskTextDefaultIgnorablePrecision: default-ignorable characters do
// not make MaskText mask what is no card number (DESIGN invariant 8): not
// text that merely holds them, not digits they join into a number that
// fails the Luhn check or stands inside a word, not keycap emoji.
func TestMaskTextDefaultIgnorablePrecision(t *testing.T) {
	t.Parallel()
	for _, src := range []string{
		"\u3164\u3164 \u1160\u115f hangul fillers, build 20261205192147",
		"emoji 1\ufe0f\u20e32\ufe0f\u20e33\ufe0f\u20e3 4\ufe0f\u20e31\ufe0f\u20e31\ufe0f\u20e31\ufe0f\u20e3",
		"\u845b\U000e0100\u845b\U000e0101 ideographic variants 4111",
		"4111\u034f1111\u034f1111\u034f1112",                // fails the Luhn check
		"id\u034f4111\u034f1111\u034f1111\u034f1111x",       // inside a word
		"4111\u034f1111\u034f1111\u034f1111\u034f1111",      // 20 digits: none
		"ts 2026-12-05T19:21:47.123456789Z\ufe0f ok \u17b4", // a timestamp
		"serial 1234567890123\u180e45678 \u2065",
	} {
		out, n := MaskText(nil, []byte(src), ModeFull)
		if n != 0 || string(out) != src {
			t.Errorf("MaskText(%+q) = %+q, %d masked; want it unchanged", src, out, n)
		}
	}
}
