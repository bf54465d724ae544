package bastion

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/mask"
)

// ===========================================================================
// Part 2: defences that held (regression tests)
// ===========================================================================

// TestAttackAdminHeldUserNames: no spelling of the reserved name but the
// exact one opens the admin connection, and none of them dials a target
// or authenticates.
func TestAttackAdminHeldUserNames(t *testing.T) {
	t.Parallel()
	a := newAdminEnv(t)
	signer := attackAdminSigner(t, a.alice)
	cert := readCert(t, a.alice+"-cert.pub")
	for _, user := range []string{
		"Postern", "POSTERN", "postern ", " postern", "postern\t", "postern\x00", "postern\n",
		"postern@x", "x@postern", "postern@postern", "root@Postern", "postern@t1", "t1@postern",
		"po\u017ftern", // LATIN SMALL LETTER LONG S folds to s
		"\uff50\uff4f\uff53\uff54\uff45\uff52\uff4e", // full-width
		"p\u043estern",  // Cyrillic o
		"postern\u200b", // zero-width space
		"@postern", "postern@", "",
	} {
		if client, err := attackAdminDial(t, a, user, cert, signer); err == nil {
			client.Close()
			t.Errorf("user name %q was accepted", user)
		}
	}
	logs := a.logs.String()
	if strings.Contains(logs, `"route":"admin"`) || strings.Contains(logs, `"msg":"upstream connected"`) {
		t.Errorf("a near-miss user name reached a route:\n%s", logs)
	}
}

// TestAttackAdminHeldCertificates: the admin route gets the same
// certificate checks as the proxy route (they run in the public key
// callback, before the route is chosen): expired, not yet valid, no
// principals, unknown critical options (force-command, a groups option),
// source-address elsewhere, another CA, a host certificate.
func TestAttackAdminHeldCertificates(t *testing.T) {
	t.Parallel()
	a := newAdminEnv(t)
	signer := attackAdminSigner(t, a.alice)
	now := time.Now()
	other := testenv.NewSigner(t)
	for name, edit := range map[string]func(*ssh.Certificate){
		"expired": func(c *ssh.Certificate) {
			c.ValidAfter, c.ValidBefore = uint64(now.Add(-2*time.Hour).Unix()), uint64(now.Add(-time.Hour).Unix())
		},
		"not yet valid": func(c *ssh.Certificate) { c.ValidAfter = uint64(now.Add(time.Hour).Unix()) },
		"force-command": func(c *ssh.Certificate) { c.CriticalOptions["force-command"] = "sessions" },
		"groups option": func(c *ssh.Certificate) { c.CriticalOptions["groups@postern"] = "auditors" },
		"source-address elsewhere": func(c *ssh.Certificate) {
			c.CriticalOptions["source-address"] = "192.0.2.1/32"
		},
		"source-address malformed": func(c *ssh.Certificate) { c.CriticalOptions["source-address"] = "127.0.0.1/33" },
		"host certificate":         func(c *ssh.Certificate) { c.CertType = ssh.HostCert },
	} {
		cert := attackAdminCert(t, a, signer, edit)
		if client, err := attackAdminDial(t, a, AdminUser, cert, signer); err == nil {
			client.Close()
			t.Errorf("%s: the admin connection accepted the certificate", name)
		}
	}
	// No principals: x/crypto will not sign that, ssh-keygen does (an
	// OpenSSH certificate without principals is valid for any user).
	keygen := testenv.Require(t, "ssh-keygen")
	pubPath := filepath.Join(t.TempDir(), "mallory.pub")
	if err := os.WriteFile(pubPath, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(env(t).dir, "data", "ca", certs.UserCAFile)
	if r := testenv.Cmd(t, time.Minute, nil, keygen, "-q", "-s", caPath, "-I", "noprincipals", "-V", "-5m:+1h", pubPath); r.ExitCode != 0 {
		t.Fatalf("ssh-keygen: %d %s", r.ExitCode, r.Stderr)
	}
	data, err := os.ReadFile(strings.TrimSuffix(pubPath, ".pub") + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	if np := pk.(*ssh.Certificate); len(np.ValidPrincipals) != 0 {
		t.Fatalf("ssh-keygen made principals %q", np.ValidPrincipals)
	} else if client, err := attackAdminDial(t, a, AdminUser, np, signer); err == nil {
		client.Close()
		t.Error("a certificate without principals opened the admin connection")
	}
	// Another CA's certificate.
	cert := attackAdminCert(t, a, signer, nil)
	if err := cert.SignCert(rand.Reader, other); err != nil {
		t.Fatal(err)
	}
	if client, err := attackAdminDial(t, a, AdminUser, cert, signer); err == nil {
		client.Close()
		t.Error("a certificate from another CA opened the admin connection")
	}
	// source-address that holds the client works.
	cert = attackAdminCert(t, a, signer, func(c *ssh.Certificate) { c.CriticalOptions["source-address"] = "127.0.0.1/32" })
	client, err := attackAdminDial(t, a, AdminUser, cert, signer)
	if err != nil {
		t.Fatalf("source-address 127.0.0.1/32 from loopback: %v", err)
	}
	if out, stderr, st := attackAdminRun(t, client, "whoami"); st != 0 || !strings.Contains(out, "identity:    mallory\n") {
		t.Fatalf("whoami: status %d stdout %q stderr %q", st, out, stderr)
	}
}

// TestAttackAdminHeldNotAdmin: nothing but a principal or a group of the
// groups@postern extension makes an admin: not the key ID, not the case
// of a name, not a principal named like a group entry, not spaces.
func TestAttackAdminHeldNotAdmin(t *testing.T) {
	t.Parallel()
	a := newAdminEnv(t) // admins: group:auditors
	signer := attackAdminSigner(t, a.alice)
	for name, edit := range map[string]func(*ssh.Certificate){
		"key id auditors":         func(c *ssh.Certificate) { c.KeyId = "auditors" },
		"key id group:auditors":   func(c *ssh.Certificate) { c.KeyId = "group:auditors" },
		"principal auditors":      func(c *ssh.Certificate) { c.ValidPrincipals = []string{"mallory", "auditors"} },
		"principal group:":        func(c *ssh.Certificate) { c.ValidPrincipals = []string{"group:auditors"} },
		"group Auditors":          func(c *ssh.Certificate) { c.Extensions["groups@postern"] = "Auditors" },
		"group with spaces":       func(c *ssh.Certificate) { c.Extensions["groups@postern"] = "dev, auditors " },
		"group auditors\\x00":     func(c *ssh.Certificate) { c.Extensions["groups@postern"] = "auditors\x00" },
		"group in other ext":      func(c *ssh.Certificate) { c.Extensions["groups@postern.evil"] = "auditors" },
		"group in other ext name": func(c *ssh.Certificate) { c.Extensions["groups"] = "auditors" },
	} {
		cert := attackAdminCert(t, a, signer, edit)
		client, err := attackAdminDial(t, a, AdminUser, cert, signer)
		if err != nil {
			continue // refused outright is fine too
		}
		out, stderr, st := attackAdminRun(t, client, "sessions --json")
		if st != 1 || out != "" || !strings.Contains(stderr, "is for the bastion's admins") {
			t.Errorf("%s: sessions status %d stdout %q stderr %q; want refused", name, st, out, stderr)
		}
		// Case and Unicode tricks on the command name find no command.
		for _, cmd := range []string{"Sessions", "SESSIONS", "s\u0435ssions", "sessions\u00a0--json"} {
			out, _, st := attackAdminRun(t, client, cmd)
			if st == 0 || out != "" {
				t.Errorf("%s: %q ran: status %d stdout %q", name, cmd, st, out)
			}
		}
		client.Close()
	}
	for _, m := range attackAdminRecords(a.logs.String(), "admin_command") {
		if m["allowed"] == true && m["exit_status"] == 0.0 && attackAdminStr(m, "command") != "whoami" {
			t.Errorf("audit record of a non-admin says a command ran: %v", m)
		}
	}
}

// TestAttackAdminHeldRequests: on the admin connection nothing opens a
// terminal, shell, subsystem, env, forward of any kind, or a target.
func TestAttackAdminHeldRequests(t *testing.T) {
	t.Parallel()
	a := newAdminEnv(t)
	client := a.dialGo(t, a.alice, AdminUser)
	for _, typ := range []string{"direct-tcpip", "direct-streamlocal@openssh.com", "x11", "auth-agent@openssh.com",
		"forwarded-tcpip", "tun@openssh.com", "Session", "session\x00"} {
		payload := ssh.Marshal(struct {
			Host  string
			Port  uint32
			OHost string
			OPort uint32
		}{"127.0.0.1", 22, "127.0.0.1", 1})
		if ch, _, err := client.OpenChannel(typ, payload); err == nil {
			ch.Close()
			t.Errorf("channel %q opened on the admin connection", typ)
		}
	}
	for _, typ := range []string{"tcpip-forward", "streamlocal-forward@openssh.com", "cancel-tcpip-forward"} {
		if ok, _, _ := client.SendRequest(typ, true, ssh.Marshal(struct {
			Addr string
			Port uint32
		}{"127.0.0.1", 0})); ok {
			t.Errorf("global request %q granted", typ)
		}
	}

	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	statuses := make(chan []byte, 4)
	go func() {
		for r := range reqs {
			if r.Type == "exit-status" {
				statuses <- r.Payload
			}
		}
		close(statuses)
	}()
	pty := ssh.Marshal(struct {
		Term       string
		Cols, Rows uint32
		W, H       uint32
		Modes      string
	}{"xterm", 80, 24, 0, 0, ""})
	for _, r := range []struct {
		typ     string
		payload []byte
	}{
		{"pty-req", pty},
		{"env", ssh.Marshal(struct{ Name, Value string }{"LANG", "C"})},
		{"env", ssh.Marshal(struct{ Name, Value string }{"LD_PRELOAD", "/tmp/x.so"})},
		{"window-change", ssh.Marshal(struct{ C, R, W, H uint32 }{80, 24, 0, 0})},
		{"signal", ssh.Marshal(struct{ Sig string }{"KILL"})},
		{"break", ssh.Marshal(struct{ L uint32 }{100})},
		{"Exec", ssh.Marshal(struct{ C string }{"sessions"})},
		{"exec\x00", ssh.Marshal(struct{ C string }{"sessions"})},
	} {
		if ok, err := ch.SendRequest(r.typ, true, r.payload); ok || err != nil {
			t.Errorf("%q: ok %v err %v, want refused", r.typ, ok, err)
		}
	}
	// exec, then a second exec and a shell on the same channel: only the
	// first runs (RFC 4254 §6.5).
	if ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ C string }{"whoami"})); !ok || err != nil {
		t.Fatalf("exec whoami: ok %v err %v", ok, err)
	}
	for _, typ := range []string{"exec", "shell", "subsystem"} {
		// The channel may already be closing: a refusal or an error.
		if ok, _ := ch.SendRequest(typ, true, ssh.Marshal(struct{ C string }{"help"})); ok {
			t.Errorf("%s after exec accepted", typ)
		}
	}
	out, _ := io.ReadAll(ch)
	if !strings.HasPrefix(string(out), "identity:    alice\n") || strings.Contains(string(out), "Commands of the admin") {
		t.Errorf("output %q: want whoami's alone", out)
	}
	n := 0
	for st := range statuses {
		n++
		if !bytes.Equal(st, []byte{0, 0, 0, 0}) {
			t.Errorf("exit status %v", st)
		}
	}
	if n != 1 {
		t.Errorf("%d exit statuses, want 1", n)
	}
	if strings.Contains(a.logs.String(), `"msg":"upstream connected"`) {
		t.Error("the admin connection dialled a target")
	}
}

// TestAttackAdminHeldOutputEscaping: what comes from the client (the
// command name, arguments) or the certificate (principals, groups, key
// ID) cannot act on the terminal or leave a card number, in text or JSON,
// on stdout or stderr.
func TestAttackAdminHeldOutputEscaping(t *testing.T) {
	t.Parallel()
	a := newAdminEnv(t)
	signer := attackAdminSigner(t, a.alice)
	evil := "\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m\u202e\x00\xff\xfe\u2028\x7f4111 1111 1111 1111\r\n"
	cert := attackAdminCert(t, a, signer, func(c *ssh.Certificate) {
		c.KeyId = evil
		c.ValidPrincipals = []string{"mallory" + evil, "5555555555554444"}
		c.Extensions["groups@postern"] = "dev" + evil
	})
	client, err := attackAdminDial(t, a, AdminUser, cert, signer)
	if err != nil {
		t.Fatal(err)
	}
	bad := func(what, s string) {
		t.Helper()
		for _, b := range []string{"\x1b", "\x07", "\x9b", "\u202e", "\x00", "\xff", "\u2028", "\x7f", "\r", "\u009b"} {
			if strings.Contains(s, b) {
				t.Errorf("%s holds %q raw: %q", what, b, s)
			}
		}
		if _, n := mask.MaskText(nil, []byte(s), mask.ModeFull); n > 0 || strings.Contains(s, "5555555555554444") {
			t.Errorf("%s holds a card number: %q", what, s)
		}
	}
	out, stderr, st := attackAdminRun(t, client, "whoami")
	if st != 0 {
		t.Fatalf("whoami: %d %q", st, stderr)
	}
	bad("whoami", out)
	out, _, st = attackAdminRun(t, client, "whoami --json")
	if st != 0 || !json.Valid([]byte(out)) {
		t.Fatalf("whoami --json: %d %q", st, out)
	}
	bad("whoami --json", out)
	for _, cmd := range []string{evil, "whoami " + evil, "whoami --" + evil, "whoami --json=" + evil, "sessions " + evil, "help " + evil} {
		out, stderr, _ := attackAdminRun(t, client, cmd)
		bad("stdout of "+strconv.Quote(cmd), out)
		// stderr is one line ending in "\n": the only newline allowed.
		bad("stderr of "+strconv.Quote(cmd), strings.TrimSuffix(stderr, "\n"))
		if strings.Count(stderr, "\n") > 1 {
			t.Errorf("stderr of %q is several lines: %q", cmd, stderr)
		}
	}
	// The audit log holds no card number either.
	if strings.Contains(a.logs.String(), "5555555555554444") || strings.Contains(a.logs.String(), "4111 1111 1111 1111") {
		t.Error("the log holds a card number in clear")
	}
}

// TestAttackAdminHeldExecCloseRace: exec followed at once by a close,
// over and over, with the race detector: no panic, no leak that keeps the
// connection from ending, and the connection still works in between.
func TestAttackAdminHeldExecCloseRace(t *testing.T) {
	t.Parallel()
	a := newAdminEnv(t)
	client := a.dialGo(t, a.alice, AdminUser)
	opened := 0
	for i := range 40 {
		ch, reqs, err := client.OpenChannel("session", nil)
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) && oce.Reason == ssh.ResourceShortage {
			// The channels closed just before may still be in their
			// handlers, which count against the connection's limit.
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		opened++
		go ssh.DiscardRequests(reqs)
		cmd := "whoami"
		if i%2 == 1 {
			cmd = "help"
		}
		ch.SendRequest("exec", false, ssh.Marshal(struct{ C string }{cmd}))
		ch.Close()
	}
	if opened < 10 {
		t.Fatalf("only %d of 40 channels opened", opened)
	}
	// The last channels may still count against the limit: wait for a
	// whoami that is let in, bounded.
	testenv.WaitFor(t, 20*time.Second, func() bool {
		out, _, st, err := attackAdminExec(client, "whoami")
		return err == nil && st == 0 && strings.Contains(out, "alice")
	})
	client.Close()
	testenv.WaitFor(t, 20*time.Second, func() bool {
		return len(attackAdminRecords(a.logs.String(), "disconnect")) == 1
	})
	if strings.Contains(a.logs.String(), "panicked") {
		t.Fatal("a handler panicked")
	}
}

// TestAttackAdminHeldIdleTimeout: an admin connection that does nothing
// (ssh -N postern@bastion, or channels left open) is ended by the idle
// timeout like a proxied one, with its disconnect record.
func TestAttackAdminHeldIdleTimeout(t *testing.T) {
	t.Parallel()
	h := env(t)
	// Long enough that the connection is still there when the channel is
	// opened after the handshake, on a loaded machine too (with 300ms
	// OpenChannel could find it already ended); the wait below is longer.
	b := h.extraServer(t, Config{Policy: h.policy, IdleTimeout: 2 * time.Second})
	a := &adminEnv{harness: b}
	client := a.dialGo(t, h.alice, AdminUser)
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	defer ch.Close()
	done := make(chan error, 1)
	go func() { done <- client.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("an idle admin connection was not ended by the 2s idle timeout")
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, m := range attackAdminRecords(b.logs.String(), "disconnect") {
			if strings.Contains(attackAdminStr(m, "reason"), "idle") {
				return true
			}
		}
		return false
	})
}
