package config_test

import (
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/testenv"
)

// writeTLS writes a self-signed certificate and its key as cert.pem and
// key.pem in dir.
func writeTLS(t *testing.T, dir string) { testenv.WriteTLSCert(t, dir) }

func TestLoginDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("postern.yaml", []byte(minimal+`login:
  listen: "127.0.0.1:8080"
  plain_http: true
  issuer: http://127.0.0.1:5556/dex
  client_id: postern
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Login{Listen: "127.0.0.1:8080", PlainHTTP: true, Issuer: "http://127.0.0.1:5556/dex", ClientID: "postern",
		Scopes: []string{"openid", "email", "profile"}, IdentityClaim: "email", GroupsClaim: "groups",
		TTL: 8 * time.Hour, MaxTTL: 8 * time.Hour, Extensions: []string{"permit-pty", "permit-port-forwarding"},
		IssueBurst: 5, IssueInterval: 20 * time.Second}
	if !reflect.DeepEqual(c.Login, want) {
		t.Fatalf("login %+v\nwant  %+v", c.Login, want)
	}
	if c, err := config.Parse("postern.yaml", []byte(minimal)); err != nil || c.Login != nil {
		t.Fatalf("without login: %+v %v", c, err)
	}
	// minimal listens on every address and names no host: /v1/login
	// can only announce the host a request was sent to.
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "login: neither host_names nor listen names the bastion's host") {
		t.Fatalf("warnings %q", c.Warnings)
	}
}

func TestLoginValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTLS(t, dir)
	c, err := config.Parse(filepath.Join(dir, "postern.yaml"), []byte(minimal+`login:
  listen: ":8443"
  tls_cert: cert.pem
  tls_key: key.pem
  issuer: https://login.example.com/realms/staff
  client_id: postern-cli
  scopes: [openid, email, profile, groups]
  identity_claim: preferred_username
  groups_claim: roles
  principals_claim: unix_logins
  ttl: 4h
  max_ttl: 24h
  source_address: true
  extensions: [permit-pty, permit-agent-forwarding]
  device: true
  issue_burst: 3
  issue_interval: 1m
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &config.Login{Listen: ":8443", TLSCert: filepath.Join(dir, "cert.pem"), TLSKey: filepath.Join(dir, "key.pem"),
		Issuer: "https://login.example.com/realms/staff", ClientID: "postern-cli", Scopes: []string{"openid", "email", "profile", "groups"},
		IdentityClaim: "preferred_username", GroupsClaim: "roles", PrincipalsClaim: "unix_logins", TTL: 4 * time.Hour, MaxTTL: 24 * time.Hour,
		SourceAddress: true, Extensions: []string{"permit-pty", "permit-agent-forwarding"}, Device: true,
		IssueBurst: 3, IssueInterval: time.Minute}
	if !reflect.DeepEqual(c.Login, want) {
		t.Fatalf("login %+v\nwant  %+v", c.Login, want)
	}
}

// Every problem of the section, each naming its key and line.
func TestLoginProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTLS(t, dir)
	base := strings.Count(minimal, "\n")
	for _, tt := range []struct {
		name, section string
		want          []string // "LINE KEY: MSG", LINE counted from the section's first key
	}{
		{"plain http on every address", "  listen: \":8080\"\n  plain_http: true\n  issuer: https://idp.example.com\n  client_id: c\n",
			[]string{"1 login.listen: plain_http is allowed only on a loopback address"}},
		{"plain http beside TLS", "  listen: \"127.0.0.1:8080\"\n  plain_http: true\n  tls_cert: cert.pem\n  tls_key: key.pem\n  issuer: https://idp.example.com\n  client_id: c\n",
			[]string{"2 login.plain_http: give tls_cert and tls_key, or plain_http: true, not both"}},
		{"no TLS", "  listen: \":8443\"\n  issuer: https://idp.example.com\n  client_id: c\n",
			[]string{"1 login.tls_cert: required: the PEM certificate"}},
		{"redirect port and secret", "  listen: \"127.0.0.1:8080\"\n  plain_http: true\n  issuer: https://idp.example.com\n  client_id: c\n  redirect_port: 80\n  public_client_secret: \"a b\"\n",
			[]string{"5 login.redirect_port: must be a port from 1024 to 65535", "6 login.public_client_secret: client secret \"a b\" contains white space"}},
		{"TLS unreadable", "  listen: \":8443\"\n  tls_cert: nosuch.pem\n  tls_key: key.pem\n  issuer: https://idp.example.com\n  client_id: c\n",
			[]string{"2 login.tls_cert: cannot load the TLS certificate"}},
		{"many", `  listen: "127.0.0.1:8080"
  plain_http: true
  issuer: http://idp.example.com
  scopes: [email, profile]
  identity_claim: "two words"
  ttl: 200h
  extensions: [permit-pty, permit-X11-forwarding]
  device: yes
`, []string{
			"3 login.issuer: the issuer must be an https:// URL",
			"1 login.client_id: required: the client ID",
			"4 login.scopes: must include openid",
			"5 login.identity_claim: claim name \"two words\" contains white space",
			"6 login.ttl: must be more than 0 and at most 7 days",
			"8 login.device: must be true or false",
			"7 login.extensions[1]: \"permit-X11-forwarding\" cannot be granted",
		}},
		{"issue limit", "  listen: \"127.0.0.1:8080\"\n  plain_http: true\n  issuer: https://idp.example.com\n  client_id: c\n  issue_burst: 0\n  issue_interval: 0s\n",
			[]string{"5 login.issue_burst: must be at least 1 and at most 1000", "6 login.issue_interval: must be more than 0 and at most 24h"}},
		{"max_ttl below ttl", "  listen: \"127.0.0.1:8080\"\n  plain_http: true\n  issuer: https://idp.example.com\n  client_id: c\n  ttl: 8h\n  max_ttl: 1h\n",
			[]string{"6 login.max_ttl: must be at least ttl (8h0m0s)"}},
		{"unknown key", "  listen: \"127.0.0.1:8080\"\n  client_secret: x\n",
			[]string{"2 login.client_secret: unknown key"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse(filepath.Join(dir, "p.yaml"), []byte(minimal+"login:\n"+tt.section))
			got := problems(t, err)
			if len(got) != len(tt.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				line, rest, _ := strings.Cut(w, " ")
				key, msg, _ := strings.Cut(rest, ": ")
				if g := got[i]; g.Key != key || !strings.Contains(g.Msg, msg) || strconv.Itoa(g.Line-base-1) != line {
					t.Errorf("problem %d: %q (line %d of the section), want %s", i, g, g.Line-base-1, w)
				}
			}
		})
	}
}
