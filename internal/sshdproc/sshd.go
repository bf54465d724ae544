package sshdproc

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Options configures Start. The zero value starts an sshd that
// accepts nobody: AuthorizedKeysFile is none and no CA is trusted.
type Options struct {
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

// Instance is a running OpenSSH sshd on 127.0.0.1. It is safe for
// concurrent use; Close stops it.
type Instance struct {
	Addr    string        // "127.0.0.1:PORT"
	Port    int           // TCP port on 127.0.0.1
	HostKey ssh.PublicKey // the sshd's ed25519 host key
	Dir     string        // temporary directory with config, keys and pid file; removed by Close

	cmd     *exec.Cmd
	log     *Buffer
	exited  chan struct{} // closed when cmd.Wait returned
	waitErr error         // set before exited is closed

	closeOnce sync.Once
	closeErr  error
}

// startAttempts bounds retries when another process takes the free port
// between FreePort and sshd's bind.
const startAttempts = 3

// readyTimeout bounds how long Start waits for the port to answer.
const readyTimeout = 10 * time.Second

// Start starts /usr/sbin/sshd -D -e in a fresh temporary directory with
// its own ed25519 host key, listening on a free port of 127.0.0.1, and waits
// until it answers with an SSH banner. The caller must Close it. Tests
// use testenv.SSHD or testenv.SharedSSHD, which register the cleanup.
func Start(opts Options) (*Instance, error) {
	sshd, err := LookPath("sshd")
	if err != nil {
		return nil, err
	}
	keygen, err := LookPath("ssh-keygen")
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
	s, err := start(sshd, keygen, dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func start(sshd, keygen, dir string, opts Options) (*Instance, error) {
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
		port, err := FreePort()
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		cfg := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfg, sshdConfig(dir, port, hostKeyPath, caFile, opts.Extra), 0o644); err != nil {
			return nil, fmt.Errorf("write sshd_config: %w", err)
		}
		s := &Instance{
			Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Port:    port,
			HostKey: hostKey,
			Dir:     dir,
			log:     &Buffer{Max: maxLog},
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

// sshdConfig renders a private sshd_config for a loopback test server:
// its own port, host key, PID file and user CA, no PAM, no passwords.
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
func (s *Instance) waitReady() error {
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
func (s *Instance) KnownHostsLine() string {
	return fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, bytes.TrimSpace(ssh.MarshalAuthorizedKey(s.HostKey)))
}

// Logs returns what sshd wrote to stderr so far (its -e log, including
// connection children), possibly without its oldest part if it grew large.
func (s *Instance) Logs() string { return s.log.Since(0) }

// LogOffset is where the log ends now; LogsSince(off) returns what sshd
// wrote after it (for one test's share of a shared sshd's log).
func (s *Instance) LogOffset() int64 { return s.log.End() }

// LogsSince returns what sshd wrote from offset off on (see LogOffset).
func (s *Instance) LogsSince(off int64) string { return s.log.Since(off) }

// Close stops sshd and every process it started (connection handlers and
// their sessions), waits for it, and removes Dir. It is idempotent.
func (s *Instance) Close() error {
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
func (s *Instance) stop() {
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

// Pid is the process ID of the listening sshd, the parent of the
// processes it starts for each connection.
func (s *Instance) Pid() int { return s.cmd.Process.Pid }
