package recorder

import (
	"context"
	"encoding/hex"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// KindConfig seals a policy change: the SHA-256 of the config file a
// running bastion reloaded (Event "reload"). It seals no index record: the
// digest is the evidence, to be compared with the file kept (or with
// `sha256sum` of the one in force). Verify checks it as part of the
// chain, like every entry: its signature and its place.
const KindConfig = "config"

// ConfigIndex seals policy changes in the audit chain. *Local implements
// it.
type ConfigIndex interface {
	// SealConfig appends a KindConfig entry for the config whose SHA-256
	// (hex) is digest, with event saying what happened to it ("reload"),
	// and returns the chain's new head.
	SealConfig(ctx context.Context, digest, event string) (ChainHead, error)
}

var _ ConfigIndex = (*Local)(nil)

// SealConfig implements ConfigIndex.
func (s *Local) SealConfig(ctx context.Context, digest, event string) (ChainHead, error) {
	if b, err := hex.DecodeString(digest); err != nil || len(b) != 32 {
		return ChainHead{}, fmt.Errorf("seal config: %q is not a SHA-256 in hex", digest)
	}
	var head ChainHead
	err := s.batch(ctx, func(tx *bolt.Tx) error {
		var err error
		head, err = s.appendChain(tx, ChainEntry{Kind: KindConfig, Config: digest, Event: event})
		return err
	})
	if err != nil {
		return ChainHead{}, fmt.Errorf("seal config: %w", err)
	}
	return head, nil
}
