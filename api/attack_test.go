package api_test

import (
	"bytes"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/postern/postern/api"
	"github.com/postern/postern/internal/testenv"
)

// A user of the company's provider, with a valid account, attacks the
// certificate endpoint with tokens the provider could be made to sign, or
// that the user assembles: each is refused (or, where the test says so,
// accepted as documented), and none yields a certificate for another
// identity or for principals and groups that are not the user's.
func TestAttackTokenShapes(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.MaxFailures = 1000 })
	now := time.Now()
	base := func(edit func(map[string]any)) map[string]any {
		c := r.p.Claims("mallory@example.com")
		if edit != nil {
			edit(c)
		}
		return c
	}
	signed := func(edit func(map[string]any)) string { return r.p.Sign(base(edit)) }
	// raw writes the claims in order, as a JSON object, then appends
	// extra members verbatim: duplicate keys a map cannot hold.
	raw := func(extra string, edit func(map[string]any)) string {
		b, _ := json.Marshal(base(edit))
		return r.p.SignRaw(strings.TrimSuffix(string(b), "}")+","+extra+"}", nil)
	}
	attacker := testenv.NewES256Key()
	attackerJWK := jose.JSONWebKey{Key: attacker.Public(), KeyID: "mallory", Algorithm: "ES256"}
	// A key server of the attacker's, for jku and x5u: it must never be
	// asked.
	var asked atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{attackerJWK}})
	}))
	t.Cleanup(evil.Close)
	signWith := func(headers map[jose.HeaderKey]any, claims map[string]any) string {
		headers["kid"] = "mallory"
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: attacker}, &jose.SignerOptions{ExtraHeaders: headers})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(claims)
		jws, err := s.Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := jws.CompactSerialize()
		return out
	}
	jwe := func() string {
		enc, err := jose.NewEncrypter(jose.A128GCM, jose.Recipient{Algorithm: jose.ECDH_ES, Key: attacker.Public()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(base(nil))
		obj, err := enc.Encrypt(b)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := obj.CompactSerialize()
		return out
	}
	future, past := now.Add(time.Hour).Unix(), now.Add(-time.Hour).Unix()
	for _, tt := range []struct {
		name   string
		token  string
		status int
		msg    string
		// identity and principals of an accepted token
		identity string
		groups   string
	}{
		// encoding/json matches struct fields case-insensitively and
		// keeps the last duplicate: go-oidc would read EXP as exp.
		{"exp overridden by a later EXP", raw(fmt.Sprintf(`"EXP":%d`, future), func(c map[string]any) { c["iat"], c["exp"] = past-60, past }),
			401, "a claim twice", "", ""},
		{"iss overridden by a later ISS", raw(fmt.Sprintf(`"ISS":%q`, r.p.URL), func(c map[string]any) { c["iss"] = "https://tenant.evil.example" }),
			401, "a claim twice", "", ""},
		{"aud overridden by a later Aud", raw(fmt.Sprintf(`"Aud":%q`, r.p.ClientID), func(c map[string]any) { c["aud"] = "another-app" }),
			401, "a claim twice", "", ""},
		{"sub overridden by a later Sub", raw(`"Sub":"sub-alice@example.com"`, nil), 401, "a claim twice", "", ""},
		{"sub overridden by a later ſub (long s)", raw(`"ſub":"sub-alice@example.com"`, nil), 401, "a claim twice", "", ""},
		{"email twice", raw(`"email":"alice@example.com"`, nil), 401, "a claim twice", "", ""},
		{"groups twice", raw(`"groups":["admins"]`, func(c map[string]any) { c["groups"] = []string{"dev"} }), 401, "a claim twice", "", ""},
		{"access token (typ at+jwt)", r.p.SignRaw(string(mustJSON(base(nil))), map[string]any{"typ": "at+jwt"}), 401, "access token", "", ""},
		{"access token (typ application/at+jwt)", r.p.SignRaw(string(mustJSON(base(nil))), map[string]any{"typ": "application/at+JWT"}), 401, "access token", "", ""},
		{"crit header", r.p.SignRaw(string(mustJSON(base(nil))), map[string]any{"crit": []string{"exp"}, "exp": future}), 401, "", "", ""},
		{"embedded jwk", signWith(map[jose.HeaderKey]any{"jwk": attackerJWK}, base(nil)), 401, "unknown key ID", "", ""},
		{"jku to the attacker", signWith(map[jose.HeaderKey]any{"jku": evil.URL}, base(nil)), 401, "unknown key ID", "", ""},
		{"x5u to the attacker", signWith(map[jose.HeaderKey]any{"x5u": evil.URL}, base(nil)), 401, "unknown key ID", "", ""},
		{"kid path", testenv.SignToken(attacker, "../../../keys", "ES256", base(nil)), 401, "unknown key ID", "", ""},
		{"HS256 keyed with the provider's public key", testenv.SignToken(r.p.PublicKeyPEM(), r.p.KeyID(), "HS256", base(nil)), 401, "shared secret", "", ""},
		{"JSON serialization", r.p.SignJSON(string(mustJSON(base(nil)))), 401, "not an ID token", "", ""},
		{"JWE", jwe(), 401, "not an ID token", "", ""},
		{"token of another client", signed(func(c map[string]any) { c["aud"] = "other-app" }), 401, "another client", "", ""},
		{"aud array with another client, no azp", signed(func(c map[string]any) { c["aud"] = []string{r.p.ClientID, "other-app"} }), 401, "authorized party", "", ""},
		{"aud array, azp another client", signed(func(c map[string]any) { c["aud"] = []string{r.p.ClientID, "other-app"}; c["azp"] = "other-app" }), 401, "authorized party", "", ""},
		{"aud array, azp this client", signed(func(c map[string]any) { c["aud"] = []string{r.p.ClientID, "other-app"}; c["azp"] = r.p.ClientID }), 200, "", "mallory@example.com", ""},
		{"nbf as a string", signed(func(c map[string]any) { c["nbf"] = "0" }), 401, "not valid yet", "", ""},
		{"iat 25 hours ago, exp ahead", signed(func(c map[string]any) { c["iat"] = now.Add(-25 * time.Hour).Unix() }), 401, "more than 24h0m0s ago", "", ""},
		{"email_verified \"true\" (documented)", signed(func(c map[string]any) { c["email_verified"] = "true" }), 200, "", "mallory@example.com", ""},
		{"email_verified \"True\"", signed(func(c map[string]any) { c["email_verified"] = "True" }), 403, "not verified", "", ""},
		{"email_verified 1", signed(func(c map[string]any) { c["email_verified"] = 1 }), 403, "not verified", "", ""},
		{"email with a comma", signed(func(c map[string]any) { c["email"] = "mallory@example.com,alice@example.com" }), 403, "cannot go in a certificate", "", ""},
		{"email with a newline", signed(func(c map[string]any) { c["email"] = "mallory@example.com\nalice@example.com" }), 403, "cannot go in a certificate", "", ""},
		{"email with NUL", signed(func(c map[string]any) { c["email"] = "alice@example.com\x00mallory" }), 403, "cannot go in a certificate", "", ""},
		{"email with a bidi override", signed(func(c map[string]any) { c["email"] = "moc.elpmaxe@ecila\u202e" }), 403, "cannot go in a certificate", "", ""},
		{"email with a zero-width space", signed(func(c map[string]any) { c["email"] = "alice@example.com\u200b" }), 403, "cannot go in a certificate", "", ""},
		{"email with a no-break space", signed(func(c map[string]any) { c["email"] = "alice@example.com\u00a0" }), 403, "cannot go in a certificate", "", ""},
		// A look-alike is another name: rules match byte for byte
		// (documented).
		{"email look-alike (documented)", signed(func(c map[string]any) { c["email"] = "\u0430lice@example.com" }), 200, "", "\u0430lice@example.com", ""},
		{"groups as an object", signed(func(c map[string]any) { c["groups"] = map[string]any{"admins": true} }), 403, "neither a list of names nor a name", "", ""},
		{"groups as a number", signed(func(c map[string]any) { c["groups"] = 7 }), 403, "neither a list of names nor a name", "", ""},
		{"group with a comma", signed(func(c map[string]any) { c["groups"] = []string{"dev,admins"} }), 403, "cannot go in a certificate", "", ""},
		{"group with a newline", signed(func(c map[string]any) { c["groups"] = []string{"dev\nadmins"} }), 403, "cannot go in a certificate", "", ""},
		{"group with NUL", signed(func(c map[string]any) { c["groups"] = []string{"admins\x00"} }), 403, "cannot go in a certificate", "", ""},
		{"group empty", signed(func(c map[string]any) { c["groups"] = []string{""} }), 403, "cannot go in a certificate", "", ""},
		{"group too long", signed(func(c map[string]any) { c["groups"] = []string{strings.Repeat("g", 257)} }), 403, "cannot go in a certificate", "", ""},
		{"257 groups", signed(func(c map[string]any) { c["groups"] = manyNames(257) }), 403, "at most 256", "", ""},
		{"group nested list", signed(func(c map[string]any) { c["groups"] = []any{[]string{"admins"}} }), 403, "neither a list of names nor a name", "", ""},
		// No principals_claim configured: a principals claim the user
		// can edit changes nothing.
		{"principals claim not configured", signed(func(c map[string]any) { c["principals"] = []string{"root"}; c["unix_logins"] = "root" }),
			200, "", "mallory@example.com", ""},
		{"groups kept as given", signed(func(c map[string]any) { c["groups"] = []string{"dev", "dev"} }), 200, "", "mallory@example.com", "dev"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, pub := pubKey(t)
			rep := r.post(t, map[string]any{"id_token": tt.token, "public_key": pub})
			if rep.status != tt.status {
				t.Fatalf("status %d, want %d: %s", rep.status, tt.status, rep.raw)
			}
			if tt.status != 200 {
				msg, _ := rep.body["error"].(string)
				if rep.body["certificate"] != nil || !strings.Contains(msg, tt.msg) {
					t.Fatalf("answer %s, want an error with %q", rep.raw, tt.msg)
				}
				return
			}
			principals, _ := json.Marshal(rep.body["principals"])
			groups, _ := json.Marshal(rep.body["groups"])
			wantGroups := "[]"
			if tt.groups != "" {
				wantGroups = `["` + tt.groups + `"]`
			}
			if rep.body["identity"] != tt.identity || string(principals) != `["`+tt.identity+`"]` || string(groups) != wantGroups {
				t.Fatalf("certificate for %s", rep.raw)
			}
		})
	}
	if n := asked.Load(); n != 0 {
		t.Fatalf("the bastion fetched keys from the attacker's jku/x5u %d times", n)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func manyNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("g%d", i)
	}
	return out
}

// highS re-encodes an ES256 token's signature as (r, n-s): it verifies
// just as well (Go's ecdsa accepts both), so a token's text is not its
// identity.
func highS(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature %q: %v", parts[2], err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	s.FillBytes(sig[32:])
	parts[2] = base64.RawURLEncoding.EncodeToString(sig)
	return strings.Join(parts, ".")
}

// An ID token is a bearer credential: whoever replays one (read from a
// proxy's log, a shared terminal, a crash dump) gets a certificate for a
// key of their own. The bastion issues one certificate per token, so a
// token already used is refused, re-encoded or not, and a burst of
// requests with one token yields one certificate; a token issued before
// the API started is refused too, since the API cannot know whether it was
// used before.
func TestAttackTokenReplay(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.MaxFailures = 1000 })
	tok := r.p.Token("alice@example.com")
	_, pub1 := pubKey(t)
	if rep := r.post(t, map[string]any{"id_token": tok, "public_key": pub1}); rep.status != http.StatusOK {
		t.Fatalf("first use: %d %s", rep.status, rep.raw)
	}
	_, pub2 := pubKey(t)
	for name, replay := range map[string]map[string]any{
		"another key":          {"id_token": tok, "public_key": pub2},
		"the same key":         {"id_token": tok, "public_key": pub1},
		"signature re-encoded": {"id_token": highS(t, tok), "public_key": pub2},
	} {
		rep := r.post(t, replay)
		if msg, _ := rep.body["error"].(string); rep.status != http.StatusUnauthorized || !strings.Contains(msg, "already used") {
			t.Fatalf("replayed for %s: %d %s", name, rep.status, rep.raw)
		}
	}
	// A burst with one fresh token: one certificate.
	fresh := r.p.Token("alice@example.com")
	const n = 16
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, pub := pubKey(t)
			b, _ := json.Marshal(map[string]any{"id_token": fresh, "public_key": pub})
			resp, err := http.Post(r.url+"/v1/certificates", "application/json", bytes.NewReader(b))
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		if c == http.StatusOK {
			ok++
		}
	}
	issued, err := r.store.Issued(t.Context())
	if ok != 1 || err != nil || len(issued) != 2 {
		t.Fatalf("%d answers 200 to one token sent %d times; %d certificates issued in all (%v)", ok, n, len(issued), err)
	}
	// Issued (signed by the provider) before the API started.
	c := r.p.Claims("alice@example.com")
	c["iat"] = time.Now().Add(-10 * time.Minute).Unix()
	_, pub3 := pubKey(t)
	rep := r.post(t, map[string]any{"id_token": r.p.Sign(c), "public_key": pub3})
	if msg, _ := rep.body["error"].(string); rep.status != http.StatusUnauthorized || !strings.Contains(msg, "before the bastion") {
		t.Fatalf("token from before the start: %d %s", rep.status, rep.raw)
	}
}

// The tokens remembered are bounded: past UsedTokens live ones, a request
// is refused with 503 (never issued unremembered).
func TestAttackUsedTokensBounded(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.UsedTokens = 2 })
	for i := range 3 {
		_, pub := pubKey(t)
		rep := r.post(t, map[string]any{"id_token": r.p.Token(fmt.Sprintf("u%d@example.com", i)), "public_key": pub})
		want := http.StatusOK
		if i == 2 {
			want = http.StatusServiceUnavailable
		}
		if rep.status != want {
			t.Fatalf("login %d: %d %s", i, rep.status, rep.raw)
		}
	}
	// Once the first two tokens have expired, there is room again.
	r.offset.Store(int64(61 * time.Minute))
	_, pub := pubKey(t)
	c := r.p.Claims("u3@example.com")
	c["iat"], c["exp"] = r.now().Unix(), r.now().Add(time.Hour).Unix()
	if rep := r.post(t, map[string]any{"id_token": r.p.Sign(c), "public_key": pub}); rep.status != http.StatusOK {
		t.Fatalf("after expiry: %d %s", rep.status, rep.raw)
	}
}
