package mask

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
)

// The skim pre-pass must never change the output: these tests hold the
// scanner with it to the scanner without it (exact), which the rest of the
// package's tests hold to the reference, for whole buffers and for a
// Writer fed any chunking.

// maskExact is maskWith with skim on (exact false) or off.
func maskExact(src []byte, cfg Config, exact bool) []byte {
	out := append([]byte(nil), src...)
	s := scanner{mode: cfg.Mode, detect: cfg.Detect, input: cfg.Input, exact: exact}
	s.scan(out, 0, true)
	return out
}

// streamExact is streamWith with skim on (exact false) or off: a session
// without flushes.
func streamExact(t testing.TB, in []byte, cuts []int, cfg Config, exact bool) []byte {
	t.Helper()
	out, _ := session(t, in, cuts, nil, cfg, exact)
	return []byte(out)
}

// skimCuts returns cut points for in: pieces from one byte to a few
// hundred, so that skim runs over whole pieces, stops inside them and
// reaches their ends.
func skimCuts(rng *rand.Rand, n int) []int {
	var cuts []int
	step := 1 + rng.IntN(1+rng.IntN(400))
	for c := rng.IntN(step + 1); c < n; c += 1 + rng.IntN(step) {
		cuts = append(cuts, c)
	}
	return cuts
}

// checkSkim fails unless in is masked the same with and without skim, as
// a whole and in every chunking tried (all single cuts if every is set),
// under every setting; with ref set, also as the reference masks it.
func checkSkim(t *testing.T, in []byte, every, ref bool) {
	t.Helper()
	h := fnv.New64a()
	h.Write(in)
	rng := rand.New(rand.NewPCG(h.Sum64(), 18))
	for _, d := range []Detect{DetectBrands, DetectLuhn} {
		for _, input := range []bool{false, true} {
			cfg := Config{Mode: modes[rng.IntN(len(modes))], Detect: d, Input: input}
			name := fmt.Sprintf("%v %v (input %v)", cfg.Detect, cfg.Mode, cfg.Input)
			want := maskExact(in, cfg, true)
			if got := maskExact(in, cfg, false); !bytes.Equal(got, want) {
				t.Fatalf("%s: skim changes the output\n in: %q\ngot: %q\nwant %q", name, in, got, want)
			}
			if ref {
				if r := refMaskWith(in, cfg); !bytes.Equal(r, want) {
					t.Fatalf("%s: differs from reference\n in: %q\ngot: %q\nref: %q", name, in, want, r)
				}
			}
			cutss := [][]int{nil, skimCuts(rng, len(in)), skimCuts(rng, len(in)), randomCuts(rng, len(in))}
			if every {
				for c := 1; c < len(in); c++ {
					cutss = append(cutss, []int{c})
				}
			}
			for _, cuts := range cutss {
				if got := streamExact(t, in, cuts, cfg, false); !bytes.Equal(got, want) {
					t.Fatalf("%s: cuts %v: skim changes the output\n in: %q\ngot: %q\nwant %q", name, cuts, in, got, want)
				}
			}
		}
	}
}

// filler is terminal text without digits long enough for skim to run.
const filler = "The session was closed by the bastion; see the log for details.\n" +
	"\x1b[32muser\x1b[0m@\x1b[34mhost\x1b[0m:~$ systemctl status upstream.service\r\n"

// skimCases are the boundaries of skim: where it hands the stretch back,
// what it passes over, and what makes it stop.
var skimCases = []string{
	"4111111111111111 ok\n",
	"4111\x1b[31m 1111\x1b[0m 1111 1111 ok\n",
	"4111 1111\x1b(B 1111 1111\x1b[m ok\n",
	"4111 1111 111" + strings.Repeat("\x1b[0m", 20) + "1 1111 ok\n",
	"12.34.56.78 9 and 4111-1111-1111-1111.\n",
	"x4111111111111111 and 4111111111111111x and _4111111111111111\n",
	"%B4111111111111111^DOE/J^25121010000\n",
	"%\x1b[1mB4111111111111111^\n",
	"x\x1b[1mB4111111111111111^\n",
	"%\x00B4111111111111111^\n",
	";4111111111111111=25121010000?\n",
	"4111111111111111D25121010000\n",
	"4111111111111111d2513\n",
	"ansible-tmp-1796508318.0950022-32551-36123456789013 done\n",
	"1-32551-4111-1111-1111-1111 and 13-4111111111111111\n",
	"41111111111111112\b \b and 4111 \b1111 1111 1111\n",
	"4111 1111 1111 1111\x7f2\n",
	"4111 1111 1111 1111\x032 and 4111111111111111\x15 done\n",
	utf16le("4111111111111111\r\n"),
	"\x1b]0;card 4111111111111111\x07 and \x1b]2;4111 1111 1111 1111\x1b\\ ok\n",
	"\x1b]8;;http://example.com/" + strings.Repeat("x", 80) + "\x1b\\4111\x1b]8;;\x1b\\ 1111 1111 1111\n",
	"\x1b[31\nm4111111111111111 and \x1b[\x184111 1111 1111 1111\n",
	"\x1b[" + strings.Repeat("1;", 40) + "m4111 1111 1111 1111\n",
	"4111\x1b[" + strings.Repeat("1;", 40) + "m1111 1111 1111\n",
	"4111 1111 1111 111\x1b",
	"4111 1111 1111 1111\x1b[",
	"\x9b31m4111111111111111\x9b0m and caf\xc3\xa9 4111111111111111\n",
	"4" + strings.Repeat("\x1b[m", 400) + "111111111111111 ok\n",
	"4" + strings.Repeat(" ", 1100) + "1 and 4" + strings.Repeat("\x00", 4100) + "111111111111111\n",
	"4111  1111 1111 1111 and 4111 1111-1111 1111\n",
	"4111\t1111 1111 1111\v4111\f1111\x181111\x1a1111\n",
	"1718000123456,1234567890123456,4111111111111111,5555 5555 5555 4444\n",
	// Made to make skim pass over a PAN: a control or DEL inside a CSI
	// (executed in output, an erase in input), an ESC that hides a digit,
	// UTF-8 inside a CSI, CSIs of 62 to 66 bytes, a stretch at skimSpan,
	// separators skim joins but the scanner does not, a long run of
	// joiners before a PAN.
	"4111 1111\x1b[3\x001m 1111 1111 ok\n",
	"4111 1111\x1b[31\x7fm 1111 1111 ok\n",
	"4111\x1b41111 1111 1111 and 4111\x1b(41111 1111 1111\n",
	"4111 1111\x1b[3\xc3\xa9m 1111 1111 ok\n",
	"4111\x1b[" + strings.Repeat("1", 59) + "m1111 1111 1111\n",
	"4111\x1b[" + strings.Repeat("1", 60) + "m1111 1111 1111\n",
	"4111\x1b[" + strings.Repeat("1", 61) + "m1111 1111 1111\n",
	"4111\x1b[" + strings.Repeat("1", 62) + "m1111 1111 1111\n",
	"4111\x1b[" + strings.Repeat("1", 63) + "m1111 1111 1111\n",
	"4" + strings.Repeat("\x1b[1m", 252) + "111111111111111\n",
	"4" + strings.Repeat("\x1b[1m", 256) + "111111111111111\n",
	"1234567,1234567,4111111111111111.1234567.1234567\n",
	strings.Repeat("-", 2000) + "4111111111111111 " + strings.Repeat(" ", 1500) + "4111111111111111\n",
}

// TestSkimBoundaries masks each case after filler of every length up to
// 16 bytes more (so that it meets skim at every offset in its eight-byte
// steps), cut at every point, with and without skim and as the reference
// does.
func TestSkimBoundaries(t *testing.T) {
	t.Parallel()
	for k, c := range skimCases {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			t.Parallel()
			for pad := range 17 {
				in := []byte(filler[:len(filler)-pad] + "abcdefghijklmnop"[:pad] + c + filler)
				checkSkim(t, in, pad%4 == 0 && len(in) < 2048, len(in) < 2048)
			}
		})
	}
}

// checkHandBack fails unless skim, run over b from a fresh scanner, stops
// where the exact scanner, fed b up to there, is outside any run and
// sequence with nothing masked, and with the prev and prev2 skim sets
// (prev2 matters only after a 'B', as the 'B' of "%B").
func checkHandBack(t *testing.T, b []byte, input bool) int {
	t.Helper()
	s := scanner{input: input}
	p := s.skim(b, 0)
	e := scanner{input: input, exact: true}
	cp := append([]byte(nil), b[:p]...)
	if e.scan(cp, 0, false) != p || !bytes.Equal(cp, b[:p]) || e.count != 0 {
		t.Fatalf("%q: skim stops at %d, where the exact scanner holds or masks", b, p)
	}
	if s.skimTo <= p && p < len(b) {
		t.Fatalf("%q: skim stops at %d, and would run again from %d", b, p, s.skimTo)
	}
	if e.st != stText || e.esc != escNone || e.prev != s.prev || e.prev == 'B' && (e.prev2 == '%') != (s.prev2 == '%') {
		t.Fatalf("%q: skim stops at %d with prev %q %q; exact: state %d, escape %d, prev %q %q",
			b, p, s.prev, s.prev2, e.st, e.esc, e.prev, e.prev2)
	}
	return p
}

// TestSkimHandsBack checks where skim stops on inputs it must hand back.
func TestSkimHandsBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, at string // skim stops at the start of the stretch: the last at in in ("": at 0)
	}{
		{filler + "4111111111111111 ok\n" + filler, "4111111111111111 ok"},
		{filler + "id %B4111111111111111^\n" + filler, "4111111111111111^"},
		{filler + "id -B4111111111111111^\n" + filler, "4111111111111111^"},
		// prev2 after a 'B' that follows what may end an escape
		// sequence is not known: skim hands back where it started.
		{filler + "id \x1b[1mB4111111111111111^\n" + filler, ""},
		{filler + "id %\x1b[1mB4111111111111111^\n" + filler, ""},
		{filler + "id xB4111111111111111^\n" + filler, ""},
		{filler + "id 12-34-4111 1111\x1b[m 1111 1111\n" + filler, " 12-34-4111"},
		{filler + "ab\b" + filler, "\b" + filler},
		{filler + "ab\x00" + filler, "\x00" + filler},
		{filler + "ab\x1b]0;title\x07" + filler, "\x1b]0;"},
		{filler + "ab\x1b[31\nm" + filler, "\x1b[31\n"},
		{filler + "ab 12" + "\x1b[" + strings.Repeat("1", 70) + "m" + filler, " 12\x1b["},
		{filler + "4" + strings.Repeat(" ", 1100) + filler, "4  "},
		{filler + "end 12 34", " 12 34"}, // the end: the stretch may go on
	} {
		p := checkHandBack(t, []byte(tc.in), false)
		if want := strings.LastIndex(tc.in, tc.at) % len(tc.in); p != want {
			t.Errorf("%q: skim stops at %d (%q), want %d (%q)", tc.in, p, tc.in[p:min(p+20, len(tc.in))], want, tc.at)
		}
	}
}

// TestSkimBenchText holds skim to the exact scanner on the benchmark's
// terminal text and digit-dense CSV, in 32 KiB writes and in random ones.
func TestSkimBenchText(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(18, 1))
	for _, data := range [][]byte{benchText()[:4<<20], benchDense()[:1<<20]} {
		for _, input := range []bool{false, true} {
			cfg := Config{Input: input}
			want := maskExact(data, cfg, true)
			if !bytes.Equal(maskExact(data, cfg, false), want) {
				t.Fatal("skim changes the output of Mask")
			}
			var cuts []int
			for c := 32 << 10; c < len(data); c += 32 << 10 {
				cuts = append(cuts, c)
			}
			for _, cuts := range [][]int{cuts, skimCuts(rng, len(data))} {
				if !bytes.Equal(streamExact(t, data, cuts, cfg, false), want) {
					t.Fatal("skim changes the output of a Writer")
				}
			}
		}
	}
}

// skimTokens are the pieces FuzzSkim builds its inputs from.
var skimTokens = []string{
	"4111", "1111", "4111111111111111", "5555 5555 5555 4444", "3782-822463-10005",
	"0", "12", "123", "2512", "1796508318", " ", "-", "  ", "--", ".", ":", "|", "=", "+",
	"\x1b[31m", "\x1b[0m", "\x1b[", "m", "\x1b(B", "\x1b%G", "\x1b7", "\x1b", "\x1b[1;2", ";",
	"\x1b]0;", "\x1b]8;;", "\x07", "\x1b\\", "\x1bP", "\x1b_",
	"\b", "\x7f", "\x00", "\x03", "\x15", "\x18", "\x1a", "\t", "\n", "\r", "\v", "\f",
	"x", "B", "%", "D", "d", "_", "%B", "caf\xc3\xa9", "\xff", "\x9b", "\xc2\x85",
	"session closed by the bastion ", "ansible-tmp-", "id=",
}

// FuzzSkim holds the scanner with skim to the scanner without it, on
// inputs built from digits, separators, escape sequences, erases,
// controls, letters and UTF-8, whole and in random chunkings under a
// setting the input picks, and checks where skim stops.
func FuzzSkim(f *testing.F) {
	f.Add([]byte{0, 1, 2, 20, 21, 40, 41, 42, 3, 60, 61})
	f.Add([]byte("\x00\x13\x01\x13\x01\x13\x01\x13\x02\x05"))
	f.Add([]byte(strings.Repeat("\x44\x02\x13\x14", 20)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 512 {
			return // keeps each run, and minimizing, quick
		}
		var b []byte
		for k, c := range data {
			tok := skimTokens[int(c)%len(skimTokens)]
			if c >= 0xf0 { // now and then a long piece
				tok = strings.Repeat(skimTokens[k%len(skimTokens)], int(c-0xee)*40)
			}
			b = append(b, tok...)
		}
		if len(b) > 8<<10 {
			return
		}
		h := fnv.New64a()
		h.Write(data)
		rng := rand.New(rand.NewPCG(h.Sum64(), 7))
		cfg := Config{Mode: modes[rng.IntN(len(modes))], Detect: DetectBrands, Input: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			cfg.Detect = DetectLuhn
		}
		want := maskExact(b, cfg, true)
		if got := maskExact(b, cfg, false); !bytes.Equal(got, want) {
			t.Fatalf("%v: skim changes the output\n in: %q\ngot: %q\nwant %q", cfg, b, got, want)
		}
		for _, cuts := range [][]int{skimCuts(rng, len(b)), skimCuts(rng, len(b))} {
			if got := streamExact(t, b, cuts, cfg, false); !bytes.Equal(got, want) {
				t.Fatalf("%v: cuts %v: skim changes the output\n in: %q\ngot: %q\nwant %q", cfg, cuts, b, got, want)
			}
		}
		if len(b) >= skimMin { // as scan calls it
			checkHandBack(t, b, cfg.Input)
		}
	})
}
