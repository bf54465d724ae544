package mask

import (
	"bytes"
	"testing"
)

// TestMaskText: digits that only an escape sequence hides from a terminal
// are masked in stored text; what Mask masks, MaskText masks too.
func TestMaskText(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"echo \x1b[4111111111111111;1m":       "echo \x1b[****************;1m",
		"\x1b(4111111111111111@x":             "\x1b(****************@x",
		"a\u009b4111111111111111;1m":          "a\u009b****************;1m",
		"\x1b[31m4111\x1b[0m 1111 1111 1111":  "\x1b[31m****\x1b[0m **** **** ****",
		"plain 4111 1111 1111 1111, id 12345": "plain **** **** **** ****, id 12345",
		"no number \x1b[2J here":              "no number \x1b[2J here",
	} {
		got, _ := MaskText(nil, []byte(in), ModeFull)
		if string(got) != want {
			t.Errorf("MaskText(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzMaskText: same length, a superset of Mask's masking, and nothing a
// plain reading (controls as spaces, invisible characters left out: the
// written-out reference refPlain) would call a PAN is left.
func FuzzMaskText(f *testing.F) {
	f.Add([]byte("echo \x1b[4111111111111111;1m"))
	f.Add([]byte("\xc2\x9b4111 1111 1111 1111"))
	f.Add([]byte("4111\u034f1111\ufe001111\U000e01001111 \u3164"))
	f.Add([]byte("1\ufe0f\u20e3 4111\u200b 1111\u17b4 1111\uffa0 1111"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, _ := MaskText(nil, in, ModeFull)
		if len(got) != len(in) {
			t.Fatalf("length %d, want %d", len(got), len(in))
		}
		term, _ := Mask(nil, in, ModeFull)
		for i := range got {
			if term[i] == '*' && in[i] != '*' && got[i] != '*' {
				t.Fatalf("byte %d masked by Mask but not MaskText: %q", i, got)
			}
		}
		plain := bytes.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
				return ' '
			}
			return r
		}, got)
		if len(plain) == len(got) {
			if _, n := Mask(nil, plain, ModeFull); n > 0 {
				t.Fatalf("a PAN left in %q", got)
			}
		}
		if _, n := Mask(nil, refPlain(got), ModeFull); n > 0 {
			t.Fatalf("a PAN left in the plain view of %+q", got)
		}
	})
}
