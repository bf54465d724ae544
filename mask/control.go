package mask

import "math"

// The scanner's handling of what a terminal shows as nothing or takes
// back: ignored controls, erases (BS, and DEL in typed input), the hold
// bound that masks a candidate that waits too long, and the track 2
// expiry after a 'D'.

// control consumes b[i], an ESC, an ignored control or an erase, while a
// run is being read.
func (s *scanner) control(b []byte, i int) int {
	c := b[i]
	if c == escByte {
		return s.startEscape(b, i)
	}
	if kills(c, s.input) {
		s.brk(b)
		return i + 1
	}
	s.hold(i)
	if c == bsByte || c == delByte && s.input {
		s.erase(b)
	}
	return i + 1
}

// erase takes back the last visible byte: a digit of the current group
// (after judging the candidate as if it ended there, since the digits may
// stay on the screen) or the separator after the last live group. Any
// other erase erases what the scanner no longer knows, and is a break.
func (s *scanner) erase(b []byte) {
	switch s.st {
	case stGroup:
		if !s.curDead && s.nd >= minDigits {
			s.judge(b)
		}
		s.curN--
		if !s.curDead {
			s.nd--
			s.gs[s.ng-1].n--
			s.nf = min(s.nf, s.nd)
		}
		if s.curN > 0 {
			return
		}
		if !s.curDead {
			s.ng--
		}
		if s.curSepd && s.ng > 0 {
			s.st, s.sep, s.curDash = stSep, s.chainSep, s.gs[s.ng-1].dashed
			return
		}
	case stSep:
		if s.ng > 0 {
			s.st, s.curN, s.curDead, s.curDash = stGroup, s.gs[s.ng-1].n, false, s.gs[s.ng-1].dashed
			s.curSepd = s.ng > 1 || s.firstSepd
			return
		}
	}
	s.st, s.ng, s.nd, s.nf = stText, 0, 0, 0
	s.prev, s.prev2 = 0, 0
}

// hold masks the live candidate now if its first digit not yet masked
// lies holdLimit bytes or more before i, the byte about to be consumed.
func (s *scanner) hold(i int) {
	if s.nd > s.nf && i-s.dp[s.nf] >= holdLimit {
		s.forceLive()
	}
}

// holdAt is the position from which hold masks the live candidate.
func (s *scanner) holdAt() int {
	if s.nd > s.nf {
		return s.dp[s.nf] + holdLimit
	}
	return math.MaxInt
}

// forceLive forces the live candidate; it is rare, and kept out of line so
// that hold inlines.
//
//go:noinline
func (s *scanner) forceLive() { s.force(&s.cand) }

// force masks every live digit of c not yet masked, whatever the mode:
// they may still become part of a PAN, and can no longer be held.
func (s *scanner) force(c *cand) {
	if out := s.outBuf(); out != nil {
		for d := c.nf; d < c.nd; d++ {
			out[c.dp[d]] = '*'
		}
	}
	c.nf = c.nd
}

// expiry reads the expiry date (YYMM) after a candidate and a track 2
// field separator 'D': four digits whose month is 01 to 12 make the 'D' a
// non-word byte, so the candidate is judged; then, and on anything else,
// the run ends.
func (s *scanner) expiry(b []byte, i int) int {
	c := b[i]
	if class[c]&cSlow != 0 {
		return s.control(b, i) // an erase here is a break
	}
	s.hold(i)
	if c-'0' > 9 {
		s.st, s.ng, s.nd, s.nf = stText, 0, 0, 0
		return i // text() consumes c
	}
	s.track++
	switch s.track {
	case 3:
		s.month = 10 * int(c-'0')
	case 4:
		if m := s.month + int(c-'0'); m >= 1 && m <= 12 {
			s.judge(b)
		}
		// The digits after the 'D' are a group that follows a word byte.
		s.st, s.curN, s.curDead, s.curSepd, s.curDash = stGroup, 4, true, false, false
		s.ng, s.nd, s.nf = 0, 0, 0
		s.prev2, s.prev = '0', '0'
	}
	return i + 1
}
