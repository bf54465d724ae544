package certs

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/postern/postern/internal/testenv"
)

// Another local user (or a web page in the user's browser) sends forged
// requests to the loopback callback while the user signs in: a wrong
// state, a code without state, an error without the state, another
// method. Each is refused, and none ends the login: the user's own
// redirect still completes it.
func TestAttackForgedCallbacksDoNotEndLogin(t *testing.T) {
	t.Parallel()
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	w := newPromptWatcher()
	res := startFlow(newFlow(p, w).AuthCode)
	authURL := w.waitURL(t)
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	redirect := u.Query().Get("redirect_uri")
	for _, forged := range []string{
		redirect + "?state=attacker-state&code=attacker-code",
		redirect + "?code=attacker-code",
		redirect + "?state=&code=attacker-code",
		redirect + "?error=access_denied&error_description=denied",
		redirect + "?state=attacker-state&error=access_denied",
	} {
		status, body := get(t, forged)
		if status != http.StatusBadRequest || !strings.Contains(body, "another state") {
			t.Fatalf("forged callback %s: %d %q", forged, status, body)
		}
	}
	resp, err := http.Post(redirect+"?state=x&code=y", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST to the callback: %s", resp.Status)
	}
	select {
	case r := <-res:
		t.Fatalf("a forged callback ended the login: %v %v", r.tok, r.err)
	default:
	}
	status, body, err := p.Browse(context.Background(), authURL, "alice")
	if err != nil || status != http.StatusOK || !strings.Contains(body, "Signed in") {
		t.Fatalf("the user's own redirect: %d %q %v", status, body, err)
	}
	r := waitFlow(t, res)
	if r.err != nil || claims(t, r.tok.Raw)["email"] != "alice@example.com" {
		t.Fatalf("flow: %v %v", r.tok, r.err)
	}
	if !strings.Contains(w.String(), "Refused a redirect to the callback") {
		t.Fatalf("the forged callbacks were not reported:\n%s", w.String())
	}
}

// hostileProvider is an OpenID provider (the bastion announced it, or a
// bastion that is not the user's did) whose discovery document and device
// answers the test sets.
type hostileProvider struct {
	srv    *httptest.Server
	meta   map[string]any
	device map[string]any
}

func newHostileProvider(t *testing.T) *hostileProvider {
	h := &hostileProvider{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(h.meta)
		case "/device":
			json.NewEncoder(w).Encode(h.device)
		case "/token":
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"authorization_pending"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(h.srv.Close)
	u := h.srv.URL
	h.meta = map[string]any{"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
		"device_authorization_endpoint": u + "/device"}
	h.device = map[string]any{"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": u + "/verify",
		"expires_in": 300, "interval": 1}
	return h
}

// A provider's endpoints become a URL a browser opens, and receive the
// authorization code with its PKCE verifier and the ID token: each must be
// https (or http on loopback). Otherwise, nothing is opened and the login
// fails at once. The device grant's verification URL and user code are
// printed on the user's terminal: no terminal escapes, and a URL that is
// https.
func TestAttackHostileProviderEndpoints(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		device bool
		edit   func(h *hostileProvider)
		err    string
	}{
		{"authorization endpoint over http off loopback", false, func(h *hostileProvider) { h.meta["authorization_endpoint"] = "http://idp.evil.example/authorize" }, "authorization_endpoint"},
		{"authorization endpoint a file", false, func(h *hostileProvider) { h.meta["authorization_endpoint"] = "file:///etc/passwd" }, "authorization_endpoint"},
		{"authorization endpoint a command line option", false, func(h *hostileProvider) { h.meta["authorization_endpoint"] = "--help" }, "authorization_endpoint"},
		{"authorization endpoint with escapes", false, func(h *hostileProvider) {
			h.meta["authorization_endpoint"] = h.srv.URL + "/a\x1b]52;c;cm0gLXJmIH4K\x07"
		}, "authorization_endpoint"},
		{"token endpoint over http off loopback", false, func(h *hostileProvider) { h.meta["token_endpoint"] = "http://idp.evil.example/token" }, "token_endpoint"},
		{"device endpoint over http off loopback", true, func(h *hostileProvider) { h.meta["device_authorization_endpoint"] = "http://idp.evil.example/device" }, "device_authorization_endpoint"},
		{"device token endpoint over http off loopback", true, func(h *hostileProvider) { h.meta["token_endpoint"] = "http://idp.evil.example/token" }, "token_endpoint"},
		{"verification URL javascript", true, func(h *hostileProvider) { h.device["verification_uri"] = "javascript:alert(1)" }, "verification"},
		{"verification URL with escapes", true, func(h *hostileProvider) { h.device["verification_uri"] = h.srv.URL + "/v\x1b[2J" }, "verification"},
		{"complete verification URL with escapes", true, func(h *hostileProvider) {
			h.device["verification_uri_complete"] = h.srv.URL + "/v?c=\x1b]0;owned\x07"
		}, "verification"},
		{"user code with escapes", true, func(h *hostileProvider) { h.device["user_code"] = "AB\x1b[2J\x1b[H" }, "user code"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHostileProvider(t)
			tt.edit(h)
			var opened atomic.Int64
			w := newPromptWatcher()
			f := &OIDCFlow{Issuer: h.srv.URL, ClientID: "postern", Prompt: w, Timeout: 5 * time.Second,
				OpenBrowser: func(context.Context, string) error { opened.Add(1); return nil }}
			run := f.AuthCode
			if tt.device {
				run = f.Device
			}
			_, err := run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want one naming %q", err, tt.err)
			}
			if n := opened.Load(); n != 0 {
				t.Fatalf("the browser was opened %d times", n)
			}
			if s := w.String(); strings.ContainsAny(s, "\x1b\x07") {
				t.Fatalf("the prompt carries terminal escapes: %q", s)
			}
		})
	}
}

// A local user's own key given with --key: login adds only the
// certificate to ssh-agent, so the key the user added themselves keeps its
// own lifetime (it is not dropped when the certificate expires); removing
// the login takes out the certificates this CA signed for the key, and
// neither the plain key nor a certificate another CA signed for it.
func TestAttackAgentLeavesOwnKeyAlone(t *testing.T) {
	t.Parallel()
	sock := testenv.SSHAgent(t)
	ag, err := DialAgent(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	_, path := testenv.NewKey(t, t.TempDir(), "id_own")
	own, err := LoadLoginKey(path)
	if err != nil {
		t.Fatal(err)
	}
	// The user's own entries: the plain key, and a certificate from
	// another CA (the company's, say), without lifetime.
	otherCA := testenv.NewSigner(t)
	otherCert := &ssh.Certificate{Key: own.Public, CertType: ssh.UserCert, ValidPrincipals: []string{"alice"},
		ValidBefore: ssh.CertTimeInfinity, KeyId: "company"}
	if err := otherCert.SignCert(rand.Reader, otherCA); err != nil {
		t.Fatal(err)
	}
	raw := ag.ag
	for _, c := range []*ssh.Certificate{nil, otherCert} {
		if err := raw.Add(agent.AddedKey{PrivateKey: own.Private, Certificate: c, Comment: "mine"}); err != nil {
			t.Fatal(err)
		}
	}
	short := loginFixture(t, own, shortLife).Cert
	if _, err := ag.Add(own, short, "postern test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if l := testenv.AgentList(t, sock); len(l) != 3 {
		t.Fatalf("ssh-add -l after login: %q", l)
	}
	// The certificate expires; the agent drops it, and only it.
	testenv.WaitFor(t, shortLife+15*time.Second, func() bool { return len(testenv.AgentList(t, sock)) < 3 })
	if l := testenv.AgentList(t, sock); len(l) != 2 {
		t.Fatalf("ssh-add -l after the login's certificate expired: %q; want the user's own key and certificate", l)
	}
	long := loginFixture(t, own, time.Hour).Cert
	if _, err := ag.Add(own, long, "postern test", time.Now()); err != nil {
		t.Fatal(err)
	}
	n, err := ag.RemoveLogin(long, false)
	if err != nil || n != 1 {
		t.Fatalf("removed %d, %v; want the login's certificate", n, err)
	}
	l := testenv.AgentList(t, sock)
	if len(l) != 2 || strings.Count(strings.Join(l, "\n"), "mine") != 2 {
		t.Fatalf("after removing the login: %q; want the user's own two entries", l)
	}
}

// A malicious (or mistaken) bastion's GET /v1/login cannot smuggle ssh
// options through ssh_host, whatever it tries.
func TestAttackLoginInfoSSHHost(t *testing.T) {
	t.Parallel()
	good := validInfo(testenv.NewSigner(t).PublicKey())
	for _, host := range []string{"-oProxyCommand=touch /tmp/owned", "-oProxyCommand=x", "bastion.example.com -oProxyCommand=x",
		"bastion.example.com\tProxyCommand x", "b%h", "b\"c", "b#c", "*.example.com", "!bastion", "b.example.com,other",
		"bastion.\u0435xample.com", strings.Repeat("a", 254), ""} {
		_, err := serve(t, 200, nil, strings.Replace(good, `"ssh_host":"bastion.example.com"`, `"ssh_host":`+mustQuote(host), 1)).LoginInfo(context.Background())
		if err == nil || !strings.Contains(err.Error(), "ssh_host") {
			t.Fatalf("ssh_host %q: %v", host, err)
		}
	}
}

func mustQuote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return string(b)
}

// A login directory another user owns, or one inside a directory others
// may write (and rename entries of), lets them read or swap the key and
// the ssh_config ssh trusts: refused. A sticky directory such as /tmp is
// fine, as OpenSSH judges ~/.ssh.
func TestAttackLoginDirOwnership(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t, "to make a directory another user owns")
	base := t.TempDir()
	mk := func(path string, mode os.FileMode, uid int) string {
		t.Helper()
		if err := os.Mkdir(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		if err := os.Chown(path, uid, -1); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const nobody = 65534
	theirs := mk(filepath.Join(base, "theirs"), 0o700, nobody)
	if err := os.Symlink(theirs, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	open := mk(filepath.Join(base, "open"), 0o777, 0)
	mk(filepath.Join(open, "mine"), 0o700, 0)
	theirParent := mk(filepath.Join(base, "their-parent"), 0o755, nobody)
	mk(filepath.Join(theirParent, "mine"), 0o700, 0)
	sticky := mk(filepath.Join(base, "sticky"), 0o777|os.ModeSticky, 0)
	for _, tt := range []struct {
		dir, err string
	}{
		{theirs, "owned by uid 65534"},
		{filepath.Join(base, "link"), "owned by uid 65534"},
		{filepath.Join(theirs, "new"), "owned by uid 65534"},
		{filepath.Join(open, "mine"), "writable by group or others"},
		{filepath.Join(open, "new"), "writable by group or others"},
		{filepath.Join(theirParent, "mine"), "owned by uid 65534"},
		{filepath.Join(sticky, "mine"), ""},
	} {
		_, err := OpenLoginDir(tt.dir)
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("OpenLoginDir(%s): %v, want %q", tt.dir, err, tt.err)
		}
	}
}

// Files pre-created as symlinks in the login directory (by the user, or
// by whatever could write there before it was 0700) are replaced, never
// written through; logout removes the links, not their targets.
func TestAttackLoginDirSymlinks(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "postern")
	d, err := OpenLoginDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{LoginKeyFile, LoginKeyFile + ".pub", LoginKeyFile + "-cert.pub", SSHConfigFile, KnownHostsFile, LoginStateFile} {
		if err := os.Symlink(victim, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	key, err := GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.SaveLogin(loginFixture(t, key, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, victim); string(got) != "precious\n" {
		t.Fatalf("written through a symlink: %q", got)
	}
	for _, name := range []string{LoginKeyFile, SSHConfigFile, KnownHostsFile, LoginStateFile} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, fi.Mode(), err)
		}
	}
	if _, err := d.Logout(st); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, victim); string(got) != "precious\n" {
		t.Fatalf("logout reached the victim: %q", got)
	}
}

// login.json names the files logout removes: one that names a file
// outside the login directory (edited by hand, or by a tool gone wrong)
// is refused as damaged, and nothing outside is removed.
func TestAttackLogoutStaysInItsDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "postern")
	d, err := OpenLoginDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(victim, []byte("the user's real key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{
		`{"url":"https://b.example.com","certificate_file":"` + victim + `","key_file":"` + victim + `"}`,
		`{"url":"https://b.example.com","certificate_file":"` + filepath.Join(dir, "..", "x-cert.pub") + `","key_file":"` + victim + `"}`,
		`{"url":"https://b.example.com","certificate_file":"` + filepath.Join(dir, "id_ed25519-cert.pub") + `","key_file":"` + victim + `","generated_key":true}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, LoginStateFile), []byte(state), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := d.State()
		if err == nil {
			_, err = d.Logout(st)
		}
		if err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("state %s: %v", state, err)
		}
		if _, err := os.Stat(victim); err != nil {
			t.Fatalf("logout removed a file outside its directory: %v", err)
		}
	}
}

// A redirect must not carry the ID token, the code or the device code
// elsewhere: the bastion's API is never followed (not even to https), and
// a provider's https endpoint is not followed to plain http.
func TestAttackRedirectsDoNotCarrySecrets(t *testing.T) {
	t.Parallel()
	var leaked atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(sink.Close)
	redirect := func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, sink.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}
	api := httptest.NewServer(http.HandlerFunc(redirect))
	t.Cleanup(api.Close)
	key := testenv.NewSigner(t).PublicKey()
	if _, err := (&API{URL: api.URL}).Issue(context.Background(), CertificateRequest{IDToken: "secret-token"}, key); err == nil {
		t.Fatal("a redirect answered the certificate request")
	}
	// The provider over TLS; its token endpoint redirects to plain http.
	var h *hostileProvider
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			redirect(w, r)
			return
		}
		h.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(tlsSrv.Close)
	h = newHostileProvider(t)
	h.meta["issuer"] = tlsSrv.URL
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "device_authorization_endpoint"} {
		h.meta[k] = strings.Replace(h.meta[k].(string), h.srv.URL, tlsSrv.URL, 1)
	}
	h.device["verification_uri"] = tlsSrv.URL + "/verify"
	f := &OIDCFlow{Issuer: tlsSrv.URL, ClientID: "postern", HTTPClient: tlsSrv.Client(), Timeout: 5 * time.Second}
	if _, err := f.Device(context.Background()); err == nil {
		t.Fatal("the device flow ended with a token")
	}
	if n := leaked.Load(); n != 0 {
		t.Fatalf("%d requests followed a redirect to plain http", n)
	}
}
