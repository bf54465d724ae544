package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// The user's own key, given with --key, was in ssh-agent before the
// login: neither logout nor a later login with a generated key removes it
// from the agent; only the certificates the bastion issued go.
func TestAttackLogoutKeepsOwnAgentEntries(t *testing.T) {
	b := newLoginBench(t)
	_, own := testenv.NewKey(t, t.TempDir(), "id_own")
	if r := testenv.Cmd(t, time.Minute, nil, testenv.Require(t, "ssh-add"), own); r.ExitCode != 0 {
		t.Fatalf("ssh-add: %d %s", r.ExitCode, r.Stderr)
	}
	key, err := certs.LoadLoginKey(own)
	if err != nil {
		t.Fatal(err)
	}
	ownEntry := testenv.AgentList(t, b.sock)
	if len(ownEntry) != 1 {
		t.Fatalf("ssh-add -l: %q", ownEntry)
	}
	b.login(key, 8*time.Hour, 0, false)
	if l := testenv.AgentList(t, b.sock); len(l) != 2 {
		t.Fatalf("after login --key: %q", l)
	}
	if code, stdout, stderr := runCLI(t, "logout", "--dir", b.dir); code != 0 || !strings.Contains(stdout, "1 ssh-agent entries") {
		t.Fatalf("logout: %d %s %s", code, stdout, stderr)
	}
	if l := testenv.AgentList(t, b.sock); strings.Join(l, "\n") != strings.Join(ownEntry, "\n") {
		t.Fatalf("after logout: %q, want the user's own entry %q", l, ownEntry)
	}
	// --key, then a generated key: the earlier login's certificate goes,
	// the user's key stays.
	b.login(key, 8*time.Hour, 0, false)
	gen, err := certs.GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	b.login(gen, 8*time.Hour, 0, false)
	l := testenv.AgentList(t, b.sock)
	if len(l) != 3 || !strings.Contains(strings.Join(l, "\n"), ownEntry[0]) {
		t.Fatalf("after a login with a generated key: %q; want the user's key and the new key and certificate", l)
	}
}

// Login CSRF by another user of the same machine: the URL handed to the
// browser is in its command line (/proc/PID/cmdline is world-readable),
// with the state, the PKCE challenge and the nonce. Another user opens it
// in their own browser, signs in as themselves, and the provider sends the
// code to the victim's loopback port: the victim's login completes, with a
// certificate in the attacker's name. The client cannot tell (inherent to
// loopback redirects on a shared machine, RFC 8252 section 8.3): it says
// whose certificate it got and warns when that is not who logged in last
// time. Not parallel: it sets HOME and SSH_AUTH_SOCK.
func TestAttackLoginFinishedByAnotherLocalUser(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	users := append(slices.Clone(testenv.DefaultOIDCUsers),
		testenv.OIDCUser{Username: "mallory", Password: "pw-mallory", Email: "mallory@example.com", EmailVerified: true})
	p := testenv.OIDC(t, testenv.OIDCOptions{Users: users})
	ls := startLoginServe(t, p.Issuer, p.ClientID, "")
	dir := filepath.Join(t.TempDir(), "postern")
	if code, out, errs := runLogin(t, ls.loginURL, p, "alice", "--dir", dir); code != 0 || strings.Contains(out, "Warning") {
		t.Fatalf("alice's login: exit %d\n%s%s", code, out, errs)
	}
	// alice logs in again; mallory's browser finishes it.
	code, out, errs := runLogin(t, ls.loginURL, p, "mallory", "--force", "--dir", dir)
	if code != 0 || !strings.Contains(out, "as mallory@example.com") {
		t.Fatalf("the login mallory finished: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "Warning: this certificate is for mallory@example.com, but the last login here was alice@example.com") {
		t.Fatalf("no warning that the identity changed:\n%s", out)
	}
	ls.stop(t)
}

// The demo's target runs commands as the user who started the demo, and
// with --oidc-issuer anyone the provider vouches for may reach it: on a
// shared machine, every other local user with an account there. The demo
// says so, and --oidc-allow limits it to the names given: a certificate
// the login API issues to anyone else reaches nothing. Not parallel: it
// sets HOME.
func TestAttackDemoOIDCAllow(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	users := append(slices.Clone(testenv.DefaultOIDCUsers),
		testenv.OIDCUser{Username: "mallory", Password: "pw-mallory", Email: "mallory@example.com", EmailVerified: true})
	p := testenv.OIDC(t, testenv.OIDCOptions{Users: users})
	d := startDemo(t, t.TempDir(), "--oidc-issuer", p.Issuer, "--oidc-client-id", p.ClientID, "--oidc-allow", "alice@example.com")
	var loginURL string
	for _, l := range d.text {
		if f := strings.Fields(l); len(f) == 3 && f[1] == "login" && strings.HasPrefix(f[2], "http://127.0.0.1:") {
			loginURL = f[2]
		}
	}
	text := strings.Join(d.text, "\n")
	if loginURL == "" || !strings.Contains(text, "only alice@example.com") {
		t.Fatalf("the demo's text:\n%s", text)
	}
	sshLine := d.cmds[len(d.cmds)-1] + " -o BatchMode=yes 'echo ran as the demo user'"
	if code, out, errs := runLogin(t, loginURL, p, "mallory"); code != 0 {
		t.Fatalf("mallory's login: exit %d\n%s%s", code, out, errs)
	}
	if r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", sshLine); r.ExitCode == 0 {
		t.Fatalf("mallory reached the demo target: %q", r.Stdout)
	}
	if code, out, errs := runLogin(t, loginURL, p, "alice", "--force"); code != 0 {
		t.Fatalf("alice's login: exit %d\n%s%s", code, out, errs)
	}
	if r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", sshLine); r.ExitCode != 0 {
		t.Fatalf("alice: exit %d %q %q", r.ExitCode, r.Stdout, r.Stderr)
	}
}
