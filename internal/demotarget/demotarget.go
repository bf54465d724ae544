// Package demotarget is the SSH target built into `postern demo`: a small
// SSH server that trusts the bastion's upstream CA, so a demo needs no sshd.
//
// It is only for demos. Whatever login a client uses, commands run as the
// OS user running the process, so it listens on loopback only.
package demotarget

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
)

// Config configures New.
type Config struct {
	// Addr is the TCP address to listen on. It must be a loopback address
	// (an IP literal or "localhost"). "" means 127.0.0.1:0 (any free port).
	Addr string
	// HostKey is the server's host key. Required.
	HostKey ssh.Signer
	// TrustedCA signs the user certificates the server accepts. Required.
	TrustedCA ssh.PublicKey
	// Logins are the login names accepted. Empty means any login (that the
	// certificate names as a principal).
	Logins []string
	// Shell runs commands and interactive sessions; it must be an absolute
	// path. "" means $SHELL, or /bin/sh if that is not an absolute path.
	Shell string
	// Log receives the server's logs. Nil discards them.
	Log *slog.Logger
}

// Server is a demo target listening since New. Serve accepts connections
// until Close, which the caller must call (also if Serve is never called).
// Addr, Serve and Close are safe for concurrent use. There is no useful zero
// value; use New.
type Server struct {
	ln      net.Listener
	srv     *gliderssh.Server
	checker ssh.CertChecker
	logins  []string
	shell   string
	home    string // HOME of the process user, and the sessions' directory
	path    string // PATH for sessions
	osUser  string // who commands really run as, for the banner
	log     *slog.Logger

	nextConn    atomic.Uint64
	nextSession atomic.Uint64

	mu     sync.Mutex // guards closed, conns and wg.Add
	closed bool
	conns  map[net.Conn]struct{} // accepted and not yet finished

	// wg counts every goroutine the server starts or runs a handler in;
	// Close waits for it. Add only under mu while !closed.
	wg sync.WaitGroup
}

// version is sent in the SSH identification string (RFC 4253 section 4.2,
// so no spaces or dashes).
const version = "Postern_demo_target"

// New validates cfg and listens on cfg.Addr. The caller must call Close.
func New(cfg Config) (*Server, error) {
	if cfg.HostKey == nil {
		return nil, errors.New("demotarget: config: HostKey is required")
	}
	if cfg.TrustedCA == nil {
		return nil, errors.New("demotarget: config: TrustedCA is required")
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := checkLoopback(addr); err != nil {
		return nil, fmt.Errorf("demotarget: config: %w", err)
	}
	shell, err := shellOf(cfg.Shell)
	if err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	home, path, osUser := environment()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("demotarget: listen on %s: %w", addr, err)
	}
	// "localhost" could resolve to something else; check what was bound.
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("demotarget: config: %s listens on non-loopback %s", addr, ip)
	}

	caKey := cfg.TrustedCA.Marshal()
	s := &Server{
		ln: ln,
		checker: ssh.CertChecker{
			IsUserAuthority: func(auth ssh.PublicKey) bool { return bytes.Equal(auth.Marshal(), caKey) },
		},
		logins: slices.Clone(cfg.Logins),
		shell:  shell,
		home:   home,
		path:   path,
		osUser: osUser,
		log:    log,
		conns:  make(map[net.Conn]struct{}),
	}
	s.srv = &gliderssh.Server{
		Handler:          s.handleSession,
		HostSigners:      []gliderssh.Signer{cfg.HostKey},
		Version:          version,
		Banner:           fmt.Sprintf("Postern demo target: commands run as %s, whatever the login.\r\n", osUser),
		PublicKeyHandler: s.authenticate,
		PtyCallback:      s.allowPty,
		ConnCallback:     s.connCallback,
		ConnectionFailedCallback: func(c net.Conn, err error) {
			s.log.Info("handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		},
		// Only sessions: no direct-tcpip (the port forwarding callbacks
		// are nil, which denies), no global requests (tcpip-forward).
		ChannelHandlers:   map[string]gliderssh.ChannelHandler{"session": s.handleChannel},
		RequestHandlers:   map[string]gliderssh.RequestHandler{},
		SubsystemHandlers: map[string]gliderssh.SubsystemHandler{"default": s.handleSubsystem},
	}
	return s, nil
}

// shellOf is the shell commands run with: shell, else $SHELL if absolute,
// else /bin/sh.
func shellOf(shell string) (string, error) {
	if shell == "" {
		shell = os.Getenv("SHELL")
		if !filepath.IsAbs(shell) {
			shell = "/bin/sh"
		}
	}
	if !filepath.IsAbs(shell) {
		return "", fmt.Errorf("demotarget: config: Shell %q is not an absolute path", shell)
	}
	return shell, nil
}

// environment is the home directory, PATH and user name the demo's
// commands run with: this process's own, with defaults.
func environment() (home, path, osUser string) {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/"
	}
	path = os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	osUser = os.Getenv("USER")
	if osUser == "" {
		osUser = fmt.Sprintf("uid %d", os.Getuid())
	}
	return home, path, osUser
}

// checkLoopback accepts host:port whose host is a loopback IP or
// "localhost".
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q is not loopback (the demo target runs commands for any login)", addr)
	}
	return nil
}

// Addr returns the address the server listens on, as host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve accepts connections until Close, handling each in a goroutine that
// Close waits for. It returns nil after Close, or the error that stopped
// accepting. Call it once.
func (s *Server) Serve() error {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("demotarget: accept: %w", err)
		}
		ic := &idConn{Conn: c, id: s.nextConn.Add(1)}
		if !s.track(func() { s.conns[ic] = struct{}{} }) {
			c.Close()
			return nil
		}
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, ic)
				s.mu.Unlock()
			}()
			s.srv.HandleConn(ic)
		}()
	}
}

// track adds one to wg, after running also under mu, unless the server is
// closed.
func (s *Server) track(also func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if also != nil {
		also()
	}
	s.wg.Add(1)
	return true
}

// Close stops accepting, closes every connection (which kills the process
// groups of their sessions), and waits for all the server's goroutines. It
// is idempotent.
//
// gliderlabs/ssh starts a few goroutines per connection that the server
// cannot count (the global request loop and the tail of each channel
// handler); they end on their own once the connection is closed.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("demotarget: close listener: %w", err)
	}
	return nil
}

// idConn carries the connection number, for logs, into gliderlabs'
// context.
type idConn struct {
	net.Conn
	id uint64
}

type ctxKey struct{ name string }

var connIDKey = &ctxKey{"conn"}

func (s *Server) connCallback(ctx gliderssh.Context, c net.Conn) net.Conn {
	if ic, ok := c.(*idConn); ok {
		ctx.SetValue(connIDKey, ic.id)
	}
	return c
}

func (s *Server) connLog(ctx gliderssh.Context) *slog.Logger {
	id, _ := ctx.Value(connIDKey).(uint64)
	return s.log.With("conn", id)
}

// authenticate accepts only a user certificate signed by the trusted CA
// that names the login as a principal and is valid now.
func (s *Server) authenticate(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
	log := s.connLog(ctx).With("user", ctx.User())
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		log.Info("auth refused", "reason", "not a certificate", "key_type", key.Type())
		return false
	}
	// The client may offer (query) several keys before signing with one,
	// and gliderlabs keeps one set of permissions per connection: once a
	// certificate is accepted, refuse others so its permissions are the ones
	// in force.
	if prev, ok := ctx.Value(gliderssh.ContextKeyPublicKey).(gliderssh.PublicKey); ok && !gliderssh.KeysEqual(prev, key) {
		log.Info("auth refused", "reason", "another certificate already accepted")
		return false
	}
	if len(s.logins) > 0 && !slices.Contains(s.logins, ctx.User()) {
		log.Info("auth refused", "reason", "login not allowed", "key_id", cert.KeyId)
		return false
	}
	// Authenticate checks the type, the CA, the principal, the validity
	// window and critical options (only source-address is supported, which
	// x/crypto enforces from the returned permissions).
	perms, err := s.checker.Authenticate(connMeta{ctx}, cert)
	if err != nil {
		log.Info("auth refused", "reason", err.Error(), "key_id", cert.KeyId)
		return false
	}
	p := ctx.Permissions()
	p.CriticalOptions = maps.Clone(perms.CriticalOptions)
	p.Extensions = maps.Clone(perms.Extensions)
	log.Info("auth accepted", "key_id", cert.KeyId, "serial", cert.Serial)
	return true
}

// allowPty grants a pty only to certificates with permit-pty, as sshd does.
func (s *Server) allowPty(ctx gliderssh.Context, _ gliderssh.Pty) bool {
	_, ok := ctx.Permissions().Extensions["permit-pty"]
	return ok
}

// connMeta adapts gliderlabs' context to ssh.ConnMetadata for
// CertChecker.Authenticate.
type connMeta struct{ ctx gliderssh.Context }

func (m connMeta) User() string          { return m.ctx.User() }
func (m connMeta) SessionID() []byte     { return []byte(m.ctx.SessionID()) }
func (m connMeta) ClientVersion() []byte { return []byte(m.ctx.ClientVersion()) }
func (m connMeta) ServerVersion() []byte { return []byte(m.ctx.ServerVersion()) }
func (m connMeta) RemoteAddr() net.Addr  { return m.ctx.RemoteAddr() }
func (m connMeta) LocalAddr() net.Addr   { return m.ctx.LocalAddr() }
