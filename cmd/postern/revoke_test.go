package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// startServeSSHD is startServe with a real OpenSSH sshd as the target,
// t1, which alice may reach as root. It issues no certificate.
func startServeSSHD(t *testing.T) *serveProc {
	t.Helper()
	s := &serveProc{dir: t.TempDir(), sshBin: testenv.Require(t, "ssh"), logs: &testenv.Buffer{}, done: make(chan error, 1)}
	s.data = filepath.Join(s.dir, "data")
	if r := admin(t, s.dir, "ca", "init", "--data-dir", s.data); r.ExitCode != 0 {
		t.Fatalf("ca init: %s", r.Stderr)
	}
	upstream, err := os.ReadFile(filepath.Join(s.data, "ca", "upstream_ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	caKey, _, _, _, err := ssh.ParseAuthorizedKey(upstream)
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{caKey}})
	s.cfg = filepath.Join(s.dir, "postern.yaml")
	os.WriteFile(s.cfg, fmt.Appendf(nil, `listen: "127.0.0.1:0"
data_dir: ./data
targets:
  - name: t1
    address: %s
    host_key: %q
    logins: [root]
    default_login: root
rules:
  - name: devs
    principals: [alice, bob, carol]
    targets: [t1]
    logins: [root]
`, sshd.Addr, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshd.HostKey)))), 0o600)
	s.start(t)
	return s
}

// sign issues name a certificate with ca sign (extra flags added) and
// returns the key's path and the certificate.
func (s *serveProc) sign(t *testing.T, name string, extra ...string) (string, *ssh.Certificate) {
	t.Helper()
	_, key := testenv.NewKey(t, s.dir, name)
	args := append([]string{"ca", "sign", "--config", s.cfg, "--principal", name}, extra...)
	if r := admin(t, s.dir, append(args, key+".pub")...); r.ExitCode != 0 {
		t.Fatalf("ca sign %s: %s", name, r.Stderr)
	}
	data, err := os.ReadFile(key + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return key, pub.(*ssh.Certificate)
}

// bg is a background ssh through the bastion.
type bg struct {
	stdout, stderr testenv.Buffer
	done           chan error
}

// start runs ssh as user with key through s, running command.
func (s *serveProc) startSSH(t *testing.T, key, user, command string) *bg {
	t.Helper()
	b := &bg{done: make(chan error, 1)}
	args := append(testenv.ClientOpts{Identity: key, KnownHosts: s.knownHosts}.Options(), "-p", s.port, user+"@127.0.0.1", command)
	cmd := exec.Command(s.sshBin, args...)
	cmd.Stdout, cmd.Stderr = &b.stdout, &b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); b.done <- <-b.done })
	return b
}

// ended waits (bounded) for the client to exit, failing with notice on a
// line of its own.
func (b *bg) ended(t *testing.T, what, notice string) {
	t.Helper()
	select {
	case err := <-b.done:
		b.done <- err
		var ee *exec.ExitError
		line := strings.Contains(b.stderr.String(), notice+"\n") || strings.Contains(b.stderr.String(), notice+"\r\n")
		if !errors.As(err, &ee) || !line {
			t.Fatalf("%s ended with %v, stderr %q: want a failure showing %q", what, err, b.stderr.String(), notice)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("%s still runs; stderr %q, want it ended with %q", what, b.stderr.String(), notice)
	}
}

// refused checks that a session and an admin connection with key are
// refused now, showing notice.
func (s *serveProc) refused(t *testing.T, key, notice string) {
	t.Helper()
	for _, user := range []string{"t1", "postern"} {
		// At INFO, ssh shows the bastion's refusal banner; the
		// first value of an option wins.
		args := append(append([]string{"-o", "LogLevel=INFO"}, testenv.ClientOpts{Identity: key, KnownHosts: s.knownHosts}.Options()...),
			"-p", s.port, user+"@127.0.0.1", "echo in")
		r := testenv.Cmd(t, time.Minute, nil, s.sshBin, args...)
		if r.ExitCode != 255 || strings.Contains(string(r.Stdout), "in") || !strings.Contains(string(r.Stderr), notice) {
			t.Fatalf("%s: exit %d stdout %q stderr %q, want refused with %q", user, r.ExitCode, r.Stdout, r.Stderr, notice)
		}
	}
}

// live opens a session and an admin connection with key, and waits until
// both run.
func (s *serveProc) live(t *testing.T, key string) (session, adminConn *bg) {
	t.Helper()
	session = s.startSSH(t, key, "t1", "echo started; sleep 120")
	adminConn = s.startSSH(t, key, "postern", "approvals --watch")
	testenv.WaitFor(t, 30*time.Second, func() bool {
		return strings.Contains(session.stdout.String(), "started") && strings.Contains(adminConn.stdout.String(), "ID")
	})
	return session, adminConn
}

// The README's certificate lifecycle on a running `postern serve` with a
// real sshd target: a short-lived certificate's session and admin
// connection end at its expiry with a notice; `ca revoke` through the
// admin socket ends alice's live ones with a notice and refuses the next;
// unknown serials are refused, a second revoke changes nothing; `ca
// revoked --json` lists them the same with and without the server;
// revocations survive a restart; verify checks their seals and catches an
// edited record.
func TestRevokeLifecycle(t *testing.T) {
	t.Parallel()
	s := startServeSSHD(t)
	carol, carolCert := s.sign(t, "carol", "--ttl", "12s")
	carolSession, carolAdmin := s.live(t, carol)
	alice, aliceCert := s.sign(t, "alice", "--ttl", "1h")
	aliceSession, aliceAdmin := s.live(t, alice)
	serial := strconv.FormatUint(aliceCert.Serial, 10)

	bad := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ca", "revoke", "--config", s.cfg, serial}, 2, "say why with --reason"},
		{[]string{"ca", "revoke", "--config", s.cfg, "--reason", "x"}, 2, "give the serials to revoke, or --identity"},
		{[]string{"ca", "revoke", "--config", s.cfg, "--reason", "x", "12ab"}, 2, `"12ab" is not a certificate serial`},
		{[]string{"ca", "revoke", "--config", s.cfg, "--reason", "x", "--identity", "alice", serial}, 2, "not both"},
		{[]string{"ca", "revoke", "--config", s.cfg, "--reason", "two\nlines", serial}, 2, "one line"},
		{[]string{"ca", "revoke", "--config", s.cfg, "--reason", "typo", serial, "12345"}, 1, "serial 12345: not in the register of issued certificates"},
		{[]string{"ca", "revoke", "--config", s.cfg, "--reason", "typo", "--identity", "nobody@x"}, 1, `key ID "nobody@x": not in the register`},
	}
	for _, b := range bad {
		r := admin(t, s.dir, b.args...)
		if r.ExitCode != b.code || !strings.Contains(string(r.Stderr), b.want) {
			t.Fatalf("postern %q: exit %d stderr %q, want %d and %q", b.args, r.ExitCode, r.Stderr, b.code, b.want)
		}
	}
	if r := admin(t, s.dir, "ca", "revoked", "--config", s.cfg, "--json"); r.ExitCode != 0 || strings.TrimSpace(string(r.Stdout)) != "[]" {
		t.Fatalf("a refused revoke revoked something: %s %s", r.Stdout, r.Stderr)
	}

	r := admin(t, s.dir, "ca", "revoke", "--config", s.cfg, "--reason", "laptop stolen", serial)
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "revoked serial "+serial+" (alice, key ID") ||
		!strings.Contains(string(r.Stdout), "the bastion ended 2 live connection(s)") || !strings.Contains(string(r.Stderr), `"event":"cert_revoked"`) {
		t.Fatalf("ca revoke: exit %d stdout %s stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	notice := "postern: certificate serial " + serial + " was revoked (laptop stolen); log in again (postern login)"
	aliceSession.ended(t, "alice's session", notice)
	aliceAdmin.ended(t, "alice's admin connection", notice)
	s.refused(t, alice, notice)
	if r := admin(t, s.dir, "ca", "revoke", "--config", s.cfg, "--reason", "again", serial); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "was already revoked at") {
		t.Fatalf("second revoke: exit %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}

	// By identity: every certificate with the key ID; ca sign refuses
	// to issue another.
	bob, _ := s.sign(t, "bob", "--key-id", "bob@example.com")
	if r := admin(t, s.dir, "ca", "revoke", "--config", s.cfg, "--identity", "bob@example.com", "--reason", "left"); r.ExitCode != 0 {
		t.Fatalf("revoke --identity: %s", r.Stderr)
	}
	s.refused(t, bob, `postern: certificates with key ID "bob@example.com" were revoked (left); ask an admin`)
	_, bob2 := testenv.NewKey(t, s.dir, "bob2")
	if r := admin(t, s.dir, "ca", "sign", "--config", s.cfg, "--principal", "bob", "--key-id", "bob@example.com", bob2+".pub"); r.ExitCode != 1 ||
		!strings.Contains(string(r.Stderr), `key ID "bob@example.com" was revoked at`) {
		t.Fatalf("ca sign for a revoked key ID: exit %d %s", r.ExitCode, r.Stderr)
	}

	// Carol's certificate expires meanwhile: both her connections end
	// with the notice, and the next is refused.
	expiry := certs.ExpiredMessage(time.Unix(int64(carolCert.ValidBefore), 0))
	carolSession.ended(t, "carol's session", expiry)
	carolAdmin.ended(t, "carol's admin connection", expiry)
	s.refused(t, carol, "postern: your certificate expired at ")

	served := admin(t, s.dir, "ca", "revoked", "--config", s.cfg, "--json")
	var list []recorder.Revocation
	if err := json.Unmarshal(served.Stdout, &list); err != nil || len(list) != 2 || list[0].Serial != aliceCert.Serial || list[0].Reason != "laptop stolen" ||
		list[0].RevokedBy == "" || list[1].KeyID != "bob@example.com" || list[1].Note != "" {
		t.Fatalf("ca revoked --json: %v %s", err, served.Stdout)
	}
	if human := admin(t, s.dir, "ca", "revoked", "--config", s.cfg); !strings.Contains(string(human.Stdout), "serial "+serial+" (alice, key ID") {
		t.Fatalf("ca revoked: %s", human.Stdout)
	}

	// Stopped: the same listing from the data directory. Restarted:
	// still refused, and a new certificate for alice works.
	s.stop(t)
	if direct := admin(t, s.dir, "ca", "revoked", "--config", s.cfg, "--json"); direct.ExitCode != 0 || string(direct.Stdout) != string(served.Stdout) {
		t.Fatalf("ca revoked without a server: exit %d %s, with one %s", direct.ExitCode, direct.Stdout, served.Stdout)
	}
	s.start(t)
	s.refused(t, alice, notice)
	alice2, _ := s.sign(t, "alice")
	if r := s.sshAs(t, alice2, "echo in"); r.ExitCode != 0 || string(r.Stdout) != "in\n" {
		t.Fatalf("alice's new certificate: exit %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	var rep recorder.Report
	v := admin(t, s.dir, "verify", "--config", s.cfg, "--json")
	if err := json.Unmarshal(v.Stdout, &rep); err != nil || v.ExitCode != 0 || rep.Revocations != 2 {
		t.Fatalf("verify: exit %d %s %s", v.ExitCode, v.Stdout, v.Stderr)
	}
	s.stop(t)
	editRevocation(t, s.data, "serial/"+serial)
	v = admin(t, s.dir, "verify", "--config", s.cfg)
	if v.ExitCode != 1 || !strings.Contains(string(v.Stdout)+string(v.Stderr), "revocation serial/"+serial+": revocation record edited") {
		t.Fatalf("verify after an edit: exit %d %s %s", v.ExitCode, v.Stdout, v.Stderr)
	}
}

// sshAs runs command on t1 with key.
func (s *serveProc) sshAs(t *testing.T, key, command string) testenv.Result {
	t.Helper()
	args := append(testenv.ClientOpts{Identity: key, KnownHosts: s.knownHosts}.Options(), "-p", s.port, "t1@127.0.0.1", command)
	return testenv.Cmd(t, time.Minute, nil, s.sshBin, args...)
}

// editRevocation changes the reason in revocation record k of data's
// index, as someone with write access to postern.db could.
func editRevocation(t *testing.T, data, k string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(data, "postern.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("revocations"))
		v := b.Get([]byte(k))
		if v == nil {
			return fmt.Errorf("no revocation record %s", k)
		}
		return b.Put([]byte(k), []byte(strings.Replace(string(v), "laptop stolen", "mistake", 1)))
	})
	if err != nil {
		t.Fatal(err)
	}
}
