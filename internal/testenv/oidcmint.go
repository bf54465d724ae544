package testenv

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	jose "github.com/go-jose/go-jose/v4"
)

// TokenIssuer is an OpenID provider for tests of ID token verification:
// go-oidc's oidctest serves its discovery document and key set on
// loopback, and it signs whatever claims a test asks for, including
// tokens no real provider would issue (expired, for another audience,
// with a key it does not publish). Tests of login flows use a full
// provider instead; tests of the bastion's side take any issuer URL.
// It is safe for concurrent use.
type TokenIssuer struct {
	// URL is the issuer URL (http://127.0.0.1:PORT).
	URL string
	// ClientID is the audience Claims puts in tokens.
	ClientID string

	srv     atomic.Pointer[oidctest.Server] // swapped whole by Rotate
	fetches atomic.Int64

	mu  sync.Mutex // guards key and kid
	key crypto.Signer
	kid string
	gen int
}

// NewTokenIssuer starts a provider with one ES256 key, stopped at the end
// of the test.
func NewTokenIssuer(t testing.TB, clientID string) *TokenIssuer {
	t.Helper()
	p := &TokenIssuer{ClientID: clientID}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			p.fetches.Add(1)
		}
		p.srv.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p.URL = hs.URL
	p.Rotate(false)
	return p
}

// KeyFetches counts the requests for the key set so far.
func (p *TokenIssuer) KeyFetches() int64 { return p.fetches.Load() }

// NewES256Key returns a fresh ECDSA P-256 signing key.
func NewES256Key() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// Rotate makes a new signing key the one Sign uses and publishes it; keep
// says whether the key set still publishes the old one too.
func (p *TokenIssuer) Rotate(keep bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gen++
	key, kid := NewES256Key(), "key-"+strconv.Itoa(p.gen)
	pubs := []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: kid, Algorithm: oidc.ES256}}
	if keep && p.key != nil {
		pubs = append(pubs, oidctest.PublicKey{PublicKey: p.key.Public(), KeyID: p.kid, Algorithm: oidc.ES256})
	}
	s := &oidctest.Server{PublicKeys: pubs, Algorithms: []string{oidc.ES256}}
	s.SetIssuer(p.URL)
	p.srv.Store(s)
	p.key, p.kid = key, kid
}

// Claims returns the claims of a valid ID token for a verified email
// address, issued now and valid for an hour, with a random jti (as real
// providers make each token differ, with jti, nonce or at_hash); tests
// edit them.
func (p *TokenIssuer) Claims(email string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": p.URL, "aud": p.ClientID, "sub": "sub-" + email,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"email": email, "email_verified": true, "jti": rand.Text(),
	}
}

// Sign signs claims with the current key.
func (p *TokenIssuer) Sign(claims map[string]any) string {
	p.mu.Lock()
	key, kid := p.key, p.kid
	p.mu.Unlock()
	return SignToken(key, kid, oidc.ES256, claims)
}

// Token is a valid ID token for email.
func (p *TokenIssuer) Token(email string) string { return p.Sign(p.Claims(email)) }

// SignToken signs claims as a JWS with key (any key go-jose takes,
// including an HMAC secret as []byte), naming kid and alg in its header.
func SignToken(key any, kid, alg string, claims map[string]any) string {
	data, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return oidctest.SignIDToken(key, kid, alg, string(data))
}

// SignRaw signs payload, taken as it is (duplicate keys, odd spacing),
// with the current key, adding headers to the protected header (typ,
// crit, jwk, jku, ...): tokens a provider could be made to sign.
func (p *TokenIssuer) SignRaw(payload string, headers map[string]any) string {
	p.mu.Lock()
	key, kid := p.key, p.kid
	p.mu.Unlock()
	extra := map[jose.HeaderKey]any{"kid": kid}
	for k, v := range headers {
		extra[jose.HeaderKey(k)] = v
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, &jose.SignerOptions{ExtraHeaders: extra})
	if err != nil {
		panic(err)
	}
	jws, err := s.Sign([]byte(payload))
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}

// SignJSON is SignRaw in the JWS JSON serialization (RFC 7515 section
// 7.2), which ID tokens never use.
func (p *TokenIssuer) SignJSON(payload string) string {
	p.mu.Lock()
	key, kid := p.key, p.kid
	p.mu.Unlock()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{"kid": kid}})
	if err != nil {
		panic(err)
	}
	jws, err := s.Sign([]byte(payload))
	if err != nil {
		panic(err)
	}
	return jws.FullSerialize()
}

// PublicKeyPEM is the current signing key's public half, PEM-encoded:
// what an attacker would try as an HMAC secret (alg confusion).
func (p *TokenIssuer) PublicKeyPEM() []byte {
	p.mu.Lock()
	key := p.key
	p.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// KeyID is the key ID of the current signing key.
func (p *TokenIssuer) KeyID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kid
}
