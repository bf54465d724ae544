package recorder

import (
	"context"
	"errors"
	"io"
	"path"
	"slices"
	"time"
)

// Session statuses in the index.
const (
	StatusActive      = "active"
	StatusClosed      = "closed"
	StatusInterrupted = "interrupted"
)

// Session is one recorded session channel in the index.
type Session struct {
	ID         string     `json:"id"`      // recording ID: SESSION-N, sortable, file-name safe
	Session    string     `json:"session"` // the connection's session ID
	Identity   string     `json:"identity"`
	Principals []string   `json:"principals,omitempty"`
	KeyID      string     `json:"key_id,omitempty"`
	Serial     uint64     `json:"serial,omitempty"`
	Client     string     `json:"client"`
	Target     string     `json:"target"`
	Login      string     `json:"login"`
	Kind       string     `json:"kind"` // shell, exec, a transfer (sftp, scp, rsync), a forward (forward, postgres), or agent (a forwarded agent used from the target)
	Command    string     `json:"command,omitempty"`
	Start      time.Time  `json:"start"`
	End        *time.Time `json:"end,omitempty"`
	ExitStatus *int       `json:"exit_status,omitempty"`
	ExitSignal string     `json:"exit_signal,omitempty"`
	BytesIn    int64      `json:"bytes_in"`
	BytesOut   int64      `json:"bytes_out"`
	MaskedPANs int64      `json:"masked_pans"` // how many card numbers were masked (never the numbers)
	Path       string     `json:"path"`        // relative to the data directory
	SHA256     string     `json:"sha256,omitempty"`
	Size       int64      `json:"size,omitempty"`
	Status     string     `json:"status"`
	// Limit names the session limit that ended the session or stopped
	// its recording (recording_max_size, min_free_disk), if one did.
	Limit string `json:"limit,omitempty"`
	// Transfers are the files and file operations of a transfer
	// channel (Kind sftp, scp or rsync), in order; at most
	// MaxTransfers, the rest counted in TransfersOmitted (the
	// recording's markers list them all).
	Transfers        []Transfer `json:"transfers,omitempty"`
	TransfersOmitted int64      `json:"transfers_omitted,omitempty"`
	// Forward describes a forwarded connection (Kind KindForward or
	// KindPostgres): BytesIn went to the target, BytesOut to the
	// client.
	Forward *Forward `json:"forward,omitempty"`
}

// Kinds of forwarded connections in the index.
const (
	// KindForward is an opaque TCP forward: counted, not recorded.
	KindForward = "forward"
	// KindPostgres is a forward parsed as the PostgreSQL protocol: its
	// recording holds the statements and a summary of their results.
	KindPostgres = "postgres"
)

// Forward is what the index keeps of one forwarded connection (ssh -L).
// Strings are masked like log text.
type Forward struct {
	Host       string `json:"host"`       // as the client asked for it
	Port       uint32 `json:"port"`       // on the target
	Protocol   string `json:"protocol"`   // tcp or postgres
	Originator string `json:"originator"` // the client's side of the forward, as its SSH client reports it
	// CloseReason says how the connection ended: "client closed",
	// "target closed", or why the bastion ended it.
	CloseReason string `json:"close_reason,omitempty"`
	// Remote is set for a remote forward (ssh -R): the connection came
	// from Originator on the target to Port, which the target listens
	// on for the client.
	Remote bool `json:"remote,omitempty"`
	// Database and DBUser are from a postgres forward's startup
	// message; Statements and Errors count what it ran.
	Database   string `json:"database,omitempty"`
	DBUser     string `json:"db_user,omitempty"`
	Statements int64  `json:"statements,omitempty"`
	Errors     int64  `json:"errors,omitempty"`
}

// MaxTransfers caps the transfer records kept in one index entry.
const MaxTransfers = 10000

// Transfer is one file moved or changed by a transfer channel. Path and To
// are masked like log text.
type Transfer struct {
	Op      string `json:"op"` // download, upload, list, remove, rename, link, symlink, mkdir, rmdir, setstat, copy
	Path    string `json:"path"`
	To      string `json:"to,omitempty"`     // rename, link, symlink, copy
	Bytes   int64  `json:"bytes"`            // file bytes that reached the client (download) or target (upload)
	PANs    int64  `json:"pans"`             // card numbers found in a download
	Outcome string `json:"outcome"`          // ok, blocked, masked, allowed, failed, incomplete
	Detail  string `json:"detail,omitempty"` // the status text of a failure, masked
}

// ErrNotFound is returned for an unknown session ID.
var ErrNotFound = errors.New("no such session")

// Index is the session index, the audit chain and the register of issued
// certificates. Implementations are safe for concurrent use; every method
// takes a context for the backends that talk to a server (a remote index,
// the admin socket).
type Index interface {
	// Begin records a session as active and seals the entry as stored
	// in the audit chain (KindBegin), in one transaction; an ID already
	// present is an error.
	Begin(ctx context.Context, rec Session) error
	// Finish stores the final record (with digest, size, end) and
	// appends its seal to the audit chain, in one transaction. It
	// returns the chain's new head, for the caller to log.
	Finish(ctx context.Context, rec Session) (ChainHead, error)
	// Get returns one session, or ErrNotFound.
	Get(ctx context.Context, id string) (Session, error)
	// List returns the sessions that match f, oldest first.
	List(ctx context.Context, f Filter) ([]Session, error)
	// MarkInterrupted seals every session still marked active, which
	// after a restart means the bastion died during it, with the digest
	// of its recording as found (or, when there is none to read, with
	// why in the seal's Lost, which verify always reports). It returns
	// their IDs. An active entry that its begin entry does not seal as
	// it stands, or that the chain has sealed or pruned since, is left
	// alone (the implementation logs it; verify reports it).
	MarkInterrupted(ctx context.Context) ([]string, error)
	// Prune deletes the index entries of the sessions ids that have
	// ended (active ones and unknown IDs are skipped) and records the
	// deletion in the audit chain. It returns what it deleted and the
	// chain entry it appended, nil when it deleted nothing. It does not
	// touch recordings: see the package's Prune.
	Prune(ctx context.Context, ids []string) ([]Session, *ChainHead, error)
	// Head returns the audit chain's newest entry, nil while the chain
	// is empty.
	Head(ctx context.Context) (*ChainHead, error)
	// Snapshot returns the index and chain as of one instant.
	Snapshot(ctx context.Context) (*Snapshot, error)
	// IssueCert allocates a certificate serial, records c under it and
	// seals the record in the audit chain, in one transaction; a serial
	// is never handed out twice, even after an older index is restored.
	// It returns c with Serial set.
	IssueCert(ctx context.Context, c IssuedCert) (IssuedCert, error)
	// Issued lists the certificates issued, in order of issue.
	Issued(ctx context.Context) ([]IssuedCert, error)
}

// Blobs stores recordings under names such as RecordingName returns. A
// name is a key, not a path: nothing outside this package may assume the
// recordings are local files. Implementations are safe for concurrent use.
type Blobs interface {
	// Create makes a new recording; an existing one is never
	// overwritten. The caller closes the Sink.
	Create(ctx context.Context, name string) (Sink, error)
	// Open reads a recording. A missing one is an error matching
	// fs.ErrNotExist; a name that leads out of the recordings is a
	// *PathError.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Remove deletes a recording; a missing one is an error matching
	// fs.ErrNotExist.
	Remove(ctx context.Context, name string) error
	// Files lists the names of every recording stored, sorted.
	Files(ctx context.Context) ([]string, error)
	// Check reports whether name may be used: nil, a *PathError, or
	// the error met while checking.
	Check(ctx context.Context, name string) error
}

// Store is an index and the recordings it describes.
type Store interface {
	Index
	Blobs
}

// Sink receives a recording's bytes. Close makes what was written durable
// (for a file: fsync) and releases the sink; its error means the recording
// may be incomplete.
type Sink interface {
	io.Writer
	Close() error
}

// Snapshot is the raw content of an index as of one instant, as Verify
// checks it: records exactly as stored, so that their digests can be
// compared with the chain's.
type Snapshot struct {
	// Sessions holds each session record by ID.
	Sessions map[string][]byte `json:"sessions"`
	// Chain holds the audit chain's entries in key order.
	Chain []RawEntry `json:"chain"`
	// Certs holds every record of the register of issued certificates:
	// by decimal serial, or, stored under a key that is no serial, by
	// "key " and the key in hex.
	Certs map[string][]byte `json:"certs"`
	// Approvals holds each approval request's record by ID; nil when the
	// index has none.
	Approvals map[string][]byte `json:"approvals,omitempty"`
	// Refusals holds each refused certificate request's record by ID;
	// nil when the index has none.
	Refusals map[string][]byte `json:"refusals,omitempty"`
	// Revocations holds each revocation's record by its key
	// (Revocation.Key); nil when the index has none.
	Revocations map[string][]byte `json:"revocations,omitempty"`
}

// RawEntry is one stored chain entry: its key (the big-endian sequence
// number) and value.
type RawEntry struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
}

// IssuedCert is the register's record of one user certificate.
type IssuedCert struct {
	Serial      uint64    `json:"serial"`
	KeyID       string    `json:"key_id"`
	Principals  []string  `json:"principals"`
	Groups      []string  `json:"groups,omitempty"`
	Key         string    `json:"key"` // the certified key's SHA256 fingerprint
	ValidAfter  time.Time `json:"valid_after"`
	ValidBefore time.Time `json:"valid_before"`
	IssuedAt    time.Time `json:"issued_at"`
	IssuedBy    string    `json:"issued_by"` // who ran ca sign (OS user), or the issuing component
	// Subject is the OpenID provider's subject (sub claim) of a login's
	// identity: stable where an email address may be reassigned.
	Subject string `json:"subject,omitempty"`
	// Client is the address a login's request came from.
	Client string `json:"client,omitempty"`
}

// Filter selects sessions in List. Zero fields match everything.
type Filter struct {
	User, Target string
	Since, Until time.Time
	Active       bool
}

// Match reports whether r is selected by f.
func (f Filter) Match(r Session) bool {
	if f.User != "" && r.Identity != f.User && !slices.Contains(r.Principals, f.User) {
		return false
	}
	if f.Target != "" && r.Target != f.Target {
		return false
	}
	if !f.Since.IsZero() && r.Start.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !r.Start.Before(f.Until) {
		return false
	}
	if f.Active && r.Status != StatusActive {
		return false
	}
	return true
}

// RecordingName is the name of session id's recording, started at start:
// recordings/YYYY/MM/DD/ID.cast, sortable and browsable by day. It is also
// the path relative to the data directory of the default store.
func RecordingName(id string, start time.Time) string {
	start = start.UTC()
	return path.Join("recordings", start.Format("2006"), start.Format("01"), start.Format("02"), id+".cast")
}
