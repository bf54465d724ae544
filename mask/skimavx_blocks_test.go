package mask

import (
	"strings"
	"testing"
)

// skimBlockShapes are text for skimAVX2's whole-block passes: blocks whose
// only controls are CSI sequences complete in them (found at once from the
// block's masks), and blocks and steps whose digits reach minDigits with
// cnt but whose breaks cut them into shorter stretches. Each shape comes
// in a form that may pass and one a digit longer that must stop.
var skimBlockShapes = []string{
	"\x1b[32mweb02\x1b[0m@\x1b[34mdb01\x1b[0m:~$ systemctl status",
	"123\x1b[1m4567\x1b[0m89012 x",       // 12 digits joined across two sequences
	"123\x1b[1m4567\x1b[0m890123 x",      // 13
	"\x1b[1m\x1b[2m\x1b[3m1234567890123", // sequences back to back, then 13 digits
	"\x1b[m123456789012\x1b[m:",
	"\x1b[m1234567890123\x1b[m:",
	"12 \x1b[01;34m34 56\x1b[0m 78 90 12:", // parameters that are digits and ';'
	"12 \x1b[01;34m34 56\x1b[0m 78 90 123:",
	"\x1b[1\x7f\x1b[m123456789", // DEL inside: not a sequence
	"\x1b[1;\x1bm1234567",       // ESC inside
	"\x1b[ !/q1234567890",       // intermediates
	"\x1b[1m\x1b7\x1b[m123",     // an ESC sequence other than CSI among them
	"\x1b[1m\x18\x1b[m12\x1a3",  // CAN and SUB among them
	"\x1b[1m\x00\x1b[m123",      // an ignored control among them
	"\x1b[" + strings.Repeat("1", 29) + "m123",
	"\x1b[" + strings.Repeat("1", 30) + "m123",
	"\x1b[" + strings.Repeat(";", 31) + "m", // parameters to a block's end and on
	"56 | 2024-06-11 10:20:30.123456+00 | t\n 12345 | x",
	"2024-06-11T10:20:30.123456Z INFO 123456789012:3",
	"123456789012:123456789012:123456789012:1234567890123:",
	"1234567890123:123456789012:123456789012:123456789012:",
	"1 2 3 4 5 6 7 8 9 0 1 2:3 4 5 6 7 8 9 0 1 2 3 4 5",
	"1-2-3-4-5-6-7-8-9-0-1-2-3.4-5-6-7-8-9-0-1-2-3-4-5",
}

// TestSkimAVX2WholeBlocks holds skimAVX2 and skim's loop to the model, and
// skim to the exact scanner's output, on skimBlockShapes at every lane of
// a block, from fresh stretches and from ones that start before with any
// digit count, before a guarded page and with more text after.
func TestSkimAVX2WholeBlocks(t *testing.T) {
	t.Parallel()
	place := guardArea(t)
	for _, s := range skimBlockShapes {
		for lane := range 40 {
			for _, tail := range []string{"", "9", " 4111 1111 1111 1111 ok", strings.Repeat("ab 1 ", 10)} {
				pre := strings.Repeat("ab", 40)[:lane+32]
				in := []byte(pre + s + tail)
				checkAVX2Model(t, place(in), 0)
				checkAVX2Model(t, in, lane)
				if hasSkimAVX2 {
					for cnt := range minDigits {
						for _, hs := range []int{lane, max(0, lane-3)} {
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
