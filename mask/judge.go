package mask

// The scanner's verdicts: which candidates are PANs (judge, card), and
// masking them (hide).

// judge masks every PAN that ends with the last live group, which has just
// ended on a non-word byte: each run of consecutive live groups, ending with
// the last, of 13 to 19 digits that passes the Luhn check and that card
// accepts.
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
// the last, k digits in all, is a card number under s.detect: for
// DetectBrands, one a brand issues, written in a grouping cards are
// printed with, and if in one group, not after two digit groups each
// followed by a dash. It is off the hot path: only a tenth of the
// candidates pass the Luhn check.
func (s *scanner) card(g, k int) bool {
	if s.detect != DetectBrands {
		return true
	}
	switch n := s.ng - g; {
	case n == 1 && s.gs[g].tail:
		// One group after digits, a dash, digits and a dash: the tail
		// of a dash-joined ID (ansible-tmp-1796508318.0950022-32551-
		// 36123456789013), whatever the digits before it. The flag is
		// the group's own: the groups before may have left the live
		// groups (drop), or never been in them (dead).
		return false
	case n > 1:
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

// hide masks the PAN made of live digits first to s.nd. Digits masked
// early (forced) are '*' already.
func (s *scanner) hide(first int) {
	s.count++
	out := s.outBuf()
	if out == nil {
		return
	}
	lo, hi := first, s.nd
	switch s.mode {
	case ModeFirst6Last4:
		lo, hi = lo+6, hi-4
	case ModeLast4:
		hi -= 4
	}
	for d := max(lo, s.nf); d < hi; d++ {
		out[s.dp[d]] = '*'
	}
}

// outBuf returns the buffer masks go to, making it first if the scanned
// one is read-only; nil if the scanner only counts.
func (s *scanner) outBuf() []byte {
	if s.out == nil && s.src != nil {
		s.out = append(s.spare, s.src...)
	}
	return s.out
}
