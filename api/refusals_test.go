package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/api"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// unsigned is a token with alg none and no signature.
func unsigned(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

// tampered is token with its claims replaced and its signature kept.
func tampered(token string, claims map[string]any) string {
	parts := strings.Split(token, ".")
	b, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// Each refusal the issue lists, through the real API: no certificate, a
// clear 4xx message, and a refusal sealed in the audit chain (and
// logged), naming the identity once the token's signature verified.
func TestRefusals(t *testing.T) {
	t.Parallel()
	// More failures than the default limit allows (TestRateLimit).
	r := newRig(t, func(c *api.Config) { c.MaxFailures = 100 })
	_, pub := pubKey(t)
	valid := func(edit func(map[string]any)) string {
		c := r.p.Claims("alice@example.com")
		edit(c)
		return r.p.Sign(c)
	}
	past := time.Now().Add(-2 * time.Hour).Unix()
	for i, tt := range []struct {
		name     string
		req      map[string]any
		status   int
		msg      string
		identity string
	}{
		{"wrong audience", map[string]any{"id_token": valid(func(c map[string]any) { c["aud"] = "another-app" }), "public_key": pub},
			401, `issued to another client, not to "postern-cli"`, "alice@example.com"},
		{"wrong issuer", map[string]any{"id_token": valid(func(c map[string]any) { c["iss"] = "https://idp.evil.example" }), "public_key": pub},
			401, "issued by another provider than the one this bastion trusts", "alice@example.com"},
		{"expired", map[string]any{"id_token": valid(func(c map[string]any) { c["iat"], c["exp"] = past, past+600 }), "public_key": pub},
			401, "has expired; log in again", "alice@example.com"},
		{"tampered signature", map[string]any{"id_token": tampered(r.p.Token("alice@example.com"), r.p.Claims("root@example.com")), "public_key": pub},
			401, "signature does not verify", ""},
		{"unknown key ID", map[string]any{"id_token": testenv.SignToken(testenv.NewES256Key(), "not-published", "ES256", r.p.Claims("alice@example.com")), "public_key": pub},
			401, "unknown key ID", ""},
		{"alg none", map[string]any{"id_token": unsigned(r.p.Claims("alice@example.com")), "public_key": pub},
			401, "not signed (alg none)", ""},
		{"HS256 with the client secret", map[string]any{"id_token": testenv.SignToken([]byte("the-client-secret-of-postern-cli"), "", "HS256", r.p.Claims("alice@example.com")), "public_key": pub},
			401, "signed with a shared secret", ""},
		{"email not verified", map[string]any{"id_token": valid(func(c map[string]any) { c["email_verified"] = false }), "public_key": pub},
			// An unverified address names no one (TestAttackRefusalNamesNoUnverifiedIdentity).
			403, "has not verified this account's email address", ""},
		{"identity claim missing", map[string]any{"id_token": valid(func(c map[string]any) { delete(c, "email") }), "public_key": pub},
			403, `carries no "email" claim`, ""},
		{"malformed public key", map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": "ssh-ed25519 AAAAnotbase64!"},
			400, "public_key is not an OpenSSH public key", ""},
		{"public key is a certificate", map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": certLine(t, r)},
			400, "public_key is a certificate", ""},
		{"TTL above max_ttl", map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub, "ttl": "13h"},
			400, "ttl 13h0m0s is longer than this bastion issues (at most 12h0m0s)", ""},
		{"TTL malformed", map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub, "ttl": "a day"},
			400, "ttl is not a duration", ""},
		{"unknown field", map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub, "principals": []string{"root"}},
			400, "and no other fields", ""},
		{"no token", map[string]any{"public_key": pub},
			400, `needs both "id_token" and "public_key"`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := r.post(t, tt.req)
			if rep.status != tt.status || rep.body["certificate"] != nil {
				t.Fatalf("status %d (want %d): %s", rep.status, tt.status, rep.raw)
			}
			msg, _ := rep.body["error"].(string)
			if !strings.Contains(msg, tt.msg) || len(rep.body) != 1 || rep.header.Get("Content-Type") != "application/json" {
				t.Fatalf("answer %s, want an error with %q", rep.raw, tt.msg)
			}
			if token, _ := tt.req["id_token"].(string); token != "" && (strings.Contains(msg, "root@") || strings.Contains(msg, "evil") || strings.Contains(msg, token[:20])) {
				t.Fatalf("message quotes the token: %q", msg)
			}
			list := r.refusals(t)
			if len(list) != i+1 {
				t.Fatalf("%d refusals recorded after %d requests", len(list), i+1)
			}
			got := list[i]
			if got.Status != tt.status || got.Client != "127.0.0.1" || got.Identity != tt.identity || got.Reason == "" || got.Via != "login" {
				t.Fatalf("refusal record %+v", got)
			}
			// The record holds the TTL as the bastion reads it, never
			// the request's text.
			if want := map[string]string{"TTL above max_ttl": "13h0m0s"}[tt.name]; got.TTL != want {
				t.Fatalf("refusal record's ttl %q, want %q", got.TTL, want)
			}
			if tt.status == 401 && !strings.HasPrefix(got.Key, "SHA256:") {
				t.Fatalf("refusal record names no key: %+v", got)
			}
			if !strings.Contains(r.logs.String(), `"refusal":"`+got.ID+`"`) {
				t.Fatalf("refusal %s not in the audit log", got.ID)
			}
		})
	}
}

// certLine is a certificate from the user CA in authorized_keys form.
func certLine(t *testing.T, r *rig) string {
	cert, err := r.auth.SignUser(testenv.NewSigner(t).PublicKey(), certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
}

// Requests that are not certificate requests: a body too large is 413 (and
// recorded), a wrong method 405, an unknown path 404.
func TestRequestShape(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	big := `{"id_token":"` + strings.Repeat("a", api.MaxBody) + `"}`
	rep := r.do(t, http.MethodPost, "/v1/certificates", strings.NewReader(big))
	if rep.status != http.StatusRequestEntityTooLarge || !strings.Contains(rep.body["error"].(string), "larger than 65536 bytes") {
		t.Fatalf("big body: %d %s", rep.status, rep.raw)
	}
	if list := r.refusals(t); len(list) != 1 || list[0].Status != 413 {
		t.Fatalf("refusals %+v", list)
	}
	rep = r.do(t, http.MethodPost, "/v1/certificates", strings.NewReader(`{"id_token":"a","public_key":"b"} {}`))
	if rep.status != http.StatusBadRequest {
		t.Fatalf("two objects: %d %s", rep.status, rep.raw)
	}
	for _, tt := range []struct{ method, path, allow string }{
		{http.MethodGet, "/v1/certificates", "POST"},
		{http.MethodPut, "/v1/certificates", "POST"},
		{http.MethodPost, "/v1/login", "GET"},
		{http.MethodDelete, "/healthz", "GET"},
	} {
		rep := r.do(t, tt.method, tt.path, nil)
		if rep.status != http.StatusMethodNotAllowed || rep.header.Get("Allow") != tt.allow || !strings.Contains(rep.body["error"].(string), "use "+tt.allow) {
			t.Fatalf("%s %s: %d %v %s", tt.method, tt.path, rep.status, rep.header, rep.raw)
		}
	}
	if rep := r.do(t, http.MethodGet, "/v1/nothing", nil); rep.status != http.StatusNotFound || rep.body["error"] == nil {
		t.Fatalf("unknown path: %d %s", rep.status, rep.raw)
	}
	if rep := r.do(t, http.MethodGet, "/healthz", nil); rep.status != http.StatusOK || string(rep.raw) != "ok\n" {
		t.Fatalf("healthz: %d %q", rep.status, rep.raw)
	}
}

// After MaxFailures failed requests in a window, the address gets 429
// with Retry-After, even with a valid token; the first such refusal is
// recorded, the rest are not (a flood cannot fill the chain). Once the
// window has passed, a valid request succeeds.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	_, pub := pubKey(t)
	bad := map[string]any{"id_token": unsigned(r.p.Claims("alice@example.com")), "public_key": pub}
	for i := range api.DefaultMaxFailures {
		if rep := r.post(t, bad); rep.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i+1, rep.status, rep.raw)
		}
	}
	good := map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub}
	for i := range 5 {
		rep := r.post(t, good)
		retry, err := strconv.Atoi(rep.header.Get("Retry-After"))
		if rep.status != http.StatusTooManyRequests || err != nil || retry < 1 || retry > 60 || rep.body["certificate"] != nil ||
			!strings.Contains(rep.body["error"].(string), "too many failed requests from your address; try again in") {
			t.Fatalf("request %d after the limit: %d %v %s", i+1, rep.status, rep.header, rep.raw)
		}
	}
	list := r.refusals(t)
	if len(list) != api.DefaultMaxFailures+1 || list[len(list)-1].Status != 429 || !strings.Contains(list[len(list)-1].Reason, "rate limited") {
		t.Fatalf("refusals %+v", list)
	}
	r.offset.Store(int64(api.DefaultFailureWindow + time.Second))
	good["id_token"] = r.p.Token("alice@example.com") // the clock moved: a fresh token
	if rep := r.post(t, good); rep.status != http.StatusOK {
		t.Fatalf("after the window: %d %s", rep.status, rep.raw)
	}
}

// A token signed with the provider's new key, after a rotation, is
// accepted.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	_, pub := pubKey(t)
	if rep := r.post(t, map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub}); rep.status != http.StatusOK {
		t.Fatalf("before rotation: %d %s", rep.status, rep.raw)
	}
	r.p.Rotate(false)
	// Past the least time between two fetches of the keys.
	r.offset.Store(int64(11 * time.Second))
	if rep := r.post(t, map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub}); rep.status != http.StatusOK {
		t.Fatalf("after rotation: %d %s", rep.status, rep.raw)
	}
	if n := r.p.KeyFetches(); n != 2 {
		t.Fatalf("%d key fetches, want 2", n)
	}
}

type loginInfo struct {
	Issuer     string   `json:"issuer"`
	ClientID   string   `json:"client_id"`
	Scopes     []string `json:"scopes"`
	Device     bool     `json:"device"`
	SSHHost    string   `json:"ssh_host"`
	SSHPort    int      `json:"ssh_port"`
	KnownHosts []string `json:"known_hosts"`
	TTL        string   `json:"ttl"`
	MaxTTL     string   `json:"max_ttl"`
}

func (r *rig) loginInfo(t *testing.T) loginInfo {
	t.Helper()
	rep := r.do(t, http.MethodGet, "/v1/login", nil)
	var info loginInfo
	dec := json.NewDecoder(bytes.NewReader(rep.raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil || rep.status != http.StatusOK {
		t.Fatalf("%d %s: %v", rep.status, rep.raw, err)
	}
	return info
}

// GET /v1/login announces what the client needs, exactly in the
// contract's fields; known_hosts lines for the host names, or for the
// host the request was sent to, and the host CA's line when the bastion
// presents a host certificate.
func TestLoginInfo(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.Device = true })
	info := r.loginInfo(t)
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(r.auth.HostKey.PublicKey())))
	if info.Issuer != r.p.URL || info.ClientID != "postern-cli" || strings.Join(info.Scopes, " ") != "openid email profile" || !info.Device ||
		info.SSHHost != "bastion.example.com" || info.SSHPort != 2222 || info.TTL != "8h0m0s" || info.MaxTTL != "12h0m0s" ||
		len(info.KnownHosts) != 1 || info.KnownHosts[0] != "[bastion.example.com]:2222 "+hostKey {
		t.Fatalf("login info %+v", info)
	}
}

func TestLoginInfoHosts(t *testing.T) {
	t.Parallel()
	hostCA := testenv.NewSigner(t)
	caLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostCA.PublicKey())))
	for _, tt := range []struct {
		name     string
		names    []string
		hostCert bool
		host     string
		lines    []string // %s: host key
	}{
		{"request host", nil, false, "127.0.0.1", []string{"[127.0.0.1]:2222 %s"}},
		{"host CA", []string{"b.example.com", "b"}, true, "b.example.com", []string{"[b.example.com]:2222,[b]:2222 %s", "@cert-authority [b.example.com]:2222,[b]:2222 " + caLine}},
		{"host CA but no certificate", []string{"b.example.com"}, false, "b.example.com", []string{"[b.example.com]:2222 %s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, func(c *api.Config) {
				c.Authority.HostCA = hostCA
				c.HostNames, c.HostCert = tt.names, tt.hostCert
			})
			info := r.loginInfo(t)
			hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(r.auth.HostKey.PublicKey())))
			want := strings.Replace(strings.Join(tt.lines, "\n"), "%s", hostKey, 1)
			if info.SSHHost != tt.host || strings.Join(info.KnownHosts, "\n") != want || info.Device {
				t.Fatalf("login info %+v\nwant known_hosts\n%s", info, want)
			}
		})
	}
}
