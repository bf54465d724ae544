package bastion

import (
	"encoding/binary"
	"path"
	"sync"

	"github.com/postern/postern/recorder"
)

// SFTP version 3 (draft-ietf-secsh-filexfer-02) as OpenSSH speaks it, with
// the extensions OpenSSH's sftp-server offers.
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpOpen          = 3
	fxpClose         = 4
	fxpRead          = 5
	fxpWrite         = 6
	fxpLstat         = 7
	fxpFstat         = 8
	fxpSetstat       = 9
	fxpFsetstat      = 10
	fxpOpendir       = 11
	fxpReaddir       = 12
	fxpRemove        = 13
	fxpMkdir         = 14
	fxpRmdir         = 15
	fxpRealpath      = 16
	fxpStat          = 17
	fxpRename        = 18
	fxpReadlink      = 19
	fxpSymlink       = 20
	fxpStatus        = 101
	fxpHandle        = 102
	fxpData          = 103
	fxpName          = 104
	fxpAttrs         = 105
	fxpExtended      = 200
	fxpExtendedReply = 201

	fxOK               = 0
	fxEOF              = 1
	fxPermissionDenied = 3
	fxFailure          = 4

	// sftpMaxPacket is OpenSSH's limit on a packet's length field; a
	// longer one is a protocol violation.
	sftpMaxPacket = 256 << 10
	// sftpMaxPending caps requests awaiting a reply and open handles.
	sftpMaxPending = 4096
	sftpMaxHandle  = 256 // the draft's limit on a handle's length
)

// fxfWrite are the open flags (SSH_FXF_*) that make an open an upload:
// WRITE, APPEND, CREAT, TRUNC.
const fxfWrite = 0x02 | 0x04 | 0x08 | 0x10

// sftpStream parses an SFTP session strictly in both directions: packet
// lengths and types, every field of every request and reply, request ids
// unique while outstanding, replies of a type the request allows, and
// handles known to have come from the server. It keeps one record per file
// (path, direction, bytes, card numbers, outcome) and per change (remove,
// rename, link, ...), taken from the request and the server's reply to it,
// so a reply can never be credited to a different path. Downloads are
// scanned for card numbers; status messages and file names are masked.
//
// It is safe for use by the two pumps at once: one mutex guards the state.
type sftpStream struct {
	env *transferEnv

	mu      sync.Mutex // guards everything below
	in, out pktBuf
	inited  bool                // the client sent INIT
	version bool                // the server sent VERSION
	pending map[uint32]*sftpReq // requests awaiting their reply, by id
	handles map[string]*sftpFile
	// scans are the card-number scans by path, shared by every handle on
	// it, so that two handles cannot each read half of a number.
	scans map[string]*fileScan

	// A DATA reply held back until the next reply (sftp_reply.go hold).
	held     []byte // the packet, in one of heldBuf; nil: none
	heldData []byte // its data, inside held
	heldID   uint32
	heldFile *sftpFile
	heldEnd  int64 // file offset just past heldData
	heldBuf  [2][]byte
	heldSide int
	rep      reports // made once mu is released
}

// sftpReq is a request awaiting its reply.
type sftpReq struct {
	typ  byte
	ext  string // the extension's name, for fxpExtended
	op   string // the record's op for changes; "" for none
	path string
	to   string
	file *sftpFile // OPEN/OPENDIR: the file being opened; READ/WRITE/CLOSE: its file
	off  uint64    // READ: offset
	n    uint32    // READ: length asked for; WRITE: length sent
}

// sftpFile is an open handle's file. A handle opened for writing can be
// read too: both directions are counted, and recorded.
type sftpFile struct {
	op      string // download, upload or list: what the open asked for
	path    string
	read    int64 // bytes of DATA that reached the client
	written int64 // bytes of WRITE the target accepted
	reads   int   // READ requests awaiting their reply
	scan    *fileScan
}

// pktBuf reassembles one direction's packets.
type pktBuf struct {
	carry []byte // a partial packet
	out   []byte // output assembled when it cannot alias the input
}

func newSFTPStream(env *transferEnv) *sftpStream {
	a := &sftpStream{env: env, pending: map[uint32]*sftpReq{}, handles: map[string]*sftpFile{}, scans: map[string]*fileScan{}}
	a.rep.env = env
	return a
}

func (a *sftpStream) fromClient(p []byte) ([]byte, error) { return a.feed(&a.in, p, a.clientPacket) }
func (a *sftpStream) fromServer(p []byte) ([]byte, error) { return a.feed(&a.out, p, a.serverPacket) }

// feed passes on the complete packets of p (with what was carried over),
// each checked by handle, which may mask it in place or return a
// replacement. It stops at the first bad packet.
func (a *sftpStream) feed(d *pktBuf, p []byte, handle func(pkt []byte) ([]byte, error)) ([]byte, error) {
	a.mu.Lock()
	out, err := a.feedLocked(d, p, handle)
	a.rep.unlock(&a.mu)
	return out, err
}

func (a *sftpStream) feedLocked(d *pktBuf, p []byte, handle func(pkt []byte) ([]byte, error)) ([]byte, error) {
	data := p
	carried := len(d.carry) > 0
	if carried {
		d.carry = append(d.carry, p...)
		data = d.carry
	}
	// Output is data[:i] unchanged until a packet is replaced (or held:
	// an empty replacement); from then on it is built in d.out, never
	// in p, which the caller reuses.
	changed := false
	out := d.out[:0]
	i := 0
	var err error
	for {
		rest := data[i:]
		if len(rest) < 4 {
			break
		}
		n := int(binary.BigEndian.Uint32(rest))
		if n < 5 || n > sftpMaxPacket {
			err = protocolError("sftp", "packet length "+itoa(n))
			break
		}
		if len(rest) < 4+n {
			break
		}
		pkt := rest[:4+n]
		var repl []byte
		if repl, err = handle(pkt); err != nil {
			break
		}
		if repl != nil && !changed {
			out, changed = append(out, data[:i]...), true
		}
		switch {
		case repl != nil:
			out = append(out, repl...)
		case changed:
			out = append(out, pkt...)
		}
		i += 4 + n
	}
	switch {
	case changed:
		d.out = out[:0] // keep what it grew to
	case carried:
		out = append(out, data[:i]...)
		d.out = out[:0]
	default:
		out = data[:i]
	}
	if err != nil {
		d.carry = nil
		return out, err
	}
	// Keep the partial packet; never the caller's buffer.
	rest := data[i:]
	if carried {
		d.carry = d.carry[:copy(d.carry, rest)]
	} else {
		d.carry = append(d.carry[:0], rest...)
	}
	if len(d.carry) == 0 && cap(d.carry) > 64<<10 {
		d.carry = nil
	}
	return out, nil
}

// clientPacket checks one request from the client and remembers what its
// reply must be.
func (a *sftpStream) clientPacket(pkt []byte) ([]byte, error) {
	typ := pkt[4]
	r := &wire{b: pkt[5:], ok: true}
	if !a.inited {
		return nil, a.clientInit(typ, r)
	}
	id := r.u32()
	if _, dup := a.pending[id]; dup {
		return nil, protocolError("sftp", "request id "+itoa(int(id))+" reused while outstanding")
	}
	if len(a.pending) >= sftpMaxPending {
		return nil, protocolError("sftp", "too many outstanding requests")
	}
	q := &sftpReq{typ: typ}
	handle := func() *sftpFile {
		h := r.str()
		f := a.handles[h]
		if r.ok && f == nil {
			r.ok = false
		}
		return f
	}
	if err := a.parseRequest(typ, r, q, handle); err != nil {
		return nil, err
	}
	if !r.done() {
		return nil, protocolError("sftp", "malformed request of type "+itoa(int(typ)))
	}
	a.pending[id] = q
	if typ == fxpRead {
		q.file.reads++
	}
	return nil, nil
}

// clientInit checks the client's first packet, which must be INIT.
func (a *sftpStream) clientInit(typ byte, r *wire) error {
	if typ != fxpInit {
		return protocolError("sftp", "the client's first packet is not INIT")
	}
	r.u32() // version; extension pairs may follow
	for r.ok && len(r.b) > 0 {
		r.bytes()
		r.bytes()
	}
	if !r.done() {
		return protocolError("sftp", "malformed INIT")
	}
	a.inited = true
	return nil
}

// parseRequest reads a request of type typ into q; r.ok turns false if it
// is malformed.
func (a *sftpStream) parseRequest(typ byte, r *wire, q *sftpReq, handle func() *sftpFile) error {
	switch typ {
	case fxpOpen:
		q.path = r.str()
		flags := r.u32()
		r.attrs(nil)
		q.file = &sftpFile{op: "download", path: q.path}
		if flags&fxfWrite != 0 {
			q.file.op = "upload"
		}
	case fxpOpendir:
		q.path = r.str()
		q.file = &sftpFile{op: "list", path: q.path}
	case fxpClose:
		h := r.str()
		q.file = a.handles[h]
		if q.file == nil {
			r.ok = false
		}
		delete(a.handles, h)
	case fxpRead:
		q.file = handle()
		q.off = r.u64()
		q.n = r.u32()
		if q.n > sftpMaxPacket {
			r.ok = false
		}
	case fxpWrite:
		q.file = handle()
		r.u64()
		q.n = uint32(len(r.bytes())) // counted when the target accepts it
	case fxpFstat, fxpReaddir:
		handle()
	case fxpFsetstat:
		handle()
		r.attrs(nil)
	case fxpLstat, fxpStat, fxpRealpath, fxpReadlink:
		r.str()
	case fxpRemove, fxpRmdir:
		q.op, q.path = map[byte]string{fxpRemove: "remove", fxpRmdir: "rmdir"}[typ], r.str()
	case fxpMkdir, fxpSetstat:
		q.op, q.path = map[byte]string{fxpMkdir: "mkdir", fxpSetstat: "setstat"}[typ], r.str()
		r.attrs(nil)
	case fxpRename, fxpSymlink:
		q.op = map[byte]string{fxpRename: "rename", fxpSymlink: "symlink"}[typ]
		q.path, q.to = r.str(), r.str()
	case fxpExtended:
		return a.extended(r, q, handle)
	default:
		return protocolError("sftp", "unknown request type "+itoa(int(typ)))
	}
	return nil
}

// extended parses the extension requests OpenSSH's sftp-server offers;
// any other is refused, since its reply could not be checked.
func (a *sftpStream) extended(r *wire, q *sftpReq, handle func() *sftpFile) error {
	q.ext = r.str()
	switch q.ext {
	case "posix-rename@openssh.com", "hardlink@openssh.com":
		q.op = map[string]string{"posix-rename@openssh.com": "rename", "hardlink@openssh.com": "link"}[q.ext]
		q.path, q.to = r.str(), r.str()
	case "statvfs@openssh.com", "expand-path@openssh.com", "home-directory":
		r.str()
	case "fstatvfs@openssh.com", "fsync@openssh.com":
		handle()
	case "lsetstat@openssh.com":
		q.op, q.path = "setstat", r.str()
		r.attrs(nil)
	case "limits@openssh.com":
	case "copy-data":
		from := handle()
		r.u64()
		r.u64()
		to := handle()
		r.u64()
		if r.ok {
			q.op, q.path, q.to = "copy", from.path, to.path
		}
	case "users-groups-by-id@openssh.com":
		r.bytes()
		r.bytes()
	default:
		if r.ok {
			return protocolError("sftp", "unsupported extension "+logSafe(q.ext))
		}
	}
	return nil
}

// status ends a request: a change or a close gets its record, a failed
// open one that says so; a person may read a failure's message, so it is
// recorded too.
func (a *sftpStream) status(q *sftpReq, code uint32, msg []byte) {
	if code != fxOK && code != fxEOF && len(msg) > 0 {
		a.rep.show(append(append([]byte("sftp: "), msg...), '\n'))
	}
	detail := ""
	outcome := "ok"
	if code != fxOK {
		outcome, detail = "failed", string(msg)
	}
	switch {
	case q.typ == fxpWrite && code == fxOK:
		q.file.written += int64(q.n)
	case q.typ == fxpClose && q.file != nil:
		a.fileRecord(q.file, "")
	case (q.typ == fxpOpen || q.typ == fxpOpendir) && code != fxOK:
		a.rep.record(recorder.Transfer{Op: q.file.op, Path: q.file.path, Outcome: outcome, Detail: detail})
	case q.op != "":
		a.rep.record(recorder.Transfer{Op: q.op, Path: q.path, To: q.to, Outcome: outcome, Detail: detail})
	}
}

// fileRecord reports a file whose handle was closed (or left open, with
// outcome "incomplete"): a download record if it was opened to read or
// read from, an upload record if opened to write or written to.
func (a *sftpStream) fileRecord(f *sftpFile, outcome string) {
	with := func(t recorder.Transfer) recorder.Transfer {
		if outcome != "" && t.Outcome == "ok" {
			t.Outcome = outcome
		}
		return t
	}
	if f.op == "list" {
		a.rep.record(with(recorder.Transfer{Op: "list", Path: path.Clean(f.path) + "/", Outcome: "ok"}))
		return
	}
	if f.op == "upload" || f.written > 0 {
		a.rep.record(with(recorder.Transfer{Op: "upload", Path: f.path, Bytes: f.written, Outcome: "ok"}))
	}
	if f.op == "download" || f.read > 0 {
		t := recorder.Transfer{Op: "download", Path: f.path, Bytes: f.read, Outcome: f.scan.outcome()}
		if f.scan != nil {
			t.PANs = f.scan.pans
		}
		a.rep.record(with(t))
	}
}

// end reports the files still open when the channel ends.
func (a *sftpStream) end() {
	a.mu.Lock()
	for h, f := range a.handles {
		a.fileRecord(f, "incomplete")
		delete(a.handles, h)
	}
	// Changes asked for whose answer never came may still have happened.
	for id, q := range a.pending {
		if q.op != "" {
			a.rep.record(recorder.Transfer{Op: q.op, Path: q.path, To: q.to, Outcome: "incomplete"})
		}
		delete(a.pending, id)
	}
	a.rep.unlock(&a.mu)
}
