package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/postern/postern/api"
)

// Defaults and bounds of the login section.
const (
	defaultLoginTTL = 8 * time.Hour
	// maxLoginTTL caps ttl and max_ttl, as `ca sign --ttl` is capped.
	maxLoginTTL = 7 * 24 * time.Hour
	// maxIssueBurst and maxIssueInterval bound issue_burst and
	// issue_interval: past them the limit no longer limits, or no
	// longer lets anyone log in twice a day.
	maxIssueBurst    = 1000
	maxIssueInterval = 24 * time.Hour
)

// defaultScopes are asked for when the section names none: the identity
// claim email needs the email scope.
var defaultScopes = []string{"openid", "email", "profile"}

// defaultLoginExtensions are the certificate extensions login grants when
// the section names none: what `ca sign` grants by default.
var defaultLoginExtensions = []string{"permit-pty", "permit-port-forwarding"}

// loginExtensions are those login may grant: agent forwarding only when
// the section names it (as `ca sign --agent-forwarding`); X11 never.
var loginExtensions = append(slices.Clone(defaultLoginExtensions), "permit-agent-forwarding")

// Login is the login section: an HTTP API (served by `postern serve` on
// its own listener) that turns an OpenID Connect login into a short-lived
// user certificate. Parse fills every field.
type Login struct {
	// Listen is the API's host:port. Required.
	Listen string
	// TLSCert and TLSKey are the PEM files the API serves TLS with
	// (absolute; relative ones are resolved against the config file's
	// directory). Required unless PlainHTTP.
	TLSCert, TLSKey string
	// PlainHTTP serves plain HTTP; only allowed when Listen is a
	// loopback address.
	PlainHTTP bool
	// Issuer is the OpenID provider's issuer URL (https, or http on
	// loopback). Required.
	Issuer string
	// ClientID is the client the users' ID tokens are issued to.
	// Required.
	ClientID string
	// Scopes are announced to the client. Default openid, email,
	// profile; they must include openid.
	Scopes []string
	// IdentityClaim names the identity (key ID and first principal).
	// Default "email".
	IdentityClaim string
	// GroupsClaim names the groups. Default "groups".
	GroupsClaim string
	// PrincipalsClaim, if set, names more principals.
	PrincipalsClaim string
	// TTL is a certificate's default validity: 8h unless set. MaxTTL
	// is the longest a client may ask for: TTL unless set. Both at
	// most 7 days.
	TTL, MaxTTL time.Duration
	// SourceAddress binds each certificate to the requester's address.
	SourceAddress bool
	// Extensions are granted in each certificate. Default permit-pty
	// and permit-port-forwarding; permit-agent-forwarding only if
	// listed.
	Extensions []string
	// Device says the client should offer the device grant (RFC 8628).
	Device bool
	// RedirectPort, if not 0, is the loopback port clients take the
	// provider's redirect on, for providers that match redirect URIs
	// with their port (Okta). 0: a random port (RFC 8252).
	RedirectPort int
	// PublicClientSecret is announced to clients and sent by them to the
	// provider's token endpoint, for providers that demand the secret of
	// an installed app although it cannot be kept (Google). Anyone may
	// read it from GET /v1/login: it must not be a confidential client's.
	PublicClientSecret string
	// IssueBurst certificates may be issued to one identity at once,
	// then one every IssueInterval (see api.Config). Default 5 and 20s;
	// IssueBurst 1 to 1000, IssueInterval more than 0 and at most 24h.
	IssueBurst    int
	IssueInterval time.Duration
}

// loginKeys are the keys of the login section.
var loginKeys = []string{"listen", "tls_cert", "tls_key", "plain_http", "issuer", "client_id", "scopes",
	"identity_claim", "groups_claim", "principals_claim", "ttl", "max_ttl", "source_address", "extensions", "device",
	"redirect_port", "public_client_secret", "issue_burst", "issue_interval"}

// login reads the login section; nil when it is absent. It reports every
// problem in the section.
func (p *parser) login(f field) (*Login, error) {
	if !f.set() {
		return nil, nil
	}
	m, err := p.mapping(f.val, f.path, loginKeys...)
	if err != nil {
		return nil, err
	}
	l := NewLogin()
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	check(p.loginListen(m, l))
	l.Issuer, err = p.requiredWhat(m.get("issuer"), checkIssuer, "the OpenID provider's issuer URL, like https://login.example.com/realms/staff")
	check(err)
	l.ClientID, err = p.requiredWhat(m.get("client_id"), checkToken("client ID"), "the client ID the provider gave the postern login client")
	check(err)
	if f := m.get("scopes"); f.set() {
		l.Scopes, err = p.strList(f, checkToken("scope"))
		if err == nil && !slices.Contains(l.Scopes, "openid") {
			err = p.errorf(f.line(), f.path, "must include openid (OpenID Connect needs it), like [openid, email, profile]")
		}
		check(err)
	}
	for _, c := range []struct {
		key string
		to  *string
	}{{"identity_claim", &l.IdentityClaim}, {"groups_claim", &l.GroupsClaim}, {"principals_claim", &l.PrincipalsClaim}} {
		if f := m.get(c.key); f.set() {
			*c.to, err = p.str(f, checkToken("claim name"))
			check(err)
		}
	}
	check(p.loginTTL(m, l))
	for _, b := range []struct {
		key string
		to  *bool
	}{{"source_address", &l.SourceAddress}, {"device", &l.Device}} {
		if f := m.get(b.key); f.set() {
			*b.to, err = p.boolean(f)
			check(err)
		}
	}
	if f := m.get("extensions"); f.set() {
		l.Extensions, err = p.strList(f, checkExtension)
		check(err)
	}
	if f := m.get("redirect_port"); f.set() {
		l.RedirectPort, err = p.integer(f)
		if err == nil && (l.RedirectPort < 1024 || l.RedirectPort > 65535) {
			err = p.errorf(f.line(), f.path, "must be a port from 1024 to 65535 (users' machines listen on it without privileges), got %d", l.RedirectPort)
		}
		check(err)
	}
	if f := m.get("public_client_secret"); f.set() {
		l.PublicClientSecret, err = p.str(f, checkToken("client secret"))
		check(err)
	}
	p.loginIssueLimit(m, l, check)
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return l, nil
}

// requiredWhat reads a string field that must be set and not empty, and
// says what it is when it is missing.
func (p *parser) requiredWhat(f field, check func(string) error, what string) (string, error) {
	if !f.set() {
		return "", p.errorf(f.line(), f.path, "required: %s", what)
	}
	s, err := p.str(f, check)
	if err == nil && s == "" {
		err = p.errorf(f.line(), f.path, "must not be empty: %s", what)
	}
	return s, err
}

// loginListen reads listen, plain_http, tls_cert and tls_key.
func (p *parser) loginListen(m mapping, l *Login) error {
	var err error
	l.Listen, err = p.requiredWhat(m.get("listen"), checkListen, `the address the login API listens on, like ":8443" or "127.0.0.1:8080"`)
	if err != nil {
		return err
	}
	if f := m.get("plain_http"); f.set() {
		if l.PlainHTTP, err = p.boolean(f); err != nil {
			return err
		}
	}
	cert, key := m.get("tls_cert"), m.get("tls_key")
	if l.PlainHTTP {
		if f := m.get("listen"); !loopbackListen(l.Listen) {
			return p.errorf(f.line(), f.path, "plain_http is allowed only on a loopback address (127.0.0.1, ::1 or localhost), and %q is not one: serve TLS with tls_cert and tls_key, or listen on 127.0.0.1", l.Listen)
		}
		if cert.set() || key.set() {
			return p.errorf(m.get("plain_http").line(), m.get("plain_http").path, "give tls_cert and tls_key, or plain_http: true, not both")
		}
		return nil
	}
	if l.TLSCert, err = p.requiredWhat(cert, nil, "the PEM certificate (chain) the login API serves TLS with (or plain_http: true on a loopback listen address)"); err != nil {
		return err
	}
	if l.TLSKey, err = p.requiredWhat(key, nil, "the PEM private key of tls_cert"); err != nil {
		return err
	}
	l.TLSCert, l.TLSKey = p.resolve(l.TLSCert), p.resolve(l.TLSKey)
	if _, err := tls.LoadX509KeyPair(l.TLSCert, l.TLSKey); err != nil {
		return p.errorf(cert.line(), cert.path, "cannot load the TLS certificate %s with key %s: %v", l.TLSCert, l.TLSKey, err)
	}
	return nil
}

// loopbackListen reports whether listen's host is a loopback address or
// localhost.
func loopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loginTTL reads ttl and max_ttl.
func (p *parser) loginTTL(m mapping, l *Login) error {
	var err error
	f := m.get("ttl")
	if l.TTL, err = p.duration(f, l.TTL); err != nil {
		return err
	}
	if l.TTL <= 0 || l.TTL > maxLoginTTL {
		return p.errorf(f.line(), f.path, "must be more than 0 and at most 7 days (168h), got %s: certificates should be short-lived", l.TTL)
	}
	f = m.get("max_ttl")
	if l.MaxTTL, err = p.duration(f, l.TTL); err != nil {
		return err
	}
	if l.MaxTTL < l.TTL || l.MaxTTL > maxLoginTTL {
		return p.errorf(f.line(), f.path, "must be at least ttl (%s) and at most 7 days (168h), got %s", l.TTL, l.MaxTTL)
	}
	return nil
}

// loginIssueLimit reads issue_burst and issue_interval, passing each
// problem to check.
func (p *parser) loginIssueLimit(m mapping, l *Login, check func(error)) {
	if f := m.get("issue_burst"); f.set() {
		n, err := p.integer(f)
		if err == nil && (n < 1 || n > maxIssueBurst) {
			err = p.errorf(f.line(), f.path, "must be at least 1 and at most %d certificates, got %d", maxIssueBurst, n)
		}
		if err == nil {
			l.IssueBurst = n
		}
		check(err)
	}
	f := m.get("issue_interval")
	d, err := p.duration(f, l.IssueInterval)
	if err == nil && (d <= 0 || d > maxIssueInterval) {
		err = p.errorf(f.line(), f.path, `must be more than 0 and at most 24h, like "20s", got %s`, d)
	}
	if err == nil {
		l.IssueInterval = d
	}
	check(err)
}

// NewLogin returns a login section with the defaults a config file gets
// (MaxTTL = TTL), for callers that build one themselves (the demo).
func NewLogin() *Login {
	return &Login{Scopes: slices.Clone(defaultScopes), IdentityClaim: "email", GroupsClaim: "groups",
		TTL: defaultLoginTTL, MaxTTL: defaultLoginTTL, Extensions: slices.Clone(defaultLoginExtensions),
		IssueBurst: api.DefaultIssueBurst, IssueInterval: api.DefaultIssueInterval}
}

// CheckIssuer is the login section's check of an issuer URL, for callers
// that build a Login themselves (the demo).
func CheckIssuer(s string) error { return checkIssuer(s) }

// CheckClientID is the login section's check of a client ID.
func CheckClientID(s string) error { return checkToken("client ID")(s) }

// checkIssuer accepts an https URL, or an http one on loopback (a local
// provider, for tests), without query or fragment.
func checkIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an issuer URL: want https://HOST[/PATH], exactly as the provider's tokens name it", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopbackListen(u.Host) || loopbackListen(u.Host+":80") {
			return nil
		}
	}
	return fmt.Errorf("%q: the issuer must be an https:// URL (http:// only for a provider on a loopback address)", s)
}

// checkToken accepts a name without white space or control characters:
// a client ID, scope or claim name (what says which).
func checkToken(what string) func(string) error {
	return func(s string) error {
		if s == "" {
			return fmt.Errorf("empty %s", what)
		}
		for _, r := range s {
			if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				return fmt.Errorf("%s %q contains white space or a control character", what, s)
			}
		}
		return nil
	}
}

// checkExtension accepts the extensions login may grant.
func checkExtension(s string) error {
	if slices.Contains(loginExtensions, s) {
		return nil
	}
	return fmt.Errorf("%q cannot be granted: use some of %s (X11 forwarding never is)", s, strings.Join(loginExtensions, ", "))
}
