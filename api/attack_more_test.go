package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/api"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// The client address is the connection's peer: forwarding headers neither
// move the source-address option nor escape the failure limit, and new
// source ports for each request count as the same client.
func TestAttackAddressHeadersAndPorts(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.SourceAddress = true })
	_, pub := pubKey(t)
	post := func(c *http.Client, body map[string]any, headers map[string]string) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, r.url+"/v1/certificates", bytes.NewReader(mustJSON(body)))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	spoof := map[string]string{"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.7", "Forwarded": "for=203.0.113.7", "True-Client-IP": "203.0.113.7"}
	code, out := post(fromAddr("127.0.0.5"), map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub}, spoof)
	if code != http.StatusOK {
		t.Fatalf("%d %v", code, out)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(out["certificate"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	if src := pk.(*ssh.Certificate).CriticalOptions["source-address"]; src != "127.0.0.5" {
		t.Fatalf("source-address %q, want the peer 127.0.0.5", src)
	}
	// Each request on a new connection (a new source port), each with
	// another forwarded address: the 11th is 429 all the same.
	c := fromAddr("127.0.0.6")
	for i := range api.DefaultMaxFailures + 1 {
		h := map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i)}
		code, out := post(c, map[string]any{"id_token": "bad", "public_key": pub}, h)
		want := http.StatusUnauthorized
		if i == api.DefaultMaxFailures {
			want = http.StatusTooManyRequests
		}
		if code != want {
			t.Fatalf("request %d: %d %v", i+1, code, out)
		}
	}
}

// A TTL is never stretched past max_ttl, however written.
func TestAttackTTLBounds(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.MaxFailures = 100 })
	for _, ttl := range []string{"12h0m0.000000001s", "9223372036854775807ns", "99999999999999999999h", "-1h", "0s", "1e3h", "1d", " 1h", "1h ", "+13h", "720m1s"} {
		_, pub := pubKey(t)
		rep := r.post(t, map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub, "ttl": ttl})
		if rep.status != http.StatusBadRequest || rep.body["certificate"] != nil {
			t.Fatalf("ttl %q: %d %s", ttl, rep.status, rep.raw)
		}
	}
	_, pub := pubKey(t)
	rep := r.post(t, map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub, "ttl": "720m"})
	var got struct {
		ValidAfter  time.Time `json:"valid_after"`
		ValidBefore time.Time `json:"valid_before"`
	}
	json.Unmarshal(rep.raw, &got)
	if rep.status != http.StatusOK || got.ValidBefore.Sub(got.ValidAfter) != 12*time.Hour+certs.Backdate {
		t.Fatalf("ttl at max_ttl: %d %s", rep.status, rep.raw)
	}
}

// Tokens naming ever new key IDs (each a forgery) make the bastion fetch
// the provider's keys at most once, plus 4 early fetches a minute for key
// IDs not looked for yet, within the refresh interval.
func TestAttackKeyFetchGate(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.MaxFailures = 1000 })
	_, pub := pubKey(t)
	forger := testenv.NewES256Key()
	for i := range 40 {
		rep := r.post(t, map[string]any{"id_token": testenv.SignToken(forger, fmt.Sprintf("kid-%d", i), "ES256", r.p.Claims("alice@example.com")), "public_key": pub})
		if rep.status != http.StatusUnauthorized {
			t.Fatalf("forgery %d: %d %s", i, rep.status, rep.raw)
		}
	}
	if n := r.p.KeyFetches(); n > 5 {
		t.Fatalf("40 forged key IDs made %d key fetches, want at most 5", n)
	}
}

// mallory's account at the provider carries alice's address, not
// verified: the refusal must not name alice (the provider does not vouch
// for the address), and names the account that asked (its subject).
func TestAttackRefusalNamesNoUnverifiedIdentity(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	_, pub := pubKey(t)
	c := r.p.Claims("alice@example.com")
	c["sub"], c["email_verified"] = "sub-mallory", false
	rep := r.post(t, map[string]any{"id_token": r.p.Sign(c), "public_key": pub})
	if rep.status != http.StatusForbidden {
		t.Fatalf("%d %s", rep.status, rep.raw)
	}
	list := r.refusals(t)
	if len(list) != 1 || list[0].Identity != "" || list[0].Subject != "sub-mallory" {
		t.Fatalf("refusal %+v: want no identity, subject sub-mallory", list)
	}
	if logs := r.logs.String(); strings.Contains(logs, `"identity":"alice@example.com"`) || !strings.Contains(logs, `"subject":"sub-mallory"`) {
		t.Fatalf("audit log names alice or not the subject:\n%s", logs)
	}
	// A subject that could forge a line is not recorded.
	c = r.p.Claims("mallory@example.com")
	c["sub"], c["aud"] = "sub\n{\"event\":\"cert_issued\"}", "another-app"
	r.post(t, map[string]any{"id_token": r.p.Sign(c), "public_key": pub})
	if list := r.refusals(t); len(list) != 2 || list[1].Subject != "" || list[1].Identity != "mallory@example.com" {
		t.Fatalf("refusal %+v", list[1])
	}
}
