package approval

import "unicode/utf8"

// typed is the input view of the line being typed: the keys the user sent
// since the line began, replayed as a line editor would. It follows plain
// typing, Backspace, Ctrl-U, Ctrl-W and bracketed paste exactly; any other
// editing key (arrows, Tab, Ctrl-R, Ctrl-A, Esc …) makes it inexact, as it
// cannot know what the editor did, and from then on it keeps collecting
// the printable keys only as a rough guess. The zero value is an empty,
// exact line. Its text is capped at MaxLine+1 bytes: longer is unjudgeable
// anyway.
type typed struct {
	text  []byte
	exact bool // no key whose effect is unknown since the line began
	keys  int  // keys other than Enter since the line began

	esc    []byte // an escape sequence being read, up to its end
	paste  bool   // inside a bracketed paste
	pasted bool   // the line holds pasted text with a newline
}

// Bracketed paste markers (xterm): the terminal sends them around pasted
// text when the program enabled mode 2004.
const (
	pasteStart = "\x1b[200~"
	pasteEnd   = "\x1b[201~"
)

func (k *typed) reset() { *k = typed{text: k.text[:0], exact: true} }

// key feeds one byte. It reports whether the byte is an Enter that ends
// the line: CR or LF outside a bracketed paste. bracketed says whether the
// program enabled bracketed paste: if not, the markers are keys like
// others, and a newline inside them is an Enter.
func (k *typed) key(b byte, bracketed bool) bool {
	if len(k.esc) > 0 || b == 0x1b {
		k.escape(b, bracketed)
		return false
	}
	if b == '\r' || b == '\n' {
		if k.paste {
			k.insert(b)
			k.pasted = true
			return false
		}
		return true
	}
	k.keys++
	if k.paste {
		k.insert(b)
		return false
	}
	switch {
	case b == 0x7f || b == 0x08: // Backspace: the last character
		_, n := utf8.DecodeLastRune(k.text)
		k.text = k.text[:len(k.text)-n]
	case b == 0x15: // Ctrl-U: the whole line (the cursor is at its end)
		k.text = k.text[:0]
	case b == 0x17: // Ctrl-W: back over spaces, then a word
		i := len(k.text)
		for i > 0 && k.text[i-1] == ' ' {
			i--
		}
		for i > 0 && k.text[i-1] != ' ' {
			i--
		}
		k.text = k.text[:i]
	case b < 0x20:
		k.exact = false
	default:
		k.insert(b)
	}
	return false
}

func (k *typed) insert(b byte) {
	if len(k.text) <= MaxLine {
		k.text = append(k.text, b)
	}
}

// escape reads an escape sequence: a bracketed paste marker, or an editing
// key whose effect is unknown.
func (k *typed) escape(b byte, bracketed bool) {
	k.esc = append(k.esc, b)
	s := string(k.esc)
	if bracketed && (s == pasteStart || s == pasteEnd) {
		k.paste = s == pasteStart
		k.esc = k.esc[:0]
		return
	}
	if k.paste && (len(s) > len(pasteEnd) || s != pasteEnd[:len(s)]) {
		// Inside a paste, text that is not the end marker is text.
		k.esc = k.esc[:0]
		for _, c := range []byte(s) {
			k.insert(c)
		}
		return
	}
	if len(s) == 1 {
		return
	}
	// ESC [ or ESC O: a CSI or SS3 key, ended by a byte in 0x40–0x7e;
	// ESC and anything else (Alt-key): two bytes.
	end := len(s) == 2 && s[1] != '[' && s[1] != 'O' ||
		len(s) > 2 && b >= 0x40 && b <= 0x7e ||
		len(s) > 16
	if end {
		k.exact = false
		k.keys++
		k.esc = k.esc[:0]
	}
}
