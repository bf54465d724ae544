package recorder

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Chain entry kinds.
const (
	// KindBegin seals a session's index entry as Begin stored it
	// (status active): evidence that the bastion started the session.
	// Chains written before this kind existed have none (see Verify).
	KindBegin       = "begin"
	KindRecording   = "recording"
	KindPrune       = "prune"
	KindCertificate = "certificate"
	// KindCertRefused (refusals.go) seals a refused certificate request.
)

// ChainEntry is one link of the audit chain. Each entry names the hash of
// the one before it and is signed with the audit key, so removing,
// reordering or editing an entry breaks the chain.
type ChainEntry struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"` // KindBegin, KindRecording, KindPrune, KindCertificate, KindApproval, KindCertRefused, KindRevocation or KindConfig
	Recording string    `json:"recording,omitempty"`
	Path      string    `json:"path,omitempty"`
	SHA256    string    `json:"sha256,omitempty"` // of the recording file
	Size      int64     `json:"size,omitempty"`
	Record    string    `json:"record,omitempty"`  // SHA-256 of the index record as stored
	Pruned    []string  `json:"pruned,omitempty"`  // recording IDs deleted by retention
	Serial    uint64    `json:"serial,omitempty"`  // of an issued (or revoked) certificate
	KeyID     string    `json:"key_id,omitempty"`  // whose certificates are revoked (KindRevocation)
	Request   string    `json:"request,omitempty"` // approval request ID (KindApproval)
	Event     string    `json:"event,omitempty"`   // what changed in it: requested, approved, ...
	Refusal   string    `json:"refusal,omitempty"` // refused certificate request ID (KindCertRefused)
	Config    string    `json:"config,omitempty"`  // SHA-256 of the config file a reload applied (KindConfig)
	// Lost says why a KindRecording seal has no digest although the
	// bastion began the session (its recording was missing or
	// unreadable when MarkInterrupted sealed it). Verify reports every
	// seal with one: a begun session's recording does not go missing
	// in the ordinary course.
	Lost string `json:"lost,omitempty"`
	// Rebuild, Original and Rebuilt are written by an index rebuild
	// (rebuild.go): what it found and lost (KindRebuild), a damaged
	// index's entry carried over as stored (KindCarried), and why it
	// sealed a recording itself (KindRecording).
	Rebuild  *RebuildNote `json:"rebuild,omitempty"`
	Original string       `json:"original,omitempty"`
	Rebuilt  string       `json:"rebuilt,omitempty"`
	Prev     string       `json:"prev"`
	Sig      string       `json:"sig"`
}

// ChainHead names one entry of the audit chain by its sequence number and
// the SHA-256 of the entry as stored. The newest entry's head, kept
// somewhere an attacker on the bastion cannot reach (a log shipped off the
// host, a ticket, an auditor's notes), anchors the chain: Verify with that
// anchor detects entries removed from the end or the chain rewritten with
// another key, which the chain alone cannot show.
type ChainHead struct {
	Seq    uint64 `json:"seq"`
	SHA256 string `json:"sha256"`
}

func (h ChainHead) String() string { return strconv.FormatUint(h.Seq, 10) + ":" + h.SHA256 }

// headOf names chain entry seq, stored as raw.
func headOf(seq uint64, raw []byte) ChainHead {
	sum := sha256.Sum256(raw)
	return ChainHead{Seq: seq, SHA256: hex.EncodeToString(sum[:])}
}

// ParseChainHead parses SEQ:SHA256, as ChainHead.String writes it.
func ParseChainHead(s string) (ChainHead, error) {
	seq, sum, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil {
		return ChainHead{}, fmt.Errorf("%q is not an audit chain anchor: want SEQ:SHA256, as 'postern verify' prints it", s)
	}
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
		return ChainHead{}, fmt.Errorf("%q is not an audit chain anchor: %q is not a hex SHA-256", s, sum)
	}
	return ChainHead{Seq: n, SHA256: strings.ToLower(sum)}, nil
}

// nextEntry makes the chain entry that follows last (the newest entry as
// stored, nil for an empty chain; lastSeq its sequence number): it links e
// to last, stamps it with now and signs it with key. It returns the entry's
// key and value as they are to be stored, and its head. It is a pure
// function of its arguments, whatever stores the chain.
func nextEntry(last []byte, lastSeq uint64, e ChainEntry, key ed25519.PrivateKey, now time.Time) (k, v []byte, head ChainHead, err error) {
	if key == nil {
		return nil, nil, ChainHead{}, errors.New("no audit key: cannot append to the audit chain")
	}
	e.Seq, e.Prev = 0, ""
	if last != nil {
		e.Seq = lastSeq + 1
		sum := sha256.Sum256(last)
		e.Prev = hex.EncodeToString(sum[:])
	}
	e.Time = now.UTC()
	e.Sig = ""
	unsigned, err := json.Marshal(e)
	if err != nil {
		return nil, nil, ChainHead{}, err
	}
	e.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, unsigned))
	if v, err = json.Marshal(e); err != nil {
		return nil, nil, ChainHead{}, err
	}
	return seqKey(e.Seq), v, headOf(e.Seq, v), nil
}

// seqKey is the stored key of chain entry seq: big-endian, so that keys
// sort in chain order.
func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// recordDigest is the hex SHA-256 of a record as stored, which a chain
// entry's Record names.
func recordDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// formatSerial is the Snapshot.Certs key of serial.
func formatSerial(serial uint64) string { return strconv.FormatUint(serial, 10) }

// certKeyName is the Snapshot.Certs key of a record stored under key k: its
// decimal serial for an 8-byte key, and for any other key (which no serial
// is) "key " and its hex, which no serial can be mistaken for.
func certKeyName(k []byte) string {
	if len(k) == 8 {
		return formatSerial(binary.BigEndian.Uint64(k))
	}
	return "key " + hex.EncodeToString(k)
}

// verifyEntry reports whether raw, a stored chain entry, is signed with
// pub; it returns the entry decoded.
func verifyEntry(pub ed25519.PublicKey, raw []byte) (ChainEntry, bool) {
	var e ChainEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return e, false
	}
	sig, _ := base64.StdEncoding.DecodeString(e.Sig)
	unsigned := e
	unsigned.Sig = ""
	data, err := json.Marshal(unsigned)
	return e, err == nil && ed25519.Verify(pub, data, sig)
}
