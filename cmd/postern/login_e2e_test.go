package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// TestLoginEndToEnd is issue 15's path as a user walks it: a real OpenID
// provider (zitadel's), `postern serve` with its login API, `postern
// login` signing in through the browser (played by the test) and through
// the device grant, then plain OpenSSH through the bastion to a real sshd
// with nothing but the files login wrote; status, and logout emptying the
// agent. Not parallel: the login commands read SSH_AUTH_SOCK and HOME.
func TestLoginEndToEnd(t *testing.T) {
	sock := testenv.SSHAgent(t)
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("HOME", t.TempDir())
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	ls := startLoginServe(t, p.Issuer, p.ClientID, "  scopes: [openid, email, profile, groups]\n  device: true\n  ttl: 2h\n")
	sshVia := func(dir string) testenv.Result {
		t.Helper()
		return testenv.Cmd(t, time.Minute, nil, ls.sshBin, "-F", filepath.Join(dir, "ssh_config"), "-o", "BatchMode=yes",
			"web01@127.0.0.1", "id -un; echo via-sso")
	}
	for _, flow := range [][]string{nil, {"--device"}} {
		dir := filepath.Join(t.TempDir(), "postern")
		code, out, errs := runLogin(t, ls.loginURL, p, "alice", append(flow, "--dir", dir)...)
		if code != 0 {
			t.Fatalf("login %v: exit %d\n%s%s", flow, code, out, errs)
		}
		if r := sshVia(dir); r.ExitCode != 0 || string(r.Stdout) != ls.login+"\nvia-sso\n" {
			t.Fatalf("ssh after login %v: exit %d %q %q", flow, r.ExitCode, r.Stdout, r.Stderr)
		}
		st := admin(t, ls.dir, "status", "--dir", dir, "--json")
		var status struct {
			Identity string   `json:"identity"`
			Groups   []string `json:"groups"`
			Serial   uint64   `json:"serial"`
		}
		if err := json.Unmarshal(st.Stdout, &status); err != nil || st.ExitCode != 0 || status.Identity != "alice@example.com" ||
			strings.Join(status.Groups, ",") != "dev,approvers" || status.Serial == 0 {
			t.Fatalf("status --json: exit %d %v %s %s", st.ExitCode, err, st.Stdout, st.Stderr)
		}
		if keys := testenv.AgentList(t, sock); len(keys) != 2 || !strings.HasSuffix(keys[0], "(ED25519-CERT)") {
			t.Fatalf("agent after login: %q", keys)
		}
		if code := run(t.Context(), []string{"logout", "--dir", dir}, strings.NewReader(""), &testenv.Buffer{}, &testenv.Buffer{}); code != 0 {
			t.Fatalf("logout: exit %d", code)
		}
		if keys := testenv.AgentList(t, sock); len(keys) != 0 {
			t.Fatalf("agent after logout: %q", keys)
		}
		if r := sshVia(dir); r.ExitCode == 0 {
			t.Fatal("ssh still works after logout")
		}
	}
	// The provider rotates its signing key, dropping the old one: the
	// bastion fetches the new key set and issues.
	p.RotateKey(true)
	if code, out, errs := runLogin(t, ls.loginURL, p, "alice", "--dir", filepath.Join(t.TempDir(), "postern")); code != 0 {
		t.Fatalf("login after the provider's key rotation: exit %d\n%s%s", code, out, errs)
	}
	// bob's email is not verified: the bastion refuses, and login says
	// so in one line and writes nothing.
	dir := filepath.Join(t.TempDir(), "postern")
	code, _, errs := runLogin(t, ls.loginURL, p, "bob", "--dir", dir)
	if code != 1 || !strings.Contains(errs, "email") || !strings.Contains(errs, "403") {
		t.Fatalf("bob: exit %d\n%s", code, errs)
	}
	if st := admin(t, ls.dir, "status", "--dir", dir); st.ExitCode != 1 {
		t.Fatalf("status after a refused login: exit %d %s", st.ExitCode, st.Stdout)
	}
	if logs := ls.logs.String(); strings.Count(logs, `"event":"cert_issued"`) != 3 || !strings.Contains(logs, `"event":"cert_refused"`) {
		t.Fatalf("audit records: want 3 cert_issued and a cert_refused:\n%s", logs)
	}
	ls.stop(t)
}

// TestDemoOIDC: `postern demo --oidc-issuer URL --oidc-client-id ID` runs
// the login API, and its printed `postern login` and ssh lines, run as
// printed, take a user of the provider to the demo target.
func TestDemoOIDC(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	d := startDemo(t, t.TempDir(), "--oidc-issuer", p.Issuer, "--oidc-client-id", p.ClientID)
	var loginURL string
	for _, l := range d.text {
		if f := strings.Fields(l); len(f) == 3 && f[1] == "login" && strings.HasPrefix(f[2], "http://127.0.0.1:") {
			loginURL = f[2]
		}
	}
	last := d.cmds[len(d.cmds)-1]
	if loginURL == "" || !strings.HasPrefix(last, "ssh -F ~/.postern/ssh_config demo@demo@") {
		t.Fatalf("the demo prints no login line, or no ssh line after it:\n%s", strings.Join(d.text, "\n"))
	}
	// Without --oidc-allow, it says who may get in (TestAttackDemoOIDCAllow).
	if text := strings.Join(d.text, "\n"); !strings.Contains(text, "including the other users of this machine") {
		t.Fatalf("the demo does not say that anyone at the provider gets in:\n%s", text)
	}
	if code, out, errs := runLogin(t, loginURL, p, "alice"); code != 0 {
		t.Fatalf("login: exit %d\n%s%s", code, out, errs)
	}
	r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", last+" -o BatchMode=yes 'echo hello from $(hostname)'")
	if r.ExitCode != 0 || !strings.HasPrefix(string(r.Stdout), "hello from ") {
		t.Fatalf("%s: exit %d %q %q", last, r.ExitCode, r.Stdout, r.Stderr)
	}
	// Half the flags, or a bad issuer: bad usage.
	for _, args := range [][]string{{"--oidc-issuer", p.Issuer}, {"--oidc-client-id", "x"}, {"--oidc-issuer", "http://idp.example.com", "--oidc-client-id", "x"}} {
		if r := admin(t, t.TempDir(), append([]string{"demo", "--listen", "127.0.0.1:0"}, args...)...); r.ExitCode != 2 || !strings.Contains(string(r.Stderr), "--oidc-") {
			t.Errorf("demo %v: exit %d %s", args, r.ExitCode, r.Stderr)
		}
	}
}

// TestLoginFixedPortAndSecret: a provider that matches the redirect's
// port (Okta) and one that demands an installed app's secret (Google),
// configured on the bastion with redirect_port and public_client_secret:
// login takes the redirect on that port, sends the secret, and gets a
// certificate.
func TestLoginFixedPortAndSecret(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	p := testenv.OIDC(t, testenv.OIDCOptions{SecretClients: map[string]string{"desktop": "not-so-secret"}})
	// Not a port the kernel picked for a listener on port 0: freed, it
	// goes to the next connection made, before login listens on it.
	port := testenv.FreePort(t)
	ls := startLoginServe(t, p.Issuer, "desktop", fmt.Sprintf("  redirect_port: %d\n  public_client_secret: not-so-secret\n", port))
	dir := filepath.Join(t.TempDir(), "postern")
	code, out, errs := runLogin(t, ls.loginURL, p, "alice", "--dir", dir)
	if code != 0 || !strings.Contains(errs, fmt.Sprintf("redirect_uri=http%%3A%%2F%%2F127.0.0.1%%3A%d%%2Fcallback", port)) {
		t.Fatalf("login: exit %d\n%s%s", code, out, errs)
	}
	r := testenv.Cmd(t, time.Minute, nil, ls.sshBin, "-F", filepath.Join(dir, "ssh_config"), "-o", "BatchMode=yes", "web01@127.0.0.1", "echo via-desktop")
	if r.ExitCode != 0 || string(r.Stdout) != "via-desktop\n" {
		t.Fatalf("ssh: exit %d %q %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	ls.stop(t)
}
