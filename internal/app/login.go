package app

import (
	"errors"
	"log/slog"
	"net"
	"slices"

	"github.com/postern/postern/api"
	"github.com/postern/postern/bastion"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/config"
)

// loginServer returns the login API that s.Login describes, listening;
// nil when the config has no login section. bc is the bastion's config,
// for the host names users reach it by.
func (a *App) loginServer(s *config.Config, bc *bastion.Config, log *slog.Logger) (*api.Server, error) {
	l := s.Login
	if l == nil {
		return nil, nil
	}
	if a.Store == nil {
		return nil, errors.New("login: certificates are recorded in the index, which is not open (recording is off)")
	}
	o, err := certs.NewOIDC(certs.OIDCConfig{
		Issuer: l.Issuer, ClientID: l.ClientID,
		IdentityClaim: l.IdentityClaim, GroupsClaim: l.GroupsClaim, PrincipalsClaim: l.PrincipalsClaim,
	})
	if err != nil {
		return nil, err
	}
	port := 0
	if tcp, ok := a.addr.(*net.TCPAddr); ok {
		port = tcp.Port
	}
	h, err := api.New(api.Config{
		OIDC: o, Authority: a.Auth, Register: a.Store,
		Issuer: l.Issuer, ClientID: l.ClientID, Scopes: l.Scopes, Device: l.Device,
		RedirectPort: l.RedirectPort, PublicClientSecret: l.PublicClientSecret,
		IssueBurst: l.IssueBurst, IssueInterval: l.IssueInterval,
		TTL: l.TTL, MaxTTL: l.MaxTTL, SourceAddress: l.SourceAddress,
		NoPTY:            !slices.Contains(l.Extensions, "permit-pty"),
		NoPortForwarding: !slices.Contains(l.Extensions, "permit-port-forwarding"),
		AgentForwarding:  slices.Contains(l.Extensions, "permit-agent-forwarding"),
		HostNames:        bc.HostNames, SSHPort: port,
		HostCert: a.Auth.HostCA != nil && len(bc.HostNames) > 0,
		Revoked:  bc.Revocations.KeyIDRevoked,
		Log:      log.With("component", "login"),
	})
	if err != nil {
		return nil, err
	}
	return api.Listen(h, api.ServerConfig{Addr: l.Listen, CertFile: l.TLSCert, KeyFile: l.TLSKey, PlainHTTP: l.PlainHTTP})
}

// LoginURL is the login API's base URL, "" without one.
func (a *App) LoginURL() string {
	if a.login == nil {
		return ""
	}
	return a.login.URL()
}
