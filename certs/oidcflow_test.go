package certs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// promptWatcher is a flow's Prompt: it keeps what is written and hands
// the first http URL (and the user code, for the device flow) to the test.
type promptWatcher struct {
	mu   sync.Mutex // guards text and sent
	text strings.Builder
	sent bool
	urls chan string // the first URL, once
	code chan string // the device flow's user code, once
}

func newPromptWatcher() *promptWatcher {
	return &promptWatcher{urls: make(chan string, 1), code: make(chan string, 1)}
}

var (
	promptURL  = regexp.MustCompile(`(?m)^  (http\S+)$`)
	promptCode = regexp.MustCompile(`enter the code (\S+)`)
)

func (w *promptWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text.Write(p)
	if w.sent {
		return len(p), nil
	}
	if m := promptURL.FindStringSubmatch(w.text.String()); m != nil {
		if c := promptCode.FindStringSubmatch(w.text.String()); c != nil {
			w.code <- c[1]
		}
		w.urls <- m[1]
		w.sent = true
	}
	return len(p), nil
}

func (w *promptWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text.String()
}

// waitURL returns the URL the flow printed, or fails after 30 s.
func (w *promptWatcher) waitURL(t *testing.T) string {
	t.Helper()
	select {
	case u := <-w.urls:
		return u
	case <-time.After(30 * time.Second):
		t.Fatalf("the flow printed no URL; it printed:\n%s", w.String())
		return ""
	}
}

type flowResult struct {
	tok *IDToken
	err error
}

// startFlow runs run (AuthCode or Device) in a goroutine and returns where
// its result arrives.
func startFlow(run func(context.Context) (*IDToken, error)) <-chan flowResult {
	res := make(chan flowResult, 1)
	go func() {
		tok, err := run(context.Background())
		res <- flowResult{tok, err}
	}()
	return res
}

func waitFlow(t *testing.T, res <-chan flowResult) flowResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("the flow did not end")
		return flowResult{}
	}
}

// claims decodes an ID token's payload (unverified: the bastion verifies).
func claims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("id token %q is not a JWT", raw)
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func newFlow(p *testenv.OIDCProvider, w *promptWatcher) *OIDCFlow {
	return &OIDCFlow{Issuer: p.Issuer, ClientID: p.ClientID,
		Scopes: []string{"openid", "email", "groups"}, Prompt: w, Timeout: time.Minute}
}

// The browser flow end to end: the printed URL, the provider's sign-in
// form, the redirect to the loopback callback, an ID token for the user
// with the nonce the flow sent.
func TestAuthCodeFlow(t *testing.T) {
	t.Parallel()
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	w := newPromptWatcher()
	opened := make(chan string, 1)
	f := newFlow(p, w)
	f.Scopes = []string{"email", "groups"} // openid is added
	f.OpenBrowser = func(_ context.Context, u string) error { opened <- u; return nil }
	res := startFlow(f.AuthCode)
	authURL := w.waitURL(t)
	if got := <-opened; got != authURL {
		t.Fatalf("opened %q, printed %q", got, authURL)
	}
	u, _ := url.Parse(authURL)
	q := u.Query()
	redirect, _ := url.Parse(q.Get("redirect_uri"))
	if q.Get("scope") != "openid email groups" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" ||
		len(q.Get("state")) < 40 || redirect.Hostname() != "127.0.0.1" || redirect.Path != "/callback" || redirect.Port() == "" {
		t.Fatalf("authorization URL %s lacks PKCE, nonce, state or a loopback redirect", authURL)
	}
	status, body, err := p.Browse(context.Background(), authURL, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || !strings.Contains(body, "Signed in") {
		t.Fatalf("callback page: %d %q", status, body)
	}
	r := waitFlow(t, res)
	if r.err != nil {
		t.Fatal(r.err)
	}
	c := claims(t, r.tok.Raw)
	if c["email"] != "alice@example.com" || c["nonce"] != q.Get("nonce") || r.tok.Nonce != q.Get("nonce") || c["groups"] == nil {
		t.Fatalf("token claims %v, nonce %q", c, r.tok.Nonce)
	}
	// The loopback listener is gone with the flow.
	if c, err := net.Dial("tcp", redirect.Host); err == nil {
		c.Close()
		t.Fatalf("the callback listener %s still accepts", redirect.Host)
	}
}

// A redirect that carries another state (a login this flow did not start,
// RFC 6749 section 10.12) is refused, and the user is told; the login
// goes on.
func TestAuthCodeFlowRefusesWrongState(t *testing.T) {
	t.Parallel()
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	w := newPromptWatcher()
	res := startFlow(newFlow(p, w).AuthCode)
	ctx := context.Background()
	cb, err := p.Authorize(ctx, w.waitURL(t), "alice")
	if err != nil {
		t.Fatal(err)
	}
	forged := *cb
	q := forged.Query()
	q.Set("state", "attacker-state")
	forged.RawQuery = q.Encode()
	status, body := get(t, forged.String())
	if status != http.StatusBadRequest || !strings.Contains(body, "another state") {
		t.Fatalf("forged callback: %d %q", status, body)
	}
	// Refused without ending the login (TestAttackForgedCallbacksDoNotEndLogin):
	// the genuine redirect still completes it.
	if status, body := get(t, cb.String()); status != http.StatusOK {
		t.Fatalf("genuine callback after a forged one: %d %q", status, body)
	}
	r := waitFlow(t, res)
	if r.err != nil || r.tok == nil || !strings.Contains(w.String(), "another state") {
		t.Fatalf("flow: token %v, err %v; prompt:\n%s", r.tok, r.err, w.String())
	}
}

// A token whose nonce is not the one sent is refused: here the
// authorization URL was altered on its way to the browser.
func TestAuthCodeFlowRefusesWrongNonce(t *testing.T) {
	t.Parallel()
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	w := newPromptWatcher()
	res := startFlow(newFlow(p, w).AuthCode)
	u, _ := url.Parse(w.waitURL(t))
	q := u.Query()
	q.Set("nonce", "injected-nonce")
	u.RawQuery = q.Encode()
	status, body, err := p.Browse(context.Background(), u.String(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusBadRequest || !strings.Contains(body, "nonce") {
		t.Fatalf("callback page: %d %q", status, body)
	}
	r := waitFlow(t, res)
	if r.err == nil || !strings.Contains(r.err.Error(), "nonce is not the one this login sent") {
		t.Fatalf("flow: token %v, err %v; want the nonce refused", r.tok, r.err)
	}
}

// An error the provider sends back (the user cancelled) ends the flow with
// the provider's words.
func TestAuthCodeFlowProviderError(t *testing.T) {
	t.Parallel()
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	w := newPromptWatcher()
	res := startFlow(newFlow(p, w).AuthCode)
	u, _ := url.Parse(w.waitURL(t))
	q := u.Query()
	back := q.Get("redirect_uri") + "?" + url.Values{"state": {q.Get("state")}, "error": {"access_denied"},
		"error_description": {"The user\ncancelled"}}.Encode()
	if status, _ := get(t, back); status != http.StatusBadRequest {
		t.Fatalf("error callback answered %d", status)
	}
	r := waitFlow(t, res)
	if r.err == nil || !strings.Contains(r.err.Error(), "refused the login: access_denied: The user cancelled") {
		t.Fatalf("flow: err %v", r.err)
	}
}

// A login nobody finishes ends at the timeout, saying so.
func TestAuthCodeFlowTimeout(t *testing.T) {
	t.Parallel()
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	w := newPromptWatcher()
	f := newFlow(p, w)
	f.Timeout = 500 * time.Millisecond
	start := time.Now()
	res := startFlow(f.AuthCode)
	// The URL is printed after discovery, which a loaded machine can take
	// past the 500ms: the timeout applies to the whole flow, so the flow
	// may end without printing it, with the same message.
	var r flowResult
	select {
	case <-w.urls:
		r = waitFlow(t, res)
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatalf("the flow printed no URL and did not end; it printed:\n%s", w.String())
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "login not finished within 500ms") {
		t.Fatalf("flow: err %v", r.err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the timeout took %v", d)
	}
}

func TestDeviceFlow(t *testing.T) {
	t.Parallel()
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	ctx := context.Background()
	for _, deny := range []bool{false, true} {
		w := newPromptWatcher()
		res := startFlow(newFlow(p, w).Device)
		verification := w.waitURL(t)
		code := <-w.code
		if err := p.CompleteDevice(ctx, verification, code, "alice", deny); err != nil {
			t.Fatal(err)
		}
		r := waitFlow(t, res)
		if deny {
			if r.err == nil || !strings.Contains(r.err.Error(), "denied") {
				t.Fatalf("denied device login: err %v", r.err)
			}
			continue
		}
		if r.err != nil {
			t.Fatalf("device flow: %v\nprompt:\n%s", r.err, w.String())
		}
		if c := claims(t, r.tok.Raw); c["email"] != "alice@example.com" || r.tok.Nonce != "" {
			t.Fatalf("device token claims %v", c)
		}
	}
	// Nobody enters the code: the flow times out.
	w := newPromptWatcher()
	f := newFlow(p, w)
	f.Timeout = 1500 * time.Millisecond
	r := waitFlow(t, startFlow(f.Device))
	if r.err == nil || !strings.Contains(r.err.Error(), "login not finished within 1.5s") {
		t.Fatalf("device timeout: err %v", r.err)
	}
	// The provider's code expires first: the user is told so.
	short := testenv.OIDC(t, testenv.OIDCOptions{DeviceLifetime: 2 * time.Second})
	r = waitFlow(t, startFlow(newFlow(short, newPromptWatcher()).Device))
	if r.err == nil || !strings.Contains(r.err.Error(), "the user code expired") {
		t.Fatalf("expired device code: err %v", r.err)
	}
}

// Discovery must name the issuer asked for (OpenID Connect Discovery
// 1.0, section 4.3).
func TestFlowRefusesIssuerMismatch(t *testing.T) {
	t.Parallel()
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	f := &OIDCFlow{Issuer: p.Issuer + "/", ClientID: p.ClientID, Timeout: 10 * time.Second}
	if _, err := f.AuthCode(context.Background()); err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Fatalf("err %v", err)
	}
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// A provider that matches redirect URIs with their port, and one that
// demands an installed app's secret at its token endpoint: the flow takes
// the redirect on the port it is given and sends the secret; without the
// secret the provider refuses the exchange.
func TestAuthCodeFlowFixedPortAndSecret(t *testing.T) {
	t.Parallel()
	p := testenv.OIDC(t, testenv.OIDCOptions{SecretClients: map[string]string{"desktop": "not-so-secret"}})
	// A port free a moment ago, which the flow listens on twice: from
	// below the ephemeral range, so no connection made meanwhile takes it.
	port := testenv.FreePort(t)
	for _, secret := range []string{"not-so-secret", ""} {
		w := newPromptWatcher()
		f := newFlow(p, w)
		f.ClientID, f.ClientSecret, f.RedirectPort = "desktop", secret, port
		res := startFlow(f.AuthCode)
		authURL := w.waitURL(t)
		u, _ := url.Parse(authURL)
		if redirect, _ := url.Parse(u.Query().Get("redirect_uri")); redirect.Port() != fmt.Sprint(port) {
			t.Fatalf("redirect %s, want port %d", redirect, port)
		}
		if _, _, err := p.Browse(context.Background(), authURL, "alice"); err != nil {
			t.Fatal(err)
		}
		r := waitFlow(t, res)
		if secret != "" && (r.err != nil || claims(t, r.tok.Raw)["aud"] == nil) {
			t.Fatalf("with the secret: %v", r.err)
		}
		if secret == "" && r.err == nil {
			t.Fatal("the provider gave a token without the client's secret")
		}
	}
}
