package config_test

import (
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
)

// shutdown.drain: its default, a value, and the refusals that name key
// and line; the digest follows the file's bytes.
func TestShutdownDrain(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("postern.yaml", []byte(minimal))
	if err != nil || c.Shutdown.Drain != config.DefaultDrain {
		t.Fatalf("default: %+v %v", c, err)
	}
	c2, err := config.Parse("postern.yaml", []byte(minimal+"shutdown:\n  drain: 2m\n"))
	if err != nil || c2.Shutdown.Drain != 2*time.Minute {
		t.Fatalf("2m: %+v %v", c2, err)
	}
	if c.Digest == c2.Digest || len(c.Digest) != 64 {
		t.Errorf("digests %q and %q: want two SHA-256s that differ", c.Digest, c2.Digest)
	}
	for _, tt := range []struct {
		name, data string
		line       int
		key, msg   string
	}{
		{"zero", "shutdown:\n  drain: 0\n", 12, "shutdown.drain", "must be more than 0"},
		{"not a duration", "shutdown:\n  drain: soon\n", 12, "shutdown.drain", "invalid duration"},
		{"unknown key", "shutdown:\n  grace: 1s\n", 12, "shutdown.grace", "unknown key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse("postern.yaml", []byte(minimal+tt.data))
			if err == nil {
				t.Fatalf("Parse = %+v, want error", c)
			}
			checkError(t, err, "postern.yaml", tt.line, tt.key, tt.msg)
		})
	}
}
