package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/api"
	"github.com/postern/postern/recorder"
)

// TestIssueRatePerIdentity: one identity gets its burst of certificates,
// each for a token of its own, then 429 with Retry-After and a message
// naming it; the first refusal of the bout is sealed, the rest logged
// when their count doubles.
// A replayed token takes nothing from the limit, another identity is not
// held up, the refusals do not count against the address, and the token
// refused for the rate is good once the interval has passed. The
// interval (an hour) is far longer than the test: no refill but the one
// the clock is moved for.
func TestIssueRatePerIdentity(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.IssueBurst, c.IssueInterval = 3, time.Hour })
	token := func(who string) string {
		c := r.p.Claims(who)
		now := r.now()
		c["iat"], c["exp"] = now.Unix(), now.Add(3*time.Hour).Unix()
		return r.p.Sign(c)
	}
	_, pub := pubKey(t)
	post := func(tok string) reply { return r.post(t, map[string]any{"id_token": tok, "public_key": pub}) }
	first := token("alice@example.com")
	if rep := post(first); rep.status != http.StatusOK {
		t.Fatalf("first certificate: %d %s", rep.status, rep.raw)
	}
	for range 3 {
		if rep := post(first); rep.status != http.StatusUnauthorized {
			t.Fatalf("replayed token: %d %s", rep.status, rep.raw)
		}
	}
	for i := range 2 {
		if rep := post(token("alice@example.com")); rep.status != http.StatusOK {
			t.Fatalf("certificate %d of the burst: %d %s", i+2, rep.status, rep.raw)
		}
	}
	limited := token("alice@example.com")
	const want = "too many certificates for alice@example.com: this bastion issues at most 3 to one identity at once, then one every 1h0m0s"
	for i := range api.DefaultMaxFailures {
		rep := post(limited)
		retry, err := strconv.Atoi(rep.header.Get("Retry-After"))
		if rep.status != http.StatusTooManyRequests || err != nil || retry < 3000 || retry > 3600 || rep.body["error"] != want {
			t.Fatalf("request %d past the burst: %d Retry-After %q %s", i+1, rep.status, rep.header.Get("Retry-After"), rep.raw)
		}
	}
	// Had the refusals counted as the address's failures, it would be
	// refused by now.
	if rep := post(token("bob@example.com")); rep.status != http.StatusOK {
		t.Fatalf("bob while alice is limited: %d %s", rep.status, rep.raw)
	}
	limits := func() (n int) {
		list, err := r.store.Refusals(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range list {
			if ref.Status == http.StatusTooManyRequests {
				if ref.Identity != "alice@example.com" || !strings.Contains(ref.Reason, "issue rate limited: a burst of 3 certificates, then one every 1h0m0s") || ref.Key == "" {
					t.Fatalf("refusal record %+v", ref)
				}
				n++
			}
		}
		return n
	}
	logs := r.logs.String()
	// Of the 10, the 1st is sealed, the 2nd, 4th and 8th logged.
	if n := limits(); n != 1 || strings.Count(logs, `"status":429`) != 4 || strings.Count(logs, `"sealed":false`) != 3 || !strings.Contains(logs, `"refusals":8`) {
		t.Fatalf("%d sealed refusals for the rate, want 1; log:\n%s", n, logs)
	}
	r.offset.Store(int64(time.Hour))
	if rep := post(limited); rep.status != http.StatusOK {
		t.Fatalf("the refused token an interval later: %d %s", rep.status, rep.raw)
	}
	if rep := post(token("alice@example.com")); rep.status != http.StatusTooManyRequests {
		t.Fatalf("past the one refilled: %d %s", rep.status, rep.raw)
	}
	if n := limits(); n != 2 {
		t.Fatalf("%d sealed refusals for the rate after a second bout, want 2", n)
	}
	issued, err := r.store.Issued(t.Context())
	if err != nil || len(issued) != 5 {
		t.Fatalf("issued %d (%v), want 5", len(issued), err)
	}
	rep, err := recorder.VerifyStore(t.Context(), r.store, recorder.VerifyOptions{Key: r.store.PublicKey()})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify %+v %v", rep, err)
	}
}
