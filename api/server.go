package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Timeouts of the API's HTTP server. WriteTimeout leaves room for a
// request that waits for the provider's keys (at most 10 s).
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
)

// ServerConfig says where and how the API listens.
type ServerConfig struct {
	// Addr is host:port to listen on.
	Addr string
	// CertFile and KeyFile are the PEM certificate (chain) and key the
	// API serves TLS (1.2 and later) with; required unless PlainHTTP.
	// They are read once, at Listen: restart to change them.
	CertFile, KeyFile string
	// PlainHTTP serves without TLS; only allowed when the listener is
	// on a loopback address.
	PlainHTTP bool
	// MaxConns bounds the connections held at once, MaxConnsPerClient
	// those from one address (an IPv6 /64 counts as one); past either, a
	// new connection is closed at once. 0 means DefaultMaxConns and
	// DefaultMaxConnsPerClient.
	MaxConns, MaxConnsPerClient int
}

// Server is the API on its listener. It implements app.Server.
type Server struct {
	api  *API
	srv  *http.Server
	l    net.Listener
	tls  bool
	log  *slog.Logger
	stop context.CancelFunc // ends the start-up discovery
	ctx  context.Context
	wg   sync.WaitGroup
}

// Listen makes the API listen where and how cfg says; the caller Serves it, or
// Shuts it down. Plain HTTP on an address that is not loopback is refused.
func Listen(a *API, cfg ServerConfig) (*Server, error) {
	var tc *tls.Config
	if !cfg.PlainHTTP {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("login API: load TLS certificate %s and key %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		tc = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("login API: listen on %s: %w", cfg.Addr, err)
	}
	if tcp, ok := l.Addr().(*net.TCPAddr); cfg.PlainHTTP && (!ok || !tcp.IP.IsLoopback()) {
		l.Close()
		return nil, fmt.Errorf("login API: plain HTTP on %s, which is not a loopback address: serve TLS (tls_cert, tls_key) or listen on 127.0.0.1", l.Addr())
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerClient <= 0 {
		cfg.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
	l = newConnLimit(l, cfg.MaxConns, cfg.MaxConnsPerClient)
	if tc != nil {
		l = tls.NewListener(l, tc)
	}
	s := &Server{api: a, l: l, tls: tc != nil, log: a.log}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.srv = &http.Server{
		Handler:           a,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		// TLS handshakes that fail (scanners, wrong clients) are
		// noise: debug level.
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// URL is the API's base URL on its listening address.
func (s *Server) URL() string {
	scheme := "https"
	if !s.tls {
		scheme = "http"
	}
	return scheme + "://" + s.l.Addr().String()
}

// Serve serves until Shutdown. It first reaches the provider in the
// background, to log a misconfiguration at start rather than at the
// first login.
func (s *Server) Serve(context.Context) error {
	s.wg.Go(func() {
		if err := s.api.Discover(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("login API: the identity provider cannot be discovered yet; certificate requests fail until it can", "issuer", s.api.cfg.Issuer, "err", err)
		}
	})
	s.log.Info("login API listening", "url", s.URL(), "issuer", s.api.cfg.Issuer)
	if err := s.srv.Serve(s.l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting, lets requests in flight end until ctx is
// done, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.l.Close() // in case Serve never ran
	s.wg.Wait()
	if ctx.Err() != nil {
		return nil // the drain deadline: what was left is closed
	}
	return err
}
