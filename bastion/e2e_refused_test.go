package bastion

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

func TestRefused(t *testing.T) {
	t.Parallel()
	h := env(t)
	plain, plainPath := testenv.NewKey(t, h.dir, "plain")
	_ = plain
	other, err := certs.Open(filepath.Join(h.dir, "other-ca"))
	if err != nil {
		t.Fatal(err)
	}
	otherCA := func(name string) string {
		signer, path := testenv.NewKey(t, h.dir, name)
		cert, err := other.SignUser(signer.PublicKey(), certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		testenv.WriteCert(t, path+"-cert.pub", cert)
		return path
	}
	past := time.Now().Add(-48 * time.Hour)
	future := time.Now().Add(48 * time.Hour)
	tests := []struct {
		name, key, user string
		want            string // in the client's stderr
		reason          string // in the bastion's audit record
		extra           []string
	}{
		// The reason for a plain key is shown once every key failed,
		// through keyboard-interactive, which BatchMode skips.
		{"plain public key", plainPath, "root@t1", "a certificate is required", "plain public key", []string{"-o", "BatchMode=no"}},
		{"plain public key, batch mode", plainPath, "root@t1", "Permission denied", "plain public key", nil},
		{"cert from another CA", otherCA("otherca"), "root@t1", "not signed by this bastion", "unknown CA", nil},
		{"expired cert", h.userKey(t, "expired", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, Now: past}), "root@t1", "certificate expired", "expired", nil},
		{"not yet valid cert", h.userKey(t, "future", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, Now: future}), "root@t1", "not yet valid", "not valid until", nil},
		{"wrong principal", h.userKey(t, "bob", certs.UserCertRequest{Principals: []string{"bob"}, TTL: time.Hour}), "root@t1", `bob may not connect to "t1"`, "no rule grants", nil},
		{"login not allowed", h.alice, "nobody@t1", `may not log in as "nobody"`, "login \\\"nobody\\\" not allowed", nil},
		{"unknown target", h.alice, "root@nosuch", `unknown target "nosuch"`, "unknown target", nil},
		{"source-address mismatch", h.userKey(t, "srcaddr", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, SourceAddress: "192.0.2.0/24"}), "root@t1", "may not be used from this address", "not in source-address", nil},
		{"target host key mismatch", h.alice, "root@badkey", "presented a host key the bastion does not trust", "not trusted", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := h.sshWith(t, tt.extra, tt.key, tt.user, nil, "echo SHOULD-NOT-RUN")
			if r.ExitCode != 255 || bytes.Contains(r.Stdout, []byte("SHOULD-NOT-RUN")) {
				t.Fatalf("exit %d stdout %q: want refusal (255)", r.ExitCode, r.Stdout)
			}
			if !strings.Contains(string(r.Stderr), tt.want) {
				t.Fatalf("client stderr %q does not say %q", r.Stderr, tt.want)
			}
			// The audit record is written when the bastion sees the
			// client go, which may be just after the client exits.
			testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(h.logs.String(), tt.reason) })
		})
	}
}

// OpenSSH's client will not offer a host certificate for user
// authentication, so this one uses x/crypto, which offers whatever it is
// given.
func TestHostCertAsUserCertRefused(t *testing.T) {
	t.Parallel()
	h := env(t)
	key := testenv.NewSigner(t)
	cert := &ssh.Certificate{
		Key: key.PublicKey(), CertType: ssh.HostCert, ValidPrincipals: []string{"alice"},
		ValidAfter: uint64(time.Now().Add(-time.Hour).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
	}
	if err := cert.SignCert(rand.Reader, h.auth.UserCA); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	var banner string
	_, err = ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port)), &ssh.ClientConfig{
		User:            "root@t1",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(h.auth.HostKey.PublicKey()),
		BannerCallback:  func(m string) error { banner += m; return nil },
		Timeout:         10 * time.Second,
	})
	if err == nil {
		t.Fatal("a host certificate was accepted as a user certificate")
	}
	if !strings.Contains(banner, "not a user certificate") {
		t.Fatalf("banner %q does not explain the refusal", banner)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(h.logs.String(), "(not user)") })
}

func TestProxyJumpRefused(t *testing.T) {
	t.Parallel()
	h := env(t)
	fwd := h.userKey(t, "fwd", certs.UserCertRequest{Principals: []string{"fwd"}, TTL: time.Hour})
	// What `ssh -J root@t1@bastion target` runs: a stdio forward
	// (direct-tcpip) through the bastion to the target's SSH port.
	jump := fmt.Sprintf("%s %s -p %d -W %%h:%%p root@t1@127.0.0.1", h.sshBin, strings.Join(h.opts(fwd), " "), h.port)
	args := append(h.opts(h.alice), "-o", "ProxyCommand="+jump, "-p", strconv.Itoa(h.sshd.Port), "root@127.0.0.1", "echo SHOULD-NOT-RUN")
	r := testenv.Cmd(t, time.Minute, nil, h.sshBin, args...)
	if r.ExitCode != 255 || bytes.Contains(r.Stdout, []byte("SHOULD-NOT-RUN")) {
		t.Fatalf("exit %d stdout %q: want refusal", r.ExitCode, r.Stdout)
	}
	if !strings.Contains(string(r.Stderr), "ProxyJump (ssh -J) is not supported") ||
		!strings.Contains(string(r.Stderr), "LOGIN@TARGET@BASTION") {
		t.Fatalf("stderr %q does not explain LOGIN@TARGET@bastion", r.Stderr)
	}
	// Even a user allowed to forward ports cannot reach an SSH port.
	r = testenv.Cmd(t, time.Minute, nil, h.sshBin, append(h.opts(fwd), "-p", strconv.Itoa(h.port), "-W", h.sshd.Addr, "root@t1@127.0.0.1")...)
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "ProxyJump") {
		t.Fatalf("-W to the sshd port: exit %d stderr %q", r.ExitCode, r.Stderr)
	}
}
