package certs

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

func TestParseAPIURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want, err string }{
		{"https://bastion.example.com:8443/", "https://bastion.example.com:8443", ""},
		{"https://bastion.example.com/postern", "https://bastion.example.com/postern", ""},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"http://[::1]:8080", "http://[::1]:8080", ""},
		{"http://localhost:8080", "http://localhost:8080", ""},
		{"http://bastion.example.com", "", "plain http only to a loopback address"},
		{"http://10.0.0.1:8080", "", "plain http only to a loopback address"},
		{"bastion.example.com", "", "want https://HOST"},
		{"ftp://bastion.example.com", "", "want https://HOST"},
		{"https://bastion.example.com/?x=1", "", "query"},
		{"https://user@bastion.example.com", "", "user name"},
	}
	for _, tt := range tests {
		got, err := ParseAPIURL(tt.in)
		if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseAPIURL(%q) = %q, %v; want %q, error containing %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// validInfo is a GET /v1/login answer that passes the checks.
func validInfo(hostKey ssh.PublicKey) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey)))
	return `{"issuer":"https://idp.example.com","client_id":"postern","scopes":["openid","email"],"device":true,
		"ssh_host":"bastion.example.com","ssh_port":2222,"known_hosts":["[bastion.example.com]:2222 ` + line + `",
		"@cert-authority * ` + line + `"],"ttl":"8h0m0s","max_ttl":"12h0m0s"}`
}

// serve answers every request with status, headers and body.
func serve(t *testing.T, status int, header map[string]string, body string) *API {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return &API{URL: srv.URL}
}

// The answers of GET /v1/login end up in ssh_config and known_hosts: any
// field that could smuggle a directive, or trust the wrong key, is
// refused; errors are the server's message on one line.
func TestLoginInfoRefusesBadAnswers(t *testing.T) {
	t.Parallel()
	hostKey := testenv.NewSigner(t).PublicKey()
	good := validInfo(hostKey)
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		err    string
	}{
		{"error json", 403, nil, `{"error":"login is\nnot enabled on this bastion"}`, "the bastion refused: login is not enabled on this bastion (HTTP 403)"},
		{"html error page", 502, nil, `<html>bad gateway</html>`, "answered 502 Bad Gateway without an error message"},
		{"not json", 200, nil, `<html>hello</html>`, "not the JSON expected"},
		{"oversized", 200, nil, `{"issuer":"` + strings.Repeat("a", maxResponse) + `"}`, "is over"},
		{"ssh_host injects a directive", 200, nil, strings.Replace(good, `"bastion.example.com"`, `"b.example.com\n  ProxyCommand sh -c x"`, 1), "ssh_host"},
		{"ssh_host wildcard", 200, nil, strings.Replace(good, `"ssh_host":"bastion.example.com"`, `"ssh_host":"*"`, 1), "ssh_host"},
		{"port", 200, nil, strings.Replace(good, `2222,`, `0,`, 1), "ssh_port 0"},
		{"no known_hosts", 200, nil, strings.Replace(good, `"known_hosts":[`, `"known_hosts":[],"x":[`, 1), "known_hosts is empty"},
		{"revoked marker", 200, nil, strings.Replace(good, `@cert-authority`, `@revoked`, 1), "marker @revoked"},
		{"bad key line", 200, nil, strings.Replace(good, `"@cert-authority *`, `"@cert-authority * junk`, 1), "known_hosts line"},
		{"issuer", 200, nil, strings.Replace(good, `https://idp.example.com`, `javascript:alert(1)`, 1), "issuer"},
		{"plain http issuer", 200, nil, strings.Replace(good, `https://idp.example.com`, `http://idp.example.com`, 1), "issuer: URL \"http://idp.example.com\": plain http only to a loopback address"},
		{"redirect", 307, map[string]string{"Location": "http://elsewhere.example.com/v1/login"}, ``, "answered 307 Temporary Redirect without an error message"},
		{"ttl", 200, nil, strings.Replace(good, `"8h0m0s"`, `"forever"`, 1), "ttl \"forever\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := serve(t, tt.status, tt.header, tt.body).LoginInfo(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.err) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %q, want one line containing %q", err, tt.err)
			}
		})
	}
	info, err := serve(t, 200, nil, good).LoginInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Whatever hosts the lines named, the file names the bastion alone.
	want := "[bastion.example.com]:2222 " + string(ssh.MarshalAuthorizedKey(hostKey)) +
		"@cert-authority [bastion.example.com]:2222 " + string(ssh.MarshalAuthorizedKey(hostKey))
	if got := string(info.knownHostsFile()); got != want {
		t.Fatalf("known_hosts:\n%s\nwant:\n%s", got, want)
	}
}

func TestIssueRefusesBadAnswers(t *testing.T) {
	t.Parallel()
	ca := testenv.NewSigner(t)
	key := testenv.NewSigner(t).PublicKey()
	other := testenv.NewSigner(t).PublicKey()
	certFor := func(pub ssh.PublicKey, edit func(*ssh.Certificate)) string {
		c := &ssh.Certificate{Key: pub, CertType: ssh.UserCert, ValidPrincipals: []string{"alice"},
			ValidBefore: uint64(time.Now().Add(time.Hour).Unix())}
		if edit != nil {
			edit(c)
		}
		if err := c.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(c)))
	}
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		err    string
		retry  time.Duration
	}{
		{"refused", 403, nil, `{"error":"email not verified"}`, "the bastion refused: email not verified (HTTP 403)", 0},
		{"rate limited", 429, map[string]string{"Retry-After": "30"}, `{"error":"too many failed requests"}`, "too many failed requests; try again in 30s (HTTP 429)", 30 * time.Second},
		{"empty error", 400, nil, `{"error":""}`, "without an error message", 0},
		{"not a certificate", 200, nil, `{"certificate":"` + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))) + `"}`, "other than a user certificate", 0},
		{"garbage certificate", 200, nil, `{"certificate":"ssh-ed25519-cert-v01@openssh.com AAAA"}`, "does not parse", 0},
		{"another key", 200, nil, `{"certificate":"` + certFor(other, nil) + `"}`, "for another key", 0},
		{"host certificate", 200, nil, `{"certificate":"` + certFor(key, func(c *ssh.Certificate) { c.CertType = ssh.HostCert }) + `"}`, "other than a user certificate", 0},
		{"expired", 200, nil, `{"certificate":"` + certFor(key, func(c *ssh.Certificate) { c.ValidBefore = 1000 }) + `"}`, "expired", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := serve(t, tt.status, tt.header, tt.body).Issue(context.Background(), CertificateRequest{IDToken: "x"}, key)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
			var ae *APIError
			if errors.As(err, &ae) && ae.RetryAfter != tt.retry {
				t.Fatalf("retry after %v, want %v", ae.RetryAfter, tt.retry)
			}
		})
	}
	got, err := serve(t, 200, nil, `{"certificate":"`+certFor(key, nil)+`","identity":"alice@example.com","serial":7}`).
		Issue(context.Background(), CertificateRequest{}, key)
	if err != nil || got.Cert == nil || got.Identity != "alice@example.com" || got.Serial != 7 {
		t.Fatalf("good answer: %+v, %v", got, err)
	}
}

// LoginAndIssue checks the TTL and the device flow against what the
// bastion announced before any browser opens.
func TestLoginAndIssueChecksBeforeSignIn(t *testing.T) {
	t.Parallel()
	api := serve(t, 200, nil, strings.Replace(validInfo(testenv.NewSigner(t).PublicKey()), `"device":true`, `"device":false`, 1))
	key, err := GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = LoginAndIssue(ctx, api.URL, LoginOptions{Key: key, TTL: 13 * time.Hour})
	if err == nil || !strings.Contains(err.Error(), "--ttl 13h0m0s is above the bastion's max_ttl 12h0m0s") {
		t.Fatalf("ttl: %v", err)
	}
	_, err = LoginAndIssue(ctx, api.URL, LoginOptions{Key: key, Device: true})
	if err == nil || !strings.Contains(err.Error(), "does not offer the device flow") {
		t.Fatalf("device: %v", err)
	}
}
