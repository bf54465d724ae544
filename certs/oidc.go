package certs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// OIDCSigningAlgs are the ID token signature algorithms accepted: the
// asymmetric ones of RFC 7518. "none" and the HMAC algorithms (HS256, ...)
// are refused: a token signed with the client's secret proves nothing
// about the provider, since anyone who knows the secret can make one.
var OIDCSigningAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.EdDSA,
}

// Defaults of OIDCConfig.
const (
	DefaultIdentityClaim = "email"
	DefaultGroupsClaim   = "groups"
	// DefaultMaxTokenAge bounds how long ago an ID token may have been
	// issued: long-lived ID tokens are not credentials to be kept.
	DefaultMaxTokenAge = 24 * time.Hour
	// DefaultKeyRefresh is the least time between two fetches of the
	// provider's discovery document or keys.
	DefaultKeyRefresh = 10 * time.Second
	// oidcTimeout bounds one request to the provider.
	oidcTimeout = 10 * time.Second
)

// Bounds on what a token may put in a certificate.
const (
	maxNameLen    = 256
	maxPrincipals = 64
	maxGroups     = 256
)

// OIDCConfig configures an OIDC verifier. Issuer and ClientID are
// required; the zero value of every other field is documented.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document and its tokens' iss claim give it.
	Issuer string
	// ClientID is the client the tokens must be issued to (aud, azp).
	ClientID string
	// IdentityClaim names the claim that holds the identity, the
	// certificate's key ID and first principal. "" means
	// DefaultIdentityClaim; with "email", email_verified must be true.
	IdentityClaim string
	// GroupsClaim names the claim that holds the groups (a list of
	// names, or one name). "" means DefaultGroupsClaim.
	GroupsClaim string
	// PrincipalsClaim, if set, names a claim whose names (a list, or
	// one name) become principals after the identity.
	PrincipalsClaim string
	// Skew is the clock difference tolerated for iat and nbf; 0 means
	// DefaultSkew.
	Skew time.Duration
	// MaxTokenAge refuses tokens issued longer ago; 0 means
	// DefaultMaxTokenAge.
	MaxTokenAge time.Duration
	// KeyRefresh is the least time between fetches of the discovery
	// document or the key set (a token naming an unknown key causes
	// one); 0 means DefaultKeyRefresh.
	KeyRefresh time.Duration
	// Client reaches the provider; nil means one with a 10 s timeout.
	// Answers are read up to 1 MiB either way.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// OIDCLogin is who a verified ID token says the user is.
type OIDCLogin struct {
	// Identity is the identity claim's value: the certificate's key ID
	// and first principal.
	Identity string
	// Subject is the token's sub claim.
	Subject string
	// Principals are Identity, then the principals claim's names.
	Principals []string
	// Groups are the groups claim's names.
	Groups []string
	// Token names the token: the SHA-256 of its claims, which its
	// signature covers (a signature can be re-encoded; the claims
	// cannot).
	Token [sha256.Size]byte
	// IssuedAt is the token's iat; Until is when Verify stops accepting
	// it (its expiry, or MaxTokenAge after iat if sooner).
	IssuedAt, Until time.Time
}

// LoginRefusal says which way a token was refused.
type LoginRefusal int

const (
	// TokenRefused: the token is not valid here (signature, issuer,
	// audience, time, nonce, algorithm).
	TokenRefused LoginRefusal = iota + 1
	// IdentityRefused: the token is valid but names no usable identity
	// (missing claim, unverified email, names a certificate cannot
	// carry).
	IdentityRefused
	// ProviderUnavailable: the provider could not be reached to check
	// the token.
	ProviderUnavailable
)

// LoginError is a refused ID token. Reason is for the audit trail,
// Message for the requester; neither quotes the token.
type LoginError struct {
	Kind    LoginRefusal
	Reason  string
	Message string
	// Identity is the identity claim's value once the signature has
	// verified (and it is a name a certificate could carry, and for
	// email, verified), "" before.
	Identity string
	// Subject is the token's sub once the signature has verified (if at
	// most 255 printable ASCII characters), "" before.
	Subject string
}

func (e *LoginError) Error() string { return e.Reason }

// UserMessage is safe to show to the requester.
func (e *LoginError) UserMessage() string { return e.Message }

func tokenRefused(reason, msg string) *LoginError {
	return &LoginError{Kind: TokenRefused, Reason: reason, Message: msg}
}

// OIDC verifies ID tokens from one provider. It discovers the provider
// on first use (or Discover) and keeps its keys, fetched again when a
// token names one it lacks. It is safe for concurrent use.
type OIDC struct {
	cfg    OIDCConfig
	client *http.Client
	algs   []jose.SignatureAlgorithm

	disc chan struct{} // a one-slot lock on discovery that a context can give up on
	// Set by the discovery that succeeds, read under disc or after
	// ready is closed.
	verifier *oidc.IDTokenVerifier
	keys     *keySet
	ready    chan struct{} // closed once verifier and keys are set
	tried    time.Time     // last discovery attempt (under disc)
	lastErr  error         // of that attempt (under disc)
}

// NewOIDC checks cfg and returns a verifier; it does not reach the
// provider yet.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("oidc: issuer and client ID are required")
	}
	if cfg.IdentityClaim == "" {
		cfg.IdentityClaim = DefaultIdentityClaim
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}
	if cfg.Skew <= 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.MaxTokenAge <= 0 {
		cfg.MaxTokenAge = DefaultMaxTokenAge
	}
	if cfg.KeyRefresh <= 0 {
		cfg.KeyRefresh = DefaultKeyRefresh
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	base := cfg.Client
	if base == nil {
		base = &http.Client{Timeout: oidcTimeout}
	}
	client := *base
	tr := client.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	client.Transport = cappedTransport{tr}
	if client.CheckRedirect == nil {
		client.CheckRedirect = noDowngrade
	}
	o := &OIDC{cfg: cfg, client: &client, disc: make(chan struct{}, 1), ready: make(chan struct{})}
	for _, a := range OIDCSigningAlgs {
		o.algs = append(o.algs, jose.SignatureAlgorithm(a))
	}
	return o, nil
}

// noDowngrade follows at most 10 redirects (as net/http does), none from
// https to anything else.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect from https to %s refused", req.URL.Scheme)
	}
	return nil
}

// Issuer is the provider's issuer URL.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

// Discover reads the provider's discovery document, unless that was done,
// or tried within the refresh interval (then it returns that attempt's
// error). It checks that the document names the configured issuer.
func (o *OIDC) Discover(ctx context.Context) error {
	select {
	case <-o.ready:
		return nil
	default:
	}
	select {
	case o.disc <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-o.disc }()
	select {
	case <-o.ready:
		return nil
	default:
	}
	now := o.cfg.Now()
	if !o.tried.IsZero() && now.Sub(o.tried) < o.cfg.KeyRefresh {
		return o.lastErr
	}
	o.tried = now
	o.lastErr = o.discover(ctx)
	if ctx.Err() != nil {
		o.tried = time.Time{} // given up on, not failed: the next call tries again
	}
	return o.lastErr
}

func (o *OIDC) discover(ctx context.Context) error {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.client), o.cfg.Issuer)
	if err != nil {
		return &providerError{fmt.Errorf("discover %s: %w", o.cfg.Issuer, err)}
	}
	var doc struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&doc); err != nil || doc.JWKS == "" {
		return &providerError{fmt.Errorf("discover %s: no jwks_uri in the discovery document", o.cfg.Issuer)}
	}
	// Keys over plain HTTP from an https issuer could be anyone's.
	if strings.HasPrefix(o.cfg.Issuer, "https://") && !strings.HasPrefix(doc.JWKS, "https://") {
		return &providerError{fmt.Errorf("discover %s: jwks_uri %q is not https", o.cfg.Issuer, doc.JWKS)}
	}
	o.keys = &keySet{url: doc.JWKS, client: o.client, refresh: o.cfg.KeyRefresh, now: o.cfg.Now}
	// go-oidc checks the algorithm and parses the claims; the key set
	// checks the signature. Issuer, audience and times are checked
	// here, after the signature, so that a refusal can name who asked
	// and never quotes the token.
	o.verifier = oidc.NewVerifier(o.cfg.Issuer, o, &oidc.Config{
		SupportedSigningAlgs: OIDCSigningAlgs,
		SkipClientIDCheck:    true, SkipExpiryCheck: true, SkipIssuerCheck: true,
	})
	close(o.ready)
	return nil
}

// sigResult carries the key set's verdict past go-oidc, which keeps only
// the text of the errors it wraps.
type sigResult struct{ err error }

type sigResultKey struct{}

// VerifySignature implements oidc.KeySet for the verifier made by
// discover.
func (o *OIDC) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, o.algs)
	if err == nil && len(jws.Signatures) != 1 {
		err = errors.New("not exactly one signature")
	}
	if err == nil {
		var p []byte
		if p, err = o.keys.verify(ctx, jws); err == nil {
			return p, nil
		}
	}
	if res, ok := ctx.Value(sigResultKey{}).(*sigResult); ok {
		res.err = err
	}
	return nil, err
}

// header is what the bastion reads of a token before its signature
// verifies: the algorithm, to say why it refuses one, and the type. Member
// names are matched exactly, as go-jose does.
func header(raw string) (alg, typ string, ok bool) {
	h, _, found := strings.Cut(raw, ".")
	if !found || strings.Count(raw, ".") != 2 {
		return "", "", false
	}
	data, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		return "", "", false
	}
	var v map[string]json.RawMessage
	if json.Unmarshal(data, &v) != nil {
		return "", "", false
	}
	if json.Unmarshal(v["alg"], &alg) != nil {
		return "", "", false
	}
	if t, ok := v["typ"]; ok && json.Unmarshal(t, &typ) != nil {
		return "", "", false
	}
	return alg, typ, true
}

// checkType refuses a token typed as something other than a plain JWT:
// an access token (RFC 9068 section 4 types them "at+jwt" so that they
// cannot pass for ID tokens), a logout token, and the like. ID tokens
// carry no typ, or "JWT" (RFC 7519 section 5.1; the "application/" prefix
// may be left out, case does not count).
func checkType(typ string) *LoginError {
	t := strings.TrimPrefix(strings.ToLower(typ), "application/")
	switch {
	case typ == "" || t == "jwt":
		return nil
	case t == "at+jwt":
		return tokenRefused("token is an access token (typ at+jwt)",
			"the token sent is an access token, not an ID token: send the id_token the provider returned")
	}
	return tokenRefused("token is typed as something other than an ID token (typ header)",
		"the token sent is typed as something other than an ID token (its typ header): send the id_token the provider returned")
}

// Verify checks raw, an ID token, and returns who it names. nonce, if not
// empty, must equal the token's nonce claim. A refusal is a *LoginError.
func (o *OIDC) Verify(ctx context.Context, raw, nonce string) (*OIDCLogin, error) {
	alg, typ, ok := header(raw)
	if !ok {
		return nil, tokenRefused("id_token is not a JWS compact serialization",
			"id_token is not an ID token (a signed JWT): send the id_token the provider returned, unchanged")
	}
	if err := checkAlg(alg); err != nil {
		return nil, err
	}
	if err := checkType(typ); err != nil {
		return nil, err
	}
	// Discovery serves every request after this one: it is seen
	// through even if this client goes away (the HTTP client's timeout
	// bounds it).
	if err := o.Discover(context.WithoutCancel(ctx)); err != nil {
		return nil, &LoginError{Kind: ProviderUnavailable, Reason: err.Error(),
			Message: "the identity provider cannot be reached to check the token; try again later, or tell an admin if it persists"}
	}
	res := &sigResult{}
	tok, err := o.verifier.Verify(context.WithValue(ctx, sigResultKey{}, res), raw)
	if err != nil {
		return nil, signatureRefusal(res.err, err)
	}
	var payload json.RawMessage
	var claims map[string]json.RawMessage
	if tok.Claims(&payload) != nil || json.Unmarshal(payload, &claims) != nil {
		return nil, tokenRefused("claims are not a JSON object", "the ID token's claims are not a JSON object; log in again")
	}
	if err := checkClaimNames(payload); err != nil {
		return nil, err
	}
	ident := identityOf(claims, o.cfg.IdentityClaim)
	sub := ""
	if len(tok.Subject) <= 255 && printableASCII(tok.Subject) {
		sub = tok.Subject
	}
	if err := o.checkToken(tok, claims, nonce); err != nil {
		err.Identity, err.Subject = ident, sub
		return nil, err
	}
	login, lerr := o.mapClaims(tok, claims)
	if lerr != nil {
		lerr.Identity, lerr.Subject = ident, sub
		return nil, lerr
	}
	login.Token = sha256.Sum256(payload)
	login.IssuedAt = tok.IssuedAt
	login.Until = tok.Expiry
	if end := tok.IssuedAt.Add(o.cfg.MaxTokenAge); end.Before(login.Until) {
		login.Until = end
	}
	return login, nil
}

// checkAlg refuses what OIDCSigningAlgs leaves out, saying why.
func checkAlg(alg string) *LoginError {
	switch {
	case strings.EqualFold(alg, "none"):
		return tokenRefused("unsigned token (alg none)", "the ID token is not signed (alg none); this bastion accepts only tokens signed by the provider's keys")
	case strings.HasPrefix(alg, "HS"):
		return tokenRefused("token signed with a shared secret ("+alg+")",
			"the ID token is signed with a shared secret (HMAC); this bastion accepts only asymmetric signatures ("+strings.Join(OIDCSigningAlgs, ", ")+"): set the provider to sign ID tokens with one")
	}
	for _, a := range OIDCSigningAlgs {
		if a == alg {
			return nil
		}
	}
	return tokenRefused("signature algorithm not accepted", "the ID token's signature algorithm is not one this bastion accepts ("+strings.Join(OIDCSigningAlgs, ", ")+")")
}

// signatureRefusal explains a failure of go-oidc's Verify: sig is the key
// set's verdict, if it gave one.
func signatureRefusal(sig, err error) *LoginError {
	var pe *providerError
	switch {
	case errors.Is(sig, errUnknownKey):
		return tokenRefused("token signed with an unknown key ID",
			"the ID token is signed with a key the provider does not publish (unknown key ID); log in again")
	case errors.Is(sig, errBadSignature):
		return tokenRefused("signature does not verify",
			"the ID token's signature does not verify: it was altered, or not issued by the provider; log in again")
	case errors.As(sig, &pe):
		return &LoginError{Kind: ProviderUnavailable, Reason: pe.Error(),
			Message: "the identity provider's keys cannot be fetched to check the token; try again later, or tell an admin if it persists"}
	case sig != nil:
		return tokenRefused("malformed token", "the ID token is malformed; send the id_token the provider returned, unchanged")
	}
	_ = err // go-oidc's own text may quote the token
	return tokenRefused("claims unreadable", "the ID token's claims cannot be read; log in again")
}
