package certs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// LoginOptions configures LoginAndIssue. Key is required; the zero value
// of every other field is documented with it.
type LoginOptions struct {
	// Key is the key to certify.
	Key *LoginKey
	// TTL is the validity to ask for; zero means the bastion's default.
	TTL time.Duration
	// Device uses the device grant instead of the browser redirect.
	Device bool
	// Prompt receives the instructions for the user; nil discards them.
	Prompt io.Writer
	// OpenBrowser opens the authorization URL; nil only prints it.
	OpenBrowser func(ctx context.Context, url string) error
	// Timeout bounds the sign-in; zero means DefaultLoginTimeout.
	Timeout time.Duration
	// HTTPClient talks to the bastion and the provider; nil means one
	// with a 30-second timeout per request.
	HTTPClient *http.Client
}

// LoginResult is what LoginAndIssue obtained.
type LoginResult struct {
	// URL is the bastion API's base.
	URL string
	// Info is the bastion's GET /v1/login answer.
	Info *LoginInfo
	// Issued is the certificate and what the bastion says of it.
	Issued *IssuedCertificate
}

// LoginAndIssue logs in to a bastion: it asks the bastion (apiURL, see
// ParseAPIURL) for its provider, obtains an ID token from it (browser
// redirect or device grant), and has the bastion certify opts.Key with it.
// Nothing is written: see LoginDir.SaveLogin and Agent.Add.
func LoginAndIssue(ctx context.Context, apiURL string, opts LoginOptions) (*LoginResult, error) {
	if opts.Key == nil {
		return nil, errors.New("login: no key to certify")
	}
	base, err := ParseAPIURL(apiURL)
	if err != nil {
		return nil, err
	}
	api := &API{URL: base, HTTPClient: opts.HTTPClient}
	info, err := api.LoginInfo(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkTTL(opts.TTL, info); err != nil {
		return nil, err
	}
	if opts.Device && !info.Device {
		return nil, errors.New("the bastion's OpenID provider does not offer the device flow: log in without --device")
	}
	flow := &OIDCFlow{
		Issuer: info.Issuer, ClientID: info.ClientID, Scopes: info.Scopes,
		ClientSecret: info.ClientSecret, RedirectPort: info.RedirectPort,
		HTTPClient: opts.HTTPClient, Timeout: opts.Timeout, Prompt: opts.Prompt,
		OpenBrowser: opts.OpenBrowser,
	}
	var tok *IDToken
	if opts.Device {
		tok, err = flow.Device(ctx)
	} else {
		tok, err = flow.AuthCode(ctx)
	}
	if err != nil {
		return nil, err
	}
	req := CertificateRequest{
		IDToken:   tok.Raw,
		PublicKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(opts.Key.Public))),
		Nonce:     tok.Nonce,
	}
	if opts.TTL > 0 {
		req.TTL = opts.TTL.String()
	}
	issued, err := api.Issue(ctx, req, opts.Key.Public)
	if err != nil {
		return nil, err
	}
	return &LoginResult{URL: base, Info: info, Issued: issued}, nil
}

// checkTTL refuses, before any browser opens, a TTL the bastion would.
func checkTTL(ttl time.Duration, info *LoginInfo) error {
	if ttl < 0 {
		return fmt.Errorf("ttl %s is negative", ttl)
	}
	if ttl == 0 || info.MaxTTL == "" {
		return nil
	}
	if max, err := time.ParseDuration(info.MaxTTL); err == nil && ttl > max {
		return fmt.Errorf("--ttl %s is above the bastion's max_ttl %s", ttl, max)
	}
	return nil
}
