package recorder

import (
	"bytes"
	"io"
	"unicode/utf8"
)

// TerminalFilter is an io.Writer that passes a recording's output on to a
// person's terminal without the parts that would act on that terminal
// (design invariant 7): every sequence that makes a terminal answer on its
// input (device status and attribute reports, XTVERSION, DECRQM, DECRQSS and
// every other DCS string, window reports, ENQ), clipboard writes (OSC 52) and
// every other OSC but titles, APC, PM and SOS strings, mode changes that make
// the terminal send mouse or focus reports or lock its keyboard, and every
// 8-bit C1 control, in either its raw byte or its UTF-8 encoding. What draws
// the screen passes: text, colours and attributes, cursor movement, erasing,
// scrolling regions, the alternate screen, character sets.
//
// The filter works from an allow-list: a sequence it does not know is
// dropped whole, never passed in part. Its output is always a subsequence of
// its input (nothing is rewritten or added) and always valid UTF-8: bytes
// that are not are dropped.
//
// Titles (OSC 0, 1 and 2) pass when their text is printable and they end
// with BEL or ESC \: a title changes no cell, and the way one comes back as
// input (the title report, CSI 21 t) is dropped with every other window
// operation. Hyperlinks (OSC 8) do not pass: their target is invisible, so
// it is not evidence, and following it would let the recording choose what
// the auditor's click opens; the link's text is ordinary output and stays.
//
// Sequences may be split across writes: the filter keeps the unfinished
// part, at most maxOSC bytes; a longer one is dropped whole. At the end of
// the stream an unfinished sequence is simply never written. The zero value
// is not usable; use NewTerminalFilter. A TerminalFilter is not safe for
// concurrent use.
type TerminalFilter struct {
	w     io.Writer
	state int
	drop  bool   // the current sequence is dropped, whatever its end
	osc   bool   // the current string is an OSC (BEL ends it too)
	inter bool   // the current CSI has intermediate bytes
	seq   []byte // the current sequence, while it may still pass
	utf   [4]byte
	nutf  int  // bytes of a UTF-8 character held in utf (ground state)
	need  int  // its length, from the lead byte
	scont int  // UTF-8 continuation bytes still due inside a string
	slead byte // the lead byte they follow
	out   []byte
}

// Filter states.
const (
	tfGround = iota
	tfEscape
	tfEscInter // ESC and intermediate bytes
	tfCSI
	tfString    // OSC, DCS, SOS, PM or APC body
	tfStringEsc // ESC inside a string: ST, or the string is cut off
)

const (
	maxSeq = 128 // CSI and ESC sequences
	maxOSC = 512 // a title, with its introducer
)

// NewTerminalFilter returns a filter that writes to w.
func NewTerminalFilter(w io.Writer) *TerminalFilter {
	return &TerminalFilter{w: w, seq: make([]byte, 0, 64)}
}

// Write filters p and writes what is left to the underlying writer. It
// returns len(p) unless that write fails.
func (f *TerminalFilter) Write(p []byte) (int, error) {
	f.out = f.out[:0]
	for i := 0; i < len(p); i++ {
		if f.state == tfGround && f.nutf == 0 {
			// Fast path: a run of printable ASCII.
			j := i
			for j < len(p) && p[j] >= 0x20 && p[j] < 0x7f {
				j++
			}
			if j > i {
				f.out = append(f.out, p[i:j]...)
				i = j - 1
				continue
			}
		}
		f.feed(p[i])
	}
	if len(f.out) > 0 {
		if _, err := f.w.Write(f.out); err != nil {
			return 0, err
		}
	}
	if cap(f.out) > 64<<10 {
		f.out = nil // one huge write does not pin its buffer
	}
	return len(p), nil
}

func (f *TerminalFilter) feed(b byte) {
	switch f.state {
	case tfGround:
		f.ground(b)
	case tfEscape:
		f.escape(b)
	case tfEscInter:
		f.escInter(b)
	case tfCSI:
		f.csi(b)
	case tfString:
		f.str(b)
	case tfStringEsc:
		if b == '\\' {
			if f.osc && !f.drop && titleAllowed(f.seq) {
				f.out = append(f.out, f.seq...)
				f.out = append(f.out, 0x1b, '\\')
			}
			f.reset()
			return
		}
		// The ESC cut the string off and starts a new sequence.
		f.begin(tfEscape, false)
		f.seq = append(f.seq, 0x1b)
		f.escape(b)
	}
}

// reset returns to the ground state, forgetting the current sequence.
func (f *TerminalFilter) reset() { f.begin(tfGround, false) }

func (f *TerminalFilter) begin(state int, drop bool) {
	f.state, f.drop, f.osc, f.inter, f.scont = state, drop, false, false, 0
	f.seq = f.seq[:0]
}

// add appends b to a sequence that may still pass; past limit, the
// sequence is dropped instead.
func (f *TerminalFilter) add(b byte, limit int) {
	if f.drop {
		return
	}
	if len(f.seq) >= limit {
		f.drop = true
		f.seq = f.seq[:0]
		return
	}
	f.seq = append(f.seq, b)
}

func (f *TerminalFilter) ground(b byte) {
	if f.nutf > 0 {
		if b >= 0x80 && b <= 0xbf {
			f.utf[f.nutf] = b
			f.nutf++
			if f.nutf < f.need {
				return
			}
			r, size := utf8.DecodeRune(f.utf[:f.nutf])
			switch {
			case r == utf8.RuneError && size <= 1: // invalid: dropped
			case r >= 0x80 && r <= 0x9f:
				f.c1(byte(r))
			default:
				f.out = append(f.out, f.utf[:f.nutf]...)
			}
			f.nutf = 0
			return
		}
		f.nutf = 0 // an unfinished character is dropped; b starts afresh
	}
	switch {
	case b == 0x1b:
		f.begin(tfEscape, false)
		f.seq = append(f.seq, b)
	case b < 0x20:
		// BEL, BS, HT, LF, VT, FF, CR, SO and SI draw or move; the
		// rest (ENQ asks for the answerback message) are dropped.
		if b >= 0x07 && b <= 0x0f {
			f.out = append(f.out, b)
		}
	case b < 0x7f:
		f.out = append(f.out, b)
	case b == 0x7f, b >= 0xa0 && b <= 0xc1, b >= 0xf5:
		// DEL, a stray continuation byte or one that never starts
		// valid UTF-8: dropped.
	case b <= 0x9f:
		f.c1(b)
	default:
		f.utf[0], f.nutf, f.need = b, 1, utf8Len(b)
	}
}

func utf8Len(lead byte) int {
	switch {
	case lead >= 0xf0:
		return 4
	case lead >= 0xe0:
		return 3
	}
	return 2
}

// c1 handles an 8-bit control. Those that open a sequence open one that is
// dropped whole (the filter does not rewrite them into 7-bit form); the
// others (DECID among them, which asks for device attributes) are dropped.
func (f *TerminalFilter) c1(b byte) {
	switch b {
	case 0x9b: // CSI
		f.begin(tfCSI, true)
	case 0x9d: // OSC
		f.begin(tfString, true)
		f.osc = true
	case 0x90, 0x98, 0x9e, 0x9f: // DCS, SOS, PM, APC
		f.begin(tfString, true)
	}
}

// control handles a C0 byte inside a sequence. ESC starts a new sequence and CAN or SUB cancel it, as
// on a VT100; any other C0 control is dropped, because passing it before
// the sequence it interrupts would reorder the output.
func (f *TerminalFilter) control(b byte) {
	switch b {
	case 0x1b:
		f.begin(tfEscape, false)
		f.seq = append(f.seq, b)
	case 0x18, 0x1a:
		f.reset()
	}
}

func (f *TerminalFilter) escape(b byte) {
	switch {
	case b < 0x20:
		f.control(b)
	case b == '[':
		f.state = tfCSI
		f.seq = append(f.seq, b)
	case b == ']':
		f.state = tfString
		f.osc = true
		f.seq = append(f.seq, b)
	case b == 'P', b == 'X', b == '^', b == '_': // DCS, SOS, PM, APC
		f.begin(tfString, true)
	case b < 0x30:
		f.state = tfEscInter
		f.seq = append(f.seq, b)
	case b < 0x7f:
		// DECSC, DECRC, the numeric keypad (DECKPNM), IND, NEL, HTS, RI
		// and RIS. Not DECID (ESC Z), which asks for device attributes,
		// nor the application keypad (DECKPAM, ESC =), which makes the
		// auditor's keypad send escape sequences the player would read
		// as keys (keypad 1 is ESC O q).
		if bytes.IndexByte([]byte("78>DEHMc"), b) >= 0 {
			f.out = append(f.out, f.seq...)
			f.out = append(f.out, b)
		}
		f.reset()
	case b == 0x7f: // ignored by terminals
	default:
		f.reset()
		f.ground(b)
	}
}

func (f *TerminalFilter) escInter(b byte) {
	switch {
	case b < 0x20:
		f.control(b)
	case b < 0x30:
		f.add(b, maxSeq)
	case b < 0x7f:
		if !f.drop && escAllowed(f.seq[1:], b) {
			f.out = append(f.out, f.seq...)
			f.out = append(f.out, b)
		}
		f.reset()
	case b == 0x7f:
	default:
		f.reset()
		f.ground(b)
	}
}

// escAllowed: character set designation (G0 to G3) and the line size
// sequences of ESC #. Not ESC % (it can take an xterm out of UTF-8, after
// which UTF-8 continuation bytes would be read as 8-bit controls), nor
// ESC SP (7- or 8-bit answers).
func escAllowed(inter []byte, final byte) bool {
	if len(inter) != 1 {
		return false
	}
	switch inter[0] {
	case '(', ')', '*', '+', '-', '.', '/':
		return true
	case '#':
		return final >= '3' && final <= '8' && final != '7'
	}
	return false
}

func (f *TerminalFilter) csi(b byte) {
	switch {
	case b < 0x20:
		f.control(b)
	case b < 0x30:
		f.inter = true
		f.add(b, maxSeq)
	case b < 0x40:
		if f.inter { // a parameter after an intermediate: malformed
			f.drop = true
		}
		f.add(b, maxSeq)
	case b < 0x7f:
		if !f.drop && csiAllowed(f.seq[2:], b) {
			f.out = append(f.out, f.seq...)
			f.out = append(f.out, b)
		}
		f.reset()
	case b == 0x7f:
	default:
		f.reset()
		f.ground(b)
	}
}

// csiAllowed says whether CSI params final draws: an allow-list, because
// terminals answer many more queries than anyone lists.
func csiAllowed(params []byte, final byte) bool {
	i := len(params)
	for i > 0 && params[i-1] < 0x30 {
		i--
	}
	params, inter := params[:i], string(params[i:])
	var marker byte
	if len(params) > 0 && params[0] >= 0x3c {
		marker, params = params[0], params[1:]
	}
	if inter != "" {
		// DECSCUSR (cursor shape) and DECSTR (soft reset).
		return marker == 0 && (inter == " " && final == 'q' || inter == "!" && final == 'p')
	}
	switch marker {
	case 0:
		switch {
		case bytes.IndexByte([]byte("@ABCDEFGHIJKLMPSXZ`abdefgmrsu"), final) >= 0:
			return true
		case final == 'T': // scroll down; with five parameters, xterm's mouse highlight tracking
			return bytes.IndexByte(params, ';') < 0
		case final == 'h', final == 'l':
			// IRM and LNM only: KAM (2) locks the keyboard, SRM (12)
			// echoes keys on the screen.
			return modesIn(params, 4, 20)
		}
	case '?':
		switch final {
		case 'J', 'K': // selective erase
			return true
		case 'h', 'l':
			// Reverse video, origin, wrap, cursor blink and
			// visibility, the alternate screen, bracketed paste,
			// synchronised output. Not application cursor keys (1)
			// or keypad (66), nor mouse or focus reporting: what the
			// auditor's keys or mouse then send would reach the
			// player as keys. Nor column mode, which resizes the
			// window.
			return modesIn(params, 5, 6, 7, 12, 25, 47, 1047, 1048, 1049, 2004, 2026)
		}
	}
	return false
}

// modesIn reports whether params is a list of numbers all among allowed.
func modesIn(params []byte, allowed ...int) bool {
	for _, p := range bytes.Split(params, []byte{';'}) {
		if len(p) == 0 || len(p) > 5 {
			return false
		}
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return false
			}
			n = n*10 + int(c-'0')
		}
		found := false
		for _, a := range allowed {
			found = found || a == n
		}
		if !found {
			return false
		}
	}
	return true
}

func (f *TerminalFilter) str(b byte) {
	if f.scont > 0 {
		if b >= 0x80 && b <= 0xbf {
			f.scont--
			if f.slead == 0xc2 && b == 0x9c { // ST as UTF-8: as 0x9c below
				f.reset()
				return
			}
			f.add(b, maxOSC)
			return
		}
		f.scont = 0
	}
	switch {
	case b == 0x07 && f.osc:
		if !f.drop && titleAllowed(f.seq) {
			f.out = append(f.out, f.seq...)
			f.out = append(f.out, b)
		}
		f.reset()
	case b == 0x1b:
		f.state = tfStringEsc
	case b == 0x18, b == 0x1a:
		f.reset()
	case b == 0x9c: // ST, 8-bit: the string ends, and is dropped
		f.reset()
	default:
		if b >= 0xc2 && b <= 0xf4 {
			f.scont, f.slead = utf8Len(b)-1, b
		}
		f.add(b, maxOSC)
	}
}

// titleAllowed says whether seq, ESC ] and the body of an OSC, sets the
// icon name or window title (OSC 0, 1, 2) to printable text.
func titleAllowed(seq []byte) bool {
	num, text, ok := bytes.Cut(seq[2:], []byte{';'})
	if !ok || len(num) != 1 || num[0] < '0' || num[0] > '2' || !utf8.Valid(text) {
		return false
	}
	for _, r := range string(text) {
		if r < 0x20 || r >= 0x7f && r <= 0x9f {
			return false
		}
	}
	return true
}
