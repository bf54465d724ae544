package config

import (
	"log/slog"
	"strings"
)

// logLevel reads one of the four slog level names.
func (p *parser) logLevel(f field) (slog.Level, error) {
	s, err := p.str(f, nil)
	if err != nil {
		return 0, err
	}
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, p.errorf(f.line(), f.path, "unknown level %q: use debug, info, warn or error", s)
}
