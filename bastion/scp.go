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
	env   *transferEnv
	op    string   // upload or download
	args  []string // the command's paths: what a download sends, where an upload goes
	toDir bool     // an upload's target must be a directory (-d)
	tree  bool     // a recursive upload (-r): its target may be created by it

	mu         sync.Mutex // guards everything below
	send       scpSide    // the sender's stream
	recv       scpSide    // the receiver's stream
	dirs       []string   // the directories being sent, as paths on the target
	file       string     // the file whose data is passing
	fileDetail string
	size       int64
	remain     int64 // data bytes left of file; -1 between files
	status     bool  // the sender's status byte after a file's data is next
	scan       *fileScan
	rep        reports // made once mu is released
}

// scpSide is one direction's partial line.
type scpSide struct {
	line []byte // a control or message line not yet ended
	out  []byte
}

func newSCPStream(env *transferEnv, op, command string) *scpStream {
	s := &scpStream{env: env, op: op, remain: -1}
	s.rep.env = env
	f := strings.Fields(command)[1:]
	for len(f) > 0 && strings.HasPrefix(f[0], "-") {
		if f[0] == "--" {
			f = f[1:]
			break
		}
		s.toDir = s.toDir || strings.Contains(f[0], "d")
		s.tree = s.tree || strings.Contains(f[0], "r")
		f = f[1:]
	}
	s.args = f
	return s
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
	s.rep.unlock(&s.mu)
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
	s.rep.show(line[1:])
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
					msg:    "postern: scp download of " + logSafe(s.file) + " was blocked: it holds a card number",
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

// control checks one control line (without its newline). Its text is
// masked in place as a whole (a number could run from the size into the
// name); a masked name passes, but a card number in the mode, size or
// times would corrupt the protocol, so such a line is refused.
func (s *scpStream) control(line []byte) error {
	bad := func() error { return protocolError("scp", "malformed control line") }
	orig := string(line)
	s.env.maskText(line[1:])
	switch line[0] {
	case 'E':
		if len(line) != 1 || len(s.dirs) == 0 {
			return bad()
		}
		s.dirs = s.dirs[:len(s.dirs)-1]
		return nil
	case 'T':
		f := strings.Split(orig[1:], " ")
		if len(f) != 4 || !allDigits(f...) {
			return bad()
		}
		if string(line) != orig {
			return protocolError("scp", "a time that holds a card number")
		}
		return nil
	}
	// C or D: four octal digits of mode, a size, a name.
	f := strings.SplitN(orig[1:], " ", 3)
	if len(f) != 3 || len(f[0]) != 4 || strings.Trim(f[0], "01234567") != "" || !allDigits(f[1]) || len(f[1]) > 18 {
		return bad()
	}
	nameAt := len(line) - len(f[2])
	if string(line[:nameAt]) != orig[:nameAt] {
		return protocolError("scp", "a size that holds a card number")
	}
	// The records take the name as sent: they mask it fully (logSafe);
	// what the client sees is masked by the target's mode.
	name := orig[nameAt:]
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return bad()
	}
	full, detail := s.path(name)
	if line[0] == 'D' {
		if len(s.dirs) >= scpMaxDepth || f[1] != "0" {
			return bad()
		}
		s.dirs = append(s.dirs, full)
		s.rep.record(recorder.Transfer{Op: s.op, Path: full + "/", Outcome: "ok", Detail: detail})
		return nil
	}
	size := int64(0)
	for _, c := range f[1] {
		size = size*10 + int64(c-'0')
	}
	s.file, s.fileDetail, s.size, s.remain = full, detail, size, size
	s.scan = nil
	if s.op == "download" {
		s.scan = s.env.newScan()
	}
	if size == 0 {
		s.status = true
	}
	return nil
}

// path is where a name in the protocol is on the target, and a detail for
// the record when that is not certain. Inside a directory being sent it is
// that directory's path and the name. At the top, a download sends the
// command's paths by their last element; an upload writes to its target,
// or into it when the target must be a directory (or names the same file).
func (s *scpStream) path(name string) (string, string) {
	if len(s.dirs) > 0 {
		return path.Join(s.dirs[len(s.dirs)-1], name), ""
	}
	if s.op == "upload" {
		target := "."
		if len(s.args) > 0 {
			target = s.args[len(s.args)-1]
		}
		switch {
		case s.toDir:
			return path.Join(target, name), ""
		case s.tree:
			return path.Join(target, name), "or the target itself, if it did not exist before"
		case path.Base(target) == name:
			return target, ""
		}
		return target, "sent as " + name + "; the target is that file, or the directory it went into"
	}
	var match []string
	for _, a := range s.args {
		if path.Base(a) == name {
			match = append(match, a)
		}
	}
	switch {
	case len(match) == 1:
		return match[0], ""
	case len(s.args) == 1:
		return path.Join(path.Dir(s.args[0]), name), ""
	}
	return name, "one of the command's paths: " + strings.Join(s.args, " ")
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
	s.rep.notice(s.scan.userNotice("scp", logSafe(s.file)))
}

// fileRecord reports the current file; outcome "" takes the scan's.
func (s *scpStream) fileRecord(outcome string) {
	t := recorder.Transfer{Op: s.op, Path: s.file, Detail: s.fileDetail, Bytes: s.size - max(s.remain, 0), Outcome: s.scan.outcome()}
	if s.scan != nil {
		t.PANs = s.scan.pans
	}
	if outcome != "" && t.Outcome == "ok" {
		t.Outcome = outcome
	}
	s.rep.record(t)
	s.file = ""
}

// end reports a file cut off by the channel's end.
func (s *scpStream) end() {
	s.mu.Lock()
	if s.file != "" {
		s.fileRecord("incomplete")
	}
	s.rep.unlock(&s.mu)
}
