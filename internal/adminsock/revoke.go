package adminsock

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/recorder"
)

// RevokeAnswer is what a revocation through the socket returns.
type RevokeAnswer struct {
	// Revocation is as recorded: the first one, when what it revokes was
	// revoked already (New false).
	Revocation recorder.Revocation `json:"revocation"`
	New        bool                `json:"new"`
	// Ended counts the live connections the server ended (Config.Revoke).
	Ended int `json:"ended"`
	// Head is the audit chain's head after the revocation.
	Head *recorder.ChainHead `json:"head,omitempty"`
}

// revokeRoutes registers revoke and revocations.
func (s *Server) revokeRoutes() {
	s.rpc("revoke", func(r *http.Request, dec *json.Decoder) (any, error) {
		var q recorder.Revocation
		if err := dec.Decode(&q); err != nil {
			return nil, badRequest(err)
		}
		return s.revoke(r, q)
	})
	s.rpc("revocations", func(r *http.Request, _ *json.Decoder) (any, error) { return s.revocations(r) })
}

// revoke records revocation q for the peer of r and has the running
// bastion apply it (Config.Revoke), also when it was recorded before:
// applying it twice changes nothing. Who revoked and when are the
// server's to say, as for an issue; the audit record, with the chain head,
// goes to the server's log.
func (s *Server) revoke(r *http.Request, q recorder.Revocation) (RevokeAnswer, error) {
	peer, ok := peerOf(r)
	if !ok {
		return RevokeAnswer{}, errors.New("revocation not recorded: the caller's credentials on the admin socket are unknown")
	}
	ri, ok := s.cfg.Store.(recorder.RevocationIndex)
	if !ok {
		return RevokeAnswer{}, errors.New("this index keeps no revocations")
	}
	q.RevokedBy = issuer(peer.UID, q.RevokedBy)
	rec, fresh, err := ri.Revoke(r.Context(), q)
	if err != nil {
		return RevokeAnswer{}, err
	}
	ans := RevokeAnswer{Revocation: rec, New: fresh}
	if s.cfg.Revoke != nil {
		ans.Ended = s.cfg.Revoke(rec)
	}
	attrs := []any{"revoked", rec.Key(), "reason", rec.Reason, "revoked_by", rec.RevokedBy, "revoked_at", rec.RevokedAt,
		"new", fresh, "connections_ended", ans.Ended, "peer_pid", peer.PID, "via", "admin socket"}
	if head, err := s.cfg.Store.Head(r.Context()); err == nil && head != nil {
		ans.Head = head
		attrs = append(attrs, "chain_head", head.String())
	} else if err != nil {
		s.log.Warn("revocation recorded through the admin socket; chain head unknown", "revoked", rec.Key(), "err", err)
	}
	audit.Record(s.log, audit.CertRevoked, attrs...)
	return ans, nil
}

// revocations lists the revocations in force.
func (s *Server) revocations(r *http.Request) ([]recorder.Revocation, error) {
	ri, ok := s.cfg.Store.(recorder.RevocationIndex)
	if !ok {
		return nil, errors.New("this index keeps no revocations")
	}
	return ri.Revocations(r.Context())
}

var _ recorder.RevocationIndex = (*Client)(nil)

// Revoke implements recorder.RevocationIndex; see RevokeLive.
func (c *Client) Revoke(ctx context.Context, r recorder.Revocation) (recorder.Revocation, bool, error) {
	ans, err := c.RevokeLive(ctx, r)
	return ans.Revocation, ans.New, err
}

// RevokeLive records revocation r in the server's index and has the
// running bastion apply it: certificates it covers are refused from now
// on, and their live connections end. RevokedBy is the client's claim,
// which the server keeps beside what the kernel says.
func (c *Client) RevokeLive(ctx context.Context, r recorder.Revocation) (RevokeAnswer, error) {
	var ans RevokeAnswer
	err := c.call(ctx, "revoke", r, &ans)
	return ans, err
}

// Revocations implements recorder.RevocationIndex.
func (c *Client) Revocations(ctx context.Context) ([]recorder.Revocation, error) {
	var out []recorder.Revocation
	err := c.call(ctx, "revocations", struct{}{}, &out)
	return out, err
}
