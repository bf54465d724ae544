package main

import (
	"io"

	"github.com/postern/postern/internal/listing"
)

// visible, visibleText and writeJSON are internal/listing's: every line
// the CLI prints about the index or a recording goes through them, as the
// admin connection's output does.
func visible(s string) string            { return listing.Visible(s) }
func visibleText(s string) string        { return listing.VisibleText(s) }
func writeJSON(w io.Writer, v any) error { return listing.WriteJSON(w, v) }
