package app_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
)

// TestAttack3NewAcceptsLooseSubdirectory: HOLE (CheckDir's own reason:
// "whoever can write the directory can replace recordings, the index or
// the admin socket, so the evidence would prove nothing"; DESIGN: CA keys
// 0600). Only the data directory itself is checked. A data directory of
// mode 0755 passes (others may enter, not write), and so does a
// recordings directory anyone may write: the mount point DESIGN suggests
// for recordings ("mount the storage there instead"), made 0777 to get a
// permission error out of the way, or a ca directory restored with loose
// modes. Any local user may then delete or replace recordings (and the
// public audit key verify reads by default) without the bastion saying a
// word. The directories the evidence lives in must be refused as the data
// directory is, before anything listens.
func TestAttack3NewAcceptsLooseSubdirectory(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"recordings", "ca"} {
		t.Run(sub, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			loose := filepath.Join(dir, sub)
			if err := os.Mkdir(loose, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(loose, 0o777); err != nil {
				t.Fatal(err)
			}
			// A taken address makes New fail at its end, after every
			// check: what matters is which error comes first.
			taken, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer taken.Close()
			a, err := app.New(app.Config{Settings: &config.Config{Listen: taken.Addr().String(), DataDir: dir}})
			if err == nil {
				a.Close()
			}
			if err == nil || !strings.Contains(err.Error(), loose) {
				t.Fatalf("data directory 0755 with %s 0777 (writable by anyone): New got as far as %v", sub, err)
			}
		})
	}
}
