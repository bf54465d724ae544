package adminsock_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// ---------------------------------------------------------------------
// Defences that held (pass now; keep as regression tests).
// ---------------------------------------------------------------------

// TestAttackStoreOtherUserCannotConnect: with the data directory open to
// everyone, another uid still cannot connect to the real socket (0600), nor
// to the temporary name it is bound under with the usual umask.
func TestAttackStoreOtherUserCannotConnect(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t, "running the attacker as another uid")
	dir := looseDir(t)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	st, err := recorder.OpenStore(dir, recorder.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := adminsock.Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- adminsock.Serve(ctx, l, st) }()
	defer func() { cancel(); <-done }()
	p := startAs(t, 65534, "connect", dir)
	line := p.line()
	p.stop()
	if !strings.Contains(line, "permission denied") {
		t.Fatalf("uid 65534 connecting to the admin socket: %q, want permission denied", line)
	}
}

// TestAttackStoreMalformedRequests: malformed HTTP, a body over the cap,
// unknown operations, wrong methods and names that lead out of recordings
// get errors; the server keeps serving, and nothing outside recordings is
// read or removed.
func TestAttackStoreMalformedRequests(t *testing.T) {
	t.Parallel()
	s := serve(t)
	ctx := t.Context()
	if err := session(ctx, s.store, "01A-1"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.dir, "secret"), []byte("secret"), 0o600)
	raw := func(req string) string {
		t.Helper()
		conn, err := net.Dial("unix", adminsock.Path(s.dir))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(conn, req)
		if cw, ok := conn.(*net.UnixConn); ok {
			cw.CloseWrite()
		}
		b, _ := io.ReadAll(io.LimitReader(conn, 1<<20))
		return string(b)
	}
	for _, req := range []string{
		"garbage\r\n\r\n",
		"POST /v1/get HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{{{{{",
		"POST /v1/nosuch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
		"GET /v1/list HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/open?name=../secret HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/open?name=recordings/../secret HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/open?name=%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /v1/open?name=recordings%2F2026 HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /v1/remove HTTP/1.1\r\nHost: x\r\nContent-Length: 27\r\n\r\n{\"name\":\"recordings/../sec\"}",
		"POST /v1/remove HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n{\"name\":\"secret\"}",
		"POST /v1/list HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		resp := raw(req)
		if strings.HasPrefix(resp, "HTTP/1.1 200") || strings.Contains(resp, "secret\n") || strings.Contains(resp, "root:") {
			t.Errorf("request %q answered %q", req, resp)
		}
	}
	// A body over the 16 MiB cap.
	c := dial(t, s.dir)
	big := make([]string, 0, 1<<20)
	for range 1 << 20 {
		big = append(big, "01234567890123456789")
	}
	if _, _, err := c.Prune(ctx, big); err == nil {
		t.Error("a 20 MiB prune request was accepted")
	}
	if _, err := os.Stat(filepath.Join(s.dir, "secret")); err != nil {
		t.Fatalf("file outside recordings removed: %v", err)
	}
	if list, err := c.List(ctx, recorder.Filter{}); err != nil || len(list) != 1 {
		t.Fatalf("server after malformed requests: %v %v", list, err)
	}
}

// TestAttackStoreSlowClientsDoNotBlock: connections that send half a
// request header, or read a recording and stop, do not keep others from
// being served, nor Serve from stopping.
func TestAttackStoreSlowClientsDoNotBlock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	st, err := recorder.OpenStore(dir, recorder.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := t.Context()
	// One big recording, for a reader that stops reading.
	rec := recorder.Session{ID: "01A-1", Start: time.Now(), Path: recorder.RecordingName("01A-1", time.Now())}
	st.Begin(ctx, rec)
	w, err := recorder.NewRecording(ctx, st, rec.Path, recorder.Header{})
	if err != nil {
		t.Fatal(err)
	}
	w.Output(bytes.Repeat([]byte("x"), 8<<20))
	w.Close()
	l, err := adminsock.Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- adminsock.Serve(sctx, l, st) }()
	var conns []net.Conn
	for i := range 50 {
		conn, err := net.Dial("unix", adminsock.Path(dir))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		if i%2 == 0 {
			io.WriteString(conn, "POST /v1/list HTTP/1.1\r\nHost: x\r\n")
		} else {
			fmt.Fprintf(conn, "GET /v1/open?name=%s HTTP/1.1\r\nHost: x\r\n\r\n", rec.Path)
		}
	}
	c := dial(t, dir)
	if _, err := c.Get(ctx, "01A-1"); err != nil {
		t.Fatalf("with 50 stuck connections: %v", err)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not stop with stuck connections")
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestAttackStorePlantedLinksNotFollowed: a symbolic link planted at
// admin.sock or at the temporary admin.sock.new, pointing at a file
// outside the data directory, is replaced or removed as a link: the file
// it points to is neither unlinked nor changed, by Listen or by Close.
func TestAttackStorePlantedLinksNotFollowed(t *testing.T) {
	t.Parallel()
	dir, outside := t.TempDir(), t.TempDir()
	victims := []string{filepath.Join(outside, "victim1"), filepath.Join(outside, "victim2")}
	for _, v := range victims {
		if err := os.WriteFile(v, []byte("precious"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(victims[0], adminsock.Path(dir))
	os.Symlink(victims[1], adminsock.Path(dir)+".new")
	l, err := adminsock.Listen(dir)
	if err != nil {
		t.Fatalf("Listen over planted links: %v", err)
	}
	if fi, err := os.Lstat(adminsock.Path(dir)); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.sock after Listen: %v %v", fi, err)
	}
	l.Close()
	for _, v := range victims {
		if b, err := os.ReadFile(v); err != nil || string(b) != "precious" {
			t.Fatalf("file a planted link pointed at: %q %v", b, err)
		}
	}
}
