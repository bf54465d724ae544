package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/api"
	"github.com/postern/postern/internal/testenv"
)

// A user past their burst keeps sending the token the limit refused (it
// is not used up, and the refusal does not count against the address):
// each request is refused, but the log must not grow a line for each, or
// one user with one token fills the bastion's disk. The first refusal is
// sealed; the repeats are logged at most about log2(n) times, with their
// count.
func TestAttackIssueRefusalLogFlood(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.IssueBurst, c.IssueInterval = 2, time.Hour })
	_, pub := pubKey(t)
	for i := range 2 {
		if rep := r.post(t, map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub}); rep.status != http.StatusOK {
			t.Fatalf("certificate %d of the burst: %d %s", i+1, rep.status, rep.raw)
		}
	}
	limited := r.p.Token("alice@example.com")
	const n = 200
	for i := range n {
		if rep := r.post(t, map[string]any{"id_token": limited, "public_key": pub}); rep.status != http.StatusTooManyRequests ||
			!strings.HasPrefix(rep.body["error"].(string), "too many certificates for alice@example.com") {
			t.Fatalf("request %d past the burst: %d %s", i+1, rep.status, rep.raw)
		}
	}
	logs := r.logs.String()
	lines := strings.Count(logs, `"event":"cert_refused"`)
	if lines < 2 || lines > 10 || !strings.Contains(logs, `"refusals":128`) {
		t.Fatalf("%d refused requests logged in %d lines, want 2 to 10 (the count doubling); log:\n%s", n, lines, logs)
	}
	list, err := r.store.Refusals(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("%d refusals sealed (%v), want 1", len(list), err)
	}
}

// A token already used for a certificate, sent again once the identity's
// burst is spent, is refused as used (401, counted against the address),
// not told to wait for the rate (429 and a Retry-After after which it is
// refused anyway).
func TestAttackIssueLimitReplayedToken(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.IssueBurst, c.IssueInterval = 1, time.Hour })
	_, pub := pubKey(t)
	used := r.p.Token("alice@example.com")
	if rep := r.post(t, map[string]any{"id_token": used, "public_key": pub}); rep.status != http.StatusOK {
		t.Fatalf("the certificate: %d %s", rep.status, rep.raw)
	}
	rep := r.post(t, map[string]any{"id_token": used, "public_key": pub})
	if rep.status != http.StatusUnauthorized || rep.header.Get("Retry-After") != "" || !strings.Contains(rep.body["error"].(string), "already used") {
		t.Fatalf("the used token again, burst spent: %d Retry-After %q %s", rep.status, rep.header.Get("Retry-After"), rep.raw)
	}
}

// Requests of one identity racing each other, each with a token of its
// own, or with a token already used (refused before it takes from the
// limit: were it to take and give back, it could take the last
// certificate of the burst from a fresh token racing it): exactly the
// burst is issued.
func TestAttackIssueLimitRace(t *testing.T) {
	t.Parallel()
	const burst, fresh, replays = 3, 24, 8
	r := newRig(t, func(c *api.Config) { c.IssueBurst, c.IssueInterval = burst, time.Hour })
	_, pub := pubKey(t)
	used := r.p.Token("alice@example.com")
	if rep := r.post(t, map[string]any{"id_token": used, "public_key": pub}); rep.status != http.StatusOK {
		t.Fatalf("the first certificate: %d %s", rep.status, rep.raw)
	}
	tokens := make([]string, 0, fresh+replays)
	for range fresh {
		tokens = append(tokens, r.p.Token("alice@example.com"))
	}
	for range replays {
		tokens = append(tokens, used)
	}
	statuses := make([]int, len(tokens))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, tok := range tokens {
		wg.Go(func() {
			<-start
			statuses[i] = r.post(t, map[string]any{"id_token": tok, "public_key": pub}).status
		})
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != burst-1 || count[http.StatusOK]+count[http.StatusTooManyRequests]+count[http.StatusUnauthorized] != len(tokens) {
		t.Fatalf("statuses %v, want %d issued", count, burst-1)
	}
	issued, err := r.store.Issued(t.Context())
	if err != nil || len(issued) != burst {
		t.Fatalf("issued %d (%v), want %d", len(issued), err, burst)
	}
}

// One account at the provider (one sub) whose identity claim is spelled
// differently from token to token: a provider that echoes the name as
// typed (case, Unicode normalisation), or an address its holder changes
// (alice+1@…, verified by their own mailbox). Each spelling is another
// identity, but the account's certificates are counted together.
func TestAttackIssueLimitIdentitySpelling(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.IssueBurst, c.IssueInterval = 1, time.Hour })
	_, pub := pubKey(t)
	token := func(email string) string {
		c := r.p.Claims(email)
		c["sub"] = "sub-alice"
		return r.p.Sign(c)
	}
	if rep := r.post(t, map[string]any{"id_token": token("alice@example.com"), "public_key": pub}); rep.status != http.StatusOK {
		t.Fatalf("the certificate: %d %s", rep.status, rep.raw)
	}
	for _, email := range []string{"Alice@example.com", "ALICE@EXAMPLE.COM", "alice+1@example.com", "ame\u0301lie@example.com", "am\u00e9lie@example.com"} {
		if rep := r.post(t, map[string]any{"id_token": token(email), "public_key": pub}); rep.status != http.StatusTooManyRequests {
			t.Fatalf("the same account as %q: %d %s", email, rep.status, rep.raw)
		}
	}
	// Another account is not held up.
	if rep := r.post(t, map[string]any{"id_token": r.p.Token("bob@example.com"), "public_key": pub}); rep.status != http.StatusOK {
		t.Fatalf("bob: %d %s", rep.status, rep.raw)
	}
}

// Tokens that name alice but are refused (expired, for another client,
// from another issuer, signed by another key, tampered with) take nothing
// from her limit, however many: it is asked only once a token is verified.
func TestAttackIssueLimitUnverified(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.IssueBurst, c.IssueInterval = 1, time.Hour })
	other := testenv.NewTokenIssuer(t, "postern-cli")
	_, pub := pubKey(t)
	edit := func(f func(map[string]any)) string {
		c := r.p.Claims("alice@example.com")
		c["sub"] = "sub-alice"
		f(c)
		return r.p.Sign(c)
	}
	good := edit(func(map[string]any) {})
	parts := strings.Split(good, ".")
	bad := []string{
		edit(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		edit(func(c map[string]any) { c["aud"] = "another-client" }),
		edit(func(c map[string]any) { c["iss"] = other.URL }),
		other.Token("alice@example.com"),
		parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4] + "AAAA",
	}
	// From addresses other than alice's, each within its failure limit.
	for round := range 3 {
		c := fromAddr(fmt.Sprintf("127.0.9.%d", 2+round))
		for i, tok := range bad {
			resp, err := c.Post(r.url+"/v1/certificates", "application/json", bytes.NewReader(mustJSON(map[string]any{"id_token": tok, "public_key": pub})))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("bad token %d: %d", i, resp.StatusCode)
			}
		}
	}
	if rep := r.post(t, map[string]any{"id_token": good, "public_key": pub}); rep.status != http.StatusOK {
		t.Fatalf("alice's own token after the refused ones: %d %s", rep.status, rep.raw)
	}
}
