package certs

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Revocation revokes user certificates of the bastion's user CA the way an
// OpenSSH key revocation list (KRL, PROTOCOL.krl) does: one serial under
// the CA, or every certificate whose key ID is KeyID, those issued later
// included. Exactly one of Serial and KeyID is set.
type Revocation struct {
	Serial uint64    // a certificate serial; 0 for a key ID revocation
	KeyID  string    // every certificate with this key ID; "" for a serial
	Reason string    // why, as the admin put it; shown to the holder
	At     time.Time // when it was revoked
}

// Covers reports whether r revokes cert.
func (r Revocation) Covers(cert *ssh.Certificate) bool {
	if r.KeyID != "" {
		return cert.KeyId == r.KeyID
	}
	return r.Serial != 0 && cert.Serial == r.Serial
}

// What names what r revokes, for messages and logs: "serial 12" or
// `key ID "alice@example.com"`.
func (r Revocation) What() string {
	if r.KeyID != "" {
		return "key ID " + strconv.Quote(r.KeyID)
	}
	return "serial " + strconv.FormatUint(r.Serial, 10)
}

// UserMessage is the one line the holder of a certificate r revokes is
// shown, when a connection is refused or ended. A serial revocation asks
// for a new certificate; a key ID revocation covers the new ones too, so
// it sends the holder to an admin.
func (r Revocation) UserMessage() string {
	if r.KeyID != "" {
		return fmt.Sprintf("postern: certificates with key ID %q were revoked (%s); ask an admin", r.KeyID, r.Reason)
	}
	return fmt.Sprintf("postern: certificate serial %d was revoked (%s); log in again (postern login)", r.Serial, r.Reason)
}

// ExpiredMessage is the one line the holder of a certificate that expired
// at end is shown, when a connection is refused or ended.
func ExpiredMessage(end time.Time) string {
	return "postern: your certificate expired at " + end.UTC().Format(time.RFC3339) + "; log in again (postern login)"
}

// RevocationList is the set of revocations a Checker refuses, in memory:
// the bastion loads it from the index at start and adds to it as admins
// revoke. The zero value is empty and ready to use; a nil list revokes
// nothing. It is safe for concurrent use.
type RevocationList struct {
	mu      sync.RWMutex // guards the maps
	serials map[uint64]Revocation
	keyIDs  map[string]Revocation
}

// Add adds r and reports whether it is new: a serial or key ID revoked
// already keeps its first revocation.
func (l *RevocationList) Add(r Revocation) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.KeyID != "" {
		if _, ok := l.keyIDs[r.KeyID]; ok {
			return false
		}
		if l.keyIDs == nil {
			l.keyIDs = map[string]Revocation{}
		}
		l.keyIDs[r.KeyID] = r
		return true
	}
	if _, ok := l.serials[r.Serial]; ok || r.Serial == 0 {
		return false
	}
	if l.serials == nil {
		l.serials = map[uint64]Revocation{}
	}
	l.serials[r.Serial] = r
	return true
}

// Revoked returns the revocation that covers cert, if any: its serial's
// first, then its key ID's.
func (l *RevocationList) Revoked(cert *ssh.Certificate) (Revocation, bool) {
	if l == nil {
		return Revocation{}, false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if r, ok := l.serials[cert.Serial]; ok {
		return r, true
	}
	r, ok := l.keyIDs[cert.KeyId]
	return r, ok
}

// KeyIDRevoked reports whether every certificate with key ID id is
// revoked.
func (l *RevocationList) KeyIDRevoked(id string) bool {
	if l == nil {
		return false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.keyIDs[id]
	return ok
}

// Len is the number of revocations in l.
func (l *RevocationList) Len() int {
	if l == nil {
		return 0
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.serials) + len(l.keyIDs)
}
