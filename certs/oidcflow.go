package certs

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// DefaultLoginTimeout bounds a login the user leaves unfinished.
const DefaultLoginTimeout = 5 * time.Minute

// maxResponse caps what the login client reads from a provider or a
// bastion: discovery documents and API answers are a few KiB.
const maxResponse = 1 << 20

// OIDCFlow obtains an ID token for a public client (no secret) of an
// OpenID provider, from a terminal: the authorization code flow with PKCE
// on a loopback redirect (RFC 8252), or the device authorization grant
// (RFC 8628). It checks what a client can check (state, nonce, that an ID
// token came back); the token's signature and claims are for the bastion
// to verify. The zero value is not usable: Issuer and ClientID must be set.
type OIDCFlow struct {
	// Issuer is the provider's issuer URL; its discovery document names
	// the endpoints.
	Issuer string
	// ClientID is the public client registered for Postern.
	ClientID string
	// ClientSecret is sent to the token endpoint when set: the secret of
	// an installed app, which some providers demand though it cannot
	// be kept (Google).
	ClientSecret string
	// RedirectPort is the loopback port of the redirect; 0 means a
	// random one (RFC 8252), for providers that match any port.
	RedirectPort int
	// Scopes to ask for; "openid" is added if missing.
	Scopes []string
	// HTTPClient talks to the provider; nil means a client with a
	// 30-second timeout per request.
	HTTPClient *http.Client
	// Timeout bounds the whole flow, the user's part included; zero
	// means DefaultLoginTimeout.
	Timeout time.Duration
	// Prompt receives what the user must do: the URL to open, the user
	// code. Nil discards it (a test that reads OpenBrowser's URL).
	Prompt io.Writer
	// OpenBrowser, if set, is called with the authorization URL (printed
	// anyway) and should return once the browser is started; an error is
	// reported on Prompt and the flow waits for the URL to be opened by
	// hand. It must return when ctx ends.
	OpenBrowser func(ctx context.Context, url string) error

	promptMu sync.Mutex // serialises writes to Prompt (the opener's goroutine writes too)
}

// IDToken is what a flow obtained.
type IDToken struct {
	// Raw is the compact JWT.
	Raw string
	// Nonce is the nonce the flow sent and found in the token; empty for
	// the device grant, which has none.
	Nonce string
}

// errLoginTimeout is the cause of a flow's context when its time is up.
var errLoginTimeout = errors.New("login timed out")

// bound returns ctx limited to the flow's timeout, and a function that
// turns an error caused by that limit into a message saying so.
func (f *OIDCFlow) bound(ctx context.Context) (context.Context, context.CancelFunc, func(error) error) {
	d := f.Timeout
	if d <= 0 {
		d = DefaultLoginTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, d, errLoginTimeout)
	explain := func(err error) error {
		if errors.Is(context.Cause(ctx), errLoginTimeout) {
			return fmt.Errorf("login not finished within %s: run the command again and complete the sign-in in time", d)
		}
		return err
	}
	return ctx, cancel, explain
}

// client is HTTPClient (or one with a 30-second timeout) that follows no
// redirect from https to anything else: a provider's endpoint must not
// send the code, its verifier or the device code on in clear.
func (f *OIDCFlow) client() *http.Client {
	c := &http.Client{Timeout: 30 * time.Second}
	if f.HTTPClient != nil {
		c = new(http.Client)
		*c = *f.HTTPClient
	}
	if c.CheckRedirect == nil {
		c.CheckRedirect = noDowngrade
	}
	return c
}

func (f *OIDCFlow) prompt(format string, args ...any) {
	f.promptMu.Lock()
	defer f.promptMu.Unlock()
	if f.Prompt != nil {
		fmt.Fprintf(f.Prompt, format, args...)
	}
}

// providerMeta is the part of the discovery document the flows use.
type providerMeta struct {
	Issuer        string `json:"issuer"`
	AuthURL       string `json:"authorization_endpoint"`
	TokenURL      string `json:"token_endpoint"`
	DeviceAuthURL string `json:"device_authorization_endpoint"`
}

// discover reads the provider's discovery document (OpenID Connect
// Discovery 1.0, section 4) and checks it names the issuer asked for.
func (f *OIDCFlow) discover(ctx context.Context) (*providerMeta, error) {
	u := strings.TrimSuffix(f.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("discover the OpenID provider %s: %w", f.Issuer, err)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("discover the OpenID provider: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discover the OpenID provider: %s answered HTTP %d", u, resp.StatusCode)
	}
	var m providerMeta
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&m); err != nil {
		return nil, fmt.Errorf("discover the OpenID provider: %s: %w", u, err)
	}
	if m.Issuer != f.Issuer {
		return nil, fmt.Errorf("discover the OpenID provider: %s names issuer %q, want %q", u, m.Issuer, f.Issuer)
	}
	if m.AuthURL == "" || m.TokenURL == "" {
		return nil, fmt.Errorf("discover the OpenID provider: %s lacks the authorization or token endpoint", u)
	}
	// A browser opens the first; the others receive the code with its
	// PKCE verifier and send back the ID token.
	for _, e := range [][2]string{{"authorization_endpoint", m.AuthURL}, {"token_endpoint", m.TokenURL},
		{"device_authorization_endpoint", m.DeviceAuthURL}} {
		if e[1] == "" {
			continue // no device grant
		}
		if err := secureURL(e[1]); err != nil {
			return nil, fmt.Errorf("discover the OpenID provider: %s names %s %q: %v", u, e[0], e[1], err)
		}
	}
	return &m, nil
}

// secureURL accepts an https URL, or an http one to a loopback address,
// as the bastion's API URL and the issuer must be: what a provider names
// for the browser to open or the tokens to travel to. url.Parse refuses
// control characters.
func secureURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Host == "" || u.User != nil || u.Opaque != "" {
		return errors.New("not an https://HOST/... URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("plain http off loopback: the code and tokens would travel unencrypted")
	}
	return fmt.Errorf("scheme %q: want https", u.Scheme)
}

func (f *OIDCFlow) config(m *providerMeta, redirect string) *oauth2.Config {
	scopes := f.Scopes
	if !slices.Contains(scopes, "openid") {
		// Without it there is no ID token (OpenID Connect Core 1.0,
		// section 3.1.2.1).
		scopes = append([]string{"openid"}, scopes...)
	}
	return &oauth2.Config{
		ClientID:     f.ClientID,
		ClientSecret: f.ClientSecret,
		Endpoint: oauth2.Endpoint{AuthURL: m.AuthURL, TokenURL: m.TokenURL, DeviceAuthURL: m.DeviceAuthURL,
			// A public client sends its ID in the form, never as Basic auth.
			AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirect,
		Scopes:      scopes,
	}
}

// randomToken returns 256 random bits, base64url: state and nonce.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// AuthCode runs the authorization code flow with PKCE (S256): it listens
// on 127.0.0.1 at a random port, prints the authorization URL (and opens
// it with OpenBrowser), and waits for the browser's redirect to
// /callback; the code is exchanged there and the browser told the outcome.
// A callback with another state is refused and the flow waits on; the
// first with the state sent decides: an error, or a token whose nonce is
// not the one sent, ends the flow.
func (f *OIDCFlow) AuthCode(ctx context.Context) (*IDToken, error) {
	ctx, cancel, explain := f.bound(ctx)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, f.client())
	meta, err := f.discover(ctx)
	if err != nil {
		return nil, explain(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(f.RedirectPort)))
	if err != nil {
		return nil, fmt.Errorf("listen for the login's redirect on 127.0.0.1 (port %d; 0 is any): %w", f.RedirectPort, err)
	}
	cb := &callback{
		conf:     f.config(meta, fmt.Sprintf("http://%s/callback", ln.Addr())),
		verifier: oauth2.GenerateVerifier(),
		state:    randomToken(),
		nonce:    randomToken(),
		done:     make(chan callbackResult, 1),
		forged: sync.OnceFunc(func() {
			f.prompt("Refused a redirect to the callback that did not come from this sign-in (another state); still waiting for yours.\n")
		}),
	}
	authURL := cb.conf.AuthCodeURL(cb.state, oauth2.S256ChallengeOption(cb.verifier),
		oauth2.SetAuthURLParam("nonce", cb.nonce))
	hctx, hcancel := context.WithCancel(ctx)
	srv := &http.Server{Handler: cb.handler(hctx), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(ln) })
	defer func() {
		// Let the browser have its page, briefly; then end any exchange
		// still running and stop.
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := srv.Shutdown(sctx)
		scancel()
		hcancel()
		if err != nil {
			srv.Close()
		}
		wg.Wait()
	}()

	f.prompt("Open this URL in a browser to log in:\n\n  %s\n\n", authURL)
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel() // ends an opener still running; wg waits for it
	if f.OpenBrowser != nil {
		wg.Go(func() {
			if err := f.OpenBrowser(bctx, authURL); err != nil && bctx.Err() == nil {
				f.prompt("Could not open a browser (%v): open the URL above yourself.\n", err)
			}
		})
	}
	f.prompt("Waiting for the sign-in to finish…\n")
	select {
	case r := <-cb.done:
		if r.err != nil {
			return nil, explain(r.err)
		}
		return &IDToken{Raw: r.token, Nonce: cb.nonce}, nil
	case <-ctx.Done():
		return nil, explain(context.Cause(ctx))
	}
}

type callbackResult struct {
	token string
	err   error
}

// callback is the loopback redirect's state: what the flow sent, and
// where the first callback's outcome goes.
type callback struct {
	conf                   *oauth2.Config
	verifier, state, nonce string
	once                   sync.Once
	done                   chan callbackResult // buffered 1; written once
	// forged tells the user, once, that a callback was refused.
	forged func()
}

func (c *callback) handler(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("state")), []byte(c.state)) != 1 {
			// RFC 6749, section 10.12: a redirect this flow did not
			// start (another local user, a web page in the browser).
			// It is refused and does not end the login: whoever can
			// reach the port must not be able to cut it short.
			c.forged()
			http.Error(w, "This redirect carries another state: it did not come from this login's sign-in, refused.", http.StatusBadRequest)
			return
		}
		first := false
		c.once.Do(func() {
			first = true
			tok, err := c.finish(ctx, r)
			page := "Signed in: you can close this window and return to the terminal."
			status := http.StatusOK
			if err != nil {
				page, status = "Login failed: "+err.Error(), http.StatusBadRequest
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(status)
			io.WriteString(w, page+"\n")
			c.done <- callbackResult{token: tok, err: err}
		})
		if !first {
			http.Error(w, "This login is already finished; run the command again to log in again.", http.StatusConflict)
		}
	})
	return mux
}

// finish checks a callback and exchanges its code for the tokens.
func (c *callback) finish(ctx context.Context, r *http.Request) (string, error) {
	q := r.URL.Query() // the state matched (handler)
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("the OpenID provider refused the login: %s", oneLine(strings.TrimSpace(e+": "+q.Get("error_description"))))
	}
	code := q.Get("code")
	if code == "" {
		return "", errors.New("the redirect to the login's callback has no code")
	}
	tok, err := c.conf.Exchange(ctx, code, oauth2.VerifierOption(c.verifier))
	if err != nil {
		return "", fmt.Errorf("exchange the authorization code: %w", err)
	}
	raw, err := idTokenOf(tok)
	if err != nil {
		return "", err
	}
	if err := checkNonce(raw, c.nonce); err != nil {
		return "", err
	}
	return raw, nil
}

// idTokenOf returns the ID token of a token response.
func idTokenOf(tok *oauth2.Token) (string, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", errors.New("the OpenID provider's token response has no id_token: does the client have the openid scope?")
	}
	return raw, nil
}

// checkNonce compares the nonce claim of the (unverified) ID token with
// the one sent: a token minted for another request is refused before it
// travels to the bastion, which verifies signature and nonce again.
func checkNonce(raw, want string) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return errors.New("the OpenID provider's id_token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("the OpenID provider's id_token: %w", err)
	}
	var claims struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return fmt.Errorf("the OpenID provider's id_token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(claims.Nonce), []byte(want)) != 1 {
		return errors.New("the ID token's nonce is not the one this login sent: refused (replayed or mixed-up token)")
	}
	return nil
}

// oneLine makes text from a server fit one line of a terminal message:
// line breaks become spaces and it is cut at 300 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
