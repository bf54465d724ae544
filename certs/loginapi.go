package certs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// LoginInfo is a bastion's answer to GET /v1/login: how to log in and how
// to reach and trust its SSH listener.
type LoginInfo struct {
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	// Device says whether the provider offers the device grant.
	Device bool `json:"device"`
	// SSHHost is the bastion's SSH host name as users type it; SSHPort
	// its port.
	SSHHost string `json:"ssh_host"`
	SSHPort int    `json:"ssh_port"`
	// KnownHosts are known_hosts lines for the bastion's host key, and an
	// @cert-authority line when it has a host CA.
	KnownHosts []string `json:"known_hosts"`
	// TTL is the default certificate validity, MaxTTL the most a request
	// may ask for (Go durations, "8h0m0s").
	TTL    string `json:"ttl"`
	MaxTTL string `json:"max_ttl"`
	// RedirectPort, if not 0, is the loopback port to take the
	// provider's redirect on (a provider that matches it exactly).
	RedirectPort int `json:"redirect_port"`
	// ClientSecret is an installed app's secret the provider demands at
	// its token endpoint although it cannot be kept secret (Google).
	ClientSecret string `json:"client_secret"`
}

// CertificateRequest is the body of POST /v1/certificates.
type CertificateRequest struct {
	IDToken   string `json:"id_token"`
	PublicKey string `json:"public_key"` // authorized_keys form
	TTL       string `json:"ttl,omitempty"`
	Nonce     string `json:"nonce,omitempty"` // the nonce the flow set
}

// IssuedCertificate is the answer to POST /v1/certificates.
type IssuedCertificate struct {
	Certificate string    `json:"certificate"` // authorized_keys form
	Identity    string    `json:"identity"`
	Principals  []string  `json:"principals"`
	Groups      []string  `json:"groups"`
	Serial      uint64    `json:"serial"`
	ValidAfter  time.Time `json:"valid_after"`
	ValidBefore time.Time `json:"valid_before"`
	// Cert is Certificate parsed.
	Cert *ssh.Certificate `json:"-"`
}

// APIError is a bastion's refusal: an HTTP error status with
// {"error": "message"}. Message is the server's, made one line.
type APIError struct {
	Status  int
	Message string
	// RetryAfter is the Retry-After of a 429 answer; zero if none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := "the bastion refused: " + e.Message
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf("; try again in %s", e.RetryAfter)
	}
	return msg + fmt.Sprintf(" (HTTP %d)", e.Status)
}

// API is a client of a bastion's login API. The zero value is not usable:
// URL must be set (see ParseAPIURL).
type API struct {
	// URL is the API's base, e.g. https://bastion.example.com:8443.
	URL string
	// HTTPClient nil means a client with a 30-second timeout.
	HTTPClient *http.Client
}

// ParseAPIURL checks a bastion API URL as a user gives it (or an issuer
// URL as a bastion announces it) and returns it without a trailing slash.
// Plain http is allowed only to a loopback address: the ID token must not
// travel in clear.
func ParseAPIURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("URL %q: want https://HOST[:PORT]", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("URL %q: a query, fragment or user name does not belong in it", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return "", fmt.Errorf("URL %q: plain http only to a loopback address (the ID token would travel unencrypted): use https://", s)
		}
	default:
		return "", fmt.Errorf("URL %q: want https://HOST[:PORT]", s)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func (a *API) client() *http.Client {
	if a.HTTPClient != nil {
		return a.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// do sends a request and decodes a 200 answer into out; any other status
// becomes an *APIError.
func (a *API) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.URL+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// A redirect is not followed: it could take the ID token elsewhere,
	// even to plain http.
	c := *a.client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("reach the bastion: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("read the bastion's answer to %s %s: %w", method, path, err)
	}
	if len(data) > maxResponse {
		return fmt.Errorf("the bastion's answer to %s %s is over %d bytes", method, path, maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		return apiError(resp, data, a.URL+path)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the bastion's answer to %s %s is not the JSON expected (is %s the bastion's API?): %w", method, path, a.URL, err)
	}
	return nil
}

func apiError(resp *http.Response, data []byte, where string) error {
	e := &APIError{Status: resp.StatusCode}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && strings.TrimSpace(body.Error) != "" {
		e.Message = oneLine(body.Error)
	} else {
		e.Message = fmt.Sprintf("%s answered %s without an error message (is it the bastion's API?)", where, resp.Status)
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = time.Until(t).Round(time.Second)
		}
	}
	return e
}

// LoginInfo asks the bastion how to log in (GET /v1/login) and checks
// the answer: every field ends up in a file ssh reads.
func (a *API) LoginInfo(ctx context.Context) (*LoginInfo, error) {
	var info LoginInfo
	if err := a.do(ctx, http.MethodGet, "/v1/login", nil, &info); err != nil {
		return nil, err
	}
	if err := info.check(); err != nil {
		return nil, fmt.Errorf("the bastion's GET /v1/login answer: %w", err)
	}
	return &info, nil
}

func (i *LoginInfo) check() error {
	if _, err := ParseAPIURL(i.Issuer); err != nil {
		// The same rule as for the bastion: the sign-in must not travel
		// in clear.
		return fmt.Errorf("issuer: %w", err)
	}
	if i.ClientID == "" {
		return errors.New("client_id is empty")
	}
	if i.RedirectPort != 0 && (i.RedirectPort < 1024 || i.RedirectPort > 65535) {
		return fmt.Errorf("redirect_port %d is not a port from 1024 to 65535", i.RedirectPort)
	}
	if strings.IndexFunc(i.ClientSecret, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return errors.New("client_secret holds white space or a control character")
	}
	if !validHostName(i.SSHHost) {
		return fmt.Errorf("ssh_host %q is not a host name", i.SSHHost)
	}
	if i.SSHPort < 1 || i.SSHPort > 65535 {
		return fmt.Errorf("ssh_port %d is not a port", i.SSHPort)
	}
	if len(i.KnownHosts) == 0 {
		return errors.New("known_hosts is empty: the bastion's host key cannot be trusted")
	}
	for _, line := range i.KnownHosts {
		if _, err := parseKnownHost(line); err != nil {
			return err
		}
	}
	for _, d := range []struct{ name, v string }{{"ttl", i.TTL}, {"max_ttl", i.MaxTTL}} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v <= 0 {
			return fmt.Errorf("%s %q is not a positive duration", d.name, d.v)
		}
	}
	return nil
}

// validHostName accepts what ssh_config's Host and HostName may hold
// without quoting or pattern meaning: a DNS name or an IP address.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 || h[0] == '-' {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// knownHost is an announced known_hosts line, reduced to what we write:
// the marker ("" or "cert-authority") and the key.
type knownHost struct {
	marker string
	key    ssh.PublicKey
}

func parseKnownHost(line string) (knownHost, error) {
	if strings.ContainsAny(line, "\r\n") {
		return knownHost{}, errors.New("a known_hosts line holds a line break")
	}
	marker, _, key, _, _, err := ssh.ParseKnownHosts([]byte(line))
	if err != nil {
		return knownHost{}, fmt.Errorf("known_hosts line %q: %w", line, err)
	}
	if marker != "" && marker != "cert-authority" {
		return knownHost{}, fmt.Errorf("known_hosts line %q: marker @%s is not for trusting a host", line, marker)
	}
	return knownHost{marker: marker, key: key}, nil
}

// knownHostsFile renders the announced keys for the bastion's address
// alone, whatever host patterns the announcement had: the file then
// vouches for nothing but the bastion.
func (i *LoginInfo) knownHostsFile() []byte {
	addr := knownhosts.Normalize(net.JoinHostPort(i.SSHHost, strconv.Itoa(i.SSHPort)))
	var b bytes.Buffer
	for _, line := range i.KnownHosts {
		kh, err := parseKnownHost(line)
		if err != nil {
			continue // LoginInfo checked them all
		}
		if kh.marker != "" {
			b.WriteString("@" + kh.marker + " ")
		}
		b.WriteString(addr + " ")
		b.Write(ssh.MarshalAuthorizedKey(kh.key))
	}
	return b.Bytes()
}

// Issue asks the bastion for a certificate (POST /v1/certificates) and
// checks the answer is a user certificate for pub, still valid.
func (a *API) Issue(ctx context.Context, req CertificateRequest, pub ssh.PublicKey) (*IssuedCertificate, error) {
	var out IssuedCertificate
	if err := a.do(ctx, http.MethodPost, "/v1/certificates", req, &out); err != nil {
		return nil, err
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(out.Certificate))
	if err != nil {
		return nil, fmt.Errorf("the bastion's certificate does not parse: %w", err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.UserCert {
		return nil, errors.New("the bastion answered with something other than a user certificate")
	}
	if !bytes.Equal(cert.Key.Marshal(), pub.Marshal()) {
		return nil, errors.New("the bastion's certificate is for another key than the one sent")
	}
	if time.Now().After(certTime(cert.ValidBefore)) {
		return nil, fmt.Errorf("the bastion's certificate expired at %s already (is the clock right?)", certTime(cert.ValidBefore).Format(time.RFC3339))
	}
	out.Cert = cert
	return &out, nil
}

// certTime converts a certificate's validity bound; OpenSSH's "forever"
// (all ones) becomes the latest time.Time that fits.
func certTime(t uint64) time.Time {
	if t > 1<<62 {
		return time.Unix(1<<62, 0)
	}
	return time.Unix(int64(t), 0)
}
