// Package api is the bastion's HTTP API: login (an OpenID Connect ID
// token in, an OpenSSH user certificate out) and health.
//
//	GET  /v1/login         what a client needs to log in and then reach
//	                       the bastion with plain ssh (issuer, client ID,
//	                       scopes, SSH address, known_hosts lines, TTLs)
//	POST /v1/certificates  {"id_token", "public_key", "ttl"?, "nonce"?} →
//	                       a certificate for public_key
//	GET  /healthz          "ok"
//
// Every certificate issued is recorded in the data directory's register of
// issued certificates (the one `postern ca sign` uses) and sealed in the
// audit chain; every refused request is a record sealed in the chain too.
// Requests that fail are counted per client address: past a limit, the
// address is refused with 429 until its window ends. Certificates issued
// are counted per identity: past a burst, one more per interval, and
// requests in between are refused with 429. Errors are JSON,
// {"error": "..."}: one sentence for a person, never quoting the token.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/recorder"
)

// Defaults of Config.
const (
	DefaultMaxFailures   = 10
	DefaultFailureWindow = time.Minute
	DefaultClients       = 10000
	// MaxBody caps a request's body.
	MaxBody = 64 << 10
	// MaxTTL caps Config.MaxTTL, as `ca sign --ttl` is capped.
	MaxTTL = 7 * 24 * time.Hour
)

// Register is where certificates and refusals are recorded and sealed:
// the bastion's index (*recorder.Local).
type Register interface {
	IssueCert(ctx context.Context, c recorder.IssuedCert) (recorder.IssuedCert, error)
	RefuseCert(ctx context.Context, r recorder.CertRefusal) (recorder.CertRefusal, recorder.ChainHead, error)
	Head(ctx context.Context) (*recorder.ChainHead, error)
}

// Config configures the API. OIDC, Authority and Register are required,
// and so are Issuer, ClientID, TTL and SSHPort; the zero value of every
// other field is documented.
type Config struct {
	// OIDC verifies the ID tokens.
	OIDC *certs.OIDC
	// Authority signs the certificates with its user CA, and has the
	// host key (and host CA) that /v1/login announces.
	Authority *certs.Authority
	// Register records what is issued and refused.
	Register Register

	// Issuer, ClientID and Scopes are announced for the client's
	// login; Device says whether it should offer the device grant.
	Issuer   string
	ClientID string
	Scopes   []string
	Device   bool
	// RedirectPort and PublicClientSecret are announced when set (see
	// config.Login).
	RedirectPort       int
	PublicClientSecret string

	// TTL is a certificate's validity when the request names none;
	// MaxTTL the longest a request may ask for (0: TTL). At most MaxTTL.
	TTL, MaxTTL time.Duration
	// SourceAddress binds each certificate to the requester's address
	// (the source-address critical option).
	SourceAddress bool
	// NoPTY and NoPortForwarding leave out permit-pty and
	// permit-port-forwarding, AgentForwarding adds
	// permit-agent-forwarding, as for certs.UserCertRequest.
	NoPTY, NoPortForwarding, AgentForwarding bool

	// HostNames are the names users reach the bastion's SSH port by;
	// the first is announced as ssh_host. With none, the host the
	// request was sent to is announced.
	HostNames []string
	// SSHPort is the bastion's SSH port.
	SSHPort int
	// HostCert says whether the bastion presents a host certificate
	// from Authority.HostCA for HostNames: /v1/login then announces an
	// @cert-authority line too.
	HostCert bool

	// MaxFailures failed requests from one address within
	// FailureWindow refuse that address until the window ends; 0 means
	// DefaultMaxFailures, and DefaultFailureWindow. Clients bounds the
	// addresses tracked (least recently seen forgotten first); 0 means
	// DefaultClients.
	MaxFailures   int
	FailureWindow time.Duration
	Clients       int
	// RecordedRefusals bounds the refusals sealed in the audit chain per
	// FailureWindow, all clients together; past it, refusals are logged
	// only, until the window ends. 0 means DefaultRecordedRefusals.
	RecordedRefusals int
	// UsedTokens bounds the ID tokens remembered as used (each until it
	// expires): with that many, requests are refused with 503 until one
	// expires. 0 means DefaultUsedTokens.
	UsedTokens int

	// IssueBurst certificates may be issued to one identity at once,
	// then one every IssueInterval: past that, its requests are
	// refused with 429 and Retry-After (the address is not counted as
	// failing). A token yields one certificate, but one user may get
	// many tokens (a refresh token, repeated sign-ins). The account at
	// the provider (sub) is limited alike, whatever identity its tokens
	// name. 0 means
	// DefaultIssueBurst and DefaultIssueInterval. Identities bounds the
	// identities tracked (least recently seen forgotten first); 0 means
	// DefaultIdentities.
	IssueBurst    int
	IssueInterval time.Duration
	Identities    int

	// Revoked, if set, says whether certificates with key ID id are
	// revoked (postern ca revoke --identity): such an identity gets none.
	Revoked func(id string) bool

	// Log receives the audit records; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// API serves the HTTP API. It is safe for concurrent use.
type API struct {
	cfg    Config
	log    *slog.Logger
	limit  *limiter
	issues *issueLimit
	seal   *sealBudget
	used   *usedTokens
	mux    *http.ServeMux
	// started is when New ran, to the second (iat's resolution): a
	// token issued before may have been used before, unremembered.
	started time.Time
}

// New checks cfg and returns the API.
func New(cfg Config) (*API, error) {
	switch {
	case cfg.OIDC == nil || cfg.Authority == nil || cfg.Register == nil:
		return nil, errors.New("api: OIDC, Authority and Register are required")
	case cfg.Issuer == "" || cfg.ClientID == "":
		return nil, errors.New("api: issuer and client ID are required")
	case cfg.TTL <= 0:
		return nil, errors.New("api: TTL must be positive")
	case cfg.SSHPort <= 0 || cfg.SSHPort > 65535:
		return nil, errors.New("api: SSH port out of range")
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = cfg.TTL
	}
	if cfg.MaxTTL < cfg.TTL || cfg.MaxTTL > MaxTTL {
		return nil, errors.New("api: MaxTTL must be at least TTL and at most 7 days")
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = DefaultFailureWindow
	}
	if cfg.Clients <= 0 {
		cfg.Clients = DefaultClients
	}
	if cfg.RecordedRefusals <= 0 {
		cfg.RecordedRefusals = DefaultRecordedRefusals
	}
	if cfg.UsedTokens <= 0 {
		cfg.UsedTokens = DefaultUsedTokens
	}
	if cfg.IssueBurst <= 0 {
		cfg.IssueBurst = DefaultIssueBurst
	}
	if cfg.IssueInterval <= 0 {
		cfg.IssueInterval = DefaultIssueInterval
	}
	if cfg.Identities <= 0 {
		cfg.Identities = DefaultIdentities
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lim, err := newLimiter(cfg.Clients, cfg.MaxFailures, cfg.FailureWindow)
	if err != nil {
		return nil, err
	}
	issues, err := newIssueLimit(2*cfg.Identities, cfg.IssueBurst, cfg.IssueInterval) // an identity's bucket and its subject's
	if err != nil {
		return nil, err
	}
	a := &API{cfg: cfg, log: log, limit: lim, issues: issues, seal: &sealBudget{max: cfg.RecordedRefusals, window: cfg.FailureWindow}, used: newUsedTokens(cfg.UsedTokens), mux: http.NewServeMux(),
		started: cfg.Now().Truncate(time.Second)}
	a.mux.HandleFunc("/v1/login", only(http.MethodGet, a.login))
	a.mux.HandleFunc("/v1/certificates", only(http.MethodPost, a.certificates))
	a.mux.HandleFunc("/healthz", only(http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	}))
	a.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: the API has GET /v1/login, POST /v1/certificates and GET /healthz")
	})
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	a.mux.ServeHTTP(w, r)
}

// Discover reaches the provider once, to report a misconfiguration at
// start rather than at the first login.
func (a *API) Discover(ctx context.Context) error { return a.cfg.OIDC.Discover(ctx) }

// only answers 405 to any method but m.
func only(m string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != m {
			w.Header().Set("Allow", m)
			writeError(w, http.StatusMethodNotAllowed, "use "+m+" for "+r.URL.Path)
			return
		}
		h(w, r)
	}
}

// writeJSON writes v as the response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// errorBody is every error's response.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}
