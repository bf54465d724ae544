// Package adminsock is the admin socket: DATA_DIR/admin.sock, through
// which admin commands on the bastion host reach the running server's
// store while it owns the data directory.
//
// The server side ([Listen], [Serve], [Handler]) exposes a recorder.Store
// as plain HTTP+JSON over the unix socket; the client side ([Dial],
// [Client]) implements recorder.Store on top of it, so a command runs the
// same code, and prints the same output, whether it talks to a server or
// opens the data directory itself. The socket is mode 0600: only the data
// directory's owner (and root) can connect.
//
// The socket is read-mostly: it serves what admin commands need (list,
// get, snapshot, prune, recordings, certificate serials) and refuses
// recording sessions, which only the server does.
package adminsock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/postern/postern/recorder"
)

// Name is the socket's file name in the data directory.
const Name = "admin.sock"

// Path is the socket of dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, Name) }

// ErrNoServer is Dial's error when no server listens on the socket: the
// file is missing, or nothing accepts connections on it (a stale file of a
// server that died).
var ErrNoServer = errors.New("no postern server on the admin socket")

// ErrInUse is Listen's error when a live server already answers on the
// socket.
var ErrInUse = errors.New("data directory in use: another postern answers on its admin socket")

// Listen creates the admin socket of dataDir, mode 0600. A stale socket
// file, which nothing accepts connections on, is replaced; a live one is
// ErrInUse. Closing the listener removes the socket file.
func Listen(dataDir string) (net.Listener, error) {
	p := Path(dataDir)
	// sockaddr_un holds 108 bytes with the NUL; the temporary name is
	// longer by ".new".
	if len(p)+len(".new") >= 108 {
		return nil, fmt.Errorf("admin socket %s: the path is too long for a unix socket (at most 103 bytes); use a shorter data directory", p)
	}
	if err := probe(p); err == nil {
		return nil, fmt.Errorf("%w (%s)", ErrInUse, p)
	} else if !errors.Is(err, ErrNoServer) {
		return nil, err
	}
	// Bind a private name, restrict it, then move it into place: the
	// socket is never reachable with the umask's mode.
	tmp := p + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &listener{UnixListener: l, path: p}, nil
}

// listener removes the socket file when it is closed.
type listener struct {
	*net.UnixListener
	path string
}

func (l *listener) Close() error {
	err := l.UnixListener.Close()
	os.Remove(l.path)
	return err
}

// probe connects to the socket at p: nil when a server accepts, an error
// matching ErrNoServer when there is no socket or nothing accepts on it.
func probe(p string) error {
	c, err := net.DialTimeout("unix", p, 2*time.Second)
	if err == nil {
		c.Close()
		return nil
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return ErrNoServer
	}
	return fmt.Errorf("admin socket %s: %w", p, err)
}

// Serve answers admin requests on l with st until ctx is done, then stops
// accepting, lets requests in progress finish for up to 5 seconds, and
// closes l. It returns nil after ctx is done, else the error that stopped
// it.
func Serve(ctx context.Context, l net.Listener, st recorder.Store) error {
	srv := &http.Server{
		Handler:           Handler(st),
		ReadHeaderTimeout: 10 * time.Second,
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
