package bastion

import (
	"bytes"
	"encoding/binary"
	"path"

	"github.com/postern/postern/mask"
)

// serverPacket checks one reply from the server against its request. A
// DATA reply held back (see hold) goes on before any reply but the next
// DATA of its file, which is judged with it.
func (a *sftpStream) serverPacket(pkt []byte) ([]byte, error) {
	var pre []byte
	if a.held != nil && !a.continuesHeld(pkt) && a.concernsHeld(pkt) {
		pre = a.release()
	}
	repl, err := a.serverReply(pkt)
	switch {
	case err != nil:
		return nil, err
	case pre == nil:
		return repl, nil
	case repl == nil:
		return append(pre, pkt...), nil
	}
	return append(pre, repl...), nil
}

// serverReply checks one reply from the server against its request.
func (a *sftpStream) serverReply(pkt []byte) ([]byte, error) {
	typ := pkt[4]
	r := &wire{b: pkt[5:], ok: true}
	if !a.version {
		return nil, a.serverVersion(typ, r)
	}
	id := r.u32()
	q := a.pending[id]
	if q == nil {
		return nil, protocolError("sftp", "reply to no outstanding request")
	}
	delete(a.pending, id)
	if q.typ == fxpRead {
		q.file.reads--
	}
	var repl []byte
	switch typ {
	case fxpStatus:
		code := r.u32()
		var msg []byte
		if len(r.b) > 0 {
			msg = r.bytes()
			a.env.maskText(r.bytes()) // language tag
		}
		if r.ok {
			a.env.maskText(msg)
			a.status(q, code, msg)
		}
	case fxpHandle:
		if err := a.handleReply(r, q); err != nil {
			return nil, err
		}
	case fxpData:
		data := r.bytes()
		if q.typ != fxpRead || uint64(len(data)) > uint64(q.n) {
			return nil, protocolError("sftp", "unexpected DATA")
		}
		if r.done() {
			repl = a.data(id, q, pkt, data)
		}
	case fxpName:
		if !q.namesReply() {
			return nil, protocolError("sftp", "unexpected NAME")
		}
		n := r.u32()
		for i := uint32(0); i < n && r.ok; i++ {
			a.env.maskText(r.bytes()) // file name
			a.env.maskText(r.bytes()) // ls -l style line
			r.attrs(a.env.maskText)
		}
	case fxpAttrs:
		if q.typ != fxpStat && q.typ != fxpLstat && q.typ != fxpFstat {
			return nil, protocolError("sftp", "unexpected ATTRS")
		}
		r.attrs(a.env.maskText)
	case fxpExtendedReply:
		if err := a.extendedReply(r, q); err != nil {
			return nil, err
		}
	default:
		return nil, protocolError("sftp", "unknown reply type "+itoa(int(typ)))
	}
	if !r.done() {
		return nil, protocolError("sftp", "malformed reply of type "+itoa(int(typ)))
	}
	return repl, nil
}

// serverVersion checks the server's first packet, which must be VERSION.
func (a *sftpStream) serverVersion(typ byte, r *wire) error {
	if typ != fxpVersion {
		return protocolError("sftp", "the server's first packet is not VERSION")
	}
	r.u32()
	for r.ok && len(r.b) > 0 {
		a.env.maskText(r.bytes()) // extension name
		a.env.maskText(r.bytes()) // and data
	}
	if !r.done() {
		return protocolError("sftp", "malformed VERSION")
	}
	a.version = true
	return nil
}

// handleReply checks a HANDLE reply to q and keeps the handle.
func (a *sftpStream) handleReply(r *wire, q *sftpReq) error {
	h := r.bytes()
	if q.typ != fxpOpen && q.typ != fxpOpendir || len(h) > sftpMaxHandle {
		return protocolError("sftp", "unexpected HANDLE")
	}
	if _, dup := a.handles[string(h)]; dup || len(a.handles) >= sftpMaxPending {
		return protocolError("sftp", "handle reused or too many handles")
	}
	// A handle goes back to the target as it came, so it cannot be
	// masked: one that holds a card number is refused.
	if _, n := a.env.detect.Mask(nil, h, mask.ModeFull); n > 0 {
		return protocolError("sftp", "a handle that holds a card number")
	}
	if r.ok {
		a.opened(q.file)
		a.handles[string(h)] = q.file
	}
	return nil
}

// namesReply reports whether a NAME reply may answer q.
func (q *sftpReq) namesReply() bool {
	switch q.typ {
	case fxpReaddir, fxpRealpath, fxpReadlink:
		return true
	case fxpExtended:
		return q.ext == "expand-path@openssh.com" || q.ext == "home-directory"
	}
	return false
}

// extendedReply checks the fixed layouts of the extension replies.
func (a *sftpStream) extendedReply(r *wire, q *sftpReq) error {
	switch q.ext {
	case "statvfs@openssh.com", "fstatvfs@openssh.com":
		for range 11 {
			r.u64()
		}
	case "limits@openssh.com":
		for range 4 {
			r.u64()
		}
	case "users-groups-by-id@openssh.com":
		for range 2 {
			names := &wire{b: r.bytes(), ok: r.ok}
			for names.ok && len(names.b) > 0 {
				a.env.maskText(names.bytes())
			}
			r.ok = r.ok && names.ok
		}
	default:
		return protocolError("sftp", "unexpected EXTENDED_REPLY")
	}
	return nil
}

// data accounts a READ's data (of packet pkt) to its file and scans it.
// It returns what goes to the client in the packet's place: nil for the
// packet as it is (masked in place), a failure status when the scan
// withholds the data, an empty slice while the packet is held, or the
// held packet and this one.
func (a *sftpStream) data(id uint32, q *sftpReq, pkt, data []byte) []byte {
	f := q.file
	if f.scan == nil {
		f.scan = a.scanOf(f.path)
	}
	// The scan judges a file front to back: a read that goes back over
	// bytes already read could put a number together from pieces that
	// were each judged alone.
	if f.scan.policy != FilePANsAllow && f.scan.next >= 0 && int64(q.off) < f.scan.next {
		return statusPacket(id, fxFailure, "postern: reads that go back in a file scanned for card numbers are refused")
	}
	var live []byte // the held packet's data: this packet continues it
	if a.held != nil {
		live = a.heldData
	}
	if f.scan.chunk(int64(q.off), data, live) {
		a.tell(f)
		blocked := "postern: " + logSafe(f.path) + " holds a card number; the download was blocked"
		var out []byte
		if a.held != nil {
			out = statusPacket(a.heldID, fxPermissionDenied, blocked)
			f.read -= int64(len(a.heldData))
			a.release()
		}
		return append(out, statusPacket(id, fxPermissionDenied, blocked)...)
	}
	f.read += int64(len(data))
	a.tell(f)
	var out []byte
	if a.held != nil {
		out = a.release()
	}
	if f.scan.policy != FilePANsAllow && f.reads > 0 && candidateEnd(data) {
		a.hold(id, f, int64(q.off), pkt, len(data))
		if out == nil {
			return []byte{}
		}
		return out
	}
	if out == nil {
		return nil
	}
	return append(out, pkt...)
}

// hold keeps a DATA packet whose data ends in what may begin a card number
// until the next reply: the next read of the file (the client has one
// outstanding, or it is not held) is judged with it, so a number split
// between the two is masked or blocked whole. Any other reply releases it
// first.
func (a *sftpStream) hold(id uint32, f *sftpFile, off int64, pkt []byte, n int) {
	a.heldBuf[a.heldSide] = append(a.heldBuf[a.heldSide][:0], pkt...)
	a.held = a.heldBuf[a.heldSide]
	a.heldSide ^= 1 // release hands the buffer out: the next hold takes the other
	a.heldData = a.held[len(a.held)-n:]
	a.heldID, a.heldFile, a.heldEnd = id, f, off+int64(n)
}

// release hands out the held packet; it stays valid until the hold after
// next.
func (a *sftpStream) release() []byte {
	p := a.held
	a.held, a.heldData, a.heldFile = nil, nil, nil
	return p
}

// continuesHeld reports whether pkt is the DATA reply that reads on from
// the held one.
func (a *sftpStream) continuesHeld(pkt []byte) bool {
	if pkt[4] != fxpData || len(pkt) < 9 {
		return false
	}
	q := a.pending[binary.BigEndian.Uint32(pkt[5:])]
	return q != nil && q.typ == fxpRead && q.file == a.heldFile && int64(q.off) == a.heldEnd
}

// concernsHeld reports whether reply pkt answers a request about the held
// reply's file (another read of it, its close): such a reply must not
// overtake the held one. Replies about other files and paths pass it (SFTP
// clients match replies by id), so a STAT between two reads does not
// release the hold early.
func (a *sftpStream) concernsHeld(pkt []byte) bool {
	if len(pkt) < 9 {
		return true
	}
	q := a.pending[binary.BigEndian.Uint32(pkt[5:])]
	return q == nil || q.file == a.heldFile
}

// candidateEnd reports whether data ends as a card number may begin: in a
// digit, or a digit and one separator, each maybe followed by escape
// sequences (whole or cut off) or ignored controls, which the detector
// does not see.
func candidateEnd(data []byte) bool {
	for range 4 { // a few sequences in a row; more is not a number's gap
		// Controls the detector passes over (NUL after every character of
		// UTF-16LE text) hide nothing either.
		data = trimIgnored(data)
		n := len(data)
		if n > 0 && data[n-1] == 0x08 {
			// An erase reopens what it takes back: whatever comes next
			// may continue a number before it.
			return true
		}
		digit := func(b []byte) bool { return len(b) > 0 && b[len(b)-1] >= '0' && b[len(b)-1] <= '9' }
		if digit(data) || (n >= 2 && (data[n-1] == ' ' || data[n-1] == '-') && digit(trimIgnored(data[:n-1]))) {
			return true
		}
		// An escape sequence at the end: judge what comes before it.
		from := max(0, n-64)
		i := bytes.LastIndexByte(data[from:], 0x1b)
		if i < 0 || bytes.IndexByte(data[from+i:], '\n') >= 0 {
			return false
		}
		data = data[:from+i]
	}
	return false
}

// opened starts a fresh scan of f's path unless another handle on it is
// open: a file read again from the start (get twice, reget) is judged
// again, but two handles open at once share one scan.
func (a *sftpStream) opened(f *sftpFile) {
	p := path.Clean(f.path)
	for _, g := range a.handles {
		if path.Clean(g.path) == p {
			return
		}
	}
	delete(a.scans, p)
}

// scanOf is the card-number scan of path, shared by its handles.
func (a *sftpStream) scanOf(p string) *fileScan {
	p = path.Clean(p)
	sc := a.scans[p]
	if sc == nil {
		if len(a.scans) >= sftpMaxPending {
			clear(a.scans) // bounded: a flood of paths forgets old scans
		}
		sc = a.env.newScan()
		a.scans[p] = sc
	}
	return sc
}

// tell queues the user's notice about f's scan, if there is one.
func (a *sftpStream) tell(f *sftpFile) {
	a.rep.notice(f.scan.userNotice("sftp", logSafe(f.path)))
}

// trimIgnored cuts off the controls at the end of b that the detector
// passes over (mask's ignored controls: C0 but BS, HT, LF, VT, FF, CR,
// CAN, SUB and ESC; and DEL).
func trimIgnored(b []byte) []byte {
	for len(b) > 0 {
		switch c := b[len(b)-1]; {
		case c == 0x7f, c < 0x20 && c != 0x08 && (c < 0x09 || c > 0x0d) && c != 0x18 && c != 0x1a && c != 0x1b:
			b = b[:len(b)-1]
		default:
			return b
		}
	}
	return b
}
