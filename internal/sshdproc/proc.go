// Package sshdproc runs real OpenSSH programs on loopback and makes what
// they need: host and user keys, user certificates, local accounts. The
// tests use it through internal/testenv, which adds testing.TB wrappers and
// cleanups; the benchmark (cmd/postern-bench) uses it directly, so it must
// not import testing.
package sshdproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
)

// searchDirs are looked at after PATH, because sshd and its helpers live in
// sbin and libexec directories that a test's PATH often lacks.
var searchDirs = []string{"/usr/sbin", "/usr/lib/openssh"}

// LookPath returns the absolute path of the program name, searching PATH
// and then /usr/sbin and /usr/lib/openssh.
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range searchDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("program " + name + " not found in PATH, " + searchDirs[0] + " or " + searchDirs[1])
}

// EnsureUser creates the local account name with login shell shell unless
// it exists. Its password field is "*" (no password) rather than useradd's
// "!" (locked): sshd without PAM refuses locked accounts even for
// certificates. Creating it needs root (tests and the benchmark run as
// root).
func EnsureUser(name, shell string) error {
	if _, err := user.Lookup(name); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("account %q is missing and creating it needs root", name)
	}
	out, err := exec.Command("useradd", "-m", "-s", shell, "-p", "*", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("useradd %s: %v: %s", name, err, out)
	}
	return nil
}
