//go:build !(linux || darwin || freebsd)

package recorder

import (
	"errors"
	"fmt"
)

func freeSpace(dir string) (uint64, error) {
	return 0, fmt.Errorf("statfs %s: %w", dir, errors.ErrUnsupported)
}
