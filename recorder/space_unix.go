//go:build linux || darwin || freebsd

package recorder

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// freeSpace is statfs's blocks available to unprivileged users times the
// block size.
func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
