package bastion

import (
	"errors"
	"path"
	"sync"
)

// This file validates rsync over SSH ("rsync --server ..." as an exec), so a
// channel is exempt from the terminal path only while its bytes keep proving
// that they are rsync. What the wire looks like (rsync 3.x, protocol 30 and
// later, as seen by the client):
//
//	client → server: [secluded args: NUL-terminated strings, an empty one ends them]
//	                 version (int32 LE)
//	                 [negotiation strings, when the server's compat flags say so]
//	                 multiplexed frames
//	server → client: version (int32 LE)
//	                 compat flags (varint; one byte for a 'V' client)
//	                 [negotiation strings, when the client's -e flags contain 'v']
//	                 checksum seed (int32 LE)
//	                 multiplexed frames
//
// A multiplexed frame is a 4-byte little-endian header, (MPLEX_BASE + tag) << 24
// | length, followed by length bytes.
//
// What is checked: every byte of the handshake (versions in range, compat
// flags consistent with the -e capability string, negotiation strings
// present exactly when both sides will send them, short and made of name
// characters), then every frame header (a tag that crosses the wire between
// two hosts, a length legal for that tag) and the payload length of the
// fixed-size messages.
//
// What is not checked: the content of MSG_DATA frames, which carry rsync's
// inner protocol (filter list, file list, checksums, file data in tokens,
// possibly compressed). Checking it means implementing rsync's file
// protocol; instead, the payload from the server is handed to the Data hook
// (which scans it) and text messages to the Text hook (which masks them).
// A program built to look like rsync can therefore tunnel anything inside
// well-formed frames: what it sends the client still goes through Data and
// Text, but what the client sends it, and what it does with it, cannot be
// proved to be a file transfer. Negotiated protocols below 30 are refused
// (the client's stream is not framed there), as are daemon-over-SSH
// ("--daemon") command lines. The server's standard error is not part of
// this stream: the caller must treat it like terminal output.

// rsync protocol constants (rsync.h, io.c, compat.c).
const (
	rsyncMplexBase   = 7
	rsyncMinProtocol = 30 // the oldest this validator accepts; see above
	rsyncMaxProtocol = 40 // rsync's MAX_PROTOCOL_VERSION: what a client accepts
	// rsyncMaxText is the longest text message a client accepts: it reads them
	// into a BIGPATHBUFLEN buffer (MAXPATHLEN + 1024 on Linux) and calls a
	// length that fills it an overflow.
	rsyncMaxText = 4096 + 1024 - 1
	rsyncMaxData = 1<<24 - 1 // a frame's length field is 24 bits
	rsyncMaxNstr = 255       // negotiation strings: read into MAX_NSTR_STRLEN (256) with a NUL
	rsyncMaxArg  = 4096 - 1  // a secluded argument: the server reads it into MAXPATHLEN
	rsyncMaxArgs = 1 << 16   // secluded arguments before the version
	// rsyncMaxHold is the most a direction holds back: a text frame's header
	// and payload, which are released only once the Text hook has seen them
	// whole. MSG_DATA payloads are never held; they stream through Data.
	rsyncMaxHold = 4 + rsyncMaxText
)

// Message tags (rsync.h enum msgcode) that may cross the wire.
const (
	rsyncMsgData      = 0
	rsyncMsgErrorXfer = 1
	rsyncMsgInfo      = 2
	rsyncMsgError     = 3
	rsyncMsgWarning   = 4
	rsyncMsgIOError   = 22
	rsyncMsgIOTimeout = 33
	rsyncMsgNoop      = 42
	rsyncMsgErrorExit = 86
	rsyncMsgSuccess   = 100
	rsyncMsgDeleted   = 101
	rsyncMsgNoSend    = 102
)

// Compat flags (compat.c CF_*). A server sets bits 3..8 exactly when the
// client's -e string has the matching letter, bit 0 (incremental recursion)
// only when it has 'i', and bits 1 and 2 (symlink times and iconv) as it was
// built; no other bit is known.
const (
	rsyncCFIncRecurse   = 1 << 0
	rsyncCFVarintFlist  = 1 << 7
	rsyncCFKnown        = 1<<9 - 1
	rsyncCapsWithLetter = "fxCIvu" // the letters of bits 3..8, in order
)

// rsyncError says why an rsync stream was stopped. Its UserMessage is the one
// line the SSH client is told.
type rsyncError struct {
	What string // what broke, short, safe to show the user
}

func (e *rsyncError) Error() string { return "rsync stream: " + e.What }

// UserMessage is the line for the SSH client.
func (e *rsyncError) UserMessage() string {
	return "postern: the rsync stream broke protocol (" + e.What + "): the transfer was stopped"
}

func rsyncBroke(what string) error { return &rsyncError{What: what} }

// rsyncHooks are how the validator hands content out for masking and
// scanning. A nil hook passes its bytes through unchanged. Hooks are called
// with the stream's lock held: they must not call back into the stream.
type rsyncHooks struct {
	// Text masks a human-readable message (same length in, same length out);
	// called on the payload of every multiplexed message that carries text
	// (error, info, warning, the names in MSG_DELETED), in both directions,
	// and on the negotiation strings; in place is fine. A text message is
	// always passed whole.
	Text func(p []byte) []byte
	// Data is given the payload bytes of MSG_DATA frames from the server to
	// the client, in order, in pieces of any size (a frame may arrive in
	// several calls, so a scanner keeps its own carry-over); it returns the
	// bytes to forward in their place (same length) or an error that ends
	// the transfer. On a download this is the sender's stream (file list and
	// file data); on an upload it is the receiver's (indexes and checksums).
	Data func(p []byte) ([]byte, error)
}

// rsyncStream validates both directions of an rsync-over-ssh session
// (client = the local rsync, server = `rsync --server ...` on the target).
// fromClient and fromServer may be called from two goroutines at once: one
// mutex serialises them, because each direction's handshake depends on what
// the other one said (the server's compat flags depend on the client's
// version, the client's negotiation strings on the server's flags). After
// the first error every call returns that error. The zero value is not
// usable; call newRsyncStream.
type rsyncStream struct {
	hooks rsyncHooks

	mu       sync.Mutex // guards everything below
	opts     rsyncOpts
	client   rsyncDir
	server   rsyncDir
	cVersion int // the client's protocol version, 0 until read
	sVersion int // the server's protocol version, 0 until read
	flags    int // the server's compat flags, -1 until read
	err      error
}

// rsyncOpts is what the command line (and the secluded arguments) say about
// the handshake.
type rsyncOpts struct {
	sender    bool   // --sender: the server sends, the client downloads
	caps      string // the -e capability string ("" if none)
	secluded  bool   // -s: the arguments follow on stdin before the version
	z         int    // how many -z / --compress
	choice    string // --compress-choice, --zc, --old-compress, --new-compress
	choiceSet bool
	levelSet  bool // --compress-level / --zl, which turn compression on
	csumSet   bool // --checksum-choice other than auto: no checksum string

	// Parser state between words.
	value string // a long option waiting for its value in the next word
	skip  bool   // the next word is a short option's value

	// Set by finish.
	compress        bool // the file data is compressed
	negotiateCsum   bool // a checksum list is exchanged (if strings are)
	negotiateCpress bool // a compression list is exchanged (if strings are)
}

// Direction states.
const (
	rsStateArgs    = iota // client: secluded arguments
	rsStateVersion        // both: the 4-byte version
	rsStateFlags          // server: compat flags
	rsStateStrings        // both: negotiation strings
	rsStateSeed           // server: checksum seed
	rsStateHeader         // both: a frame header
	rsStateData           // both: MSG_DATA payload, streamed
	rsStateBody           // both: another frame's payload, held whole
)

// rsyncDir is one direction's parser.
type rsyncDir struct {
	server  bool   // target → client
	state   int    // rsState*
	held    []byte // bytes of the current element, not released yet (≤ rsyncMaxHold)
	need    int    // length of the current element when known
	strings int    // negotiation strings still to read, -1 until known
	args    int    // secluded arguments read
	tag     int    // the current frame's tag
	left    int    // MSG_DATA payload bytes still to come
	out     []byte // reused output buffer
}

// newRsyncStream starts a validator for the given exec command line (e.g.
// "rsync --server --sender -vlogDtpre.iLsfxCIvu . /path"), which tells it
// the direction (--sender = the server sends = a download), compression
// (-z, --compress, --new-compress, --zc=...) and the capability string
// after -e. It returns an error if the command line is not a plausible rsync
// server command: not "rsync --server", a shell metacharacter a real client
// would have escaped, or --daemon.
func newRsyncStream(command string, h rsyncHooks) (*rsyncStream, error) {
	args, err := rsyncSplit(command)
	if err != nil {
		return nil, err
	}
	if len(args) < 2 || path.Base(args[0]) != "rsync" || args[1] != "--server" {
		return nil, errors.New("rsync command: not \"rsync --server ...\"")
	}
	r := &rsyncStream{hooks: h, flags: -1}
	if err := r.opts.parse(args[2:]); err != nil {
		return nil, err
	}
	r.client.state = rsStateVersion
	if r.opts.secluded {
		r.client.state = rsStateArgs
	} else {
		r.opts.finish()
	}
	r.client.strings = -1
	r.server.server = true
	r.server.state = rsStateVersion
	r.server.strings = -1
	return r, nil
}

// compressed reports whether the data stream is compressed (then Data cannot
// see file contents; the caller decides policy). It is decided by the
// options, so it may say true when the peers would settle on no compression.
// With secluded arguments it is final only once the client's arguments have
// been read.
func (r *rsyncStream) compressed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opts.compress || (r.opts.secluded && r.client.state == rsStateArgs)
}

// fromClient validates client→target bytes; it returns the bytes to forward
// or an error (*rsyncError, or a hook's error) at the first byte that breaks
// the protocol. With an error, the bytes returned are the valid ones before
// the break (possibly none); nothing past it is ever returned. The returned
// slice is valid until the next fromClient call.
func (r *rsyncStream) fromClient(p []byte) ([]byte, error) {
	return r.feed(&r.client, p)
}

// fromServer validates target→client bytes likewise; the bytes returned are
// what the client receives. Bytes of an element not yet complete (a frame
// header, a text frame, a handshake field) are held back until it is, at
// most rsyncMaxHold (5123) bytes: MSG_DATA payloads stream through Data
// without being held. The returned slice is valid until the next fromServer
// call.
func (r *rsyncStream) fromServer(p []byte) ([]byte, error) {
	return r.feed(&r.server, p)
}

func (r *rsyncStream) feed(d *rsyncDir, p []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	d.out = d.out[:0]
	for len(p) > 0 {
		n, err := r.step(d, p)
		p = p[n:]
		if err != nil {
			r.err = err
			return d.out, err
		}
	}
	return d.out, nil
}

// step consumes some of p for d's current element and reports how much.
func (r *rsyncStream) step(d *rsyncDir, p []byte) (int, error) {
	switch d.state {
	case rsStateArgs:
		return r.arg(d, p)
	case rsStateData:
		return r.data(d, p)
	case rsStateStrings:
		if d.strings < 0 {
			if err := r.countStrings(d); err != nil {
				return 0, err
			}
			if d.strings == 0 {
				return 0, nil // the state moved on
			}
		}
	}
	if d.held == nil {
		d.held = make([]byte, 0, rsyncMaxHold)
	}
	if d.need == 0 {
		if err := r.size(d, p[0]); err != nil {
			return 0, err
		}
	}
	n := min(len(p), d.need-len(d.held))
	d.held = append(d.held, p[:n]...)
	if len(d.held) < d.need {
		return n, nil
	}
	if d.state == rsStateStrings && d.need == 2 && d.held[0]&0x80 != 0 {
		// A two-byte length is complete.
		l := int(d.held[0]&0x7f)<<8 | int(d.held[1])
		if l > rsyncMaxNstr {
			return n, rsyncBroke("negotiation string too long")
		}
		if d.need = 2 + l; l > 0 {
			return n, nil
		}
	}
	return n, r.complete(d)
}
