package bastion

// End-to-end tests: the OpenSSH client talks to a Postern bastion running
// in this test binary, which talks to a real OpenSSH sshd started on
// loopback. One sshd and one bastion serve every test in the package.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/sshdproc"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

func TestMain(m *testing.M) {
	code := testenv.Run(m)
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// harness is the package's one bastion and target.
type harness struct {
	dir        string
	auth       *certs.Authority
	sshd       *testenv.SSHDInstance
	srv        *Server
	port       int    // bastion port
	knownHosts string // pins the bastion's host key
	logs       *testenv.Buffer
	policy     Policy
	sshBin     string
	store      *recorder.Local

	alice string // key path with a valid certificate for principal alice
	// fileMask and fileAllow: keys for principals whose rules set
	// file_pans to mask and allow (alice's rule blocks, the default).
	fileMask, fileAllow string
	// rsyncer and rsyncMask: keys for rules that grant rsync (no rule
	// does by default), blocking and masking card numbers.
	rsyncer, rsyncMask string
}

var (
	shared     harness
	sharedOnce sync.Once
	sharedErr  error
)

// env returns the shared harness, starting it on first use.
func env(t testing.TB) *harness {
	t.Helper()
	sshBin := testenv.Require(t, "ssh")
	testenv.Require(t, "sshd")
	sharedOnce.Do(func() { sharedErr = shared.start(t, sshBin) })
	if sharedErr != nil {
		t.Fatalf("start harness: %v", sharedErr)
	}
	// The shared sshd prints its log on failure; print the bastion's too.
	mark := len(shared.logs.String())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bastion log during this test:\n%s", shared.logs.String()[mark:])
		}
	})
	return &shared
}

// testUser is a non-root login on the target: sshd only delivers
// "signal" requests to sessions of users other than root (privilege
// separation).
const testUser = "posterne2e"

func (h *harness) start(t testing.TB, sshBin string) error {
	if err := sshdproc.EnsureUser(testUser, "/bin/sh"); err != nil {
		return err
	}
	if err := sshdproc.EnsureUser(hookUser, "/bin/bash"); err != nil {
		return err
	}
	var err error
	h.sshBin = sshBin
	if h.dir, err = os.MkdirTemp("", "postern-e2e-"); err != nil {
		return err
	}
	if h.auth, err = certs.Open(filepath.Join(h.dir, "data")); err != nil {
		return err
	}
	h.sshd = testenv.SharedSSHD(t, "bastion-target", testenv.SSHDOptions{
		TrustedUserCAKeys: []ssh.PublicKey{h.auth.UpstreamCA.PublicKey()},
		Extra:             []string{"AcceptEnv POSTERN_FORBIDDEN_VAR"},
	})
	wrongKey := testenv.NewSigner(t).PublicKey()
	kh := filepath.Join(h.dir, "target_known_hosts")
	if err := os.WriteFile(kh, []byte(h.sshd.KnownHostsLine()+"\n"), 0o644); err != nil {
		return err
	}
	h.policy = Policy{
		Targets: []Target{
			{Name: "t1", Address: h.sshd.Addr, HostKey: h.sshd.HostKey, Logins: []string{"root", testUser, hookUser, "nobody"}, DefaultLogin: "root"},
			{Name: "viakh", Address: h.sshd.Addr, KnownHostsFile: kh},
			{Name: "badkey", Address: h.sshd.Addr, HostKey: wrongKey},
		},
		Rules: []Rule{
			{Name: "alice", Principals: []string{"alice"}, Targets: []string{"t1", "viakh", "badkey"}, Logins: []string{"root", testUser, hookUser}},
			{Name: "filemask", Principals: []string{"filemask"}, Targets: []string{"t1"}, Logins: []string{"root"}, FilePANs: FilePANsMask},
			{Name: "fileallow", Principals: []string{"fileallow"}, Targets: []string{"t1"}, Logins: []string{"root"}, FilePANs: FilePANsAllow, Transfers: []string{"sftp", "scp"}},
			{Name: "notransfer", Principals: []string{"notransfer"}, Targets: []string{"t1"}, Logins: []string{"root"}, Transfers: []string{}},
			{Name: "rsyncer", Principals: []string{"rsyncer"}, Targets: []string{"t1"}, Logins: []string{"root"}, Transfers: TransferKinds},
			{Name: "rsyncmask", Principals: []string{"rsyncmask"}, Targets: []string{"t1"}, Logins: []string{"root"}, Transfers: TransferKinds, FilePANs: FilePANsMask},
			{Name: "forwarder", Principals: []string{"fwd"}, Targets: []string{"t1"}, Logins: []string{"root"}, PortForwarding: true},
		},
	}
	h.logs = &testenv.Buffer{}
	// Shared by every test, like the harness: open until the process ends.
	if h.store, err = recorder.OpenStore(filepath.Join(h.dir, "data"), recorder.Options{Key: h.auth.AuditKey}); err != nil {
		return err
	}
	h.srv, err = New(Config{
		Policy:            h.policy,
		Authority:         h.auth,
		Recording:         &Recording{Store: h.store},
		KeepAliveInterval: 5 * time.Second,
		Log:               slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h.port = l.Addr().(*net.TCPAddr).Port
	go h.srv.Serve(context.Background(), l)
	h.knownHosts = filepath.Join(h.dir, "bastion_known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", h.port, ssh.MarshalAuthorizedKey(h.auth.HostKey.PublicKey()))
	if err := os.WriteFile(h.knownHosts, []byte(line), 0o644); err != nil {
		return err
	}
	h.alice = h.userKey(t, "alice", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, KeyID: "alice@test"})
	h.fileMask = h.userKey(t, "filemask", certs.UserCertRequest{Principals: []string{"filemask"}, TTL: time.Hour})
	h.fileAllow = h.userKey(t, "fileallow", certs.UserCertRequest{Principals: []string{"fileallow"}, TTL: time.Hour})
	h.rsyncer = h.userKey(t, "rsyncer", certs.UserCertRequest{Principals: []string{"rsyncer"}, TTL: time.Hour})
	h.rsyncMask = h.userKey(t, "rsyncmask", certs.UserCertRequest{Principals: []string{"rsyncmask"}, TTL: time.Hour})
	return nil
}

// hookUser is a login whose shell is bash, so that its ~/.bashrc runs
// before every program sshd starts for it, sftp-server included.
const hookUser = "posternhook"

// userKey makes a key pair named name in the harness dir with a
// certificate from the bastion's user CA per req, and returns its path.
func (h *harness) userKey(t testing.TB, name string, req certs.UserCertRequest) string {
	t.Helper()
	signer, path := testenv.NewKey(t, h.dir, name)
	cert, err := h.auth.SignUser(signer.PublicKey(), req)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteCert(t, path+"-cert.pub", cert)
	return path
}

// opts are the OpenSSH client options for key.
// LogLevel comes first because ssh keeps the first value of an option, and
// at the default INFO level ssh shows the bastion's refusal banners.
func (h *harness) opts(key string) []string {
	return append([]string{"-o", "LogLevel=INFO"}, testenv.ClientOpts{Identity: key, KnownHosts: h.knownHosts}.Options()...)
}

// ssh runs the OpenSSH client through the bastion as user with key.
func (h *harness) ssh(t testing.TB, key, user string, stdin io.Reader, args ...string) testenv.Result {
	t.Helper()
	return h.sshWith(t, nil, key, user, stdin, args...)
}

// sshWith is ssh with extra client options, which take precedence.
func (h *harness) sshWith(t testing.TB, extra []string, key, user string, stdin io.Reader, args ...string) testenv.Result {
	t.Helper()
	a := append(append(extra, h.opts(key)...), "-p", strconv.Itoa(h.port), user+"@127.0.0.1")
	return testenv.Cmd(t, 2*time.Minute, stdin, h.sshBin, append(a, args...)...)
}

func TestExecOutputAndExitStatus(t *testing.T) {
	t.Parallel()
	h := env(t)
	r := h.ssh(t, h.alice, "root@t1", nil, "echo hi; echo err >&2; exit 3")
	if string(r.Stdout) != "hi\n" || r.ExitCode != 3 {
		t.Fatalf("stdout %q exit %d, want \"hi\\n\" and 3; stderr %s", r.Stdout, r.ExitCode, r.Stderr)
	}
	if !strings.Contains(string(r.Stderr), "err") {
		t.Fatalf("stderr %q lacks the target's stderr", r.Stderr)
	}
	// ssh offers the plain key as well as its certificate; a connection
	// that succeeds shows no refusal noise for the plain one.
	if strings.Contains(string(r.Stderr), "postern:") {
		t.Fatalf("successful connection printed a refusal: %q", r.Stderr)
	}
	// Plain TARGET uses the target's default login, root.
	r = h.ssh(t, h.alice, "t1", nil, "id -un")
	if string(r.Stdout) != "root\n" || r.ExitCode != 0 {
		t.Fatalf("default login: stdout %q exit %d stderr %s", r.Stdout, r.ExitCode, r.Stderr)
	}
	// known_hosts-verified target.
	r = h.ssh(t, h.alice, "root@viakh", nil, "echo kh")
	if string(r.Stdout) != "kh\n" || r.ExitCode != 0 {
		t.Fatalf("known_hosts target: stdout %q exit %d stderr %s", r.Stdout, r.ExitCode, r.Stderr)
	}
}

func TestStdinEOFAndLargeOutputBeforeExit(t *testing.T) {
	t.Parallel()
	h := env(t)
	// wc only prints after stdin's EOF reaches the target.
	r := h.ssh(t, h.alice, "root@t1", strings.NewReader("a\nb\nc\n"), "wc -l; exit 4")
	if strings.TrimSpace(string(r.Stdout)) != "3" || r.ExitCode != 4 {
		t.Fatalf("stdout %q exit %d stderr %s", r.Stdout, r.ExitCode, r.Stderr)
	}
	// Output written just before exit is all delivered.
	r = h.ssh(t, h.alice, "root@t1", nil, "head -c 3000000 /dev/zero; exit 9")
	if len(r.Stdout) != 3000000 || r.ExitCode != 9 {
		t.Fatalf("got %d bytes, exit %d; want 3000000 and 9", len(r.Stdout), r.ExitCode)
	}
}

func TestBulk64MiBThroughCat(t *testing.T) {
	t.Parallel()
	h := env(t)
	src := filepath.Join(t.TempDir(), "blob")
	data := make([]byte, 64<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Up and down at once: stdin goes to the target's cat and comes back.
	r := h.ssh(t, h.alice, "root@t1", f, "cat")
	if r.ExitCode != 0 || sha256.Sum256(r.Stdout) != want {
		t.Fatalf("cat round trip: exit %d, %d bytes back, sha256 match %v; stderr %s",
			r.ExitCode, len(r.Stdout), sha256.Sum256(r.Stdout) == want, r.Stderr)
	}
	// Upload only: the target hashes what it received.
	f.Seek(0, io.SeekStart)
	r = h.ssh(t, h.alice, "root@t1", f, "sha256sum")
	if got := strings.Fields(string(r.Stdout)); len(got) == 0 || got[0] != fmt.Sprintf("%x", want) {
		t.Fatalf("upload: target hashed %q, want %x; stderr %s", r.Stdout, want, r.Stderr)
	}
	// Download only.
	r = h.ssh(t, h.alice, "root@t1", nil, "cat "+src)
	if sha256.Sum256(r.Stdout) != want {
		t.Fatalf("download: %d bytes, sha256 mismatch; stderr %s", len(r.Stdout), r.Stderr)
	}
}

func TestEnvAllowlist(t *testing.T) {
	t.Parallel()
	h := env(t)
	args := append(h.opts(h.alice), "-p", strconv.Itoa(h.port),
		"-o", "SetEnv=LANG=C.UTF-8 LC_TIME=C POSTERN_FORBIDDEN_VAR=leak",
		"root@t1@127.0.0.1", `echo "LANG=$LANG LC_TIME=$LC_TIME FORBIDDEN=$POSTERN_FORBIDDEN_VAR"`)
	r := testenv.Cmd(t, time.Minute, nil, h.sshBin, args...)
	if got := strings.TrimSpace(string(r.Stdout)); got != "LANG=C.UTF-8 LC_TIME=C FORBIDDEN=" {
		t.Fatalf("target saw %q (stderr %s); want LANG and LC_TIME passed and POSTERN_FORBIDDEN_VAR dropped", got, r.Stderr)
	}
}

func TestSeveralChannelsOneConnection(t *testing.T) {
	t.Parallel()
	h := env(t)
	client := h.dialGo(t, h.alice, "root@t1")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			s, err := client.NewSession()
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			out, err := s.Output(fmt.Sprintf("echo channel-%d; exit %d", i, i))
			if want := fmt.Sprintf("channel-%d\n", i); string(out) != want {
				errs <- fmt.Errorf("channel %d: output %q, want %q (err %v)", i, out, want, err)
				return
			}
			var ee *ssh.ExitError
			if i > 0 && (!asExit(err, &ee) || ee.ExitStatus() != i) {
				errs <- fmt.Errorf("channel %d: err %v, want exit status %d", i, err, i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func asExit(err error, target **ssh.ExitError) bool {
	ee, ok := err.(*ssh.ExitError)
	*target = ee
	return ok
}

func TestSignalAndExitSignal(t *testing.T) {
	t.Parallel()
	h := env(t)
	client := h.dialGo(t, h.alice, testUser+"@t1")
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, _ := s.StdoutPipe()
	if err := s.Start("echo started; exec sleep 60"); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 8)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "started\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	if err := s.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		ee, ok := err.(*ssh.ExitError)
		if !ok || ee.Signal() != "TERM" {
			t.Fatalf("Wait = %v, want exit-signal TERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("signal did not end the command")
	}
}

// dialGo connects an x/crypto client through the bastion.
func (h *harness) dialGo(t *testing.T, key, user string) *ssh.Client {
	t.Helper()
	data, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	certData, err := os.ReadFile(key + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certData)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(pub.(*ssh.Certificate), signer)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port)), &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(cs)},
		HostKeyCallback: ssh.FixedHostKey(h.auth.HostKey.PublicKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func TestRefused(t *testing.T) {
	t.Parallel()
	h := env(t)
	plain, plainPath := testenv.NewKey(t, h.dir, "plain")
	_ = plain
	other, err := certs.Open(filepath.Join(h.dir, "other-ca"))
	if err != nil {
		t.Fatal(err)
	}
	otherCA := func(name string) string {
		signer, path := testenv.NewKey(t, h.dir, name)
		cert, err := other.SignUser(signer.PublicKey(), certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		testenv.WriteCert(t, path+"-cert.pub", cert)
		return path
	}
	past := time.Now().Add(-48 * time.Hour)
	future := time.Now().Add(48 * time.Hour)
	tests := []struct {
		name, key, user string
		want            string // in the client's stderr
		reason          string // in the bastion's audit record
		extra           []string
	}{
		// The reason for a plain key is shown once every key failed,
		// through keyboard-interactive, which BatchMode skips.
		{"plain public key", plainPath, "root@t1", "a certificate is required", "plain public key", []string{"-o", "BatchMode=no"}},
		{"plain public key, batch mode", plainPath, "root@t1", "Permission denied", "plain public key", nil},
		{"cert from another CA", otherCA("otherca"), "root@t1", "not signed by this bastion", "unknown CA", nil},
		{"expired cert", h.userKey(t, "expired", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, Now: past}), "root@t1", "certificate expired", "expired", nil},
		{"not yet valid cert", h.userKey(t, "future", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, Now: future}), "root@t1", "not yet valid", "not valid until", nil},
		{"wrong principal", h.userKey(t, "bob", certs.UserCertRequest{Principals: []string{"bob"}, TTL: time.Hour}), "root@t1", `bob may not connect to "t1"`, "no rule grants", nil},
		{"login not allowed", h.alice, "nobody@t1", `may not log in as "nobody"`, "login \\\"nobody\\\" not allowed", nil},
		{"unknown target", h.alice, "root@nosuch", `unknown target "nosuch"`, "unknown target", nil},
		{"source-address mismatch", h.userKey(t, "srcaddr", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, SourceAddress: "192.0.2.0/24"}), "root@t1", "may not be used from this address", "not in source-address", nil},
		{"target host key mismatch", h.alice, "root@badkey", "presented a host key the bastion does not trust", "not trusted", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := h.sshWith(t, tt.extra, tt.key, tt.user, nil, "echo SHOULD-NOT-RUN")
			if r.ExitCode != 255 || bytes.Contains(r.Stdout, []byte("SHOULD-NOT-RUN")) {
				t.Fatalf("exit %d stdout %q: want refusal (255)", r.ExitCode, r.Stdout)
			}
			if !strings.Contains(string(r.Stderr), tt.want) {
				t.Fatalf("client stderr %q does not say %q", r.Stderr, tt.want)
			}
			// The audit record is written when the bastion sees the
			// client go, which may be just after the client exits.
			testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(h.logs.String(), tt.reason) })
		})
	}
}

// OpenSSH's client will not offer a host certificate for user
// authentication, so this one uses x/crypto, which offers whatever it is
// given.
func TestHostCertAsUserCertRefused(t *testing.T) {
	t.Parallel()
	h := env(t)
	key := testenv.NewSigner(t)
	cert := &ssh.Certificate{
		Key: key.PublicKey(), CertType: ssh.HostCert, ValidPrincipals: []string{"alice"},
		ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
	}
	if err := cert.SignCert(rand.Reader, h.auth.UserCA); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	var banner string
	_, err = ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port)), &ssh.ClientConfig{
		User:            "root@t1",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(h.auth.HostKey.PublicKey()),
		BannerCallback:  func(m string) error { banner += m; return nil },
		Timeout:         10 * time.Second,
	})
	if err == nil {
		t.Fatal("a host certificate was accepted as a user certificate")
	}
	if !strings.Contains(banner, "not a user certificate") {
		t.Fatalf("banner %q does not explain the refusal", banner)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(h.logs.String(), "(not user)") })
}

func TestProxyJumpRefused(t *testing.T) {
	t.Parallel()
	h := env(t)
	fwd := h.userKey(t, "fwd", certs.UserCertRequest{Principals: []string{"fwd"}, TTL: time.Hour})
	// What `ssh -J root@t1@bastion target` runs: a stdio forward
	// (direct-tcpip) through the bastion to the target's SSH port.
	jump := fmt.Sprintf("%s %s -p %d -W %%h:%%p root@t1@127.0.0.1", h.sshBin, strings.Join(h.opts(fwd), " "), h.port)
	args := append(h.opts(h.alice), "-o", "ProxyCommand="+jump, "-p", strconv.Itoa(h.sshd.Port), "root@127.0.0.1", "echo SHOULD-NOT-RUN")
	r := testenv.Cmd(t, time.Minute, nil, h.sshBin, args...)
	if r.ExitCode != 255 || bytes.Contains(r.Stdout, []byte("SHOULD-NOT-RUN")) {
		t.Fatalf("exit %d stdout %q: want refusal", r.ExitCode, r.Stdout)
	}
	if !strings.Contains(string(r.Stderr), "ProxyJump (ssh -J) is not supported") ||
		!strings.Contains(string(r.Stderr), "LOGIN@TARGET@BASTION") {
		t.Fatalf("stderr %q does not explain LOGIN@TARGET@bastion", r.Stderr)
	}
	// Even a user allowed to forward ports cannot reach an SSH port.
	r = testenv.Cmd(t, time.Minute, nil, h.sshBin, append(h.opts(fwd), "-p", strconv.Itoa(h.port), "-W", h.sshd.Addr, "root@t1@127.0.0.1")...)
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "ProxyJump") {
		t.Fatalf("-W to the sshd port: exit %d stderr %q", r.ExitCode, r.Stderr)
	}
}

func TestSessionIDOnEveryLineAndUpstreamKeyID(t *testing.T) {
	t.Parallel()
	h := env(t)
	marker := uniqueMarker("marker-")
	r := h.ssh(t, h.alice, "root@t1", nil, "echo "+marker)
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	// The session ID (from this command's index entry) is in the key ID
	// of the certificate the bastion minted, which sshd logs.
	sid := h.findRecording(t, h.store, func(s recorder.Session) bool { return s.Command == "echo "+marker }).Session
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(h.sshd.Logs(), "postern session="+sid+" user=alice")
	})
	logs := h.logs.String()
	if !strings.Contains(logs, `"session":"`+sid+`"`) {
		t.Fatalf("session %s from the target's log is not in the bastion's log", sid)
	}
}

// extraServer starts another bastion with cfg (its Authority and Log are
// filled in), for tests that need other settings than the shared one. It
// returns a harness whose port, knownHosts and logs are the new server's.
func (h *harness) extraServer(t testing.TB, cfg Config) *harness {
	t.Helper()
	b := *h
	b.logs = &testenv.Buffer{}
	cfg.Authority = h.auth
	cfg.Log = slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background(), l)
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("extra bastion log:\n%s", b.logs.String())
		}
	})
	b.srv = srv
	b.port = l.Addr().(*net.TCPAddr).Port
	b.knownHosts = filepath.Join(t.TempDir(), "bastion_known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", b.port, ssh.MarshalAuthorizedKey(h.auth.HostKey.PublicKey()))
	if err := os.WriteFile(b.knownHosts, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return &b
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, IdleTimeout: 500 * time.Millisecond})
	args := append(b.opts(h.alice), "-p", strconv.Itoa(b.port), "root@t1@127.0.0.1", "sleep 60")
	r := testenv.Cmd(t, 30*time.Second, nil, h.sshBin, args...)
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "idle for 500ms") {
		t.Fatalf("exit %d stderr %q: want the idle timeout message", r.ExitCode, r.Stderr)
	}
}

// freezer is a loopback TCP proxy that can stop passing the client's bytes
// to the server, as a client that vanished without a FIN would.
type freezer struct {
	l      net.Listener
	frozen chan struct{}
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{l: l, frozen: make(chan struct{})}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer s.Close()
		go io.Copy(c, s)
		buf := make([]byte, 32*1024)
		for {
			n, err := c.Read(buf)
			select {
			case <-f.frozen:
				// Swallow everything from now on.
				if err != nil {
					return
				}
				continue
			default:
			}
			if n > 0 {
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return f
}

func TestKeepAliveEndsDeadConnection(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, KeepAliveInterval: 300 * time.Millisecond, KeepAliveMax: 3})
	logs := b.logs
	f := newFreezer(t, "127.0.0.1:"+strconv.Itoa(b.port))

	_, port, _ := net.SplitHostPort(f.l.Addr().String())
	p, _ := strconv.Atoi(port)
	client := (&harness{port: p, auth: h.auth}).dialGo(t, h.alice, "root@t1")
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("sleep 60"); err != nil {
		t.Fatal(err)
	}
	// Alive while answering: several keepalive rounds pass.
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Count(logs.String(), "keepalive answered") >= 3 })
	if strings.Contains(logs.String(), "keepalive timeout") {
		t.Fatalf("a live client was dropped:\n%s", logs.String())
	}
	close(f.frozen)
	testenv.WaitFor(t, 15*time.Second, func() bool {
		return strings.Contains(logs.String(), "keepalive timeout") &&
			strings.Contains(logs.String(), `"event":"disconnect"`)
	})
}

// A target verified by a host CA (known_hosts @cert-authority style): an
// sshd whose ECDSA host key carries a certificate from the CA is accepted;
// the same sshd checked against another CA is refused.
func TestHostCATarget(t *testing.T) {
	t.Parallel()
	h := env(t)
	keygen := testenv.Require(t, "ssh-keygen")
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "host_ecdsa")
	if r := testenv.Cmd(t, time.Minute, nil, keygen, "-q", "-t", "ecdsa", "-N", "", "-f", hostKey); r.ExitCode != 0 {
		t.Fatalf("ssh-keygen: %s", r.Stderr)
	}
	pubData, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubData)
	if err != nil {
		t.Fatal(err)
	}
	hostCA, wrongCA := testenv.NewSigner(t), testenv.NewSigner(t)
	cert := &ssh.Certificate{
		Key: pub, CertType: ssh.HostCert, ValidPrincipals: []string{"127.0.0.1"},
		ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
	}
	if err := cert.SignCert(rand.Reader, hostCA); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hostKey+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{
		TrustedUserCAKeys: []ssh.PublicKey{h.auth.UpstreamCA.PublicKey()},
		Extra:             []string{"HostKey " + hostKey, "HostCertificate " + hostKey + "-cert.pub"},
	})
	b := h.extraServer(t, Config{Policy: Policy{
		Targets: []Target{
			{Name: "viaca", Address: sshd.Addr, HostCA: hostCA.PublicKey()},
			{Name: "wrongca", Address: sshd.Addr, HostCA: wrongCA.PublicKey()},
		},
		Rules: []Rule{{Name: "a", Principals: []string{"alice"}, Targets: []string{"*"}, Logins: []string{"root"}}},
	}})
	r := b.ssh(t, h.alice, "root@viaca", nil, "echo via-ca")
	if r.ExitCode != 0 || string(r.Stdout) != "via-ca\n" {
		t.Fatalf("host CA target: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	r = b.ssh(t, h.alice, "root@wrongca", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "host key the bastion does not trust") {
		t.Fatalf("wrong host CA: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// uniqueMarker returns prefix and a unique suffix that is not a long digit
// run: a 19-digit nanosecond count is Luhn-valid one time in ten, and the
// masker would rightly mask it.
func uniqueMarker(prefix string) string {
	return prefix + strconv.FormatInt(time.Now().UnixNano(), 36)
}
