package api

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// loginInfo is GET /v1/login's answer.
type loginInfo struct {
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
	Device   bool     `json:"device"`
	SSHHost  string   `json:"ssh_host"`
	SSHPort  int      `json:"ssh_port"`
	// KnownHosts are lines ready for a known_hosts file: the host key,
	// and the host CA's @cert-authority line when the bastion presents
	// a host certificate.
	KnownHosts []string `json:"known_hosts"`
	TTL        string   `json:"ttl"`
	MaxTTL     string   `json:"max_ttl"`
	// RedirectPort is the loopback port for the provider's redirect
	// when the provider needs a fixed one; ClientSecret the installed
	// app's secret a provider demands although it cannot be kept.
	RedirectPort int    `json:"redirect_port,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
}

// login serves GET /v1/login.
func (a *API) login(w http.ResponseWriter, r *http.Request) {
	names := a.cfg.HostNames
	if len(names) == 0 {
		host, ok := requestHost(r.Host)
		if !ok {
			writeError(w, http.StatusBadRequest, "the request's Host is not a host name; send it to the name you reach the bastion by")
			return
		}
		names = []string{host}
	}
	port := strconv.Itoa(a.cfg.SSHPort)
	patterns := make([]string, len(names))
	for i, n := range names {
		patterns[i] = knownhosts.Normalize(net.JoinHostPort(n, port))
	}
	lines := []string{knownhosts.Line(patterns, a.cfg.Authority.HostKey.PublicKey())}
	if a.cfg.HostCert && a.cfg.Authority.HostCA != nil {
		lines = append(lines, "@cert-authority "+strings.Join(patterns, ",")+" "+
			strings.TrimSpace(string(ssh.MarshalAuthorizedKey(a.cfg.Authority.HostCA.PublicKey()))))
	}
	scopes := a.cfg.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	writeJSON(w, http.StatusOK, loginInfo{
		Issuer: a.cfg.Issuer, ClientID: a.cfg.ClientID, Scopes: scopes, Device: a.cfg.Device,
		SSHHost: names[0], SSHPort: a.cfg.SSHPort, KnownHosts: lines,
		TTL: a.cfg.TTL.String(), MaxTTL: a.cfg.MaxTTL.String(),
		RedirectPort: a.cfg.RedirectPort, ClientSecret: a.cfg.PublicClientSecret,
	})
}

// requestHost is the host of a Host header, if it is a host name or an
// address.
func requestHost(h string) (string, bool) {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	if h == "" || len(h) > 253 {
		return "", false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_:", c)) {
			return "", false
		}
	}
	return h, true
}
