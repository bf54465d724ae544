// Package bastion is Postern's SSH server: it authenticates users by
// certificate, routes LOGIN@TARGET to a target under the policy, dials the
// target with a certificate it mints for the session, and forwards the
// session's channels, seeing every byte. The reserved user name AdminUser
// routes to the admin connection instead: built-in commands run on the
// bastion, no target (route.go, admin.go, admincmd.go).
//
// Contexts flow from Serve to each connection and each channel, and are
// cancelled with a cause (userError) whose message is what the client is
// told. A session channel (session.go) starts at most one program, at one
// gate (startProgram, program.go), which chooses its pipeline once: the
// terminal (stream.go: an input stage that can hold, a masked output stage
// whose strict stream observers include the recording, recording.go) or a
// transfer mode that parses sftp, scp or rsync both ways (transfer.go).
// The reply to the request that started a program reaches the client
// before the program's output, exit status, EOF and CLOSE.
package bastion

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/mask"
)

// DefaultEnvAllow is the env allowlist when Config.EnvAllow is nil.
var DefaultEnvAllow = []string{"LANG", "LC_*"}

// Config configures a Server. Zero values of the durations mean the defaults
// documented on each field; Authority is required.
type Config struct {
	// Policy decides who reaches which target as which login.
	Policy Policy
	// Authority holds the host key, the user CA and the upstream CA.
	Authority *certs.Authority
	// IdleTimeout closes a connection with no channel data in either
	// direction for this long. Zero disables it.
	IdleTimeout time.Duration
	// KeepAliveInterval is how often the bastion probes the client;
	// KeepAliveMax probes without an answer end the connection. Zero
	// interval disables probing; zero max means 3.
	KeepAliveInterval time.Duration
	KeepAliveMax      int
	// EnvAllow lists the environment variables a client may set (a
	// trailing '*' is a prefix match). Nil means DefaultEnvAllow.
	EnvAllow []string
	// HandshakeTimeout bounds key exchange plus authentication; zero
	// means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Limits bound the connections and channels clients may hold
	// (limits.go); zero fields mean DefaultLimits.
	Limits Limits
	// DialTimeout bounds connecting and authenticating to a target; zero
	// means 15 seconds.
	DialTimeout time.Duration
	// Recording, if not nil, records every shell and exec session
	// channel and seals it in the audit chain.
	Recording *Recording
	// SessionLimits bound each session's duration, recording size and
	// the disk its recording needs (sessionlimits.go). The zero value sets
	// none.
	SessionLimits SessionLimits
	// Ciphers are the SSH ciphers the bastion offers its clients and asks
	// of its targets, in order of preference. Nil means DefaultCiphers.
	Ciphers []string
	// HostNames are the names users connect to the bastion by: the
	// principals of the host certificate it presents when the Authority
	// has a host CA. Without them it presents none.
	HostNames []string
	// ApprovalRules decide exec command lines before they reach the
	// target: allow, deny (exit 126) or hold for approval in Approvals.
	// Nil or empty: every command runs.
	ApprovalRules *approval.Policy
	// Approvals holds approval requests and their decisions; the admin
	// connection's approvals, show, approve and deny commands use it.
	// Nil: this bastion holds nothing for approval, and those commands
	// say so.
	Approvals *approval.Broker
	// Admins may run the admin connection's admin-only commands
	// (sessions): an entry NAME matches a certificate principal,
	// "group:NAME" a group of its groups@postern extension (see
	// CheckAdmin). Every authenticated user may open the admin
	// connection and run whoami and help. Nil means no admins.
	Admins []string
	// Detect says which numbers masking treats as card numbers, in
	// session output and input, recordings and transfers. The zero value
	// is mask.DetectBrands. Log lines are masked with mask.DetectBrands
	// whatever it says.
	Detect mask.Detect
	// maskDeadline replaces mask.DefaultDeadline for the terminal's
	// output, in tests that must not depend on timing; zero: the default.
	maskDeadline time.Duration
	// noSpeculation, in tests and benchmarks, dials every target after
	// authentication (speculate.go).
	noSpeculation bool
	// noQuickAck, in tests, leaves acknowledgements to the kernel's
	// default during setup (quickack.go).
	noQuickAck bool
	// Log receives structured logs and audit records, with every PAN
	// in their text masked; nil discards.
	Log *slog.Logger
	// Revocations are the revoked certificates, refused at
	// authentication; Server.Revoke adds to it and ends the live
	// connections. Nil means an empty list of the Server's own.
	Revocations *certs.RevocationList
	// Metrics receives the bastion's counts (metrics.go); nil counts
	// nothing.
	Metrics Metrics
}

// DefaultCiphers is the cipher policy when Config.Ciphers is nil: AES-GCM
// only. It is the AEAD cipher NIST approves (FIPS 140), which PCI DSS
// assessors recognise as strong cryptography, and x/crypto runs it with
// AES-NI at about 2.5 times the speed of its pure-Go chacha20-poly1305.
// OpenSSH clients put chacha20-poly1305 first and pick it whenever the
// server offers it, so offering it at all would make it the cipher of
// nearly every session.
var DefaultCiphers = []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com"}

// keyExchanges are x/crypto's defaults without the SHA-1 group exchange
// (diffie-hellman-group14-sha1), which PCI DSS scans flag. macs likewise
// drop SHA-1; they matter only for a non-AEAD cipher an operator adds.
var (
	keyExchanges = []string{
		ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519,
		ssh.KeyExchangeECDHP256, ssh.KeyExchangeECDHP384, ssh.KeyExchangeECDHP521,
		ssh.KeyExchangeDH14SHA256,
	}
	macs = []string{
		ssh.HMACSHA256ETM, ssh.HMACSHA512ETM, ssh.HMACSHA256, ssh.HMACSHA512,
	}
)

// userAuthAlgorithms are the signature algorithms a user may authenticate
// with, and what server-sig-algs advertises (RFC 8308 section 3.1):
// x/crypto's defaults without ssh-rsa, whose signatures use SHA-1 (OpenSSH
// refuses them by default since 8.8). RSA keys and certificates still work
// with rsa-sha2-256/512 (RFC 8332); a certificate's algorithm is judged by
// the signature it carries, so ssh-rsa-cert-v01 is refused with ssh-rsa.
var userAuthAlgorithms = []string{
	ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoSKECDSA256,
	ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
}

// sshConfig is the algorithm policy both legs use.
func (s *Server) sshConfig() ssh.Config {
	return ssh.Config{Ciphers: s.cfg.Ciphers, KeyExchanges: keyExchanges, MACs: macs}
}

// SupportedCiphers are the ciphers Config.Ciphers may name.
func SupportedCiphers() []string { return ssh.SupportedAlgorithms().Ciphers }

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("bastion: server closed")

// Server is an SSH bastion. Create it with New; Close or Shutdown ends it
// and waits for every connection goroutine.
type Server struct {
	cfg     Config
	log     *slog.Logger
	checker certs.Checker
	revoked *certs.RevocationList  // the checker's, which Revoke adds to
	metrics Metrics                // never nil
	rules   atomic.Pointer[Rules]  // in force; SetRules swaps it (reload.go)
	live    liveChannels           // session channels, for Announce (drain.go)
	drain   atomic.Pointer[string] // the drain's notice, once Drain began (drain.go)
	drained drainSignal            // closed when Drain begins, for approvals --watch (drain.go)

	wg sync.WaitGroup // one per Serve loop and per connection

	gate     *limitGate  // the Limits' counts
	limitLog *limitAudit // audit records of refusals by a limit
	loginLog *limitAudit // connect records of handshakes no one was identified in
	disk     diskWatch   // when the free-disk floor is checked next

	// wrapChannel, if set (tests only), wraps each session channel the
	// bastion accepts, to see the frames it sends the client in order.
	wrapChannel func(ssh.Channel) ssh.Channel

	mu        sync.Mutex // guards listeners, conns, closed
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closed    bool

	specs speculations // speculative upstream connections (speculate.go)

	hostCertMu sync.Mutex // guards hostCert
	hostCert   *ssh.Certificate
	hostSigner ssh.Signer // hostCert with the host key
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Authority == nil {
		return nil, errors.New("bastion: Config.Authority is required")
	}
	if cfg.KeepAliveMax <= 0 {
		cfg.KeepAliveMax = 3
	}
	if cfg.EnvAllow == nil {
		cfg.EnvAllow = DefaultEnvAllow
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	g, err := newGate(&cfg.Limits)
	if err != nil {
		return nil, fmt.Errorf("bastion: Config.Limits: %w", err)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	if cfg.Ciphers == nil {
		cfg.Ciphers = DefaultCiphers
	}
	if len(cfg.Ciphers) == 0 {
		return nil, errors.New("bastion: Config.Ciphers is empty")
	}
	for _, c := range cfg.Ciphers {
		if !slices.Contains(SupportedCiphers(), c) {
			return nil, fmt.Errorf("bastion: unsupported cipher %q", c)
		}
	}
	if cfg.IdleTimeout < 0 || cfg.KeepAliveInterval < 0 {
		return nil, errors.New("bastion: negative timeout")
	}
	rules := rulesOf(&cfg)
	if err := checkRules(rules); err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	if cfg.Log != nil {
		// Every log line and audit record goes through the masker:
		// client and target text (user names, disconnect reasons,
		// request names, errors that quote them) can hold a PAN, and
		// no call site has to remember (DESIGN invariant 1).
		log = slog.New(mask.NewHandler(cfg.Log.Handler()))
	}
	revoked := cfg.Revocations
	if revoked == nil {
		revoked = &certs.RevocationList{}
	}
	m := cfg.Metrics
	if m == nil {
		m = noMetrics{}
	}
	s := &Server{
		cfg:       cfg,
		metrics:   m,
		log:       log,
		checker:   certs.Checker{CA: cfg.Authority.UserCA.PublicKey(), Revoked: revoked},
		revoked:   revoked,
		gate:      g,
		limitLog:  newLimitAudit(log),
		loginLog:  newLoginAudit(log),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
	s.rules.Store(rules)
	return s, nil
}

// Serve accepts connections on l until Shutdown or Close, which make it
// return ErrServerClosed, or until ctx is done, which makes it return ctx's
// cause. ctx is the parent of every connection's context: cancelling it
// ends the connections accepted here at once, each channel showing the
// cause's UserMessage (see userError). To drain sessions instead, call
// Shutdown before cancelling ctx. Serve closes l.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	// ctx ending closes l, which ends Accept; the watcher is waited for.
	var watch sync.WaitGroup
	stop := make(chan struct{})
	watch.Go(func() {
		select {
		case <-ctx.Done():
			l.Close()
		case <-stop:
		}
	})
	defer watch.Wait()
	defer close(stop)

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			var ne net.Error
			// Running out of file descriptors is transient: back off
			// rather than stop serving everyone.
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		backoff = 0
		// Accepted counts every connection the listener accepted; the
		// ones the limits refuse at admission are a part of it.
		s.metrics.ConnAccepted()
		lim, ok := s.admit(nc)
		if !ok {
			continue
		}
		c := s.newConn(ctx, nc)
		c.lim = lim
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.metrics.ConnRefused(RefusedShutdown)
			c.cancel(ErrServerClosed)
			c.endLimits()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			defer c.endLimits()
			c.serve()
			if c.authenticated() {
				s.metrics.SessionEnded()
			}
		}()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Shutdown stops accepting, then waits for open connections to end until
// ctx is done, when it closes them. It returns ctx's error if it had to
// close connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	// The waiter ends when the connections do, which the select
	// guarantees by closing them if ctx ends first.
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.limitLog.flush(); s.loginLog.flush(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.closeConns(errShutdown)
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection, and waits for them.
func (s *Server) Close() error {
	s.closeListeners()
	s.closeConns(errShutdown)
	s.wg.Wait()
	s.limitLog.flush()
	s.loginLog.flush()
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
}

// closeConns ends every connection with cause, which its channels show.
func (s *Server) closeConns(cause error) {
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.terminate(cause)
	}
}
