package api

import (
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultUsedTokens is Config.UsedTokens' default: far more logins than a
// provider issues within a token's lifetime.
const DefaultUsedTokens = 1 << 17

// usedTokens remembers the ID tokens certificates were issued for, each
// until the verifier would refuse it anyway, so that a token yields one
// certificate: a replayed token (for another key, or the same) is
// refused. Tokens are named by the SHA-256 of their claims, which the
// signature covers: a signature can be re-encoded (ECDSA's (r, n-s)), the
// claims cannot. It is safe for concurrent use.
type usedTokens struct {
	max int

	mu    sync.Mutex // guards until
	until map[[sha256.Size]byte]time.Time
}

func newUsedTokens(max int) *usedTokens {
	return &usedTokens{max: max, until: make(map[[sha256.Size]byte]time.Time)}
}

// claim records the token id, usable until until, at now. It reports
// false when the token was recorded already; full when max tokens still
// usable are recorded (then nothing is recorded: the caller must not
// issue).
func (u *usedTokens) claim(id [sha256.Size]byte, until, now time.Time) (ok, full bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, found := u.until[id]; found && now.Before(t) {
		return false, false
	}
	if len(u.until) >= u.max {
		for k, t := range u.until {
			if !now.Before(t) {
				delete(u.until, k)
			}
		}
		if len(u.until) >= u.max {
			return false, true
		}
	}
	u.until[id] = until
	return true, false
}

// used reports whether the token id is recorded as used at now, without
// recording it: a replay is refused as such before it takes from the
// identity's issuance limit (claim still decides).
func (u *usedTokens) used(id [sha256.Size]byte, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	t, found := u.until[id]
	return found && now.Before(t)
}
