package mask

import (
	"encoding/binary"
	"math/bits"
)

// Limits of the detector; the package documentation explains them.
const (
	minDigits = 13 // shortest PAN
	maxDigits = 19 // longest PAN
	maxEscape = 64 // longest escape sequence that is transparent, ESC to final byte
	maxGap    = 64 // most escape bytes between two visible bytes that keep a candidate whole

	// MaxHold is the most bytes a Writer holds back: a candidate of 19
	// digits and 18 separators, each of these 37 visible bytes followed by
	// up to 64 bytes of escape sequences.
	MaxHold = (2*maxDigits - 1) * (1 + maxGap)
)

const escByte = 0x1b

// Byte classes.
const (
	cDigit = 1 << iota
	cSep   // ' ' or '-': may join the digit groups of one PAN
	cWord  // [0-9A-Za-z_]: a PAN never touches one
	cStop  // digit or ESC: where the fast skip stops
)

var class = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit | cWord | cStop
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cWord
		t[c-'a'+'A'] |= cWord
	}
	t['_'] = cWord
	t[' '] = cSep
	t['-'] = cSep
	t[escByte] = cStop
	return t
}()

// luhnDouble[d] is the Luhn value of digit d in a doubled position.
var luhnDouble = [10]uint8{0, 2, 4, 6, 8, 1, 3, 5, 7, 9}

// Scanner states outside escape sequences.
const (
	stText  uint8 = iota // not in a digit run
	stGroup              // in a group of digits
	stSep                // after a group and one separator
)

// Escape sequence parser states.
const (
	escNone   uint8 = iota
	escStart        // after ESC
	escCSI          // ESC [ parameters and intermediates
	escNF           // ESC and intermediates (0x20-0x2F)
	escStr          // OSC, DCS, SOS, PM or APC payload
	escStrEsc       // ESC inside a string: only ST (ESC \) may follow
)

// group is a run of digits s.dv[first:first+n].
type group struct{ first, n int }

// scanner finds and masks PANs in a buffer it is handed piece by piece. It
// keeps the state of the live candidate: the digit groups that may still
// belong to a PAN, at most maxDigits digits in all. It never allocates.
type scanner struct {
	mode   Mode
	detect Detect
	count  int64 // PANs masked
	// Masks are written to out, which is the scanned buffer itself unless
	// ro is set: then the buffer is the caller's (a Writer's input), and
	// out stays nil until the first mask, when it becomes a copy of src
	// made in spare (or, without src, hide only counts).
	ro              bool
	out, src, spare []byte

	st          uint8
	prev, prev2 byte // last two visible bytes; 0 after a break
	chainSep    byte // separator joining the live groups
	curN        int  // digits of the current group
	curDead     bool // the current group cannot be part of a PAN
	gap         int  // escape bytes since the last visible byte or break

	esc    uint8 // escape parser state
	escAt  int   // position of the ESC in the buffer
	escLen int

	ng, nd int              // live groups and their digits
	gs     [maxDigits]group // live groups, oldest first; the last may be current
	dv     [maxDigits]uint8 // digit values
	dp     [maxDigits]int   // digit positions in the buffer
}

// scan consumes b[i:] and returns how many bytes of b are final: masked
// where needed and no longer depended on. With final set, the end of b ends
// the stream: nothing is held back and the scanner returns to its initial
// state.
func (s *scanner) scan(b []byte, i int, final bool) int {
	if !s.ro {
		s.out = b
	}
	for {
		for i < len(b) {
			if s.esc != escNone {
				i = s.escape(b, i)
				continue
			}
			switch s.st {
			case stText:
				i = s.text(b, i)
			case stGroup:
				i = s.group(b, i)
			default:
				i = s.afterSep(b, i)
			}
		}
		if !final {
			break
		}
		if s.esc != escNone {
			// An unterminated escape at the end of the stream is not one.
			i = s.broken(b)
			continue
		}
		s.brk(b)
		break
	}
	lim := len(b)
	if s.esc != escNone {
		lim = s.escAt
	}
	if s.nd > 0 && s.dp[0] < lim {
		lim = s.dp[0]
	}
	return lim
}

// shift tells s that the first k bytes of its buffer were removed.
func (s *scanner) shift(k int) {
	for d := range s.nd {
		s.dp[d] -= k
	}
	s.escAt -= k
}

// text skips bytes that are neither digits nor ESC, and short digit runs,
// and starts what comes next. It is the hot path, written out by hand: it
// tests eight bytes at a time, and passes over a run of fewer than 13
// digits that ends on a visible byte without any bookkeeping.
func (s *scanner) text(b []byte, i int) int {
	n, start := len(b), i
	var j int
outer:
	for {
		// Find the next digit or ESC. The lowest byte these tests flag is
		// exact: a false flag needs a borrow from a true one below it.
		j = i
		for {
			if j+8 > n {
				for j < n && class[b[j]]&cStop == 0 {
					j++
				}
				break
			}
			v := binary.LittleEndian.Uint64(b[j:])
			d := v ^ (0x30 * lo8) // bytes below 10 where v has a digit
			e := v ^ (escByte * lo8)
			if m := ((d-10*lo8)&^d | (e-lo8)&^e) & hi8; m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		if j == n || b[j] == escByte {
			break
		}
		// A digit: pass over its run if it has fewer than 13 digits and
		// ends here, on a visible byte (runEnd, written out).
		k, d := j, 0
	run:
		for {
			g := k
			for k < n && b[k]-'0' <= 9 {
				k++
			}
			d += k - g
			if d >= minDigits || k+1 >= n {
				break run // long, or its end is not known yet
			}
			switch c := b[k]; {
			case c == escByte:
				break run
			case class[c]&cSep != 0:
				switch c2 := b[k+1]; {
				case c2-'0' <= 9:
					k++
					continue
				case c2 == escByte:
					break run
				}
			}
			i = k
			continue outer
		}
		break
	}
	if j > start {
		s.gap = 0
		if j-2 >= start {
			s.prev2 = b[j-2]
		} else {
			s.prev2 = s.prev
		}
		s.prev = b[j-1]
	}
	if j == n {
		return j
	}
	if b[j] == escByte {
		return s.startEscape(b, j)
	}
	// A track 1 PAN follows the format code: %B4111...
	live := class[s.prev]&cWord == 0 || (s.prev == 'B' && s.prev2 == '%')
	s.st, s.curN, s.curDead = stGroup, 0, !live
	s.ng, s.nd = 0, 0
	if live {
		s.gs[0] = group{}
		s.ng = 1
	}
	return j
}

// group consumes the digits of the current group and what ends it.
func (s *scanner) group(b []byte, i int) int {
	j := i
	for j < len(b) && b[j]-'0' <= 9 {
		s.digit(b[j], j)
		j++
	}
	if j > i {
		s.prev2, s.prev, s.gap = '0', b[j-1], 0
	}
	if j == len(b) {
		return j
	}
	c := b[j]
	if c == escByte {
		return s.startEscape(b, j)
	}
	s.endGroup(b, c)
	if s.st == stSep {
		s.prev2, s.prev, s.gap = s.prev, c, 0
		return j + 1
	}
	return j // text() consumes c
}

// digit adds the digit c at pos to the current group.
func (s *scanner) digit(c byte, pos int) {
	s.curN++
	if s.curDead {
		return
	}
	if s.curN > maxDigits {
		// Part of a longer number: never a PAN, nor are the groups before it.
		s.curDead = true
		s.ng, s.nd = 0, 0
		return
	}
	if s.nd == maxDigits {
		s.drop()
	}
	s.dv[s.nd] = c - '0'
	s.dp[s.nd] = pos
	s.nd++
	s.gs[s.ng-1].n++
}

// drop forgets the oldest live group: no PAN can include it any more.
func (s *scanner) drop() {
	k := s.gs[0].n
	copy(s.dv[:], s.dv[k:s.nd])
	copy(s.dp[:], s.dp[k:s.nd])
	s.nd -= k
	copy(s.gs[:], s.gs[1:s.ng])
	s.ng--
	for g := range s.ng {
		s.gs[g].first -= k
	}
}

// endGroup ends the current group at the visible byte c (0 for a break):
// it judges the candidates that end here, then either waits for the next
// group after the separator c or ends the run.
func (s *scanner) endGroup(b []byte, c byte) {
	if !s.curDead && class[c]&cWord == 0 && s.nd >= minDigits {
		s.judge(b)
	}
	if class[c]&cSep == 0 {
		s.st, s.ng, s.nd = stText, 0, 0
		return
	}
	s.st = stSep
	if s.ng > 1 && c != s.chainSep {
		for s.ng > 1 {
			s.drop()
		}
	}
	s.chainSep = c
	for s.nd >= maxDigits {
		s.drop()
	}
}

// afterSep joins a group that follows the separator or ends the run.
func (s *scanner) afterSep(b []byte, i int) int {
	c := b[i]
	switch {
	case c-'0' <= 9:
		s.st, s.curN, s.curDead = stGroup, 0, false
		s.gs[s.ng] = group{first: s.nd}
		s.ng++
		return i
	case c == escByte:
		return s.startEscape(b, i)
	}
	s.st, s.ng, s.nd = stText, 0, 0
	return i // text() consumes c
}

// judge masks every PAN that ends with the last live group, which has just
// ended on a non-word byte: each run of consecutive live groups, ending with
// the last, of 13 to 19 digits that passes the Luhn check and, unless
// s.detect says otherwise, is a number a brand issues, in a grouping cards
// are printed with.
func (s *scanner) judge(b []byte) {
	sum, k := 0, 0
	for g := s.ng - 1; g >= 0; g-- {
		first := s.gs[g].first
		for d := first + s.gs[g].n - 1; d >= first; d-- {
			v := s.dv[d]
			if k&1 == 1 {
				v = luhnDouble[v]
			}
			sum += int(v)
			k++
		}
		if k >= minDigits && sum%10 == 0 && s.card(g, k) {
			s.hide(first)
		}
	}
}

// card reports whether the Luhn-valid candidate made of live groups g to
// the last, k digits in all, is a card number. It is off the hot path:
// only a tenth of the candidates pass the Luhn check.
func (s *scanner) card(g, k int) bool {
	if s.detect != DetectBrands {
		return true
	}
	if n := s.ng - g; n > 1 {
		if n > maxGroups {
			return false
		}
		var shape uint32 // as shapeKey encodes it
		for i := s.ng - 1; i >= g; i-- {
			shape = shape<<5 | uint32(s.gs[i].n)
		}
		if !printed(shape) {
			return false
		}
	}
	first := s.gs[g].first
	return issued(s.dv[first:first+6], k)
}

// hide masks the PAN made of live digits first to s.nd.
func (s *scanner) hide(first int) {
	if s.out == nil {
		if s.src == nil {
			s.count++
			return
		}
		s.out = append(s.spare, s.src...)
	}
	lo, hi := first, s.nd
	switch s.mode {
	case ModeFirst6Last4:
		lo, hi = lo+6, hi-4
	case ModeLast4:
		hi -= 4
	}
	for d := lo; d < hi; d++ {
		s.out[s.dp[d]] = '*'
	}
	s.count++
}

// brk is a break: a point that ends any candidate and that no PAN touches.
// An over-long gap of escapes, a broken escape and the end of the stream
// are breaks.
func (s *scanner) brk(b []byte) {
	switch s.st {
	case stGroup:
		s.endGroup(b, 0)
	case stSep:
		s.st, s.ng, s.nd = stText, 0, 0
	}
	s.prev, s.prev2, s.gap = 0, 0, 0
}

// Mask appends src to dst with every PAN masked as mode says, and returns
// the extended buffer and the number of PANs masked. It judges src as a
// whole stream: the same as writing src to a Writer and closing it.
// It detects card numbers as DetectBrands says; Detect.Mask chooses.
func Mask(dst, src []byte, mode Mode) ([]byte, int) {
	return DetectBrands.Mask(dst, src, mode)
}

// MaskInPlace masks every PAN in b in place, judging b as a whole stream
// like Mask, and returns the number of PANs masked. It detects card numbers
// as DetectBrands says; Detect.MaskInPlace chooses.
func MaskInPlace(b []byte, mode Mode) int {
	return DetectBrands.MaskInPlace(b, mode)
}

// Mask is the package's Mask with the card numbers d detects.
func (d Detect) Mask(dst, src []byte, mode Mode) ([]byte, int) {
	start := len(dst)
	dst = append(dst, src...)
	return dst, d.MaskInPlace(dst[start:], mode)
}

// MaskInPlace is the package's MaskInPlace with the card numbers d
// detects.
func (d Detect) MaskInPlace(b []byte, mode Mode) int {
	s := scanner{mode: mode, detect: d}
	s.scan(b, 0, true)
	return int(s.count)
}
