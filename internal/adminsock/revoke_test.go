package adminsock_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// A revocation through the socket is recorded with the server's account
// of who and when, applied to the running bastion (the Revoke hook, again
// when asked twice: it changes nothing), listed, and audited with the
// chain head it made.
func TestRevokeThroughSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	st, err := recorder.OpenStore(dir, recorder.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs := &testenv.Buffer{}
	var mu sync.Mutex
	var applied []recorder.Revocation
	srv, err := adminsock.New(adminsock.Config{Store: st, Log: slog.New(slog.NewJSONHandler(logs, nil)),
		Revoke: func(r recorder.Revocation) int {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, r)
			return 3
		}})
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
	ans, err := c.RevokeLive(t.Context(), recorder.Revocation{Serial: 77, Reason: "stolen", RevokedBy: "mallory", RevokedAt: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	if !ans.New || ans.Ended != 3 || ans.Head == nil || !strings.HasPrefix(ans.Revocation.RevokedBy, me+" ") ||
		!strings.Contains(ans.Revocation.RevokedBy, "mallory") || time.Since(ans.Revocation.RevokedAt) > time.Minute {
		t.Fatalf("answer %+v", ans)
	}
	again, fresh, err := c.Revoke(t.Context(), recorder.Revocation{Serial: 77, Reason: "twice"})
	if err != nil || fresh || again.Reason != "stolen" {
		t.Fatalf("again: %+v %v %v", again, fresh, err)
	}
	if _, _, err := c.Revoke(t.Context(), recorder.Revocation{Serial: 78}); err == nil || !strings.Contains(err.Error(), "reason") {
		t.Fatalf("no reason: %v", err)
	}
	mu.Lock()
	if len(applied) != 2 || applied[0].Serial != 77 || applied[1].Reason != "stolen" {
		t.Fatalf("applied %+v", applied)
	}
	mu.Unlock()
	list, err := c.Revocations(t.Context())
	if err != nil || len(list) != 1 || list[0].Serial != 77 {
		t.Fatalf("revocations %+v %v", list, err)
	}
	var found bool
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["event"] == "cert_revoked" && rec["new"] == true {
			found = rec["chain_head"] == ans.Head.String() && rec["revoked"] == "serial/77" && rec["connections_ended"] == float64(3)
		}
	}
	if !found {
		t.Fatalf("no cert_revoked record with the chain head in the server's log:\n%s", logs.String())
	}
}
