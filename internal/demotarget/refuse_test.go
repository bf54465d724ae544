package demotarget_test

import (
	"io"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/postern/postern/internal/demotarget"
	"github.com/postern/postern/internal/testenv"
)

func TestAuthRefused(t *testing.T) {
	t.Parallel()
	tg := start(t, func(c *demotarget.Config) { c.Logins = []string{"demo", "root"} })
	otherCA := testenv.NewSigner(t)
	tests := []struct {
		name   string
		user   string
		signer ssh.Signer
	}{
		{"other CA", "demo", testenv.CertSigner(t, otherCA, []string{"demo"}, nil)},
		{"plain key", "demo", testenv.NewSigner(t)},
		{"wrong principal", "demo", testenv.CertSigner(t, tg.ca, []string{"root"}, nil)},
		{"login not allowed", "guest", testenv.CertSigner(t, tg.ca, []string{"guest"}, nil)},
		{"expired", "demo", testenv.CertSigner(t, tg.ca, []string{"demo"}, func(c *ssh.Certificate) {
			c.ValidBefore = uint64(time.Now().Add(-time.Minute).Unix())
		})},
		{"not yet valid", "demo", testenv.CertSigner(t, tg.ca, []string{"demo"}, func(c *ssh.Certificate) {
			c.ValidAfter = uint64(time.Now().Add(time.Hour).Unix())
		})},
		{"host certificate", "demo", testenv.CertSigner(t, tg.ca, []string{"demo"}, func(c *ssh.Certificate) { c.CertType = ssh.HostCert })},
		{"source-address", "demo", testenv.CertSigner(t, tg.ca, []string{"demo"}, func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "192.0.2.0/24"}
		})},
		{"unknown critical option", "demo", testenv.CertSigner(t, tg.ca, []string{"demo"}, func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"force-command": "true"}
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tg.dial(t, tt.user, tt.signer); err == nil {
				t.Fatal("login accepted")
			}
		})
	}
	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		signer := testenv.CertSigner(t, tg.ca, []string{"root"}, func(c *ssh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "127.0.0.1/32"}
		})
		if _, err := tg.dial(t, "root", signer); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSubsystemRefused uses a raw channel: x/crypto's Session cannot wait
// for a subsystem.
func TestSubsystemRefused(t *testing.T) {
	t.Parallel()
	tg := start(t, nil)
	c, err := tg.dial(t, "demo", testenv.CertSigner(t, tg.ca, []string{"demo"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"})); !ok || err != nil {
		t.Fatalf("subsystem request: %v, %v", ok, err)
	}
	stderr, err := io.ReadAll(ch.Stderr())
	if err != nil {
		t.Fatal(err)
	}
	if string(stderr) != "sftp is not available on the demo target\n" {
		t.Errorf("stderr %q", stderr)
	}
	var status []uint32
	for r := range reqs { // until the server's CLOSE
		var msg struct{ Status uint32 }
		if r.Type == "exit-status" && ssh.Unmarshal(r.Payload, &msg) == nil {
			status = append(status, msg.Status)
		}
	}
	if len(status) != 1 || status[0] != 1 {
		t.Fatalf("exit statuses %v, want [1]", status)
	}
}

func TestForwardingRefused(t *testing.T) {
	t.Parallel()
	tg := start(t, nil)
	c, err := tg.dial(t, "demo", testenv.CertSigner(t, tg.ca, []string{"demo"}, func(c *ssh.Certificate) {
		c.Extensions = map[string]string{"permit-port-forwarding": "", "permit-agent-forwarding": ""}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := c.Dial("tcp", tg.srv.Addr()); err == nil {
		conn.Close()
		t.Error("local port forwarding allowed")
	}
	if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
		t.Error("remote port forwarding allowed")
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := agent.RequestAgentForwarding(s); err == nil {
		t.Error("agent forwarding allowed")
	}
}
