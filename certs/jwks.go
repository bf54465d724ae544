package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Why not go-oidc's RemoteKeySet: it fetches the provider's keys again
// after every signature that fails, so each forged or tampered token sent
// to the bastion would make it call the provider, and it reads the answer
// whole. keySet fetches at most once per refresh interval, whatever
// arrives, plus at most newKIDFetches times per minute for a key ID it has
// not fetched for yet (a provider that rotates just after a fetch), and
// reads at most maxOIDCResponse bytes.

// maxOIDCResponse caps what the bastion reads of the provider's discovery
// document and key set.
const maxOIDCResponse = 1 << 20

// newKIDFetches bounds the fetches a minute made early, within the
// refresh interval, for key IDs not yet looked for.
const newKIDFetches = 4

// maxTriedKIDs bounds the key IDs a keySet remembers having fetched for.
const maxTriedKIDs = 64

// minRSABits is the smallest RSA key accepted from a key set.
const minRSABits = 2048

// Errors a keySet's verify reports; the verifier turns them into
// refusals.
var (
	errUnknownKey   = errors.New("signed with a key the provider does not publish")
	errBadSignature = errors.New("signature does not verify")
)

// providerError is a failure to reach the provider or read what it sent.
type providerError struct{ err error }

func (e *providerError) Error() string { return "identity provider: " + e.err.Error() }
func (e *providerError) Unwrap() error { return e.err }

// keySet holds the signing keys the provider publishes at its jwks_uri,
// fetched when a token names a key it lacks (key rotation, OpenID Connect
// Core 10.1.1), at most once per refresh interval. It is safe for
// concurrent use.
type keySet struct {
	url     string
	client  *http.Client
	refresh time.Duration
	now     func() time.Time

	mu       sync.Mutex // guards keys, fetched, inflight and fetchErr
	keys     []jose.JSONWebKey
	fetched  time.Time       // last fetch attempt, successful or not
	inflight chan struct{}   // closed when the running fetch ends; nil when none runs
	fetchErr error           // of the last fetch, set before inflight is closed
	tried    map[string]bool // key IDs fetched for since the keys last changed
	early    []time.Time     // fetches made early for a new key ID, within the last minute
}

// verify checks the signature of jws (already parsed with the accepted
// algorithms) and returns its payload. The keys are fetched again if none
// verifies and the last fetch is older than the refresh interval.
func (k *keySet) verify(ctx context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	h := jws.Signatures[0].Header
	k.mu.Lock()
	keys := k.keys
	k.mu.Unlock()
	if p, ok := verifyWith(jws, keys, h); ok {
		return p, nil
	}
	keys, err := k.fetch(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	if p, ok := verifyWith(jws, keys, h); ok {
		return p, nil
	}
	for _, key := range keys {
		if h.KeyID != "" && key.KeyID == h.KeyID {
			return nil, errBadSignature
		}
	}
	if h.KeyID == "" && len(keys) > 0 {
		return nil, errBadSignature
	}
	return nil, errUnknownKey
}

// verifyWith tries the keys that match h's key ID (all when it names
// none) and algorithm.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, h jose.Header) ([]byte, bool) {
	for _, key := range keys {
		if h.KeyID != "" && key.KeyID != h.KeyID || key.Algorithm != "" && key.Algorithm != h.Algorithm {
			continue
		}
		if p, err := jws.Verify(key.Key); err == nil {
			return p, true
		}
	}
	return nil, false
}

// fetch returns the keys after fetching them again, unless a fetch was
// attempted within the refresh interval and kid is not a new key ID the
// minute's early fetches allow: then the keys as they are. A fetch already
// running is waited for, not repeated.
func (k *keySet) fetch(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	if k.inflight == nil && !k.fetched.IsZero() && k.now().Sub(k.fetched) < k.refresh && !k.earlyFetch(kid) {
		keys, err := k.keys, k.fetchErr
		k.mu.Unlock()
		if len(keys) > 0 {
			err = nil
		}
		return keys, err
	}
	if wait := k.inflight; wait != nil {
		k.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.keys, k.fetchErr
	}
	done := make(chan struct{})
	k.inflight, k.fetched = done, k.now()
	k.mu.Unlock()
	// This caller fetches for all who wait meanwhile, and sees it
	// through even if its own client goes away; the HTTP client's
	// timeout bounds it.
	keys, err := k.get(context.WithoutCancel(ctx))
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil {
		k.keys = keys
	}
	if k.tried == nil || len(k.tried) >= maxTriedKIDs {
		k.tried = make(map[string]bool)
	}
	k.tried[kid] = true
	k.fetchErr = err
	k.inflight = nil
	close(done)
	return k.keys, err
}

// earlyFetch says whether a fetch within the refresh interval may be made
// for kid, and counts it. mu is held.
func (k *keySet) earlyFetch(kid string) bool {
	if kid == "" || k.tried[kid] {
		return false
	}
	now := k.now()
	recent := k.early[:0]
	for _, t := range k.early {
		if now.Sub(t) < time.Minute {
			recent = append(recent, t)
		}
	}
	k.early = recent
	if len(k.early) >= newKIDFetches {
		return false
	}
	k.early = append(k.early, now)
	return true
}

// cappedTransport reads at most maxOIDCResponse bytes of each answer, for
// go-oidc's discovery, which reads the answer whole.
type cappedTransport struct{ base http.RoundTripper }

func (t cappedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: maxOIDCResponse}
	return resp, nil
}

// cappedBody fails a read past its cap instead of truncating silently.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, err := b.rc.Read(one[:]); n == 0 && err != nil {
			return 0, err // io.EOF: exactly at the cap
		}
		return 0, fmt.Errorf("answer longer than %d bytes", maxOIDCResponse)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }

// get reads the key set at k.url, keeping the asymmetric public keys
// meant for signatures and skipping what it does not understand (RFC 7517
// section 5: other key types are to be ignored).
func (k *keySet) get(ctx context.Context) ([]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, k.client, k.url, &set); err != nil {
		return nil, err
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var key jose.JSONWebKey
		if json.Unmarshal(raw, &key) != nil || !key.Valid() || !key.IsPublic() || key.Use != "" && key.Use != "sig" {
			continue
		}
		switch pub := key.Key.(type) {
		case *rsa.PublicKey:
			if pub.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, &providerError{fmt.Errorf("no usable signing key at %s", k.url)}
	}
	return keys, nil
}

// getJSON decodes the JSON document at url into v, reading at most
// maxOIDCResponse bytes.
func getJSON(ctx context.Context, client *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return &providerError{err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return &providerError{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &providerError{fmt.Errorf("GET %s: %s", url, resp.Status)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxOIDCResponse+1))
	if err != nil {
		return &providerError{fmt.Errorf("GET %s: %w", url, err)}
	}
	if len(body) > maxOIDCResponse {
		return &providerError{fmt.Errorf("GET %s: answer longer than %d bytes", url, maxOIDCResponse)}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &providerError{fmt.Errorf("GET %s: not JSON: %w", url, err)}
	}
	return nil
}
