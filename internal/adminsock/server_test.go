package adminsock_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// TestServerLogsIssue: a certificate issued through the socket is logged
// by the server as a cert_issued record carrying the chain head the issue
// made; issued_by names the peer's user (the client's claim kept beside
// it) and issued_at is the server's clock, not the client's.
func TestServerLogsIssue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	st, err := recorder.OpenStore(dir, recorder.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs := &testenv.Buffer{}
	srv, err := adminsock.New(adminsock.Config{Store: st, Log: slog.New(slog.NewJSONHandler(logs, nil))})
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
	defer func() { cancel(); <-done }()

	c := dial(t, dir)
	long := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	rec, err := c.IssueCert(t.Context(), recorder.IssuedCert{KeyID: "k", Principals: []string{"bob"}, IssuedBy: "mallory", IssuedAt: long})
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	if !strings.HasPrefix(rec.IssuedBy, me+" ") || !strings.Contains(rec.IssuedBy, "mallory") || time.Since(rec.IssuedAt) > time.Minute {
		t.Fatalf("issued by %q at %s", rec.IssuedBy, rec.IssuedAt)
	}
	head, err := st.Head(t.Context())
	if err != nil || head == nil {
		t.Fatal(head, err)
	}
	var found bool
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["event"] == "cert_issued" {
			found = line["chain_head"] == head.String() && line["issued_by"] == rec.IssuedBy
		}
	}
	if !found {
		t.Fatalf("no cert_issued record with chain_head %s in the server's log:\n%s", head, logs.String())
	}
}
