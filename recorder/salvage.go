package recorder

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
)

// maxObject bounds a record a salvage finds: a session's record with
// MaxTransfers transfers is well under it.
const maxObject = 8 << 20

// scanObjects calls fn with every span of r that reads as one JSON object
// starting with `{"` (strings and nesting followed, at most maxObject
// bytes): the values a bbolt file stores lie whole in its pages, whatever
// became of the pages that led to them. fn must not keep obj.
func scanObjects(r io.Reader, fn func(obj []byte)) error {
	const chunk = 8 << 20
	buf := make([]byte, 0, chunk+maxObject)
	for eof := false; !eof; {
		n, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		eof = errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return err
		}
		// Objects must start before limit, so that the whole of one
		// (maxObject at most) is in buf; the rest waits for the next
		// round.
		limit := len(buf)
		if !eof {
			limit = len(buf) - maxObject
		}
		for i := 0; i < limit; {
			j := bytes.Index(buf[i:limit], []byte(`{"`))
			if j < 0 {
				break
			}
			start := i + j
			if end := objectEnd(buf[start:]); end > 0 {
				fn(buf[start : start+end])
			}
			i = start + 1
		}
		buf = buf[:copy(buf, buf[limit:])]
	}
	return nil
}

// objectEnd returns the length of the JSON object b starts with, judged by
// its brackets and strings only, or -1: unbalanced, too long, or holding a
// byte no JSON text has there.
func objectEnd(b []byte) int {
	depth, inString, escaped := 0, false, false
	for i, c := range b[:min(len(b), maxObject)] {
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
			if c < 0x20 {
				return -1
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				return i + 1
			}
		case c > ' ' && bytes.IndexByte([]byte(",:-+.0123456789Eaeflnrstu"), c) < 0 || c < ' ' && c != '\t' && c != '\n' && c != '\r':
			return -1
		}
	}
	return -1
}

// salvaged is what a damaged index file still holds: the chain entries
// signed with the audit key, by sequence number and digest, and then the
// records whose digests the chosen entries name.
type salvaged struct {
	entries map[uint64]map[string][]byte // seq → digest → entry as stored
	records map[string][]byte            // digest → record as stored
	// kept are the entries 0..len(kept)-1, each linking to the one
	// before: the damaged chain's unbroken beginning.
	kept [][]byte
	// carried are the entries found after the first one missing, in
	// sequence order (one per sequence number).
	carried [][]byte
	missing []string // sequence numbers (and ranges) not found up to the newest
	newest  int64    // the newest sequence number found; -1 for none
	dropped int      // signed entries left out: another entry of their sequence number was chosen
}

// salvageChain reads r (a damaged index file) for chain entries signed
// with pub and chooses the chain to rebuild on (see salvaged).
func salvageChain(r io.Reader, pub ed25519.PublicKey) (*salvaged, error) {
	s := &salvaged{entries: map[uint64]map[string][]byte{}, records: map[string][]byte{}, newest: -1}
	err := scanObjects(r, func(obj []byte) {
		if !bytes.HasPrefix(obj, []byte(`{"seq":`)) {
			return
		}
		// Signed, and stored exactly as the bastion wrote it: the
		// signature covers the entry as decoded, and a damaged byte
		// that decodes the same ("Time" for "time") would still break
		// the next entry's link.
		e, ok := verifyEntry(pub, obj)
		if canon, err := json.Marshal(e); !ok || err != nil || !bytes.Equal(canon, obj) {
			return
		}
		if s.entries[e.Seq] == nil {
			s.entries[e.Seq] = map[string][]byte{}
		}
		s.entries[e.Seq][recordDigest(obj)] = bytes.Clone(obj)
		s.newest = max(s.newest, int64(e.Seq))
	})
	if err != nil {
		return nil, err
	}
	s.choose()
	return s, nil
}

// choose picks, for each sequence number, the entry to keep: the one that
// links to the entry chosen before it, else one that an entry of the next
// sequence number links to, else the lowest digest. Two signed entries of
// one sequence number come from a write that never committed (bbolt writes
// a transaction's pages before the meta page that makes them current).
func (s *salvaged) choose() {
	prev := "" // digest of the entry chosen before; "" before entry 0 and after a gap
	linked := true
	for seq := int64(0); seq <= s.newest; seq++ {
		cands := s.entries[uint64(seq)]
		if len(cands) == 0 {
			s.missing = appendRange(s.missing, uint64(seq))
			linked, prev = false, ""
			continue
		}
		digests := slices.Sorted(maps.Keys(cands))
		pick := ""
		for _, d := range digests {
			if e := decodeEntry(cands[d]); e.Prev == prev && (prev != "" || seq == 0) {
				pick = d
				break
			}
		}
		for _, d := range digests {
			if pick == "" && s.linkedFrom(uint64(seq)+1, d) {
				pick = d
			}
		}
		if pick == "" {
			pick = digests[0]
		}
		linked = linked && decodeEntry(cands[pick]).Prev == prev
		if linked {
			s.kept = append(s.kept, cands[pick])
		} else {
			s.carried = append(s.carried, cands[pick])
		}
		s.dropped += len(cands) - 1
		prev = pick
	}
}

// decodeEntry decodes a stored chain entry (its signature is checked
// elsewhere); one that does not decode is the zero entry.
func decodeEntry(raw []byte) ChainEntry {
	var e ChainEntry
	json.Unmarshal(raw, &e)
	return e
}

// linkedFrom reports whether an entry of sequence number seq links to the
// entry of digest d.
func (s *salvaged) linkedFrom(seq uint64, d string) bool {
	for _, raw := range s.entries[seq] {
		if decodeEntry(raw).Prev == d {
			return true
		}
	}
	return false
}

// appendRange adds seq to ranges ("3", "5-9"), extending the last range
// when seq follows it.
func appendRange(ranges []string, seq uint64) []string {
	if n := len(ranges); n > 0 {
		first, last, _ := parseRange(ranges[n-1])
		if last+1 == seq {
			ranges[n-1] = strconv.FormatUint(first, 10) + "-" + strconv.FormatUint(seq, 10)
			return ranges
		}
	}
	return append(ranges, strconv.FormatUint(seq, 10))
}

func parseRange(r string) (first, last uint64, err error) {
	a, b, found := bytes.Cut([]byte(r), []byte("-"))
	if first, err = strconv.ParseUint(string(a), 10, 64); err != nil || !found {
		return first, first, err
	}
	last, err = strconv.ParseUint(string(b), 10, 64)
	return first, last, err
}

// salvageRecords reads r (the damaged file again) for the records whose
// digests are in want.
func (s *salvaged) salvageRecords(r io.Reader, want map[string]bool) error {
	return scanObjects(r, func(obj []byte) {
		sum := sha256.Sum256(obj)
		d := hex.EncodeToString(sum[:])
		if want[d] && s.records[d] == nil {
			s.records[d] = bytes.Clone(obj)
		}
	})
}
