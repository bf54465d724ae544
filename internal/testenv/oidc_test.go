package testenv

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// verifyToken checks the ID token's signature against the provider's
// published key set and returns its kid and claims.
func verifyToken(t *testing.T, p *OIDCProvider, token string) (string, map[string]any) {
	t.Helper()
	resp, err := http.Get(p.Issuer + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := set.Key(kid)
	if len(keys) != 1 {
		t.Fatalf("kid %q: %d keys published", kid, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return kid, claims
}

func TestOIDCProviderIssuesIDTokens(t *testing.T) {
	t.Parallel()
	p := OIDC(t, OIDCOptions{IDTokenLifetime: 10 * time.Minute})
	ctx := context.Background()

	// Discovery names what a client needs.
	resp, err := http.Get(p.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc map[string]any
	json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if disc["issuer"] != p.Issuer || disc["device_authorization_endpoint"] != p.Issuer+"/device_authorization" {
		t.Fatalf("discovery: %v", disc)
	}

	tok, err := p.IDToken(ctx, p.ClientID, "alice", "n-123")
	if err != nil {
		t.Fatal(err)
	}
	kid, c := verifyToken(t, p, tok)
	if kid != p.KeyID() || c["iss"] != p.Issuer || c["sub"] != "alice" || c["nonce"] != "n-123" ||
		c["email"] != "alice@example.com" || c["email_verified"] != true {
		t.Fatalf("claims %v (kid %s, want %s)", c, kid, p.KeyID())
	}
	if aud, _ := c["aud"].([]any); !slices.Contains(aud, any(p.ClientID)) {
		t.Fatalf("aud %v", c["aud"])
	}
	if g, _ := c["groups"].([]any); len(g) != 2 || g[0] != "dev" {
		t.Fatalf("groups %v", c["groups"])
	}
	if life := c["exp"].(float64) - c["iat"].(float64); life < 590 || life > 610 {
		t.Fatalf("lifetime %vs, want 600", life)
	}

	// bob's email is not verified, carol has none.
	tok, err = p.IDToken(ctx, "other-app", "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, c = verifyToken(t, p, tok); c["email_verified"] != false || c["aud"].([]any)[0] != "other-app" {
		t.Fatalf("bob: %v", c)
	}
	tok, err = p.IDToken(ctx, p.ClientID, "carol", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, c = verifyToken(t, p, tok); c["email"] != nil || c["groups"] != nil {
		t.Fatalf("carol: %v", c)
	}

	if _, err := p.IDToken(ctx, "unknown-client", "alice", ""); err == nil {
		t.Fatal("an unknown client got a token")
	}
	if _, err := p.IDToken(ctx, p.ClientID, "mallory", ""); err == nil || !strings.Contains(err.Error(), "no user") {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestOIDCProviderRejectsWrongPassword(t *testing.T) {
	t.Parallel()
	p := OIDC(t, OIDCOptions{Users: []OIDCUser{{Username: "dave", Password: "right"}}})
	conf := &oauth2.Config{ClientID: p.ClientID, RedirectURL: "http://127.0.0.1:9/callback",
		Endpoint: oauth2.Endpoint{AuthURL: p.Issuer + "/authorize"}, Scopes: []string{"openid"}}
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	c := p.browser()
	pg, err := fetch(context.Background(), c, http.MethodGet, authURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := hiddenInput.FindStringSubmatch(pg.body)
	if m == nil || m[1] != "id" {
		t.Fatalf("sign-in page: %s", pg.body)
	}
	id := m[2]
	res, err := fetch(context.Background(), c, http.MethodPost, p.Issuer+"/login",
		url.Values{"id": {id}, "username": {"dave"}, "password": {"wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.status != http.StatusUnauthorized || res.leave != nil || !strings.Contains(res.body, "wrong user name or password") {
		t.Fatalf("wrong password: status %d, redirect %v, body %s", res.status, res.leave, res.body)
	}
}

func TestOIDCProviderKeyRotation(t *testing.T) {
	t.Parallel()
	p := OIDC(t, OIDCOptions{})
	ctx := context.Background()
	first := p.KeyID()
	newKID, err := p.RotateKey(false)
	if err != nil {
		t.Fatal(err)
	}
	if newKID == first || p.KeyID() != newKID {
		t.Fatalf("rotation: %s → %s (now %s)", first, newKID, p.KeyID())
	}
	tok, err := p.IDToken(ctx, p.ClientID, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	if kid, _ := verifyToken(t, p, tok); kid != newKID {
		t.Fatalf("signed with %s, want the new key %s", kid, newKID)
	}
	keys := func() []string {
		resp, err := http.Get(p.Issuer + "/keys")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set jose.JSONWebKeySet
		json.NewDecoder(resp.Body).Decode(&set)
		var ids []string
		for _, k := range set.Keys {
			ids = append(ids, k.KeyID)
		}
		slices.Sort(ids)
		return ids
	}
	want := []string{first, newKID}
	slices.Sort(want)
	if got := keys(); !slices.Equal(got, want) {
		t.Fatalf("published %v, want both %v", got, want)
	}
	third, err := p.RotateKey(true)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(); !slices.Equal(got, []string{third}) {
		t.Fatalf("after dropping old keys: %v, want %v", got, third)
	}
}

func TestOIDCProviderDeviceGrant(t *testing.T) {
	t.Parallel()
	p := OIDC(t, OIDCOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conf := &oauth2.Config{ClientID: p.ClientID, Scopes: []string{"openid", "email"},
		Endpoint: oauth2.Endpoint{DeviceAuthURL: p.Issuer + "/device_authorization",
			TokenURL: p.Issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	for _, deny := range []bool{false, true} {
		da, err := conf.DeviceAuth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if da.VerificationURI != p.Issuer+"/device" || da.UserCode == "" || da.Interval != 1 {
			t.Fatalf("device authorization: %+v", da)
		}
		if err := p.CompleteDevice(ctx, da.VerificationURI, "WRONG-CODE", "alice", deny); err == nil {
			t.Fatal("a wrong user code was accepted")
		}
		if err := p.CompleteDevice(ctx, da.VerificationURI, da.UserCode, "alice", deny); err != nil {
			t.Fatal(err)
		}
		tok, err := conf.DeviceAccessToken(ctx, da)
		if deny {
			if err == nil || !strings.Contains(err.Error(), "access_denied") {
				t.Fatalf("denied device: token %v, err %v", tok, err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		id, _ := tok.Extra("id_token").(string)
		if _, c := verifyToken(t, p, id); c["email"] != "alice@example.com" {
			t.Fatalf("device token claims %v", c)
		}
		// A device code yields one token.
		if _, err := conf.DeviceAccessToken(ctx, da); err == nil {
			t.Fatal("the device code was exchanged twice")
		}
	}
}
