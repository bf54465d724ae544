package main

import (
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
