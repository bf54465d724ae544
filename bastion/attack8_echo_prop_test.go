package bastion

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/postern/postern/mask"
)

// The echo release shows early only bytes the user typed: wherever the
// client's copy of the output is less masked than the strict one, the
// bytes shown are, in order, keys the user typed, each used once. The
// output mixes card numbers, the echo of some of its own bytes typed just
// before (as a user typing with echo off would), controls and escape
// sequences, in random writes; there is no deadline. With a Preview and
// without one.
func TestAttack8EchoReleasesOnlyTypedBytes(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 8))
	pieces := []string{"4539148803436467", "4111 1111 1111 1111", "5555-5555-5555-4444",
		"453914", "4", "1", " ", "-", "\x00", "\x1b[31m", "\x1b]0;", "\a", "\r\n", "x", "\b", "\x1b[3~"}
	for iter := range 3000 {
		var out []byte
		for range 1 + rng.IntN(12) {
			out = append(out, pieces[rng.IntN(len(pieces))]...)
		}
		var e typedEcho
		var strict, client bytes.Buffer
		cfg := mask.Config{Mode: mask.ModeFull, Deadline: time.Hour, Preview: &client, Echo: e.echoed}
		solo := iter%2 == 1 // no Preview: the client's is the only copy
		w := mask.NewWriter(&strict, cfg)
		if solo {
			cfg.Preview = nil
			w = mask.NewWriter(&client, cfg)
		}
		var keys []byte
		for i := 0; i < len(out); {
			n := 1 + rng.IntN(min(6, len(out)-i))
			chunk := out[i : i+n]
			// Type, before the chunk comes, some of its bytes, or others.
			for j := range chunk {
				switch rng.IntN(4) {
				case 0:
					k := []byte{chunk[j]}
					keys = append(keys, k...)
					e.typed(k)
				case 1:
					k := []byte{byte('0' + rng.IntN(10))}
					keys = append(keys, k...)
					e.typed(k)
				}
			}
			e.saw(chunk)
			w.Write(chunk)
			i += n
		}
		w.Close()
		s, c := strict.Bytes(), client.Bytes()
		if solo {
			s, _ = mask.Mask(nil, out, mask.ModeFull)
		}
		if len(s) != len(out) || len(c) != len(out) {
			t.Fatalf("%q: strict %q, client %q", out, s, c)
		}
		var shown []byte
		for i := range c {
			if c[i] != s[i] {
				shown = append(shown, c[i])
			}
		}
		if !isSubsequence(shown, keys) {
			t.Fatalf("iteration %d: output %q keys %q: the client got %q, strict %q: %q shown early is not what was typed", iter, out, keys, c, s, shown)
		}
	}
}

// isSubsequence reports whether a is b with some bytes left out.
func isSubsequence(a, b []byte) bool {
	for _, x := range b {
		if len(a) > 0 && a[0] == x {
			a = a[1:]
		}
	}
	return len(a) == 0
}
