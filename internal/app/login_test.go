package app_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/testenv"
)

func loginSettings(dir, listen string) *config.Config {
	return &config.Config{Listen: "127.0.0.1:0", DataDir: dir, Login: &config.Login{
		Listen: listen, PlainHTTP: true, Issuer: "http://127.0.0.1:1", ClientID: "c",
		Scopes: []string{"openid"}, TTL: time.Hour, MaxTTL: time.Hour, Extensions: []string{"permit-pty"},
	}}
}

// The login API runs and stops with the App; one that cannot listen stops
// New, which undoes what it did (the data directory is free again).
func TestAppLogin(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := app.New(app.Config{Settings: loginSettings(dir, taken.Addr().String())}); err == nil || !strings.Contains(err.Error(), "login API: listen on") {
		t.Fatalf("New with the login port taken: %v", err)
	}
	logs := &testenv.Buffer{}
	a, err := app.New(app.Config{Settings: loginSettings(dir, "127.0.0.1:0"), Log: app.NewLogger(logs, 0)})
	if err != nil {
		t.Fatal(err)
	}
	url := a.LoginURL()
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("login URL %q", url)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	testenv.WaitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get(url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cancel()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v\n%s", err, logs.String())
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("login API still answers after Run returned")
	}
	// The provider (nothing listens at port 1) is reported at start.
	if !strings.Contains(logs.String(), "the identity provider cannot be discovered yet") {
		t.Fatalf("no warning about the provider:\n%s", logs.String())
	}
}
