package certs

import (
	"crypto/ed25519"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzParseAuditPublicKey: whatever is accepted is one ed25519 key, which
// marshals back to a line that parses to the same key; nothing panics.
func FuzzParseAuditPublicKey(f *testing.F) {
	f.Add([]byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFbC7ZBYC3hrY6yELB8J9+xS4sjdh506FltX2xFW3oRc postern audit key\n"))
	f.Add([]byte("# comment\n\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFbC7ZBYC3hrY6yELB8J9+xS4sjdh506FltX2xFW3oRc\n"))
	f.Add([]byte("from=\"x\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFbC7ZBYC3hrY6yELB8J9+xS4sjdh506FltX2xFW3oRc\n"))
	f.Add([]byte("ssh-rsa AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseAuditPublicKey(data)
		if err != nil {
			return
		}
		if len(k) != ed25519.PublicKeySize {
			t.Fatalf("%q: key of %d bytes", data, len(k))
		}
		pk, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := ParseAuditPublicKey(ssh.MarshalAuthorizedKey(pk))
		if err != nil || !k.Equal(k2) {
			t.Fatalf("%q: accepted %x, which round-trips to %x, %v", data, k, k2, err)
		}
	})
}
