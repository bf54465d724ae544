package recorder

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func filterString(s string) string {
	var out bytes.Buffer
	NewTerminalFilter(&out).Write([]byte(s))
	return out.String()
}

func TestTerminalFilter(t *testing.T) {
	t.Parallel()
	const e = "\x1b"
	tests := []struct {
		name, in, want string
	}{
		{"text and SGR", "a " + e + "[1;31mred" + e + "[0m\r\n", "a " + e + "[1;31mred" + e + "[0m\r\n"},
		{"truecolour with colons", e + "[38:2::1:2:3mx", e + "[38:2::1:2:3mx"},
		{"cursor, erase, scroll region", e + "[H" + e + "[2J" + e + "[5;20r" + e + "[10;3H" + e + "[K" + e + "[?25l", e + "[H" + e + "[2J" + e + "[5;20r" + e + "[10;3H" + e + "[K" + e + "[?25l"},
		{"alternate screen, bracketed paste", e + "[?1049h" + e + "[?2004h" + e + "[?25h", e + "[?1049h" + e + "[?2004h" + e + "[?25h"},
		{"application cursor keys and keypad", e + "[?1;25h" + e + "=" + e + ">ok", e + ">ok"},
		{"charset, keypad, save cursor", e + "(0qq" + e + "(B" + e + "=" + e + "7" + e + "8", e + "(0qq" + e + "(B" + e + "7" + e + "8"},
		{"cursor shape", e + "[2 q", e + "[2 q"},
		{"UTF-8 text, C1-range continuation bytes kept", "é € ✜ Û 😀", "é € ✜ Û 😀"},
		{"title", e + "]0;alice@db01: ~" + "\x07x", e + "]0;alice@db01: ~\x07x"},
		{"title with ST", e + "]2;tïtle" + e + "\\x", e + "]2;tïtle" + e + "\\x"},

		{"DSR", "a" + e + "[6nb" + e + "[5n" + e + "[?6n", "ab"},
		{"DA1, DA2, DA3", e + "[c" + e + "[0c" + e + "[>c" + e + "[=c", ""},
		{"XTVERSION", "a" + e + "[>qb" + e + "[>0q", "ab"},
		{"DECRQSS", "a" + e + "P$q q" + e + "\\b", "ab"},
		{"XTGETTCAP", e + "P+q544e" + e + "\\", ""},
		{"sixel DCS", e + "Pq#0;2;0;0;0~~" + e + "\\", ""},
		{"DECRQM", e + "[?2004$p" + e + "[4$p", ""},
		{"window ops", e + "[14t" + e + "[21t" + e + "[8;100;100t" + e + "[1t", ""},
		{"DECREQTPARM, checksum", e + "[x" + e + "[1;1;1;1;1*y", ""},
		{"ENQ and DEL", "a\x05b\x7f", "ab"},
		{"DECID", "a" + e + "Zb", "ab"},
		{"OSC 52 write and query", e + "]52;c;aGVsbG8=\x07" + e + "]52;c;?" + e + "\\", ""},
		{"colour queries", e + "]4;1;?\x07" + e + "]10;?\x07" + e + "]11;?" + e + "\\" + e + "]12;?\x07", ""},
		{"hyperlink: text stays", e + "]8;;https://evil.example/\x07click" + e + "]8;;\x07", "click"},
		{"APC, PM, SOS", e + "_Gf=1;AAAA" + e + "\\" + e + "^pm" + e + "\\" + e + "Xsos" + e + "\\ok", "ok"},
		{"mouse and focus reporting", e + "[?1000h" + e + "[?1006h" + e + "[?1004h" + e + "[?25;1000h", ""},
		{"keyboard lock, local echo", e + "[2h" + e + "[12l", ""},
		{"kitty keyboard, modifyOtherKeys", e + "[>1u" + e + "[?u" + e + "[>4;1m" + e + "[=1u", ""},
		{"UTF-8 switch", e + "%@" + e + "%G", ""},
		{"8-bit CSI", "a\x9b6nb\x9b31mc", "abc"},
		{"8-bit DCS, OSC, APC, PM, SOS", "\x90$q q\x9ca\x9d52;c;x\x07b\x9f_\x9c\x9ePM\x9c\x98SOS\x9cc", "abc"},
		{"C1 as UTF-8", "a\u009b6nb\u0090$q q\u009cc\u009d0;t\u0007d", "abcd"},
		{"invalid UTF-8 dropped", "a\xffb\xc3c\xe2\x9b6n", "abc6n"},
		{"title with control", e + "]0;a\x01b\x07x", "x"},
		{"title with C1", e + "]0;a\u009bb\x07x", "x"},
		{"title ended by 8-bit ST", e + "]0;t\x9cx", "x"},
		{"CAN cancels", e + "[6\x18n", "n"},
		{"ESC cuts a string", e + "]52;c;x" + e + "[1mb", e + "[1mb"},
		{"C0 inside CSI dropped", e + "[3\r1m", e + "[31m"},
		{"unfinished at the end", "a" + e + "[3", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := filterString(tt.in); got != tt.want {
				t.Fatalf("filter(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// Byte by byte: sequences split across writes.
			var out bytes.Buffer
			f := NewTerminalFilter(&out)
			for i := range len(tt.in) {
				f.Write([]byte{tt.in[i]})
			}
			if out.String() != tt.want {
				t.Fatalf("byte by byte: %q, want %q", out.String(), tt.want)
			}
		})
	}
}

// TestTerminalFilterBounded: an endless string is never buffered, and what
// follows a string too long to pass still passes.
func TestTerminalFilterBounded(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	f := NewTerminalFilter(&out)
	f.Write([]byte("\x1b]0;"))
	chunk := []byte(strings.Repeat("x", 4096))
	for range 256 { // 1 MiB of title
		f.Write(chunk)
		if len(f.seq) > maxOSC {
			t.Fatalf("holds %d bytes", len(f.seq))
		}
	}
	f.Write([]byte("\x07after"))
	if out.String() != "after" {
		t.Fatalf("got %q", out.String())
	}
	out.Reset()
	f.Write([]byte("\x1b[" + strings.Repeat("1;", 1000) + "mz"))
	if out.String() != "z" || len(f.seq) > maxOSC {
		t.Fatalf("long CSI: %q, holding %d", out.String(), len(f.seq))
	}
}

// FuzzTerminalFilter: whatever the recording holds and however it is
// split, the output is a subsequence of it, valid UTF-8 with no C1
// control, holds no query, string or unknown sequence (filtering it again
// changes nothing), and the filter's state stays bounded.
func FuzzTerminalFilter(f *testing.F) {
	for _, s := range []string{
		"\x1b[1;31mred\x1b[0m\r\n", "\x1bP$q q\x1b\\", "\x1b[>q\x1b[c\x1b[6n", "\x1b]52;c;aGk=\x07",
		"\x1b]0;title\x1b\\", "\x9b6n\u009b6n", "é€✜\xff\xc3", "\x1b]8;;u\x07t\x1b]8;;\x07", "\x1b[?1000;25h",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		var out bytes.Buffer
		fl := NewTerminalFilter(&out)
		step := int(split)%17 + 1
		for i := 0; i < len(in); i += step {
			if n, err := fl.Write(in[i:min(i+step, len(in))]); err != nil || n != min(step, len(in)-i) {
				t.Fatalf("Write: %d, %v", n, err)
			}
			if len(fl.seq) > maxOSC || fl.nutf > 4 {
				t.Fatalf("state grew: %d bytes held", len(fl.seq))
			}
		}
		got := out.Bytes()
		if !isSubsequence(got, in) {
			t.Fatalf("output %q is not a subsequence of %q", got, in)
		}
		if !utf8.Valid(got) {
			t.Fatalf("output %q is not valid UTF-8", got)
		}
		for _, r := range string(got) {
			if r >= 0x80 && r <= 0x9f || r == 0x05 || r == 0x7f {
				t.Fatalf("output %q holds %U", got, r)
			}
		}
		for _, bad := range []string{"\x1bP", "\x1b]52", "\x1b]8;", "\x1b_", "\x1b^", "\x1bX", "\x1bZ", "\x1b[c", "\x1b[>", "\x1b[=", "\x1b[6n", "\x1b%"} {
			if bytes.Contains(got, []byte(bad)) {
				t.Fatalf("output %q holds %q", got, bad)
			}
		}
		if again := filterString(string(got)); again != string(got) {
			t.Fatalf("output %q filtered again gives %q", got, again)
		}
	})
}

func isSubsequence(sub, of []byte) bool {
	for _, c := range sub {
		i := bytes.IndexByte(of, c)
		if i < 0 {
			return false
		}
		of = of[i+1:]
	}
	return true
}
