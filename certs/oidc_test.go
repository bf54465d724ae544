package certs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

func newTestOIDC(t *testing.T, p *testenv.TokenIssuer, edit func(*OIDCConfig)) *OIDC {
	t.Helper()
	cfg := OIDCConfig{Issuer: p.URL, ClientID: p.ClientID}
	if edit != nil {
		edit(&cfg)
	}
	o, err := NewOIDC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOIDCVerifyMapsClaims(t *testing.T) {
	t.Parallel()
	p := testenv.NewTokenIssuer(t, "postern")
	o := newTestOIDC(t, p, func(c *OIDCConfig) { c.PrincipalsClaim = "logins" })
	for _, tt := range []struct {
		name       string
		edit       func(map[string]any)
		principals []string
		groups     []string
	}{
		{"plain", func(map[string]any) {}, []string{"alice@example.com"}, nil},
		{"groups list", func(c map[string]any) { c["groups"] = []string{"ops", "dba", "ops"} }, []string{"alice@example.com"}, []string{"ops", "dba"}},
		{"one group", func(c map[string]any) { c["groups"] = "ops" }, []string{"alice@example.com"}, []string{"ops"}},
		{"null groups", func(c map[string]any) { c["groups"] = nil }, []string{"alice@example.com"}, nil},
		{"principals", func(c map[string]any) { c["logins"] = []string{"alice", "alice@example.com", "deploy"} }, []string{"alice@example.com", "alice", "deploy"}, nil},
		{"email_verified string", func(c map[string]any) { c["email_verified"] = "true" }, []string{"alice@example.com"}, nil},
		{"two audiences with azp", func(c map[string]any) { c["aud"] = []string{"other", "postern"}; c["azp"] = "postern" }, []string{"alice@example.com"}, nil},
		{"nonce", func(c map[string]any) { c["nonce"] = "n-1" }, []string{"alice@example.com"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := p.Claims("alice@example.com")
			tt.edit(c)
			nonce := ""
			if n, ok := c["nonce"].(string); ok {
				nonce = n
			}
			l, err := o.Verify(t.Context(), p.Sign(c), nonce)
			if err != nil {
				t.Fatal(err)
			}
			if l.Identity != "alice@example.com" || l.Subject != "sub-alice@example.com" || !slices.Equal(l.Principals, tt.principals) || !slices.Equal(l.Groups, tt.groups) {
				t.Fatalf("login %+v", l)
			}
		})
	}
}

// unsigned returns a token with alg none and no signature.
func unsigned(claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
	b, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

// tamper replaces the payload of a signed token, keeping its signature.
func tamper(token string, claims map[string]any) string {
	parts := strings.Split(token, ".")
	b, _ := json.Marshal(claims)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestOIDCVerifyRefuses(t *testing.T) {
	t.Parallel()
	p := testenv.NewTokenIssuer(t, "postern")
	o := newTestOIDC(t, p, nil)
	now := time.Now()
	edit := func(f func(map[string]any)) string {
		c := p.Claims("alice@example.com")
		f(c)
		return p.Sign(c)
	}
	for _, tt := range []struct {
		name, token, nonce string
		kind               LoginRefusal
		msg                string
		identity           bool // the refusal names alice
	}{
		{"garbage", "not-a-token", "", TokenRefused, "not an ID token", false},
		{"alg none", unsigned(p.Claims("alice@example.com")), "", TokenRefused, "not signed (alg none)", false},
		{"HS256", testenv.SignToken([]byte("client-secret-client-secret-1234"), "k", "HS256", p.Claims("alice@example.com")), "", TokenRefused, "shared secret", false},
		{"unknown key", testenv.SignToken(testenv.NewES256Key(), "other", "ES256", p.Claims("alice@example.com")), "", TokenRefused, "unknown key ID", false},
		{"tampered", tamper(p.Token("alice@example.com"), p.Claims("root@example.com")), "", TokenRefused, "signature does not verify", false},
		{"wrong issuer", edit(func(c map[string]any) { c["iss"] = "https://evil.example.com" }), "", TokenRefused, "another provider", true},
		{"wrong audience", edit(func(c map[string]any) { c["aud"] = "other" }), "", TokenRefused, "another client", true},
		{"foreign azp", edit(func(c map[string]any) { c["azp"] = "other" }), "", TokenRefused, "authorized party", true},
		{"two audiences, no azp", edit(func(c map[string]any) { c["aud"] = []string{"postern", "other"} }), "", TokenRefused, "authorized party", true},
		{"expired", edit(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }), "", TokenRefused, "expired", true},
		{"no iat", edit(func(c map[string]any) { delete(c, "iat") }), "", TokenRefused, "no issue time", true},
		{"iat future", edit(func(c map[string]any) { c["iat"] = now.Add(10 * time.Minute).Unix() }), "", TokenRefused, "in the future", true},
		{"iat old", edit(func(c map[string]any) { c["iat"] = now.Add(-25 * time.Hour).Unix() }), "", TokenRefused, "more than 24h0m0s ago", true},
		{"nbf future", edit(func(c map[string]any) { c["nbf"] = now.Add(10 * time.Minute).Unix() }), "", TokenRefused, "not valid yet", true},
		{"nonce differs", edit(func(c map[string]any) { c["nonce"] = "a" }), "b", TokenRefused, "nonce", true},
		{"nonce missing", p.Token("alice@example.com"), "b", TokenRefused, "nonce", true},
		{"no sub", edit(func(c map[string]any) { delete(c, "sub") }), "", TokenRefused, "subject (sub)", true},
		{"sub with control", edit(func(c map[string]any) { c["sub"] = "a\x1bb" }), "", TokenRefused, "subject (sub)", true},
		{"email not verified", edit(func(c map[string]any) { c["email_verified"] = false }), "", IdentityRefused, "not verified", false},
		{"email_verified absent", edit(func(c map[string]any) { delete(c, "email_verified") }), "", IdentityRefused, "not verified", false},
		{"identity missing", edit(func(c map[string]any) { delete(c, "email") }), "", IdentityRefused, `no "email" claim`, false},
		{"identity not a string", edit(func(c map[string]any) { c["email"] = 7 }), "", IdentityRefused, "not a name", false},
		{"identity with space", edit(func(c map[string]any) { c["email"] = "alice smith@example.com" }), "", IdentityRefused, "cannot go in a certificate", false},
		{"group with control", edit(func(c map[string]any) { c["groups"] = []string{"ops", "a\x1bb"} }), "", IdentityRefused, "cannot go in a certificate", true},
		{"groups object", edit(func(c map[string]any) { c["groups"] = map[string]any{"a": 1} }), "", IdentityRefused, "neither a list", true},
		{"too many groups", edit(func(c map[string]any) {
			var g []string
			for i := range maxGroups + 1 {
				g = append(g, "g"+strings.Repeat("x", i%5)+string(rune('a'+i%26)))
			}
			c["groups"] = g
		}), "", IdentityRefused, "at most 256", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := o.Verify(t.Context(), tt.token, tt.nonce)
			var le *LoginError
			if !errors.As(err, &le) || l != nil {
				t.Fatalf("login %+v, err %v", l, err)
			}
			if le.Kind != tt.kind || !strings.Contains(le.Message, tt.msg) {
				t.Fatalf("refusal kind %d message %q, want %d with %q", le.Kind, le.Message, tt.kind, tt.msg)
			}
			if got := le.Identity == "alice@example.com"; got != tt.identity {
				t.Fatalf("refusal identity %q", le.Identity)
			}
			if strings.Contains(le.Message, "root@") || strings.Contains(le.Message, "evil") || strings.Contains(le.Reason, "evil") {
				t.Fatalf("refusal quotes the token: %q / %q", le.Message, le.Reason)
			}
		})
	}
}

// A token signed with a key the provider starts publishing later is
// accepted at once: a key ID not looked for yet may fetch the keys again
// within the refresh interval, newKIDFetches times a minute at most.
// Tokens with a key ID already looked for, or a known key's ID and a bad
// signature, fetch nothing however many arrive.
func TestOIDCKeyRotationAndRefreshBound(t *testing.T) {
	t.Parallel()
	p := testenv.NewTokenIssuer(t, "postern")
	var offset atomic.Int64
	o := newTestOIDC(t, p, func(c *OIDCConfig) {
		c.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	})
	if _, err := o.Verify(t.Context(), p.Token("alice@example.com"), ""); err != nil {
		t.Fatal(err)
	}
	wantFetches := func(want int64, when string) {
		t.Helper()
		if n := p.KeyFetches(); n != want {
			t.Fatalf("%d key fetches %s, want %d", n, when, want)
		}
	}
	wantFetches(1, "for the first token")
	forged := func(kid string) string {
		return testenv.SignToken(testenv.NewES256Key(), kid, "ES256", p.Claims("alice@example.com"))
	}
	for range 20 {
		o.Verify(t.Context(), forged("forged"), "")
		o.Verify(t.Context(), tamper(p.Token("alice@example.com"), p.Claims("bob@example.com")), "")
	}
	wantFetches(2, "after 20 forged tokens naming one unknown key and 20 tampered ones")
	p.Rotate(false)
	if l, err := o.Verify(t.Context(), p.Token("alice@example.com"), ""); err != nil || l.Identity != "alice@example.com" {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	wantFetches(3, "after the rotation")
	for i := range 20 {
		o.Verify(t.Context(), forged(fmt.Sprint("forged-", i)), "")
	}
	wantFetches(1+newKIDFetches, "after 20 forged tokens each naming another unknown key")
	offset.Store(int64(DefaultKeyRefresh + time.Second))
	o.Verify(t.Context(), forged("forged"), "")
	wantFetches(2+newKIDFetches, "once the refresh interval has passed")
}

// A provider that cannot be reached, that names another issuer, or whose
// answers are too long, makes refusals of kind ProviderUnavailable.
func TestOIDCProviderUnavailable(t *testing.T) {
	t.Parallel()
	p := testenv.NewTokenIssuer(t, "postern")
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"issuer":"` + strings.Repeat("x", maxOIDCResponse) + `"}`))
	}))
	t.Cleanup(huge.Close)
	for _, tt := range []struct{ name, issuer string }{
		{"unreachable", dead.URL},
		{"other issuer", p.URL + "/"},
		{"huge", huge.URL},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := NewOIDC(OIDCConfig{Issuer: tt.issuer, ClientID: "postern"})
			if err != nil {
				t.Fatal(err)
			}
			c := p.Claims("alice@example.com")
			c["iss"] = tt.issuer
			_, err = o.Verify(t.Context(), p.Sign(c), "")
			var le *LoginError
			if !errors.As(err, &le) || le.Kind != ProviderUnavailable || !strings.Contains(le.Message, "cannot be reached") {
				t.Fatalf("err %v", err)
			}
			// Within the refresh interval, no new attempt.
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			if err := o.Discover(ctx); err == nil || err.Error() != le.Reason {
				t.Fatalf("second discovery: %v", err)
			}
		})
	}
}

// An https provider's keys are fetched over https only: a discovery
// document naming an http jwks_uri, or a redirect to http, is refused.
func TestOIDCNoDowngrade(t *testing.T) {
	t.Parallel()
	plain := testenv.NewTokenIssuer(t, "postern")
	var srvURL string
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/http-keys/.well-known/openid-configuration":
			w.Write([]byte(`{"issuer":"` + srvURL + `/http-keys","jwks_uri":"` + plain.URL + `/keys"}`))
		case "/redirect/.well-known/openid-configuration":
			http.Redirect(w, r, plain.URL+"/.well-known/openid-configuration", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(tlsSrv.Close)
	srvURL = tlsSrv.URL
	for _, tt := range []struct{ path, msg string }{
		{"/http-keys", "is not https"},
		{"/redirect", "redirect from https to http refused"},
	} {
		o, err := NewOIDC(OIDCConfig{Issuer: tlsSrv.URL + tt.path, ClientID: "postern", Client: tlsSrv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Discover(t.Context()); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Fatalf("%s: %v, want %q", tt.path, err, tt.msg)
		}
	}
}
