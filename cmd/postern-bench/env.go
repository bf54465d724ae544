package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/sshdproc"
)

// defaultLogin is the account the benchmark logs in as on the target. It is
// not root on purpose: root's ~/.bashrc on these machines runs `pyenv
// init`, which bash sources for every `ssh HOST cmd` (Debian's bash reads
// ~/.bashrc when sshd starts it) and which costs ~0.6 s per command. A
// fresh account has Debian's /etc/skel/.bashrc, which returns at once for
// non-interactive shells.
const defaultLogin = "posternbench"

// maxConcurrency bounds -concurrency: the target sshd is configured for
// this many connections.
const maxConcurrency = 1000

// targetName is the bastions' name for the target sshd.
const targetName = "t1"

// bastionPrincipal is the principal of the users' certificates.
const bastionPrincipal = "bench"

// Bastion child names. Each has its own data directory and CA keys.
const (
	bastionPlain   = "postern-plain"  // recording and masking off
	bastionNoRec   = "postern-norec"  // masking on, recording off
	bastionFull    = "postern"        // recording and masking (first6last4) on
	bastionChacha  = "postern-chacha" // as postern, offering only chacha20-poly1305
	uploadFileName = "upload.bin"
)

// env is one benchmark environment: the target and relay sshds, the
// bastion children, keys, client configs and the upload file, all in a
// temporary directory. Close stops and removes everything.
type env struct {
	o       *options
	log     io.Writer // progress lines
	dir     string
	sshBin  string
	sftpBin string   // with the sftp phase
	scpBin  string   // with the sftp phase
	devNull *os.File // bulk download output

	target, relay *sshdproc.Instance
	benchCA       ssh.Signer // signs the certificates the target and relay accept for direct use
	direct        ssh.Signer // presents a benchCA certificate for o.login

	bastions map[string]*bastionProc // by bastion name
	users    map[string]ssh.Signer   // by bastion name: presents that bastion's user certificate

	aes, chacha *clientConfig
	upload      string // bulk upload file, o.size bytes

	notes    []string
	profiles []string
}

// clientConfig is an ssh_config file whose Host aliases are the paths, all
// connections of which (the relay hop too) use one cipher.
type clientConfig struct {
	cipher string
	file   string
	// bastion is the bastion behind the "postern" alias.
	bastion string
}

// progress writes one line to the progress log.
func (e *env) progress(format string, args ...any) {
	fmt.Fprintf(e.log, "postern-bench: "+format+"\n", args...)
}

// newEnv starts everything the phases in o need.
func newEnv(ctx context.Context, o *options, log io.Writer) (_ *env, err error) {
	e := &env{o: o, log: log, bastions: make(map[string]*bastionProc), users: make(map[string]ssh.Signer)}
	if e.sshBin, err = exec.LookPath("ssh"); err != nil {
		return nil, fmt.Errorf("find the OpenSSH client (scripts/deps.sh installs it): %w", err)
	}
	if o.phases["sftp"] {
		if e.sftpBin, err = exec.LookPath("sftp"); err != nil {
			return nil, fmt.Errorf("find the OpenSSH sftp client (scripts/deps.sh installs it): %w", err)
		}
		if e.scpBin, err = exec.LookPath("scp"); err != nil {
			return nil, fmt.Errorf("find the OpenSSH scp client (scripts/deps.sh installs it): %w", err)
		}
	}
	if err := ensureUser(o.login); err != nil {
		return nil, err
	}
	if e.dir, err = os.MkdirTemp("", "postern-bench-"); err != nil {
		return nil, fmt.Errorf("create temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.devNull, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0); err != nil {
		return nil, err
	}
	if e.benchCA, err = sshdproc.NewSigner(); err != nil {
		return nil, err
	}

	names := []string{bastionPlain, bastionFull}
	if o.phases["bulk"] || o.phases["sftp"] {
		names = append(names, bastionNoRec)
	}
	if o.phases["chacha"] {
		names = append(names, bastionChacha)
	}
	auths := make(map[string]*certs.Authority)
	trusted := []ssh.PublicKey{e.benchCA.PublicKey()}
	for _, name := range names {
		a, err := certs.Open(filepath.Join(e.dir, name, "data"))
		if err != nil {
			return nil, fmt.Errorf("create CA keys for %s: %w", name, err)
		}
		auths[name] = a
		trusted = append(trusted, a.UpstreamCA.PublicKey())
	}

	e.progress("starting the target and relay sshd")
	// sshd keeps the first MaxSessions it reads, so this overrides the
	// harness's 50. MaxStartups is the exception (the last one wins), so
	// the harness's 100:30:200 stays: concurrency dials at most
	// dialParallelism connections at once, each making one upstream.
	limits := []string{"MaxSessions " + strconv.Itoa(maxConcurrency+50), "UseDNS no"}
	if e.target, err = sshdproc.Start(sshdproc.Options{TrustedUserCAKeys: trusted, Extra: limits}); err != nil {
		return nil, fmt.Errorf("start target sshd: %w", err)
	}
	if e.relay, err = sshdproc.Start(sshdproc.Options{
		TrustedUserCAKeys: []ssh.PublicKey{e.benchCA.PublicKey()},
		Extra:             append([]string{"AllowTcpForwarding yes"}, limits...),
	}); err != nil {
		return nil, fmt.Errorf("start relay sshd: %w", err)
	}

	keys := filepath.Join(e.dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		return nil, err
	}
	if e.direct, err = newCertKey(keys, "bench", func(pub ssh.PublicKey) (*ssh.Certificate, error) {
		return signUser(e.benchCA, pub, o.login)
	}); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable to start bastions: %w", err)
	}
	knownHosts := []string{e.target.KnownHostsLine(), e.relay.KnownHostsLine()}
	ports := make(map[string]int)
	for _, name := range names {
		a := auths[name]
		if e.users[name], err = newCertKey(keys, name, func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			return a.SignUser(pub, certs.UserCertRequest{Principals: []string{bastionPrincipal}, TTL: 24 * time.Hour, KeyID: "postern-bench"})
		}); err != nil {
			return nil, err
		}
		dir := filepath.Join(e.dir, name)
		cfg := filepath.Join(dir, "postern.yaml")
		var ciphers []string
		if name == bastionChacha {
			ciphers = []string{cipherChacha}
		}
		if err := os.WriteFile(cfg, bastionYAML(filepath.Join(dir, "data"), e.target, o.login, name != bastionPlain, ciphers), 0o644); err != nil {
			return nil, err
		}
		profile := ""
		if o.profileDir != "" {
			if profile, err = filepath.Abs(filepath.Join(o.profileDir, name+".pprof")); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
				return nil, err
			}
			e.profiles = append(e.profiles, profile)
		}
		e.progress("starting bastion %s", name)
		b, err := startBastion(ctx, self, name, cfg, name != bastionPlain && name != bastionNoRec, profile, filepath.Join(dir, "bastion.log"))
		if err != nil {
			return nil, err
		}
		e.bastions[name] = b
		b.hostKey = a.HostKey.PublicKey()
		ports[name] = b.port
		knownHosts = append(knownHosts, fmt.Sprintf("[127.0.0.1]:%d %s", b.port, bytes.TrimSpace(ssh.MarshalAuthorizedKey(b.hostKey))))
	}
	kh := filepath.Join(e.dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(strings.Join(knownHosts, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	e.aes = &clientConfig{cipher: cipherAES, file: filepath.Join(e.dir, "ssh_config.aes"), bastion: bastionFull}
	e.chacha = &clientConfig{cipher: cipherChacha, file: filepath.Join(e.dir, "ssh_config.chacha"), bastion: bastionChacha}
	for _, c := range []*clientConfig{e.aes, e.chacha} {
		if c.cipher == cipherChacha && !o.phases["chacha"] {
			continue
		}
		text := clientConfigText(c.cipher, o.kex, o.login, keys, kh, e.target.Port, e.relay.Port, ports[bastionPlain], ports[bastionNoRec], ports[c.bastion], c.bastion)
		if err := os.WriteFile(c.file, text, 0o644); err != nil {
			return nil, err
		}
	}
	if o.phases["bulk"] || o.phases["chacha"] {
		e.upload = filepath.Join(e.dir, uploadFileName)
		if err := writeUploadFile(e.upload, o.size); err != nil {
			return nil, err
		}
	}
	if o.keep {
		e.progress("keeping %s", e.dir)
	}
	return e, nil
}

// Close stops the bastions and sshds and removes the temporary directory
// (unless -keep). It is safe to call more than once.
func (e *env) Close() error {
	errs := []error{e.stopBastions()}
	for _, s := range []*sshdproc.Instance{e.target, e.relay} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	e.target, e.relay = nil, nil
	if e.devNull != nil {
		e.devNull.Close()
		e.devNull = nil
	}
	if e.dir != "" && !e.o.keep {
		errs = append(errs, os.RemoveAll(e.dir))
		e.dir = ""
	}
	return errors.Join(errs...)
}

// stopBastions stops the bastion children, letting them write their
// profiles, and reports the first that failed.
func (e *env) stopBastions() error {
	var errs []error
	for name, b := range e.bastions {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("bastion %s: %w\n%s", name, err, b.logTail()))
		}
		delete(e.bastions, name)
	}
	return errors.Join(errs...)
}

// ensureUser creates the login on the target machine if it is missing and
// it is the default one, with bash as its shell (see defaultLogin).
func ensureUser(name string) error {
	if _, err := user.Lookup(name); err != nil && name != defaultLogin {
		return fmt.Errorf("login %q does not exist on this machine", name)
	}
	if err := sshdproc.EnsureUser(name, "/bin/bash"); err != nil {
		return fmt.Errorf("%w (or pass -login with an existing account)", err)
	}
	return nil
}

// newCertKey writes a fresh ed25519 key to dir/name (0600) and the
// certificate sign returns for it to dir/name-cert.pub, and returns a
// signer that presents the certificate.
func newCertKey(dir, name string, sign func(ssh.PublicKey) (*ssh.Certificate, error)) (ssh.Signer, error) {
	signer, path, err := sshdproc.WriteKey(dir, name)
	if err != nil {
		return nil, err
	}
	cert, err := sign(signer.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("certificate for key %s: %w", name, err)
	}
	if err := os.WriteFile(path+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		return nil, err
	}
	return ssh.NewCertSigner(cert, signer)
}

// signUser signs a day-long user certificate for login with ca.
func signUser(ca ssh.Signer, pub ssh.PublicKey, login string) (*ssh.Certificate, error) {
	return sshdproc.SignUserCert(ca, pub, sshdproc.UserCert{
		Principals: []string{login}, KeyID: "postern-bench", TTL: 24 * time.Hour,
		Extensions: map[string]string{"permit-pty": "", "permit-port-forwarding": ""},
	})
}

// bastionYAML is a Postern config with the one target t1 (the target sshd,
// host key pinned) and one rule letting principal "bench" log in as login.
func bastionYAML(dataDir string, target *sshdproc.Instance, login string, masking bool, ciphers []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# written by postern-bench\nlisten: \"127.0.0.1:0\"\ndata_dir: %q\nlog_level: info\n", dataDir)
	if len(ciphers) > 0 {
		fmt.Fprintf(&b, "ciphers: [%s]\n", strings.Join(ciphers, ", "))
	}
	fmt.Fprintf(&b, "targets:\n  - name: %s\n    address: %q\n    host_key: %q\n    logins: [%s]\n    default_login: %s\n",
		targetName, target.Addr, bytes.TrimSpace(ssh.MarshalAuthorizedKey(target.HostKey)), login, login)
	if !masking {
		b.WriteString("    masking: off\n")
	}
	fmt.Fprintf(&b, "rules:\n  - name: bench\n    principals: [%s]\n    targets: [%s]\n    logins: [%s]\n", bastionPrincipal, targetName, login)
	return b.Bytes()
}

// clientConfigText is an ssh_config with one Host per path. ssh keeps the
// first value it reads for an option, so the per-host blocks come before
// "Host *". ProxyJump starts a second ssh with the same -F file, so the
// relay hop gets the same Ciphers and KexAlgorithms (command-line -o
// options would not reach it).
func clientConfigText(cipher, kex, login, keys, knownHosts string, targetPort, relayPort, plainPort, norecPort, posternPort int, posternKey string) []byte {
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

// writeUploadFile writes size bytes of terminal-like text to path.
func writeUploadFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create upload file: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	line := []byte(bulkLine + "\n")
	for n := int64(0); n < size; n += int64(len(line)) {
		if _, err := w.Write(line[:min(int64(len(line)), size-n)]); err != nil {
			f.Close()
			return fmt.Errorf("write upload file: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write upload file: %w", err)
	}
	return f.Close()
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
