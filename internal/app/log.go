package app

import (
	"io"
	"log/slog"

	"github.com/postern/postern/internal/listing"
	"github.com/postern/postern/mask"
)

// NewLogger is the bastion's logger: JSON lines to w from level up, and
// no line can hold a card number (mask.Handler), whichever package logs it.
// Nor can a line act on the terminal that shows it: slog escapes C0
// controls only, so DEL, C1 controls (a CSI as U+009B), bidi controls and
// characters drawn as nothing are written as \uXXXX escapes too
// (listing.EscapeJSON), which JSON decodes to the same text.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(mask.NewHandler(slog.NewJSONHandler(escaper{w}, &slog.HandlerOptions{Level: level})))
}

// escaper escapes the JSON lines slog writes through it (one per Write).
// It keeps the io.Writer contract.
type escaper struct{ w io.Writer }

func (e escaper) Write(p []byte) (int, error) {
	if _, err := e.w.Write(listing.EscapeJSON(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
