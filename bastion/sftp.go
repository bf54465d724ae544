package bastion

import (
	"encoding/binary"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"sync"
)

// SFTP v3 packet types (draft-ietf-secsh-filexfer-02) the audit follows.
const (
	fxpOpen     = 3
	fxpClose    = 4
	fxpRead     = 5
	fxpWrite    = 6
	fxpSetstat  = 9
	fxpOpendir  = 11
	fxpRemove   = 13
	fxpMkdir    = 14
	fxpRmdir    = 15
	fxpRename   = 18
	fxpSymlink  = 20
	fxpStatus   = 101
	fxpHandle   = 102
	fxpData     = 103
	fxpMaxTrack = 4096    // open handles and pending requests tracked per channel
	fxpMaxPkt   = 1 << 20 // a longer packet stops the audit (OpenSSH sends at most 256 KiB)
)

// OpenSSH open flags (SSH_FXF_*) that make an open a write.
const fxfWriteMask = 0x02 | 0x04 | 0x08 | 0x10 // WRITE, APPEND, CREAT, TRUNC

// sftpAudit follows an SFTP session in both directions and writes one audit
// record per file opened (path, direction, bytes) and per change (remove,
// rename, mkdir, ...), instead of recording the bytes. It is safe for use
// by the two pumps at once.
type sftpAudit struct {
	log *slog.Logger

	mu       sync.Mutex // guards everything below
	in, out  sftpStream
	opens    map[uint32]string    // request id → path, until the handle comes back
	reads    map[uint32]string    // READ request id → handle
	handles  map[string]*sftpFile // open handles
	degraded bool
}

type sftpFile struct {
	path           string
	write          bool
	dir            bool
	bytesIn, bytes int64 // written by the client, read by the client
}

// sftpStream reassembles packets from one direction.
type sftpStream struct {
	buf []byte
}

func newSFTPAudit(log *slog.Logger) *sftpAudit {
	return &sftpAudit{
		log:     log,
		opens:   make(map[uint32]string),
		reads:   make(map[uint32]string),
		handles: make(map[string]*sftpFile),
	}
}

// fromClient and fromServer take the bytes of each direction, in order.
func (a *sftpAudit) fromClient(p []byte) { a.feed(&a.in, p, a.clientPacket) }
func (a *sftpAudit) fromServer(p []byte) { a.feed(&a.out, p, a.serverPacket) }

func (a *sftpAudit) feed(s *sftpStream, p []byte, handle func(typ byte, body []byte)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.degraded {
		return
	}
	s.buf = append(s.buf, p...)
	for len(s.buf) >= 5 {
		n := int(binary.BigEndian.Uint32(s.buf))
		if n < 1 || n > fxpMaxPkt {
			a.degrade("packet length out of range")
			return
		}
		if len(s.buf) < 4+n {
			break
		}
		handle(s.buf[4], s.buf[5:4+n])
		s.buf = s.buf[4+n:]
	}
	// Keep the partial packet, not the consumed prefix's backing array.
	if len(s.buf) == 0 {
		s.buf = s.buf[:0:0]
	}
}

func (a *sftpAudit) degrade(why string) {
	if !a.degraded {
		a.degraded = true
		audit(a.log, "sftp_audit_degraded", "reason", why)
	}
}

// sftp strings and integers, RFC 4251 §5.
type reader struct {
	b  []byte
	ok bool
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) str() string {
	n := int(r.u32())
	if !r.ok || n > len(r.b) {
		r.ok = false
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) skipStr() int {
	n := int(r.u32())
	if !r.ok || n > len(r.b) {
		r.ok = false
		return 0
	}
	r.b = r.b[n:]
	return n
}

func (a *sftpAudit) clientPacket(typ byte, body []byte) {
	r := &reader{b: body, ok: true}
	switch typ {
	case fxpOpen, fxpOpendir:
		id := r.u32()
		path := r.str()
		var flags uint32
		if typ == fxpOpen {
			flags = r.u32()
		}
		if r.ok && len(a.opens) < fxpMaxTrack {
			if typ == fxpOpendir {
				path += "/"
			} else if flags&fxfWriteMask != 0 {
				path = "\x00w" + path // marks a write open until the handle arrives
			}
			a.opens[id] = path
		}
	case fxpRead:
		id := r.u32()
		h := r.str()
		if r.ok && len(a.reads) < fxpMaxTrack {
			a.reads[id] = h
		}
	case fxpWrite:
		r.u32()
		h := r.str()
		r.b = r.b[min(8, len(r.b)):] // offset
		n := r.skipStr()
		if f := a.handles[h]; r.ok && f != nil {
			f.bytesIn += int64(n)
		}
	case fxpClose:
		r.u32()
		h := r.str()
		if f := a.handles[h]; r.ok && f != nil {
			a.fileDone(f)
			delete(a.handles, h)
		}
	case fxpRemove, fxpMkdir, fxpRmdir, fxpSetstat:
		r.u32()
		path := r.str()
		if r.ok {
			op := map[byte]string{fxpRemove: "remove", fxpMkdir: "mkdir", fxpRmdir: "rmdir", fxpSetstat: "setstat"}[typ]
			audit(a.log, "sftp_op", "op", op, "path", logSafe(path))
		}
	case fxpRename, fxpSymlink:
		r.u32()
		from, to := r.str(), r.str()
		if r.ok {
			op := map[byte]string{fxpRename: "rename", fxpSymlink: "symlink"}[typ]
			audit(a.log, "sftp_op", "op", op, "path", logSafe(from), "to", logSafe(to))
		}
	}
}

func (a *sftpAudit) serverPacket(typ byte, body []byte) {
	r := &reader{b: body, ok: true}
	switch typ {
	case fxpHandle:
		id := r.u32()
		h := r.str()
		path, pending := a.opens[id]
		if !r.ok || !pending {
			return
		}
		delete(a.opens, id)
		if len(a.handles) >= fxpMaxTrack {
			a.degrade("too many open handles")
			return
		}
		f := &sftpFile{path: path}
		if rest, ok := strings.CutPrefix(path, "\x00w"); ok {
			f.path, f.write = rest, true
		}
		if len(f.path) > 0 && f.path[len(f.path)-1] == '/' {
			f.dir = true
		}
		a.handles[h] = f
	case fxpStatus:
		id := r.u32()
		delete(a.opens, id) // a failed open
		delete(a.reads, id)
	case fxpData:
		id := r.u32()
		n := r.skipStr()
		h, ok := a.reads[id]
		delete(a.reads, id)
		if f := a.handles[h]; ok && r.ok && f != nil {
			f.bytes += int64(n)
		}
	}
}

func (a *sftpAudit) fileDone(f *sftpFile) {
	switch {
	case f.dir:
		audit(a.log, "sftp_file", "op", "list", "path", logSafe(f.path[:len(f.path)-1]))
	case f.write:
		audit(a.log, "sftp_file", "op", "upload", "path", logSafe(f.path), "bytes", f.bytesIn)
	default:
		audit(a.log, "sftp_file", "op", "download", "path", logSafe(f.path), "bytes", f.bytes)
	}
}

// close reports files still open when the channel ends.
func (a *sftpAudit) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for h, f := range a.handles {
		a.fileDone(f)
		delete(a.handles, h)
	}
}

// scpAudit follows the legacy scp protocol (`scp -O`: the remote runs
// `scp -t` to receive or `scp -f` to send) on the sender's stream and writes
// one audit record per file: control lines "Cmode size name", "Dmode 0
// name", "E" and "Tmtime 0 atime 0", each followed for C by size bytes and
// a zero byte.
type scpAudit struct {
	log    *slog.Logger
	op     string     // upload or download
	target string     // the remote path in the command; names in the protocol are relative to it
	mu     sync.Mutex // guards the fields below
	line   []byte
	dirs   []string
	file   string
	remain int64 // data bytes left of the current file; -1 when reading a control line
	size   int64
	broken bool
}

// scpDirection tells from an exec command whether it is the remote half of
// legacy scp, and which way files go.
func scpDirection(cmd string) (op string, ok bool) {
	if !plainCommand(cmd) {
		return "", false
	}
	f := strings.Fields(cmd)
	if len(f) < 2 || (f[0] != "scp" && !strings.HasSuffix(f[0], "/scp")) {
		return "", false
	}
	for _, a := range f[1:] {
		if !strings.HasPrefix(a, "-") || a == "--" {
			break
		}
		if strings.Contains(a, "t") {
			return "upload", true
		}
		if strings.Contains(a, "f") {
			return "download", true
		}
	}
	return "", false
}

// plainCommand reports whether cmd is one program with arguments and
// nothing a shell would act on: file transfers are exempt from masking and
// recording, so "scp -f x; cat cards.txt" must not pass for one.
func plainCommand(cmd string) bool {
	// Quotes, globs and backslashes cannot start a second command;
	// these can.
	return !strings.ContainsAny(cmd, ";&|$`()<>\n\r")
}

// isRsyncServer reports whether an exec command is the remote half of
// rsync over SSH ("rsync --server ...").
func isRsyncServer(cmd string) bool {
	if !plainCommand(cmd) {
		return false
	}
	f := strings.Fields(cmd)
	return len(f) >= 2 && (f[0] == "rsync" || strings.HasSuffix(f[0], "/rsync")) && f[1] == "--server"
}

func newSCPAudit(log *slog.Logger, op, command string) *scpAudit {
	f := strings.Fields(command)
	return &scpAudit{log: log, op: op, target: f[len(f)-1], remain: -1}
}

// feed takes the sender's stream: the client's for an upload, the
// target's for a download.
func (a *scpAudit) feed(p []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for len(p) > 0 && !a.broken {
		if a.remain >= 0 {
			n := min(int64(len(p)), a.remain)
			a.remain -= n
			p = p[n:]
			if a.remain == 0 && len(p) > 0 {
				// The zero byte that ends a file.
				audit(a.log, "scp_file", "op", a.op, "path", logSafe(a.file), "bytes", a.size, "target", logSafe(a.target))
				p = p[1:]
				a.remain = -1
			}
			continue
		}
		i := indexByte(p, '\n')
		if i < 0 {
			a.line = append(a.line, p...)
			if len(a.line) > 4096 {
				a.broken = true
				audit(a.log, "scp_audit_degraded", "reason", "control line too long")
			}
			return
		}
		a.line = append(a.line, p[:i]...)
		p = p[i+1:]
		a.control(string(a.line))
		a.line = a.line[:0]
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func (a *scpAudit) control(line string) {
	if line == "" {
		return
	}
	switch line[0] {
	case 'C', 'D':
		f := strings.SplitN(line[1:], " ", 3)
		if len(f) != 3 {
			return
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			a.broken = true
			audit(a.log, "scp_audit_degraded", "reason", "bad size in control line")
			return
		}
		name := path.Join(append(append([]string{}, a.dirs...), f[2])...)
		if line[0] == 'D' {
			a.dirs = append(a.dirs, f[2])
			audit(a.log, "scp_file", "op", a.op, "path", logSafe(name+"/"), "dir", true, "target", logSafe(a.target))
			return
		}
		a.file, a.size, a.remain = name, size, size
		if size == 0 {
			a.remain = 0 // only the zero byte follows
		}
	case 'E':
		if len(a.dirs) > 0 {
			a.dirs = a.dirs[:len(a.dirs)-1]
		}
	}
}
