package bastion

import (
	"errors"
	"strings"
	"sync"

	"github.com/postern/postern/recorder"
)

// rsyncTransfer is the transfer mode of an rsync server channel: the
// stream validator (rsync.go) checks the framing both ways, its text
// messages are masked and recorded, and what the target sends inside data
// frames is scanned for card numbers as one stream. rsync's file list is
// not parsed, so the channel gets one record: the command's paths, the
// direction, the bytes and what the scan found.
type rsyncTransfer struct {
	env    *transferEnv
	stream *rsyncStream
	rec    recorder.Transfer

	noMask bool // the rule masks, which rsync's checksums do not allow

	mu   sync.Mutex // guards rec.Bytes and scan's position below
	scan *fileScan
	off  int64 // data bytes from the target so far

	// text judges rsync's messages as one stream, so a number split
	// between two frames is masked in the second (the validator calls
	// Text with its lock held: these need no lock of their own).
	text    *fileScan
	textOff int64
}

// errRsyncCompressed refuses compressed rsync where downloads are scanned.
var errRsyncCompressed = errors.New("compressed rsync (-z) cannot be scanned for card numbers; run rsync without -z")

func newRsyncTransfer(env *transferEnv, command string) (transfer, error) {
	t := &rsyncTransfer{env: env, scan: env.newScan(), text: &fileScan{policy: FilePANsMask, mode: env.mode, detect: env.detect, next: -1}}
	if t.scan.policy == FilePANsMask {
		// rsync checks every file's checksum and discards a changed
		// copy: masking cannot deliver one, so it blocks instead.
		t.scan.policy, t.noMask = FilePANsBlock, true
	}
	s, err := newRsyncStream(command, rsyncHooks{Text: t.message, Data: t.data})
	if err != nil {
		return nil, err
	}
	if s.compressed() && env.filePANsName() != FilePANsAllow {
		return nil, errRsyncCompressed
	}
	t.stream = s
	op := "upload"
	if s.opts.sender {
		op = "download"
	}
	t.rec = recorder.Transfer{Op: op, Path: rsyncPaths(command)}
	return t, nil
}

// rsyncPaths is the paths at the end of an rsync server command (after
// the "." that separates them from the options).
func rsyncPaths(command string) string {
	f := strings.Fields(command)
	for i, a := range f {
		if a == "." && i > 1 {
			return strings.Join(f[i+1:], " ")
		}
	}
	return ""
}

// message masks a message the user will read, and records it.
func (t *rsyncTransfer) message(p []byte) []byte {
	if t.env.masking {
		t.text.chunk(t.textOff, p, nil)
		t.textOff += int64(len(p))
	}
	if t.env.show != nil && len(p) > 0 {
		t.env.show(append([]byte("rsync: "), p...))
	}
	return p
}

// data scans what the target sends inside data frames; under block, the
// first card number ends the channel before its frame passes.
func (t *rsyncTransfer) data(p []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	withhold := t.scan.chunk(t.off, p, nil)
	t.off += int64(len(p))
	if withhold {
		msg := "postern: the rsync transfer was blocked: it carries a card number"
		if t.noMask {
			msg += " (rsync checks each file's checksum, so it cannot be masked: sftp or scp gives a masked copy)"
		}
		return nil, &transferError{msg: msg, reason: "card number in rsync data"}
	}
	if t.rec.Op == "download" {
		t.rec.Bytes += int64(len(p))
	}
	return p, nil
}

func (t *rsyncTransfer) fromClient(p []byte) ([]byte, error) {
	out, err := t.stream.fromClient(p)
	if t.rec.Op == "upload" {
		t.mu.Lock()
		t.rec.Bytes += int64(len(out))
		t.mu.Unlock()
	}
	return out, err
}

func (t *rsyncTransfer) fromServer(p []byte) ([]byte, error) {
	out, err := t.stream.fromServer(p)
	if msg := t.notice(); msg != "" && t.env.notice != nil {
		t.env.notice(msg)
	}
	return out, err
}

// notice is the user's line about the scan, once.
func (t *rsyncTransfer) notice() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.scan.userNotice("rsync", logSafe(t.rec.Path))
}

// end records the transfer.
func (t *rsyncTransfer) end() {
	t.mu.Lock()
	r := t.rec
	r.PANs, r.Outcome = t.scan.pans, t.scan.outcome()
	t.mu.Unlock()
	r.Path = logSafe(r.Path)
	if t.env.record != nil {
		t.env.record(r)
	}
}
