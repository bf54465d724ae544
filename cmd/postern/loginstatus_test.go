package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// loginBench is a login directory, an ssh-agent and a real sshd trusting
// a certs.Authority that stands in for the bastion's POST
// /v1/certificates: the files `postern login` writes are used by the real
// ssh client.
type loginBench struct {
	t    *testing.T
	ca   *certs.Authority
	sshd *testenv.SSHDInstance
	sock string
	dir  string
	url  string // nothing listens there: a login that reaches for it fails
	d    *certs.LoginDir
}

func newLoginBench(t *testing.T) *loginBench {
	b := &loginBench{t: t, url: "http://127.0.0.1:1"}
	var err error
	if b.ca, err = certs.Open(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	b.sshd = testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{b.ca.UserCA.PublicKey()}})
	b.sock = testenv.SSHAgent(t)
	t.Setenv("SSH_AUTH_SOCK", b.sock)
	t.Setenv("POSTERN_URL", "")
	b.dir = filepath.Join(t.TempDir(), "postern")
	if b.d, err = certs.OpenLoginDir(b.dir); err != nil {
		t.Fatal(err)
	}
	return b
}

// login does what `postern login` does after the bastion answered, with
// a certificate for root (the sshd's login) signed by the stand-in CA,
// valid for ttl from now.
func (b *loginBench) login(key *certs.LoginKey, ttl, since time.Duration, agentOnly bool) string {
	b.t.Helper()
	cert, err := b.ca.SignUser(key.Public, certs.UserCertRequest{Principals: []string{"root"}, Groups: []string{"dev"},
		TTL: ttl, KeyID: "alice@example.com", Now: time.Now().Add(-since)})
	if err != nil {
		b.t.Fatal(err)
	}
	info := &certs.LoginInfo{Issuer: "http://127.0.0.1:1", ClientID: "postern", SSHHost: "127.0.0.1",
		SSHPort: b.sshd.Port, KnownHosts: []string{b.sshd.KnownHostsLine()}}
	res := &certs.LoginResult{URL: b.url, Info: info, Issued: &certs.IssuedCertificate{Cert: cert}}
	old, err := b.d.State()
	if err != nil {
		b.t.Fatal(err)
	}
	var out bytes.Buffer
	if err := finishLogin(b.d, old, res, key, agentOnly, b.sock, &out); err != nil {
		b.t.Fatalf("finishLogin: %v", err)
	}
	return out.String()
}

// ssh runs the real client with the ssh_config login wrote; extra options
// come first (ssh keeps the first value).
func (b *loginBench) ssh(extra ...string) testenv.Result {
	b.t.Helper()
	args := append([]string{"-F", filepath.Join(b.dir, certs.SSHConfigFile), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"}, extra...)
	return testenv.Cmd(b.t, time.Minute, nil, testenv.Require(b.t, "ssh"), append(args, "root@127.0.0.1", "echo via-postern-config")...)
}

func (b *loginBench) wantSSH(extra ...string) {
	b.t.Helper()
	if r := b.ssh(extra...); r.ExitCode != 0 || strings.TrimSpace(string(r.Stdout)) != "via-postern-config" {
		b.t.Fatalf("ssh -F ssh_config %v: exit %d, stdout %q, stderr %q", extra, r.ExitCode, r.Stdout, r.Stderr)
	}
}

// After a login, plain ssh with the written ssh_config reaches the host
// with the key file (no agent) and through the agent; status shows the
// certificate; a second login reuses it; logout removes files and agent
// entries.
func TestLoginFilesStatusReuseLogout(t *testing.T) {
	b := newLoginBench(t)
	key, err := certs.GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	out := b.login(key, 8*time.Hour, 0, false)
	if !strings.Contains(out, "Logged in to http://127.0.0.1:1 as alice@example.com (principals root;") ||
		!strings.Contains(out, "added to ssh-agent for 7h59m") ||
		!strings.Contains(out, "Connect: ssh -F "+filepath.Join(b.dir, "ssh_config")+" LOGIN@TARGET@127.0.0.1") ||
		!strings.Contains(out, "Include "+filepath.Join(b.dir, "ssh_config")) {
		t.Fatalf("login said:\n%s", out)
	}
	if l := testenv.AgentList(t, b.sock); len(l) != 2 {
		t.Fatalf("ssh-add -l: %q, want key and certificate", l)
	}
	b.wantSSH("-o", "IdentityAgent=none") // the key file
	b.wantSSH()                           // agent or file, as ssh picks

	code, stdout, stderr := runCLI(t, "status", "--dir", b.dir)
	for _, want := range []string{"identity:     alice@example.com", "principals:   root", "groups:       dev",
		"left)", "ssh-agent:    holds the certificate", "bastion:      http://127.0.0.1:1"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Fatalf("status: exit %d, %q missing from:\n%s%s", code, want, stdout, stderr)
		}
	}
	code, stdout, _ = runCLI(t, "status", "--dir", b.dir, "--json")
	var st loginStatus
	if err := json.Unmarshal([]byte(stdout), &st); code != 0 || err != nil {
		t.Fatalf("status --json: exit %d, %v: %s", code, err, stdout)
	}
	if st.Identity != "alice@example.com" || st.Groups[0] != "dev" || st.InAgent == nil || !*st.InAgent ||
		st.SecondsLeft < 7*3600 || st.SecondsLeft > 8*3600 || st.SSHPort != b.sshd.Port || st.Serial == 0 {
		t.Fatalf("status --json: %+v", st)
	}

	// More than an hour left: no sign-in, with the URL given, remembered,
	// or from POSTERN_URL; the agent gets the key back if it lost it.
	testenv.Cmd(t, time.Minute, nil, testenv.Require(t, "ssh-add"), "-D")
	for _, args := range [][]string{{b.url}, nil} {
		code, stdout, stderr = runCLI(t, append([]string{"login", "--dir", b.dir}, args...)...)
		if code != 0 || !strings.Contains(stdout, "Still logged in to http://127.0.0.1:1 as alice@example.com") {
			t.Fatalf("login %v: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
	if !strings.Contains(stdout, "Added it to ssh-agent again") && len(testenv.AgentList(t, b.sock)) != 2 {
		t.Fatalf("the agent did not get the key back: %q", testenv.AgentList(t, b.sock))
	}
	// --force, another URL or another key sign in again (and fail here:
	// nothing answers), leaving the saved login as it was.
	t.Setenv("POSTERN_URL", "http://127.0.0.1:2")
	for _, args := range [][]string{{"--force", b.url}, nil, {"--agent-only", b.url}} {
		code, _, stderr = runCLI(t, append([]string{"login", "--dir", b.dir}, args...)...)
		if code != 1 || !strings.Contains(stderr, "reach the bastion") {
			t.Fatalf("login %v: exit %d, stderr %q; want an attempt to reach the bastion", args, code, stderr)
		}
	}
	t.Setenv("POSTERN_URL", "")
	b.wantSSH("-o", "IdentityAgent=none")

	code, stdout, stderr = runCLI(t, "logout", "--dir", b.dir)
	if code != 0 || !strings.Contains(stdout, "removed 5 files and 2 ssh-agent entries") {
		t.Fatalf("logout: exit %d\n%s%s", code, stdout, stderr)
	}
	if l := testenv.AgentList(t, b.sock); len(l) != 0 {
		t.Fatalf("ssh-add -l after logout: %q", l)
	}
	if entries, _ := os.ReadDir(b.dir); len(entries) != 1 || entries[0].Name() != certs.LoginStateFile {
		t.Fatalf("after logout the directory holds %v", entries)
	}
	if code, _, stderr = runCLI(t, "status", "--dir", b.dir); code != 1 || !strings.Contains(stderr, "not logged in") {
		t.Fatalf("status after logout: exit %d %q", code, stderr)
	}
	// The URL is remembered: login without one tries it.
	if code, _, stderr = runCLI(t, "login", "--dir", b.dir); code != 1 || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Fatalf("login after logout: exit %d %q", code, stderr)
	}
}

// --agent-only keeps the private key off disk: ssh finds it in the agent
// through the public key named by IdentityFile; when the agent loses it,
// login signs in again.
func TestLoginAgentOnly(t *testing.T) {
	b := newLoginBench(t)
	key, err := certs.GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	b.login(key, 8*time.Hour, 0, true)
	if _, err := os.Stat(filepath.Join(b.dir, certs.LoginKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("the private key is on disk: %v", err)
	}
	b.wantSSH()
	if r := b.ssh("-o", "IdentityAgent=none"); r.ExitCode == 0 {
		t.Fatal("ssh logged in without the agent: the key is somewhere on disk")
	}
	if code, stdout, _ := runCLI(t, "login", "--agent-only", "--dir", b.dir, b.url); code != 0 || !strings.Contains(stdout, "Still logged in") {
		t.Fatalf("agent-only reuse: exit %d %s", code, stdout)
	}
	testenv.Cmd(t, time.Minute, nil, testenv.Require(t, "ssh-add"), "-D")
	if code, _, stderr := runCLI(t, "login", "--agent-only", "--dir", b.dir, b.url); code != 1 || !strings.Contains(stderr, "reach the bastion") {
		t.Fatalf("agent-only without the key in the agent: exit %d %q; want a new sign-in", code, stderr)
	}
	if code, stdout, _ := runCLI(t, "logout", "--dir", b.dir); code != 0 || !strings.Contains(stdout, "removed 4 files") { // no private key file to remove
		t.Fatalf("logout: exit %d %s", code, stdout)
	}
	// Without an agent, --agent-only refuses before anything else.
	t.Setenv("SSH_AUTH_SOCK", "")
	if code, _, stderr := runCLI(t, "login", "--agent-only", "--dir", b.dir, b.url); code != 1 || !strings.Contains(stderr, "needs a running ssh-agent") {
		t.Fatalf("agent-only without agent: exit %d %q", code, stderr)
	}
}

// --key certifies the user's own key; logout leaves that key alone. A
// certificate with an hour or less left is not reused; an expired one
// makes status fail.
func TestLoginOwnKeyShortAndExpired(t *testing.T) {
	b := newLoginBench(t)
	_, own := testenv.NewKey(t, t.TempDir(), "id_own")
	key, err := certs.LoadLoginKey(own)
	if err != nil {
		t.Fatal(err)
	}
	b.login(key, 50*time.Minute, 0, false)
	b.wantSSH("-o", "IdentityAgent=none")
	if _, err := os.Stat(filepath.Join(b.dir, "id_own-cert.pub")); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(t, "login", "--key", own, "--dir", b.dir, b.url); code != 1 || !strings.Contains(stderr, "reach the bastion") {
		t.Fatalf("50 minutes left: exit %d %q; want a new sign-in", code, stderr)
	}
	// The certificate's entry only: the user's key is the user's
	// (TestAttackLogoutKeepsOwnAgentEntries).
	if code, stdout, _ := runCLI(t, "logout", "--dir", b.dir); code != 0 || !strings.Contains(stdout, "removed 3 files and 1 ssh-agent entries") {
		t.Fatalf("logout: exit %d %s", code, stdout)
	}
	if _, err := os.Stat(own); err != nil {
		t.Fatalf("logout removed the user's key: %v", err)
	}

	out := b.login(key, time.Hour, 2*time.Hour, false)
	if !strings.Contains(out, "Not added to ssh-agent: the certificate has expired") {
		t.Fatalf("expired certificate's login said:\n%s", out)
	}
	if code, _, stderr := runCLI(t, "status", "--dir", b.dir); code != 1 || !strings.Contains(stderr, "the certificate of alice@example.com expired at") {
		t.Fatalf("status of an expired certificate: exit %d %q", code, stderr)
	}
}
