package mask

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
)

// A hostile review of skim: inputs a user who controls what a target
// prints could craft to make skim pass over a PAN the exact scanner masks,
// and Writer sessions (flushes, previews, echo releases between writes)
// that skim must not change either.

// attackSeq returns an escape sequence of exactly n bytes (n >= 3) of the
// kind k: a CSI with parameters then intermediates, a CSI that mixes them,
// an nF sequence, or a CSI with a digit-heavy body.
func attackSeq(k, n int) string {
	body := n - 3
	switch k % 4 {
	case 0:
		return "\x1b[" + strings.Repeat("1", body/2) + strings.Repeat("$", body-body/2) + "p"
	case 1:
		return "\x1b[" + strings.Repeat("$1", body/2) + strings.Repeat(";", body%2) + "~"
	case 2:
		return "\x1b" + strings.Repeat("(", body+1) + "0"
	}
	return "\x1b[" + strings.Repeat("9", body) + "|"
}

// attackTokens are the pieces FuzzSkimAttack builds inputs from, beyond
// skimTokens: sequences at the 64-byte limit, C1 bytes, CAN and SUB inside
// sequences, ESC ESC, ESC and a digit, and non-word finals next to digits.
var attackTokens = func() []string {
	t := []string{
		"\x1b\x1b[m", "\x1b[\x18", "\x1b[1\x1a", "\x1b(\x18", "\x1b4", "\x1b9", "\x1b0",
		"\x1b[1$p", "\x1b[$1p", "\x1b[?25h", "\x1b[>c", "\x1b #8", "\x1b(B", "\x1b)0",
		"\x9b", "\x9b31m", "\x90", "\x9c", "\x84", "\xc2\x9b", "\xe2\x80\x94",
		"\x1b[1~", "\x1b[2|", "\x1b[3@", "\x1b[4`", "\x1b[5^", "\x1b[6{", "\x1b[7}",
		"~", "|", "@", "`", "^", "{", "}", "/", "!", "#", "&", "*", "(", ")",
		"\x1b]0;4111111111111111\x07", "\x1bP1$r", "\x1b\\", "\x1bX", "\x1b^", "\x1b_",
		"4111", "1111", "4111111111111111", "378282246310005", "5555555555554444",
		"%B", "B", "D", "d", "%", "D2512", "d2513", "-", " ", "12-34-", "1-2-",
		"\b", "\x7f", "\x03", "\x15", "\x00", "\x07", "\x0e", "\x18", "\x1a",
		"\t", "\n", "\r", "\v", "\f", "x", "_", "caf\xc3\xa9 ",
	}
	for n := 60; n <= 67; n++ {
		for k := range 4 {
			t = append(t, attackSeq(k, n))
		}
	}
	return t
}()

// attackInput builds an input from data: each byte picks a token; bytes
// from 0xe0 pick a long stretch (filler, spaces, short digit groups, a
// sequence repeated) of up to several KiB, so that inputs reach skim's
// span and back-off limits.
func attackInput(data []byte) []byte {
	var b []byte
	for k, c := range data {
		if c >= 0xe0 {
			n := int(c-0xdf) * 97
			switch k % 6 {
			case 0:
				b = append(b, strings.Repeat("abc ", n)...)
			case 1:
				b = append(b, strings.Repeat(" ", n*3)...)
			case 2:
				b = append(b, strings.Repeat("12 ab ", n)...)
			case 3:
				b = append(b, strings.Repeat("\x1b[0m", n)...)
			case 4:
				b = append(b, strings.Repeat("1234567890 x", n)...)
			default:
				b = append(b, strings.Repeat(attackTokens[int(c)%len(attackTokens)], n/4+1)...)
			}
			continue
		}
		all := len(skimTokens) + len(attackTokens)
		if p := int(c) % all; p < len(skimTokens) {
			b = append(b, skimTokens[p]...)
		} else {
			b = append(b, attackTokens[p-len(skimTokens)]...)
		}
	}
	return b
}

// session is a Writer session: writes cut at cuts, with a Flush after
// the writes whose index is in flushes, under cfg; it returns what the
// underlying writer and the preview got.
func session(t testing.TB, in []byte, cuts []int, flushes map[int]bool, cfg Config, exact bool) (string, string) {
	t.Helper()
	var out, pre bytes.Buffer
	cfg.Deadline = -1
	if cfg.Preview != nil {
		cfg.Preview = &pre
	}
	w := NewWriter(&out, cfg)
	w.sc.exact = exact
	prev := 0
	for k, c := range append(cuts, len(in)) {
		if n, err := w.Write(in[prev:c]); n != c-prev || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if len(w.buf) > MaxHold {
			t.Fatalf("holding %d bytes > MaxHold", len(w.buf))
		}
		if flushes[k] {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		prev = c
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String(), pre.String()
}

// checkSession fails unless a session masks in the same with and without
// skim, for cuts and flushes drawn from rng under cfg.
func checkSession(t *testing.T, rng *rand.Rand, in []byte, cfg Config) {
	t.Helper()
	var cuts []int
	switch rng.IntN(3) {
	case 0:
		cuts = skimCuts(rng, len(in))
	case 1:
		cuts = randomCuts(rng, len(in))
	default: // long writes, so skim runs and backs off inside them
		for c := rng.IntN(9000); c < len(in); c += 1 + rng.IntN(9000) {
			cuts = append(cuts, c)
		}
	}
	flushes := map[int]bool{}
	for k := range cuts {
		if rng.IntN(4) == 0 {
			flushes[k] = true
		}
	}
	out, pre := session(t, in, cuts, flushes, cfg, true)
	gout, gpre := session(t, in, cuts, flushes, cfg, false)
	if gout != out || gpre != pre {
		t.Fatalf("%v preview %v echo %v: cuts %v flushes %v: skim changes the output\n in: %q\ngot: %q %q\nwant %q %q",
			cfg.Mode, cfg.Preview != nil, cfg.Echo != nil, cuts, flushes, in, gout, gpre, out, pre)
	}
}

// attackConfig picks a Config from rng: any detection, mode and input
// setting, with or without a preview and an echo that releases after a
// digit or a space.
func attackConfig(rng *rand.Rand) Config {
	cfg := Config{Mode: modes[rng.IntN(len(modes))], Detect: DetectBrands, Input: rng.IntN(2) == 0}
	if rng.IntN(2) == 0 {
		cfg.Detect = DetectLuhn
	}
	if rng.IntN(2) == 0 {
		cfg.Preview = &bytes.Buffer{} // replaced by session
	}
	if rng.IntN(3) == 0 {
		cfg.Echo = func(tail []byte) bool { c := tail[len(tail)-1]; return c == ' ' || c-'0' <= 9 }
	}
	return cfg
}

// FuzzSkimAttack holds the scanner with skim to the scanner without it on
// inputs of up to 64 KiB built from hostile pieces, whole, in chunkings,
// and in Writer sessions with flushes, previews and echo releases.
func FuzzSkimAttack(f *testing.F) {
	f.Add([]byte{0, 1, 2, 0xe3, 70, 71, 72, 0xf5, 80, 81, 82})
	f.Add([]byte{0xe6, 0xea, 0xff, 0xfe, 100, 101, 102, 103, 104})
	f.Add([]byte(strings.Repeat("\xe4\x10\x20\x30\xf1", 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 256 {
			return
		}
		b := attackInput(data)
		if len(b) > 64<<10 {
			return
		}
		h := fnv.New64a()
		h.Write(data)
		rng := rand.New(rand.NewPCG(h.Sum64(), 99))
		cfg := attackConfig(rng)
		strict := Config{Mode: cfg.Mode, Detect: cfg.Detect, Input: cfg.Input}
		want := maskExact(b, strict, true)
		if got := maskExact(b, strict, false); !bytes.Equal(got, want) {
			t.Fatalf("%v %v input %v: skim changes the output\n in: %q\ngot: %q\nwant %q", cfg.Detect, cfg.Mode, cfg.Input, b, got, want)
		}
		checkSession(t, rng, b, cfg)
		if len(b) >= skimMin {
			checkHandBack(t, b, cfg.Input)
		}
	})
}

// TestSkimAttackSequences puts a PAN on either side of sequences of 60 to
// 67 bytes of every kind, with joiners and non-word finals around, after
// filler of every alignment, whole and in chunkings (cut at every point at
// the 64-byte limit).
func TestSkimAttackSequences(t *testing.T) {
	t.Parallel()
	for n := 60; n <= 67; n++ {
		for k := range 4 {
			seq := attackSeq(k, n)
			for _, c := range []string{
				"4111 1111" + seq + " 1111 1111 ok\n",
				"4111" + seq + "111111111111|\n",
				"x " + seq + "4111111111111111~\n",
				"%" + seq + "B4111111111111111^\n",
				"4111111111111111" + seq + "D2512 ok\n",
			} {
				for pad := range 9 {
					in := []byte(filler[:len(filler)-pad] + "abcdefgh"[:pad] + c + filler)
					checkSkim(t, in, pad == 0 && n == maxEscape, true)
				}
			}
		}
	}
}

// TestSkimAttackLong feeds long inputs that make skim stop, back off and
// start again, with PANs placed around where it starts again.
func TestSkimAttackLong(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(18, 18))
	pieces := []string{"4111111111111111 ", "12 34 56 ", "1234567890 ", "abc def ", "\x1b[0m", "\b", "\x00", "%B", "\n"}
	for range 40 {
		var b []byte
		for len(b) < 40<<10 {
			p := pieces[rng.IntN(len(pieces))]
			b = append(b, strings.Repeat(p, 1+rng.IntN(300))...)
		}
		for _, input := range []bool{false, true} {
			cfg := Config{Mode: modes[rng.IntN(len(modes))], Input: input}
			want := maskExact(b, cfg, true)
			if got := maskExact(b, cfg, false); !bytes.Equal(got, want) {
				t.Fatal("skim changes the output of Mask")
			}
			checkSession(t, rng, b, attackConfig(rng))
		}
	}
}

// skimWorst is input made to waste skim's work: each cycle gives skim
// just enough text to pass (so that its back-off stays at its shortest),
// then a stretch of joiners of about skimSpan bytes that ends on what
// makes skim stop (an ignored control), so that the exact scanner reads
// the stretch again.
func skimWorst(pass string, passLen int, prefix, stretch string) []byte {
	var c []byte
	for len(c) < max(528, passLen) {
		if pass == "" || len(c) < 528 && passLen == 0 {
			c = append(c, "abcdefg\n"...)
		} else {
			c = append(c, pass...)
		}
	}
	c = append(c, prefix...)
	for n := len(c); len(c) < n+skimSpan-40; {
		c = append(c, stretch...)
	}
	c = append(c, 0)
	return bytes.Repeat(c, (8<<20)/len(c))
}

var skimWorstCases = []struct {
	name, pass    string
	passLen       int
	prefix, strch string
}{
	{"spaces", "", 0, "", " "},
	{"digits", "", 0, "1 2 3 4 5 6 7 8 9 0 1 2", " "},
	{"digits-csi", "", 0, "1 2 3 4 5 6 7 8 9 0 1 2", "\x1b[m"},
	{"csi", "", 0, "", "\x1b[m"},
	{"csi-long", "", 0, "", "\x1b[" + strings.Repeat("1;", 30) + "m"},
	{"nf", "", 0, "", "\x1b(B"},
	{"esc", "", 0, "", "\x1b7"},
	{"xB", "", 0, "xB", " "},
	{"xB-letters", "", 0, strings.Repeat("abcdefg\n", 100) + "xB", " "},
	{"csi-passed", "x\x1b[m", 1300, "1 2 3 4 5 6 7 8 9 0 1 2", "\x1b[m"},
	{"esc-passed", "x\x1b7", 1300, "1 2 3 4 5 6 7 8 9 0 1 2", "\x1b7"},
	{"digits-passed", "x1 2 3 4 5 6", 1300, "1 2 3 4 5 6 7 8 9 0 1 2", " "},
	{"csi-passed4", "x\x1b[m", 4500, "1 2 3 4 5 6 7 8 9 0 1 2", "\x1b[m"},
	{"esc-passed4", "x\x1b7", 4500, "1 2 3 4 5 6 7 8 9 0 1 2", "\x1b7"},
	{"can", "\x18", 1300, "", "\x18"},
	{"csi-passed9", "x\x1b[m", 9200, "1 2 3 4 5 6 7 8 9 0 1 2", "\x1b[m"},
}

// BenchmarkSkimWorst measures Mask of skimWorst inputs with skim and
// without it (exact).
func BenchmarkSkimWorst(b *testing.B) {
	for _, tc := range skimWorstCases {
		in := skimWorst(tc.pass, tc.passLen, tc.prefix, tc.strch)
		buf := make([]byte, len(in))
		for _, exact := range []bool{true, false} {
			b.Run(fmt.Sprintf("%s/exact=%v", tc.name, exact), func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				for b.Loop() {
					copy(buf, in)
					s := scanner{exact: exact}
					s.scan(buf, 0, true)
				}
			})
		}
	}
}

// TestSkimBacksOffAfterWaste checks that skim backs off further when it
// hands back more than it passed: a 'B' whose prev2 it cannot tell makes
// it hand back where it started, and a long stretch of sequences that ends
// on an ignored control is read in vain; either way the exact scanner
// reads it all again, so skim must not run again soon.
func TestSkimBacksOffAfterWaste(t *testing.T) {
	t.Parallel()
	letters := strings.Repeat("abcdefg\n", 64)
	for _, tc := range []struct {
		name string
		in   string
		back int // where skim hands back
	}{
		{"xB", letters + "xB 1 2 3\x00" + filler, 0},
		{"sequences", letters + strings.Repeat("\x1b[m", 100) + "\x00" + filler, len(letters)},
	} {
		s := scanner{}
		b := []byte(tc.in)
		if p := s.skim(b, 0); p != tc.back {
			t.Fatalf("%s: skim hands back at %d, want %d", tc.name, p, tc.back)
		}
		if s.skimGap <= skimBack {
			t.Errorf("%s: skim waits %d bytes after wasting its reading, want more than %d", tc.name, s.skimGap, skimBack)
		}
	}
}

// TestSkimAttackEveryByte inserts every byte value, alone, after an ESC
// and before one, at every point of card data in the shapes the scanner
// has rules for, at every alignment, and holds skim to the exact scanner.
func TestSkimAttackEveryByte(t *testing.T) {
	t.Parallel()
	contexts := []string{
		"4111 1111 1111 1111 ok",
		"%B4111111111111111^",
		"4111111111111111D2512",
		"12-34-4111111111111111 ",
		"3782-822463-10005.",
		"x 41111111\x1b[m11111111|",
	}
	cfgs := []Config{{Mode: ModeFull, Detect: DetectBrands}, {Mode: ModeFull, Detect: DetectLuhn, Input: true}}
	for _, ctx := range contexts {
		for pos := range len(ctx) + 1 {
			for v := range 256 {
				b := string([]byte{byte(v)})
				for k, c := range []string{b, "\x1b" + b, b + "\x1b[m"} {
					pad := (pos + v + k) % 8
					in := []byte(filler[:len(filler)-pad] + ctx[:pos] + c + ctx[pos:] + filler)
					for _, cfg := range cfgs {
						if got, want := maskExact(in, cfg, false), maskExact(in, cfg, true); !bytes.Equal(got, want) {
							t.Fatalf("%v input %v: skim changes the output\n in: %q\ngot: %q\nwant %q", cfg.Detect, cfg.Input, in, got, want)
						}
					}
				}
			}
		}
	}
}

// TestSkimWordReadsBreaks checks that word reads the controls that are
// hard breaks (HT to CR, CAN, SUB) with the other bytes of its eight: it
// read them one call a byte, which made text dense with CAN (a target
// may print any bytes) 30 times slower to skim than to scan exactly.
func TestSkimWordReadsBreaks(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"\x18\x18\x18\x18\x18\x18\x18\x18", "ab\x1a12\t\r\x18", "\x18\n\v\f 1 2"} {
		b := []byte(in + filler)
		j, hs, cnt, ok := word(b, 0, 0, 0)
		last := strings.LastIndexAny(in, "\t\n\v\f\r\x18\x1aab") + 1
		want := strings.Count(in[last:], "1") + strings.Count(in[last:], "2")
		if j != 8 || hs != last || cnt != want || !ok {
			t.Errorf("%q: word = %d, %d, %d, %v; want 8, %d, %d, true", in, j, hs, cnt, ok, last, want)
		}
	}
}
