package adminsock_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/recorder"
)

// server is a store served on its data directory's admin socket for the
// test's life.
type server struct {
	dir   string
	store *recorder.Local
	key   ed25519.PrivateKey
}

func serve(t *testing.T) *server {
	t.Helper()
	return serveRetention(t, 0)
}

// serveRetention is serve with the server's retention (0: the default).
func serveRetention(t *testing.T, retention time.Duration) *server {
	t.Helper()
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st, err := recorder.OpenStore(dir, recorder.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := adminsock.New(adminsock.Config{Store: st, Retention: retention})
	if err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		st.Close()
	})
	return &server{dir: dir, store: st, key: key}
}

func dial(t *testing.T, dir string) *adminsock.Client {
	t.Helper()
	c, err := adminsock.Dial(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// session records one session in st as the bastion does: Begin, then the
// file, then Finish.
func session(ctx context.Context, st recorder.Store, id string) error {
	start := time.Now()
	rec := recorder.Session{ID: id, Session: id, Identity: "alice", Target: "db01", Login: "root", Kind: "exec", Start: start, Path: recorder.RecordingName(id, start)}
	if err := st.Begin(ctx, rec); err != nil {
		return err
	}
	w, err := recorder.NewRecording(ctx, st, rec.Path, recorder.Header{})
	if err != nil {
		return err
	}
	w.Output([]byte("output of " + id + "\r\n"))
	digest, size, err := w.Close()
	if err != nil {
		return err
	}
	end := time.Now()
	rec.End, rec.SHA256, rec.Size = &end, fmt.Sprintf("%x", digest), size
	_, err = st.Finish(ctx, rec)
	return err
}

// TestSocketModeAndStaleFile: the socket is the owner's only; a second
// Listen on a live socket is refused and leaves it working; a socket file
// left by a server that died neither stops the next Listen nor makes Dial
// hang: Dial says no server runs.
func TestSocketModeAndStaleFile(t *testing.T) {
	t.Parallel()
	s := serve(t)
	p := adminsock.Path(s.dir)
	fi, err := os.Stat(p)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket %s: %v, %v; want a socket with mode 0600", p, fi.Mode(), err)
	}
	if _, err := adminsock.Listen(s.dir); !errors.Is(err, adminsock.ErrInUse) {
		t.Fatalf("second Listen on a live socket: %v, want ErrInUse", err)
	}
	if _, err := dial(t, s.dir).Head(t.Context()); err != nil {
		t.Fatalf("the live server stopped answering after a refused Listen: %v", err)
	}

	// A stale socket: bound, then the listener dropped without removing
	// the file, as when a process is killed.
	dir := t.TempDir()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: adminsock.Path(dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(adminsock.Path(dir)); err != nil {
		t.Fatalf("stale socket file: %v", err)
	}
	if _, err := adminsock.Dial(t.Context(), dir); !errors.Is(err, adminsock.ErrNoServer) {
		t.Fatalf("Dial on a stale socket: %v, want ErrNoServer", err)
	}
	if _, err := adminsock.Dial(t.Context(), t.TempDir()); !errors.Is(err, adminsock.ErrNoServer) {
		t.Fatalf("Dial without a socket: %v, want ErrNoServer", err)
	}
	l2, err := adminsock.Listen(dir)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l2.Close()
	if _, err := os.Stat(adminsock.Path(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file left after Close: %v", err)
	}
}

// TestClientMatchesStore: through the socket, every read gives what the
// store gives, and errors keep their identity (ErrNotFound, fs.ErrNotExist,
// *recorder.PathError) and their text.
func TestClientMatchesStore(t *testing.T) {
	t.Parallel()
	// A retention of a nanosecond: the sessions below, just ended, may
	// be pruned through the socket.
	s := serveRetention(t, time.Nanosecond)
	ctx := t.Context()
	for _, id := range []string{"01A-1", "01B-1"} {
		if err := session(ctx, s.store, id); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, s.dir)
	want, _ := s.store.List(ctx, recorder.Filter{})
	got, err := c.List(ctx, recorder.Filter{})
	if err != nil || len(got) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List through the socket: %v %v, want %v", got, err, want)
	}
	rec, err := c.Get(ctx, "01B-1")
	if err != nil || rec.SHA256 != want[1].SHA256 {
		t.Fatalf("Get: %+v %v", rec, err)
	}
	if _, err := c.Get(ctx, "nope"); !errors.Is(err, recorder.ErrNotFound) {
		t.Fatalf("Get of an unknown ID: %v", err)
	}
	r, err := c.Open(ctx, rec.Path)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(r)
	r.Close()
	if sum, _, _ := recorder.Digest(ctx, s.store, rec.Path); fmt.Sprintf("%x", sha256Of(data)) != sum {
		t.Fatal("a recording read through the socket differs from the file")
	}
	missing := "recordings/2026/01/01/gone.cast"
	_, lerr := s.store.Open(ctx, missing)
	_, cerr := c.Open(ctx, missing)
	if !errors.Is(cerr, fs.ErrNotExist) || cerr.Error() != lerr.Error() {
		t.Fatalf("missing recording: %v, the store says %v", cerr, lerr)
	}
	var pe *recorder.PathError
	if err := c.Check(ctx, "../etc/passwd"); !errors.As(err, &pe) || pe.Reason != "leaves the directory with .." {
		t.Fatalf("Check of a path outside: %v", err)
	}
	if err := c.Begin(ctx, recorder.Session{ID: "x"}); !errors.Is(err, adminsock.ErrNotServed) {
		t.Fatalf("Begin through the socket: %v", err)
	}
	// Writes the socket offers: a serial, and retention.
	issued, err := c.IssueCert(ctx, recorder.IssuedCert{KeyID: "bob", Principals: []string{"bob"}})
	if list, _ := s.store.Issued(ctx); err != nil || issued.Serial == 0 || len(list) != 1 || list[0].Serial != issued.Serial {
		t.Fatalf("IssueCert through the socket: %+v %v; the store has %+v", issued, err, list)
	}
	pruned, head, err := recorder.Prune(ctx, c, time.Now().Add(time.Hour))
	if err != nil || len(pruned) != 2 || head == nil {
		t.Fatalf("Prune through the socket: %v %v %v", pruned, head, err)
	}
	if _, err := s.store.Open(ctx, rec.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("pruned recording still there: %v", err)
	}
	rep, err := recorder.VerifyStore(ctx, c, recorder.VerifyOptions{Key: s.key.Public().(ed25519.PublicKey)})
	if err != nil || len(rep.Problems) != 0 || rep.ChainEntries != 6 { // 2 sessions begun and sealed, a certificate, the prune
		t.Fatalf("verify after prune: %+v %v", rep, err)
	}
}

// TestVerifyUnderLoad: verify through the socket, run again and again while
// 20 sessions at a time start and end, never reports a problem: a session
// that begins while it runs is not "added", one that ends is not
// "modified".
func TestVerifyUnderLoad(t *testing.T) {
	t.Parallel()
	s := serve(t)
	c := dial(t, s.dir)
	ctx := t.Context()
	opts := recorder.VerifyOptions{Key: s.key.Public().(ed25519.PublicKey)}
	const workers, perWorker = 20, 15
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				if err := session(ctx, s.store, fmt.Sprintf("01S%02d%03d-1", w, i)); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	runs, deadline := 0, time.Now().Add(2*time.Minute)
	for finished := false; !finished && runs < 1000 && time.Now().Before(deadline); runs++ {
		select {
		case <-done:
			finished = true // one last run over the settled store
		default:
		}
		rep, err := recorder.VerifyStore(ctx, c, opts)
		if err != nil {
			t.Fatalf("verify run %d: %v", runs, err)
		}
		if len(rep.Problems) != 0 {
			t.Fatalf("verify run %d, %d recordings sealed: %v", runs, rep.Recordings, rep.Problems)
		}
	}
	<-done
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	rep, err := recorder.VerifyStore(ctx, c, opts)
	if err != nil || len(rep.Problems) != 0 || rep.Recordings != workers*perWorker {
		t.Fatalf("after the load: %d recordings, %v, %v", rep.Recordings, rep.Problems, err)
	}
	if runs < 3 {
		t.Fatalf("verify ran only %d times during the load", runs)
	}
	t.Logf("%d verify runs during %d sessions", runs, workers*perWorker)
}

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }
