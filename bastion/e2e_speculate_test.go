package bastion

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
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

// A client refused by the policy, or without a certificate the CA signed,
// causes no connection to the target at all. One that shows a valid
// certificate the policy grants but never proves it holds the key (a
// copied certificate) gets a speculative connection that waits after the
// key exchange and is closed with no authentication request: the target
// logs neither NEWKEYS from the bastion nor any user.
func TestSpeculativeUpstreamRefusedUser(t *testing.T) {
	t.Parallel()
	b, sshd := specTarget(t)
	mallory := b.userKey(t, "spec-mallory", certs.UserCertRequest{Principals: []string{"mallory"}, TTL: time.Hour, KeyID: "mallory@test"})
	// Not "Connection from": the harness's readiness probe is one.
	reached := func() int { return strings.Count(sshd.Logs(), "remote software version Postern") }

	r := b.ssh(t, mallory, "root@spec", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), `mallory may not connect to "spec"`) {
		t.Fatalf("exit %d stderr %q: want the policy's refusal", r.ExitCode, r.Stderr)
	}
	_, plain := testenv.NewKey(t, t.TempDir(), "spec-plain")
	r = b.ssh(t, plain, "root@spec", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 {
		t.Fatalf("a plain key: exit %d stderr %q", r.ExitCode, r.Stderr)
	}
	waitNoUpstream(t, b, sshd)
	if n := reached(); n != 0 || strings.Contains(b.logs.String(), "speculative upstream") {
		t.Fatalf("refused clients made %d connections to the target:\n%s", n, b.logs.String())
	}

	// alice's certificate without alice's key: the signature, the next
	// round trip, is sent only once the speculative handshake waits (the
	// target sent its NEWKEYS and expects the bastion's), and is wrong.
	before := strings.Count(sshd.Logs(), "expecting SSH2_MSG_NEWKEYS")
	parked := func() bool { return strings.Count(sshd.Logs(), "expecting SSH2_MSG_NEWKEYS") > before }
	copied := &stalledSigner{cert: fileSigner(t, b.alice).PublicKey(), wait: func() { testenv.WaitFor(t, 10*time.Second, parked) }}
	if c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)), &ssh.ClientConfig{
		User: "root@spec", Auth: []ssh.AuthMethod{ssh.PublicKeys(copied)},
		HostKeyCallback: ssh.FixedHostKey(b.auth.HostKey.PublicKey()), Timeout: 10 * time.Second,
	}); err == nil {
		c.Close()
		t.Fatal("a copied certificate was let in")
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Count(b.logs.String(), "speculative upstream connection abandoned") == 1
	})
	waitNoUpstream(t, b, sshd)
	logs := sshd.Logs()
	if reached() != 1 {
		t.Fatalf("want one speculative connection to the target:\n%s", logs)
	}
	if strings.Contains(logs, "SSH2_MSG_NEWKEYS received") {
		t.Fatalf("the bastion finished a key exchange for a client that never authenticated:\n%s", logs)
	}
	if m := authLines.FindString(logs); m != "" {
		t.Fatalf("the target logged an authentication (%q) for a client that never authenticated:\n%s", m, logs)
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

// stalledSigner shows a certificate and, asked to sign with its key,
// waits for wait, then signs with a throwaway key: a client holding a
// copy of someone's certificate but not their key. wait nil: it waits
// until release is closed and signs nothing.
type stalledSigner struct {
	cert    ssh.PublicKey
	wait    func()
	release chan struct{}
}

func (s *stalledSigner) PublicKey() ssh.PublicKey { return s.cert }

func (s *stalledSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	if s.wait == nil {
		<-s.release
		return nil, errors.New("gave up")
	}
	s.wait()
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	other, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	return other.Sign(rand, data)
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

// Clients that show a valid certificate and never authenticate hold at most
// maxSpeculativePerTarget connections to it; their leaving closes them.
func TestSpeculativeUpstreamCapped(t *testing.T) {
	t.Parallel()
	b, sshd := specTarget(t)
	const clients = maxSpeculativePerTarget + 3
	cert := fileSigner(t, b.alice).PublicKey()
	release := make(chan struct{})
	reached := make(chan struct{}, clients)
	var wg sync.WaitGroup
	defer wg.Wait()
	var once sync.Once
	stop := func() { once.Do(func() { close(release) }) }
	defer stop()
	for range clients {
		wg.Go(func() {
			// alice's certificate passes the query; the signature
			// never comes, until the test lets the client give up.
			stall := ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
				reached <- struct{}{}
				return []ssh.Signer{&stalledSigner{cert: cert, release: release}}, nil
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
	// Each client's certificate reaches the bastion after the callback
	// above: wait for the ones over the cap to be refused.
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Count(b.logs.String(), "speculative upstream connection skipped: limit reached") == clients-maxSpeculativePerTarget
	})
	// Not "Connection from": the harness's readiness probe is one.
	if got := strings.Count(sshd.Logs(), "remote software version Postern"); got > maxSpeculativePerTarget {
		t.Fatalf("%d unauthenticated clients made %d connections to the target; want at most %d", clients, got, maxSpeculativePerTarget)
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
