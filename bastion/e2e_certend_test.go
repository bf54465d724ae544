package bastion

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// certEndServer is a bastion of its own with a recording index and an
// approval broker (so that `approvals --watch` keeps an admin connection
// open), on the shared target.
func certEndServer(t *testing.T) (*harness, *recorder.Local) {
	t.Helper()
	h := env(t)
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	broker, err := approval.NewBroker(t.Context(), approval.BrokerConfig{Store: ApprovalStore(store, nil), Audit: ApprovalAudit(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	rules := &approval.Policy{Rules: []approval.Rule{
		{Name: "touch", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
	}}
	if err := rules.Check(); err != nil {
		t.Fatal(err)
	}
	return h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, ApprovalRules: rules, Approvals: broker}), store
}

// bgSSH is an OpenSSH client running in the background.
type bgSSH struct {
	stdout, stderr testenv.Buffer
	done           chan error
}

// startSSH runs ssh through b as user with key, running command; it is
// killed at the end of the test if still running.
func startSSH(t *testing.T, b *harness, key, user, command string) *bgSSH {
	t.Helper()
	s := &bgSSH{done: make(chan error, 1)}
	args := append(b.opts(key), "-p", strconv.Itoa(b.port), user+"@127.0.0.1", command)
	cmd := exec.Command(b.sshBin, args...)
	cmd.Stdout, cmd.Stderr = &s.stdout, &s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		s.done <- <-s.done
	})
	return s
}

// ended waits until the client exits (bounded), and checks it failed
// showing notice on stderr, a line of its own.
func (s *bgSSH) ended(t *testing.T, what, notice string) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		var ee *exec.ExitError
		line := strings.Contains(s.stderr.String(), notice+"\n") || strings.Contains(s.stderr.String(), notice+"\r\n")
		if !errors.As(err, &ee) || !line {
			t.Fatalf("%s ended with %v, stderr %q: want a failure showing %q", what, err, s.stderr.String(), notice)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("%s still runs; stderr %q, want it ended with %q", what, s.stderr.String(), notice)
	}
}

// certOf reads the certificate beside key.
func certOf(t *testing.T, key string) *ssh.Certificate {
	t.Helper()
	data, err := os.ReadFile(key + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*ssh.Certificate)
}

// eventRecords returns the audit records of event in logs.
func eventRecords(logs, event string) []map[string]any {
	var out []map[string]any
	for _, rec := range auditRecords(logs) {
		if rec["event"] == event {
			out = append(out, rec)
		}
	}
	return out
}

// openBoth opens a proxied session and an admin connection with key, and
// waits until both run.
func openBoth(t *testing.T, b *harness, key string) (session, admin *bgSSH) {
	t.Helper()
	session = startSSH(t, b, key, "root@t1", "echo started; sleep 120")
	admin = startSSH(t, b, key, AdminUser, "approvals --watch")
	testenv.WaitFor(t, 30*time.Second, func() bool {
		return strings.Contains(session.stdout.String(), "started") && strings.Contains(admin.stdout.String(), "ID")
	})
	return session, admin
}

// refusedNow checks that a new proxied and a new admin connection with key
// are refused, showing notice.
func refusedNow(t *testing.T, b *harness, key, notice string) {
	t.Helper()
	for _, user := range []string{"root@t1", AdminUser} {
		r := b.ssh(t, key, user, nil, "echo in")
		if r.ExitCode != 255 || strings.Contains(string(r.Stdout), "in") || !strings.Contains(string(r.Stderr), notice) {
			t.Fatalf("%s after the end: exit %d stdout %q stderr %q, want refused with %q", user, r.ExitCode, r.Stdout, r.Stderr, notice)
		}
	}
}

// A certificate's end ends the connections it authenticated: a proxied
// session and an admin connection, opened with a real OpenSSH client on a
// certificate valid for a few seconds, each show the expiry notice and
// end; the session's recording is sealed, audit records say why, and the
// next connection is refused.
func TestCertificateExpiryEndsConnections(t *testing.T) {
	t.Parallel()
	b, store := certEndServer(t)
	// Long enough to connect twice on a loaded machine; nothing waits
	// for the clock but the bastion.
	key := b.userKey(t, "expiring", certs.UserCertRequest{Principals: []string{"alice"}, TTL: 12 * time.Second, KeyID: "expiring@test"})
	cert := certOf(t, key)
	notice := certs.ExpiredMessage(time.Unix(int64(cert.ValidBefore), 0))
	session, admin := openBoth(t, b, key)
	session.ended(t, "the session", notice)
	admin.ended(t, "the admin connection", notice)
	if time.Now().Before(time.Unix(int64(cert.ValidBefore), 0)) {
		t.Fatalf("ended before the certificate expired at %d", cert.ValidBefore)
	}
	refusedNow(t, b, key, "postern: your certificate expired at ")

	ended := eventRecords(b.logs.String(), "connection_ended")
	if len(ended) != 2 || ended[0]["cause"] != "certificate_expired" || ended[1]["cause"] != "certificate_expired" || ended[0]["notice"] != notice {
		t.Fatalf("connection_ended records %v", ended)
	}
	testenv.WaitFor(t, 20*time.Second, func() bool {
		list, err := store.List(t.Context(), recorder.Filter{})
		return err == nil && len(list) == 1 && list[0].Status == recorder.StatusClosed && list[0].SHA256 != "" && list[0].Serial == cert.Serial
	})
	for _, rec := range eventRecords(b.logs.String(), "disconnect") {
		if rec["reason"] != "certificate_expired" {
			t.Fatalf("disconnect record %v: want reason certificate_expired", rec)
		}
	}
}

// Server.Revoke ends the live connections of the certificate it revokes,
// each with the notice, and refuses it from then on; others, of the same
// principal, go on. A key ID revocation covers every certificate with
// that key ID.
func TestRevokeEndsConnections(t *testing.T) {
	t.Parallel()
	b, _ := certEndServer(t)
	key := b.userKey(t, "revoked", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, KeyID: "revoked@test"})
	other := b.userKey(t, "notrevoked", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, KeyID: "other@test"})
	serial := certOf(t, key).Serial
	session, admin := openBoth(t, b, key)
	bystander := startSSH(t, b, other, "root@t1", "echo started; sleep 120")
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(bystander.stdout.String(), "started") })

	r := certs.Revocation{Serial: serial, Reason: "laptop stolen", At: time.Now()}
	if n := b.srv.Revoke(r); n != 2 {
		t.Fatalf("Revoke ended %d connections, want 2", n)
	}
	notice := "postern: certificate serial " + strconv.FormatUint(serial, 10) + " was revoked (laptop stolen); log in again (postern login)"
	session.ended(t, "the session", notice)
	admin.ended(t, "the admin connection", notice)
	refusedNow(t, b, key, notice)
	select {
	case err := <-bystander.done:
		t.Fatalf("a connection with another certificate ended: %v %q", err, bystander.stderr.String())
	default:
	}
	if n := b.srv.Revoke(r); n != 0 {
		t.Fatalf("revoking again ended %d connections", n)
	}
	// The client may leave before the bastion writes its record.
	want := "revoked (serial " + strconv.FormatUint(serial, 10) + "): laptop stolen"
	testenv.WaitFor(t, 20*time.Second, func() bool {
		n := 0
		for _, rec := range eventRecords(b.logs.String(), "connect") {
			if reason, _ := rec["reason"].(string); rec["allowed"] == false && strings.Contains(reason, want) {
				n++
			}
		}
		return n == 2
	})

	// By key ID: both of its certificates, the bystander's live one too.
	again := b.userKey(t, "other2", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, KeyID: "other@test"})
	if n := b.srv.Revoke(certs.Revocation{KeyID: "other@test", Reason: "left"}); n != 1 {
		t.Fatalf("key ID revocation ended %d connections, want 1", n)
	}
	idNotice := `postern: certificates with key ID "other@test" were revoked (left); ask an admin`
	bystander.ended(t, "the bystander's session", idNotice)
	refusedNow(t, b, again, idNotice)
	if r := b.ssh(t, b.alice, "root@t1", nil, "echo in"); r.ExitCode != 0 {
		t.Fatalf("alice's own certificate after the revocations: exit %d %s", r.ExitCode, r.Stderr)
	}
}
