package api

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/postern/postern/certs"
)

// On a dual-stack listener an IPv4 client arrives as ::ffff:a.b.c.d (a
// test must not listen beyond loopback, so the request is made by hand):
// it is that IPv4 address for the failure limit and for source-address,
// which the bastion's check (unmapping too) accepts from the client
// however it arrives; a zone is dropped.
func TestAttackIPv4MappedClient(t *testing.T) {
	t.Parallel()
	for remote, want := range map[string]string{
		"[::ffff:192.0.2.7]:40000": "192.0.2.7",
		"192.0.2.7:40000":          "192.0.2.7",
		"[fe80::1%eth0]:40000":     "fe80::1",
		"[2001:db8::1]:40000":      "2001:db8::1",
	} {
		r := &http.Request{RemoteAddr: remote}
		got := clientAddr(r)
		if got.String() != want {
			t.Fatalf("%s: client %s, want %s", remote, got, want)
		}
	}
	ca, err := certs.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := certs.GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.SignUser(key.Public, certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour,
		SourceAddress: clientAddr(&http.Request{RemoteAddr: "[::ffff:192.0.2.7]:40000"}).String()})
	if err != nil {
		t.Fatal(err)
	}
	checker := certs.Checker{CA: ca.UserCA.PublicKey()}
	for _, from := range []string{"192.0.2.7", "::ffff:192.0.2.7"} {
		if _, err := checker.Check(cert, &net.TCPAddr{IP: net.ParseIP(from), Port: 22}); err != nil {
			t.Fatalf("from %s: %v", from, err)
		}
	}
	if _, err := checker.Check(cert, &net.TCPAddr{IP: net.ParseIP("192.0.2.8"), Port: 22}); err == nil {
		t.Fatal("accepted from another address")
	}
}
