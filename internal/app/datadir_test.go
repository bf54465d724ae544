package app_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/testenv"
)

// TestCheckDirEvidenceDirectories: below a sound data directory, a
// recordings directory of the layout (down to the day), the CA directory
// or a CA file that group or others may write, or that another user owns,
// is refused with its path and the fix named; a symbolic link as
// DATA_DIR/recordings is refused; a sound tree, and a loose file inside a
// day's directory (recordings are not read), pass.
func TestCheckDirEvidenceDirectories(t *testing.T) {
	t.Parallel()
	sound := func(t *testing.T) string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "data")
		for _, d := range []string{"recordings/2026/11/25", "ca"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []struct {
			name string
			mode os.FileMode
		}{{"ca/audit_ed25519", 0o600}, {"ca/audit_ed25519.pub", 0o644}, {"recordings/2026/11/25/x.cast", 0o600}} {
			if err := os.WriteFile(filepath.Join(dir, f.name), []byte("x"), f.mode); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	cases := []struct {
		name string
		path string // what is loosened, under the data directory
		mode os.FileMode
		want string // in the error; "" means accepted
	}{
		{"sound", "", 0, ""},
		{"year", "recordings/2026", 0o777, "chmod 700"},
		{"month", "recordings/2026/11", 0o770, "chmod 700"},
		{"day", "recordings/2026/11/25", 0o757, "chmod 700"},
		{"recording not read", "recordings/2026/11/25/x.cast", 0o666, ""},
		{"ca", "ca", 0o775, "chmod 700"},
		{"ca public key", "ca/audit_ed25519.pub", 0o666, "chmod go-w"},
		{"ca private key", "ca/audit_ed25519", 0o620, "chmod go-w"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := sound(t)
			p := filepath.Join(dir, tc.path)
			if tc.path != "" {
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			err := app.CheckDir(dir)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), p+" ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%s mode %04o: %v; want it named with %q", tc.path, tc.mode, err, tc.want)
			}
		})
	}
	t.Run("recordings is a link", func(t *testing.T) {
		t.Parallel()
		dir := sound(t)
		rdir := filepath.Join(dir, "recordings")
		if err := os.Rename(rdir, filepath.Join(dir, "elsewhere")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("elsewhere", rdir); err != nil {
			t.Fatal(err)
		}
		if err := app.CheckDir(dir); err == nil || !strings.Contains(err.Error(), rdir) || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("recordings as a link: %v", err)
		}
	})
	t.Run("owner", func(t *testing.T) {
		t.Parallel()
		testenv.RequireRoot(t, "changing a file's owner")
		for _, sub := range []string{"recordings/2026/11", "ca", "ca/audit_ed25519"} {
			dir := sound(t)
			p := filepath.Join(dir, sub)
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			if err := app.CheckDir(dir); err == nil || !strings.Contains(err.Error(), p+" ") || !strings.Contains(err.Error(), "chown") {
				t.Errorf("%s owned by another user: %v", sub, err)
			}
		}
	})
}
