package bastion

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// specTarget starts an sshd that logs every authentication request
// (LogLevel DEBUG1: "userauth-request for user …") and a bastion with
// targets on it: spec (its host key pinned) and specbad (another key
// pinned). The principal alice may log in as root on both.
func specTarget(t *testing.T) (*harness, *testenv.SSHDInstance) {
	t.Helper()
	h := env(t)
	sshd := testenv.SSHD(t, testenv.SSHDOptions{
		TrustedUserCAKeys: []ssh.PublicKey{h.auth.UpstreamCA.PublicKey()},
		Extra:             []string{"LogLevel DEBUG1"},
	})
	b := h.extraServer(t, Config{Policy: Policy{
		Targets: []Target{
			{Name: "spec", Address: sshd.Addr, HostKey: sshd.HostKey, Logins: []string{"root"}, DefaultLogin: "root"},
			{Name: "specbad", Address: sshd.Addr, HostKey: testenv.NewSigner(t).PublicKey()},
		},
		Rules: []Rule{{Name: "alice", Principals: []string{"alice"}, Targets: []string{"spec", "specbad"}, Logins: []string{"root"}}},
	}})
	return b, sshd
}

// authLines are what sshd logs of a user authentication request or its
// outcome, at DEBUG1 or VERBOSE.
var authLines = regexp.MustCompile(`userauth-request|Accepted |Failed |Postponed |Invalid user|authenticating user|ID postern session=`)

// A refused user's speculative upstream connection may reach the target
// (TCP and key exchange), but no authentication request is sent on it,
// and it is closed; an allowed user's is used, and authenticates.
func TestSpeculativeUpstreamRefusedUser(t *testing.T) {
	t.Parallel()
	b, sshd := specTarget(t)
	mallory := b.userKey(t, "spec-mallory", certs.UserCertRequest{Principals: []string{"mallory"}, TTL: time.Hour, KeyID: "mallory@test"})

	// OpenSSH's client, refused by the policy.
	r := b.ssh(t, mallory, "root@spec", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), `mallory may not connect to "spec"`) {
		t.Fatalf("exit %d stderr %q: want the policy's refusal", r.ExitCode, r.Stderr)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Count(b.logs.String(), "speculative upstream connection abandoned") == 1
	})
	waitNoUpstream(t, b, sshd)
	if !strings.Contains(sshd.Logs(), "Connection from 127.0.0.1") {
		t.Fatalf("the speculative connection did not reach the target:\n%s", sshd.Logs())
	}

	// A client that authenticates only once the speculative handshake
	// waits (the target sent its NEWKEYS and expects the bastion's).
	before := strings.Count(sshd.Logs(), "expecting SSH2_MSG_NEWKEYS")
	parked := func() bool { return strings.Count(sshd.Logs(), "expecting SSH2_MSG_NEWKEYS") > before }
	signer := fileSigner(t, mallory)
	wait := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		testenv.WaitFor(t, 10*time.Second, parked)
		return []ssh.Signer{signer}, nil
	})
	if c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)), &ssh.ClientConfig{
		User: "root@spec", Auth: []ssh.AuthMethod{wait},
		HostKeyCallback: ssh.FixedHostKey(b.auth.HostKey.PublicKey()), Timeout: 10 * time.Second,
	}); err == nil {
		c.Close()
		t.Fatal("mallory was let in")
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Count(b.logs.String(), "speculative upstream connection abandoned") == 2
	})
	waitNoUpstream(t, b, sshd)
	logs := sshd.Logs()
	if strings.Contains(logs, "SSH2_MSG_NEWKEYS received") {
		t.Fatalf("the bastion finished a key exchange for a refused user:\n%s", logs)
	}
	if m := authLines.FindString(logs); m != "" {
		t.Fatalf("the target logged an authentication (%q) for a refused user:\n%s", m, logs)
	}

	// The same target, allowed: the speculative connection is used and
	// authenticates with the session's certificate, which the target
	// logs (so the checks above could have failed).
	r = b.ssh(t, b.alice, "root@spec", nil, "echo ok")
	if string(r.Stdout) != "ok\n" || r.ExitCode != 0 {
		t.Fatalf("allowed user: stdout %q exit %d stderr %s", r.Stdout, r.ExitCode, r.Stderr)
	}
	if !strings.Contains(b.logs.String(), "speculative upstream connection used") {
		t.Fatal("the allowed connection did not use its speculative upstream connection")
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(sshd.Logs(), "Accepted publickey for root") })
	if !authLines.MatchString(sshd.Logs()) || !strings.Contains(sshd.Logs(), "SSH2_MSG_NEWKEYS received") {
		t.Fatal("the checks do not match what the target logs of an authentication")
	}
}

// waitNoUpstream waits until b has no speculative connection in progress
// and no TCP connection to sshd is open.
func waitNoUpstream(t *testing.T, b *harness, sshd *testenv.SSHDInstance) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() bool { return b.srv.specs.count() == 0 && connectionsTo(t, sshd.Port) == 0 })
}

// connectionsTo counts the established IPv4 TCP connections whose remote
// port is port (/proc/net/tcp: the connecting side of each).
func connectionsTo(t *testing.T, port int) int {
	t.Helper()
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[2], want) && f[3] == "01" {
			n++
		}
	}
	return n
}

// fileSigner is the certificate signer of the key at path.
func fileSigner(t testing.TB, path string) ssh.Signer {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	certData, err := os.ReadFile(path + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certData)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewCertSigner(pub.(*ssh.Certificate), key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A target whose host key the bastion does not trust fails the session
// with the usual message, although its key exchange began before the
// client authenticated; nothing is sent to authenticate.
func TestSpeculativeUpstreamHostKeyMismatch(t *testing.T) {
	t.Parallel()
	b, sshd := specTarget(t)
	r := b.ssh(t, b.alice, "root@specbad", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "presented a host key the bastion does not trust") {
		t.Fatalf("exit %d stderr %q: want the host key refusal", r.ExitCode, r.Stderr)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(b.logs.String(), "not trusted") })
	waitNoUpstream(t, b, sshd)
	if m := authLines.FindString(sshd.Logs()); m != "" {
		t.Fatalf("the target logged an authentication (%q) for an untrusted host key:\n%s", m, sshd.Logs())
	}
}

// Clients that name a target and never authenticate hold at most
// maxSpeculativePerTarget connections to it; their leaving closes them.
func TestSpeculativeUpstreamCapped(t *testing.T) {
	t.Parallel()
	b, sshd := specTarget(t)
	const clients = maxSpeculativePerTarget + 3
	release := make(chan struct{})
	reached := make(chan struct{}, clients)
	var wg sync.WaitGroup
	defer wg.Wait()
	var once sync.Once
	stop := func() { once.Do(func() { close(release) }) }
	defer stop()
	for range clients {
		wg.Go(func() {
			// x/crypto sends "none" first; the second method waits,
			// unauthenticated, until the test lets it give up.
			stall := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
				reached <- struct{}{}
				<-release
				return nil, errors.New("gave up")
			})
			c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)), &ssh.ClientConfig{
				User: "root@spec", Auth: []ssh.AuthMethod{stall},
				HostKeyCallback: ssh.FixedHostKey(b.auth.HostKey.PublicKey()), Timeout: 10 * time.Second,
			})
			if err == nil {
				c.Close()
				t.Error("a client without a key authenticated")
			}
		})
	}
	timeout := time.After(30 * time.Second)
	for range clients {
		select {
		case <-reached:
		case <-timeout:
			t.Fatal("clients did not reach authentication")
		}
	}
	testenv.WaitFor(t, 10*time.Second, func() bool { return b.srv.specs.count() == maxSpeculativePerTarget })
	// Not "Connection from": the harness's readiness probe is one.
	if got := strings.Count(sshd.Logs(), "remote software version Postern"); got > maxSpeculativePerTarget {
		t.Fatalf("%d unauthenticated clients made %d connections to the target; want at most %d", clients, got, maxSpeculativePerTarget)
	}
	if !strings.Contains(b.logs.String(), "limit reached") {
		t.Fatal("no speculation was refused at the cap")
	}
	stop()
	wg.Wait()
	waitNoUpstream(t, b, sshd)
	if m := authLines.FindString(sshd.Logs()); m != "" {
		t.Fatalf("the target logged an authentication (%q):\n%s", m, sshd.Logs())
	}
}

// The bastion-wide cap holds across targets.
func TestSpeculationsCaps(t *testing.T) {
	var l speculations
	for i := range maxSpeculative {
		if !l.acquire("t" + strconv.Itoa(i%(maxSpeculative/maxSpeculativePerTarget))) {
			t.Fatalf("slot %d refused below the caps", i)
		}
	}
	if l.acquire("other") {
		t.Fatal("a slot beyond maxSpeculative was granted")
	}
	l.release("t0")
	if l.acquire("t1") || !l.acquire("t0") {
		t.Fatal("per-target cap not kept after a release")
	}
}
