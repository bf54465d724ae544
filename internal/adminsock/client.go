package adminsock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/postern/postern/recorder"
)

// Client is a recorder.Store served by a running postern through its admin
// socket. Recording sessions (Begin, Finish, MarkInterrupted, Create) is
// the server's alone: those methods return ErrNotServed. Every call but
// Open has an overall deadline (CallTimeout) and a cap on its answer
// (MaxAnswer): a server that stalls or trickles cannot hang a command. It
// is safe for concurrent use; Close releases its connections.
type Client struct {
	path string
	peer Peer
	http *http.Client
}

var _ recorder.Store = (*Client)(nil)

// CallTimeout bounds each call but Open, from request to decoded answer.
const CallTimeout = 90 * time.Second

// MaxAnswer caps the size of an answer but Open's (a snapshot of a large
// index is the biggest).
const MaxAnswer = 1 << 30

// ErrNotServed is the Client's error for operations the admin socket does
// not offer.
var ErrNotServed = errors.New("not offered over the admin socket: only the server records sessions")

// Dial connects to the server on dataDir's admin socket. The rule for a
// stale socket: when there is no socket file, or nothing accepts
// connections on it (its server died), Dial returns an error matching
// ErrNoServer and the caller may open the data directory itself. A socket
// that accepts is a running server, and the data directory is its, but
// only if it is the data directory owner's: the socket file, the index
// (postern.db, if present) and the process that accepts (SO_PEERCRED)
// must belong to the user who owns the data directory, else Dial returns
// an *UntrustedError and sends nothing. Every later connection must reach
// the same process.
func Dial(ctx context.Context, dataDir string) (*Client, error) {
	p := Path(dataDir)
	owner, err := checkOwner(dataDir, p)
	if err != nil {
		return nil, err
	}
	peer, err := probe(p)
	if err != nil {
		return nil, err
	}
	if peer.UID != owner {
		return nil, &UntrustedError{Path: p, Reason: fmt.Sprintf("it is served by uid %d (pid %d), the data directory is owned by uid %d", peer.UID, peer.PID, owner)}
	}
	c := &Client{path: p, peer: peer}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, "unix", p)
			if err != nil {
				return nil, err
			}
			if got, err := peerCred(conn); err != nil || got != peer {
				conn.Close()
				return nil, &UntrustedError{Path: p, Reason: fmt.Sprintf("another process (%+v) answers than the one Dial checked (%+v)", got, peer)}
			}
			return conn, nil
		},
		MaxIdleConns: 4,
		// A server that accepts but does not answer must not hang the
		// command forever; a recording's body may then stream for as
		// long as it takes.
		ResponseHeaderTimeout: time.Minute,
	}
	c.http = &http.Client{Transport: tr}
	return c, nil
}

// Peer is the process serving the socket, as the kernel reported it when
// Dial connected.
func (c *Client) Peer() Peer { return c.peer }

// Close releases the client's idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// call posts in as JSON to /v1/op and decodes the answer into out, within
// CallTimeout and MaxAnswer.
func (c *Client) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://postern/v1/"+op, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readError(resp)
	}
	if out == nil {
		return nil
	}
	lr := &io.LimitedReader{R: resp.Body, N: MaxAnswer}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		if lr.N <= 0 {
			return fmt.Errorf("admin socket %s: %s: the answer is over %d bytes", c.path, op, MaxAnswer)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("admin socket %s: %s: no complete answer within %s", c.path, op, CallTimeout)
		}
		return fmt.Errorf("admin socket %s: %s: %w", c.path, op, err)
	}
	return nil
}

// readError rebuilds the store's error from a failed answer.
func readError(resp *http.Response) error {
	var we wireError
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&we); err != nil {
		return fmt.Errorf("admin socket: %s", resp.Status)
	}
	e := &remoteError{msg: we.Message}
	switch we.Kind {
	case kindNotFound:
		e.wrapped = recorder.ErrNotFound
	case kindNotExist:
		e.wrapped = fs.ErrNotExist
	case kindUnsafePath:
		e.wrapped = &recorder.PathError{Path: we.Path, Reason: we.Reason}
	}
	return e
}

// remoteError is an error the server's store returned: the same text, and
// the same sentinel or *recorder.PathError for errors.Is and errors.As.
type remoteError struct {
	msg     string
	wrapped error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.wrapped }

// Begin is not served: ErrNotServed.
func (c *Client) Begin(context.Context, recorder.Session) error { return ErrNotServed }

// Finish is not served: ErrNotServed.
func (c *Client) Finish(context.Context, recorder.Session) (recorder.ChainHead, error) {
	return recorder.ChainHead{}, ErrNotServed
}

// MarkInterrupted is not served: the server seals its own sessions.
func (c *Client) MarkInterrupted(context.Context) ([]string, error) { return nil, ErrNotServed }

// Get implements recorder.Index.
func (c *Client) Get(ctx context.Context, id string) (recorder.Session, error) {
	var s recorder.Session
	err := c.call(ctx, "get", nameReq{Name: id}, &s)
	return s, err
}

// List implements recorder.Index.
func (c *Client) List(ctx context.Context, f recorder.Filter) ([]recorder.Session, error) {
	var out []recorder.Session
	err := c.call(ctx, "list", f, &out)
	return out, err
}

// Prune implements recorder.Index.
func (c *Client) Prune(ctx context.Context, ids []string) ([]recorder.Session, *recorder.ChainHead, error) {
	var out pruneResp
	if err := c.call(ctx, "prune", pruneReq{IDs: ids}, &out); err != nil {
		return nil, nil, err
	}
	return out.Pruned, out.Head, nil
}

// Head implements recorder.Index.
func (c *Client) Head(ctx context.Context) (*recorder.ChainHead, error) {
	var h *recorder.ChainHead
	err := c.call(ctx, "head", struct{}{}, &h)
	return h, err
}

// Snapshot implements recorder.Index: the server takes it in one read
// transaction.
func (c *Client) Snapshot(ctx context.Context) (*recorder.Snapshot, error) {
	var s recorder.Snapshot
	if err := c.call(ctx, "snapshot", struct{}{}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// IssueCert implements recorder.Index.
func (c *Client) IssueCert(ctx context.Context, in recorder.IssuedCert) (recorder.IssuedCert, error) {
	var out recorder.IssuedCert
	err := c.call(ctx, "issue", in, &out)
	return out, err
}

// Issued implements recorder.Index.
func (c *Client) Issued(ctx context.Context) ([]recorder.IssuedCert, error) {
	var out []recorder.IssuedCert
	err := c.call(ctx, "issued", struct{}{}, &out)
	return out, err
}

// Approvals returns the approval requests' records as the server's index
// holds them (only those the audit chain seals as stored).
func (c *Client) Approvals(ctx context.Context) ([]recorder.ApprovalRecord, error) {
	var out []recorder.ApprovalRecord
	err := c.call(ctx, "approvals", struct{}{}, &out)
	return out, err
}

// Create is not served: ErrNotServed.
func (c *Client) Create(context.Context, string) (recorder.Sink, error) { return nil, ErrNotServed }

// Open implements recorder.Blobs: the recording streams over the socket.
func (c *Client) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://postern/v1/open?name="+url.QueryEscape(name), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", c.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp.Body, nil
}

// Remove implements recorder.Blobs.
func (c *Client) Remove(ctx context.Context, name string) error {
	return c.call(ctx, "remove", nameReq{Name: name}, nil)
}

// Files implements recorder.Blobs.
func (c *Client) Files(ctx context.Context) ([]string, error) {
	var out []string
	err := c.call(ctx, "files", struct{}{}, &out)
	return out, err
}

// Check implements recorder.Blobs.
func (c *Client) Check(ctx context.Context, name string) error {
	return c.call(ctx, "check", nameReq{Name: name}, nil)
}
