package app

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/recorder"
)

// openStore opens the session index of data directory dir and seals the
// sessions a previous run left active: the bastion died during them. The
// caller holds the directory's lock, so no running bastion's live session
// is among them.
func openStore(ctx context.Context, auth *certs.Authority, dir string, log *slog.Logger) (*recorder.Local, error) {
	start := time.Now()
	store, err := recorder.OpenStore(dir, recorder.Options{Key: auth.AuditKey, Log: log})
	if err != nil {
		return nil, err
	}
	// OpenStore walked the file's pages; bbolt's own check (about 70 ms
	// per 100,000 sessions) catches what it cannot: pages both free and
	// in use, keys out of order, which later writes would make worse.
	if err := store.Consistent(ctx); err != nil {
		store.Close()
		return nil, err
	}
	log.Info("session index checked", "path", filepath.Join(dir, recorder.IndexFile), "took", time.Since(start).Round(time.Millisecond).String())
	ids, err := store.MarkInterrupted(ctx)
	if err != nil {
		store.Close()
		return nil, err
	}
	for _, id := range ids {
		audit.Record(log, audit.RecordingInterrupted, "recording", id,
			"reason", "the bastion stopped during the session; its recording holds what was written until then")
	}
	if len(ids) > 0 {
		log.Warn("index repaired: the previous run stopped without ending its sessions; they are sealed as interrupted, each recording with what was written",
			"sessions", len(ids), "recordings", ids)
	}
	// Each start records where the chain stands, an anchor for verify
	// even when no session has ended since.
	head, err := store.Head(ctx)
	if err != nil {
		store.Close()
		return nil, err
	}
	if head != nil {
		audit.Record(log, audit.ChainHead, "chain_head", head.String())
	}
	return store, nil
}

// closeStore closes the index (nil: recording off).
func closeStore(s *recorder.Local) error {
	if s == nil {
		return nil
	}
	return s.Close()
}

// loadRevocations reads the revocations in force from the index (nil:
// recording off, none) into the list the bastion checks certificates
// against, and warns of those whose record is not as the audit chain
// sealed it: in force all the same.
func loadRevocations(ctx context.Context, st *recorder.Local, log *slog.Logger) (*certs.RevocationList, error) {
	list := &certs.RevocationList{}
	if st == nil {
		return list, nil
	}
	revs, err := st.Revocations(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range revs {
		if r.Note != "" {
			log.Warn("certificate revocation in force, but its record is not as the audit chain sealed it (postern verify reports it)",
				"revoked", r.Key(), "note", r.Note)
		}
		list.Add(certRevocation(r))
	}
	return list, nil
}

// certRevocation is revocation r as the certificate check uses it.
func certRevocation(r recorder.Revocation) certs.Revocation {
	reason := r.Reason
	if reason == "" {
		reason = "see postern ca revoked"
	}
	return certs.Revocation{Serial: r.Serial, KeyID: r.KeyID, Reason: reason, At: r.RevokedAt}
}
