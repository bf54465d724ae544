package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// loginServe is a running `postern serve` with a login section and one
// target, web01: a real sshd trusting the upstream CA, which the identity
// alice@example.com may reach as the login that runs the tests.
type loginServe struct {
	*serveProc
	login    string // the target's login
	loginURL string // the login API's base URL
}

// startLoginServe runs `postern serve` whose login API (plain HTTP on
// loopback) trusts the OpenID provider at issuer for clientID: a
// testenv.TokenIssuer, or a full provider for tests of the login client.
// loginYAML adds keys to the login section.
func startLoginServe(t *testing.T, issuer, clientID, loginYAML string) *loginServe {
	t.Helper()
	s := &serveProc{dir: t.TempDir(), sshBin: testenv.Require(t, "ssh"), logs: &testenv.Buffer{}, done: make(chan error, 1)}
	s.data = filepath.Join(s.dir, "data")
	if r := admin(t, s.dir, "ca", "init", "--data-dir", s.data); r.ExitCode != 0 {
		t.Fatalf("ca init: %s", r.Stderr)
	}
	upstream, _, err := readPub(filepath.Join(s.data, "ca", "upstream_ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{upstream}})
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	ls := &loginServe{serveProc: s, login: u.Username}
	s.cfg = filepath.Join(s.dir, "postern.yaml")
	os.WriteFile(s.cfg, fmt.Appendf(nil, `listen: "127.0.0.1:0"
data_dir: ./data
targets:
  - name: web01
    address: %s
    host_key: %q
    logins: [%s]
    default_login: %[3]s
rules:
  - name: sso
    principals: [alice@example.com]
    targets: [web01]
    logins: [%[3]s]
login:
  listen: "127.0.0.1:0"
  plain_http: true
  issuer: %s
  client_id: %s
%s`, sshd.Addr, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey))), ls.login, issuer, clientID, loginYAML), 0o600)
	if r := admin(t, s.dir, "config", "check", "--config", s.cfg); r.ExitCode != 0 {
		t.Fatalf("config check: %s %s", r.Stdout, r.Stderr)
	}
	s.start(t)
	select {
	case ls.loginURL = <-s.loginURLs:
	case <-time.After(30 * time.Second):
		t.Fatalf("no login API:\n%s", s.logs.String())
	}
	return ls
}

func readPub(path string) (ssh.PublicKey, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	pk, comment, _, _, err := ssh.ParseAuthorizedKey(data)
	return pk, comment, err
}

// call sends a request to the login API and decodes its JSON answer into
// out.
func (ls *loginServe) call(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, ls.loginURL+path, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
	}
	return resp.StatusCode
}

// issuedCert is POST /v1/certificates' answer.
type issuedCert struct {
	Certificate string   `json:"certificate"`
	Identity    string   `json:"identity"`
	Principals  []string `json:"principals"`
	Serial      uint64   `json:"serial"`
}

// certify asks the login API for a certificate for keyPath.pub with
// idToken, and writes it to keyPath-cert.pub, where ssh looks for it.
func (ls *loginServe) certify(t *testing.T, idToken, keyPath, ttl string) issuedCert {
	t.Helper()
	pub, err := os.ReadFile(keyPath + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	var out issuedCert
	req := map[string]any{"id_token": idToken, "public_key": string(pub)}
	if ttl != "" {
		req["ttl"] = ttl
	}
	if code := ls.call(t, http.MethodPost, "/v1/certificates", req, &out); code != http.StatusOK || out.Certificate == "" {
		t.Fatalf("certificate: %d %+v", code, out)
	}
	os.WriteFile(keyPath+"-cert.pub", []byte(out.Certificate+"\n"), 0o644)
	return out
}

// A certificate from POST /v1/certificates takes plain OpenSSH through
// `postern serve` to a real sshd, with the known_hosts lines GET
// /v1/login announced; `ca issued` lists it and `verify` checks its
// record and a refusal's.
func TestServeLoginCertificate(t *testing.T) {
	t.Parallel()
	p := testenv.NewTokenIssuer(t, "postern-cli")
	ls := startLoginServe(t, p.URL, p.ClientID, "  ttl: 1h\n  max_ttl: 2h\n  source_address: true\n")
	var info struct {
		ClientID   string   `json:"client_id"`
		SSHHost    string   `json:"ssh_host"`
		SSHPort    int      `json:"ssh_port"`
		KnownHosts []string `json:"known_hosts"`
	}
	if code := ls.call(t, http.MethodGet, "/v1/login", nil, &info); code != 200 || info.ClientID != "postern-cli" ||
		info.SSHHost != "127.0.0.1" || fmt.Sprint(info.SSHPort) != ls.port || len(info.KnownHosts) != 1 {
		t.Fatalf("login info %d %+v", code, info)
	}
	kh := filepath.Join(ls.dir, "known_hosts_login")
	os.WriteFile(kh, []byte(strings.Join(info.KnownHosts, "\n")+"\n"), 0o600)
	_, key := testenv.NewKey(t, ls.dir, "id_alice")
	got := ls.certify(t, p.Token("alice@example.com"), key, "30m")
	args := append(testenv.ClientOpts{Identity: key, KnownHosts: kh}.Options(),
		"-p", fmt.Sprint(info.SSHPort), "web01@"+info.SSHHost, "id -un; echo via-login")
	r := testenv.Cmd(t, time.Minute, nil, ls.sshBin, args...)
	if r.ExitCode != 0 || string(r.Stdout) != ls.login+"\nvia-login\n" {
		t.Fatalf("ssh with the login certificate: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	var refused map[string]any
	if code := ls.call(t, http.MethodPost, "/v1/certificates", map[string]any{"id_token": p.Token("alice@example.com"), "public_key": "ssh-ed25519 AAAA"}, &refused); code != 400 {
		t.Fatalf("refusal: %d %v", code, refused)
	}
	r2 := admin(t, ls.dir, "ca", "issued", "--config", ls.cfg, "--json")
	var issued []struct {
		Serial   uint64 `json:"serial"`
		KeyID    string `json:"key_id"`
		IssuedBy string `json:"issued_by"`
		Client   string `json:"client"`
	}
	if err := json.Unmarshal(r2.Stdout, &issued); err != nil || r2.ExitCode != 0 || len(issued) != 1 ||
		issued[0].Serial != got.Serial || issued[0].KeyID != "alice@example.com" ||
		issued[0].IssuedBy != "login ("+p.URL+")" || issued[0].Client != "127.0.0.1" {
		t.Fatalf("ca issued: %d %s %s", r2.ExitCode, r2.Stdout, r2.Stderr)
	}
	r2 = admin(t, ls.dir, "verify", "--config", ls.cfg, "--json")
	if r2.ExitCode != 0 || !strings.Contains(string(r2.Stdout), `"problems": []`) || !strings.Contains(string(r2.Stdout), `"refusals": 1`) {
		t.Fatalf("verify: %d %s %s", r2.ExitCode, r2.Stdout, r2.Stderr)
	}
	if logs := ls.logs.String(); !strings.Contains(logs, `"event":"cert_issued"`) || !strings.Contains(logs, `"event":"cert_refused"`) {
		t.Fatalf("audit records missing from the log:\n%s", logs)
	}
	ls.stop(t)
}

// Without a login section, serve starts no login API (and logs none).
func TestServeWithoutLogin(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	if strings.Contains(s.logs.String(), "login API") {
		t.Fatalf("login API without a login section:\n%s", s.logs.String())
	}
	select {
	case u := <-s.loginURLs:
		t.Fatalf("login API at %s", u)
	default:
	}
	s.stop(t)
}

// The login section examples/postern.yaml documents (commented out, since
// it names TLS files) is a valid config once uncommented: `config check`
// accepts it with TLS files in place and says the login API is on.
func TestExampleLoginSection(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../examples/postern.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key, _ := testenv.WriteTLSCert(t, dir)
	var out []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "# login:":
			in = true
			out = append(out, "login:")
		case in && strings.HasPrefix(line, "#   "):
			line = strings.TrimPrefix(line, "# ")
			line = strings.Replace(line, "/etc/postern/tls/fullchain.pem", cert, 1)
			line = strings.Replace(line, "/etc/postern/tls/privkey.pem", key, 1)
			out = append(out, line)
		default:
			in = false
			out = append(out, line)
		}
	}
	if !slices.Contains(out, "login:") {
		t.Fatal("examples/postern.yaml has no commented login section")
	}
	kh, err := os.ReadFile("../../examples/known_hosts")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "known_hosts"), kh, 0o644)
	cfg := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfg, []byte(strings.Join(out, "\n")), 0o600)
	r := admin(t, dir, "config", "check", "--config", cfg)
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "ok: 3 targets, 3 rules") ||
		!strings.Contains(string(r.Stdout), "login API on :8443 (issuer https://login.example.com/realms/staff)") {
		t.Fatalf("config check: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// README.md's "OIDC login" shows a login section: with TLS files in
// place, `config check` accepts it.
func TestREADMELoginSection(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "### OIDC login")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 || !strings.HasPrefix(block, "login:\n") {
		t.Fatalf("README.md has no login block under OIDC login:\n%.200s", rest)
	}
	dir := t.TempDir()
	cert, key, _ := testenv.WriteTLSCert(t, dir)
	block = strings.NewReplacer("/etc/postern/tls/fullchain.pem", cert, "/etc/postern/tls/privkey.pem", key).Replace(block)
	cfg := filepath.Join(dir, "postern.yaml")
	os.WriteFile(cfg, []byte(`data_dir: ./data
targets:
  - {name: t, address: 10.0.0.5, host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnigi76UqoOA+UfXN6ZK07Ul0lF7mlmM95oYIUnJ84i"}
rules:
  - {name: r, principals: [a], targets: ["*"], logins: ["*"]}
`+block), 0o600)
	r := admin(t, dir, "config", "check", "--config", cfg)
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "login API on :8443") {
		t.Fatalf("config check: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}
