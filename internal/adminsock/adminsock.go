// Package adminsock is the admin socket: DATA_DIR/admin.sock, through
// which admin commands on the bastion host reach the running server's
// store while it owns the data directory.
//
// The server side ([New], [Server], and [Listen] and [Serve] for the
// defaults) exposes a recorder.Store as plain HTTP+JSON over the unix
// socket; the client side ([Dial], [Client]) implements recorder.Store on
// top of it, so a command runs the same code, and prints the same output,
// whether it talks to a server or opens the data directory itself.
//
// Both ends check who is on the other one. The socket is mode 0600, bound
// in a private directory and moved into place, so only the data
// directory's owner (and root) can connect; the server takes the caller's
// identity from the kernel (SO_PEERCRED), never from the request. Dial
// accepts a socket only when the file and the process serving it belong
// to the data directory's owner.
//
// The socket is read-mostly: it serves what admin commands need (list,
// get, snapshot, prune within the server's retention, recordings,
// certificate serials, revocations, which the running bastion applies at
// once) and refuses recording sessions, which only the server does.
package adminsock

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
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

// Peer is the process at the other end of an admin socket connection, as
// the kernel knows it.
type Peer struct {
	PID int
	UID int
}

// UntrustedError is Dial's error for a socket that does not belong to the
// data directory's owner: the file, or the process serving it, is someone
// else's. Nothing was sent to it.
type UntrustedError struct {
	Path   string
	Reason string
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("admin socket %s refused: %s; it is not the data directory's server (check who can write the data directory, and remove the socket if no postern runs)", e.Path, e.Reason)
}

// Listen creates the admin socket of dataDir, mode 0600, as New's server
// does, without a log: see [Server.Listen].
func Listen(dataDir string) (net.Listener, error) { return listen(dataDir, nil) }

// listen creates the admin socket of dataDir. A live socket of this user's
// is ErrInUse; a stale one is replaced; anything else at the path (a link,
// a file, another user's socket) is replaced too, with a warning on log.
// Closing the listener removes the socket file.
func listen(dataDir string, log *slog.Logger) (net.Listener, error) {
	p := Path(dataDir)
	// sockaddr_un holds 108 bytes with the NUL; the temporary name,
	// DATA_DIR/.aNNNNNNNNNN/s, is longer by at most 4.
	if len(p)+len(".new") >= 108 {
		return nil, fmt.Errorf("admin socket %s: the path is too long for a unix socket (at most 103 bytes); use a shorter data directory", p)
	}
	if err := clearPath(p, log); err != nil {
		return nil, err
	}
	// Bind in a private directory (0700), restrict the socket, then move
	// it into place: no other user can connect to it, not even while it
	// has the umask's mode.
	tmpDir, err := os.MkdirTemp(dataDir, ".a")
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return &listener{UnixListener: l, path: p}, nil
}

// clearPath decides what becomes of what is at the socket path p before a
// new socket replaces it: ErrInUse when a server of this user answers
// there, else nil (and a warning when it is not this user's own).
func clearPath(p string, log *slog.Logger) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	me := os.Geteuid()
	if fi.Mode().Type() == fs.ModeSocket && fileOwner(fi) == me {
		peer, err := probe(p)
		if err == nil && peer.UID == me {
			return fmt.Errorf("%w (%s, pid %d)", ErrInUse, p, peer.PID)
		}
		if err != nil && !errors.Is(err, ErrNoServer) {
			return err
		}
		return nil // stale: its server died
	}
	if log != nil {
		log.Warn("replacing what another user left at the admin socket path; the data directory should be writable by its owner only",
			"path", p, "mode", fi.Mode().String(), "owner_uid", fileOwner(fi), "uid", me)
	}
	return nil
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

// probe connects to the socket at p and returns the process that accepted,
// or an error matching ErrNoServer when there is no socket or nothing
// accepts on it.
func probe(p string) (Peer, error) {
	c, err := net.DialTimeout("unix", p, 2*time.Second)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return Peer{}, ErrNoServer
	}
	if err != nil {
		return Peer{}, fmt.Errorf("admin socket %s: %w", p, err)
	}
	defer c.Close()
	return peerCred(c)
}

// fileOwner is the user ID that owns the file fi describes (-1 if
// unknown).
func fileOwner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// checkOwner returns the uid owning data directory dataDir, and an
// *UntrustedError when the socket file at p, or the index in dataDir, is
// owned by anyone else. A missing socket is ErrNoServer.
func checkOwner(dataDir, p string) (int, error) {
	dfi, err := os.Stat(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return -1, ErrNoServer
	}
	if err != nil {
		return -1, fmt.Errorf("admin socket: %w", err)
	}
	owner := fileOwner(dfi)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return owner, ErrNoServer
	}
	if err != nil {
		return owner, fmt.Errorf("admin socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return owner, &UntrustedError{Path: p, Reason: "it is not a socket (" + fi.Mode().Type().String() + ")"}
	}
	if uid := fileOwner(fi); uid != owner {
		return owner, &UntrustedError{Path: p, Reason: fmt.Sprintf("the socket file is owned by uid %d, the data directory by uid %d", uid, owner)}
	}
	if dbi, err := os.Lstat(filepath.Join(dataDir, "postern.db")); err == nil && fileOwner(dbi) != owner {
		return owner, &UntrustedError{Path: p, Reason: fmt.Sprintf("postern.db is owned by uid %d, the data directory by uid %d", fileOwner(dbi), owner)}
	}
	return owner, nil
}
