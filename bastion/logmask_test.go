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
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
			Rules:   []Rule{{Name: "alice", Principals: []string{"alice"}, Targets: []string{"*"}, Logins: []string{"*"}, PortForwarding: true}},
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

// goTarget is a target played by an x/crypto server that lets any key in
// and sends the text a hostile target may: PANs in channel refusals, in a
// request type, and in an exit signal's name and message. Login "refuse"
// gets no session channel.
func goTarget(t *testing.T) (string, ssh.PublicKey) {
	return inProcessTarget(t, func(wg *sync.WaitGroup, sc *ssh.ServerConn, nch ssh.NewChannel) {
		switch {
		case nch.ChannelType() == "session" && sc.User() != "refuse":
			ch, reqs, err := nch.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { goTargetSession(ch, reqs) })
		case nch.ChannelType() == "session":
			nch.Reject(ssh.Prohibited, "no sessions for card "+testPAN)
		default:
			nch.Reject(ssh.ConnectionFailed, "port closed for card "+testPAN)
		}
	})
}

// inProcessTarget runs an x/crypto SSH server on loopback that lets any
// key in, discards global requests and hands each new channel to channel;
// it returns the address and host key. Cleanup stops it and waits for
// every goroutine it started.
func inProcessTarget(t *testing.T, channel func(wg *sync.WaitGroup, sc *ssh.ServerConn, nch ssh.NewChannel)) (string, ssh.PublicKey) {
	t.Helper()
	host := testenv.NewSigner(t)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil },
	}
	cfg.AddHostKey(host)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				sc, chans, reqs, err := ssh.NewServerConn(nc, cfg)
				if err != nil {
					return
				}
				defer sc.Close()
				wg.Go(func() { ssh.DiscardRequests(reqs) })
				for nch := range chans {
					channel(&wg, sc, nch)
				}
			})
		}
	})
	return l.Addr().String(), host.PublicKey()
}

// goTargetSession answers every request, and ends an exec with a request
// of its own and an exit signal (RFC 4254 §6.10), both with PANs.
func goTargetSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for r := range reqs {
		if r.WantReply {
			r.Reply(true, nil)
		}
		if r.Type != "exec" {
			continue
		}
		ch.SendRequest("x-"+testPAN+"@example.com", false, nil)
		ch.SendRequest("exit-signal", false, ssh.Marshal(struct {
			Signal     string
			CoreDumped bool
			Message    string
			Lang       string
		}{testPAN, false, "card " + testPAN, ""}))
		return
	}
}

// TestLogMaskPaths drives each path by which client or target text reaches
// the log or the index with a PAN in that text, and checks that the log and
// every file in the data directory (index, audit chain, recordings) are
// free of it.
func TestLogMaskPaths(t *testing.T) {
	t.Parallel()
	addr, hostKey := goTarget(t)
	hostile := rawTarget(t, "SSH-2.0-Hostile", disconnectPacket(11, "by application: card "+testPAN))
	r := newMaskRig(t, []Target{
		{Name: "fake", Address: addr, HostKey: hostKey, Masking: "full"},
		{Name: "hostile", Address: hostile, HostKey: testenv.NewSigner(t).PublicKey()},
	})
	type forward struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	tests := []struct {
		name  string
		user  string
		drive func(t *testing.T, c *ssh.Client)
		want  []string // masked text the log must hold: the path was taken
	}{
		{"user name", testPAN + "@nowhere", nil, []string{`"user_name":"****************@nowhere"`}},
		{"login and exit signal", testPAN + "@fake", func(t *testing.T, c *ssh.Client) {
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var ee *ssh.ExitError
			if err := s.Run("true"); !asExit(err, &ee) {
				t.Fatalf("run: %v, want the target's exit signal", err)
			}
		}, []string{`"login":"****************"`, `"request":"x-****************@example.com"`,
			`"exit_signal":"****************"`, `"event":"recording_end"`}},
		{"target disconnect before key exchange", "root@hostile", func(t *testing.T, c *ssh.Client) {
			if _, err := c.NewSession(); err == nil {
				t.Error("session accepted")
			}
		}, []string{`by application: card ****************`}},
		{"env name", "root@fake", func(t *testing.T, c *ssh.Client) {
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Setenv(testPAN, "1") == nil {
				t.Error("env accepted")
			}
		}, []string{`"name":"****************"`}},
		{"subsystem", "root@fake", func(t *testing.T, c *ssh.Client) {
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.RequestSubsystem(testPAN) == nil {
				t.Error("subsystem accepted")
			}
		}, []string{`"subsystem":"****************"`}},
		{"request type", "root@fake", func(t *testing.T, c *ssh.Client) {
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if ok, _ := s.SendRequest(testPAN, true, nil); ok {
				t.Error("request accepted")
			}
		}, []string{`"request":"****************"`}},
		{"channel type", "root@fake", func(t *testing.T, c *ssh.Client) {
			if _, _, err := c.OpenChannel(testPAN, nil); err == nil {
				t.Error("channel accepted")
			}
		}, []string{`"channel_type":"****************"`}},
		{"forward host", "root@fake", func(t *testing.T, c *ssh.Client) {
			if _, _, err := c.OpenChannel("direct-tcpip", ssh.Marshal(forward{"db-" + testPAN, 5432, "127.0.0.1", 1})); err == nil {
				t.Error("forward accepted")
			}
		}, []string{`"forward_host":"db-****************"`}},
		{"forward refused by target", "root@fake", func(t *testing.T, c *ssh.Client) {
			if _, _, err := c.OpenChannel("direct-tcpip", ssh.Marshal(forward{"localhost", 5432, "127.0.0.1", 1})); err == nil {
				t.Error("forward accepted")
			}
		}, []string{`port closed for card ****************`}},
		{"session refused by target", "refuse@fake", func(t *testing.T, c *ssh.Client) {
			if _, err := c.NewSession(); err == nil {
				t.Error("session accepted")
			}
		}, []string{`no sessions for card ****************`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mark := len(r.logs.String())
			c, err := r.dial(t, tt.user)
			if tt.drive == nil {
				if err == nil {
					t.Fatal("connection accepted")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				tt.drive(t, c)
			}
			for _, w := range tt.want {
				r.waitLog(t, w)
			}
			assertPANFree(t, "bastion log", r.logs.String()[mark:])
		})
	}
	// Every connection's last lines are written by the time Close
	// returns.
	r.srv.Close()
	assertPANFree(t, "bastion log", r.logs.String())
	err := filepath.WalkDir(r.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		assertPANFree(t, path, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
