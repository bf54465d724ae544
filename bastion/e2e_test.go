package bastion

// End-to-end tests: the OpenSSH client talks to a Postern bastion running
// in this test binary, which talks to a real OpenSSH sshd started on
// loopback. One sshd and one bastion serve every test in the package.

import (
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
	// Every line the shared bastion logged during the run, each audit
	// record kind the suite produced included, has unique keys.
	if shared.logs != nil {
		if err := checkLogKeys(shared.logs.String()); err != nil {
			fmt.Fprintf(os.Stderr, "bastion log lines with a duplicate key:\n%v\n", err)
			code = max(code, 1)
		}
	}
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
	// echoPort and bannerPort are tcp forwards t1 declares: an echo
	// service, and a relay to an SSH server that prints a line first
	// (RFC 4253 §4.2 allows it).
	echoPort, bannerPort int
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
	if h.echoPort, err = serveTCP(func(c net.Conn) { io.Copy(c, c) }); err != nil {
		return err
	}
	if h.bannerPort, err = serveTCP(func(c net.Conn) {
		c.Write([]byte("Welcome to a relay\r\nSSH-2.0-OpenSSH_9.2p1 hidden\r\n"))
		io.Copy(io.Discard, c)
	}); err != nil {
		return err
	}
	h.policy = Policy{
		Targets: []Target{
			{Name: "t1", Address: h.sshd.Addr, HostKey: h.sshd.HostKey, Logins: []string{"root", testUser, hookUser, "nobody"}, DefaultLogin: "root",
				Forwards: []Forward{{Port: h.echoPort, Protocol: ForwardTCP}, {Port: h.bannerPort, Protocol: ForwardTCP}}},
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
			{Name: "forwarder", Principals: []string{"fwd"}, Targets: []string{"t1"}, Logins: []string{"root"}, Forwards: []int{AnyDeclaredPort}},
			{Name: "agentfwd", Principals: []string{"agentfwd"}, Targets: []string{"t1"}, Logins: []string{"root", testUser}, AgentForwarding: true},
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
		// The suite refuses many logins from 127.0.0.1 on purpose; the
		// failed-login limit has tests of its own (limits_test.go).
		Limits: Limits{AuthFailures: 1 << 20},
		Log:    slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
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

// serveTCP runs handle for each connection to a listener on loopback, for
// the rest of the test binary's life, and returns its port.
func serveTCP(handle func(net.Conn)) (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, nil
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

func asExit(err error, target **ssh.ExitError) bool {
	ee, ok := err.(*ssh.ExitError)
	*target = ee
	return ok
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
	return h.serveWith(t, context.Background(), cfg, nil)
}

// uniqueMarker returns prefix and a unique suffix that is not a long digit
// run: a 19-digit nanosecond count is Luhn-valid one time in ten, and the
// masker would rightly mask it.
func uniqueMarker(prefix string) string {
	return prefix + strconv.FormatInt(time.Now().UnixNano(), 36)
}
