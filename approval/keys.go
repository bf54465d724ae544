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

	tail int // where in text the keys typed since the last inexact one start

	esc    []byte // an escape sequence being read, up to its end
	prefix byte   // Ctrl-X or quoted insert (Ctrl-V, Ctrl-Q): the key after it is read with it; 0 when none
	paste  bool   // inside a bracketed paste
	pasted bool   // the line holds pasted text with a newline
}

// Enter says how a key that may run the line was typed.
type Enter uint8

const (
	// EnterPlain is CR or LF typed as a key of its own: the shell runs
	// the line, or asks for more when it is unfinished.
	EnterPlain Enter = iota + 1
	// EnterOther is a key that runs the line in readline's default
	// bindings, or in some of its modes, or in a program reading in the
	// terminal driver's cooked mode, but may also not: Ctrl-O
	// (operate-and-get-next), Ctrl-D (end of input: a shell such as dash
	// runs the line it has), and CR or LF after Esc (vi mode), inside an
	// escape sequence, after Ctrl-X or after a quoted insert (which a
	// program reading in cooked mode without lnext does not quote).
	EnterOther
	// EnterEditor runs what an editor or a keyboard macro returns:
	// Ctrl-X Ctrl-E (edit-and-execute-command) and Ctrl-X e
	// (call-last-kbd-macro). What runs cannot be judged from the line.
	EnterEditor
	// EnterPaste is a newline inside a bracketed paste: readline keeps it
	// in the line, a program that does not do bracketed paste runs the
	// line there.
	EnterPaste
)

// Keys that change the meaning of the key after them.
const (
	keyCtrlX    = 0x18
	keyCtrlV    = 0x16 // quoted-insert, and the terminal driver's lnext
	keyCtrlQ    = 0x11 // quoted-insert
	keyCtrlO    = 0x0f // operate-and-get-next
	keyCtrlD    = 0x04 // the terminal driver's end of input
	keyCtrlE    = 0x05
	keyEsc      = 0x1b
	keyAbortEsc = 0xff // prefix: a control key ended an escape sequence
)

// Bracketed paste markers (xterm): the terminal sends them around pasted
// text when the program enabled mode 2004.
const (
	pasteStart = "\x1b[200~"
	pasteEnd   = "\x1b[201~"
)

func (k *typed) reset() { *k = typed{text: k.text[:0], esc: k.esc[:0], exact: true} }

// key feeds one byte and reports whether it may run the line, and how (0:
// it does not). bracketed says whether the program enabled bracketed
// paste: if not, the markers are keys like others.
func (k *typed) key(b byte, bracketed bool) Enter {
	if len(k.esc) > 0 {
		if k.escape(b, bracketed) {
			return 0
		}
		// b ended the sequence: it is read on its own.
	} else if b == keyEsc {
		k.esc = append(k.esc, b)
		k.prefix = 0
		return 0
	}
	if k.paste {
		if b == '\r' || b == '\n' {
			k.insert('\n')
			k.pasted = true
			return EnterPaste
		}
		k.insert(b)
		return 0
	}
	prefix := k.prefix
	k.prefix = 0
	if b == '\r' || b == '\n' {
		if prefix != 0 {
			return EnterOther
		}
		return EnterPlain
	}
	k.keys++
	switch prefix {
	case keyCtrlX: // a two-key command
		k.inexact()
		if b == keyCtrlE || b == 'e' {
			return EnterEditor
		}
		return 0
	case keyCtrlV, keyCtrlQ: // the key itself, whatever it is
		k.inexact()
		return 0
	}
	return k.edit(b)
}

// edit applies an editing or printable key.
func (k *typed) edit(b byte) Enter {
	// Erasing with nothing typed may erase what the shell has from before
	// (an Enter it did not run): the keys no longer tell the line.
	empty := len(k.text) == 0
	switch {
	case b == keyCtrlO || b == keyCtrlD:
		k.inexact()
		return EnterOther
	case b == keyCtrlX || b == keyCtrlV || b == keyCtrlQ:
		k.prefix = b
		k.inexact()
	case b == 0x7f || b == 0x08: // Backspace: the last character
		_, n := utf8.DecodeLastRune(k.text)
		k.text = k.text[:len(k.text)-n]
		k.tail = min(k.tail, len(k.text))
		if empty {
			k.inexact()
		}
	case b == 0x15: // Ctrl-U: the whole line (the cursor is at its end)
		k.text = k.text[:0]
		k.tail = 0
		if empty {
			k.inexact()
		}
	case b == 0x17: // Ctrl-W: back over spaces, then a word
		i := len(k.text)
		for i > 0 && k.text[i-1] == ' ' {
			i--
		}
		for i > 0 && k.text[i-1] != ' ' {
			i--
		}
		k.text = k.text[:i]
		k.tail = min(k.tail, i)
		if empty {
			k.inexact()
		}
	case b < 0x20:
		k.inexact()
	default:
		k.insert(b)
	}
	return 0
}

// inexact notes a key whose effect is unknown.
func (k *typed) inexact() {
	k.exact = false
	k.tail = len(k.text)
}

// typedTail is the text typed plainly since the last key whose effect is
// unknown: the screen shows it once the shell read it.
func (k *typed) typedTail() string { return string(k.text[min(k.tail, len(k.text)):]) }

func (k *typed) insert(b byte) {
	if len(k.text) <= MaxLine {
		k.text = append(k.text, b)
	}
}

// escape adds b to the escape sequence being read: a bracketed paste
// marker, or an editing key whose effect is unknown. It reports false
// when b is not part of it and is to be read on its own: a control
// character (terminals and readline act on it as a key: Esc Enter is
// Enter in vi mode), or, in a paste, what makes it other than the end
// marker (the sequence read so far is pasted text).
func (k *typed) escape(b byte, bracketed bool) bool {
	if k.paste {
		s := string(k.esc) + string(b)
		if s == pasteEnd {
			k.paste = false
			k.esc = k.esc[:0]
			return true
		}
		if s == pasteEnd[:len(s)] {
			k.esc = append(k.esc, b)
			return true
		}
		for _, c := range k.esc {
			k.insert(c)
		}
		k.esc = k.esc[:0]
		return false
	}
	if b < 0x20 {
		k.inexact()
		k.keys++
		k.esc = k.esc[:0]
		k.prefix = keyAbortEsc
		return false
	}
	k.esc = append(k.esc, b)
	s := string(k.esc)
	if bracketed && s == pasteStart {
		k.paste = true
		k.esc = k.esc[:0]
		return true
	}
	// ESC [ or ESC O: a CSI or SS3 key, ended by a byte in 0x40–0x7e;
	// ESC and anything else (Alt-key): two bytes.
	end := len(s) == 2 && s[1] != '[' && s[1] != 'O' ||
		len(s) > 2 && b >= 0x40 && b <= 0x7e ||
		len(s) > 16
	if end {
		k.inexact()
		k.keys++
		k.esc = k.esc[:0]
	}
	return true
}
