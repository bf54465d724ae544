package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/recorder"
)

// openData opens data directory d's store. The rule: a socket that
// accepts connections is a running server, which owns the data; no socket,
// or one nothing accepts on (left by a server that died), means none runs,
// and the files are opened directly. A socket is trusted only when it is
// the data directory owner's (adminsock.Dial), the index is in d, and,
// when a process holds d's lock, that process serves it. Writing needs the
// audit key, which a server has; without one it is read from the CA, which
// must exist either way (same outcome with and without a server).
//
// Read directly, the index is opened for each read only (see
// directStore): a long command does not keep a bastion from starting.
func openData(ctx context.Context, d string, write bool) (recorder.Store, func(), error) {
	var key ed25519.PrivateKey
	if write {
		auth, err := openExisting(d)
		if err != nil {
			return nil, nil, err
		}
		key = auth.AuditKey
	}
	c, err := adminsock.Dial(ctx, d)
	if err == nil {
		if err := trustServer(d, c); err != nil {
			c.Close()
			return nil, nil, err
		}
		return c, func() { c.Close() }, nil
	}
	if !errors.Is(err, adminsock.ErrNoServer) {
		return nil, nil, err
	}
	if !write {
		st := directStore{Blobs: recorder.LocalBlobs(d), dir: d}
		// Open once now, so that a missing or locked index is reported
		// before the command starts.
		if err := st.with(func(*recorder.Local) error { return nil }); err != nil {
			return nil, nil, err
		}
		return st, func() {}, nil
	}
	local, err := recorder.OpenStore(d, recorder.Options{Key: key})
	if err != nil {
		return nil, nil, err
	}
	return local, func() { local.Close() }, nil
}

// trustServer checks that the server c reached is data directory d's own:
// d holds an index, and if a process holds d's lock (a running postern
// does, for as long as it runs), c is served by that process.
func trustServer(d string, c *adminsock.Client) error {
	p := adminsock.Path(d)
	if _, err := os.Lstat(filepath.Join(d, "postern.db")); err != nil {
		return fmt.Errorf("admin socket %s refused: it answers, but %s holds no session index (postern.db), so no server of this data directory runs there; remove the socket if no postern runs", p, d)
	}
	if pid, ok := app.LockHolder(d); ok && pid != c.Peer().PID {
		return fmt.Errorf("admin socket %s refused: pid %d answers on it, but pid %d holds the data directory's lock", p, c.Peer().PID, pid)
	}
	return nil
}

// localFiles is st's index with the recordings of data directory d read
// from the directory itself: what verify checks is what is on disk.
func localFiles(st recorder.Store, d string) recorder.Store {
	return struct {
		recorder.Index
		recorder.Blobs
	}{st, recorder.LocalBlobs(d)}
}

// errReadOnly is directStore's answer to a write.
var errReadOnly = errors.New("the data directory is opened read-only")

// directStore is data directory dir's store, read by an admin command
// while no server runs: each index read opens postern.db read-only, reads
// and closes it, and recordings are read as files. So play, verify and
// sessions --grep hold the index's lock only while they read it, never
// while they replay or digest: a bastion started meanwhile finds its index
// free. Writes return errReadOnly.
type directStore struct {
	recorder.Blobs
	dir string
}

var _ recorder.Store = directStore{}

// Approvals returns the approval requests' records that the audit chain
// seals as stored, checked with the audit public key in the data
// directory's CA.
func (s directStore) Approvals(ctx context.Context) ([]recorder.ApprovalRecord, error) {
	pub, _, err := certs.AuditPublicKey(s.dir)
	if err != nil {
		return nil, err
	}
	l, err := recorder.OpenStore(s.dir, recorder.Options{ReadOnly: true, AuditPublicKey: pub})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return l.Approvals(ctx)
}

// with runs fn on the index, open for reading, and closes it.
func (s directStore) with(fn func(*recorder.Local) error) error {
	l, err := recorder.OpenStore(s.dir, recorder.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer l.Close()
	return fn(l)
}

func (s directStore) Get(ctx context.Context, id string) (rec recorder.Session, err error) {
	err = s.with(func(l *recorder.Local) error { rec, err = l.Get(ctx, id); return err })
	return rec, err
}

func (s directStore) List(ctx context.Context, f recorder.Filter) (list []recorder.Session, err error) {
	err = s.with(func(l *recorder.Local) error { list, err = l.List(ctx, f); return err })
	return list, err
}

func (s directStore) Head(ctx context.Context) (h *recorder.ChainHead, err error) {
	err = s.with(func(l *recorder.Local) error { h, err = l.Head(ctx); return err })
	return h, err
}

func (s directStore) Snapshot(ctx context.Context) (snap *recorder.Snapshot, err error) {
	err = s.with(func(l *recorder.Local) error { snap, err = l.Snapshot(ctx); return err })
	return snap, err
}

func (s directStore) Issued(ctx context.Context) (list []recorder.IssuedCert, err error) {
	err = s.with(func(l *recorder.Local) error { list, err = l.Issued(ctx); return err })
	return list, err
}

func (directStore) Begin(context.Context, recorder.Session) error { return errReadOnly }

func (directStore) Finish(context.Context, recorder.Session) (recorder.ChainHead, error) {
	return recorder.ChainHead{}, errReadOnly
}

func (directStore) MarkInterrupted(context.Context) ([]string, error) { return nil, errReadOnly }

func (directStore) Prune(context.Context, []string) ([]recorder.Session, *recorder.ChainHead, error) {
	return nil, nil, errReadOnly
}

func (directStore) IssueCert(context.Context, recorder.IssuedCert) (recorder.IssuedCert, error) {
	return recorder.IssuedCert{}, errReadOnly
}

func (directStore) Create(context.Context, string) (recorder.Sink, error) { return nil, errReadOnly }

func (directStore) Remove(context.Context, string) error { return errReadOnly }

// Revocations returns the revocations in force, checked against the audit
// chain with the audit public key in the data directory's CA.
func (s directStore) Revocations(ctx context.Context) ([]recorder.Revocation, error) {
	pub, _, err := certs.AuditPublicKey(s.dir)
	if err != nil {
		return nil, err
	}
	l, err := recorder.OpenStore(s.dir, recorder.Options{ReadOnly: true, AuditPublicKey: pub})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	return l.Revocations(ctx)
}

func (directStore) Revoke(context.Context, recorder.Revocation) (recorder.Revocation, bool, error) {
	return recorder.Revocation{}, false, errReadOnly
}
