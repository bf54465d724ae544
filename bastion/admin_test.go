package bastion

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/listing"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

func TestParseUserReserved(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"postern", "root@postern", "postern@db01", "Postern", "root@POSTERN"} {
		if login, target, err := ParseUser(in); err == nil {
			t.Errorf("ParseUser(%q) = %q, %q; want the reserved-name error", in, login, target)
		}
	}
	// The policy says why, in words the user can act on.
	p := Policy{Targets: []Target{{Name: "db01"}}, Rules: []Rule{{Name: "all", Principals: []string{"*"}, Targets: []string{"*"}, Logins: []string{"*"}}}}
	_, err := p.Decide(Identity{Principals: []string{"alice"}}, "postern@db01")
	if de, ok := err.(*DenyError); !ok || !strings.Contains(de.UserMessage(), "reserved for the admin connection") {
		t.Fatalf("Decide(postern@db01) = %v, want a denial naming the reserved name", err)
	}
}

func TestAdminEntries(t *testing.T) {
	t.Parallel()
	for entry, ok := range map[string]bool{
		"alice": true, "group:security": true, "": false, "*": false, "group:": false, "group:*": false, "ali*": false, " alice": false,
		"group:a,b": false, "al ice": false, "alice\x00": false,
	} {
		if err := CheckAdmin(entry); (err == nil) != ok {
			t.Errorf("CheckAdmin(%q) = %v, want ok %v", entry, err, ok)
		}
	}
	s := &Server{cfg: Config{Admins: []string{"carol", "group:security"}}}
	for _, tt := range []struct {
		id   Identity
		want bool
	}{
		{Identity{Principals: []string{"alice", "carol"}}, true},
		{Identity{Principals: []string{"bob"}, Groups: []string{"dev", "security"}}, true},
		{Identity{Principals: []string{"security"}}, false},                       // a principal is not a group
		{Identity{Principals: []string{"bob"}, Groups: []string{"carol"}}, false}, // nor a group a principal
		{Identity{KeyID: "carol"}, false},                                         // key IDs are not identities
	} {
		if got := s.isAdmin(tt.id); got != tt.want {
			t.Errorf("isAdmin(%+v) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

// adminEnv is a bastion with its own session index and an admins list,
// and two users: alice (not an admin) and carol (admin through a group,
// with a card number for a key ID).
type adminEnv struct {
	*harness
	store *recorder.Local
	carol string // key path
}

func newAdminEnv(t *testing.T) *adminEnv {
	h := env(t)
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, Admins: []string{"group:auditors"}})
	b.dir = t.TempDir()
	carol := b.userKey(t, "carol", certs.UserCertRequest{Principals: []string{"carol", "ops"}, Groups: []string{"auditors"}, TTL: time.Hour, KeyID: "4111111111111111"})
	return &adminEnv{harness: b, store: store, carol: carol}
}

// admin runs an admin command with the OpenSSH client.
func (a *adminEnv) admin(t *testing.T, key string, extra []string, args ...string) testenv.Result {
	t.Helper()
	return a.sshWith(t, extra, key, AdminUser, nil, args...)
}

func TestAdminConnection(t *testing.T) {
	t.Parallel()
	a := newAdminEnv(t)

	// whoami, for a user with no admin rights and no rule about it.
	r := a.admin(t, a.alice, nil, "whoami")
	for _, want := range []string{"identity:    alice\n", "key id:      alice@test\n", "groups:      -\n", "admin:       no\n", "valid:       until "} {
		if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), want) {
			t.Fatalf("whoami: exit %d, stdout lacks %q:\n%s\nstderr %s", r.ExitCode, want, r.Stdout, r.Stderr)
		}
	}

	// whoami --json tells the certificate's serial and expiry, and a
	// card number in the key ID leaves the bastion masked.
	r = a.admin(t, a.carol, nil, "whoami", "--json")
	var w whoami
	if err := json.Unmarshal(r.Stdout, &w); err != nil || r.ExitCode != 0 {
		t.Fatalf("whoami --json: exit %d, %v:\n%s\nstderr %s", r.ExitCode, err, r.Stdout, r.Stderr)
	}
	cert := readCert(t, a.carol+"-cert.pub")
	if w.Identity != "carol" || strings.Join(w.Principals, ",") != "carol,ops" || strings.Join(w.Groups, ",") != "auditors" ||
		w.Serial != cert.Serial || !w.Admin || w.ValidBefore == nil || w.ValidBefore.Unix() != int64(cert.ValidBefore) {
		t.Fatalf("whoami --json = %+v; want carol, her groups, admin, serial %d, valid before %d", w, cert.Serial, cert.ValidBefore)
	}
	if strings.Contains(string(r.Stdout), "4111111111111111") || w.KeyID != strings.Repeat("*", 16) {
		t.Fatalf("key ID %q: want the card number masked in the output", w.KeyID)
	}

	// A proxied session, then the listing: the admin gets the document
	// `postern sessions --json` prints for the same index, byte for byte.
	if r := a.ssh(t, a.alice, "root@t1", nil, "echo admin-listing"); r.ExitCode != 0 {
		t.Fatalf("proxy exec: exit %d stderr %s", r.ExitCode, r.Stderr)
	}
	var list []recorder.Session
	testenv.WaitFor(t, 10*time.Second, func() bool {
		l, err := a.store.List(context.Background(), recorder.Filter{})
		list = l
		return err == nil && len(l) == 1 && l[0].Status != recorder.StatusActive
	})
	var want bytes.Buffer
	if err := listing.SessionsJSON(&want, listing.Rows(list)); err != nil {
		t.Fatal(err)
	}
	r = a.admin(t, a.carol, nil, "sessions", "--json")
	if r.ExitCode != 0 || !bytes.Equal(r.Stdout, want.Bytes()) || !strings.Contains(string(r.Stdout), `"command": "echo admin-listing"`) {
		t.Fatalf("sessions --json: exit %d stderr %s\n got %s\nwant %s", r.ExitCode, r.Stderr, r.Stdout, want.Bytes())
	}
	want.Reset()
	if err := listing.Sessions(&want, listing.Rows(list)); err != nil {
		t.Fatal(err)
	}
	if r = a.admin(t, a.carol, nil, "sessions"); r.ExitCode != 0 || !bytes.Equal(r.Stdout, want.Bytes()) {
		t.Fatalf("sessions: exit %d stderr %s\n got %s\nwant %s", r.ExitCode, r.Stderr, r.Stdout, want.Bytes())
	}

	// A non-admin, an unknown command and bad usage: one line on stderr,
	// nothing on stdout, status 1, 1 and 2.
	for _, tt := range []struct {
		key    string
		args   []string
		status int
		msg    string
	}{
		{a.alice, []string{"sessions", "--json"}, 1, "postern: sessions is for the bastion's admins, and alice is not one\n"},
		{a.carol, []string{"frobnicate"}, 1, `postern: unknown command "frobnicate"; run: ssh postern@bastion help` + "\n"},
		{a.carol, []string{"whoami", "--bogus"}, 2, "postern: whoami: flag provided but not defined: -bogus\n"},
		{a.carol, []string{"sessions", "extra"}, 2, `postern: sessions: unexpected argument "extra"; usage: sessions [--json] [--active] [--user U] [--target T]` + "\n"},
		{a.carol, []string{"whoami", strings.Repeat("x", maxCommandLine)}, 2, "postern: the command line is longer than 1024 bytes\n"},
	} {
		r := a.admin(t, tt.key, nil, tt.args...)
		if r.ExitCode != tt.status || len(r.Stdout) != 0 || string(r.Stderr) != tt.msg {
			t.Errorf("%q: exit %d stdout %q stderr %q; want %d, nothing, %q", tt.args, r.ExitCode, r.Stdout, r.Stderr, tt.status, tt.msg)
		}
	}

	// Each command is an audit record: who, what, allowed, why.
	got := map[string]map[string]any{}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for line := range strings.Lines(a.logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["event"] == "admin_command" {
				got[m["user"].(string)+" "+m["command_line"].(string)] = m
			}
		}
		return len(got) == 9
	})
	for key, want := range map[string][]any{
		"alice whoami":          {true, "", 0.0},
		"carol sessions --json": {true, "", 0.0},
		"alice sessions --json": {false, "not an admin", 1.0},
		"carol frobnicate":      {false, "unknown command", 1.0},
		"carol whoami --bogus":  {false, "usage: whoami: flag provided but not defined: -bogus", 2.0},
		"carol sessions extra":  {false, "usage: sessions: unexpected argument", 2.0},
		"carol whoami --json":   {true, "", 0.0},
		"carol whoami " + strings.Repeat("x", maxCommandLine-len("whoami ")): {false, "usage: the command line is longer", 2.0},
	} {
		m := got[key]
		if m == nil || m["allowed"] != want[0] || !strings.HasPrefix(m["reason"].(string), want[1].(string)) || m["exit_status"] != want[2] {
			t.Errorf("audit record for %q = %v, want allowed %v reason %q exit %v", key, m, want[0], want[1], want[2])
		}
	}
	// Only the proxied connection dialled the target.
	if n := strings.Count(a.logs.String(), `"msg":"upstream connected"`); n != 1 {
		t.Errorf("%d upstream connections in the log, want 1 (admin connections dial none)", n)
	}
}

// TestAdminConnectionRefuses: no shell, terminal, subsystem or forward on
// the admin connection, and "postern" is no target.
func TestAdminConnectionRefuses(t *testing.T) {
	t.Parallel()
	a := newAdminEnv(t)

	r := a.admin(t, a.alice, []string{"-T"})
	if r.ExitCode != 2 || len(r.Stdout) != 0 || !strings.Contains(string(r.Stderr), "postern: the admin connection has no shell; run a command: ssh postern@bastion help\n") {
		t.Errorf("shell: exit %d stdout %q stderr %q; want 2 and the no-shell line", r.ExitCode, r.Stdout, r.Stderr)
	}
	// A terminal is refused. OpenSSH goes on without one when it only
	// asked for one because stdin is a terminal, and gives up when -t
	// asked for one.
	r = a.admin(t, a.alice, []string{"-tt"}, "whoami")
	if r.ExitCode != 255 || len(r.Stdout) != 0 || !strings.Contains(string(r.Stderr), "PTY allocation request failed") {
		t.Errorf("whoami with -tt: exit %d stdout %q stderr %q; want the pty refused", r.ExitCode, r.Stdout, r.Stderr)
	}
	// From a terminal, `ssh postern@bastion` asks for a terminal and a
	// shell: OpenSSH goes on without the terminal and shows the line.
	args := append(a.opts(a.alice), "-p", strconv.Itoa(a.port), AdminUser+"@127.0.0.1")
	p := testenv.RunOnPTY(t, "", nil, a.sshBin, args...)
	if p.ExitCode != 2 || !strings.Contains(string(p.Output), "postern: the admin connection has no shell") {
		t.Errorf("interactive ssh: exit %d output %q; want 2 and the no-shell line", p.ExitCode, p.Output)
	}
	r = a.admin(t, a.alice, []string{"-s"}, "sftp")
	if r.ExitCode != 1 || !strings.Contains(string(r.Stderr), "postern: the admin connection has no subsystems") {
		t.Errorf("subsystem: exit %d stderr %q; want 1 and the no-subsystem line", r.ExitCode, r.Stderr)
	}
	// ssh -W opens a direct-tcpip channel at once, as -L does per
	// connection; OpenSSH prints the reason of the refusal.
	r = a.admin(t, a.alice, []string{"-W", "127.0.0.1:" + strconv.Itoa(a.port)})
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), adminForwardMessage) {
		t.Errorf("forward: exit %d stderr %q; want a refusal with %q", r.ExitCode, r.Stderr, adminForwardMessage)
	}
	// "postern" as a target is not the admin connection, and no target.
	r = a.ssh(t, a.alice, "root@postern", nil, "whoami")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), `postern: "postern" is reserved for the admin connection`) {
		t.Errorf("root@postern: exit %d stderr %q; want the reserved-name refusal", r.ExitCode, r.Stderr)
	}
	for _, kind := range []string{"shell", "subsystem"} {
		if !strings.Contains(a.logs.String(), `"event":"program_refused","channel":`) || !strings.Contains(a.logs.String(), `"kind":"`+kind+`","reason":"`+kind+` requested on the admin connection"`) {
			t.Errorf("no program_refused audit record for the %s", kind)
		}
	}
}

// TestAdminConnectionWire: what OpenSSH never sends. An exec payload that
// does not decode is refused with a line and exit status 2; channel types
// and global requests outside the admin route's tables are refused.
func TestAdminConnectionWire(t *testing.T) {
	t.Parallel()
	a := newAdminEnv(t)
	client := a.dialGo(t, a.alice, AdminUser)
	defer client.Close()

	if _, _, err := client.OpenChannel("x11", nil); err == nil || !strings.Contains(err.Error(), "is not supported") {
		t.Errorf("x11 channel: %v, want refused as unsupported", err)
	}
	if ok, _, err := client.SendRequest("tcpip-forward", true, ssh.Marshal(struct {
		Addr string
		Port uint32
	}{"127.0.0.1", 0})); ok || err != nil {
		t.Errorf("tcpip-forward: ok %v err %v, want refused", ok, err)
	}

	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	statuses := make(chan uint32, 1)
	go func() {
		for r := range reqs {
			if r.Type == "exit-status" && len(r.Payload) == 4 {
				statuses <- uint32(r.Payload[3])
			}
		}
		close(statuses)
	}()
	// A string length of 9 with one byte after it.
	if ok, err := ch.SendRequest("exec", true, []byte{0, 0, 0, 9, 'w'}); ok || err != nil {
		t.Fatalf("malformed exec: ok %v err %v, want refused", ok, err)
	}
	stderr, err := io.ReadAll(ch.Stderr())
	if err != nil || string(stderr) != "postern: malformed exec request\n" {
		t.Fatalf("stderr %q (%v), want the malformed-exec line", stderr, err)
	}
	if st, ok := <-statuses; !ok || st != 2 {
		t.Fatalf("exit status %d (received %v), want 2", st, ok)
	}

	// A well-formed exec on the next channel runs.
	ch, reqs, err = client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	if ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{"help"})); !ok || err != nil {
		t.Fatalf("exec help: ok %v err %v", ok, err)
	}
	out, err := io.ReadAll(ch)
	if err != nil || !strings.Contains(string(out), "whoami [--json]") || !strings.Contains(string(out), "(admins only)") {
		t.Fatalf("help printed %q (%v)", out, err)
	}
}

// TestAdminCommandLineMasking: the audit record's command line is masked
// whole and then cut at a UTF-8 boundary, and a cut never leaves a card
// number; messages that quote one word hide the digits the line masks.
func TestAdminCommandLineMasking(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"whoami 4111 1111 1111 1111", 100, "whoami **** **** **** ****"},
		{"x 41111111111111111", 18, "x ****************"}, // 17 digits are none; the first 16 are one
		{"é4111111111111111", 1, ""},                      // never half a character
		{"éé", 3, "é"},
	} {
		if got := cutMasked(logSafe(tt.in), tt.n); got != tt.want {
			t.Errorf("cutMasked(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
	line := "whoami --json=4111 1111 1111 1111 12"
	runs := maskedRuns(line, logSafe(line))
	if msg := hideRuns(`invalid value "4111" and "1111" for 12`, runs); msg != `invalid value "****" and "****" for 12` {
		t.Errorf("hideRuns: %q (runs %q)", msg, runs)
	}
	if runs := maskedRuns("whoami 12345", "whoami 12345"); runs != nil {
		t.Errorf("maskedRuns of a line without a card number: %q", runs)
	}
}
