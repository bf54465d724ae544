package adminsock

import (
	"errors"
	"net/http"
	"os/user"
	"strconv"

	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/recorder"
)

// issue records certificate c for the peer of r. Who issued it and when
// are the server's to say: issued_by is the user the kernel reports at the
// other end of the socket, with the client's own claim (which may name
// the user sudo was run by) kept beside it; issued_at is the server's
// clock. The audit record, with the chain head the issue made, goes to
// the server's log, an anchor for verify.
func (s *Server) issue(r *http.Request, c recorder.IssuedCert) (recorder.IssuedCert, error) {
	peer, ok := peerOf(r)
	if !ok {
		return recorder.IssuedCert{}, errors.New("certificate not recorded: the caller's credentials on the admin socket are unknown")
	}
	c.IssuedBy = issuer(peer.UID, c.IssuedBy)
	c.IssuedAt = s.cfg.Now().UTC()
	rec, err := s.cfg.Store.IssueCert(r.Context(), c)
	if err != nil {
		return recorder.IssuedCert{}, err
	}
	attrs := []any{"identity", first(rec.Principals), "key_id", rec.KeyID, "principals", rec.Principals, "groups", rec.Groups,
		"serial", rec.Serial, "key", rec.Key, "valid_after", rec.ValidAfter, "valid_before", rec.ValidBefore,
		"issued_by", rec.IssuedBy, "peer_pid", peer.PID, "via", "admin socket"}
	// The head after the issue covers it; another entry appended in
	// between only makes it a later anchor.
	if head, err := s.cfg.Store.Head(r.Context()); err == nil && head != nil {
		attrs = append(attrs, "chain_head", head.String())
	} else if err != nil {
		s.log.Warn("certificate issued through the admin socket; chain head unknown", "serial", rec.Serial, "err", err)
	}
	audit.Record(s.log, audit.CertIssued, attrs...)
	return rec, nil
}

// issuer names uid, and the client's claim when it says something else.
func issuer(uid int, claim string) string {
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	if claim != "" && claim != name {
		name += " (the client says: " + claim + ")"
	}
	return name
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// prune deletes the index entries of ids that the server's retention lets
// go: a session that ended less than Retention ago stays, whatever the
// client asks (it computes its own cutoff, which may be wrong or hostile).
func (s *Server) prune(r *http.Request, ids []string) (pruneResp, error) {
	ctx := r.Context()
	cutoff := s.cfg.Now().Add(-s.cfg.Retention)
	// What may go is judged here, as a prune on the host would judge it:
	// by the time of each session's seal in the chain and only for an
	// entry that matches its seal, never by the editable index alone.
	cands, err := recorder.PruneCandidates(ctx, s.cfg.Store, cutoff)
	var refused *recorder.RefusedError
	if err != nil && !errors.As(err, &refused) {
		return pruneResp{}, err
	}
	may := make(map[string]bool, len(cands))
	for _, c := range cands {
		may[c.ID] = true
	}
	var allowed []string
	kept := 0
	for _, id := range ids {
		if may[id] {
			allowed = append(allowed, id)
		} else {
			kept++
		}
	}
	peer, _ := peerOf(r)
	if kept > 0 {
		s.log.Warn("prune through the admin socket: sessions the retention period (or their seal) keeps left alone",
			"kept", kept, "retention_days", int(s.cfg.Retention.Hours()/24), "peer_uid", peer.UID, "peer_pid", peer.PID)
	}
	if len(allowed) == 0 {
		return pruneResp{}, nil
	}
	pruned, head, err := s.cfg.Store.Prune(ctx, allowed)
	if err != nil {
		return pruneResp{}, err
	}
	if head != nil {
		s.log.Info("recordings pruned through the admin socket", "pruned", len(pruned), "cutoff", cutoff.UTC(),
			"chain_head", head.String(), "peer_uid", peer.UID, "peer_pid", peer.PID)
	}
	return pruneResp{Pruned: pruned, Head: head}, nil
}
