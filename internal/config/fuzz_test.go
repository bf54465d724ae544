package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any input either loads or fails with a *Error that names a
// line inside the input; it never panics.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../../testdata/config/*.yaml")
	seeds = append(seeds, "../../examples/postern.yaml")
	for _, p := range seeds {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("/fuzz/postern.yaml", data)
		if err == nil {
			if cfg.DataDir == "" || len(cfg.Policy.Rules) == 0 || len(cfg.Policy.Targets) == 0 {
				t.Fatalf("accepted a config without data_dir, rules or targets: %+v", cfg)
			}
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a *config.Error", err, err)
		}
		// YAML breaks lines at \n, \r\n and a lone \r.
		lines := 1
		for i, b := range data {
			if b == '\n' || b == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
				lines++
			}
		}
		if ce.Line < 1 || ce.Line > lines+1 {
			t.Fatalf("error line %d outside the %d-line input: %v", ce.Line, lines, err)
		}
	})
}
