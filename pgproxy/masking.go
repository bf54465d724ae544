package pgproxy

import (
	"bytes"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/postern/postern/mask"
)

// minPANDigits is the fewest digits a card number has: a value with fewer
// ASCII digits holds none, and is not scanned.
const minPANDigits = 13

// textJudgeMax is the largest value judged both as a terminal shows it and
// as stored text (mask.MaskText, whose plain view costs memory in
// proportion); longer values are judged as a terminal shows them, and in a
// view where each control byte is a space (see plainMask).
const textJudgeMax = 1 << 20

// masker masks card numbers in what the server sends, keeping lengths.
// value and count are used by the server's reader only.
type masker struct {
	on      bool
	mode    mask.Mode
	detect  mask.Detect
	count   atomic.Int64 // card numbers masked in what the client got
	scratch []byte
	// legacy is set once the server reported a client_encoding other
	// than UTF8 or SQL_ASCII: every value is judged in the encoding
	// views too (see encoding.go).
	legacy bool
}

func newMasker(cfg Config) *masker {
	return &masker{on: !cfg.NoMasking, mode: cfg.Mode, detect: cfg.Detect}
}

// Tables for mayHoldPAN, by byte: digit is 1 for an ASCII digit; keep is
// -1 (all bits) for a byte that does not end a run of digits (a digit, a
// space or a dash, which may join groups of a card number, and a special
// byte), 0 for the rest (letters, other punctuation); special is 1 for a
// control, DEL or a byte beyond ASCII.
var digitT, specialT [256]uint8
var keepT [256]int8

func init() {
	for c := range 256 {
		switch {
		case c >= '0' && c <= '9':
			digitT[c], keepT[c] = 1, -1
		case c == ' ' || c == '-':
			keepT[c] = -1
		case c < 0x20 || c >= 0x7f:
			specialT[c], keepT[c] = 1, -1
		}
	}
}

// mayHoldPAN reports whether v could hold a card number, cheaply, so that
// most values are never scanned: a value of printable ASCII holds one only
// if a stretch of digits, spaces and dashes has at least 13 digits (the
// masker joins groups only with one space or dash, and a letter or other
// printable byte ends a group). A control, DEL or a byte beyond ASCII can
// hide or join digits (escape sequences, erases, invisible characters):
// such a value has only to have 13 digits. The loop has no branch on the
// bytes (random hex would defeat branch prediction: it did, at 4 ns a
// byte).
func mayHoldPAN(v []byte) bool {
	if len(v) < minPANDigits {
		return false
	}
	run, all := 0, 0
	var special uint8
	for _, c := range v {
		d := int(digitT[c])
		run = (run + d) & int(keepT[c])
		if run >= minPANDigits {
			return true
		}
		all += d
		special |= specialT[c]
	}
	return special != 0 && all >= minPANDigits
}

// value masks the card numbers in v in place.
func (m *masker) value(v []byte) {
	if !m.on || !mayHoldPAN(v) {
		return
	}
	m.count.Add(int64(maskBytes(v, m.detect, m.mode, &m.scratch, m.legacy)))
}

// str returns s with its card numbers masked, the same length.
func (m *masker) str(s string) string {
	if !m.on {
		return s
	}
	out, n := maskString(s, m.detect, m.mode, m.legacy)
	m.count.Add(int64(n))
	return out
}

// maskBytes masks v in place as stored text (mask.MaskText), and in the
// encoding views if it needs them (needViews), and returns how many card
// numbers it masked; scratch is reused between calls.
func maskBytes(v []byte, d mask.Detect, mode mask.Mode, scratch *[]byte, legacy bool) int {
	var orig []byte
	if needViews(v, legacy) {
		orig = bytes.Clone(v)
	}
	var n int
	if len(v) > textJudgeMax {
		n = plainMask(v, d, mode, scratch)
	} else {
		var out []byte
		out, n = d.MaskText((*scratch)[:0], v, mode)
		if n > 0 {
			copy(v, out)
		}
		*scratch = out[:0]
	}
	if cap(*scratch) > textJudgeMax {
		*scratch = nil // a huge value's view is not kept for the next
	}
	if orig != nil {
		n = max(n, maskEncodings(v, orig, d, mode))
	}
	return n
}

// plainMask masks v as a terminal shows it, and again as text in which
// each control byte is a space (digits that a control keeps apart on the
// screen, or hides in an escape sequence, stand together for a program
// reading the value).
func plainMask(v []byte, d mask.Detect, mode mask.Mode, scratch *[]byte) int {
	n := d.MaskInPlace(v, mode)
	p := append((*scratch)[:0], v...)
	*scratch = p[:0]
	for i, c := range p {
		if c < 0x20 || c == 0x7f {
			p[i] = ' '
		}
	}
	if k := d.MaskInPlace(p, mode); k > 0 {
		for i, c := range p {
			if c == '*' && v[i]-'0' < 10 {
				v[i] = '*'
			}
		}
		n = max(n, k)
	}
	return n
}

// maskString masks s as maskBytes does and returns it, the same length,
// and the count.
func maskString(s string, d mask.Detect, mode mask.Mode, legacy bool) (string, int) {
	if !mayHoldPAN([]byte(s)) {
		return s, 0
	}
	b := []byte(s)
	var scratch []byte
	n := maskBytes(b, d, mode, &scratch, legacy)
	if n == 0 {
		return s, 0
	}
	return string(b), n
}

// recordText is s masked for a record, whatever the relay's masking, and
// cut to limit bytes (at a UTF-8 boundary); clipped says whether it was.
func recordText(s string, d mask.Detect, mode mask.Mode, limit int) (text string, clipped bool) {
	if len(s) > limit {
		// Mask the whole before cutting: a cut card number would no
		// longer be judged one.
		s, _ = maskString(s, d, mode, false)
		cut := limit
		for cut > 0 && cut < len(s) && s[cut]&0xc0 == 0x80 {
			cut--
		}
		return s[:cut], true
	}
	s, _ = maskString(s, d, mode, false)
	return s, false
}

// param formats one Bind parameter (or FunctionCall argument) for a
// record: text format as text; binary format as text too, marked, when
// its bytes are UTF-8 text (a text type sent in binary format is the
// same bytes: shown as a size, it would hide the SQL a function runs),
// else as its size.
func param(v []byte, binary bool, d mask.Detect, mode mask.Mode) string {
	prefix := ""
	switch {
	case v == nil:
		return "NULL"
	case binary && !looksText(v):
		return "<binary, " + strconv.Itoa(len(v)) + " bytes>"
	case binary:
		prefix = "binary "
	}
	s, clipped := recordText(string(v), d, mode, MaxParam)
	s = prefix + "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if clipped {
		s += "…"
	}
	return s
}

// looksText reports whether v is UTF-8 text: no invalid sequence, no
// control but tab, line feed and carriage return, and not empty.
func looksText(v []byte) bool {
	if len(v) == 0 || !utf8.Valid(v) {
		return false
	}
	for _, c := range v {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}
