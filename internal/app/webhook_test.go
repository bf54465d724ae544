package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/testenv"
)

// With approval_webhook set, a command held for approval is posted to the
// webhook as it is held.
func TestApprovalWebhook(t *testing.T) {
	t.Parallel()
	posted := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		json.NewDecoder(r.Body).Decode(&m)
		posted <- m.Text
	}))
	defer srv.Close()
	r := &rig{dir: filepath.Join(t.TempDir(), "data"), logs: &testenv.Buffer{}}
	a, err := app.New(app.Config{
		Settings: &config.Config{Listen: "127.0.0.1:0", DataDir: r.dir, ApprovalWebhook: srv.URL,
			Approvals: approval.Policy{Rules: []approval.Rule{{Name: "rm", Match: approval.Match{Commands: []string{"rm"}},
				Action: approval.Approve, Approvers: []string{"ops"}}}}},
		Log:   app.NewLogger(r.logs, -4),
		Extra: r.extra(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	key := testenv.NewSigner(t)
	cert, err := a.Auth.SignUser(key.PublicKey(), certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r.alice, err = ssh.NewCertSigner(cert, key); err != nil {
		t.Fatal(err)
	}
	client, err := r.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if err := sess.Start("rm /tmp/nothing-here"); err != nil {
		t.Fatal(err)
	}
	select {
	case text := <-posted:
		if !strings.Contains(text, "alice asks to run `rm /tmp/nothing-here` on t as demo (rule rm, request ") {
			t.Fatalf("posted %q", text)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("nothing posted; log:\n%s", r.logs.String())
	}
}
