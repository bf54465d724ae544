package mask

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// utf16le encodes ASCII s as UTF-16LE: each byte followed by NUL.
func utf16le(s string) string {
	var b strings.Builder
	for i := range len(s) {
		b.WriteByte(s[i])
		b.WriteByte(0)
	}
	return b.String()
}

// judgeAll masks in as terminal output (or typed input) with Mask, with a
// Writer fed one byte at a time and in random pieces, and with the
// reference, and fails unless all agree; it returns the result.
func judgeAll(t *testing.T, in string, mode Mode, input bool) string {
	t.Helper()
	got, _ := maskStream(nil, []byte(in), mode, input)
	if ref := refMaskStream([]byte(in), mode, input); !bytes.Equal(got, ref) {
		t.Fatalf("%q: scanner %q, reference %q", in, got, ref)
	}
	every := make([]int, len(in))
	for i := range every {
		every[i] = i
	}
	rng := rand.New(rand.NewPCG(uint64(len(in)), 7))
	for _, cuts := range [][]int{every, randomCuts(rng, len(in)), randomCuts(rng, len(in))} {
		if s := streamAs(t, []byte(in), cuts, mode, input); !bytes.Equal(s, got) {
			t.Fatalf("%q: Writer %q, Mask %q", in, s, got)
		}
	}
	return string(got)
}

// TestIgnoredControls: controls a terminal shows nothing for do not break
// a number, keep their place and are never changed.
func TestIgnoredControls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{utf16le("4111111111111111\r\n"), utf16le("************1111\r\n")},
		{"\xff\xfe" + utf16le("4111 1111 1111 1111\r\n"), "\xff\xfe" + utf16le("**** **** **** 1111\r\n")},
		{"\xff\xfe" + utf16le("card=5555-5555-5555-4444;"), "\xff\xfe" + utf16le("card=****-****-****-4444;")},
		{"3782\x0082246\x00310005", "****\x00*****\x00**0005"},
		{"4111\x7f1111\a1111\x001111", "****\x7f****\a****\x001111"},
		{"\x0e4111 1111\x0f 1111 1111\x0f", "\x0e**** ****\x0f **** 1111\x0f"},
		{"4111\x01\x02\x03\x04\x05\x06\x10\x11\x12\x13\x14\x15\x16\x17\x19\x1c\x1d\x1e\x1f111111111111", "****\x01\x02\x03\x04\x05\x06\x10\x11\x12\x13\x14\x15\x16\x17\x19\x1c\x1d\x1e\x1f********1111"},
		// The controls that move the cursor or end sequences still end a number.
		{"4111\t1111 1111 1111", "4111\t1111 1111 1111"},
		{"4111\r1111 1111 1111", "4111\r1111 1111 1111"},
		{"4111\x181111 1111 1111", "4111\x181111 1111 1111"},
		// An ignored control is no separator, and no word byte hides behind one.
		{"x\x004111111111111111", "x\x004111111111111111"},
		{"4111111111111111\x00x", "4111111111111111\x00x"},
		{"%\x00B\x004111111111111111^", "%\x00B\x00************1111^"},
	} {
		if got := judgeAll(t, tc.in, ModeLast4, false); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestLongEscapes: escape sequences of any length between the groups of a
// number do not break it; the hold stays bounded.
func TestLongEscapes(t *testing.T) {
	t.Parallel()
	sgr := strings.Repeat("\x1b[1;31;48;5;208m", 13) // 208 bytes
	url := "https://example.com/very/long/" + strings.Repeat("path/", 40) + "?q=1234567890123"
	link := "\x1b]8;;" + url + "\x1b\\"
	for _, tc := range []struct{ in, want string }{
		{"4111 " + sgr + "1111 1111 1111\n", "**** " + sgr + "**** **** 1111\n"},
		{link + "4111\x1b]8;;\x1b\\ 1111 1111 1111\n", link + "****\x1b]8;;\x1b\\ **** **** 1111\n"},
		{"\x1b]8;;" + url + "\a5555\x1b]8;;\a-5555-5555-4444", "\x1b]8;;" + url + "\a****\x1b]8;;\a-****-****-4444"},
		{"41\x1b[" + strings.Repeat("1;", 100) + "m11 1111 1111 1111", "**\x1b[" + strings.Repeat("1;", 100) + "m** **** **** 1111"},
		// A long window title is judged on its own, as it passes.
		{"\x1b]0;" + strings.Repeat("x", 100) + " 378282246310005\a", "\x1b]0;" + strings.Repeat("x", 100) + " ***********0005\a"},
		// CAN aborts a committed string and is part of it: it shows
		// nothing, and the number runs through it.
		{"4111 \x1b]0;" + strings.Repeat("y", 80) + "\x181111 1111 1111", "**** \x1b]0;" + strings.Repeat("y", 80) + "\x18**** **** 1111"},
		// A committed sequence ends before a byte it does not allow.
		{"4111 \x1b[" + strings.Repeat("1;", 40) + "\t1111 1111 1111", "4111 \x1b[" + strings.Repeat("1;", 40) + "\t1111 1111 1111"},
	} {
		if got := judgeAll(t, tc.in, ModeLast4, false); got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestHoldBound: a candidate whose first digit waits more than holdLimit
// bytes is masked whole, failing closed, and stays part of the run.
func TestHoldBound(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat("\x1b[0m", holdLimit/4+1)
	for _, tc := range []struct{ in, want string }{
		// The groups before the long gap are masked whole; the number is
		// judged as usual when it ends.
		{"4111 1111 " + pad + "1111 1111\n", "**** **** " + pad + "**** 1111\n"},
		// No PAN follows: the masked digits stay masked (a false positive).
		{"12 " + pad + "x", "** " + pad + "x"},
		{"2024" + strings.Repeat("\x00", holdLimit) + "x", "****" + strings.Repeat("\x00", holdLimit) + "x"},
		// A number that ends before the bound is judged as usual.
		{"12 x" + pad + " 4111111111111111", "12 x" + pad + " ************1111"},
	} {
		if got := judgeAll(t, tc.in, ModeLast4, false); got != tc.want {
			t.Errorf("%.40q...: got ...%q, want ...%q", tc.in, got[len(got)-30:], tc.want[len(tc.want)-30:])
		}
	}
}

// TestHoldCap feeds a candidate whose one digit waits as long as the hold
// bound allows, then an escape sequence of the longest length held whole,
// one byte per Write: the Writer holds up to MaxHold bytes, never more,
// and the digit is masked (forced) when the sequence ends.
func TestHoldCap(t *testing.T) {
	t.Parallel()
	in := []byte("1")
	in = append(in, bytes.Repeat([]byte{0}, holdLimit-1)...)
	in = append(in, "\x1b]0;"+strings.Repeat("x", maxEscape-5)+"\x07"...)
	in = append(in, " 1111\r\n"...)
	var out bytes.Buffer
	w := NewWriter(&out, Config{Deadline: -1})
	maxHeld := 0
	for i := range in {
		w.Write(in[i : i+1])
		maxHeld = max(maxHeld, len(w.buf))
	}
	w.Close()
	if maxHeld > MaxHold {
		t.Errorf("held %d bytes, cap %d", maxHeld, MaxHold)
	}
	if maxHeld < MaxHold-2 {
		t.Errorf("held at most %d bytes: test does not reach the cap %d", maxHeld, MaxHold)
	}
	want, _ := Mask(nil, in, 0)
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("output differs from Mask")
	}
	if want[0] != '*' || !bytes.HasSuffix(want, []byte(" 1111\r\n")) {
		t.Errorf("the waiting digit is not masked, or more is: %q...%q", want[:2], want[len(want)-8:])
	}
}

// TestErase: an erase takes back the digit or separator before it before
// the number is judged; the erased byte is left as it is.
func TestErase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		input    bool
	}{
		{"41111111111111112\x7f\r", "************11112\x7f\r", true},
		{"41111111111111112\b\r", "************11112\b\r", true},
		{"41111111111111112\b \b", "************11112\b \b", false},
		{"41111111111111112\b\x1b[K", "************11112\b\x1b[K", false},
		{"4111 1111 1111 11119\b\r\n", "**** **** **** 11119\b\r\n", false},
		// A separator taken back joins the groups around it.
		{"4111 11 \b11 1111 1111\n", "**** ** \b** **** 1111\n", false},
		{"4111 1\b1111 1111 1111", "**** 1\b**** **** 1111", false},
		// Digits that stay on the screen behind a BS are judged too.
		{"4111111111111111\b\b\b\b\r\n", "************1111\b\b\b\b\r\n", false},
		// In output DEL is ignored, not an erase.
		{"41111111111111112\x7f\r", "41111111111111112\x7f\r", false},
		// An erase of something the scanner does not know is a break.
		{"ab\b4111111111111111", "ab\b************1111", false},
		{"4111 1111 1111 111x\b1", "4111 1111 1111 111x\b1", false},
	} {
		if got := judgeAll(t, tc.in, ModeLast4, tc.input); got != tc.want {
			t.Errorf("%q (input %v): got %q, want %q", tc.in, tc.input, got, tc.want)
		}
	}
}

// TestTrack2: a 'D' (EMV track 2 equivalent data) or '=' (magnetic track
// 2) followed by an expiry date ends a PAN; a 'D' without one is a word
// byte.
func TestTrack2(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"4111111111111111D25121011234567890", "************1111D25121011234567890"},
		{"5555555555554444d2501201", "************4444d2501201"},
		{"57 13 4111111111111111D2512101123456789F", "57 13 ************1111D2512101123456789F"},
		{";4111111111111111=2512101123?", ";************1111=2512101123?"},
		{"378282246310005D2712", "***********0005D2712"},
		// Not an expiry: the month is 00 or past 12, or the date is short.
		{"4111111111111111D2513101", "4111111111111111D2513101"},
		{"4111111111111111D2500101", "4111111111111111D2500101"},
		{"4111111111111111D251", "4111111111111111D251"},
		{"4111111111111111D25x12", "4111111111111111D25x12"},
		{"4111111111111111Dx2512", "4111111111111111Dx2512"},
		{"4111111111111111E2512", "4111111111111111E2512"},
	} {
		if got := judgeAll(t, tc.in, ModeLast4, false); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestTerminalRandom holds the scanner and the Writer to the reference on
// streams built from what the terminal rules are about, at the lengths
// the fuzzer rarely reaches: long escape sequences (committed ones,
// strings with digits inside), long runs of ignored controls that reach
// the hold bound, erases and track 2 dates between digit groups.
func TestTerminalRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 2))
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	n := 300
	if testing.Short() {
		n = 50
	}
	for range n {
		var b strings.Builder
		for b.Len() < 200+rng.IntN(6000) {
			switch rng.IntN(12) {
			case 0, 1, 2:
				b.WriteString(pick("4111", "1111", "5555", "4444", "3782", "82246310005", "4111111111111111", "5", "0", "12"))
			case 3:
				b.WriteString(pick(" ", "-", "  ", "x", "D", "d", "=", ";", "%B", "\r\n", "\x18"))
			case 4:
				b.WriteString(strings.Repeat(pick("\x1b[0m", "\x1b[38;5;208m", "\x00", "\x07", "\x7f", "\x0e\x0f"), 1+rng.IntN(rng.IntN(600)+1)))
			case 5:
				b.WriteString("\x1b]" + pick("0;", "8;;") + strings.Repeat(pick("a", "1", " 4111", "/"), rng.IntN(120)) + pick("\x07", "\x1b\\", "\x1b[m", "\x18", "", "\x1b"))
			case 6:
				b.WriteString("\x1b[" + strings.Repeat(pick("1;", "38;5;2", "?"), rng.IntN(50)) + pick("m", "K", "\x00", "", "x"))
			case 7:
				b.WriteString(strings.Repeat(pick("\b", "\x7f"), 1+rng.IntN(3)))
			case 8:
				b.WriteString(pick("2512", "2513", "251", "2501201"))
			case 9:
				b.WriteString(strings.Repeat("\x00", holdLimit-rng.IntN(80)))
			default:
				b.WriteString(pick("a", "\x1b", "P", "\\", "?", "B"))
			}
		}
		in := b.String()
		for _, input := range []bool{false, true} {
			mode := modes[rng.IntN(3)]
			got, _ := maskStream(nil, []byte(in), mode, input)
			if ref := refMaskStream([]byte(in), mode, input); !bytes.Equal(got, ref) {
				t.Fatalf("%v (input %v): differs from the reference\n in: %q\ngot: %q\nref: %q", mode, input, in, got, ref)
			}
			if s := streamAs(t, []byte(in), randomCuts(rng, len(in)), mode, input); !bytes.Equal(s, got) {
				t.Fatalf("%v (input %v): the Writer differs from Mask\n in: %q", mode, input, in)
			}
		}
	}
}
