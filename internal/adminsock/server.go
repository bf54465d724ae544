package adminsock

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/postern/postern/recorder"
)

// DefaultRetention is how long a server keeps a recording when its Config
// says nothing: a year (PCI DSS 10.5.1), as the config's default
// recording.retention_days.
const DefaultRetention = 365 * 24 * time.Hour

// Config is what New builds a Server from. Store is required.
type Config struct {
	// Store is what the socket serves.
	Store recorder.Store
	// Retention is the server's own: a prune through the socket never
	// deletes a session that ended less than Retention ago, whatever
	// the client asks. Zero means DefaultRetention.
	Retention time.Duration
	// Log receives the audit records of what is done through the socket
	// (certificates issued, with the chain head they make; prunes) and
	// warnings; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Revoke, if not nil, applies a revocation recorded through the
	// socket to the running bastion (refuse the certificates it covers,
	// end their live connections) and returns how many connections it
	// ended.
	Revoke func(recorder.Revocation) int
}

// Server answers admin requests for a store. It is an http.Handler: POST
// /v1/OP with a JSON body and a JSON answer, and GET /v1/open?name=NAME
// streaming a recording. An error is a non-2xx status with a JSON
// wireError, which the Client turns back into the error the store
// returned. It is safe for concurrent use.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New validates cfg and returns its Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("admin socket: no store to serve")
	}
	if cfg.Retention < 0 {
		return nil, errors.New("admin socket: negative retention")
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Log, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.routes()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Listen creates the admin socket of dataDir, mode 0600. A live socket of
// this user's is ErrInUse; a stale one (nothing accepts on it) is
// replaced; so is anything else at the path, a link or another user's
// socket, with a warning in the log. Closing the listener removes the
// socket file.
func (s *Server) Listen(dataDir string) (net.Listener, error) { return listen(dataDir, s.log) }

// Serve serves st on l with the default Config (see New and
// Server.Serve).
func Serve(ctx context.Context, l net.Listener, st recorder.Store) error {
	s, err := New(Config{Store: st})
	if err != nil {
		l.Close()
		return err
	}
	return s.Serve(ctx, l)
}

// Serve answers admin requests on l until ctx is done, then stops
// accepting, lets requests in progress finish for up to 5 seconds, and
// closes l. It returns nil after ctx is done, else the error that stopped
// it. Each connection's peer (SO_PEERCRED) is known to the handlers; a
// connection whose peer cannot be read is served without it, and a
// certificate issue on it is refused.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if p, err := peerCred(c); err == nil {
				return context.WithValue(ctx, peerKey{}, p)
			}
			return ctx
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// peerKey is the context key of a connection's Peer.
type peerKey struct{}

// peerOf is the peer of the connection r came on.
func peerOf(r *http.Request) (Peer, bool) {
	p, ok := r.Context().Value(peerKey{}).(Peer)
	return p, ok
}
