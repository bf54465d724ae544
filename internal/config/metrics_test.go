package config_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
)

func TestMetricsSection(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("postern.yaml", []byte(minimal+"metrics:\n  listen: \"127.0.0.1:9100\"\n"))
	if err != nil || c.Metrics == nil || c.Metrics.Listen != "127.0.0.1:9100" || len(c.Warnings) != 0 {
		t.Fatalf("metrics: %+v %v", c, err)
	}
	if c, err := config.Parse("postern.yaml", []byte(minimal)); err != nil || c.Metrics != nil {
		t.Fatalf("without metrics: %+v %v", c, err)
	}
	c, err = config.Parse("postern.yaml", []byte(minimal+"metrics:\n  listen: \":9100\"\n"))
	if err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "metrics.listen") || !strings.Contains(c.Warnings[0], "not a loopback address") {
		t.Fatalf("every address: %v %q", err, c.Warnings)
	}
	line := strconv.Itoa(strings.Count(minimal, "\n") + 2)
	for _, tc := range []struct{ yaml, want string }{
		{"metrics:\n  port: 9100\n", "postern.yaml:" + line + ": metrics.port: unknown key"},
		{"metrics: {}\n", "metrics.listen: required: the address metrics are served on"},
		{"metrics:\n  listen: \"127.0.0.1\"\n", "postern.yaml:" + line + `: metrics.listen: "127.0.0.1" is not host:port`},
	} {
		_, err := config.Parse("postern.yaml", []byte(minimal+tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
