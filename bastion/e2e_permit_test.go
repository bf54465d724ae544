package bastion

// End-to-end tests of the certificate extensions that grant features
// (permit-pty, permit-port-forwarding, permit-agent-forwarding,
// permit-X11-forwarding), with certificates made by the real ssh-keygen and
// the real OpenSSH client.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// keygenCert makes a key pair and has OpenSSH's ssh-keygen sign it with
// the bastion's user CA for principal, with `-O clear` and then `-O` for
// each extension in permit. The key ID is name (unique per test, so that
// the bastion's audit records can be found by it). It returns the private
// key's path; PATH-cert.pub is beside it.
func (h *harness) keygenCert(t *testing.T, name, principal string, permit ...string) string {
	t.Helper()
	keygen := testenv.Require(t, "ssh-keygen")
	_, path := testenv.NewKey(t, t.TempDir(), "id")
	args := []string{"-q", "-s", filepath.Join(h.auth.Dir, certs.UserCAFile), "-I", name, "-n", principal, "-V", "-5m:+1h", "-O", "clear"}
	for _, p := range permit {
		args = append(args, "-O", p)
	}
	if r := testenv.Cmd(t, time.Minute, nil, keygen, append(args, path+".pub")...); r.ExitCode != 0 {
		t.Fatalf("ssh-keygen -s: exit %d: %s", r.ExitCode, r.Stderr)
	}
	// The certificate says what was asked, no more.
	cert := readCert(t, path+"-cert.pub")
	var got []string
	for ext := range cert.Extensions {
		got = append(got, ext)
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(permit))
	if !slices.Equal(got, want) {
		t.Fatalf("ssh-keygen made a certificate with extensions %v, want %v", got, want)
	}
	return path
}

func readCert(t *testing.T, path string) *ssh.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%s holds a %T, not a certificate", path, pub)
	}
	return cert
}

// audits returns the bastion's audit records of event on the connections
// made with the certificate whose key ID is keyID.
func (h *harness) audits(keyID, event string) []map[string]any {
	type rec = map[string]any
	var lines []rec
	sessions := map[any]bool{}
	for line := range strings.Lines(h.logs.String()) {
		var m rec
		if json.Unmarshal([]byte(line), &m) != nil || m["audit"] != true {
			continue
		}
		if m["event"] == "connect" && m["key_id"] == keyID {
			sessions[m["session"]] = true
		}
		lines = append(lines, m)
	}
	var out []rec
	for _, m := range lines {
		if m["event"] == event && sessions[m["session"]] {
			out = append(out, m)
		}
	}
	return out
}

// waitAudit waits for an audit record of event, for the connection made
// with keyID, whose reason contains reason, and checks it was a refusal.
func (h *harness) waitAudit(t *testing.T, keyID, event, reason string) {
	t.Helper()
	var found map[string]any
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, m := range h.audits(keyID, event) {
			if r, _ := m["reason"].(string); strings.Contains(r, reason) {
				found = m
				return true
			}
		}
		return false
	})
	if found["allowed"] != false || !slices.Contains([]any{"alice", "fwd", "agentfwd"}, found["user"]) || found["target"] != "t1" {
		t.Fatalf("audit record %v: want allowed false with the connection's user and target", found)
	}
}

func TestPermitPTY(t *testing.T) {
	t.Parallel()
	h := env(t)
	tests := []struct {
		name    string
		permit  []string
		wantTTY bool
	}{
		{"cleared", nil, false},
		{"forwarding only", []string{"permit-port-forwarding"}, false},
		{"permit-pty", []string{"permit-pty"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keyID := uniqueMarker("permit-pty-")
			key := h.keygenCert(t, keyID, "alice", tt.permit...)
			r := h.sshWith(t, []string{"-tt"}, key, "root@t1", nil, "tty")
			out, errs := string(r.Stdout), string(r.Stderr)
			if tt.wantTTY {
				if r.ExitCode != 0 || !strings.Contains(out, "/dev/pts/") || strings.Contains(errs, "PTY allocation request failed") {
					t.Fatalf("exit %d stdout %q stderr %q: want a pty", r.ExitCode, out, errs)
				}
				if got := h.audits(keyID, "session_request"); len(got) != 0 {
					t.Fatalf("refusals audited for a permitted pty: %v", got)
				}
				return
			}
			// As with sshd: the pty is refused, and ssh -tt, for
			// which a pty is a must, gives up (exit 255). The user
			// also reads why.
			if r.ExitCode != 255 || strings.Contains(out, "/dev/pts/") {
				t.Fatalf("exit %d stdout %q stderr %q: want no pty", r.ExitCode, out, errs)
			}
			if !strings.Contains(errs, "PTY allocation request failed on channel 0") || !strings.Contains(errs, ptyMessage) {
				t.Fatalf("stderr %q: want OpenSSH's refusal and postern's reason", errs)
			}
			h.waitAudit(t, keyID, "session_request", "certificate lacks permit-pty")
		})
	}
}

const ptyMessage = "postern: no terminal: your certificate does not permit one (it lacks permit-pty)"

// An interactive login asks for a pty without insisting (RequestTTY
// auto): refused, the shell runs without one, as with sshd.
func TestPermitPTYInteractiveContinues(t *testing.T) {
	t.Parallel()
	h := env(t)
	keyID := uniqueMarker("permit-pty-shell-")
	key := h.keygenCert(t, keyID, "alice")
	args := append(h.opts(key), "-p", strconv.Itoa(h.port), "root@t1@127.0.0.1")
	res := testenv.RunOnPTY(t, "", func(tty *os.File, wait func(string)) {
		wait(ptyMessage)
		// Without a pty on the target the local terminal stays in
		// cooked mode and echoes this line: the quotes keep the
		// echo from matching the shell's output.
		io.WriteString(tty, "tty; echo shell''-ran; exit\n")
		wait("shell-ran")
	}, h.sshBin, args...)
	out := string(res.Output)
	if !strings.Contains(out, "not a tty") || !strings.Contains(out, "PTY allocation request failed") {
		t.Fatalf("exit %d, terminal shows %q: want the shell to run without a pty", res.ExitCode, out)
	}
	h.waitAudit(t, keyID, "session_request", "certificate lacks permit-pty")
}

// X11 forwarding is never offered (the bastion terminates SSH: it would
// have to relay the target's windows unseen); the audit record says
// whether the certificate permitted it anyway. Agent forwarding needs both
// the certificate's permit-agent-forwarding and the rule's
// agent_forwarding: each refusal names what was missing.
func TestPermitAgentAndX11Refused(t *testing.T) {
	t.Parallel()
	h := env(t)
	// An agent for ssh -A to forward; ssh asks it for keys first.
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); agent.ServeAgent(agent.NewKeyring(), c) }()
		}
	}()
	tests := []struct {
		name, flag string
		principal  string // alice's rule has no agent_forwarding; agentfwd's has
		permit     []string
		want       string // in stderr
		reason     string // in the audit record; quoted: exactly
	}{
		{"agent, cleared", "-A", "alice", nil, "postern: agent forwarding is not allowed: your certificate lacks permit-agent-forwarding",
			`"certificate lacks permit-agent-forwarding; agent forwarding not granted by rule alice"`},
		{"agent, rule lacks it", "-A", "alice", []string{"permit-agent-forwarding"}, "postern: agent forwarding is not allowed for you on t1",
			`"agent forwarding not granted by rule alice"`},
		{"agent, certificate lacks it", "-A", "agentfwd", []string{"permit-pty"}, "postern: agent forwarding is not allowed: your certificate lacks permit-agent-forwarding",
			`"certificate lacks permit-agent-forwarding"`},
		{"x11, cleared", "-X", "alice", nil, "postern: X11 forwarding is not supported",
			"certificate lacks permit-X11-forwarding; X11 forwarding is not supported"},
		{"x11, permitted", "-X", "alice", []string{"permit-X11-forwarding"}, "postern: X11 forwarding is not supported",
			`"X11 forwarding is not supported"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keyID := uniqueMarker("permit-fwd-")
			key := h.keygenCert(t, keyID, tt.principal, tt.permit...)
			args := append(append([]string{tt.flag}, h.opts(key)...), "-p", strconv.Itoa(h.port), "root@t1@127.0.0.1", "echo ran")
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, h.sshBin, args...)
			// No X server is needed: ssh sends x11-req with fake
			// cookies when xauth has none.
			cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock, "DISPLAY=127.0.0.1:77")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil || stdout.String() != "ran\n" {
				t.Fatalf("%v: stdout %q stderr %q; want the command to run", err, stdout.String(), stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("stderr %q: want %q", stderr.String(), tt.want)
			}
			want := strings.Trim(tt.reason, `"`)
			h.waitAudit(t, keyID, "session_request", want)
			for _, m := range h.audits(keyID, "session_request") {
				if r, _ := m["reason"].(string); strings.HasPrefix(tt.reason, `"`) && r != want {
					t.Fatalf("audit reason %q, want exactly %q", r, want)
				}
			}
		})
	}
}

// localForward runs `ssh -N -L 127.0.0.1:PORT:dest` through the bastion
// until the test ends, and returns the local address once it accepts
// connections, and ssh's stderr.
func (h *harness) localForward(t testing.TB, key, user, dest string) (string, *testenv.Buffer) {
	t.Helper()
	local := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	args := append(h.opts(key), "-p", strconv.Itoa(h.port), "-N", "-o", "ExitOnForwardFailure=yes", "-L", local+":"+dest, user+"@127.0.0.1")
	cmd := exec.CommandContext(t.Context(), h.sshBin, args...)
	stderr := &testenv.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { <-exited }) // t.Context is cancelled first: ssh is killed
	testenv.WaitFor(t, 20*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("ssh -L exited: %s", stderr.String())
		default:
		}
		c, err := net.Dial("tcp", local)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return local, stderr
}

func TestPermitPortForwarding(t *testing.T) {
	t.Parallel()
	h := env(t)
	port := strconv.Itoa(h.echoPort)
	tests := []struct {
		name, principal string
		permit          []string
		ok              bool
		want            string // in ssh's stderr when refused
		reason          string // in the audit record when refused
	}{
		{"permit-port-forwarding", "fwd", []string{"permit-port-forwarding"}, true, "", ""},
		{"cert lacks it", "fwd", []string{"permit-pty"}, false,
			"postern: port forwarding is not allowed: your certificate lacks permit-port-forwarding", "certificate lacks permit-port-forwarding"},
		{"cleared", "fwd", nil, false,
			"your certificate lacks permit-port-forwarding", "certificate lacks permit-port-forwarding"},
		// The certificate permits it, the policy does not: refused.
		{"policy lacks it", "alice", []string{"permit-pty", "permit-port-forwarding"}, false,
			"port forwarding is not allowed for you on t1", "port forwarding not granted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keyID := uniqueMarker("permit-fwd-")
			key := h.keygenCert(t, keyID, tt.principal, tt.permit...)
			local, stderr := h.localForward(t, key, "root@t1", "localhost:"+port)
			c, err := net.Dial("tcp", local)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			const msg = "ping through postern\n"
			if tt.ok {
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
					t.Fatalf("forward echoed %q, %v; ssh: %s", got, err, stderr.String())
				}
				return
			}
			// ssh closes the local connection when the bastion
			// refuses the channel.
			io.WriteString(c, msg)
			got, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("read from a refused forward: %v (got %q)", err, got)
			}
			if len(got) != 0 {
				t.Fatalf("a refused forward delivered %q", got)
			}
			testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(stderr.String(), tt.want) })
			if !strings.Contains(stderr.String(), "administratively prohibited") {
				t.Fatalf("ssh stderr %q: want the channel refused as prohibited", stderr.String())
			}
			h.waitAudit(t, keyID, "forward", tt.reason)
		})
	}
}
