package bastion

import (
	"encoding/binary"
	"errors"
	"path"
	"strconv"
	"strings"
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

// rsyncShellChars are the characters rsync's safe_arg escapes with a
// backslash before it hands an argument to the remote shell; unescaped, they
// would let the command line run something besides rsync.
const rsyncShellChars = "!#$&;|<>(){}\"'`\n\r\\"

// rsyncSplit splits a command line the way the remote shell will, accepting
// only what rsync itself produces: words separated by spaces or tabs, shell
// characters escaped with a backslash.
func rsyncSplit(command string) ([]string, error) {
	var args []string
	var w strings.Builder
	in := false
	for i := 0; i < len(command); i++ {
		c := command[i]
		switch {
		case c == '\\':
			if i+1 == len(command) {
				return nil, errors.New("rsync command: ends in a backslash")
			}
			i++
			w.WriteByte(command[i])
			in = true
		case c == ' ' || c == '\t':
			if in {
				args = append(args, w.String())
				w.Reset()
				in = false
			}
		case strings.IndexByte(rsyncShellChars, c) >= 0 || c < 0x20 || c == 0x7f:
			return nil, errors.New("rsync command: unescaped shell character " + strconv.QuoteRune(rune(c)))
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		args = append(args, w.String())
	}
	return args, nil
}

// parse reads options as rsync's option parser would, for the few that shape
// the handshake. rsync's parser takes options anywhere on the line, after
// the "." between options and paths too, so every word is read: a path that
// looks like an option can only make the stream look compressed (refused),
// never hide compression.
func (o *rsyncOpts) parse(args []string) error {
	for _, a := range args {
		if err := o.word(a); err != nil {
			return err
		}
	}
	return nil
}

// word reads one argument.
func (o *rsyncOpts) word(a string) error {
	if o.value != "" {
		// The value of the previous option, given as the next word.
		name := o.value
		o.value = ""
		return o.long(name, a, true)
	}
	if o.skip {
		o.skip = false
		return nil
	}
	if a == "." {
		return nil
	}
	if strings.HasPrefix(a, "--") {
		name, val, hasVal := strings.Cut(a, "=")
		switch name {
		case "--compress-choice", "--zc", "--checksum-choice", "--cc", "--compress-level", "--zl":
			if !hasVal {
				o.value = name
				return nil
			}
		}
		return o.long(name, val, hasVal)
	}
	if len(a) > 1 && a[0] == '-' {
		o.skip = o.short(a[1:])
	}
	return nil
}

// long reads a long option.
func (o *rsyncOpts) long(name, val string, hasVal bool) error {
	switch {
	case strings.HasPrefix(name, "--daemon"):
		return errors.New("rsync command: --daemon (rsync daemon over ssh) is not supported")
	case name == "-e":
		o.caps = val
	case name == "--sender":
		o.sender = true
	case name == "--compress":
		o.z++
	case name == "--no-compress" || name == "--no-z":
		o.z, o.choice, o.choiceSet = 0, "", false
	case name == "--old-compress":
		o.choice, o.choiceSet = "zlib", true
	case name == "--new-compress":
		o.choice, o.choiceSet = "zlibx", true
	case name == "--secluded-args" || name == "--protect-args":
		o.secluded = true
	case name == "--no-secluded-args" || name == "--no-protect-args" || name == "--no-s":
		o.secluded = false
	case name == "--compress-choice" || name == "--zc":
		o.choice, o.choiceSet = val, hasVal
	case name == "--compress-level" || name == "--zl":
		o.levelSet = true
	case name == "--checksum-choice" || name == "--cc":
		o.csumSet = hasVal && !strings.EqualFold(val, "auto") && !strings.EqualFold(val, "auto,auto")
	}
	return nil
}

// short reads a bundle of short options; it reports whether the last one
// takes its value from the next word.
func (o *rsyncOpts) short(b string) bool {
	for j := 0; j < len(b); j++ {
		switch b[j] {
		case 'e':
			// On a server, -e carries the client's capabilities.
			if o.caps = b[j+1:]; o.caps == "" {
				o.value = "-e"
			}
			return false
		case '@', 'f', 'B', 'T', 'M': // options with a value
			return j+1 == len(b)
		case 'z':
			o.z++
		case 's':
			o.secluded = true
		}
	}
	return false
}

// finish works out, as rsync does after parsing options, whether the data is
// compressed and which negotiation strings each side sends.
func (o *rsyncOpts) finish() {
	choice, set := o.choice, o.choiceSet
	if !set && o.z > 1 {
		choice, set = "zlibx", true // -zz
	}
	compress := o.z > 0
	if set && !strings.EqualFold(choice, "auto") {
		compress = !strings.EqualFold(choice, "none")
		set = compress // "none" clears the choice
	} else {
		set = false
	}
	if o.levelSet {
		compress = true
	}
	o.compress = compress
	o.negotiateCpress = compress && !set
	o.negotiateCsum = !o.csumSet
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

// data streams MSG_DATA payload bytes, through the Data hook when they come
// from the server.
func (r *rsyncStream) data(d *rsyncDir, p []byte) (int, error) {
	n := min(len(p), d.left)
	chunk := p[:n]
	if d.server && r.hooks.Data != nil {
		got, err := r.hooks.Data(chunk)
		if err != nil {
			return n, err
		}
		if len(got) != n {
			return n, errors.New("rsync data hook changed the length")
		}
		chunk = got
	}
	d.out = append(d.out, chunk...)
	if d.left -= n; d.left == 0 {
		d.state = rsStateHeader
	}
	return n, nil
}

// size sets d.need, the length of the element that starts with byte b, or
// for a negotiation string with a two-byte length, the length of that.
func (r *rsyncStream) size(d *rsyncDir, b byte) error {
	switch d.state {
	case rsStateVersion, rsStateSeed, rsStateHeader:
		d.need = 4
	case rsStateFlags:
		if strings.IndexByte(r.opts.caps, 'V') >= 0 && strings.IndexByte(r.opts.caps, 'v') < 0 {
			d.need = 1 // a pre-release client reads one byte
			return nil
		}
		extra := rsyncVarintExtra(b)
		if extra > 4 {
			return rsyncBroke("compat flags overflow")
		}
		d.need = 1 + extra
	case rsStateStrings:
		if b&0x80 != 0 {
			d.need = 2
		} else {
			d.need = 1 + int(b)
		}
	}
	return nil
}

// rsyncVarintExtra is how many bytes follow the first byte b of an rsync
// varint: one per leading 1 bit.
func rsyncVarintExtra(b byte) int {
	n := 0
	for b&0x80 != 0 {
		n++
		b <<= 1
	}
	return n
}

// complete checks the element in d.held, releases it and moves on.
func (r *rsyncStream) complete(d *rsyncDir) error {
	h := d.held
	release := true
	switch d.state {
	case rsStateVersion:
		v := int(int32(binary.LittleEndian.Uint32(h)))
		if v < 20 || v > rsyncMaxProtocol {
			return rsyncBroke("protocol version " + strconv.Itoa(v) + " out of range")
		}
		if v < rsyncMinProtocol {
			return rsyncBroke("protocol version " + strconv.Itoa(v) + " is older than " + strconv.Itoa(rsyncMinProtocol))
		}
		if d.server {
			r.sVersion = v
			d.state = rsStateFlags
		} else {
			r.cVersion = v
			d.state = rsStateStrings
		}
	case rsStateFlags:
		if r.cVersion == 0 {
			return rsyncBroke("server went on before the client's version")
		}
		if err := r.checkFlags(rsyncVarint(h)); err != nil {
			return err
		}
		d.state = rsStateStrings
	case rsStateStrings:
		body := h[rsyncStrHead(h):]
		for _, c := range body {
			if !rsyncNameChar(c) {
				return rsyncBroke("negotiation string is not a list of names")
			}
		}
		if r.hooks.Text != nil && len(body) > 0 {
			if err := rsyncText(r.hooks.Text, body); err != nil {
				return err
			}
		}
		if d.strings--; d.strings == 0 {
			r.afterStrings(d)
		}
	case rsStateSeed:
		d.state = rsStateHeader
	case rsStateHeader:
		if err := r.header(d); err != nil {
			return err
		}
		if d.state == rsStateBody {
			release = false // released with its payload
		}
	case rsStateBody:
		body := h[4:]
		if err := rsyncCheckBody(d.tag, body); err != nil {
			return err
		}
		if rsyncIsText(d.tag) && r.hooks.Text != nil && len(body) > 0 {
			if err := rsyncText(r.hooks.Text, body); err != nil {
				return err
			}
		}
		d.state = rsStateHeader
	}
	if !release {
		return nil
	}
	d.out = append(d.out, d.held...)
	d.held, d.need = d.held[:0], 0
	return nil
}

// countStrings works out how many negotiation strings d sends, which needs
// the other side's handshake, and moves on when there are none.
func (r *rsyncStream) countStrings(d *rsyncDir) error {
	var sends bool
	if d.server {
		// The server sends its lists when the client asked with 'v'.
		sends = strings.IndexByte(r.opts.caps, 'v') >= 0
	} else {
		// The client sends its lists after reading the server's compat
		// flags, when they say so: a byte before those is not rsync.
		if r.flags < 0 {
			return rsyncBroke("client went on before the server's compat flags")
		}
		sends = r.flags&rsyncCFVarintFlist != 0
	}
	d.strings = 0
	if sends {
		if r.opts.negotiateCsum {
			d.strings++
		}
		if r.opts.negotiateCpress {
			d.strings++
		}
	}
	if d.strings == 0 {
		r.afterStrings(d)
	}
	return nil
}

// afterStrings moves d past the negotiation strings.
func (r *rsyncStream) afterStrings(d *rsyncDir) {
	if d.server {
		d.state = rsStateSeed
	} else {
		d.state = rsStateHeader
	}
}

// rsyncStrHead is the length of a held negotiation string's length prefix.
func rsyncStrHead(h []byte) int {
	if h[0]&0x80 != 0 {
		return 2
	}
	return 1
}

func rsyncNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == ' ' || c == '-' || c == '_' || c == '.' || c == '+' || c == ','
}

// rsyncText runs the Text hook over p in place.
func rsyncText(text func([]byte) []byte, p []byte) error {
	got := text(p)
	if len(got) != len(p) {
		return errors.New("rsync text hook changed the length")
	}
	copy(p, got)
	return nil
}

// rsyncVarint decodes a complete rsync varint (io.c read_varint): the first
// byte's leading 1 bits count the little-endian bytes that follow, and its
// remaining bits are the most significant ones.
func rsyncVarint(h []byte) int {
	extra := len(h) - 1
	var v uint32
	for i := extra; i >= 1; i-- {
		v = v<<8 | uint32(h[i])
	}
	if extra > 0 {
		top := uint32(h[0]) & (1<<(8-extra) - 1)
		v |= top << (8 * extra)
	} else {
		v = uint32(h[0])
	}
	return int(int32(v))
}

// checkFlags checks the server's compat flags against what the client's
// capability string asked for, and records them.
func (r *rsyncStream) checkFlags(f int) error {
	if f < 0 || f&^rsyncCFKnown != 0 {
		return rsyncBroke("unknown compat flags " + strconv.Itoa(f))
	}
	caps := r.opts.caps
	for i := 0; i < len(rsyncCapsWithLetter); i++ {
		bit := 1 << (3 + i)
		asked := strings.IndexByte(caps, rsyncCapsWithLetter[i]) >= 0
		if bit == rsyncCFVarintFlist && strings.IndexByte(caps, 'V') >= 0 {
			asked = true
		}
		if asked != (f&bit != 0) {
			return rsyncBroke("compat flags do not answer the client's capabilities")
		}
	}
	if f&rsyncCFIncRecurse != 0 && strings.IndexByte(caps, 'i') < 0 {
		return rsyncBroke("compat flags do not answer the client's capabilities")
	}
	r.flags = f
	return nil
}

// header checks a complete frame header in d.held and sets up its payload.
func (r *rsyncStream) header(d *rsyncDir) error {
	v := binary.LittleEndian.Uint32(d.held)
	n := int(v & 0xffffff)
	if v>>24 < rsyncMplexBase {
		return rsyncBroke("not a multiplexed frame")
	}
	tag := int(v>>24) - rsyncMplexBase
	d.tag = tag
	maxLen := 0
	switch tag {
	case rsyncMsgData:
		maxLen = rsyncMaxData
	case rsyncMsgErrorXfer, rsyncMsgInfo, rsyncMsgError, rsyncMsgWarning, rsyncMsgDeleted:
		maxLen = rsyncMaxText
	case rsyncMsgIOError, rsyncMsgSuccess, rsyncMsgNoSend, rsyncMsgErrorExit:
		maxLen = 4
	case rsyncMsgIOTimeout:
		if !d.server {
			return rsyncBroke("message type 33 from the client")
		}
		maxLen = 4
	case rsyncMsgNoop:
		maxLen = 0
	default:
		return rsyncBroke("unknown message type " + strconv.Itoa(tag))
	}
	if n > maxLen {
		return rsyncBroke("message type " + strconv.Itoa(tag) + " of " + strconv.Itoa(n) + " bytes")
	}
	switch {
	case tag == rsyncMsgData && n > 0:
		d.state, d.left = rsStateData, n
	case tag == rsyncMsgData:
		// An empty MSG_DATA is a keep-alive.
	case n == 0:
		if err := rsyncCheckBody(tag, nil); err != nil {
			return err
		}
	default:
		d.state, d.need = rsStateBody, 4+n
		return nil
	}
	return nil
}

// rsyncCheckBody checks the length of a non-data message's payload.
func rsyncCheckBody(tag int, body []byte) error {
	ok := true
	switch tag {
	case rsyncMsgIOError, rsyncMsgSuccess, rsyncMsgNoSend, rsyncMsgIOTimeout:
		ok = len(body) == 4
	case rsyncMsgErrorExit:
		ok = len(body) == 0 || len(body) == 4
	}
	if !ok {
		return rsyncBroke("message type " + strconv.Itoa(tag) + " of " + strconv.Itoa(len(body)) + " bytes")
	}
	return nil
}

func rsyncIsText(tag int) bool {
	switch tag {
	case rsyncMsgErrorXfer, rsyncMsgInfo, rsyncMsgError, rsyncMsgWarning, rsyncMsgDeleted:
		return true
	}
	return false
}

// arg reads the client's secluded arguments: NUL-terminated strings ending
// with an empty one. The first is the program name; the options among the
// rest shape the handshake like those on the command line.
func (r *rsyncStream) arg(d *rsyncDir, p []byte) (int, error) {
	i := 0
	for i < len(p) {
		c := p[i]
		i++
		if d.held == nil {
			d.held = make([]byte, 0, rsyncMaxHold)
		}
		d.held = append(d.held, c)
		if c != 0 {
			if len(d.held) > rsyncMaxArg {
				return i, rsyncBroke("secluded argument too long")
			}
			continue
		}
		a := string(d.held[:len(d.held)-1])
		d.out = append(d.out, d.held...)
		d.held = d.held[:0]
		if a == "" {
			d.state = rsStateVersion
			r.opts.finish()
			return i, nil
		}
		if d.args++; d.args > rsyncMaxArgs {
			return i, rsyncBroke("too many secluded arguments")
		}
		if d.args > 1 { // the first is the program name
			if err := r.opts.word(a); err != nil {
				return i, rsyncBroke("secluded --daemon")
			}
		}
	}
	return i, nil
}
