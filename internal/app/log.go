package app

import (
	"io"
	"log/slog"
	"unicode/utf8"

	"github.com/postern/postern/mask"
)

// NewLogger is the bastion's logger: JSON lines to w from level up, and
// no line can hold a card number (mask.Handler), whichever package logs it.
// Nor can a line act on the terminal that shows it: slog escapes C0
// controls only, so DEL, C1 controls (a CSI as U+009B) and the bidi
// controls that make text read in another order are written as \uXXXX
// escapes too, which JSON decodes to the same text.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(mask.NewHandler(slog.NewJSONHandler(escaper{w}, &slog.HandlerOptions{Level: level})))
}

// escaper rewrites the runes terminals act on in the JSON lines written
// through it. Every such rune is inside a JSON string (the syntax is
// ASCII), where \uXXXX stands for it. It keeps the io.Writer contract.
type escaper struct{ w io.Writer }

func (e escaper) Write(p []byte) (int, error) {
	i := 0
	for i < len(p) && p[i] < 0x7f {
		i++
	}
	if i == len(p) {
		return e.w.Write(p)
	}
	b := make([]byte, 0, len(p)+32)
	b = append(b, p[:i]...)
	for i < len(p) {
		r, size := utf8.DecodeRune(p[i:])
		if terminalControl(r) {
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
		} else {
			b = append(b, p[i:i+size]...)
		}
		i += size
	}
	if _, err := e.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// terminalControl reports whether a terminal acts on r or it reorders
// text: DEL, C1 controls, and the bidi marks, embeddings, overrides and
// isolates.
func terminalControl(r rune) bool {
	switch {
	case r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}
