package bastion

// Tests of DESIGN invariant 1 for logs and the index: text that a target or
// a client chooses (disconnect reasons, algorithm names, user names,
// request, channel and subsystem names, signal names) never reaches them
// with a PAN in it. They use a target played by the test, so they need no
// sshd.

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// testPAN is a Luhn-valid test card number; panForms are the ways it is
// written that the masker (and a log scanner) reads as a card number, and
// the forms a partial masking would leave.
const testPAN = "4111111111111111"

var panForms = []string{
	testPAN, "4111 1111 1111 1111", "4111-1111-1111-1111",
	"411111******1111", "************1111",
}

// assertPANFree fails if text holds testPAN, whole or partly masked.
func assertPANFree(t testing.TB, what, text string) {
	t.Helper()
	for _, f := range panForms {
		if i := strings.Index(text, f); i >= 0 {
			t.Errorf("%s holds %q: …%s…", what, f, text[max(0, i-120):min(len(text), i+len(f)+40)])
		}
	}
}

// maskRig is a bastion of its own, with its own authority, data directory
// and log, whose user alice may reach every target of the policy.
type maskRig struct {
	srv    *Server
	dir    string
	logs   *testenv.Buffer
	port   int
	hostCA ssh.PublicKey
	alice  ssh.Signer // a certificate signer for principal alice
}

func newMaskRig(t *testing.T, targets []Target) *maskRig {
	t.Helper()
	r := &maskRig{dir: t.TempDir(), logs: &testenv.Buffer{}}
	auth, err := certs.Open(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		Policy: Policy{
			Targets: targets,
			Rules:   []Rule{{Name: "alice", Principals: []string{"alice"}, Targets: []string{"*"}, Logins: []string{"*"}, Forwards: []int{AnyDeclaredPort}}},
		},
		Authority: auth,
		Recording: &Recording{Store: openStore(t, r.dir, auth.AuditKey)},
		Log:       slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		if t.Failed() {
			t.Logf("bastion log:\n%s", r.logs.String())
		}
	})
	r.srv = srv
	r.port = l.Addr().(*net.TCPAddr).Port
	r.hostCA = auth.HostKey.PublicKey()
	key := testenv.NewSigner(t)
	cert, err := auth.SignUser(key.PublicKey(), certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, KeyID: "alice@test"})
	if err != nil {
		t.Fatal(err)
	}
	if r.alice, err = ssh.NewCertSigner(cert, key); err != nil {
		t.Fatal(err)
	}
	return r
}

// dial connects an x/crypto client to the bastion as user.
func (r *maskRig) dial(t *testing.T, user string) (*ssh.Client, error) {
	t.Helper()
	c, err := ssh.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(r.alice)},
		HostKeyCallback: ssh.FixedHostKey(r.hostCA),
		Timeout:         10 * time.Second,
	})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// waitLog waits until the bastion's log holds want: the log is written by
// the bastion's connection goroutine, which the test cannot join.
func (r *maskRig) waitLog(t *testing.T, want string) {
	t.Helper()
	defer func() {
		if !strings.Contains(r.logs.String(), want) {
			t.Logf("the bastion's log never held %s", want)
		}
	}()
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(r.logs.String(), want) })
}

// plainPacket frames payload as an SSH binary packet before key exchange
// (RFC 4253 §6): uint32 packet_length, byte padding_length, payload, and
// at least 4 bytes of padding that make the whole a multiple of 8.
func plainPacket(payload []byte) []byte {
	pad := 8 - (5+len(payload))%8
	if pad < 4 {
		pad += 8
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(1+len(payload)+pad))
	b = append(b, byte(pad))
	b = append(b, payload...)
	return append(b, make([]byte, pad)...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...)
}

// disconnectPacket is SSH_MSG_DISCONNECT (RFC 4253 §11.1): byte 1, uint32
// reason code, string description, string language tag.
func disconnectPacket(reason uint32, description string) []byte {
	p := binary.BigEndian.AppendUint32([]byte{1}, reason)
	p = appendString(p, description)
	return plainPacket(appendString(p, ""))
}

// kexInitPacket is SSH_MSG_KEXINIT (RFC 4253 §7.1) offering only kex as
// key exchange method.
func kexInitPacket(kex string) []byte {
	p := append([]byte{20}, make([]byte, 16)...) // cookie
	for _, list := range []string{kex, "ssh-ed25519",
		"aes128-gcm@openssh.com", "aes128-gcm@openssh.com",
		"hmac-sha2-256", "hmac-sha2-256", "none", "none", "", ""} {
		p = appendString(p, list)
	}
	p = append(p, 0)                          // first_kex_packet_follows
	return plainPacket(append(p, 0, 0, 0, 0)) // reserved
}

// rawTarget is a target that speaks first and unencrypted, as any peer
// (or anyone on the network path) can before key exchange: it sends
// version (RFC 4253 §4.2) and then packets, and reads until the bastion
// hangs up, so that nothing it sent is lost to a reset.
func rawTarget(t *testing.T, version string, packets ...[]byte) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-done })
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		out := []byte(version + "\r\n")
		for _, p := range packets {
			out = append(out, p...)
		}
		if _, err := c.Write(out); err != nil {
			return
		}
		io.Copy(io.Discard, c)
	}()
	return l.Addr().String()
}

// TestUpstreamDisconnectMasked: a target's text from before key exchange
// that x/crypto puts in its handshake error reaches the audit record of
// the failed dial masked, whole.
func TestUpstreamDisconnectMasked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		version string
		packet  []byte
		want    string // the masked text in the log
	}{
		{"disconnect", "SSH-2.0-FakeTarget",
			disconnectPacket(2, "card "+testPAN+" declined"), `card **************** declined`},
		{"disconnect spaced", "SSH-2.0-FakeTarget",
			disconnectPacket(2, "card 4111 1111 1111 1111 declined"), `card **** **** **** **** declined`},
		{"version and kexinit", "SSH-2.0-FakeTarget_1.0 " + testPAN,
			kexInitPacket("4111 1111 1111 1111"), `peer offered: [\"**** **** **** ****\"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := rawTarget(t, tt.version, tt.packet)
			r := newMaskRig(t, []Target{{Name: "fake", Address: addr, HostKey: testenv.NewSigner(t).PublicKey()}})
			c, err := r.dial(t, "root@fake")
			if err != nil {
				t.Fatal(err)
			}
			// The target's failure reaches the client as a refused channel.
			if _, err := c.NewSession(); err == nil {
				t.Fatal("session opened on a target that never completed its handshake")
			}
			r.waitLog(t, `"event":"upstream"`)
			logs := r.logs.String()
			assertPANFree(t, "bastion log", logs)
			if !strings.Contains(logs, tt.want) {
				t.Errorf("bastion log lacks the masked target text %s", tt.want)
			}
		})
	}
}
