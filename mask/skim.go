package mask

import (
	"encoding/binary"
	"math/bits"
)

// skim is a pre-pass for text(): it passes over stretches of terminal text
// that provably hold no candidate, eight bytes at a time, without the
// scanner's bookkeeping, and leaves everything else to the exact scanner.
//
// A stretch is what lies between two hard breaks: visible bytes other than
// digits, ' ' and '-' (letters, punctuation, HT, LF, CR, CAN and SUB
// outside a sequence, bytes of 0x80 and more). Digits and separators join
// a stretch, and so does a complete ESC, nF or CSI sequence of at most
// maxEscape bytes, which the exact scanner passes over as transparent in
// every state. A candidate's run lies inside one stretch (a run is a
// stricter join: one separator, the same throughout, no break), so a
// stretch with fewer than minDigits visible digits holds none, and the
// scanner in stText before it is in stText after its hard break, with that
// break as prev, having masked, counted and held nothing, provided the
// stretch is too short for the hold bound (skimSpan). Anything skim does
// not model makes it stop: ignored controls, erases and kills (BS, DEL,
// ^C, ^U), string sequences (their text is judged), sequences that are
// broken, long or unfinished, and a stretch that reaches minDigits digits
// or skimSpan bytes. It then hands the exact scanner the start of the
// stretch it was in, with prev and prev2 as the scanner would have them
// there, so the stretch is read as if skim had never been. The end of the
// buffer is handed over the same way: the last stretch may go on in the
// next write.

const (
	skimMin  = 64   // skim only when this many bytes are left
	skimSpan = 1024 // longest stretch with a digit skim passes: far below holdLimit
	skimBack = 256  // after stopping, skim again only this far past the stop
	lo7      = 0x7f7f7f7f7f7f7f7f
)

// skim passes over b[i:], the scanner being in stText outside sequences,
// and returns where the exact scanner goes on; it sets prev and prev2 for
// that point.
//
// Its inner loop reads eight bytes at a time and takes a coarser view
// still: bytes from 0x20 to 0x39 all join (a stretch it sees holds every
// stretch in it), and only LF, CR and the bytes of 0x3a and more are
// breaks. Eight bytes with another control in them, or that may bring the
// stretch to minDigits digits, go to word, which reads them exactly. The
// inner loop calls nothing, so that its state stays in registers.
func (s *scanner) skim(b []byte, i int) int {
	// The stretch starts at hs, after its hard break b[hs-1]; that break
	// lies in the eight bytes from hw, and lw is the last visible byte
	// before hw (prev2 at hs, unless b[hs-2] lies in those eight bytes);
	// cnt is at least the number of visible digits from hs. last is the
	// last visible byte before j.
	hs, hw, lw, cnt, last := i, i, byte(0), 0, s.prev
	j := i
	for {
		j, hs, hw, lw, cnt, last = skimRun(b, j, hs, hw, lw, cnt, last)
		if j+8 > len(b) {
			break
		}
		var ok bool
		if j, last, hs, hw, lw, cnt, ok = s.word(b, j, last, hs, hw, lw, cnt); !ok {
			s.skimTo = j + skimBack
			break
		}
	}
	if hs > i {
		s.prev, s.prev2 = b[hs-1], lw
		if hs-2 >= hw {
			s.prev2 = b[hs-2]
		}
	}
	return hs
}

// skimRun is skim's inner loop, on its own so that its state stays in
// registers: it returns at the end of b or at eight bytes that go to word.
func skimRun(b []byte, j, hs, hw int, lw byte, cnt int, last byte) (int, int, int, byte, int, byte) {
	for j+8 <= len(b) {
		v := binary.LittleEndian.Uint64(b[j : j+8])
		x := v & lo7
		ge3a := x + (0x80-'9'-1)*lo8
		nl := ^(x ^ '\n'*lo8 + lo7) | ^(x ^ '\r'*lo8 + lo7)
		ctl := (^(x + (0x80-0x20)*lo8) | (x + lo8)) &^ nl &^ v & hi8 // C0 but LF and CR, DEL
		dig := (x + (0x80-'0')*lo8) &^ ge3a &^ v & hi8
		nd := int((dig >> 7) * lo8 >> 56)
		if ctl != 0 || cnt+nd >= minDigits || j-hs > skimSpan {
			break
		}
		if brk := (ge3a | v | nl) & hi8; brk != 0 {
			n := uint(bits.Len64(brk)) // 8 times the bytes up to the last break
			hs, hw, lw = j+int(n>>3), j, last
			cnt = int((dig >> 8 >> ((n - 1) & 63)) * lo8 >> 56) // the digits after it
		} else {
			cnt += nd
		}
		last = byte(v >> 56)
		j += 8
	}
	return j, hs, hw, lw, cnt, last
}

// word reads the eight bytes at b[j:] for skim exactly: the bytes before
// the first control in them, then that control (a whole escape sequence,
// if it starts one). It returns where skim goes on and its state there,
// or false if skim must stop.
func (s *scanner) word(b []byte, j int, last byte, hs, hw int, lw byte, cnt int) (int, byte, int, int, byte, int, bool) {
	if j-hs > skimSpan {
		return j, last, hs, hw, lw, cnt, false
	}
	v := binary.LittleEndian.Uint64(b[j:])
	x := v & lo7
	ctl := (^(x + (0x80-0x20)*lo8) | (x + lo8)) &^ v & hi8 // C0, DEL
	dig := (x + (0x80-'0')*lo8) &^ (x + (0x80-'9'-1)*lo8) &^ v & hi8
	sep := ^(x^' '*lo8+lo7)&^v&hi8 | ^(x^'-'*lo8+lo7)&^v&hi8
	brk := ^(dig | sep | ctl) & hi8
	w := 8
	if ctl != 0 {
		w = bits.TrailingZeros64(ctl) >> 3 // the bytes before the first control
		keep := uint64(1)<<(8*w) - 1
		dig &= keep
		brk &= keep
	}
	if brk == 0 {
		cnt += int((dig >> 7) * lo8 >> 56)
	} else {
		f := uint(bits.TrailingZeros64(brk))
		if cnt+int((dig&(1<<f-1)>>7)*lo8>>56) >= minDigits {
			return j, last, hs, hw, lw, cnt, false
		}
		l := uint(63 - bits.LeadingZeros64(brk))
		hs, hw, lw = j+int(l>>3)+1, j, last
		cnt = int((dig >> l) * lo8 >> 56) // the digits after the break
	}
	if cnt >= minDigits {
		return j, last, hs, hw, lw, cnt, false
	}
	if w > 0 {
		last = byte(v >> (8*w - 8))
	}
	j += w
	if w == 8 {
		return j, last, hs, hw, lw, cnt, true
	}
	switch c := b[j]; c {
	case escByte:
		if e := seqEnd(b, j); e > 0 {
			return e, last, hs, hw, lw, cnt, true
		}
	case '\t', '\n', '\v', '\f', '\r', 0x18, 0x1a: // visible: a hard break
		return j + 1, c, j + 1, j, last, 0, true
	}
	return j, last, hs, hw, lw, cnt, false
}

// seqEnd returns the end of the ESC, nF or CSI sequence that starts at
// b[j] (ESC) if it is complete, well formed and at most maxEscape bytes
// long, bytes the exact scanner passes over as transparent in any state;
// otherwise 0.
func seqEnd(b []byte, j int) int {
	n := min(len(b), j+maxEscape)
	k := j + 1
	if k >= n {
		return 0
	}
	switch c := b[k]; {
	case c == '[':
		// Parameters and intermediates (0x20-0x3f), then the final byte.
		for k++; k+8 <= n; k += 8 {
			v := binary.LittleEndian.Uint64(b[k:])
			x := v & lo7
			if m := (^(x + (0x80-0x20)*lo8) | (x + (0x80-0x40)*lo8) | v) & hi8; m != 0 {
				k += bits.TrailingZeros64(m) >> 3
				break
			}
		}
		for ; k < n; k++ {
			if c := b[k]; c-0x20 > 0x3f-0x20 {
				if c-0x40 <= 0x7e-0x40 {
					return k + 1
				}
				return 0
			}
		}
	case c-0x20 <= 0x2f-0x20: // nF
		for k++; k < n; k++ {
			if c := b[k]; c-0x20 > 0x2f-0x20 {
				if c-0x30 <= 0x7e-0x30 {
					return k + 1
				}
				return 0
			}
		}
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_': // a string
	case c-0x30 <= 0x7e-0x30:
		return k + 1
	}
	return 0
}
