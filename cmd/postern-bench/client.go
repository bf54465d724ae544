package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clientConfigText is an ssh_config with one Host per path. ssh keeps the
// first value it reads for an option, so the per-host blocks come before
// "Host *". ProxyJump starts a second ssh with the same -F file, so the
// relay hop gets the same Ciphers and KexAlgorithms (command-line -o
// options would not reach it).
func clientConfigText(cipher, kex, login, keys, knownHosts string, targetPort, relayPort, plainPort, norecPort, rulesPort, posternPort int, posternKey string) []byte {
	var b bytes.Buffer
	host := func(alias string, port int, user, key string, extra ...string) {
		fmt.Fprintf(&b, "Host %s\n  Port %d\n  User %s\n  IdentityFile %s\n  CertificateFile %s-cert.pub\n", alias, port, user, filepath.Join(keys, key), filepath.Join(keys, key))
		for _, l := range extra {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	fmt.Fprintf(&b, "# written by postern-bench: every connection uses %s\n", cipher)
	host(pathDirect, targetPort, login, "bench")
	host("relay", relayPort, login, "bench")
	host(pathJump, targetPort, login, "bench", "ProxyJump relay")
	host(pathPlain, plainPort, login+"@"+targetName, bastionPlain)
	if norecPort != 0 {
		host(pathNoRec, norecPort, login+"@"+targetName, bastionNoRec)
	}
	if rulesPort != 0 {
		host(pathRules, rulesPort, login+"@"+targetName, bastionRules)
	}
	host(pathPostern, posternPort, login+"@"+targetName, posternKey)
	fmt.Fprintf(&b, `Host *
  HostName 127.0.0.1
  Ciphers %s
`, cipher)
	if kex != "" {
		fmt.Fprintf(&b, "  KexAlgorithms %s\n", kex)
	}
	fmt.Fprintf(&b, `  BatchMode yes
  IdentitiesOnly yes
  IdentityAgent none
  StrictHostKeyChecking yes
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  CheckHostIP no
  UpdateHostKeys no
  GSSAPIAuthentication no
  AddressFamily inet
  ControlMaster no
  ControlPath none
  EscapeChar none
  ConnectTimeout 10
  LogLevel ERROR
`, knownHosts)
	return b.Bytes()
}

// sshCmd returns an ssh command with the config file cfg. It runs in its
// own process group, which is killed whole when ctx ends (ProxyJump starts
// a second ssh) and which dies with this program.
func (e *env) sshCmd(ctx context.Context, cfg string, args ...string) *exec.Cmd {
	return clientCmd(ctx, e.sshBin, append([]string{"-F", cfg}, args...)...)
}

// clientCmd returns a command of an OpenSSH client program (ssh, sftp,
// scp) run the way sshCmd describes.
func clientCmd(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = sshEnv()
	return cmd
}

// sshEnv is this process's environment without the agent socket.
func sshEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") {
			env = append(env, kv)
		}
	}
	return env
}

// reap kills what is left of a finished command's process group (the
// ProxyJump helper, if it outlived its parent).
func reap(cmd *exec.Cmd) {
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// cappedBuffer keeps the first 64 KiB written to it, for error messages.
// It is safe for concurrent use: a command's output copier and its caller
// may both write to it.
type cappedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := 64<<10 - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *cappedBuffer) WriteString(s string) { c.Write([]byte(s)) }

// Bytes is a copy of what the buffer holds.
func (c *cappedBuffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf.Bytes())
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// checkPaths runs `ssh -v HOST true` once on every path of every client
// config in use: it proves each path works before anything is timed, and
// reads which key exchange and ciphers each connection negotiated. A path
// whose connections did not all use the config's cipher (and -kex) is an
// error: the comparison would be meaningless.
func (e *env) checkPaths(ctx context.Context) ([]Negotiated, error) {
	var out []Negotiated
	for _, c := range []*clientConfig{e.aes, e.chacha} {
		if c.cipher == cipherChacha && !e.o.phases["chacha"] {
			continue
		}
		for _, path := range bulkPaths {
			if c.cipher == cipherChacha && (path == pathPlain || path == pathNoRec) || path == pathNoRec && !e.o.phases["bulk"] && !e.o.phases["sftp"] {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, time.Minute)
			var stderr cappedBuffer
			cmd := e.sshCmd(cctx, c.file, "-v", path, "true")
			cmd.Stderr = &stderr
			err := cmd.Run()
			reap(cmd)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("ssh %s (cipher %s): %w\n%s", path, c.cipher, err, stderr.Bytes())
			}
			n := Negotiated{Path: path, Cipher: c.cipher, Hops: parseHops(stderr.String())}
			want := 1
			if path == pathJump {
				want = 2
			}
			if len(n.Hops) != want {
				return nil, fmt.Errorf("ssh -v %s: saw %d key exchanges, want %d:\n%s", path, len(n.Hops), want, stderr.Bytes())
			}
			if err := checkHops(n.Hops, c.cipher, e.o.kex); err != nil {
				return nil, fmt.Errorf("ssh %s %w", path, err)
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// checkHops returns an error unless every connection in hops used cipher
// both ways and, if kex is not "", that key exchange.
func checkHops(hops []Hop, cipher, kex string) error {
	for _, h := range hops {
		if h.ClientServer != cipher || h.ServerClient != cipher || (kex != "" && h.Kex != kex) {
			return fmt.Errorf("negotiated %s %s/%s, want %s %s", h.Kex, h.ClientServer, h.ServerClient, kex, cipher)
		}
	}
	return nil
}

// parseHops reads "debug1: kex: ..." lines of ssh -v, one group per
// connection.
func parseHops(log string) []Hop {
	var hops []Hop
	for _, line := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(line, "debug1: kex: ")
		if !ok {
			continue
		}
		field := func(prefix string) (string, bool) {
			v, ok := strings.CutPrefix(rest, prefix)
			if !ok {
				return "", false
			}
			if f := strings.Fields(v); len(f) > 0 {
				return f[0], true
			}
			return "", true
		}
		if v, ok := field("algorithm: "); ok {
			hops = append(hops, Hop{Kex: v})
			continue
		}
		if len(hops) == 0 {
			continue
		}
		h := &hops[len(hops)-1]
		if v, ok := field("host key algorithm: "); ok {
			h.HostKeyMethod = v
		} else if v, ok := field("server->client cipher: "); ok {
			h.ServerClient = v
		} else if v, ok := field("client->server cipher: "); ok {
			h.ClientServer = v
		}
	}
	return hops
}
