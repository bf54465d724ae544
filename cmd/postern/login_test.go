package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// loginOutput is the stderr of a running `postern login`: it hands the
// test the sign-in URL (and, for --device, the user code) once printed.
type loginOutput struct {
	mu   sync.Mutex // guards buf and sent
	buf  bytes.Buffer
	sent bool
	url  chan [2]string // {URL, user code}, once
}

var (
	loginURLLine  = regexp.MustCompile(`(?m)^  (http\S+)$`)
	loginUserCode = regexp.MustCompile(`enter the code (\S+)`)
)

func (o *loginOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if m := loginURLLine.FindStringSubmatch(o.buf.String()); m != nil && !o.sent {
		code := ""
		if c := loginUserCode.FindStringSubmatch(o.buf.String()); c != nil {
			code = c[1]
		}
		o.url <- [2]string{m[1], code}
		o.sent = true
	}
	return len(p), nil
}

func (o *loginOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// runLogin runs `postern login --no-browser ARGS... API` as a user would
// and plays the user's part against the provider: it opens the printed URL
// and signs in as user (with --device among args: enters the printed
// code at the verification URL). It returns the command's exit code and
// output. This is the end-to-end entry point: give it a real bastion's
// API URL and the provider that bastion trusts.
func runLogin(t *testing.T, apiURL string, p *testenv.OIDCProvider, user string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stderr := &loginOutput{url: make(chan [2]string, 1)}
	var stdout bytes.Buffer
	done := make(chan int, 1)
	argv := append(append([]string{"login", "--no-browser"}, args...), apiURL)
	go func() { done <- run(ctx, argv, strings.NewReader(""), &stdout, stderr) }()
	select {
	case u := <-stderr.url:
		var err error
		if slices.Contains(args, "--device") {
			err = p.CompleteDevice(ctx, u[0], u[1], user, false)
		} else {
			var status int
			var body string
			status, body, err = p.Browse(ctx, u[0], user)
			if err == nil && status != http.StatusOK {
				t.Logf("the login's callback page answered %d: %s", status, body)
			}
		}
		if err != nil {
			t.Errorf("sign in as %s: %v", user, err)
		}
	case code := <-done:
		return code, stdout.String(), stderr.String() // ended before any sign-in
	case <-ctx.Done():
		t.Fatalf("postern login printed no URL; stderr:\n%s", stderr.String())
	}
	select {
	case code := <-done:
		return code, stdout.String(), stderr.String()
	case <-ctx.Done():
		t.Fatalf("postern login did not end; stderr:\n%s", stderr.String())
		return 0, "", ""
	}
}

// loginRequest is what the stand-in API received on POST /v1/certificates.
type loginRequest struct {
	IDToken   string `json:"id_token"`
	PublicKey string `json:"public_key"`
	TTL       string `json:"ttl"`
	Nonce     string `json:"nonce"`
}

// refusingAPI serves GET /v1/login for provider p and refuses every
// POST /v1/certificates with status and body, recording the requests.
// The bastion's real API issues; this one exists for the client's side.
func refusingAPI(t *testing.T, p *testenv.OIDCProvider, status int, header map[string]string, body string) (string, <-chan loginRequest) {
	t.Helper()
	hostKey := testenv.NewSigner(t).PublicKey()
	info, _ := json.Marshal(map[string]any{
		"issuer": p.Issuer, "client_id": p.ClientID, "scopes": []string{"openid", "email", "profile", "groups"},
		"device": true, "ssh_host": "127.0.0.1", "ssh_port": 2222, "ttl": "8h0m0s", "max_ttl": "12h0m0s",
		"known_hosts": []string{"[127.0.0.1]:2222 " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey)))},
	})
	reqs := make(chan loginRequest, 10)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/login", func(w http.ResponseWriter, r *http.Request) { w.Write(info) })
	mux.HandleFunc("POST /v1/certificates", func(w http.ResponseWriter, r *http.Request) {
		var req loginRequest
		json.NewDecoder(r.Body).Decode(&req)
		reqs <- req
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, reqs
}

func tokenClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token %q is not a JWT", raw)
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	json.Unmarshal(data, &c)
	return c
}

// `postern login --no-browser` and `--device` against the real provider:
// the bastion gets an ID token for the user (with the nonce the flow set,
// for the browser flow) and the public key; a refusal is shown as the
// server's one line, exit 1, and nothing is written.
func TestLoginSendsTokenAndKeyAndShowsRefusal(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	api, reqs := refusingAPI(t, p, http.StatusForbidden, nil, `{"error":"alice@example.com\nmay not log in here"}`)
	for _, mode := range [][]string{nil, {"--device"}} {
		dir := t.TempDir()
		args := append([]string{"--dir", dir, "--ttl", "2h"}, mode...)
		code, stdout, stderr := runLogin(t, api, p, "alice", args...)
		if code != 1 || !strings.Contains(stderr, "postern: the bastion refused: alice@example.com may not log in here (HTTP 403)\n") {
			t.Fatalf("%v: exit %d, stdout %q, stderr:\n%s", mode, code, stdout, stderr)
		}
		req := <-reqs
		c := tokenClaims(t, req.IDToken)
		if c["email"] != "alice@example.com" || c["iss"] != p.Issuer || req.TTL != "2h0m0s" {
			t.Fatalf("%v: request %+v, claims %v", mode, req, c)
		}
		if mode == nil && (req.Nonce == "" || c["nonce"] != req.Nonce) {
			t.Fatalf("browser flow: nonce %q sent, token has %v", req.Nonce, c["nonce"])
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
		if err != nil || pub.Type() != ssh.KeyAlgoED25519 {
			t.Fatalf("public key %q: %v", req.PublicKey, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Fatalf("a refused login wrote %v", entries)
		}
	}
}

func TestLoginRateLimitedAndTimeout(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	api, _ := refusingAPI(t, p, http.StatusTooManyRequests, map[string]string{"Retry-After": "30"}, `{"error":"too many failed requests"}`)
	code, _, stderr := runLogin(t, api, p, "alice", "--dir", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "too many failed requests; try again in 30s (HTTP 429)") {
		t.Fatalf("429: exit %d, stderr:\n%s", code, stderr)
	}
	// Nobody signs in: the login gives up at --timeout.
	var stdout, errb bytes.Buffer
	start := time.Now()
	code = run(context.Background(), []string{"login", "--no-browser", "--timeout", "1s", "--dir", t.TempDir(), api},
		strings.NewReader(""), &stdout, &errb)
	if code != 1 || !strings.Contains(errb.String(), "login not finished within 1s") || time.Since(start) > 20*time.Second {
		t.Fatalf("timeout: exit %d after %v, stderr:\n%s", code, time.Since(start), errb.String())
	}
}

func TestLoginUsage(t *testing.T) {
	t.Setenv("POSTERN_URL", "")
	dir := t.TempDir()
	tests := []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"login", "--help"}, 0, "-no-browser", ""},
		{[]string{"login", "--help"}, 0, "ssh -F ~/.postern/ssh_config LOGIN@TARGET@BASTION-HOST", ""},
		{[]string{"status", "--help"}, 0, "-json", ""},
		{[]string{"logout", "--help"}, 0, "ssh-agent", ""},
		{[]string{"login", "--dir", dir}, 2, "", "no bastion URL"},
		{[]string{"login", "--dir", dir, "http://bastion.example.com"}, 2, "", "plain http only to a loopback address"},
		{[]string{"login", "--dir", dir, "--key", "k", "--agent-only", "https://b.example.com"}, 2, "", "does not go with --key"},
		{[]string{"login", "--dir", dir, "--ttl", "-1h", "https://b.example.com"}, 2, "", "must be positive"},
		{[]string{"login", "--dir", dir, "https://a.example.com", "https://b.example.com"}, 2, "", "at most one URL"},
		{[]string{"status", "--dir", dir, "extra"}, 2, "", "unexpected argument"},
		{[]string{"status", "--dir", dir}, 1, "", "not logged in: run 'postern login URL'"},
		{[]string{"logout", "--dir", dir}, 0, "Not logged in: nothing to remove.", ""},
	}
	for _, tt := range tests {
		code, out, errs := runCLI(t, tt.args...)
		if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.err) {
			t.Errorf("postern %v: exit %d, stdout %q, stderr %q; want exit %d, %q in stdout, %q in stderr",
				tt.args, code, out, errs, tt.code, tt.out, tt.err)
		}
	}
	// The default directory is ~/.postern, created 0700.
	home := t.TempDir()
	t.Setenv("HOME", home)
	if code, _, errs := runCLI(t, "status"); code != 1 || !strings.Contains(errs, "not logged in") {
		t.Fatalf("status in a fresh home: exit %d %q", code, errs)
	}
	if st, err := os.Stat(filepath.Join(home, ".postern")); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("~/.postern: %v %v", st, err)
	}
}

// Without --no-browser, login hands the URL to xdg-open (here a script
// standing in for the desktop's opener) and prints it as well.
func TestLoginOpensBrowser(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	bin := t.TempDir()
	opened := filepath.Join(bin, "opened")
	script := "#!/bin/sh\nprintf '%s' \"$1\" > " + opened + ".tmp && mv " + opened + ".tmp " + opened + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	api, reqs := refusingAPI(t, p, http.StatusForbidden, nil, `{"error":"no"}`)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"login", "--dir", t.TempDir(), api}, strings.NewReader(""), &stdout, &stderr)
	}()
	var u []byte
	testenv.WaitFor(t, 30*time.Second, func() bool {
		u, _ = os.ReadFile(opened)
		return len(u) > 0
	})
	if _, _, err := p.Browse(ctx, string(u), "alice"); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 1 || !strings.Contains(stderr.String(), string(u)) {
		t.Fatalf("exit %d; the URL opened was not printed too:\n%s", code, stderr.String())
	}
	if req := <-reqs; req.IDToken == "" {
		t.Fatal("no ID token reached the bastion")
	}
}
