package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDOptions configures StartSSHD. The zero value starts an sshd that
// accepts nobody: AuthorizedKeysFile is none and no CA is trusted.
type SSHDOptions struct {
	// TrustedUserCAKeys are written to a file named by sshd's
	// TrustedUserCAKeys; users with a certificate signed by one of them
	// (and naming the login as a principal) may log in.
	TrustedUserCAKeys []ssh.PublicKey
	// Extra are sshd_config lines. Lines before the first "Match" go at the
	// top of the file, where they override the harness defaults (sshd keeps
	// the first value of most keywords); the Match block goes at the end.
	// They must not set ListenAddress, Port, HostKey or PidFile, and cannot
	// change MaxStartups: sshd keeps the last value of that one.
	Extra []string
}

// SSHDInstance is a running OpenSSH sshd on 127.0.0.1. It is safe for
// concurrent use; Close stops it.
//
// (The type is not called SSHD because the function SSHD, which starts one
// for a test, has that name.)
type SSHDInstance struct {
	Addr    string        // "127.0.0.1:PORT"
	Port    int           // TCP port on 127.0.0.1
	HostKey ssh.PublicKey // the sshd's ed25519 host key
	Dir     string        // temporary directory with config, keys and pid file; removed by Close

	cmd     *exec.Cmd
	log     *logBuffer
	exited  chan struct{} // closed when cmd.Wait returned
	waitErr error         // set before exited is closed

	closeOnce sync.Once
	closeErr  error
}

// startAttempts bounds retries when another process takes the free port
// between FreePort and sshd's bind.
const startAttempts = 3

// readyTimeout bounds how long StartSSHD waits for the port to answer.
const readyTimeout = 10 * time.Second

// StartSSHD starts /usr/sbin/sshd -D -e in a fresh temporary directory with
// its own ed25519 host key, listening on a free port of 127.0.0.1, and waits
// until it answers with an SSH banner. The caller must Close it. Tests
// should use SSHD or SharedSSHD, which register the cleanup.
func StartSSHD(opts SSHDOptions) (*SSHDInstance, error) {
	sshd, err := lookPath("sshd")
	if err != nil {
		return nil, err
	}
	keygen, err := lookPath("ssh-keygen")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, fmt.Errorf("create sshd privilege separation directory: %w", err)
	}
	dir, err := os.MkdirTemp("", "testenv-sshd-")
	if err != nil {
		return nil, fmt.Errorf("create sshd directory: %w", err)
	}
	s, err := startSSHD(sshd, keygen, dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func startSSHD(sshd, keygen, dir string, opts SSHDOptions) (*SSHDInstance, error) {
	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", hostKeyPath).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("generate sshd host key: %w: %s", err, out)
	}
	pub, err := os.ReadFile(hostKeyPath + ".pub")
	if err != nil {
		return nil, fmt.Errorf("read sshd host key: %w", err)
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey(pub)
	if err != nil {
		return nil, fmt.Errorf("parse sshd host key: %w", err)
	}
	var caFile string
	if len(opts.TrustedUserCAKeys) > 0 {
		caFile = filepath.Join(dir, "trusted_user_ca_keys")
		var b []byte
		for _, k := range opts.TrustedUserCAKeys {
			b = append(b, ssh.MarshalAuthorizedKey(k)...)
		}
		if err := os.WriteFile(caFile, b, 0o644); err != nil {
			return nil, fmt.Errorf("write trusted CA keys: %w", err)
		}
	}

	var lastErr error
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		cfg := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfg, sshdConfig(dir, port, hostKeyPath, caFile, opts.Extra), 0o644); err != nil {
			return nil, fmt.Errorf("write sshd_config: %w", err)
		}
		s := &SSHDInstance{
			Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Port:    port,
			HostKey: hostKey,
			Dir:     dir,
			log:     &logBuffer{},
			exited:  make(chan struct{}),
		}
		s.cmd = exec.Command(sshd, "-D", "-e", "-f", cfg)
		s.cmd.Stdout = s.log
		s.cmd.Stderr = s.log
		// Connection children inherit stderr and may outlive a killed
		// listener for a moment; don't let them hang Wait.
		s.cmd.WaitDelay = 2 * time.Second
		// If the test binary dies without running cleanups (a panic), the
		// listener goes with it.
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("start sshd: %w", err)
		}
		go func() {
			s.waitErr = s.cmd.Wait()
			close(s.exited)
		}()
		err = s.waitReady()
		if err == nil {
			return s, nil
		}
		s.stop()
		lastErr = err
		if !strings.Contains(s.Logs(), "Address already in use") {
			break
		}
	}
	return nil, lastErr
}

// sshdConfig renders sshd_config as TESTING.md describes.
func sshdConfig(dir string, port int, hostKey, caFile string, extra []string) []byte {
	var top, match []string
	for i, l := range extra {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], "Match") {
			match = extra[i:]
			break
		}
		top = append(top, l)
	}
	var b bytes.Buffer
	for _, l := range top {
		b.WriteString(l + "\n")
	}
	fmt.Fprintf(&b, "ListenAddress 127.0.0.1\nPort %d\nHostKey %s\nPidFile %s\n", port, hostKey, filepath.Join(dir, "sshd.pid"))
	b.WriteString(`UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AuthorizedKeysFile none
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
MaxStartups 100:30:200
MaxSessions 50
LogLevel VERBOSE
PrintMotd no
`)
	if caFile != "" {
		b.WriteString("TrustedUserCAKeys " + caFile + "\n")
	}
	for _, l := range match {
		b.WriteString(l + "\n")
	}
	return b.Bytes()
}

// waitReady polls until the port answers with an SSH banner, sshd exits, or
// readyTimeout passes.
func (s *SSHDInstance) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if bannerOK(s.Addr, deadline) {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("sshd exited before it was ready: %v\n%s", s.waitErr, s.Logs())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd on %s not ready after %v\n%s", s.Addr, readyTimeout, s.Logs())
		}
	}
}

// bannerOK reports whether addr accepts a connection and sends an SSH
// version line before deadline.
func bannerOK(addr string, deadline time.Time) bool {
	c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(deadline)
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-")
}

// KnownHostsLine returns the known_hosts line for the sshd:
// "[127.0.0.1]:PORT ssh-ed25519 AAAA...".
func (s *SSHDInstance) KnownHostsLine() string {
	return fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, bytes.TrimSpace(ssh.MarshalAuthorizedKey(s.HostKey)))
}

// Logs returns what sshd wrote to stderr so far (its -e log, including
// connection children), possibly without its oldest part if it grew large.
func (s *SSHDInstance) Logs() string { return s.log.since(0) }

// Close stops sshd and every process it started (connection handlers and
// their sessions), waits for it, and removes Dir. It is idempotent.
func (s *SSHDInstance) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.closeErr = os.RemoveAll(s.Dir)
	})
	return s.closeErr
}

// stop kills sshd and its descendants and waits for sshd.
//
// sshd puts each connection handler in its own session (setsid), so
// killing a process group would miss them. Instead the listener is stopped
// first, so it forks no more, then its process tree is read from /proc while
// the parent links are intact, and every process in it is killed by pid.
func (s *SSHDInstance) stop() {
	pid := s.cmd.Process.Pid
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGSTOP)
	for _, p := range descendants(pid) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	s.cmd.Process.Kill()
	<-s.exited
}

// descendants returns the pids of root's descendants, read from /proc.
func descendants(root int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := make(map[int][]int)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// SSHD starts an sshd for the test (see StartSSHD), stops it in t.Cleanup,
// and logs its output there if the test failed. A missing sshd or ssh-keygen
// skips the test (fails it in CI).
func SSHD(t testing.TB, opts SSHDOptions) *SSHDInstance {
	t.Helper()
	Require(t, "sshd")
	Require(t, "ssh-keygen")
	s, err := StartSSHD(opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			t.Logf("sshd %s log:\n%s", s.Addr, s.Logs())
		}
	})
	return s
}

// shared holds the sshds started by SharedSSHD for the whole test binary.
var shared struct {
	mu      sync.Mutex // guards running and byKey
	running bool       // Run is inside m.Run
	byKey   map[string]*sharedSSHD
}

type sharedSSHD struct {
	once sync.Once
	s    *SSHDInstance
	err  error
}

// SharedSSHD returns the sshd shared by all tests of the binary under key,
// starting it on first use with opts (later calls' opts are ignored). Run
// stops it after all tests, so the package's TestMain must call
// os.Exit(testenv.Run(m)). If the test fails, the cleanup logs what sshd
// wrote during the test (interleaved with parallel tests' lines).
func SharedSSHD(t testing.TB, key string, opts SSHDOptions) *SSHDInstance {
	t.Helper()
	Require(t, "sshd")
	Require(t, "ssh-keygen")
	shared.mu.Lock()
	if !shared.running {
		shared.mu.Unlock()
		t.Fatal("testenv: SharedSSHD needs TestMain to call os.Exit(testenv.Run(m))")
	}
	e := shared.byKey[key]
	if e == nil {
		e = &sharedSSHD{}
		shared.byKey[key] = e
	}
	shared.mu.Unlock()
	e.once.Do(func() { e.s, e.err = StartSSHD(opts) })
	if e.err != nil {
		t.Fatalf("testenv: shared sshd %q: %v", key, e.err)
	}
	off := e.s.log.end()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shared sshd %q (%s) log during this test:\n%s", key, e.s.Addr, e.s.log.since(off))
		}
	})
	return e.s
}

// Run runs the tests and then stops the processes started by Shared*
// functions. Use it as TestMain's body: os.Exit(testenv.Run(m)).
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.running = true
	shared.byKey = make(map[string]*sharedSSHD)
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.running = false
	var errs []error
	for key, e := range shared.byKey {
		if e.s != nil {
			if err := e.s.Close(); err != nil {
				errs = append(errs, fmt.Errorf("stop shared sshd %q: %w", key, err))
			}
		}
	}
	shared.byKey = nil
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// logBuffer keeps a process's output for printing on failure, capped at
// maxLog bytes by dropping the oldest half when full. Offsets count every
// byte ever written, so since() works across drops.
type logBuffer struct {
	mu      sync.Mutex // guards dropped and b
	dropped int64      // bytes discarded from the front
	b       []byte
}

const maxLog = 8 << 20

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > maxLog {
		n := len(l.b) - maxLog/2
		l.b = append(l.b[:0:0], l.b[n:]...)
		l.dropped += int64(n)
	}
	return len(p), nil
}

// end returns the offset just past the last byte written.
func (l *logBuffer) end() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped + int64(len(l.b))
}

// since returns the output from offset off on (or from the oldest kept byte).
func (l *logBuffer) since(off int64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := max(off-l.dropped, 0)
	if i > int64(len(l.b)) {
		return ""
	}
	return string(l.b[i:])
}
