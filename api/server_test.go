package api_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/api"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

func newAPI(t *testing.T) *api.API {
	t.Helper()
	auth, err := certs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o, err := certs.NewOIDC(certs.OIDCConfig{Issuer: "https://idp.example.com", ClientID: "c"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := api.New(api.Config{OIDC: o, Authority: auth, Register: nopRegister{}, Issuer: "https://idp.example.com", ClientID: "c", TTL: time.Hour, SSHPort: 22})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// nopRegister is a Register for tests that issue nothing.
type nopRegister struct{ api.Register }

// The API serves TLS 1.2 and later from the files; plain HTTP is refused
// on an address that is not loopback.
func TestServerTLS(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	cert, key, pool := testenv.WriteTLSCert(t, t.TempDir())
	srv, err := api.Listen(a, api.ServerConfig{Addr: "127.0.0.1:0", CertFile: cert, KeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	defer func() {
		srv.Shutdown(context.Background())
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	if !strings.HasPrefix(srv.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s", srv.URL())
	}
	get := func(max uint16) (string, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: max}}}
		resp, err := c.Get(srv.URL() + "/healthz")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get(0); err != nil || body != "ok\n" {
		t.Fatalf("healthz over TLS: %q %v", body, err)
	}
	if _, err := get(tls.VersionTLS11); err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	if resp, err := http.Get("http" + strings.TrimPrefix(srv.URL(), "https") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered on the TLS listener")
		}
	}
}

func TestServerListenRefusals(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	for _, tt := range []struct {
		cfg api.ServerConfig
		msg string
	}{
		{api.ServerConfig{Addr: "0.0.0.0:0", PlainHTTP: true}, "which is not a loopback address"},
		{api.ServerConfig{Addr: "127.0.0.1:0", CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}, "load TLS certificate /nonexistent/cert.pem"},
	} {
		srv, err := api.Listen(a, tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			if srv != nil {
				srv.Shutdown(context.Background())
			}
			t.Fatalf("Listen %+v: %v, want %q", tt.cfg, err, tt.msg)
		}
	}
}
