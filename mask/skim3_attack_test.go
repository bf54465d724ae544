package mask

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// A hostile review of skimAVX2's whole-block passes (several CSI
// sequences a block found from its masks, digit-heavy blocks cut by
// breaks, eight-byte steps with a break): blocks built from the pieces
// those passes tell apart, every state held to skimModel and skim's
// output to the exact scanner's.

// skim3Pieces are the pieces skim3Block builds blocks of: digits,
// separators, hard breaks of every kind, CSI sequences well formed
// (digit and ';' parameters, private markers, a colon, intermediates)
// and broken ones (a control, DEL, CAN, SUB, a high byte, another ESC
// or ESC '[' inside; ESC ESC '['; no final byte), other sequences and
// ignored controls.
var skim3Pieces = []string{
	"1", "12", "1234", "123456", "9", "0",
	" ", "-", " -",
	"a", ":", "x", ".", "\n", "\r", "\t", "\x18", "\x1a", "\xc3\xa9", "\x80", "\x7e",
	"\x1b[m", "\x1b[1m", "\x1b[31m", "\x1b[01;34m", "\x1b[1;2;3;4;5;6;7H",
	"\x1b[?25l", "\x1b[<0;12;3M", "\x1b[=1c", "\x1b[>0q", "\x1b[38:2:1:2:3m",
	"\x1b[ q", "\x1b[1 !/p", "\x1b[123456789012m", "\x1b[;;;;;;;;;;;;;;;;;;;m",
	"\x1b[1\x7fm", "\x1b[1\x18m", "\x1b[1\x1am", "\x1b[1\x00m", "\x1b[1\x9bm",
	"\x1b[1\x1b[m", "\x1b\x1b[m", "\x1b[\x1b[2m", "\x1b[1;", "\x1b[", "\x1b",
	"\x1b[1~", "\x1b[1\x7e", "\x1b[\x7f",
	"\x1b7", "\x1b(B", "\x1b]0;t\x07", "\x00", "\x07", "\x7f", "\x08",
}

// skim3Block returns a buffer of about n bytes from skim3Pieces, digits
// and transparent sequences more likely than the rest.
func skim3Block(rng *rand.Rand, n int) []byte {
	var b []byte
	for len(b) < n {
		var p string
		switch rng.IntN(4) {
		case 0, 1:
			p = skim3Pieces[rng.IntN(9)] // digits and separators
		default:
			p = skim3Pieces[rng.IntN(len(skim3Pieces))]
		}
		b = append(b, p...)
	}
	return b
}

// TestSkim3Random holds skimAVX2 to skimModel from every start of random
// buffers of skim3Pieces, with fresh stretches and ones with digits
// counted before, and skim to the exact scanner's output from start 0.
func TestSkim3Random(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 33))
	place := guardArea(t)
	n := 3000
	if testing.Short() {
		n = 500
	}
	for range n {
		b := skim3Block(rng, 32+rng.IntN(140))
		g := place(b)
		for j := range min(len(b), 40) {
			checkAVX2Model(t, g, j)
			if hasSkimAVX2 {
				for cnt := range minDigits {
					aj, ahs, acnt := skimAVX2(g, j, j, cnt)
					if err := skimModel(g, j, j, cnt, aj, ahs, acnt); err != nil {
						t.Fatalf("skimAVX2 from %d (cnt %d) on %q: %v", j, cnt, b, err)
					}
				}
			}
		}
		checkSkimRun(t, b, 0, 0, 0)
	}
}

// TestSkim3CSIEveryLane puts one or several CSI sequences, well formed
// and broken, at every lane of a block between digit groups whose digits
// reach minDigits only if the sequences join them (and must, being
// transparent), with cnt from before, and a PAN cut by them that must be
// masked.
func TestSkim3CSIEveryLane(t *testing.T) {
	t.Parallel()
	place := guardArea(t)
	seqs := []string{
		"\x1b[m", "\x1b[31m", "\x1b[1;2;3m\x1b[0m", "\x1b[m\x1b[m\x1b[m", "\x1b[?1049h",
		"\x1b[<1;2M", "\x1b[38:5:1m", "\x1b[ q", "\x1b[1 !p", "\x1b\x1b[m", "\x1b[\x1b[m",
		"\x1b[1\x7fm", "\x1b[1\x18m", "\x1b[1\x9bm", "\x1b[" + strings.Repeat(";", 26) + "m",
		"\x1b[" + strings.Repeat("1", 27) + "m", "\x1b[m \x1b[m", "\x1b[m-\x1b[m",
	}
	for _, sq := range seqs {
		for _, d := range [][2]string{{"123456", "7890123"}, {"12345", "6789012"}, {"4111", "111111111111"}, {"1 2 3 4", " 5 6 7 8 9 0 1 2 3"}} {
			for lane := range 34 {
				pre := strings.Repeat("ab", 40)[:lane+32]
				for _, tail := range []string{"", " ok", "9x", strings.Repeat("1 ", 20)} {
					in := []byte(pre + d[0] + sq + d[1] + tail)
					checkAVX2Model(t, place(in), 0)
					checkAVX2Model(t, in, lane)
					checkSkimRun(t, in, lane, lane, 0)
					checkSkimRun(t, in, lane+32-lane%8, lane+32-lane%8, 12)
				}
			}
		}
	}
	for lane := 0; lane < 40; lane += 3 {
		pre := strings.Repeat("ab", 40)[:lane+32]
		checkSkim(t, []byte(pre+"4111\x1b[31m1111\x1b[0m 1111 1111 ok\n"+filler[:64]), false, true)
		checkSkim(t, []byte(pre+"4111\x1b[31m1111\x1b[0m1111\x1b[1;2m1111 ok\n"+filler[:64]), false, true)
	}
}

// TestSkim3DigitBlocks: blocks and steps whose digits reach minDigits with
// cnt, cut by breaks at every place, several breaks, digits after the last
// break carried on, separators (not breaks) and transparent bytes between
// digits, with every cnt from before.
func TestSkim3DigitBlocks(t *testing.T) {
	t.Parallel()
	place := guardArea(t)
	shapes := []string{
		"123456789012:123456789012:123456789012",
		"12345678901:1234567:12345678901234567890",
		"1:2:3:4:5:6:7:8:9:0:1:2:3:4:5:6:7:8:9:0",
		"123456789012a1234567890123",
		"12345678901 1 a 12 34 56 78 90 12 3",
		"4111 1111 1111 1111:4111-1111-1111-1111",
		"1234567\x1b[m12345:12345\x1b[1m67890123",
		"123456\x00789012:345678\x7f901234",
		"12\n34567890123\n12345678901",
		"123456789012\r\n123456789012\r\n1234567890123",
	}
	for _, s := range shapes {
		for lane := range 34 {
			pre := strings.Repeat("xy", 40)[:lane+32]
			for _, tail := range []string{"", "4", "456 x", " 1 2 3 4 5 6 7 8 9 0 1 2 3"} {
				in := []byte(pre + s + tail)
				checkAVX2Model(t, place(in), 0)
				if hasSkimAVX2 {
					for cnt := range minDigits {
						for _, hs := range []int{lane, max(0, lane-5)} {
							j, h, c := skimAVX2(in, lane, hs, cnt)
							if err := skimModel(in, lane, hs, cnt, j, h, c); err != nil {
								t.Fatalf("skimAVX2 from %d (hs %d, cnt %d) on %q: %v", lane, hs, cnt, in, err)
							}
						}
					}
				}
				checkSkimRun(t, in, lane, lane, lane%minDigits)
			}
		}
	}
}

// TestSkim3StretchLimit places stretches with no break, digits few, near
// skimSpan bytes long, started at every offset of a block and followed by
// blocks the new passes take (CSI sequences, digits cut by breaks), so
// that the span limit is met on each of them.
func TestSkim3StretchLimit(t *testing.T) {
	t.Parallel()
	place := guardArea(t)
	ends := []string{"\x1b[m\x1b[1m", "123456:1234567", "12\x1b[1;2m34", "1234567:", "::::::::"}
	for off := range 33 {
		for _, n := range []int{skimSpan - 40, skimSpan - 24, skimSpan - 8, skimSpan, skimSpan + 8} {
			for _, e := range ends {
				in := []byte("ab" + strings.Repeat("x", off) + ":" + strings.Repeat(" ", n) + strings.Repeat(e, 8) + " 12")
				checkAVX2Model(t, place(in), 0)
				checkAVX2Model(t, in, off)
			}
		}
	}
}

// TestSkim3PANSplit cuts card numbers (4-4-4-4 and one group) at random
// places with CSI sequences, which are transparent, and separators, after
// random text from skim3Pieces at every alignment, and holds skim's
// output to the exact scanner's: the digits the sequences join must still
// be judged one number.
func TestSkim3PANSplit(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 55))
	joins := []string{"\x1b[m", "\x1b[31m", "\x1b[1;2;3m\x1b[0m", "\x1b[?25h", "\x1b[ q", "\x1b[38:5:1m"}
	pans := []string{"4111111111111111", "5555555555554444", "378282246310005"}
	n := 1500
	if testing.Short() {
		n = 300
	}
	for k := range n {
		var p []byte
		pan := pans[k%len(pans)]
		grouped := k%2 == 0 && len(pan) == 16
		for i := range len(pan) {
			if i > 0 && rng.IntN(3) == 0 {
				p = append(p, joins[rng.IntN(len(joins))]...)
			}
			if grouped && i > 0 && i%4 == 0 {
				p = append(p, " -"[k%4/2])
			}
			p = append(p, pan[i])
		}
		pre := skim3Block(rng, rng.IntN(70))
		in := append(append(append(pre, ' '), p...), " ok\n"+filler[:40]...)
		checkSkimRun(t, in, 0, 0, 0)
		if k%100 == 0 {
			checkSkim(t, in, false, true)
		}
	}
}

// TestSkim3CSIExhaustive: one CSI sequence of every parameter length to
// 30 (digits, ';' or '?' then digits, intermediates), at every lane,
// between digit groups of every split of 12 and 13 digits, a hard break
// after, from every cnt: the block passes whole only when fewer than
// minDigits digits join across the sequence.
func TestSkim3CSIExhaustive(t *testing.T) {
	t.Parallel()
	if !hasSkimAVX2 {
		t.Skip("skimAVX2 needs AVX2")
	}
	place := guardArea(t)
	params := []string{"1", ";", "?1", " "}
	for _, pk := range params {
		for l := 0; l <= 30; l++ {
			seq := "\x1b[" + strings.Repeat(pk, 40)[:l] + "m"
			for total := 12; total <= 13; total++ {
				for a := 0; a <= total; a += 2 {
					d := "1234567890123"[:total]
					s := d[:a] + seq + d[a:] + ":"
					for lane := range 32 {
						in := []byte(strings.Repeat("xy", 40)[:lane+32] + s + strings.Repeat(" ", 40))
						g := place(in)
						for _, cnt := range []int{0, 1, 12} {
							j, h, c := skimAVX2(g, lane+32, lane+32, cnt)
							if err := skimModel(g, lane+32, lane+32, cnt, j, h, c); err != nil {
								t.Fatalf("skimAVX2 (cnt %d) on %q: %v", cnt, in, err)
							}
						}
					}
				}
			}
		}
	}
}
