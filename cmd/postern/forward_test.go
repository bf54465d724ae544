package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

const (
	cliTestPAN   = "4111111111111111"
	cliMaskedPAN = "411111******1111"
)

// TestServePostgresForward follows the README's PostgreSQL forwarding
// section with the real binaries: `postern serve` with a target (a real
// sshd) that declares a postgres forward, `ssh -N -L` and psql; then the
// statements are in `postern sessions`, `play` and `sessions --grep` with
// the identity, database and user, masked, and verify finds nothing wrong.
func TestServePostgresForward(t *testing.T) {
	t.Parallel()
	psql := testenv.Require(t, "psql")
	s := &serveProc{dir: t.TempDir(), sshBin: testenv.Require(t, "ssh"), logs: &testenv.Buffer{}, done: make(chan error, 1)}
	s.data = filepath.Join(s.dir, "data")
	if r := admin(t, s.dir, "ca", "init", "--data-dir", s.data); r.ExitCode != 0 {
		t.Fatalf("ca init: %s", r.Stderr)
	}
	upstreamCA, _ := os.ReadFile(filepath.Join(s.data, "ca", "upstream_ca.pub"))
	caKey, _, _, _, err := ssh.ParseAuthorizedKey(upstreamCA)
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{caKey}})
	pg := testenv.Postgres(t)
	pg.SQL(t, "CREATE TABLE cards (id int, pan text, note text); INSERT INTO cards VALUES (1, '"+cliTestPAN+"', 'order 12345');")
	s.cfg = filepath.Join(s.dir, "postern.yaml")
	os.WriteFile(s.cfg, fmt.Appendf(nil, `listen: "127.0.0.1:0"
data_dir: ./data
targets:
  - name: db01
    address: %s
    host_key: %q
    logins: [root]
    default_login: root
    forward:
      - {port: %d, protocol: postgres}
rules:
  - name: dba
    principals: [alice]
    targets: [db01]
    logins: [root]
    forwards: [%d]
`, sshd.Addr, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey))), pg.Port, pg.Port), 0o600)
	if r := admin(t, s.dir, "config", "check", "--config", s.cfg); r.ExitCode != 0 {
		t.Fatalf("config check: %s %s", r.Stdout, r.Stderr)
	}
	s.start(t)
	_, s.key = testenv.NewKey(t, s.dir, "alice")
	if r := admin(t, s.dir, "ca", "sign", "--config", s.cfg, "--principal", "alice", "--ttl", "1h", s.key+".pub"); r.ExitCode != 0 {
		t.Fatalf("ca sign: %s", r.Stderr)
	}
	local := s.forward(t, "db01", pg.Port)
	host, port, _ := net.SplitHostPort(local)
	r := testenv.Cmd(t, time.Minute, nil, psql, "-X", "-h", host, "-p", port, "-U", "postgres", "-c", "SELECT pan, note FROM cards")
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), cliMaskedPAN) || !strings.Contains(string(r.Stdout), "order 12345") {
		t.Fatalf("psql through the forward: exit %d\n%s%s", r.ExitCode, r.Stdout, r.Stderr)
	}
	var id string
	testenv.WaitFor(t, 20*time.Second, func() bool {
		for _, l := range sessionsJSON(t, s.dir, "--config", s.cfg) {
			if l.Kind == "postgres" && l.Status == "closed" && l.Forward != nil && l.Forward.Statements > 0 {
				id = l.ID
				if l.Identity != "alice" || l.Forward.Database != "postgres" || l.Forward.DBUser != "postgres" {
					t.Fatalf("index entry %+v %+v", l.Session, l.Forward)
				}
				return true
			}
		}
		return false
	})
	table := admin(t, s.dir, "sessions", "--config", s.cfg)
	hits := admin(t, s.dir, "sessions", "--config", s.cfg, "--grep", "FROM cards")
	play := admin(t, s.dir, "play", "--config", s.cfg, "--cat", id)
	for what, want := range map[string][]string{
		string(table.Stdout): {id, "alice", "db01", "postgres", strconv.Itoa(pg.Port) + "/postgres db=postgres user=postgres", "database postgres, user postgres: 1 statements"},
		string(hits.Stdout):  {id, "postgres=> SELECT pan, note FROM cards"},
		string(play.Stdout):  {"-- postgres: database postgres, user postgres, application psql", "postgres=> SELECT pan, note FROM cards", "-- SELECT 1, 1 row"},
	} {
		for _, w := range want {
			if !strings.Contains(what, w) {
				t.Errorf("%q missing from:\n%s", w, what)
			}
		}
	}
	if v := admin(t, s.dir, "verify", "--config", s.cfg, "--json"); v.ExitCode != 0 || !strings.Contains(string(v.Stdout), `"problems": []`) {
		t.Fatalf("verify: %d %s %s", v.ExitCode, v.Stdout, v.Stderr)
	}
	for _, out := range []string{string(r.Stdout), string(table.Stdout), string(hits.Stdout), string(play.Stdout), s.logs.String()} {
		if strings.Contains(out, cliTestPAN) {
			t.Fatalf("a full card number was printed or logged:\n%s", out)
		}
	}
}

// forward runs `ssh -N -L` through the bastion to port on target until the
// test ends, and returns the local address once it accepts connections.
func (s *serveProc) forward(t *testing.T, target string, port int) string {
	t.Helper()
	local := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	args := append(testenv.ClientOpts{Identity: s.key, KnownHosts: s.knownHosts}.Options(),
		"-p", s.port, "-N", "-o", "ExitOnForwardFailure=yes", "-L", local+":localhost:"+strconv.Itoa(port), target+"@127.0.0.1")
	cmd := exec.CommandContext(t.Context(), s.sshBin, args...)
	stderr := &testenv.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { <-exited })
	testenv.WaitFor(t, 20*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("ssh -L exited: %s", stderr.String())
		default:
		}
		c, err := net.Dial("tcp", local)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return local
}
