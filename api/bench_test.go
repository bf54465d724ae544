package api_test

import (
	"net/http"
	"testing"

	"github.com/postern/postern/api"
)

// BenchmarkIssue: one certificate per request, through the HTTP API on
// loopback, recorded and sealed in a real index (one fsync'd transaction
// each).
func BenchmarkIssue(b *testing.B) {
	r := newRig(b, nil)
	_, pub := pubKey(b)
	req := map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub}
	for b.Loop() {
		if rep := r.post(b, req); rep.status != http.StatusOK {
			b.Fatalf("%d %s", rep.status, rep.raw)
		}
	}
}

// BenchmarkRefuse: one refused request (a forged signature) per
// iteration, each refusal sealed in the chain.
func BenchmarkRefuse(b *testing.B) {
	r := newRig(b, func(c *api.Config) { c.MaxFailures = 1 << 30 })
	_, pub := pubKey(b)
	req := map[string]any{"id_token": tampered(r.p.Token("alice@example.com"), r.p.Claims("root@example.com")), "public_key": pub}
	for b.Loop() {
		if rep := r.post(b, req); rep.status != http.StatusUnauthorized {
			b.Fatalf("%d %s", rep.status, rep.raw)
		}
	}
}

// BenchmarkRateLimited: a request from an address past its limit: 429,
// nothing written.
func BenchmarkRateLimited(b *testing.B) {
	r := newRig(b, func(c *api.Config) { c.MaxFailures = 1 })
	_, pub := pubKey(b)
	req := map[string]any{"id_token": "x", "public_key": pub}
	r.post(b, req)
	for b.Loop() {
		if rep := r.post(b, req); rep.status != http.StatusTooManyRequests {
			b.Fatalf("%d %s", rep.status, rep.raw)
		}
	}
}
