package certs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// TestREADMECertificateListing holds README.md's "What the certificate
// contains" to what OpenSSH shows: a certificate signed as a login signs
// it, listed by the real ssh-keygen -L, must read line for line as the
// README quotes it (fingerprints and dates aside, which change with every
// key and clock), and be valid for the TTL plus the one-minute backdate.
func TestREADMECertificateListing(t *testing.T) {
	t.Parallel()
	keygen := testenv.Require(t, "ssh-keygen")
	want := readmeCertListing(t)

	a, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	user := testenv.NewSigner(t)
	cert, err := a.SignUser(user.PublicKey(), UserCertRequest{
		Principals:    []string{"alice@example.com"},
		Groups:        []string{"ops", "dba"},
		TTL:           8 * time.Hour,
		KeyID:         "alice@example.com",
		SourceAddress: "203.0.113.7",
		Serial:        4821179316543209876,
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519-cert.pub")
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygen, "-L", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
	}
	got := trimmedLines(string(out))[1:] // the first line names the file
	if len(got) != len(want) {
		t.Fatalf("ssh-keygen -L printed %d lines, README.md quotes %d:\n%s", len(got), len(want), out)
	}
	for i, w := range want {
		label, _, _ := strings.Cut(w, ":")
		switch label {
		case "Public key", "Signing CA", "Valid":
			if !strings.HasPrefix(got[i], label+":") {
				t.Errorf("line %d: ssh-keygen printed %q, README.md quotes %q", i+1, got[i], w)
			}
		default:
			if got[i] != w {
				t.Errorf("line %d: ssh-keygen printed %q, README.md quotes %q", i+1, got[i], w)
			}
		}
	}
	if d := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second; d != 8*time.Hour+Backdate {
		t.Errorf("certificate valid for %s, README.md says the TTL plus one minute before issue", d)
	}
	if hex := fmt.Sprintf("%08x%x", len("ops,dba"), "ops,dba"); !strings.Contains(strings.Join(want, "\n"), hex) {
		t.Errorf("README.md's groups@postern line does not show %s (ops,dba after its length)", hex)
	}
}

// readmeCertListing returns the trimmed lines of the code block that
// follows README.md's "What the certificate contains" heading.
func readmeCertListing(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "\n### What the certificate contains\n")
	if !ok {
		t.Fatal(`README.md has no "### What the certificate contains" section`)
	}
	_, block, ok := strings.Cut(after, "\n```\n")
	if !ok {
		t.Fatal("README.md's certificate section quotes no listing")
	}
	block, _, ok = strings.Cut(block, "\n```\n")
	if !ok {
		t.Fatal("README.md's certificate listing is not closed")
	}
	return trimmedLines(block)
}

func trimmedLines(s string) []string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
