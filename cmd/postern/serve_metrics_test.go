package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/metrics"
)

// TestServeMetricsSection: the metrics section examples/postern.yaml
// documents (commented out), uncommented and put on a free port, passes
// `config check`, which names it; `postern serve` then serves /healthz,
// /readyz and /metrics there, without a login section, and counts a
// session run through it.
func TestServeMetricsSection(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile("../../examples/postern.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var section []string
	for _, line := range strings.Split(string(example), "\n") {
		switch {
		case line == "# metrics:":
			section = append(section, "metrics:")
		case len(section) > 0 && strings.HasPrefix(line, "#   "):
			section = append(section, strings.TrimPrefix(line, "# "))
		case len(section) > 0:
			goto done
		}
	}
done:
	if len(section) < 2 || !strings.Contains(section[1], `listen: "127.0.0.1:9100"`) {
		t.Fatalf("examples/postern.yaml has no commented metrics section with listen 127.0.0.1:9100: %q", section)
	}
	s := startServe(t)
	s.stop(t)
	cfg, _ := os.ReadFile(s.cfg)
	block := strings.Replace(strings.Join(section, "\n"), "127.0.0.1:9100", "127.0.0.1:0", 1)
	os.WriteFile(s.cfg, append(cfg, block+"\n"...), 0o600)
	if r := admin(t, s.dir, "config", "check", "--config", s.cfg); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "metrics on http://127.0.0.1:0/metrics") {
		t.Fatalf("config check: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	s.start(t)
	var base string
	select {
	case base = <-s.metricsURLs:
	case <-time.After(30 * time.Second):
		t.Fatalf("no metrics listener:\n%s", s.logs.String())
	}
	if r := s.ssh(t, nil, "echo counted"); r.ExitCode != 0 || string(r.Stdout) != "counted\n" {
		t.Fatalf("ssh: %d %q %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}
	m, err := metrics.Scrape(context.Background(), client, base+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if m["postern_sessions_total"] != 1 || m[`postern_channel_bytes_total{direction="to_client"}`] < float64(len("counted\n")) {
		t.Errorf("after one session: sessions %v, bytes to the client %v", m["postern_sessions_total"], m[`postern_channel_bytes_total{direction="to_client"}`])
	}
	s.stop(t)
}
