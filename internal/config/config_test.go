package config_test

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/bastion"
	"github.com/postern/postern/internal/config"
)

const (
	db01Key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnigi76UqoOA+UfXN6ZK07Ul0lF7mlmM95oYIUnJ84i"
	hostCA  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxCiRpMhpUdKyzrSiK9951UQjoX2H7VUXDBVlHlG0pd"
)

// testdata is the repository's testdata/config directory.
var testdata = filepath.Join("..", "..", "testdata", "config")

func TestLoadExample(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "examples", "postern.yaml")
	c, err := config.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	examples, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	got := *c
	got.Policy = bastion.Policy{}
	// The approval rules: their names and actions; their parsing has its
	// own tests. The warnings say what the rules do not judge.
	var names []string
	for _, r := range got.Approvals.Rules {
		names = append(names, r.Name+":"+r.Action.String())
	}
	if strings.Join(names, " ") != "no-shutdown:deny recursive-rm:approve ddl-needs-approval:approve" || len(got.Warnings) != 2 {
		t.Errorf("approvals %v, warnings %q", names, got.Warnings)
	}
	got.Approvals, got.Warnings = approval.Policy{}, nil
	if len(got.Digest) != 64 {
		t.Errorf("digest %q, want SHA-256 hex", got.Digest)
	}
	got.Digest = ""
	want := config.Config{
		Path:              path,
		Listen:            "127.0.0.1:2222",
		DataDir:           filepath.Join(examples, "postern-data"),
		IdleTimeout:       30 * time.Minute,
		KeepAliveInterval: 30 * time.Second,
		KeepAliveMax:      3,
		Recording:         config.Recording{RetentionDays: 365},
		SessionLimits:     bastion.SessionLimits{MaxDuration: 12 * time.Hour, RecordingMaxSize: 1 << 30, MinFreeDisk: 1 << 30},
		EnvAllow:          []string{"LANG", "LC_*"},
		LogLevel:          slog.LevelInfo,
		Limits:            config.Limits{HandshakeTimeout: bastion.DefaultHandshakeTimeout, Limits: bastion.DefaultLimits},
		Shutdown:          config.Shutdown{Drain: 30 * time.Second},
		Performance:       config.Performance{GCPercent: 400, Sessions: 256, MaxConnections: 1000},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config (without policy):\n got %+v\nwant %+v", got, want)
	}

	wantTargets := []target{
		{
			Name: "db01", Address: "10.0.0.5:22", HostKey: db01Key,
			Labels: map[string]string{"env": "prod", "role": "db"},
			Logins: []string{"postgres", "root"}, DefaultLogin: "postgres",
			Forwards: []bastion.Forward{{Port: 5432, Protocol: "postgres"}},
		},
		{
			Name: "db02", Address: "db02.internal:22", KnownHostsFile: filepath.Join(examples, "known_hosts"),
			Labels: map[string]string{"env": "staging", "role": "db"},
			Logins: []string{"postgres"},
		},
		{
			Name: "web01", Address: "10.0.1.10:2222", HostCA: hostCA,
			Labels:   map[string]string{"env": "prod", "role": "web"},
			Forwards: []bastion.Forward{{Port: 8080, Protocol: "tcp"}},
		},
	}
	if got := flatten(t, c.Policy.Targets); !reflect.DeepEqual(got, wantTargets) {
		t.Errorf("targets:\n got %+v\nwant %+v", got, wantTargets)
	}

	wantRules := []bastion.Rule{
		{
			Name: "dbas", Groups: []string{"dba"}, Targets: []string{"db*"},
			Logins: []string{"postgres"}, DefaultLogin: "postgres", Forwards: []int{5432},
		},
		{
			Name: "web-deploy", Principals: []string{"deploy-bot"}, Targets: []string{"web01"},
			TargetLabels: map[string]string{"env": "prod"},
			Logins:       []string{"deploy"}, DefaultLogin: "deploy", AgentForwarding: true,
		},
		{
			Name: "sre", Principals: []string{"alice", "bob"}, Groups: []string{"sre"},
			Targets: []string{"*"}, Logins: []string{"*"}, Forwards: []int{bastion.AnyDeclaredPort},
			Transfers: []string{"sftp", "scp", "rsync"}, FilePANs: "block",
		},
	}
	if !reflect.DeepEqual(c.Policy.Rules, wantRules) {
		t.Errorf("rules:\n got %+v\nwant %+v", c.Policy.Rules, wantRules)
	}
}

// TestExamplePolicy checks that the example grants what its comments say.
func TestExamplePolicy(t *testing.T) {
	t.Parallel()
	c, err := config.Load(filepath.Join("..", "..", "examples", "postern.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	dba := bastion.Identity{Principals: []string{"carol"}, Groups: []string{"dba"}}
	alice := bastion.Identity{Principals: []string{"alice"}}
	tests := []struct {
		id        bastion.Identity
		user      string
		wantLogin string // "" means denied
		wantRule  string
	}{
		{dba, "db02", "postgres", "dbas"},
		{dba, "postgres@db01", "postgres", "dbas"},
		{dba, "root@db01", "", ""},
		{dba, "web01", "", ""},
		{alice, "root@db01", "root", "sre"},
		{alice, "db01", "postgres", "sre"},
	}
	for _, tt := range tests {
		g, err := c.Policy.Decide(tt.id, tt.user)
		switch {
		case tt.wantLogin == "" && err == nil:
			t.Errorf("Decide(%v, %q) = %+v, want denied", tt.id.Principals, tt.user, g)
		case tt.wantLogin != "" && err != nil:
			t.Errorf("Decide(%v, %q): %v", tt.id.Principals, tt.user, err)
		case err == nil && (g.Login != tt.wantLogin || g.Rule != tt.wantRule):
			t.Errorf("Decide(%v, %q) = login %q rule %q, want %q %q",
				tt.id.Principals, tt.user, g.Login, g.Rule, tt.wantLogin, tt.wantRule)
		}
	}
}

// target is a bastion.Target with keys in authorized_keys form, so that
// reflect.DeepEqual compares them.
type target struct {
	Name, Address   string
	HostKey, HostCA string
	KnownHostsFile  string
	Labels          map[string]string
	Logins          []string
	DefaultLogin    string
	Forwards        []bastion.Forward
}

func flatten(t testing.TB, targets []bastion.Target) []target {
	t.Helper()
	key := func(k ssh.PublicKey) string {
		if k == nil {
			return ""
		}
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
	}
	var out []target
	for _, x := range targets {
		out = append(out, target{
			Name: x.Name, Address: x.Address,
			HostKey: key(x.HostKey), HostCA: key(x.HostCA), KnownHostsFile: x.KnownHostsFile,
			Labels: x.Labels, Logins: x.Logins, DefaultLogin: x.DefaultLogin, Forwards: x.Forwards,
		})
	}
	return out
}

// badConfigs lists every testdata/config/bad-*.yaml and the error it must
// give.
var badConfigs = []struct {
	file string
	line int
	key  string
	msg  string
}{
	{"bad-syntax.yaml", 3, "", "invalid YAML"},
	{"bad-unknown-key.yaml", 6, "targets[0].hostkey", `unknown key; did you mean "host_key"?`},
	{"bad-wrong-type.yaml", 3, "env_allow", `must be a list of strings, like [a, b], got the string "LANG"`},
	{"bad-duplicate-key.yaml", 12, "data_dir", "duplicate key (first on line 2)"},
	{"bad-no-data-dir.yaml", 2, "data_dir", "required"},
	{"bad-target-no-name.yaml", 7, "targets[1].name", "required"},
	{"bad-target-no-address.yaml", 4, "targets[0].address", "required"},
	{"bad-target-duplicate.yaml", 7, "targets[1].name", `duplicate target name "db01" (first defined on line 4)`},
	{"bad-address-port.yaml", 5, "targets[0].address", `port "70000" is not a number from 1 to 65535`},
	{"bad-address.yaml", 5, "targets[0].address", `invalid host "db 01"`},
	{"bad-host-key-none.yaml", 4, "targets[0]", "set one of host_key, known_hosts or host_ca"},
	{"bad-host-key-two.yaml", 7, "targets[0].host_ca", "conflicts with host_key"},
	{"bad-host-key-parse.yaml", 6, "targets[0].host_key", "not an OpenSSH public key"},
	{"bad-known-hosts-missing.yaml", 6, "targets[0].known_hosts", "no such file or directory"},
	{"bad-default-login.yaml", 8, "targets[0].default_login", `"root" is not in logins [postgres]`},
	{"bad-duration.yaml", 3, "idle_timeout", `invalid duration "30": use a number with a unit, like "30s", "5m"`},
	{"bad-duration-negative.yaml", 4, "keepalive.interval", `duration "-5s" is negative`},
	{"bad-keepalive-max.yaml", 5, "keepalive.max_missed", "must be at least 1"},
	{"bad-log-level.yaml", 3, "log_level", `unknown level "verbose"`},
	{"bad-recording-on-failure.yaml", 3, "recording.on_failure", `must be close`},
	{"bad-masking-detect.yaml", 3, "masking.detect", `must be brands`},
	{"bad-masking.yaml", 6, "targets[0].masking", `not a masking mode`},
	{"bad-env-allow.yaml", 5, "env_allow[1]", `"LC-*" is not an environment variable name`},
	{"bad-cipher.yaml", 5, "ciphers[1]", `"arcfour" is not a supported cipher; use some of aes128-gcm@openssh.com`},
	{"bad-rule-unknown-target.yaml", 10, "rules[0].targets[1]", `unknown target "web01"`},
	{"bad-rule-no-principals.yaml", 8, "rules[0]", "set principals or groups"},
	{"bad-rule-no-targets.yaml", 8, "rules[0]", "set targets or target_labels"},
	{"bad-rule-no-logins.yaml", 8, "rules[0].logins", "required"},
	{"bad-rule-port-forwarding.yaml", 12, "rules[0].port_forwarding", `must be true or false, got the string "yes"`},
	{"bad-rule-port-forwarding-true.yaml", 13, "rules[0].port_forwarding", `port_forwarding was replaced: each target declares the ports it forwards`},
	{"bad-rule-forwards.yaml", 16, "rules[0].forwards[1]", `rule "dba": must be a port number or "*", got the string "postgres"`},
	{"bad-rule-forwards-range.yaml", 16, "rules[0].forwards[0]", `rule "dba": port 0 is not a number from 1 to 65535`},
	{"bad-forward-port.yaml", 8, "targets[0].forward[0].port", `target "db01": port 70000 is not a number from 1 to 65535`},
	{"bad-forward-port-type.yaml", 8, "targets[0].forward[0].port", `must be a whole number, got the string "pg"`},
	{"bad-forward-no-protocol.yaml", 8, "targets[0].forward[0].protocol", `target "db01": required: tcp (opaque`},
	{"bad-forward-protocol.yaml", 8, "targets[0].forward[0].protocol", `target "db01": "mysql" is not one of tcp, postgres`},
	{"bad-forward-duplicate.yaml", 9, "targets[0].forward[1].port", `target "db01": port 5432 is declared twice (first on line 8)`},
	{"bad-forward-ssh-port.yaml", 8, "targets[0].forward[0].port", `target "db01": port 2222 is an SSH port`},
	{"bad-forward-unknown-key.yaml", 8, "targets[0].forward[0].proto", `unknown key; known keys are port, protocol`},
	{"bad-no-rules.yaml", 2, "rules", "at least one rule is required"},
	{"bad-no-targets.yaml", 3, "targets", "at least one target is required"},
	{"bad-empty.yaml", 1, "", "config is empty"},
	{"bad-comments-only.yaml", 1, "", "config is empty"},
}

func TestLoadBad(t *testing.T) {
	t.Parallel()
	for _, tt := range badConfigs {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(testdata, tt.file)
			c, err := config.Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want error", path, c)
			}
			checkError(t, err, path, tt.line, tt.key, tt.msg)
		})
	}
}

// TestLoadBadAllListed keeps badConfigs and testdata/config in step.
func TestLoadBadAllListed(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(testdata, "bad-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, tt := range badConfigs {
		listed[tt.file] = true
	}
	for _, f := range files {
		if !listed[filepath.Base(f)] {
			t.Errorf("%s is not in badConfigs", f)
		}
	}
	if len(files) != len(badConfigs) {
		t.Errorf("%d bad-*.yaml files, %d entries in badConfigs", len(files), len(badConfigs))
	}
}

func checkError(t testing.TB, err error, file string, line int, key, msg string) {
	t.Helper()
	var e *config.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %q is %T, want *config.Error", err, err)
	}
	if e.File != file || e.Line != line || e.Key != key || !strings.Contains(e.Msg, msg) {
		t.Errorf("error %q:\n got file %q line %d key %q msg %q\nwant file %q line %d key %q msg containing %q",
			err, e.File, e.Line, e.Key, e.Msg, file, line, key, msg)
	}
}

func TestDataDirRelative(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		dataDir string
		want    string
	}{
		{"./postern-data", filepath.Join(dir, "etc", "postern-data")},
		{"postern-data", filepath.Join(dir, "etc", "postern-data")},
		{"../var/postern", filepath.Join(dir, "var", "postern")},
		{"/srv/postern", "/srv/postern"},
	}
	if err := os.Mkdir(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		t.Run(tt.dataDir, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, "etc", "postern"+string(rune('0'+i))+".yaml")
			data := strings.Replace(minimal, "data_dir: /var/lib/postern", "data_dir: "+tt.dataDir, 1)
			if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.DataDir != tt.want {
				t.Errorf("DataDir = %q, want %q", c.DataDir, tt.want)
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := config.Load(path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(missing) = %v, want an fs.ErrNotExist naming %s", err, path)
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  config.Error
		want string
	}{
		{config.Error{File: "p.yaml", Line: 3, Key: "targets[1].host_key", Msg: "bad"}, "p.yaml:3: targets[1].host_key: bad"},
		{config.Error{File: "p.yaml", Line: 3, Msg: "invalid YAML: x"}, "p.yaml:3: invalid YAML: x"},
		{config.Error{File: "p.yaml", Msg: "invalid YAML: x"}, "p.yaml: invalid YAML: x"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
