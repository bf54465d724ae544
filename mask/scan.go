package mask

import (
	"encoding/binary"
	"math/bits"
)

// Limits of the detector; the package documentation explains them.
const (
	minDigits = 13 // shortest PAN
	maxDigits = 19 // longest PAN
	maxEscape = 64 // longest escape sequence held whole; a longer one is committed

	// MaxHold is the most bytes a Writer holds back: a candidate's first
	// digit not yet masked is never more than holdLimit bytes back, and
	// an unfinished escape sequence after it adds at most maxEscape.
	MaxHold = 4096

	// holdLimit is how far back a candidate's first unmasked digit may
	// lie before the candidate is masked without waiting for its end.
	holdLimit = MaxHold - maxEscape
)

// luhnDouble[d] is the Luhn value of digit d in a doubled position.
var luhnDouble = [10]uint8{0, 2, 4, 6, 8, 1, 3, 5, 7, 9}

// Scanner states outside escape sequences.
const (
	stText  uint8 = iota // not in a digit run
	stGroup              // in a group of digits
	stSep                // after a group and one separator
	stTrack              // after a candidate and a track 2 'D': reading the expiry
)

// group is a run of digits dv[first:first+n].
// dashed is set when the group follows a '-' that follows a digit, and tail
// when it follows a '-' that follows a dashed group: alone, such a group is
// the tail of a dash-joined ID (see card).
type group struct {
	first, n     int
	dashed, tail bool
}

// cand is the state of one judged stream: the run being read and its live
// candidate, the digit groups that may still belong to a PAN (at most
// maxDigits digits in all). The payload of a long string escape is judged
// with a second one.
type cand struct {
	st          uint8
	prev, prev2 byte // last two visible bytes; 0 after a break
	chainSep    byte // separator joining the live groups
	sep         byte // stSep: the separator just read
	curDead     bool // the current group cannot be part of a PAN
	curSepd     bool // the current group follows a separator
	curDash     bool // the current group follows a '-' that follows a digit
	firstSepd   bool // gs[0] follows a separator
	curN        int  // digits of the current group
	track       int  // stTrack: digits read after the 'D'
	month       int  // stTrack: the expiry month's tens

	ng, nd, nf int              // live groups, digits, digits masked early (forced)
	gs         [maxDigits]group // live groups, oldest first; the last may be current
	dv         [maxDigits]uint8 // digit values
	dp         [maxDigits]int   // digit positions in the buffer
}

// scanner finds and masks PANs in a buffer it is handed piece by piece. It
// never allocates.
type scanner struct {
	mode   Mode
	detect Detect
	input  bool  // DEL erases (typed input) rather than being ignored
	count  int64 // PANs masked
	// Masks are written to out, which is the scanned buffer itself unless
	// ro is set: then the buffer is the caller's (a Writer's input), and
	// out stays nil until the first mask, when it becomes a copy of src
	// made in spare (or, without src, hide only counts).
	ro              bool
	out, src, spare []byte

	cand
	saved cand // the outer stream's state while a long string's payload is judged

	esc     uint8 // escape parser state
	escLong bool  // the sequence in progress is committed (past maxEscape)
	escAt   int   // position of the ESC in the buffer
	escLen  int
	escFrom int // where a string sequence's payload starts

	skimTo  int  // scan skims again from here (see skim)
	skimGap int  // how far past where it stopped skim last waited
	exact   bool // never skim: the reference skim is tested against
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
			switch s.esc {
			case escNone:
				switch s.st {
				case stText:
					if i >= s.skimTo && len(b)-i >= skimMin {
						i = s.skimText(b, i)
					} else {
						i = s.text(b, i)
					}
				case stGroup:
					i = s.group(b, i)
				case stSep:
					i = s.afterSep(b, i)
				default:
					i = s.expiry(b, i)
				}
			case escPay, escPayEsc:
				i = s.pay(b, i)
			default:
				i = s.escape(b, i)
			}
		}
		if !final {
			break
		}
		if s.esc != escNone {
			i = s.unterminated(b)
			continue
		}
		s.brk(b)
		break
	}
	lim := len(b)
	switch {
	case s.esc == escNone || s.esc == escPay:
	case s.esc == escPayEsc || !s.escLong:
		lim = s.escAt // a held sequence, or an ESC that may start one
	}
	if s.nd > s.nf {
		lim = min(lim, s.dp[s.nf])
	}
	if s.esc == escPay || s.esc == escPayEsc {
		if sv := &s.saved; sv.nd > sv.nf {
			lim = min(lim, sv.dp[sv.nf])
		}
	}
	return lim
}

// step consumes the byte at b[i] (and maybe more) outside escape sequences.
func (s *scanner) step(b []byte, i int) int {
	switch s.st {
	case stText:
		return s.text(b, i)
	case stGroup:
		return s.group(b, i)
	case stSep:
		return s.afterSep(b, i)
	}
	return s.expiry(b, i)
}

// shift tells s that the first k bytes of its buffer were removed.
func (s *scanner) shift(k int) {
	for d := range s.nd {
		s.dp[d] -= k
	}
	for d := range s.saved.nd {
		s.saved.dp[d] -= k
	}
	s.escAt -= k
	s.escFrom -= k
	s.skimTo -= k
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
		// ends here, on a visible byte (runEnd, written out). A run next
		// to ESC, an ignored control or an erase takes the slow path.
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
			case class[c]&cSlow != 0:
				break run
			case class[c]&cSep != 0:
				switch c2 := b[k+1]; {
				case c2-'0' <= 9:
					k++
					continue
				case class[c2]&cSlow != 0:
					break run
				}
			}
			i = k
			continue outer
		}
		break
	}
	if j > start {
		// The last two bytes before j are the visible ones, unless
		// controls are among them (rare): then look finds them.
		if c1 := b[j-1]; c1 >= 0x20 && c1 != delByte && (j-2 < start || b[j-2] >= 0x20 && b[j-2] != delByte) {
			if j-2 >= start {
				s.prev2 = b[j-2]
			} else {
				s.prev2 = s.prev
			}
			s.prev = c1
		} else {
			s.look(b, start, j)
		}
	}
	if j == n {
		return j
	}
	if b[j] == escByte {
		return s.startEscape(b, j)
	}
	// A track 1 PAN follows the format code: %B4111...
	live := class[s.prev]&cWord == 0 || (s.prev == 'B' && s.prev2 == '%')
	s.st, s.curN, s.curDead, s.curSepd, s.curDash = stGroup, 0, !live, false, false
	s.ng, s.nd, s.nf = 0, 0, 0
	if live {
		s.gs[0] = group{}
		s.ng, s.firstSepd = 1, false
	}
	return j
}

// look sets prev and prev2 to the last two visible bytes of b[start:j]
// (with the state's for what lies before start): ignored controls are
// passed over, and an erase there erases what is unknown, so it is a
// break, as is a typed ^C or ^U (kills).
func (s *scanner) look(b []byte, start, j int) {
	got := 0
	var v [2]byte
	for k := j - 1; k >= start && got < 2; k-- {
		c := b[k]
		if class[c]&cIgn != 0 && (c != delByte || !s.input) && !kills(c, s.input) {
			continue
		}
		if c == bsByte || c == delByte || kills(c, s.input) {
			for ; got < 2; got++ {
				v[got] = 0
			}
			break
		}
		v[got] = c
		got++
	}
	switch got {
	case 0:
		return
	case 1:
		s.prev2, s.prev = s.prev, v[0]
		return
	}
	s.prev, s.prev2 = v[0], v[1]
}

// group consumes the digits of the current group and what ends it.
func (s *scanner) group(b []byte, i int) int {
	// The hold bound is checked where it may apply: at is where the
	// first unmasked digit would have waited too long. A digit added in
	// this loop cannot wait that long within it, and a drop only moves
	// that digit later, so at is never late.
	j, at := i, s.holdAt()
	for j < len(b) && b[j]-'0' <= 9 {
		if j >= at {
			s.hold(j)
			at = s.holdAt()
		}
		if s.curDead || s.curN == maxDigits || s.nd == maxDigits {
			s.digit(b[j], j)
		} else { // digit, its common case written out
			s.curN++
			s.dv[s.nd] = b[j] - '0'
			s.dp[s.nd] = j
			s.nd++
			s.gs[s.ng-1].n++
		}
		j++
	}
	if j > i {
		s.prev2, s.prev = '0', '0'
	}
	if j == len(b) {
		return j
	}
	c := b[j]
	if class[c]&cSlow != 0 {
		return s.control(b, j)
	}
	s.hold(j)
	s.endGroup(b, c)
	if s.st != stText {
		s.prev2, s.prev = s.prev, c
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
		s.ng, s.nd, s.nf = 0, 0, 0
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
	s.nf = max(s.nf-k, 0)
	copy(s.gs[:], s.gs[1:s.ng])
	s.ng--
	for g := range s.ng {
		s.gs[g].first -= k
	}
	s.firstSepd = true
}

// endGroup ends the current group at the visible byte c (0 for a break):
// it judges the candidates that end here, then either waits for the next
// group after the separator c, or for the expiry after a track 2 'D', or
// ends the run.
func (s *scanner) endGroup(b []byte, c byte) {
	if !s.curDead && s.nd >= minDigits {
		switch {
		case class[c]&cWord == 0:
			s.judge(b)
		case c == 'D' || c == 'd':
			s.st, s.track = stTrack, 0
			return
		}
	}
	if class[c]&cSep == 0 {
		s.st, s.ng, s.nd, s.nf = stText, 0, 0, 0
		return
	}
	s.st, s.sep = stSep, c
}

// afterSep joins a group that follows the separator or ends the run.
func (s *scanner) afterSep(b []byte, i int) int {
	c := b[i]
	if class[c]&cSlow != 0 {
		return s.control(b, i)
	}
	s.hold(i)
	if c-'0' > 9 {
		s.st, s.ng, s.nd, s.nf = stText, 0, 0, 0
		return i // text() consumes c
	}
	// The groups before a change of separator, and those that would
	// make the candidate longer than 19 digits, leave it now.
	if s.ng > 1 && s.sep != s.chainSep {
		for s.ng > 1 {
			s.drop()
		}
	}
	for s.nd >= maxDigits {
		s.drop()
	}
	if s.ng == 0 {
		s.firstSepd = true
	}
	s.chainSep = s.sep
	// The group before is the current one until now, live or not.
	dash := s.sep == '-'
	s.gs[s.ng] = group{first: s.nd, dashed: dash, tail: dash && s.curDash}
	s.st, s.curN, s.curDead, s.curSepd, s.curDash = stGroup, 0, false, true, dash
	s.ng++
	return i
}

// brk is a break: a point that ends any candidate and that no PAN touches.
// A broken escape, an erase with nothing known to erase and the end of
// the stream are breaks.
func (s *scanner) brk(b []byte) {
	switch s.st {
	case stGroup:
		s.endGroup(b, 0)
	case stSep, stTrack:
		s.st, s.ng, s.nd, s.nf = stText, 0, 0, 0
	}
	s.prev, s.prev2 = 0, 0
}
