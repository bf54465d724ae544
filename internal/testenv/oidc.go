package testenv

import (
	"crypto/sha256"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// ScopeGroups asks the test provider for the groups claim.
const ScopeGroups = "groups"

// OIDCUser is a user of the test provider.
type OIDCUser struct {
	// ID is the subject (sub claim); empty means the user name.
	ID string
	// Username and Password are what the login form takes.
	Username, Password string
	// Email is the email claim (scope email); empty leaves it out.
	Email         string
	EmailVerified bool
	// Groups is the groups claim (scope groups); nil leaves it out.
	Groups []string
}

// OIDCOptions configures OIDC. The zero value gives client "postern", users
// alice (verified email, groups dev and approvers), bob (email not
// verified) and carol (no email), one-hour ID tokens, and device codes
// valid 5 minutes with a one-second poll interval.
type OIDCOptions struct {
	// ClientIDs are the public clients (no secret; authorization code
	// with PKCE and the device grant; any loopback redirect to path
	// /callback, any port, as RFC 8252 section 7.3 asks). The first is
	// OIDCProvider.ClientID. Empty means "postern" and "other-app" (for
	// tokens with the wrong audience).
	ClientIDs []string
	// SecretClients are clients, by ID, that must send their secret
	// (the map's value) to the token endpoint in the form
	// (client_secret_post), as providers demand of installed apps that
	// cannot keep one (Google); otherwise as ClientIDs.
	SecretClients map[string]string
	// Users replace the default users.
	Users []OIDCUser
	// IDTokenLifetime is the validity of ID tokens; zero means one hour.
	// SetIDTokenLifetime changes it later.
	IDTokenLifetime time.Duration
	// DeviceLifetime is the validity of device codes; zero means 5 minutes.
	DeviceLifetime time.Duration
}

// DefaultOIDCUsers are the users of a provider started without Users; the
// password of each is "pw-" and the user name.
var DefaultOIDCUsers = []OIDCUser{
	{Username: "alice", Password: "pw-alice", Email: "alice@example.com", EmailVerified: true, Groups: []string{"dev", "approvers"}},
	{Username: "bob", Password: "pw-bob", Email: "bob@example.com", EmailVerified: false, Groups: []string{"dev"}},
	{Username: "carol", Password: "pw-carol"},
}

// OIDCProvider is an OpenID provider built with zitadel's op package,
// serving on loopback plain HTTP. Its login form and device page are
// minimal HTML forms that Authorize, Browse and CompleteDevice fill in as
// a browser would. Methods are safe for concurrent use.
type OIDCProvider struct {
	// Issuer is http://127.0.0.1:PORT, the discovery document's issuer.
	Issuer string
	// ClientID is the first of the options' ClientIDs.
	ClientID string

	store    *oidcStore
	provider *op.Provider
	srv      *httptest.Server
}

// OIDC starts a provider for the test and stops it in t.Cleanup.
func OIDC(t testing.TB, opts OIDCOptions) *OIDCProvider {
	t.Helper()
	p, err := StartOIDC(opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartOIDC starts a provider the caller must Close.
func StartOIDC(opts OIDCOptions) (*OIDCProvider, error) {
	store, err := newOIDCStore(opts)
	if err != nil {
		return nil, err
	}
	srv := httptest.NewUnstartedServer(nil)
	p := &OIDCProvider{Issuer: "http://" + srv.Listener.Addr().String(), ClientID: store.clientIDs[0], store: store, srv: srv}
	devLife := opts.DeviceLifetime
	if devLife == 0 {
		devLife = 5 * time.Minute
	}
	config := &op.Config{
		CryptoKey:      sha256.Sum256([]byte(randomID())),
		CodeMethodS256: true,
		AuthMethodPost: true, // for SecretClients
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     devLife,
			PollInterval: time.Second,
			UserFormPath: "/device",
			UserCode:     op.UserCodeBase20,
		},
	}
	p.provider, err = op.NewProvider(config, store, op.StaticIssuer(p.Issuer), op.WithAllowInsecure())
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("start OpenID provider: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", p.loginPage)
	mux.HandleFunc("POST /login", p.loginSubmit)
	mux.HandleFunc("GET /device", p.devicePage)
	mux.HandleFunc("POST /device", p.deviceSubmit)
	mux.Handle("/", p.provider)
	srv.Config.Handler = mux
	srv.Start()
	return p, nil
}

func newOIDCStore(opts OIDCOptions) (*oidcStore, error) {
	key, err := newOIDCKey()
	if err != nil {
		return nil, err
	}
	s := &oidcStore{
		users: map[string]*OIDCUser{}, clients: map[string]*oidcClient{},
		authReqs: map[string]*authRequest{}, codes: map[string]string{},
		tokens: map[string]*accessToken{}, devices: map[string]*op.DeviceAuthorizationState{},
		userCodes: map[string]string{}, keys: []*oidcKey{key},
		lifetime: opts.IDTokenLifetime,
	}
	if s.lifetime == 0 {
		s.lifetime = time.Hour
	}
	users := opts.Users
	if users == nil {
		users = DefaultOIDCUsers
	}
	for _, u := range users {
		u := u
		if u.ID == "" {
			u.ID = u.Username
		}
		s.users[u.Username] = &u
	}
	ids := opts.ClientIDs
	if len(ids) == 0 {
		ids = []string{"postern", "other-app"}
	}
	for _, id := range ids {
		s.clients[id] = &oidcClient{id: id}
	}
	for id, secret := range opts.SecretClients {
		s.clients[id] = &oidcClient{id: id, secret: secret}
	}
	s.clientIDs = ids
	return s, nil
}

// Close stops the server.
func (p *OIDCProvider) Close() { p.srv.Close() }

// RotateKey makes a fresh signing key the one that signs; the old keys
// stay in the published key set unless dropOld. It returns the new key's
// ID (the kid of the tokens signed from now on).
func (p *OIDCProvider) RotateKey(dropOld bool) (string, error) {
	k, err := newOIDCKey()
	if err != nil {
		return "", err
	}
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	if dropOld {
		p.store.keys = nil
	}
	p.store.keys = append(p.store.keys, k)
	return k.id, nil
}

// KeyID returns the ID of the key that signs now.
func (p *OIDCProvider) KeyID() string {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.keys[len(p.store.keys)-1].id
}

// SetIDTokenLifetime sets the validity of ID tokens issued from now on.
func (p *OIDCProvider) SetIDTokenLifetime(d time.Duration) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.lifetime = d
}

// password returns the password of username, or an error.
func (p *OIDCProvider) password(username string) (string, error) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	u, ok := p.store.users[username]
	if !ok {
		return "", fmt.Errorf("testenv: the provider has no user %q", username)
	}
	return u.Password, nil
}

var formPage = template.Must(template.New("form").Parse(`<!doctype html>
<title>{{.Title}}</title>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<input name="username"> <input name="password" type="password">
<button type="submit">Sign in</button>
</form>
`))

type formData struct {
	Title, Action, Error string
	Hidden               map[string]string
}

func renderForm(w http.ResponseWriter, status int, d formData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	formPage.Execute(w, d)
}

// loginPage is where the authorize endpoint sends the browser (the
// client's LoginURL).
func (p *OIDCProvider) loginPage(w http.ResponseWriter, r *http.Request) {
	renderForm(w, http.StatusOK, formData{Title: "Sign in", Action: "/login",
		Hidden: map[string]string{"id": r.URL.Query().Get("authRequestID")}})
}

// loginSubmit checks the password and sends the browser back to the
// provider, which redirects it to the client with a code.
func (p *OIDCProvider) loginSubmit(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("id")
	if err := p.store.completeLogin(id, r.PostFormValue("username"), r.PostFormValue("password")); err != nil {
		renderForm(w, http.StatusUnauthorized, formData{Title: "Sign in", Action: "/login", Error: err.Error(),
			Hidden: map[string]string{"id": id}})
		return
	}
	ctx := op.ContextWithIssuer(r.Context(), p.Issuer)
	http.Redirect(w, r, op.AuthCallbackURL(p.provider)(ctx, id), http.StatusFound)
}

// devicePage is the verification URI of the device grant: a form for the
// user code (prefilled from verification_uri_complete) and the password.
func (p *OIDCProvider) devicePage(w http.ResponseWriter, r *http.Request) {
	renderForm(w, http.StatusOK, formData{Title: "Approve device", Action: "/device",
		Hidden: map[string]string{"user_code": r.URL.Query().Get("user_code"), "action": "allow"}})
}

func (p *OIDCProvider) deviceSubmit(w http.ResponseWriter, r *http.Request) {
	code := r.PostFormValue("user_code")
	err := p.store.completeDevice(code, r.PostFormValue("username"), r.PostFormValue("password"),
		r.PostFormValue("action") == "deny")
	if err != nil {
		renderForm(w, http.StatusUnauthorized, formData{Title: "Approve device", Action: "/device", Error: err.Error(),
			Hidden: map[string]string{"user_code": code, "action": "allow"}})
		return
	}
	fmt.Fprintln(w, "Device approved: return to your terminal.")
}

// oidcClient is a public native client: authorization code with PKCE and
// the device grant, loopback redirects.
type oidcClient struct {
	id       string
	secret   string        // sent to the token endpoint when not empty
	lifetime time.Duration // ID token lifetime, copied from the store
}

func (c *oidcClient) GetID() string { return c.id }

// RedirectURIs: op matches a native client's loopback redirect whatever
// its port (RFC 8252, section 7.3).
func (c *oidcClient) RedirectURIs() []string {
	return []string{"http://127.0.0.1/callback", "http://[::1]/callback", "http://localhost/callback"}
}
func (c *oidcClient) PostLogoutRedirectURIs() []string    { return nil }
func (c *oidcClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }
func (c *oidcClient) AuthMethod() oidc.AuthMethod {
	if c.secret != "" {
		return oidc.AuthMethodPost
	}
	return oidc.AuthMethodNone
}
func (c *oidcClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *oidcClient) LoginURL(id string) string           { return "/login?authRequestID=" + id }
func (c *oidcClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *oidcClient) IDTokenLifetime() time.Duration      { return c.lifetime }
func (c *oidcClient) DevMode() bool                       { return false }
func (c *oidcClient) IsScopeAllowed(scope string) bool    { return scope == ScopeGroups }
func (c *oidcClient) ClockSkew() time.Duration            { return 0 }
func (c *oidcClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *oidcClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *oidcClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeDeviceCode}
}

// IDTokenUserinfoClaimsAssertion puts email and profile claims in the ID
// token even beside an access token, as Keycloak, Google and Entra ID do:
// the bastion reads them from the ID token.
func (c *oidcClient) IDTokenUserinfoClaimsAssertion() bool { return true }
