package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/bastion"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/demotarget"
	"github.com/postern/postern/recorder"
)

// The demo's names: the user's principal, the target and the login; the
// approver's principal and group; the file the held command removes.
const (
	demoPrincipal = "demo"
	demoTarget    = "demo"
	demoLogin     = "demo"
	demoApprover  = "approver"
	demoApprovers = "approvers"
	demoHeldFile  = "held-demo-file"
)

// demoApprovals is the demo's approval policy: every rm waits for one
// member of the group approvers.
var demoApprovals = approval.Policy{Rules: []approval.Rule{{
	Name: "rm-needs-approval", Match: approval.Match{Commands: []string{"rm"}},
	Action: approval.Approve, Approvers: []string{demoApprovers},
}}}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "demo [--listen 127.0.0.1:2222] [--oidc-issuer URL --oidc-client-id ID]", stdout)
	listen := fs.String("listen", "127.0.0.1:2222", "bastion listen `address` (loopback)")
	dirFlag := fs.String("data-dir", demoDir, "state `dir`ectory")
	issuer := fs.String("oidc-issuer", "", "try login with your OpenID provider: its issuer `URL`; the demo then runs its login API\nand prints a 'postern login' line. Every identity the provider vouches for (a verified\nemail) may reach the demo target")
	clientID := fs.String("oidc-client-id", "", "the public `client` registered at the provider for the demo (no secret; redirect URI\nhttp://127.0.0.1/callback on any port, and the device grant if you want --device)")
	loginListen := fs.String("login-listen", "127.0.0.1:0", "the login API's `address` (loopback, plain HTTP) with --oidc-issuer")
	allowFlag := fs.String("oidc-allow", "", "with --oidc-issuer, only these `identities` (comma-separated, e.g. you@example.com) may reach\nthe demo target, which runs commands as you; default: anyone the provider vouches for")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("demo: unexpected argument %q", fs.Arg(0))
	}
	login, err := demoLoginSection(*issuer, *clientID, *loginListen)
	if err != nil {
		return err
	}
	allow, err := demoAllow(*allowFlag, login)
	if err != nil {
		return err
	}
	if err := loopbackOnly(*listen); err != nil {
		return err
	}
	dir, err := filepath.Abs(*dirFlag)
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, slog.LevelInfo)
	var targetAddr string
	a, err := app.New(app.Config{
		Settings: &config.Config{Listen: *listen, DataDir: dir, IdleTimeout: time.Hour, KeepAliveInterval: 30 * time.Second,
			Approvals: demoApprovals, Login: login},
		Log: log,
		Extra: func(auth *certs.Authority, s *config.Config) ([]app.Server, error) {
			target, err := startDemoTarget(auth, s, log, allow)
			if err != nil {
				return nil, err
			}
			targetAddr = target.Addr()
			return []app.Server{app.WithoutDrain(target.Serve, target.Close)}, nil
		},
	})
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s is in use (another postern demo?); pick another with --listen 127.0.0.1:2223", *listen)
	}
	if err != nil {
		return err
	}
	if err := writeDemoClient(ctx, a, dir, stdout, log, targetAddr, login, allow); err != nil {
		a.Close()
		return err
	}
	return a.Run(ctx)
}

// startDemoTarget starts the demo target: an SSH server in this process
// that trusts the upstream CA, on loopback only. It adds the target and
// the rule that lets the demo user in to s's policy, and with login the
// rule for the identities in allow (everyone, when empty). The caller owns
// the server (the App runs and closes it).
func startDemoTarget(auth *certs.Authority, s *config.Config, log *slog.Logger, allow []string) (*demotarget.Server, error) {
	targetKey, err := certs.LoadOrCreateKey(filepath.Join(s.DataDir, "demo_target_ed25519"), "postern demo target")
	if err != nil {
		return nil, err
	}
	target, err := demotarget.New(demotarget.Config{
		Addr:      "127.0.0.1:0",
		HostKey:   targetKey,
		TrustedCA: auth.UpstreamCA.PublicKey(),
		Logins:    []string{demoLogin},
		Log:       log.With("component", "demo-target"),
	})
	if err != nil {
		return nil, fmt.Errorf("start demo target: %w", err)
	}
	s.Policy = bastion.Policy{
		Targets: []bastion.Target{{
			Name: demoTarget, Address: target.Addr(), HostKey: targetKey.PublicKey(),
			Labels: map[string]string{"env": "demo"}, Logins: []string{demoLogin}, DefaultLogin: demoLogin,
		}},
		Rules: []bastion.Rule{{
			Name: "demo", Principals: []string{demoPrincipal}, Targets: []string{demoTarget},
			Logins: []string{demoLogin},
		}},
	}
	if s.Login != nil { // whoever the provider vouches for, or those allowed
		who := allow
		if len(who) == 0 {
			who = []string{"*"}
		}
		s.Policy.Rules = append(s.Policy.Rules, bastion.Rule{
			Name: "demo-login", Principals: who, Targets: []string{demoTarget}, Logins: []string{demoLogin},
		})
	}
	return target, nil
}

// writeDemoClient writes the demo user's and the demo approver's keys and
// fresh certificates for them, and a known_hosts file that pins the
// bastion's host key, so that the printed commands verify the bastion like
// any production user would; then prints them.
func writeDemoClient(ctx context.Context, a *app.App, dir string, stdout io.Writer, log *slog.Logger, targetAddr string, login *config.Login, allow []string) error {
	addr := a.Addr().(*net.TCPAddr)
	keyPath := filepath.Join(dir, "id_ed25519")
	if err := writeDemoKey(ctx, a, keyPath, "postern demo user", []string{demoPrincipal}, nil, log); err != nil {
		return err
	}
	approverKey := filepath.Join(dir, "approver_ed25519")
	if err := writeDemoKey(ctx, a, approverKey, "postern demo approver", []string{demoApprover}, []string{demoApprovers}, log); err != nil {
		return err
	}
	khPath := filepath.Join(dir, "known_hosts")
	host := addr.IP.String()
	kh := "[" + host + "]:" + strconv.Itoa(addr.Port) + " " + string(ssh.MarshalAuthorizedKey(a.Auth.HostKey.PublicKey()))
	if err := os.WriteFile(khPath, []byte(kh), 0o644); err != nil {
		return err
	}
	// Something for the held rm to remove once approved.
	if err := os.WriteFile(filepath.Join(dir, demoHeldFile), []byte("remove me once approved\n"), 0o644); err != nil {
		return err
	}
	opts := func(key string) string {
		return fmt.Sprintf("-p %d -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s", addr.Port, shellQuote(key), shellQuote(khPath))
	}
	base := fmt.Sprintf("ssh %s %s@%s@%s", opts(keyPath), demoLogin, demoTarget, host)
	admin := fmt.Sprintf("ssh %s %s@%s", opts(approverKey), bastion.AdminUser, host)
	_, err := fmt.Fprintf(stdout, `Postern demo is running (state in %s).
The bastion listens on %s; the demo target is an SSH server in this process on %s.

Open a shell through the bastion:
%s

Run one command:
%s 'echo hello from $(hostname); exit 3'

Ask the bastion itself who you are (the admin connection, user postern):
%s

The demo's policy holds every rm until an approver says yes. Run one:
%s 'rm -v %s'
and, in another terminal, see the request and decide it as the demo approver:
%s approvals
%s approve ID
%s deny ID --reason not now

Copy a file with scp -O (plain scp uses sftp, which the demo target lacks):
%s

Every session is recorded. In this directory (%s):
  %[14]s sessions       list them
  %[14]s play ID        replay one
  %[14]s verify         check nothing was tampered with

%sCtrl-C stops the demo.
`, dir, addr, targetAddr, base, base,
		strings.Replace(base, demoLogin+"@"+demoTarget+"@", bastion.AdminUser+"@", 1)+" whoami",
		base, shellQuote(filepath.Join(dir, demoHeldFile)), admin, admin, admin,
		fmt.Sprintf("scp -O %s FILE %s@%s@%s:", strings.Replace(opts(keyPath), "-p ", "-P ", 1), demoLogin, demoTarget, host),
		filepath.Dir(dir), invokedName(os.Args[0]), demoLoginText(a.LoginURL(), login, host, allow))
	return err
}

// demoLoginSection is the demo's login section with --oidc-issuer: the API on
// loopback, plain HTTP; nil without it.
func demoLoginSection(issuer, clientID, listen string) (*config.Login, error) {
	if issuer == "" && clientID == "" {
		return nil, nil
	}
	if issuer == "" || clientID == "" {
		return nil, usagef("demo: --oidc-issuer and --oidc-client-id go together")
	}
	if err := config.CheckIssuer(issuer); err != nil {
		return nil, usagef("demo: --oidc-issuer: %v", err)
	}
	if err := config.CheckClientID(clientID); err != nil {
		return nil, usagef("demo: --oidc-client-id: %v", err)
	}
	if err := loopbackOnly(listen); err != nil {
		return nil, usagef("demo: --login-listen: %v", err)
	}
	l := config.NewLogin()
	l.Listen, l.PlainHTTP, l.Issuer, l.ClientID, l.Device = listen, true, issuer, clientID, true
	return l, nil
}

// demoAllow reads --oidc-allow: identities, each a name a certificate can
// carry; only with --oidc-issuer.
func demoAllow(flag string, login *config.Login) ([]string, error) {
	if flag == "" {
		return nil, nil
	}
	if login == nil {
		return nil, usagef("demo: --oidc-allow goes with --oidc-issuer and --oidc-client-id")
	}
	var out []string
	for _, n := range strings.Split(flag, ",") {
		n = strings.TrimSpace(n)
		if n == "" || n == "*" || strings.ContainsFunc(n, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return nil, usagef("demo: --oidc-allow %q: give identities (as the provider's tokens name them), comma-separated, like you@example.com", flag)
		}
		out = append(out, n)
	}
	return out, nil
}

// demoLoginText is what the demo prints about login, if it runs the API.
func demoLoginText(u string, login *config.Login, host string, allow []string) string {
	if u == "" || login == nil {
		return ""
	}
	who := fmt.Sprintf(`Anyone with an account at %s may use it, including the other users of this machine:
the demo target runs their commands as you. --oidc-allow you@example.com limits it to you.`, login.Issuer)
	if len(allow) > 0 {
		who = "The demo target lets in only " + strings.Join(allow, ", ") + " (--oidc-allow); it runs their commands as you."
	}
	return fmt.Sprintf(`Log in with your OpenID provider (%s) for a certificate of your own
(--device for the device grant), then connect with it:
%s login %s
ssh -F ~/.postern/ssh_config %s@%s@%s
%s

`, login.Issuer, invokedName(os.Args[0]), u, demoLogin, demoTarget, host, who)
}

// writeDemoKey makes (or reuses) the key at keyPath and writes a fresh
// certificate for it beside it.
func writeDemoKey(ctx context.Context, a *app.App, keyPath, keyID string, principals, groups []string, log *slog.Logger) error {
	key, err := certs.LoadOrCreateKey(keyPath, keyID)
	if err != nil {
		return err
	}
	cert, err := issueDemoCert(ctx, a, key.PublicKey(), keyID, principals, groups, log)
	if err != nil {
		return err
	}
	return os.WriteFile(keyPath+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644)
}

// issueDemoCert signs the demo user's certificate like `ca sign` does:
// with a serial from the index's register of issued certificates, sealed
// in the audit chain, and an audit record (invariant 4: every certificate
// issued has one).
func issueDemoCert(ctx context.Context, a *app.App, pub ssh.PublicKey, keyID string, principals, groups []string, log *slog.Logger) (*ssh.Certificate, error) {
	const ttl = 12 * time.Hour
	now := time.Now()
	rec, err := a.Store.IssueCert(ctx, recorder.IssuedCert{
		KeyID: keyID, Principals: principals, Groups: groups, Key: ssh.FingerprintSHA256(pub),
		ValidAfter: time.Unix(now.Add(-certs.Backdate).Unix(), 0).UTC(), ValidBefore: time.Unix(now.Add(ttl).Unix(), 0).UTC(),
		IssuedAt: now.UTC(), IssuedBy: "postern demo",
	})
	if err != nil {
		return nil, fmt.Errorf("register the certificate of the %s: %w", keyID, err)
	}
	cert, err := a.Auth.SignUser(pub, certs.UserCertRequest{
		Principals: principals, Groups: groups, TTL: ttl, KeyID: keyID, Now: now, Serial: rec.Serial,
	})
	if err != nil {
		return nil, err
	}
	attrs := []any{"identity", principals[0], "key_id", keyID, "principals", principals, "groups", groups,
		"serial", cert.Serial, "key", rec.Key, "valid_after", rec.ValidAfter, "valid_before", rec.ValidBefore, "issued_by", rec.IssuedBy}
	if head, err := a.Store.Head(ctx); err == nil && head != nil {
		attrs = append(attrs, "chain_head", head.String())
	}
	audit.Record(log, audit.CertIssued, attrs...)
	return cert, nil
}

// loopbackOnly refuses a demo listen address other than loopback: the
// demo target runs every command as the user who started the demo, with a
// certificate anyone can read in the state directory.
func loopbackOnly(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return usagef("demo: --listen %q: %v", listen, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return usagef("demo: --listen %s is not a loopback address: the demo runs commands as the user who started it, so it listens on loopback only (127.0.0.1, ::1 or localhost); 'postern serve --config FILE' serves others", listen)
}

// invokedName is how the printed commands name this binary: as it was
// invoked when that was a path (./bin/postern), else postern (on PATH).
func invokedName(arg0 string) string {
	if strings.ContainsRune(arg0, '/') {
		return shellQuote(arg0)
	}
	return "postern"
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,@=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
