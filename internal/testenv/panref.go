package testenv

// The reference PAN matcher, written for clarity, not speed: it turns the
// whole input into tokens as a terminal shows them (visible bytes; escape
// sequences and ignored controls, which show nothing; erases; breaks),
// then walks them with lists instead of the scanner's fixed arrays, fast
// paths and buffer handling. The mask package's tests hold its streaming
// scanner to it; end-to-end tests use it to prove no card number left the
// bastion.

const (
	refMaxEsc             = 64        // longest escape sequence held whole
	refHoldLimit          = 4096 - 64 // how far back a candidate's first unmasked digit may lie
	refBS, refDEL, refESC = 0x08, 0x7f, 0x1b
)

// Token kinds.
const (
	tokVis   = iota // a visible byte
	tokQuiet        // an escape sequence or an ignored control
	tokErase        // BS, or DEL in typed input
	tokBreak        // the ESC of a broken escape sequence
)

type refTok struct {
	kind      int
	pos, last int // first and last byte
	c         byte
}

func refIsWord(c byte, starWord bool) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || starWord && c == '*'
}

func refIsDigit(c byte) bool { return c >= '0' && c <= '9' }

// RefResult is what the reference finds in a stream: the PANs, as lists
// of digit positions, and the digits masked whole because a candidate
// waited too long (Forced).
type RefResult struct {
	PANs   [][]int
	Forced []int
}

// RefPANs returns the PANs in b, terminal output, as lists of digit
// positions: numbers a payment brand issues (RefIssued) passing the Luhn
// check, contiguous or in groups split by one kind of separator (space or
// dash) in a grouping cards are printed with (refPrinted), but not one
// group after D-D (digits, a dash, digits, a dash); escape sequences and ignored
// controls between them ignored, erases applied, not inside a longer
// number or a word (with starWord, '*' counts as a word byte, so a masked
// number's digits are not found again). Payloads of string escapes are
// searched on their own.
func RefPANs(b []byte, starWord bool) [][]int {
	return RefJudge(b, RefOpts{StarWord: starWord}).PANs
}

// RefPANsLuhn is RefPANs under the broader rule (mask.DetectLuhn): any 13
// to 19 digits passing the Luhn check, in any groups.
func RefPANsLuhn(b []byte, starWord bool) [][]int {
	return RefJudge(b, RefOpts{StarWord: starWord, Luhn: true}).PANs
}

// RefInputPANs is RefPANs for typed input, where DEL erases as BS does.
func RefInputPANs(b []byte, starWord bool) [][]int {
	return RefJudge(b, RefOpts{StarWord: starWord, Input: true}).PANs
}

// RefOpts says how RefJudge reads a stream. The zero value judges
// terminal output under the default rule (mask.DetectBrands).
type RefOpts struct {
	StarWord bool // '*' is a word byte, so a masked number is not found again
	Input    bool // typed input (mask.Config.Input): DEL erases as BS does
	Luhn     bool // the broader rule, mask.DetectLuhn
}

// RefJudge judges b as the mask package documents, read as o says.
func RefJudge(b []byte, o RefOpts) RefResult {
	var res RefResult
	var toks []refTok
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == refESC:
			n, from, to := refEscape(b[i:], o.Input)
			if n == 0 { // not an escape: ESC is a break, what follows is text
				toks = append(toks, refTok{kind: tokBreak, pos: i, last: i})
				i++
				continue
			}
			if to > from {
				sub := RefJudge(b[i+from:i+to], o)
				for _, p := range sub.PANs {
					for k := range p {
						p[k] += i + from
					}
					res.PANs = append(res.PANs, p)
				}
				for _, p := range sub.Forced {
					res.Forced = append(res.Forced, p+i+from)
				}
			}
			toks = append(toks, refTok{kind: tokQuiet, pos: i, last: i + n - 1})
			i += n
			continue
		case o.Input && (c == 0x03 || c == 0x15): // ^C, ^U: the typed line is dropped
			toks = append(toks, refTok{kind: tokBreak, pos: i, last: i})
		case c == refBS || c == refDEL && o.Input:
			toks = append(toks, refTok{kind: tokErase, pos: i, last: i})
		case refIgnored(c):
			toks = append(toks, refTok{kind: tokQuiet, pos: i, last: i})
		default:
			toks = append(toks, refTok{kind: tokVis, pos: i, last: i, c: c})
		}
		i++
	}
	r := refRun{b: b, starWord: o.StarWord, luhn: o.Luhn, res: &res}
	for _, t := range toks {
		r.tok(t)
	}
	r.brk()
	return res
}

// Run states.
const (
	refText  = iota // not in a digit run
	refGroup        // in a group of digits
	refSep          // after a group and one separator
	refTrack        // after a candidate and a track 2 'D'
)

// refRun walks the tokens of one stream. Its candidate is groups: the
// live groups of the run being read, oldest first, at most 19 digits in
// all.
type refRun struct {
	b        []byte
	starWord bool
	luhn     bool
	res      *RefResult

	st            int
	prev, prev2   byte // the last two visible bytes; 0 after a break
	groups        []refDigits
	forced        int  // digits of groups (in order) masked already
	cur           int  // digits of the current group, live or not
	curDead       bool // the current group is not in groups
	curSepd       bool // the current group follows a separator
	curDash       bool // the current group follows a '-' that follows a digit
	firstSepd     bool // groups[0] follows a separator
	chainSep, sep byte
	track, month  int
}

// refDigits is a digit group: its digit positions, whether a '-' joined
// it to the digit group before it (dashed), and whether that group was
// itself dashed (tail: it follows D-D).
type refDigits struct {
	pos          []int
	dashed, tail bool
}

func (r *refRun) digits() []int {
	var d []int
	for _, g := range r.groups {
		d = append(d, g.pos...)
	}
	return d
}

func (r *refRun) word(c byte) bool { return c != 0 && refIsWord(c, r.starWord) }

func (r *refRun) tok(t refTok) {
	if t.kind != tokBreak {
		// The hold bound: a candidate whose first unmasked digit lies
		// too far back is masked whole before the token is taken.
		if d := r.digits(); len(d) > r.forced && t.last-d[r.forced] >= refHoldLimit {
			r.res.Forced = append(r.res.Forced, d[r.forced:]...)
			r.forced = len(d)
		}
	}
	switch t.kind {
	case tokBreak:
		r.brk()
	case tokErase:
		r.erase()
	case tokVis:
		r.visible(t.pos, t.c)
	}
}

func (r *refRun) visible(pos int, c byte) {
	isDigit := refIsDigit(c)
	switch r.st {
	case refText:
		if isDigit {
			r.startGroup()
		}
	case refGroup:
		if !isDigit {
			r.endGroup(c)
		}
	case refSep:
		if isDigit {
			r.join()
		} else {
			r.end()
		}
	case refTrack:
		if !isDigit {
			r.end()
			break
		}
		r.track++
		switch r.track {
		case 3:
			r.month = 10 * int(c-'0')
		case 4:
			if m := r.month + int(c-'0'); m >= 1 && m <= 12 {
				r.judge()
			}
			r.end()
			r.st, r.cur, r.curDead, r.curSepd, r.curDash = refGroup, 4, true, false, false // digits after a word byte
		}
		r.prev2, r.prev = r.prev, c
		return
	}
	if isDigit && r.st == refGroup {
		r.digit(pos)
	}
	r.prev2, r.prev = r.prev, c
}

// startGroup starts a run at a digit: live unless it follows a word byte
// (but a track 1 "%B" counts as none).
func (r *refRun) startGroup() {
	live := !r.word(r.prev) || r.prev == 'B' && r.prev2 == '%'
	r.st, r.cur, r.curDead, r.curSepd, r.curDash = refGroup, 0, !live, false, false
	r.groups, r.forced = nil, 0
	if live {
		r.groups, r.firstSepd = []refDigits{{}}, false
	}
}

func (r *refRun) digit(pos int) {
	r.cur++
	if r.curDead {
		return
	}
	if r.cur > 19 { // part of a longer number: never a PAN
		r.curDead = true
		r.groups, r.forced = nil, 0
		return
	}
	if len(r.digits()) == 19 {
		r.drop()
	}
	g := &r.groups[len(r.groups)-1]
	g.pos = append(g.pos, pos)
}

func (r *refRun) drop() {
	r.forced = max(r.forced-len(r.groups[0].pos), 0)
	r.groups = r.groups[1:]
	r.firstSepd = true
}

func (r *refRun) endGroup(c byte) {
	if !r.curDead && len(r.digits()) >= 13 {
		switch {
		case !r.word(c):
			r.judge()
		case c == 'D' || c == 'd':
			r.st, r.track = refTrack, 0
			return
		}
	}
	if c != ' ' && c != '-' {
		r.end()
		return
	}
	r.st, r.sep = refSep, c
}

// join starts a group after a separator.
func (r *refRun) join() {
	for len(r.groups) > 1 && r.sep != r.chainSep {
		r.drop()
	}
	for len(r.digits()) >= 19 {
		r.drop()
	}
	if len(r.groups) == 0 {
		r.firstSepd = true
	}
	r.chainSep = r.sep
	dash := r.sep == '-'
	r.groups = append(r.groups, refDigits{dashed: dash, tail: dash && r.curDash})
	r.st, r.cur, r.curDead, r.curSepd, r.curDash = refGroup, 0, false, true, dash
}

// end ends the run.
func (r *refRun) end() {
	r.st, r.groups, r.forced = refText, nil, 0
}

// judge records every PAN that ends with the last live group.
func (r *refRun) judge() {
	var digits, lens []int
	for g := len(r.groups) - 1; g >= 0; g-- {
		digits = append(append([]int(nil), r.groups[g].pos...), digits...)
		lens = append([]int{len(r.groups[g].pos)}, lens...)
		if refIsPAN(r.b, digits, lens, r.groups[g].tail, r.luhn) {
			r.res.PANs = append(r.res.PANs, digits)
		}
	}
}

// refIsPAN is the PAN decision: whether the digits of b at positions pos,
// written in groups of the lengths lens (one group: contiguous), the first
// following D-D (tail: a digit group, a '-', a digit group and a '-'), are
// a card number. That is 13 to 19 digits that pass the Luhn check and,
// unless luhn is set, that a brand issues, in a grouping cards are printed
// with, and not one group after D-D (the tail of a dash-joined ID).
func refIsPAN(b []byte, pos, lens []int, tail bool, luhn bool) bool {
	if len(pos) < 13 || len(pos) > 19 || !RefLuhn(b, pos) {
		return false
	}
	if luhn {
		return true
	}
	if len(lens) == 1 && tail {
		return false
	}
	digits := make([]byte, len(pos))
	for i, p := range pos {
		digits[i] = b[p]
	}
	return (len(lens) == 1 || refPrinted(lens)) && RefIssued(string(digits))
}

// erase takes back a digit of the current group or the separator after
// the last live group; anything else erased is unknown: a break.
func (r *refRun) erase() {
	switch r.st {
	case refGroup:
		if !r.curDead && len(r.digits()) >= 13 {
			r.judge()
		}
		r.cur--
		if !r.curDead {
			g := &r.groups[len(r.groups)-1]
			g.pos = g.pos[:len(g.pos)-1]
			r.forced = min(r.forced, len(r.digits()))
		}
		if r.cur > 0 {
			return
		}
		if !r.curDead {
			r.groups = r.groups[:len(r.groups)-1]
		}
		if r.curSepd && len(r.groups) > 0 {
			r.st, r.sep, r.curDash = refSep, r.chainSep, r.groups[len(r.groups)-1].dashed
			return
		}
	case refSep:
		if n := len(r.groups); n > 0 {
			r.st, r.cur, r.curDead, r.curDash = refGroup, len(r.groups[n-1].pos), false, r.groups[n-1].dashed
			r.curSepd = n > 1 || r.firstSepd
			return
		}
	}
	r.end()
	r.prev, r.prev2 = 0, 0
}

// brk ends the run where no PAN touches it.
func (r *refRun) brk() {
	if r.st == refGroup {
		r.endGroup(0)
	}
	r.end()
	r.prev, r.prev2 = 0, 0
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

// PANs returns the digits of every card number in s, terminal output, as
// RefPANs finds them: what must never leave the bastion.
func PANs(s string) []string { return refStrings(s, RefPANs([]byte(s), false)) }

// InputPANs is PANs for typed input.
func InputPANs(s string) []string { return refStrings(s, RefInputPANs([]byte(s), false)) }

func refStrings(s string, pans [][]int) []string {
	var out []string
	for _, p := range pans {
		d := make([]byte, len(p))
		for i, k := range p {
			d[i] = s[k]
		}
		out = append(out, string(d))
	}
	return out
}
