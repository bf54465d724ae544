package certs

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// A revocation covers its serial, or every certificate with its key ID;
// the first revocation of either is kept, and a nil or empty list
// revokes nothing.
func TestRevocationList(t *testing.T) {
	t.Parallel()
	cert := func(serial uint64, keyID string) *ssh.Certificate {
		return &ssh.Certificate{Serial: serial, KeyId: keyID}
	}
	var nilList *RevocationList
	if _, ok := nilList.Revoked(cert(1, "a")); ok || nilList.Len() != 0 {
		t.Fatal("a nil list revokes")
	}
	var l RevocationList
	if _, ok := l.Revoked(cert(0, "")); ok {
		t.Fatal("an empty list revokes a certificate with serial 0 and no key ID")
	}
	if !l.Add(Revocation{Serial: 12, Reason: "laptop stolen"}) || l.Add(Revocation{Serial: 12, Reason: "again"}) {
		t.Fatal("Add of serial 12: want new once")
	}
	if l.Add(Revocation{Serial: 0, Reason: "zero"}) {
		t.Fatal("serial 0 was added: no certificate of the register has it")
	}
	if !l.Add(Revocation{KeyID: "bob@example.com", Reason: "left"}) || l.Add(Revocation{KeyID: "bob@example.com"}) {
		t.Fatal("Add of a key ID: want new once")
	}
	tests := []struct {
		cert *ssh.Certificate
		want string // "" = not revoked, else a substring of the message
	}{
		{cert(12, "alice"), "postern: certificate serial 12 was revoked (laptop stolen); log in again"},
		{cert(13, "alice"), ""},
		{cert(0, ""), ""},
		{cert(99, "bob@example.com"), `postern: certificates with key ID "bob@example.com" were revoked (left); ask an admin`},
		{cert(99, "bob@example.co"), ""},
		{cert(12, "bob@example.com"), "serial 12"}, // the serial's own first
	}
	for _, tt := range tests {
		r, ok := l.Revoked(tt.cert)
		if ok != (tt.want != "") || ok && !strings.Contains(r.UserMessage(), tt.want) {
			t.Errorf("serial %d key ID %q: revoked %v %q, want %q", tt.cert.Serial, tt.cert.KeyId, ok, r.UserMessage(), tt.want)
		}
		if ok && !r.Covers(tt.cert) {
			t.Errorf("serial %d: revoked by %s, which does not cover it", tt.cert.Serial, r.What())
		}
	}
	if l.Len() != 2 {
		t.Fatalf("Len %d, want 2", l.Len())
	}
}

// Check refuses a revoked certificate with the revocation's message and
// a reason for the audit record; a forged one with a revoked serial is
// refused as not valid, learning nothing. Adding to the list while
// checking is safe (run with -race).
func TestCheckRevoked(t *testing.T) {
	t.Parallel()
	a, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	user := testenv.NewSigner(t)
	cert, err := a.SignUser(user.PublicKey(), UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, KeyID: "alice@x", Serial: 41})
	if err != nil {
		t.Fatal(err)
	}
	list := &RevocationList{}
	checker := Checker{CA: a.UserCA.PublicKey(), Revoked: list}
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 100 {
			list.Add(Revocation{Serial: uint64(1000 + i), Reason: "noise"})
		}
	})
	if _, err := checker.Check(cert, local); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	wg.Wait()
	list.Add(Revocation{Serial: 41, Reason: "key leaked"})
	_, err = checker.Check(cert, local)
	var ce *CheckError
	if !errors.As(err, &ce) || ce.UserMessage() != "postern: certificate serial 41 was revoked (key leaked); log in again (postern login)" ||
		!strings.Contains(ce.Reason, `serial 41 key_id "alice@x" revoked (serial 41): key leaked`) {
		t.Fatalf("revoked: %v (%#v)", err, ce)
	}
	forged := *cert
	forged.ValidPrincipals = []string{"root"}
	if _, err := checker.Check(&forged, local); !errors.As(err, &ce) || !strings.Contains(ce.UserMessage(), "not valid") {
		t.Fatalf("forged with a revoked serial: %v", err)
	}
}
