package bastion

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

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
		{Name: "fake", Address: addr, HostKey: hostKey, Masking: "full", Forwards: []Forward{{Port: 5432, Protocol: ForwardTCP}}},
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
