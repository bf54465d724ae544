package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Timeouts of the metrics listener: scrapes are small and quick.
const (
	readHeaderTimeout = 5 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 8 << 10
	// maxInFlight bounds concurrent scrapes; more get 503.
	maxInFlight = 4
)

// Handler serves
//
//	GET /metrics   the registry, in Prometheus' text format
//	GET /healthz   200 "ok" while the process serves HTTP
//	GET /readyz    200 "ready" when ready returns nil, else 503 and its
//	               error: the bastion is not (or no longer) accepting
//	               sessions, and a load balancer should send none
func (m *Metrics) Handler(ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: maxInFlight}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			text(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		text(w, http.StatusOK, "ready")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusNotFound, "no such endpoint: this listener has GET /metrics, /healthz and /readyz")
	})
	return mux
}

func text(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write([]byte(msg + "\n"))
}

// Server serves a Handler on its own listener, plain HTTP. Listen makes
// it; Serve runs it until Shutdown. It implements app.Server.
type Server struct {
	srv *http.Server
	l   net.Listener
	log *slog.Logger
}

// Listen listens on addr (host:port) for h. log, if not nil, gets the
// address it listens on.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{l: l, log: log, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// URL is the server's base URL, like http://127.0.0.1:9100.
func (s *Server) URL() string { return "http://" + s.l.Addr().String() }

// Serve serves until Shutdown, which makes it return nil.
func (s *Server) Serve(context.Context) error {
	s.log.Info("metrics listening", "url", s.URL())
	if err := s.srv.Serve(s.l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting and lets scrapes in flight end until ctx is
// done, then closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.l.Close() // in case Serve never ran
	if ctx.Err() != nil {
		return nil
	}
	return err
}
