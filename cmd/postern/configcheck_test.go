package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// config check reports every problem, each on its own line with file and
// line, exit 1; a rule that matches no target is a warning on stderr,
// exit 0.
func TestConfigCheckEveryProblemAndWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnigi76UqoOA+UfXN6ZK07Ul0lF7mlmM95oYIUnJ84i"
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`data_dir: ./data
log_level: loud
targets:
  - name: db01
    address: 10.0.0.5
    host_key: "`+key+`"
rules:
  - name: all
    principals: [alice]
    targets: [db02]
    logins: [root]
`), 0o600)
	code, out, errs := runCLI(t, "config", "check", "--config", bad)
	if code != 1 || out != "" || !strings.Contains(errs, bad+":2: log_level: unknown level") ||
		!strings.Contains(errs, bad+`:10: rules[0].targets[0]: unknown target "db02"`) || !strings.Contains(errs, "2 problems") {
		t.Fatalf("config check, two problems: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	warn := filepath.Join(dir, "warn.yaml")
	os.WriteFile(warn, []byte(`data_dir: ./data
targets:
  - name: db01
    address: 10.0.0.5
    host_key: "`+key+`"
rules:
  - name: all
    principals: [alice]
    targets: ["db*"]
    logins: [root]
  - name: web
    principals: [alice]
    targets: ["web*"]
    logins: [root]
`), 0o600)
	code, out, errs = runCLI(t, "config", "check", "--config", warn)
	if code != 0 || !strings.Contains(out, "ok: 1 targets, 2 rules") ||
		!strings.Contains(errs, "postern: warning: "+warn+`:11: rules[1]: rule "web" matches no target`) {
		t.Fatalf("config check, a rule matching nothing: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// config check reports bad forward declarations naming the target and the
// field, and the old port_forwarding: true with its replacement.
func TestConfigCheckForwards(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnigi76UqoOA+UfXN6ZK07Ul0lF7mlmM95oYIUnJ84i"
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`data_dir: ./data
targets:
  - name: db01
    address: 10.0.0.5
    host_key: "`+key+`"
    forward:
      - {port: 5432, protocol: postgres}
      - {port: 5432, protocol: tcp}
  - name: web01
    address: 10.0.0.6
    host_key: "`+key+`"
    forward: [{port: 8080, protocol: http}]
rules:
  - name: all
    principals: [alice]
    targets: ["*"]
    logins: [root]
    port_forwarding: true
`), 0o600)
	code, out, errs := runCLI(t, "config", "check", "--config", bad)
	for _, want := range []string{
		bad + `:8: targets[0].forward[1].port: target "db01": port 5432 is declared twice (first on line 7)`,
		bad + `:12: targets[1].forward[0].protocol: target "web01": "http" is not one of tcp, postgres`,
		bad + `:18: rules[0].port_forwarding: port_forwarding was replaced`,
		"3 problems",
	} {
		if code != 1 || out != "" || !strings.Contains(errs, want) {
			t.Fatalf("config check: exit %d, stdout %q, stderr %q; want %q", code, out, errs, want)
		}
	}
}
