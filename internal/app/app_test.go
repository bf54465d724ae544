package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/demotarget"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

func TestLock(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	l, err := app.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The lock belongs to the open file: a second Lock in this process
	// fails like one in another process would.
	_, err = app.Lock(dir)
	var inUse *app.InUseError
	if !errors.As(err, &inUse) || inUse.Dir != dir || inUse.PID <= 0 {
		t.Fatalf("second Lock: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "stop that one first") {
		t.Fatalf("message %q", msg)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = app.Lock(dir)
	if err != nil {
		t.Fatalf("Lock after Close: %v", err)
	}
	l.Close()
}

// rig is an App with a demo target as its extra server, and a client
// certificate for principal alice, who may reach it as demo@t.
type rig struct {
	a      *app.App
	dir    string
	target string      // the demo target's address
	closed atomic.Bool // the demo target was closed
	alice  ssh.Signer
	logs   *testenv.Buffer
}

func newRig(t *testing.T, drain time.Duration) *rig {
	t.Helper()
	r := &rig{dir: filepath.Join(t.TempDir(), "data"), logs: &testenv.Buffer{}}
	a, err := app.New(app.Config{
		Settings: &config.Config{Listen: "127.0.0.1:0", DataDir: r.dir, Metrics: &config.Metrics{Listen: "127.0.0.1:0"}},
		Log:      app.NewLogger(r.logs, -4),
		Drain:    drain,
		Extra:    r.extra(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	key := testenv.NewSigner(t)
	cert, err := a.Auth.SignUser(key.PublicKey(), certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r.alice, err = ssh.NewCertSigner(cert, key); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", r.logs.String())
		}
	})
	return r
}

// extra starts a demo target and adds it to the policy.
func (r *rig) extra(t *testing.T) func(*certs.Authority, *config.Config) ([]app.Server, error) {
	return func(auth *certs.Authority, s *config.Config) ([]app.Server, error) {
		host := testenv.NewSigner(t)
		target, err := demotarget.New(demotarget.Config{HostKey: host, TrustedCA: auth.UpstreamCA.PublicKey(), Logins: []string{"demo"}, Shell: "/bin/sh"})
		if err != nil {
			return nil, err
		}
		r.target = target.Addr()
		s.Policy = bastion.Policy{
			Targets: []bastion.Target{{Name: "t", Address: target.Addr(), HostKey: host.PublicKey(), Logins: []string{"demo"}}},
			Rules:   []bastion.Rule{{Name: "r", Principals: []string{"alice"}, Targets: []string{"t"}, Logins: []string{"demo"}}},
		}
		closeTarget := func() error { r.closed.Store(true); return target.Close() }
		return []app.Server{app.WithoutDrain(target.Serve, closeTarget)}, nil
	}
}

func (r *rig) dial() (*ssh.Client, error) {
	return ssh.Dial("tcp", r.a.Addr().String(), &ssh.ClientConfig{
		User:            "demo@t",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(r.alice)},
		HostKeyCallback: ssh.FixedHostKey(r.a.Auth.HostKey.PublicKey()),
		Timeout:         10 * time.Second,
	})
}

// live opens a connection and a session through the bastion that prints
// "live" and waits for a line; it returns once "live" arrived. wait waits
// for the session's end and then closes the connection, as ssh does (the
// bastion drains connections).
func (r *rig) live(t *testing.T) (stdin io.WriteCloser, out *testenv.Buffer, wait func() error) {
	t.Helper()
	c, err := r.dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out = &testenv.Buffer{}
	s.Stdout = out
	if stdin, err = s.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start("echo live; read x; echo got-$x"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(out.String(), "live") })
	return stdin, out, func() error {
		defer c.Close()
		return s.Wait()
	}
}

// bastionAccepts reports whether r's bastion accepts a connection: one
// that completes key exchange with its host key. Not whether its port
// refuses TCP: once the listener is closed, a parallel test may listen on
// the freed port.
func (r *rig) bastionAccepts() bool {
	nc, err := net.DialTimeout("tcp", r.a.Addr().String(), 10*time.Second)
	if err != nil {
		return false
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, _, _, err = ssh.NewClientConn(nc, r.a.Addr().String(), &ssh.ClientConfig{User: "probe",
		HostKeyCallback: ssh.FixedHostKey(r.a.Auth.HostKey.PublicKey())})
	// No key offered: this bastion refuses the login after key exchange.
	return err != nil && strings.Contains(err.Error(), "unable to authenticate")
}

// TestRunDrains: once Run's context ends, the bastion stops accepting,
// a live session may still finish (the demo target, shut down after the
// bastion, still serves it), Run returns when it has, the session is
// sealed as ended rather than interrupted, and the lock is released.
// Meanwhile /readyz answers "draining sessions".
func TestRunDrains(t *testing.T) {
	t.Parallel()
	r := newRig(t, time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.a.Run(ctx) }()
	stdin, out, wait := r.live(t)

	if !r.bastionAccepts() {
		t.Fatal("the probe does not see the running bastion accept")
	}
	cancel()
	testenv.WaitFor(t, 30*time.Second, func() bool { return !r.bastionAccepts() })
	select {
	case err := <-ran:
		t.Fatalf("Run returned while a session was open: %v", err)
	default:
	}
	// While the session drains, a load balancer is told why.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(r.a.MetricsURL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "draining sessions") {
		t.Fatalf("/readyz during the drain: %d %q, want 503 draining sessions", resp.StatusCode, body)
	}
	io.WriteString(stdin, "bye\n")
	if err := wait(); err != nil || !strings.Contains(out.String(), "got-bye") {
		t.Fatalf("session during the drain: %v, output %q", err, out.String())
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the last session ended")
	}
	// Not a dial to its address: once closed, the port is free for the
	// listeners of tests running in parallel.
	if !r.closed.Load() {
		t.Fatal("the demo target was not closed after Run")
	}
	l, err := app.Lock(r.dir)
	if err != nil {
		t.Fatalf("lock after Run: %v", err)
	}
	l.Close()
	store, err := recorder.OpenStore(r.dir, recorder.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	list, err := store.List(context.Background(), recorder.Filter{})
	if err != nil || len(list) != 1 || list[0].Status == recorder.StatusInterrupted || list[0].Status == recorder.StatusActive {
		t.Fatalf("index after the drain: %+v %v", list, err)
	}
}

// TestRunDrainDeadline: a session still open at the drain deadline is
// closed, and Run returns soon after.
func TestRunDrainDeadline(t *testing.T) {
	t.Parallel()
	r := newRig(t, 500*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- r.a.Run(ctx) }()
	_, _, wait := r.live(t)
	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the drain deadline")
	}
	if err := wait(); err == nil {
		t.Fatal("the session outlived the drain deadline")
	}
	if !strings.Contains(r.logs.String(), "drain deadline passed") {
		t.Fatalf("no drain deadline in the log:\n%s", r.logs.String())
	}
}

// TestNewUndoes: when New fails after the extra servers started (the
// listen address is taken), it closes them and releases the lock.
func TestNewUndoes(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	r := &rig{dir: filepath.Join(t.TempDir(), "data")}
	_, err = app.New(app.Config{Settings: &config.Config{Listen: taken.Addr().String(), DataDir: r.dir}, Extra: r.extra(t)})
	if err == nil || !strings.Contains(err.Error(), "listen on "+taken.Addr().String()) {
		t.Fatalf("New on a taken address: %v", err)
	}
	// Not a dial to its address: once closed, the port is free for the
	// listeners of tests running in parallel.
	if !r.closed.Load() {
		t.Fatal("the demo target was not closed after New failed")
	}
	l, err := app.Lock(r.dir)
	if err != nil {
		t.Fatalf("lock after New failed: %v", err)
	}
	l.Close()
}

// TestUntilCancel: Shutdown cancels the serve function's context and
// waits for it; after Shutdown, Serve does not start it at all.
func TestUntilCancel(t *testing.T) {
	t.Parallel()
	type key struct{}
	started := make(chan context.Context, 1)
	s := app.UntilCancel(func(ctx context.Context) error {
		started <- ctx
		<-ctx.Done()
		return nil
	})
	served := make(chan error, 1)
	go func() { served <- s.Serve(context.WithValue(context.Background(), key{}, "v")) }()
	ctx := <-started
	if ctx.Value(key{}) != "v" {
		t.Fatal("serve's context lost Serve's values")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil || ctx.Err() == nil {
		t.Fatalf("Serve after Shutdown: %v, context %v", err, ctx.Err())
	}

	never := app.UntilCancel(func(context.Context) error { t.Error("serve ran after Shutdown"); return nil })
	if err := never.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := never.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestNewRefusesLooseDataDir: a data directory that group or others may
// write is refused, with the directory and the fix named, and nothing is
// created in it.
func TestNewRefusesLooseDataDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	_, err := app.New(app.Config{Settings: &config.Config{Listen: "127.0.0.1:0", DataDir: dir}})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("New on a group-writable data directory: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("New changed a data directory it refused: %v", entries)
	}
}

// TestLockHolder: the process holding a data directory's lock is found
// from the lock file, and only while it holds it.
func TestLockHolder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	if _, ok := app.LockHolder(dir); ok {
		t.Fatal("a holder before any lock")
	}
	l, err := app.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pid, ok := app.LockHolder(dir); !ok || pid != os.Getpid() {
		t.Fatalf("holder while locked: %d %v, want %d", pid, ok, os.Getpid())
	}
	l.Close()
	if pid, ok := app.LockHolder(dir); ok {
		t.Fatalf("holder %d after the lock was released", pid)
	}
}

// TestLoggerEscapesTerminalControls: DEL, C1 and bidi controls in a log
// value are written as \u escapes, and the line still decodes to the same
// text.
func TestLoggerEscapesTerminalControls(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	value := "x\u009b31mEVIL\u202egnp.exe\x7f é"
	app.NewLogger(&b, 0).Info("audit", "key_id", value)
	if strings.ContainsAny(b.String(), "\u009b\u202e\x7f") || !strings.Contains(b.String(), "é") {
		t.Fatalf("log line %q", b.String())
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(b.String()), &line); err != nil || line["key_id"] != value {
		t.Fatalf("log line %q decodes to %v (%v)", b.String(), line["key_id"], err)
	}
}
