package sshdproc_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/sshdproc"
)

func TestBuffer(t *testing.T) {
	t.Parallel()
	var unlimited sshdproc.Buffer
	unlimited.Write([]byte(strings.Repeat("x", 1000)))
	if len(unlimited.String()) != 1000 || unlimited.End() != 1000 {
		t.Fatalf("zero Buffer kept %d of 1000 bytes", len(unlimited.String()))
	}
	b := sshdproc.Buffer{Max: 100}
	b.Write([]byte(strings.Repeat("a", 60)))
	b.Write([]byte(strings.Repeat("b", 30)))
	off := b.End()
	b.Write([]byte(strings.Repeat("c", 30))) // 120 > Max: the newest Max/2 stay
	if got, want := b.String(), strings.Repeat("b", 20)+strings.Repeat("c", 30); got != want {
		t.Fatalf("capped Buffer holds %q, want %q", got, want)
	}
	if got := b.Since(off); got != strings.Repeat("c", 30) {
		t.Fatalf("Since across a drop: %q", got)
	}
	if got := b.Since(b.End() + 5); got != "" {
		t.Fatalf("Since past the end: %q", got)
	}
}

func TestSignUserCert(t *testing.T) {
	t.Parallel()
	ca, err := sshdproc.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	key, err := sshdproc.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := sshdproc.SignUserCert(ca, key.PublicKey(), sshdproc.UserCert{Principals: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return string(k.Marshal()) == string(ca.PublicKey().Marshal()) }}
	if err := checker.CheckCert("alice", cert); err != nil {
		t.Fatalf("default certificate: %v", err)
	}
	if ttl := time.Duration(cert.ValidBefore-cert.ValidAfter) * time.Second; ttl != 6*time.Minute {
		t.Fatalf("validity %s, want a minute back and five ahead", ttl)
	}
	if _, ok := cert.Extensions["permit-pty"]; !ok || cert.KeyId != "testenv" {
		t.Fatalf("defaults: key ID %q, extensions %v", cert.KeyId, cert.Extensions)
	}
	cert, err = sshdproc.SignUserCert(ca, key.PublicKey(), sshdproc.UserCert{
		Principals: []string{"bob"}, KeyID: "k", TTL: time.Hour, Extensions: map[string]string{},
		Edit: func(c *ssh.Certificate) { c.Serial = 42 },
	})
	if err != nil || cert.Serial != 42 || len(cert.Extensions) != 0 || cert.KeyId != "k" {
		t.Fatalf("explicit fields: %+v %v", cert, err)
	}
}
