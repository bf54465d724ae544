package app

import (
	"io"
	"log/slog"

	"github.com/postern/postern/mask"
)

// NewLogger is the bastion's logger: JSON lines to w from level up, and
// no line can hold a card number (mask.Handler), whichever package logs it.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(mask.NewHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
}
