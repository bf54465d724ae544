package mask

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// A hostile review of skimAVX2: inputs a user who controls what a target
// prints (or what they type) could craft so that the 32-byte loop passes
// what skim must not pass. Beyond output equality (which needs a PAN that
// passes its checks to show anything), every state skimAVX2 and skim's
// loop return is held to a model of what skim may pass, written apart
// from skim: digits, ' ', '-', complete ESC, nF and CSI sequences of at
// most maxEscape bytes, and hard breaks, with fewer than minDigits visible
// digits between two hard breaks.

// refSeqEnd is the end of the ESC, nF or CSI sequence at b[p] (ESC) that
// skim may pass: complete within b[:lim], at most maxEscape bytes, made
// only of the bytes its grammar allows; otherwise 0.
func refSeqEnd(b []byte, p, lim int) int {
	lim = min(lim, p+maxEscape)
	if p+1 >= lim {
		return 0
	}
	c := b[p+1]
	switch {
	case c == '[':
		for k := p + 2; k < lim; k++ {
			switch c := b[k]; {
			case c >= 0x20 && c <= 0x3f:
			case c >= 0x40 && c <= 0x7e:
				return k + 1
			default:
				return 0
			}
		}
	case c >= 0x20 && c <= 0x2f:
		for k := p + 2; k < lim; k++ {
			switch c := b[k]; {
			case c >= 0x20 && c <= 0x2f:
			case c >= 0x30 && c <= 0x7e:
				return k + 1
			default:
				return 0
			}
		}
	case strings.IndexByte("]PX^_", c) >= 0:
	case c >= 0x30 && c <= 0x7e:
		return p + 2
	}
	return 0
}

// skimModel checks a state (j, hs, cnt) that skim's loop returned having
// started at j0 with hs0 and cnt0: b[j0:j] holds only what skim may pass
// (j is not inside a sequence), no stretch between hard breaks in it has
// minDigits visible digits (with cnt0 for the one from hs0), hs is hs0 or
// follows a hard break outside any sequence, cnt is at least the visible
// digits from hs to j and below minDigits, and the stretch from hs is not
// so long that the hold bound could matter.
func skimModel(b []byte, j0, hs0, cnt0, j, hs, cnt int) error {
	if j < j0 || j > len(b) || hs < hs0 || hs > j || cnt < 0 || cnt >= minDigits {
		return fmt.Errorf("state %d, %d, %d out of bounds", j, hs, cnt)
	}
	h, d := hs0, cnt0 // the model's stretch start and its digits
	hsOK := hs == hs0
	for p := j0; p < j; {
		switch c := b[p]; {
		case c >= '0' && c <= '9':
			d++
			p++
		case c == ' ' || c == '-':
			p++
		case c == escByte:
			e := refSeqEnd(b, p, j)
			if e == 0 {
				return fmt.Errorf("passes %q at %d, no sequence skim may pass (or not complete by %d)", b[p:min(p+8, len(b))], p, j)
			}
			p = e
		case c < 0x20 && (c < '\t' || c > '\r') && c != 0x18 && c != 0x1a, c == 0x7f:
			return fmt.Errorf("passes control %#x at %d", c, p)
		default: // a hard break: visible, neither digit nor separator
			h, d = p+1, 0
			p++
			if h == hs {
				hsOK = true
			}
		}
		if d >= minDigits {
			return fmt.Errorf("passes %d visible digits from %d (to %d)", d, h, p)
		}
		if p-h > skimSpan+maxEscape+32 {
			return fmt.Errorf("passes a stretch of %d bytes from %d", p-h, h)
		}
	}
	if !hsOK {
		return fmt.Errorf("stretch start %d does not follow a hard break", hs)
	}
	if hs == h && d > cnt || hs > h {
		return fmt.Errorf("stretch from %d: %d digits counted, the model has %d from %d", hs, cnt, d, h)
	}
	if hs < h {
		// An earlier break: the digits from hs to j, all of them.
		n := 0
		if hs == hs0 {
			n = cnt0
		}
		for p := max(hs, j0); p < j; {
			if b[p] == escByte {
				p = refSeqEnd(b, p, j)
				continue
			}
			if b[p]-'0' <= 9 {
				n++
			}
			p++
		}
		if n > cnt {
			return fmt.Errorf("stretch from %d: %d digits counted, the model has %d", hs, cnt, n)
		}
	}
	return nil
}

// checkAVX2Model runs skimAVX2 (if this machine has it) and skim's loop
// on b from j0 with a fresh stretch there, and holds both to skimModel.
func checkAVX2Model(t *testing.T, b []byte, j0 int) {
	t.Helper()
	if hasSkimAVX2 {
		// A fresh stretch, and one that started before j0 with digits
		// in it (the assembly starting inside a stretch).
		for _, st := range [][2]int{{j0, 0}, {max(0, j0-7), 12 - j0%4}, {max(0, j0-skimSpan+20), j0 % 3}} {
			j, hs, cnt := skimAVX2(b, j0, st[0], st[1])
			if err := skimModel(b, j0, st[0], st[1], j, hs, cnt); err != nil {
				t.Fatalf("skimAVX2 from %d (hs %d, cnt %d) on %q: %v", j0, st[0], st[1], b, err)
			}
			if len(b)-j0 < 32 && j != j0 {
				t.Fatalf("skimAVX2 from %d on %q: moves with no whole block", j0, b)
			}
		}
	}
	j, hs, cnt := j0, j0, 0
	for range len(b) + 1 {
		j, hs, cnt = skimRun(b, j, hs, cnt)
		if err := skimModel(b, j0, j0, 0, j, hs, cnt); err != nil {
			t.Fatalf("skimRun from %d on %q: %v", j0, b, err)
		}
		if j+8 > len(b) {
			return
		}
		var ok bool
		if j, hs, cnt, ok = word(b, j, hs, cnt); !ok {
			return
		}
		if err := skimModel(b, j0, j0, 0, j, hs, cnt); err != nil {
			t.Fatalf("word from %d on %q: %v", j0, b, err)
		}
	}
	t.Fatalf("skim's loop on %q does not end", b)
}

// guardArea returns a function that copies b to the end of a buffer whose
// next page is unreadable (on Linux), so that a read past its end faults.
func guardArea(t *testing.T) func([]byte) []byte {
	g := guarded(t, make([]byte, 8192))
	return func(b []byte) []byte {
		d := g[len(g)-len(b):]
		copy(d, b)
		return d
	}
}

// avxBytes are byte values worth trying at every lane: every class skim
// tells apart and the edges of its compares.
var avxBytes = []byte{
	0x00, 0x07, 0x08, 0x09, 0x0a, 0x0d, 0x0e, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f,
	' ', '!', '%', ',', '-', '.', '/', '0', '5', '9', ':', ';', '?', '@', 'B', 'D', '[',
	']', '_', 'm', '~', 0x7f, 0x80, 0x9b, 0xbf, 0xc2, 0xc3, 0xe2, 0xfe, 0xff,
}

// TestSkimAVX2EveryLane puts every byte class at every one of the 32 lanes
// of a block, between digit groups that make minDigits if it joins them
// and between parts of a CSI sequence, from every start in the block,
// before a guarded page and with more after.
func TestSkimAVX2EveryLane(t *testing.T) {
	t.Parallel()
	place := guardArea(t)
	shapes := []func(v byte) string{
		func(v byte) string { return "123456" + string(v) + "1234567" },
		func(v byte) string { return "1 2 3 4 5 6" + string(v) + " 7 8 9 0 1 2 3" },
		func(v byte) string { return "12345\x1b[3" + string(v) + "m12345678" },
		func(v byte) string { return "12345\x1b" + string(v) + "12345678 x" },
		func(v byte) string { return "123456\x1b[" + string(v) + "1234567" },
		func(v byte) string { return "abc" + string(v) + "\x1b[m123456789012" },
	}
	for _, shape := range shapes {
		for _, v := range avxBytes {
			s := shape(v)
			for lane := range 32 {
				for _, tail := range []string{"", "ab", strings.Repeat("x", 40), strings.Repeat("1-", 20)} {
					pre := strings.Repeat("ab", 40)[:lane+32]
					in := []byte(pre + s + tail)
					checkAVX2Model(t, place(in), 0)
					checkAVX2Model(t, in, lane)
				}
			}
		}
	}
}

// TestSkimAVX2JoinAcrossBlocks splits 13 visible digits into two groups
// joined by transparent bytes (sequences of every length and kind, CAN
// and SUB that abort one, ignored controls) placed at every offset of a
// block, so that the digits join across 32-byte blocks.
func TestSkimAVX2JoinAcrossBlocks(t *testing.T) {
	t.Parallel()
	place := guardArea(t)
	var joins []string
	for n := range 45 {
		joins = append(joins,
			"\x1b["+strings.Repeat("1", n)+"m",
			"\x1b["+strings.Repeat(";", n)+"H",
			"\x1b["+strings.Repeat(" ", n)+"q",
			"\x1b["+strings.Repeat("?", n)+"@",
			"\x1b"+strings.Repeat("(", n+1)+"B",
		)
	}
	joins = append(joins, "\x1b7", "\x1b=", "\x1b\x18", "\x1b[1\x18", "\x1b[\x1a", "\x1b(\x18",
		"\x00", "\x07", "\x1f", "\x7f", "\x1b[3\x00m", "\x1b\x1b[m", "\x1b[m\x1b[m", " ", "-", "\x1b[m \x1b[m")
	for _, jn := range joins {
		for split := 1; split < 13; split += 5 {
			s := "1234567890123"
			for off := range 34 {
				pre := strings.Repeat("xy", 40)[:off+32]
				in := []byte(pre + s[:split] + jn + s[split:] + " ok")
				checkAVX2Model(t, place(in), 0)
				checkAVX2Model(t, place(in[:len(in)-3]), 0)
				checkAVX2Model(t, in, off)
			}
		}
	}
}

// TestSkimAVX2ShortGuarded runs skimAVX2 and skim's loop from every start
// of every buffer of 0 to 100 bytes placed right before a guarded page:
// sequences cut at the end, ESC as the last byte, a CSI's '[' as the
// last, a stretch that starts inside a block.
func TestSkimAVX2ShortGuarded(t *testing.T) {
	t.Parallel()
	place := guardArea(t)
	bodies := []string{
		strings.Repeat("ab 12 ", 20),
		strings.Repeat("\x1b[m", 40),
		strings.Repeat("1\x1b[31m", 20),
		strings.Repeat("x\t", 60),
		strings.Repeat("\x18a", 60),
		strings.Repeat(" ", 120),
		strings.Repeat("ab\x1b[1;2;3;4;5;6;7;8;9;10m", 6),
		strings.Repeat("\xc3\xa9", 60),
	}
	for _, body := range bodies {
		for n := 0; n <= 100; n++ {
			for _, end := range []string{"", "\x1b", "\x1b[", "\x1b[1", "\x1b[1;", "\x1b(", "1"} {
				if len(end) > n {
					continue
				}
				in := []byte(body[:n-len(end)] + end)
				g := place(in)
				for j := range n + 1 {
					checkAVX2Model(t, g, j)
				}
			}
		}
	}
}

// TestSkimAVX2WriterEveryCut feeds inputs crafted around the AVX2 loop's
// edges (a PAN joined across blocks by sequences, after stretches that
// start mid-block) to a Writer split at every offset, under every
// setting, and to Mask, with and without skim.
func TestSkimAVX2WriterEveryCut(t *testing.T) {
	t.Parallel()
	pans := []string{
		"4111\x1b[31m1111\x1b[0m1111\x1b[1;2;3;4;5;6;7;8;9;10;11;12;13m1111",
		"41111\x1b\x18111111\x1b[\x1a11111",
		"4111 1111\x1b(B 1111\x1b[" + strings.Repeat("0", 30) + "m 1111",
		"411111\x1b[m\x1b[m\x1b[m\x1b[m\x1b[m\x1b[m\x1b[m\x1b[m\x1b[m1111111111",
	}
	for k, p := range pans {
		for pad := 0; pad < 32; pad += 3 {
			in := []byte(strings.Repeat("ab\x1b[m\t", 20)[:40+pad] + " " + p + " ok\n" + filler[:70])
			checkSkim(t, in, k < 2 && pad%9 == 0, true)
		}
	}
}

// TestSkimAVX2Bytes holds skim with the AVX2 loop to the exact scanner
// on buffers of short pieces, every piece at every alignment.
func TestSkimAVX2Pieces(t *testing.T) {
	t.Parallel()
	for _, c := range []string{
		"4111111111111111",
		"4111 1111 1111 1111",
		"4111\x1b[m1111\x1b[m1111\x1b[m1111",
		"41111111\x1b\x1811111111",
		"41111111\x1b[\x1811111111",
		"4111111111111111\x1b",
	} {
		for pad := range 40 {
			in := bytes.Repeat([]byte("x"), pad)
			in = append(in, strings.Repeat("ab \x1b[0m", 8)...)
			in = append(in, c...)
			in = append(in, " end\x1b[K\n"...)
			for _, input := range []bool{false, true} {
				cfg := Config{Detect: DetectLuhn, Input: input}
				if got, want := maskExact(in, cfg, false), maskExact(in, cfg, true); !bytes.Equal(got, want) {
					t.Fatalf("%q: skim changes the output\ngot: %q\nwant %q", in, got, want)
				}
			}
		}
	}
}

// TestSkimAVX2LongStretch runs skimAVX2 over stretches without a hard
// break close to skimSpan bytes long (spaces, dashes, CSI sequences, few
// digits), from every offset of a block, so that it must stop before the
// stretch could reach the hold bound.
func TestSkimAVX2LongStretch(t *testing.T) {
	t.Parallel()
	place := guardArea(t)
	for _, unit := range []string{" ", "- ", "\x1b[m", "1 \x1b[1;2H  ", "\x1b[" + strings.Repeat("0", 28) + "m"} {
		for n := skimSpan - 70; n < skimSpan+70; n += 7 {
			body := strings.Repeat(unit, n/len(unit)+1)[:n]
			for off := range 32 {
				in := []byte(strings.Repeat("x", off+1) + body + "12 x" + strings.Repeat(" ", 40))
				checkAVX2Model(t, place(in), off+1)
				checkAVX2Model(t, in, 0)
			}
		}
	}
}
