package bastion

import (
	"bytes"
	"sync"

	"github.com/postern/postern/mask"
)

// newScan starts the card-number scan of one downloaded file.
func (e *transferEnv) newScan() *fileScan {
	// Only masking writes what the scan masked; to block or count, every
	// digit of a number must show, whatever the target's mode.
	m := e.mode
	if !e.masking || e.filePANs != FilePANsMask {
		m = mask.ModeFull
	}
	return &fileScan{policy: e.filePANs, mode: m, detect: e.detect, next: -1}
}

// outcome is a downloaded file's record outcome under the env's policy.
func (f *fileScan) outcome() string {
	switch {
	case f == nil || f.pans == 0:
		return "ok"
	case f.blocked:
		return "blocked"
	case f.policy == FilePANsMask:
		return "masked"
	default:
		return "allowed"
	}
}

// scanBufs are chunk's scratch buffers (tail + chunk).
var scanBufs = sync.Pool{New: func() any { return new([]byte) }}

// scanOverlap is how many bytes of a file's previous chunk are judged again
// with the next one, so that a card number split between two chunks is
// found: the masker's hold bound (mask.MaxHold). A stream masker masks the
// digits of a number that spans more (invisible bytes between its digits)
// before it ends; judged in chunks, such a number's first digits are seen
// only if they lie within the overlap.
const scanOverlap = mask.MaxHold

// fileScan judges one downloaded file's bytes for card numbers as they
// pass, with the detector that masks terminal output. It is not safe for
// concurrent use; a transfer holds its lock around it.
//
// chunk judges a file in chunks that must pass whole (sftp reads): a card
// number split across two chunks is found when the second arrives, and
// the first chunk's digits can be withheld or masked only if the caller
// still holds it (live). stream judges a byte stream (scp, rsync), holding
// a possible number's digits back until what follows decides.
type fileScan struct {
	policy  string
	mode    mask.Mode
	detect  mask.Detect
	next    int64  // file offset just past the previous chunk; -1: none yet
	tail    []byte // the previous chunk's last bytes, as received
	tailN   int    // card numbers within tail alone
	pans    int64
	blocked bool
	told    bool // the user was told about this file

	w    *mask.Writer // stream's masker, holding a possible number's tail
	held bytes.Buffer // what w released during one call
}

// chunk judges p, which starts at offset off of the file. Under
// FilePANsMask it masks p in place, and live too: the previous chunk's
// data if the caller still holds it (nil if it has gone). It reports
// whether p must be withheld: under FilePANsBlock, once a card number has
// been found (the caller withholds live as well).
func (f *fileScan) chunk(off int64, p, live []byte) (withhold bool) {
	if f.blocked {
		return true
	}
	var tail []byte
	tailN := 0
	if off == f.next {
		tail, tailN = f.tail, f.tailN
	}
	// Scratch from a pool, not kept per file: a channel may scan
	// thousands of files.
	bp := scanBufs.Get().(*[]byte)
	defer scanBufs.Put(bp)
	buf := append(append((*bp)[:0], tail...), p...)
	*bp = buf
	n := f.detect.MaskInPlace(buf, f.mode)
	// What decides is where digits were masked, not how many numbers the
	// joint text holds: a number in the tail alone can vanish when the
	// next digits join it, while a new one appears in p.
	inP := changed(buf[len(tail):], p)
	k := min(len(live), len(tail))
	inLive := k > 0 && changed(buf[len(tail)-k:len(tail)], live[len(live)-k:])
	// The overlap for the next chunk: p's last bytes as received.
	t := p[max(0, len(p)-scanOverlap):]
	if len(t) < scanOverlap && off == f.next {
		// A short chunk: keep some of the older tail too.
		t = append(append([]byte(nil), tail...), t...)
		t = t[max(0, len(t)-scanOverlap):]
	}
	f.next = off + int64(len(p))
	if !inP && !inLive {
		f.setTail(t)
		return false
	}
	f.pans += int64(max(1, n-tailN))
	switch f.policy {
	case FilePANsMask:
		f.setTail(t) // as received, before p is masked
		copy(p, buf[len(tail):])
		// The held chunk was masked when judged alone: only add the
		// digits this judgement masks, never undo one.
		for i, c := range buf[len(tail)-k : len(tail)] {
			if c == '*' {
				live[len(live)-k+i] = '*'
			}
		}
	case FilePANsAllow:
		f.setTail(t)
	default:
		f.blocked = true
		return true
	}
	return false
}

// setTail keeps t (a copy) as the overlap judged with the next chunk.
func (f *fileScan) setTail(t []byte) {
	f.tail = append(f.tail[:0:0], t...)
	f.tailN = f.detect.MaskInPlace(append([]byte(nil), f.tail...), f.mode)
}

// changed reports whether masking turned a digit of orig into '*' in got.
func changed(got, orig []byte) bool {
	for i, c := range got {
		if c == '*' && orig[i] != '*' {
			return true
		}
	}
	return false
}

// stream judges the next bytes of a file read front to back (scp, rsync)
// and appends what may pass to out. Unlike chunk, it holds back a tail
// that may still be part of a card number until what follows (or flush)
// decides, so no digit of a number leaves before it is judged. It reports
// whether the file must be withheld from here on (FilePANsBlock).
func (f *fileScan) stream(out, p []byte) ([]byte, bool) {
	if f.blocked {
		return out, true
	}
	if f.policy == FilePANsAllow {
		f.chunk(max(f.next, 0), p, nil) // counts only
		return append(out, p...), false
	}
	if f.w == nil {
		f.w = mask.NewWriter(&f.held, mask.Config{Mode: f.mode, Detect: f.detect, Deadline: -1})
	}
	f.held.Reset()
	before := f.w.Count()
	f.w.Write(p) // writes to a bytes.Buffer: cannot fail
	return f.judged(out, before)
}

// flush ends a stream: the held tail is judged as the file's end.
func (f *fileScan) flush(out []byte) ([]byte, bool) {
	if f.w == nil || f.blocked {
		return out, f.blocked
	}
	f.held.Reset()
	before := f.w.Count()
	f.w.Close()
	out, blocked := f.judged(out, before)
	f.w = nil
	return out, blocked
}

// judged appends what the masker released, unless a card number found
// since before blocks the file.
func (f *fileScan) judged(out []byte, before int64) ([]byte, bool) {
	if n := f.w.Count() - before; n > 0 {
		f.pans += n
		if f.policy != FilePANsMask {
			f.blocked = true
			return out, true
		}
	}
	return append(out, f.held.Bytes()...), false
}

// userNotice is what the user is told about a file the scan acted on, once
// per file; "" when there is nothing to say.
func (f *fileScan) userNotice(kind, path string) string {
	if f == nil || f.pans == 0 || f.told {
		return ""
	}
	f.told = true
	switch {
	case f.blocked:
		return "postern: " + kind + " download of " + path + " was blocked: it holds a card number"
	case f.policy == FilePANsMask:
		return "postern: card numbers in " + path + " were masked: the downloaded copy differs from the original"
	}
	return ""
}
