package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// adminRun is what one admin command printed and how it exited.
type adminRun struct {
	args   []string
	stdout string
	code   int
}

// adminCommands runs every admin command that reads or maintains the data
// of the demo in work, and returns what each printed on stdout and its exit
// code. id is a recorded session.
func adminCommands(t *testing.T, work, id string) []adminRun {
	t.Helper()
	cmds := [][]string{
		{"sessions"},
		{"sessions", "--json"},
		{"sessions", "--grep", "hello from", "--json"},
		{"sessions", "--user", "nobody"},
		{"play", id, "--cat"},
		{"play", id, "--cat", "--raw"},
		{"play", "01NOSUCHSESSION-1", "--cat"},
		{"verify"},
		{"verify", "--json"},
		{"verify", "--anchor", "999:" + strings.Repeat("0", 64)},
		{"recordings", "prune", "--dry-run"},
		{"recordings", "prune", "--older-than-days", "3650", "--json"},
		{"ca", "issued"},
		{"ca", "issued", "--json"},
		{"ca", "revoked"},
		{"ca", "revoked", "--json"},
	}
	var out []adminRun
	for _, args := range cmds {
		r := admin(t, work, args...)
		out = append(out, adminRun{args: args, stdout: string(r.Stdout), code: r.ExitCode})
	}
	return out
}

func sameRuns(t *testing.T, what string, server, direct []adminRun) {
	t.Helper()
	for i := range server {
		s, d := server[i], direct[i]
		if s.code != d.code || s.stdout != d.stdout {
			t.Errorf("postern %s: with a server exit %d stdout\n%s\n%s: exit %d stdout\n%s", strings.Join(s.args, " "), s.code, s.stdout, what, d.code, d.stdout)
		}
	}
}

// caSign signs a fresh key in the demo's data and returns its serial and
// the cert_issued audit record it wrote.
func caSign(t *testing.T, work, name string) (uint64, map[string]any) {
	t.Helper()
	_, key := testenv.NewKey(t, work, name)
	r := admin(t, work, "ca", "sign", "--principal", name, "--ttl", "1h", "--out", "-", key+".pub")
	if r.ExitCode != 0 {
		t.Fatalf("ca sign: exit %d: %s", r.ExitCode, r.Stderr)
	}
	cert := parseCert(t, r.Stdout)
	for _, line := range bytes.Split(r.Stderr, []byte("\n")) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil && rec["event"] == "cert_issued" {
			if rec["serial"] != float64(cert.Serial) || rec["identity"] != name || rec["issued_by"] == "" || rec["audit"] != true {
				t.Fatalf("cert_issued record %v for serial %d", rec, cert.Serial)
			}
			return cert.Serial, rec
		}
	}
	t.Fatalf("ca sign wrote no cert_issued audit record: %s", r.Stderr)
	return 0, nil
}

// TestAdminCommandsSameWithAndWithoutServer: every admin command prints the
// same and exits the same whether it goes through a running demo's admin
// socket, opens the data directory next to a stale socket left by a demo
// that was killed, or opens it after a clean stop. A killed demo's socket
// does not keep the next one from starting, and a second demo on the same
// directory is refused while the first runs.
func TestAdminCommandsSameWithAndWithoutServer(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "ssh")
	work := t.TempDir()
	data := filepath.Join(work, demoDir)
	d := startDemo(t, work)
	for range 2 {
		if r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", d.cmds[1]); r.ExitCode != 3 {
			t.Fatalf("%s: exit %d: %s", d.cmds[1], r.ExitCode, r.Stderr)
		}
	}
	sock := adminsock.Path(data)
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("demo runs without an admin socket: %v", err)
	}
	// The client has its exit status before the bastion seals the
	// session (the seal follows the channel's close): wait for both
	// seals, so that the listings below do not depend on when they run.
	testenv.WaitFor(t, 30*time.Second, func() bool {
		var active []recorder.Session
		r := admin(t, work, "sessions", "--active", "--json")
		return r.ExitCode == 0 && json.Unmarshal([]byte(r.Stdout), &active) == nil && len(active) == 0
	})
	// A second instance on the same data directory stops before it
	// changes anything.
	r := admin(t, work, "demo", "--listen", "127.0.0.1:0")
	if r.ExitCode != 1 || !strings.Contains(string(r.Stderr), "in use by another postern") {
		t.Fatalf("second demo on a data directory in use: exit %d: %s", r.ExitCode, r.Stderr)
	}
	first, _ := caSign(t, work, "bob") // through the socket
	var list []recorder.Session
	if err := json.Unmarshal([]byte(admin(t, work, "sessions", "--json").Stdout), &list); err != nil || len(list) != 2 {
		t.Fatalf("sessions --json: %v %v", list, err)
	}
	served := adminCommands(t, work, list[0].ID)
	if served[4].code != 0 || !strings.Contains(served[4].stdout, "hello from") || served[6].code != 1 || served[7].code != 0 || served[9].code != 1 {
		t.Fatalf("with a server: play exit %d %q, unknown session exit %d, verify exit %d, bad anchor exit %d",
			served[4].code, served[4].stdout, served[6].code, served[7].code, served[9].code)
	}

	// Killed: the socket file stays behind, and nothing answers on it.
	d.cmd.Process.Kill()
	<-d.done
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("no stale socket after a kill: %v", err)
	}
	sameRuns(t, "next to a stale socket", served, adminCommands(t, work, list[0].ID))
	second, _ := caSign(t, work, "carol") // directly
	if first == second || first == 0 || second == 0 {
		t.Fatalf("serials %d and %d: want two distinct ones", first, second)
	}

	// The next demo starts over the stale socket; after a clean stop
	// its socket is gone.
	d2 := startDemo(t, work)
	served = adminCommands(t, work, list[0].ID)
	if !strings.Contains(served[12].stdout, "carol") || !strings.Contains(served[12].stdout, "bob") {
		t.Fatalf("ca issued: %s", served[12].stdout)
	}
	d2.cmd.Process.Signal(syscall.SIGTERM)
	<-d2.done
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("admin socket left after a clean stop: %v", err)
	}
	sameRuns(t, "after a clean stop", served, adminCommands(t, work, list[0].ID))
}

func parseCert(t *testing.T, line []byte) *ssh.Certificate {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatalf("not a certificate: %v: %q", err, line)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("not a certificate: %q", line)
	}
	return cert
}
