package config_test

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/mask"
)

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
		!reflect.DeepEqual(c.EnvAllow, []string{"LANG", "LC_*"}) || c.LogLevel != slog.LevelInfo || c.Ciphers != nil ||
		c.Detect != mask.DetectBrands {
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
		{"detect luhn", "masking:\n  detect: luhn\n",
			func(c *config.Config) bool { return c.Detect == mask.DetectLuhn }},
		{"detect brands", "masking: {detect: brands}\n",
			func(c *config.Config) bool { return c.Detect == mask.DetectBrands }},
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
		{"agent_forwarding not a bool", minimal + "    agent_forwarding: sometimes\n", 11, "rules[0].agent_forwarding", "true or false"},
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
