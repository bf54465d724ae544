package testenv

// The reference PAN matcher, written for clarity, not speed: it lists the
// visible bytes of the whole input (escape sequences removed, breaks
// marked), finds the digit groups, and tries every sequence of groups.
// The mask package's tests hold its streaming scanner to it; end-to-end
// tests use it to prove no card number left the bastion.

const refMaxEsc = 64 // longest transparent escape; also the gap budget

// refTok is a visible byte of the input, or a break (pos < 0).
type refTok struct {
	pos int
	c   byte
}

func refIsWord(c byte, starWord bool) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || starWord && c == '*'
}

// refEscape parses the escape sequence at the start of b. It returns its
// length, or 0 if b does not start with a valid sequence of at most
// refMaxEsc bytes, and for a string sequence the payload bounds.
func refEscape(b []byte) (n, payFrom, payTo int) {
	if len(b) < 2 {
		return 0, 0, 0
	}
	c := b[1]
	switch {
	case c == '[':
		for i := 2; i < len(b) && i < refMaxEsc; i++ {
			switch x := b[i]; {
			case x >= 0x40 && x <= 0x7e:
				return i + 1, 0, 0
			case x < 0x20 || x > 0x3f:
				return 0, 0, 0
			}
		}
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		for i := 2; i < len(b) && i < refMaxEsc; i++ {
			switch b[i] {
			case 0x07:
				return i + 1, 2, i
			case 0x1b:
				if i+1 < len(b) && i+1 < refMaxEsc && b[i+1] == '\\' {
					return i + 2, 2, i
				}
				return 0, 0, 0
			case 0x18, 0x1a:
				return 0, 0, 0
			}
		}
	case c >= 0x20 && c <= 0x2f:
		for i := 2; i < len(b) && i < refMaxEsc; i++ {
			switch x := b[i]; {
			case x >= 0x30 && x <= 0x7e:
				return i + 1, 0, 0
			case x < 0x20 || x > 0x2f:
				return 0, 0, 0
			}
		}
	case c >= 0x30 && c <= 0x7e:
		return 2, 0, 0
	}
	return 0, 0, 0
}

// RefPANs returns the PANs in b as lists of digit positions: numbers a
// payment brand issues (RefIssued) passing the Luhn check, contiguous or
// in groups split by one kind of separator (space or dash) in a grouping
// cards are printed with (refPrinted), escape sequences between them
// ignored, not inside a longer number or a word (with starWord, '*' counts
// as a word byte, so a masked number's digits are not found again).
// Payloads of string escapes are searched on their own.
func RefPANs(b []byte, starWord bool) [][]int {
	return refPANs(b, starWord, false)
}

// RefPANsLuhn is RefPANs under the broader rule (mask.DetectLuhn): any 13
// to 19 digits passing the Luhn check, in any groups.
func RefPANsLuhn(b []byte, starWord bool) [][]int {
	return refPANs(b, starWord, true)
}

func refPANs(b []byte, starWord, luhn bool) [][]int {
	toks, pans := refTokens(b, starWord, luhn)
	return append(pans, refGroups(b, toks, starWord, luhn)...)
}

// refTokens lists the visible bytes of b, and the PANs found in the
// payloads of its string escapes.
func refTokens(b []byte, starWord, luhn bool) (toks []refTok, pans [][]int) {
	gap := 0
	for i := 0; i < len(b); {
		if b[i] != 0x1b {
			toks = append(toks, refTok{i, b[i]})
			gap = 0
			i++
			continue
		}
		n, from, to := refEscape(b[i:])
		if n == 0 { // not an escape: ESC is a break, what follows is text
			toks = append(toks, refTok{-1, 0})
			gap = 0
			i++
			continue
		}
		if to > from {
			for _, p := range refPANs(b[i+from:i+to], starWord, luhn) {
				for k := range p {
					p[k] += i + from
				}
				pans = append(pans, p)
			}
		}
		gap += n
		if gap > refMaxEsc {
			toks = append(toks, refTok{-1, 0})
			gap = 0
		}
		i += n
	}
	return toks, pans
}

// refGroups finds the PANs among toks, the visible bytes of b.
func refGroups(b []byte, toks []refTok, starWord, luhn bool) (pans [][]int) {
	isDigit := func(t refTok) bool { return t.pos >= 0 && t.c >= '0' && t.c <= '9' }
	type grp struct{ from, to int } // toks[from:to]
	var gs []grp
	for i := 0; i < len(toks); {
		if !isDigit(toks[i]) {
			i++
			continue
		}
		j := i
		for j < len(toks) && isDigit(toks[j]) {
			j++
		}
		gs = append(gs, grp{i, j})
		i = j
	}
	word := func(k int) bool { // is toks[k] a word byte?
		return k >= 0 && k < len(toks) && toks[k].pos >= 0 && refIsWord(toks[k].c, starWord)
	}
	for a := range gs {
		f := gs[a].from
		if word(f-1) && !(toks[f-1].c == 'B' && f >= 2 && toks[f-2].pos >= 0 && toks[f-2].c == '%') {
			continue
		}
		var sep byte
		var digits, lens []int
		for z := a; z < len(gs); z++ {
			if z > a {
				prev := gs[z-1]
				if gs[z].from != prev.to+1 {
					break
				}
				s := toks[prev.to]
				if s.pos < 0 || s.c != ' ' && s.c != '-' || sep != 0 && s.c != sep {
					break
				}
				sep = s.c
			}
			for k := gs[z].from; k < gs[z].to; k++ {
				digits = append(digits, toks[k].pos)
			}
			lens = append(lens, gs[z].to-gs[z].from)
			if len(digits) > 19 {
				break
			}
			if !word(gs[z].to) && RefIsPAN(b, digits, lens, luhn) {
				pans = append(pans, append([]int(nil), digits...))
			}
		}
	}
	return pans
}

// RefIsPAN reports whether the digits of b at positions pos, written in
// groups of the lengths lens (one group: contiguous), are a card number:
// 13 to 19 digits that pass the Luhn check and, unless luhn is set, that a
// brand issues, in a grouping cards are printed with.
func RefIsPAN(b []byte, pos, lens []int, luhn bool) bool {
	if len(pos) < 13 || len(pos) > 19 || !RefLuhn(b, pos) {
		return false
	}
	if luhn {
		return true
	}
	digits := make([]byte, len(pos))
	for i, p := range pos {
		digits[i] = b[p]
	}
	return (len(lens) == 1 || refPrinted(lens)) && RefIssued(string(digits))
}

// RefLuhn reports whether the digits of b at positions pos pass the Luhn
// check.
func RefLuhn(b []byte, pos []int) bool {
	sum := 0
	for k := range pos {
		d := int(b[pos[len(pos)-1-k]] - '0')
		if k%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// PANs returns the digits of every card number in s, as RefPANs finds
// them: what must never leave the bastion.
func PANs(s string) []string {
	var out []string
	for _, p := range RefPANs([]byte(s), false) {
		d := make([]byte, len(p))
		for i, k := range p {
			d[i] = s[k]
		}
		out = append(out, string(d))
	}
	return out
}
