package bastion

import (
	"bytes"
	"path"
	"strings"
	"sync"

	"github.com/postern/postern/recorder"
)

// scpDirection tells from an exec command whether it claims to be the
// remote half of legacy scp (`scp -O`: the remote runs `scp -t` to receive
// or `scp -f` to send), and which way files go. The claim is checked by
// scpStream; this only picks the parser.
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
// nothing a shell would act on, so that "scp -f x; cat cards.txt" does not
// pass for a transfer.
func plainCommand(cmd string) bool {
	// Quotes, globs and backslashes cannot start a second command;
	// these can.
	return !strings.ContainsAny(cmd, ";&|$`()<>\n\r")
}

// isRsyncServer reports whether an exec command claims to be the remote
// half of rsync over SSH ("rsync --server ...").
func isRsyncServer(cmd string) bool {
	if !plainCommand(cmd) {
		return false
	}
	f := strings.Fields(cmd)
	return len(f) >= 2 && (f[0] == "rsync" || strings.HasSuffix(f[0], "/rsync")) && f[1] == "--server"
}

// scpMaxLine caps a control or message line; scpMaxDepth caps directory
// nesting.
const (
	scpMaxLine  = 4096
	scpMaxDepth = 256
)

// scpStream parses the legacy scp protocol strictly. The sender (the
// client for an upload, the target for a download) sends control lines
// ("Cmode size name", "Dmode 0 name", "E", "Tmtime 0 atime 0"), each C
// followed by size bytes of data and a status byte, and messages (byte 1
// or 2, text, newline); the receiver sends only status bytes and messages.
// Anything else ends the channel before it is passed on. Messages and names
// are masked; a download's data is scanned for card numbers.
//
// It is safe for use by the two pumps at once.
type scpStream struct {
	env    *transferEnv
	op     string // upload or download
	target string // the command's path; names in the protocol are relative to it

	mu     sync.Mutex // guards everything below
	send   scpSide    // the sender's stream
	recv   scpSide    // the receiver's stream
	dirs   []string
	file   string // the file whose data is passing
	size   int64
	remain int64 // data bytes left of file; -1 between files
	status bool  // the sender's status byte after a file's data is next
	scan   *fileScan
	events []func()
}

// scpSide is one direction's partial line.
type scpSide struct {
	line []byte // a control or message line not yet ended
	out  []byte
}

func newSCPStream(env *transferEnv, op, command string) *scpStream {
	f := strings.Fields(command)
	return &scpStream{env: env, op: op, target: f[len(f)-1], remain: -1}
}

func (s *scpStream) fromClient(p []byte) ([]byte, error) { return s.feed(p, s.op == "upload") }
func (s *scpStream) fromServer(p []byte) ([]byte, error) { return s.feed(p, s.op == "download") }

func (s *scpStream) feed(p []byte, sender bool) ([]byte, error) {
	s.mu.Lock()
	var out []byte
	var err error
	if sender {
		out, err = s.sender(p)
	} else {
		out, err = s.receiver(p)
	}
	events := s.events
	s.events = nil
	s.mu.Unlock()
	for _, e := range events {
		e()
	}
	return out, err
}

// receiver checks status bytes and messages.
func (s *scpStream) receiver(p []byte) ([]byte, error) {
	d := &s.recv
	d.out = d.out[:0]
	for len(p) > 0 {
		if len(d.line) == 0 {
			switch p[0] {
			case 0:
				d.out = append(d.out, 0)
				p = p[1:]
				continue
			case 1, 2:
			default:
				return d.out, protocolError("scp", "a status byte that is not 0, 1 or 2")
			}
		}
		line, rest, done, err := takeLine(d, p)
		if err != nil {
			return d.out, err
		}
		p = rest
		if done {
			d.out = append(d.out, s.message(line)...)
		}
	}
	return d.out, nil
}

// takeLine adds p up to and including a newline to d.line; done reports a
// whole line, which stays valid until the next call.
func takeLine(d *scpSide, p []byte) (line, rest []byte, done bool, err error) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		d.line = append(d.line, p...)
		if len(d.line) > scpMaxLine {
			return nil, nil, false, protocolError("scp", "a line longer than 4096 bytes")
		}
		return nil, nil, false, nil
	}
	d.line = append(d.line, p[:i+1]...)
	if len(d.line) > scpMaxLine {
		return nil, nil, false, protocolError("scp", "a line longer than 4096 bytes")
	}
	line = d.line
	d.line = d.line[:0]
	return line, p[i+1:], true, nil
}

// message masks and records a warning (1) or error (2) line, which scp
// prints for the user.
func (s *scpStream) message(line []byte) []byte {
	s.env.maskText(line[1:])
	if s.env.show != nil {
		text := append([]byte(nil), line[1:]...)
		s.events = append(s.events, func() { s.env.show(text) })
	}
	return line
}

// sender checks control lines, file data and status bytes.
func (s *scpStream) sender(p []byte) ([]byte, error) {
	d := &s.send
	d.out = d.out[:0]
	for len(p) > 0 {
		switch {
		case s.remain > 0:
			n := int(min(int64(len(p)), s.remain))
			chunk := p[:n]
			withhold := false
			if s.op == "download" {
				d.out, withhold = s.scan.stream(d.out, chunk)
			} else {
				d.out = append(d.out, chunk...)
			}
			if !withhold {
				s.remain -= int64(n)
				p = p[n:]
			}
			if !withhold && s.remain == 0 && s.op == "download" {
				d.out, withhold = s.scan.flush(d.out)
			}
			s.tell()
			if withhold {
				s.fileRecord("")
				return d.out, &transferError{
					msg:    "postern: scp download of " + s.env.maskString(s.file) + " was blocked: it holds a card number",
					reason: "card number in a downloaded file",
				}
			}
			if s.remain == 0 {
				s.status = true
			}
			continue
		case s.status && len(d.line) == 0 && p[0] == 0:
			s.fileRecord("ok")
			s.status, s.remain = false, -1
			d.out = append(d.out, 0)
			p = p[1:]
			continue
		}
		if len(d.line) == 0 && !strings.ContainsRune("CDET\x01\x02", rune(p[0])) || s.status && len(d.line) == 0 && p[0] > 2 {
			return d.out, protocolError("scp", "not a control line")
		}
		line, rest, done, err := takeLine(d, p)
		if err != nil {
			return d.out, err
		}
		p = rest
		if !done {
			continue
		}
		if line[0] == 1 || line[0] == 2 {
			if s.status {
				s.fileRecord("failed")
				s.status, s.remain = false, -1
			}
			d.out = append(d.out, s.message(line)...)
			continue
		}
		if err := s.control(line[:len(line)-1]); err != nil {
			return d.out, err
		}
		d.out = append(d.out, line...)
	}
	return d.out, nil
}

// control checks one control line (without its newline), masking the name
// in place.
func (s *scpStream) control(line []byte) error {
	bad := func() error { return protocolError("scp", "malformed control line") }
	switch line[0] {
	case 'E':
		if len(line) != 1 || len(s.dirs) == 0 {
			return bad()
		}
		s.dirs = s.dirs[:len(s.dirs)-1]
		return nil
	case 'T':
		f := strings.Split(string(line[1:]), " ")
		if len(f) != 4 || !allDigits(f...) {
			return bad()
		}
		return nil
	}
	// C or D: four octal digits of mode, a size, a name.
	f := strings.SplitN(string(line[1:]), " ", 3)
	if len(f) != 3 || len(f[0]) != 4 || strings.Trim(f[0], "01234567") != "" || !allDigits(f[1]) || len(f[1]) > 18 {
		return bad()
	}
	name := f[2]
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return bad()
	}
	s.env.maskText(line[len(line)-len(name):])
	name = string(line[len(line)-len(name):])
	full := path.Join(append(append([]string{}, s.dirs...), name)...)
	if line[0] == 'D' {
		if len(s.dirs) >= scpMaxDepth || f[1] != "0" {
			return bad()
		}
		s.dirs = append(s.dirs, name)
		s.report(recorder.Transfer{Op: s.op, Path: s.path(full) + "/", Outcome: "ok"})
		return nil
	}
	size := int64(0)
	for _, c := range f[1] {
		size = size*10 + int64(c-'0')
	}
	s.file, s.size, s.remain = full, size, size
	s.scan = nil
	if s.op == "download" {
		s.scan = s.env.newScan()
	}
	if size == 0 {
		s.status = true
	}
	return nil
}

func allDigits(list ...string) bool {
	for _, s := range list {
		if s == "" || strings.Trim(s, "0123456789") != "" {
			return false
		}
	}
	return true
}

// tell queues the user's notice about the current file's scan.
func (s *scpStream) tell() {
	if msg := s.scan.userNotice("scp", s.env.maskString(s.file)); msg != "" && s.env.notice != nil {
		s.events = append(s.events, func() { s.env.notice(msg) })
	}
}

// fileRecord reports the current file; outcome "" takes the scan's.
func (s *scpStream) fileRecord(outcome string) {
	t := recorder.Transfer{Op: s.op, Path: s.path(s.file), Bytes: s.size - max(s.remain, 0), Outcome: s.scan.outcome()}
	if s.scan != nil {
		t.PANs = s.scan.pans
	}
	if outcome != "" && t.Outcome == "ok" {
		t.Outcome = outcome
	}
	s.report(t)
	s.file = ""
}

// path is where name in the protocol is on the target: names are
// relative to the directory of the path a download sends, and to the path
// an upload goes to (the file itself when it is not a directory).
func (s *scpStream) path(name string) string {
	if s.op == "download" {
		return path.Join(path.Dir(s.target), name)
	}
	return path.Join(s.target, name)
}

func (s *scpStream) report(t recorder.Transfer) {
	t.Path = s.env.maskString(t.Path)
	if s.env.record != nil {
		s.events = append(s.events, func() { s.env.record(t) })
	}
}

// end reports a file cut off by the channel's end.
func (s *scpStream) end() {
	s.mu.Lock()
	if s.file != "" {
		s.fileRecord("incomplete")
	}
	events := s.events
	s.events = nil
	s.mu.Unlock()
	for _, e := range events {
		e()
	}
}
