package mask

import (
	"encoding/binary"
	"math/bits"
)

// skim is a pre-pass the scanner runs before text(): it passes over
// stretches of terminal text that provably hold no candidate, eight bytes
// at a time, without the scanner's bookkeeping, and leaves everything else
// to the exact scanner.
//
// A stretch is what lies between two hard breaks: visible bytes other than
// digits, ' ' and '-' (letters, punctuation, HT, LF, VT, FF, CR, CAN and
// SUB outside a sequence, bytes of 0x80 and more). Digits and separators
// join a stretch, and so does a complete ESC, nF or CSI sequence of at
// most maxEscape bytes, which the exact scanner passes over as transparent
// in every state. A candidate's run lies inside one stretch (a run is a
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
// there (or, in the rare case it cannot tell prev2, where it started), so
// the stretch is read as if skim had never been. The end of the buffer is
// handed over the same way: the last stretch may go on in the next write.

const (
	skimMin  = 64   // skim only when this many bytes are left
	skimSpan = 1024 // longest stretch skim passes: far below holdLimit
	skimBack = 256  // after stopping, skim again only this far past the stop,
	skimFar  = 8192 // or up to this far when it keeps stopping soon (digit-dense text)
	// skimWaste: skim also backs off when it passes less than this many
	// times what it read in vain (handed back). In text dense with escape
	// sequences passing costs it about what it costs the exact scanner, so
	// text made to waste its reading (long stretches of sequences ending
	// on what stops it) can then cost at most about 1/skimWaste more.
	skimWaste = 8
	lo7       = 0x7f7f7f7f7f7f7f7f
	// skimAVXGap: after skimRun passes less than a block (32 bytes),
	// skim reads on this far with skimRun8 alone.
	skimAVXGap = 64
)

// skim passes over b[i:], the scanner being in stText outside sequences,
// and returns where the exact scanner goes on; it sets prev and prev2 for
// that point.
//
// Its inner loop reads eight bytes at a time and takes a coarser view
// still: bytes from 0x20 to 0x39 all join (a stretch it sees holds every
// stretch in it), and only HT, LF, VT, FF, CR, the bytes of 0x3a and more,
// and CAN and SUB (tested for only among controls) are breaks. Eight bytes
// with another control in them, or that may bring the stretch to
// minDigits digits or past skimSpan bytes, go to word, which reads them
// exactly. The inner loop calls nothing, so that its state stays in
// registers.
func (s *scanner) skim(b []byte, i int) int {
	// The stretch starts at hs, after its hard break b[hs-1]; cnt is at
	// least the number of visible digits from hs.
	hs, cnt := i, 0
	j := i
	stopped := false
	avx := i // skimRun's AVX2 loop runs from here
	for {
		if k := j; j < avx {
			j, hs, cnt = skimRun8(b, j, hs, cnt)
		} else if j, hs, cnt = skimRun(b, j, hs, cnt); j-k < 32 {
			// It stopped in its first block (an ESC sequence other
			// than CSI, say): its start costs more than it passes, so
			// the Go loop alone reads on for skimAVXGap bytes. Text
			// dense with "\x1b(B" or "\r\n\x1b7" otherwise costs skim
			// about 1.4 times what it costs the exact scanner.
			avx = j + skimAVXGap
		}
		if j+8 > len(b) {
			s.skimTo = len(b) // the rest of b is the exact scanner's
			break
		}
		var ok bool
		if j, hs, cnt, ok = word(b, j, hs, cnt); !ok {
			stopped = true
			break
		}
	}
	// Whatever skim hands back, it does not read again: scan skims
	// only from s.skimTo, past every byte read here, so the bytes of a
	// write are skimmed once however often the exact scanner comes back
	// to text in what it was handed.
	r := s.handBack(b, i, hs)
	if stopped {
		s.backOff(r-i, j-r, j)
	}
	return r
}

// skimText is text after skim, unless s is exact.
func (s *scanner) skimText(b []byte, i int) int {
	if !s.exact {
		i = s.skim(b, i)
	}
	return s.text(b, i)
}

// backOff sets where scan skims next after skim stopped at j, having
// passed n bytes and read waste more that it handed back to the exact
// scanner: skimBack further on, or, while skim keeps stopping sooner than
// that or passing less than skimWaste times what it wasted, twice as far
// each time up to skimFar, so that text dense with digits, where it never
// passes much, and text made to waste its reading (long stretches of
// sequences that end on what stops it) cost it little.
func (s *scanner) backOff(n, waste, j int) {
	gap := max(s.skimGap, skimBack)
	if n < gap || n < skimWaste*waste {
		gap = min(2*gap, skimFar)
	} else {
		gap = skimBack
	}
	s.skimGap, s.skimTo = gap, j+gap
}

// handBack sets prev and prev2 as the exact scanner has them at hs, the
// start of a stretch skim found from i, and returns hs; if it cannot tell
// prev2, it returns i, where the scanner's are right. prev is the hard
// break b[hs-1]. prev2 is only ever read after a 'B' (the 'B' of "%B"),
// so it is left 0 after any other byte; after a 'B' it is the visible byte
// before, which b[hs-2] is unless it may be the last byte of an escape
// sequence (0x30-0x7e) other than '%', which ends none.
func (s *scanner) handBack(b []byte, i, hs int) int {
	if hs == i {
		return i
	}
	p, p2 := b[hs-1], byte(0)
	if p == 'B' {
		switch c := b[max(hs-2, 0)]; {
		case hs-1 == i:
			p2 = s.prev
		case c == '%' || c < 0x30 || c > 0x7e:
			p2 = c
		default:
			return i
		}
	}
	s.prev, s.prev2 = p, p2
	return hs
}

// skimRun is skim's inner loop: it returns at the end of b or at eight
// bytes that go to word. With AVX2 it reads 32 bytes a step (skimAVX2),
// taking word's part too for line ends, CAN, SUB and CSI sequences, and
// skimRun8 always goes on from where that stops: the last few bytes, and
// whatever the assembly leaves to Go.
func skimRun(b []byte, j, hs, cnt int) (int, int, int) {
	if hasSkimAVX2 {
		j, hs, cnt = skimAVX2(b, j, hs, cnt)
	}
	return skimRun8(b, j, hs, cnt)
}

// skimRun8 is skimRun eight bytes at a time, on its own so that its state
// stays in registers.
func skimRun8(b []byte, j, hs, cnt int) (int, int, int) {
	for j+8 <= len(b) {
		v := binary.LittleEndian.Uint64(b[j : j+8])
		x := v & lo7
		ge3a := x + (0x80-'9'-1)*lo8
		fe := (x + (0x80-'\t')*lo8) &^ (x + (0x80-'\r'-1)*lo8)   // HT, LF, VT, FF, CR
		ctl := (^(x+(0x80-0x20)*lo8)&^fe | (x + lo8)) &^ v & hi8 // other C0, DEL
		dig := (x + (0x80-'0')*lo8) &^ ge3a &^ v & hi8
		nd := int((dig >> 7) * lo8 >> 56)
		if ctl != 0 {
			// CAN and SUB are breaks too; tested only here, so that
			// text without controls pays nothing for them.
			cs := ctl &^ ((x | 2*lo8) ^ 0x1a*lo8 + lo7)
			if ctl != cs {
				break
			}
			fe |= cs
		}
		if cnt+nd >= minDigits {
			break
		}
		if brk := (ge3a | v | fe) & hi8; brk != 0 {
			n := uint(bits.Len64(brk)) // 8 times the bytes up to the last break
			hs = j + int(n>>3)
			cnt = int((dig >> 8 >> ((n - 1) & 63)) * lo8 >> 56) // the digits after it
		} else {
			if j-hs > skimSpan { // only a stretch without a break grows
				break
			}
			cnt += nd
		}
		j += 8
	}
	return j, hs, cnt
}

// word reads the eight bytes at b[j:] for skim exactly: the bytes before
// the first control in them other than a break (ctlBreaks), then that
// control (a whole escape sequence, if it starts one). It returns where skim goes on and its state there,
// or false if skim must stop.
func word(b []byte, j, hs, cnt int) (int, int, int, bool) {
	if j-hs > skimSpan {
		return j, hs, cnt, false
	}
	v := binary.LittleEndian.Uint64(b[j : j+8])
	x := v & lo7
	ctl := (^(x + (0x80-0x20)*lo8) | (x + lo8)) &^ v & hi8 &^ ctlBreaks(x, v) // other C0, DEL
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
			return j, hs, cnt, false
		}
		l := uint(63 - bits.LeadingZeros64(brk))
		hs = j + int(l>>3) + 1
		cnt = int((dig >> l) * lo8 >> 56) // the digits after the break
	}
	if cnt >= minDigits {
		return j, hs, cnt, false
	}
	j += w
	if w == 8 {
		return j, hs, cnt, true
	}
	if b[j] == escByte {
		if e := seqEnd(b, j); e > 0 {
			return e, hs, cnt, true
		}
	}
	return j, hs, cnt, false
}

// ctlBreaks returns the high bits of the bytes of v (x being v&lo7) that
// are controls skim takes as hard breaks, in one test: HT, LF, VT, FF, CR,
// and CAN and SUB, visible outside a sequence. word reads them with the
// other bytes of its eight: text dense with CAN, read one word call a
// byte, made skim 30 times slower than the exact scanner.
func ctlBreaks(x, v uint64) uint64 {
	fe := (x + (0x80-'\t')*lo8) &^ (x + (0x80-'\r'-1)*lo8) // HT, LF, VT, FF, CR
	cs := (x | 2*lo8) ^ 0x1a*lo8                           // 0 at CAN and SUB
	return (fe | ^(cs + lo7)) &^ v & hi8
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
