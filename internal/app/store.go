package app

import (
	"log/slog"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/recorder"
)

// openStore opens the session index of data directory dir and seals the
// sessions a previous run left active: the bastion died during them. The
// caller holds the directory's lock, so no running bastion's live session
// is among them.
func openStore(auth *certs.Authority, dir string, log *slog.Logger) (*recorder.Store, error) {
	store := recorder.OpenStore(dir, auth.AuditKey)
	ids, err := store.MarkInterrupted()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		audit.Record(log, audit.RecordingInterrupted, "recording", id,
			"reason", "the bastion stopped during the session; its recording holds what was written until then")
	}
	// Each start records where the chain stands, an anchor for verify
	// even when no session has ended since.
	head, err := store.Head()
	if err != nil {
		return nil, err
	}
	if head != nil {
		audit.Record(log, audit.ChainHead, "chain_head", head.String())
	}
	return store, nil
}

// closeStore closes the index (nil: recording off). The index is opened
// per operation today, so there is nothing to close yet; when the store
// keeps it open (issue 12, part 5), its Close goes here.
func closeStore(s *recorder.Store) error {
	_ = s
	return nil
}
