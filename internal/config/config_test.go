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

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/internal/config"
	"golang.org/x/crypto/ssh"
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
	want := config.Config{
		Path:              path,
		Listen:            "127.0.0.1:2222",
		DataDir:           filepath.Join(examples, "postern-data"),
		IdleTimeout:       30 * time.Minute,
		KeepAliveInterval: 30 * time.Second,
		KeepAliveMax:      3,
		Recording:         config.Recording{RetentionDays: 365},
		EnvAllow:          []string{"LANG", "LC_*"},
		LogLevel:          slog.LevelInfo,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config (without policy):\n got %+v\nwant %+v", got, want)
	}

	wantTargets := []target{
		{
			Name: "db01", Address: "10.0.0.5:22", HostKey: db01Key,
			Labels: map[string]string{"env": "prod", "role": "db"},
			Logins: []string{"postgres", "root"}, DefaultLogin: "postgres",
		},
		{
			Name: "db02", Address: "db02.internal:22", KnownHostsFile: filepath.Join(examples, "known_hosts"),
			Labels: map[string]string{"env": "staging", "role": "db"},
			Logins: []string{"postgres"},
		},
		{
			Name: "web01", Address: "10.0.1.10:2222", HostCA: hostCA,
			Labels: map[string]string{"env": "prod", "role": "web"},
		},
	}
	if got := flatten(t, c.Policy.Targets); !reflect.DeepEqual(got, wantTargets) {
		t.Errorf("targets:\n got %+v\nwant %+v", got, wantTargets)
	}

	wantRules := []bastion.Rule{
		{
			Name: "dbas", Groups: []string{"dba"}, Targets: []string{"db*"},
			Logins: []string{"postgres"}, DefaultLogin: "postgres",
		},
		{
			Name: "web-deploy", Principals: []string{"deploy-bot"}, Targets: []string{"web01"},
			TargetLabels: map[string]string{"env": "prod"},
			Logins:       []string{"deploy"}, DefaultLogin: "deploy",
		},
		{
			Name: "sre", Principals: []string{"alice", "bob"}, Groups: []string{"sre"},
			Targets: []string{"*"}, Logins: []string{"*"}, PortForwarding: true,
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
			Labels: x.Labels, Logins: x.Logins, DefaultLogin: x.DefaultLogin,
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
	{"bad-masking.yaml", 6, "targets[0].masking", `not a masking mode`},
	{"bad-env-allow.yaml", 5, "env_allow[1]", `"LC-*" is not an environment variable name`},
	{"bad-cipher.yaml", 5, "ciphers[1]", `"arcfour" is not a supported cipher; use some of aes128-gcm@openssh.com`},
	{"bad-rule-unknown-target.yaml", 10, "rules[0].targets[1]", `unknown target "web01"`},
	{"bad-rule-no-principals.yaml", 8, "rules[0]", "set principals or groups"},
	{"bad-rule-no-targets.yaml", 8, "rules[0]", "set targets or target_labels"},
	{"bad-rule-no-logins.yaml", 8, "rules[0].logins", "required"},
	{"bad-rule-port-forwarding.yaml", 12, "rules[0].port_forwarding", `must be true or false, got the string "yes"`},
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

// minimal is a valid config with only the required keys.
const minimal = `data_dir: /var/lib/postern
targets:
  - name: db01
    address: 10.0.0.5
    host_key: "` + db01Key + `"
rules:
  - name: all
    principals: ["*"]
    targets: ["*"]
    logins: ["*"]
`

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("postern.yaml", []byte(minimal))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Path != "postern.yaml" || c.Listen != ":2222" || c.DataDir != "/var/lib/postern" ||
		c.IdleTimeout != 30*time.Minute || c.KeepAliveInterval != 30*time.Second || c.KeepAliveMax != 3 ||
		!reflect.DeepEqual(c.EnvAllow, []string{"LANG", "LC_*"}) || c.LogLevel != slog.LevelInfo || c.Ciphers != nil {
		t.Errorf("defaults: got %+v", c)
	}
}

func TestParseValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		extra string // appended to minimal
		check func(*config.Config) bool
	}{
		{"zero idle timeout", "idle_timeout: 0\n",
			func(c *config.Config) bool { return c.IdleTimeout == 0 }},
		{"zero idle timeout string", `idle_timeout: "0s"` + "\n",
			func(c *config.Config) bool { return c.IdleTimeout == 0 }},
		{"compound duration", "idle_timeout: 1h30m\n",
			func(c *config.Config) bool { return c.IdleTimeout == 90*time.Minute }},
		{"keepalive disabled", "keepalive: {interval: 0, max_missed: 1}\n",
			func(c *config.Config) bool { return c.KeepAliveInterval == 0 && c.KeepAliveMax == 1 }},
		{"null means default", "idle_timeout:\nkeepalive: ~\n",
			func(c *config.Config) bool {
				return c.IdleTimeout == 30*time.Minute && c.KeepAliveInterval == 30*time.Second
			}},
		{"empty env_allow", "env_allow: []\n",
			func(c *config.Config) bool { return c.EnvAllow != nil && len(c.EnvAllow) == 0 }},
		{"env_allow", "env_allow: [TZ, LC_*, _X1]\n",
			func(c *config.Config) bool { return reflect.DeepEqual(c.EnvAllow, []string{"TZ", "LC_*", "_X1"}) }},
		{"ciphers", "ciphers: [chacha20-poly1305@openssh.com, aes256-gcm@openssh.com]\n",
			func(c *config.Config) bool {
				return reflect.DeepEqual(c.Ciphers, []string{"chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com"})
			}},
		{"log level", "log_level: debug\n",
			func(c *config.Config) bool { return c.LogLevel == slog.LevelDebug }},
		{"listen", `listen: "[::1]:0"` + "\n",
			func(c *config.Config) bool { return c.Listen == "[::1]:0" }},
		{"ipv6 bare host", "  - name: v6\n    address: fe80::1\n    host_ca: \"" + hostCA + "\"\n",
			func(c *config.Config) bool { return c.Policy.Target("v6").Address == "[fe80::1]:22" }},
		{"transfers and file_pans", "    transfers: [sftp]\n    file_pans: mask\n",
			func(c *config.Config) bool {
				r := c.Policy.Rules[0]
				return reflect.DeepEqual(r.Transfers, []string{"sftp"}) && r.FilePANs == "mask"
			}},
		{"no transfers", "    transfers: []\n",
			func(c *config.Config) bool {
				return c.Policy.Rules[0].Transfers != nil && len(c.Policy.Rules[0].Transfers) == 0
			}},
		{"transfers default", "",
			func(c *config.Config) bool {
				return c.Policy.Rules[0].Transfers == nil && c.Policy.Rules[0].FilePANs == ""
			}},
		{"alias", "  - name: db02\n    address: db02\n    host_key: *key\n",
			func(c *config.Config) bool { return c.Policy.Target("db02").HostKey != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := minimal + tt.extra
			if strings.HasPrefix(tt.extra, "  - ") {
				// A target: insert it into the targets list.
				data = strings.Replace(minimal, "rules:\n", tt.extra+"rules:\n", 1)
				data = strings.Replace(data, `host_key: "`, `host_key: &key "`, 1)
			}
			c, err := config.Parse("postern.yaml", []byte(data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
		})
	}
}

// TestParseBad covers errors that need no file of their own.
func TestParseBad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		line int
		key  string
		msg  string
	}{
		{"yaml line corrected", "a: 1\nb: [x, y\nc: 3\n", 2, "", "did not find expected ',' or ']'"},
		{"yaml scanner line", "x: 1\ny: 2\nz: a: b\n", 3, "", "mapping values are not allowed"},
		{"yaml no line", "\t x: 1\n", 1, "", "invalid YAML"},
		{"control character", "x: 1\ny: \"a\x01\"\n", 2, "", "control characters"},
		{"unknown anchor", "x: 1\ny: *nope\n", 2, "", "unknown anchor"},
		{"two documents", minimal + "---\nlisten: :22\n", 11, "", "more than one YAML document"},
		{"not a mapping", "- data_dir: x\n", 1, "", "must be a mapping of keys"},
		{"only null", "~\n", 1, "", "config is empty"},
		{"unknown top-level key", minimal + "colour: blue\n", 11, "colour", "unknown key; known keys are listen,"},
		{"listen", minimal + "listen: 2222\n", 11, "listen", `"2222" is not host:port`},
		{"bad pattern", strings.Replace(minimal, `targets: ["*"]`, `targets: ["db["]`, 1), 9, "rules[0].targets[0]", "not a valid pattern"},
		{"target star login", strings.Replace(minimal, "    host_key:", "    logins: ['*']\n    host_key:", 1), 5, "targets[0].logins[0]", `"*" is not allowed`},
		{"bad login", strings.Replace(minimal, `logins: ["*"]`, `logins: ["ro ot"]`, 1), 10, "rules[0].logins[0]", "not a valid name"},
		{"rule default login", strings.Replace(minimal, `logins: ["*"]`, "logins: [root]\n    default_login: admin", 1), 11, "rules[0].default_login", `"admin" is not in logins [root]`},
		{"duplicate rule", minimal + "  - name: all\n    principals: [a]\n    targets: [db01]\n    logins: [b]\n", 11, "rules[1].name", `duplicate rule name "all"`},
		{"known_hosts and host_key key order", strings.Replace(minimal, "    host_key:", "    known_hosts: x\n    host_key:", 1), 6, "targets[0].host_key", "conflicts with known_hosts"},
		{"host key with host name", strings.Replace(minimal, `host_key: "`, `host_key: "db01 `, 1), 5, "targets[0].host_key", "comes before the key type"},
		{"label value list", strings.Replace(minimal, "    host_key:", "    labels: {env: [a]}\n    host_key:", 1), 5, "targets[0].labels.env", "must be a string, got a list"},
		{"merge key", "<<: {data_dir: x}\n", 1, "<<", "merge keys are not supported"},
		{"no ciphers", minimal + "ciphers: []\n", 11, "ciphers", "must name at least one cipher"},
		{"unknown transfer", minimal + "    transfers: [sftp, ftp]\n", 11, "rules[0].transfers[1]", `"ftp" is not one of sftp, scp, rsync`},
		{"bad file_pans", minimal + "    file_pans: warn\n", 11, "rules[0].file_pans", `"warn" is not one of block, mask, allow`},
		{"max_missed string", minimal + "keepalive: {max_missed: many}\n", 11, "keepalive.max_missed", "must be a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse("postern.yaml", []byte(tt.data))
			if err == nil {
				t.Fatalf("Parse = %+v, want error", c)
			}
			checkError(t, err, "postern.yaml", tt.line, tt.key, tt.msg)
		})
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
