package clients

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// What dbclient says when it is refused at key exchange, and for having
// no certificate (README.md quotes both).
const (
	dropbearKex    = "No matching algo enc c->s"
	dropbearNoCert = "postern: a certificate is required"
)

// Dropbear's dbclient (dropbear-bin 2022.83) has neither AES-GCM nor
// OpenSSH certificates: a default bastion refuses it at key exchange, and
// one with AES-CTR refuses its plain key; both times dbclient exits with
// a message and nothing runs.
func TestDropbear(t *testing.T) {
	t.Parallel()
	e := start(t, "")
	dbclient := testenv.Require(t, "dbclient")
	convert := testenv.Require(t, "dropbearconvert")
	key := e.key + ".dropbear"
	if r := testenv.Cmd(t, time.Minute, nil, convert, "openssh", "dropbear", e.key, key); r.ExitCode != 0 {
		t.Fatalf("dropbearconvert: %s", r.Stderr)
	}
	home := t.TempDir()
	// dbclient checks the host key against ~/.ssh/known_hosts.
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	ctr := e.serve(t, ctrCiphers)
	for _, tt := range []struct {
		name   string
		b      *env
		stderr string // what dbclient says
		reason string // in the bastion's connect audit record
	}{
		{"default ciphers", e, dropbearKex, "key exchange failed: "},
		{"AES-CTR added", ctr, dropbearNoCert, "plain public key SHA256:"},
	} {
		// dbclient looks the host up in known_hosts without the port.
		kh := "127.0.0.1 " + strings.SplitN(string(mustRead(t, tt.b.knownHosts)), " ", 2)[1]
		writeFile(t, filepath.Join(home, ".ssh"), "known_hosts", kh)
		r := run(t, time.Minute, []string{"HOME=" + home}, dbclient, "-i", key, "-l", login+"@"+target,
			"-p", strconv.Itoa(tt.b.port), "127.0.0.1", "echo SHOULD-NOT-RUN")
		if r.ExitCode == 0 || len(r.Stdout) != 0 || !strings.Contains(string(r.Stderr), tt.stderr) {
			t.Errorf("%s: exit %d stdout %q stderr %q; want refused with %q", tt.name, r.ExitCode, r.Stdout, r.Stderr, tt.stderr)
		}
		testenv.WaitFor(t, 10*time.Second, func() bool { return len(tt.b.audits("connect")) > 0 })
		for _, m := range tt.b.audits("connect") {
			if reason, _ := m["reason"].(string); m["allowed"] != false || !strings.HasPrefix(reason, tt.reason) {
				t.Errorf("%s: connect record %v, want a refusal: %q", tt.name, m, tt.reason)
			}
		}
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
