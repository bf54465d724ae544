package testenv

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// browser is an HTTP client that stays on the provider: it follows the
// provider's own redirects and stops at the first that leaves it (to the
// client's redirect_uri), as the point where the test decides what to do.
func (p *OIDCProvider) browser() *http.Client {
	jar, _ := cookiejar.New(nil) // never fails without options
	host := p.srv.Listener.Addr().String()
	return &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("more than 10 redirects")
			}
			if req.URL.Host != host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

var (
	formAction  = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
	formError   = regexp.MustCompile(`<p class="error">([^<]*)</p>`)
)

// page is a fetched page: where it came from, and, if it redirected out
// of the provider, where to.
type page struct {
	url    *url.URL
	status int
	body   string
	leave  *url.URL // Location of a redirect that leaves the provider
}

func fetch(ctx context.Context, c *http.Client, method, target string, form url.Values) (*page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	pg := &page{url: resp.Request.URL, status: resp.StatusCode, body: string(data)}
	if resp.StatusCode/100 == 3 {
		if pg.leave, err = resp.Location(); err != nil {
			return nil, fmt.Errorf("redirect from %s: %w", pg.url, err)
		}
	}
	return pg, nil
}

// submit fills the page's form with the hidden fields, username and
// password, and posts it as a browser would.
func (p *OIDCProvider) submit(ctx context.Context, c *http.Client, pg *page, username string) (*page, error) {
	m := formAction.FindStringSubmatch(pg.body)
	if m == nil {
		return nil, fmt.Errorf("testenv: no form at %s (status %d): %.300s", pg.url, pg.status, pg.body)
	}
	action, err := pg.url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return nil, err
	}
	pw, err := p.password(username)
	if err != nil {
		return nil, err
	}
	form := url.Values{"username": {username}, "password": {pw}}
	for _, h := range hiddenInput.FindAllStringSubmatch(pg.body, -1) {
		form.Set(html.UnescapeString(h[1]), html.UnescapeString(h[2]))
	}
	res, err := fetch(ctx, c, http.MethodPost, action.String(), form)
	if err != nil {
		return nil, err
	}
	if e := formError.FindStringSubmatch(res.body); e != nil {
		return nil, fmt.Errorf("testenv: the provider refused the sign-in: %s", html.UnescapeString(e[1]))
	}
	return res, nil
}

// Authorize plays the browser for an authorization URL (as `postern login
// --no-browser` prints it): it opens it, follows the provider's redirects
// to its sign-in form, signs in as username, and returns the URL the
// provider then redirects to (the client's redirect_uri with code and
// state, or with an error) without requesting it.
func (p *OIDCProvider) Authorize(ctx context.Context, authURL, username string) (*url.URL, error) {
	u, err := url.Parse(authURL)
	if err != nil || u.Host != p.srv.Listener.Addr().String() {
		return nil, fmt.Errorf("testenv: %q is not a URL of the provider at %s", authURL, p.Issuer)
	}
	c := p.browser()
	pg, err := fetch(ctx, c, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	if pg.leave != nil {
		return pg.leave, nil // e.g. an error sent to the redirect_uri
	}
	if pg, err = p.submit(ctx, c, pg, username); err != nil {
		return nil, err
	}
	if pg.leave == nil {
		return nil, fmt.Errorf("testenv: sign-in did not redirect to the client (status %d): %.300s", pg.status, pg.body)
	}
	return pg.leave, nil
}

// Browse is Authorize followed by the request a browser then makes to the
// client's redirect_uri (the loopback callback). It returns that page's
// status and body.
func (p *OIDCProvider) Browse(ctx context.Context, authURL, username string) (int, string, error) {
	cb, err := p.Authorize(ctx, authURL, username)
	if err != nil {
		return 0, "", err
	}
	pg, err := fetch(ctx, p.browser(), http.MethodGet, cb.String(), nil)
	if err != nil {
		return 0, "", fmt.Errorf("testenv: open the redirect %s: %w", cb, err)
	}
	return pg.status, pg.body, nil
}

// CompleteDevice plays the user of the device grant: it opens the
// verification URI, enters userCode and signs in as username, approving
// the device (or denying it if deny).
func (p *OIDCProvider) CompleteDevice(ctx context.Context, verificationURI, userCode, username string, deny bool) error {
	u, err := url.Parse(verificationURI)
	if err != nil || u.Host != p.srv.Listener.Addr().String() {
		return fmt.Errorf("testenv: %q is not a URL of the provider at %s", verificationURI, p.Issuer)
	}
	q := u.Query()
	q.Set("user_code", userCode)
	u.RawQuery = q.Encode()
	c := p.browser()
	pg, err := fetch(ctx, c, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	if deny {
		pg.body = strings.Replace(pg.body, `name="action" value="allow"`, `name="action" value="deny"`, 1)
	}
	pg, err = p.submit(ctx, c, pg, username)
	if err != nil {
		return err
	}
	if pg.status != http.StatusOK {
		return fmt.Errorf("testenv: device approval answered %d: %.300s", pg.status, pg.body)
	}
	return nil
}

// IDToken runs the authorization code flow with PKCE for clientID and
// username as a native client would, the test playing both sides (the
// redirect is read, never served), and returns the ID token. A non-empty
// nonce is sent in the request and comes back in the token.
func (p *OIDCProvider) IDToken(ctx context.Context, clientID, username, nonce string) (string, error) {
	conf := &oauth2.Config{
		ClientID: clientID,
		Endpoint: oauth2.Endpoint{AuthURL: p.Issuer + "/authorize", TokenURL: p.Issuer + "/oauth/token",
			AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: "http://127.0.0.1:1/callback",
		Scopes:      []string{"openid", "email", "profile", ScopeGroups},
	}
	verifier, state := oauth2.GenerateVerifier(), randomID()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if nonce != "" {
		opts = append(opts, oauth2.SetAuthURLParam("nonce", nonce))
	}
	cb, err := p.Authorize(ctx, conf.AuthCodeURL(state, opts...), username)
	if err != nil {
		return "", err
	}
	q := cb.Query()
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("testenv: authorization refused: %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state {
		return "", fmt.Errorf("testenv: state %q came back, want %q", q.Get("state"), state)
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", fmt.Errorf("testenv: exchange code: %w", err)
	}
	id, _ := tok.Extra("id_token").(string)
	if id == "" {
		return "", errors.New("testenv: the token response has no id_token")
	}
	return id, nil
}
