package recorder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
)

// SpaceReporter says how much space is left where recordings are written,
// for the bastion's free-disk floor. *Local implements it; a store that
// does not (object storage) has no floor.
type SpaceReporter interface {
	// FreeSpace returns the bytes available to the bastion (not to
	// root alone) on the file system that holds the recordings.
	FreeSpace(ctx context.Context) (uint64, error)
}

var _ SpaceReporter = (*Local)(nil)

// FreeSpace implements SpaceReporter: statfs of DATA_DIR/recordings, or of
// the data directory while no recording exists yet.
func (s *Local) FreeSpace(ctx context.Context) (uint64, error) {
	dir := filepath.Join(s.dir, "recordings")
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		dir = s.dir
	}
	return freeSpace(dir)
}
