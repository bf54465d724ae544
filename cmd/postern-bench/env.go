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
	bastionRules   = "postern-rules"  // as postern, with an approval rule in scope
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
	if err := e.findClients(); err != nil {
		return nil, err
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
	if o.phases["shell"] {
		names = append(names, bastionRules)
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
	if err := e.startSSHDs(trusted); err != nil {
		return nil, err
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
	ports := make(map[string]int)
	for _, name := range names {
		if ports[name], err = e.startBastion(ctx, name, auths[name], keys); err != nil {
			return nil, err
		}
	}
	if err := e.writeClientConfigs(keys, ports); err != nil {
		return nil, err
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

// findClients finds the OpenSSH client programs the phases use.
func (e *env) findClients() error {
	var err error
	if e.sshBin, err = exec.LookPath("ssh"); err != nil {
		return fmt.Errorf("find the OpenSSH client (scripts/deps.sh installs it): %w", err)
	}
	if e.o.phases["sftp"] {
		if e.sftpBin, err = exec.LookPath("sftp"); err != nil {
			return fmt.Errorf("find the OpenSSH sftp client (scripts/deps.sh installs it): %w", err)
		}
		if e.scpBin, err = exec.LookPath("scp"); err != nil {
			return fmt.Errorf("find the OpenSSH scp client (scripts/deps.sh installs it): %w", err)
		}
	}
	return nil
}

// startSSHDs starts the target sshd, which trusts the bench CA and the
// bastions' upstream CAs (trusted), and the relay, which trusts the bench
// CA.
func (e *env) startSSHDs(trusted []ssh.PublicKey) error {
	e.progress("starting the target and relay sshd")
	// sshd keeps the first MaxSessions it reads, so this overrides the
	// harness's 50. MaxStartups is the exception (the last one wins), so
	// the harness's 100:30:200 stays: concurrency dials at most
	// dialParallelism connections at once, each making one upstream.
	limits := []string{"MaxSessions " + strconv.Itoa(maxConcurrency+50), "UseDNS no"}
	var err error
	if e.target, err = sshdproc.Start(sshdproc.Options{TrustedUserCAKeys: trusted, Extra: limits}); err != nil {
		return fmt.Errorf("start target sshd: %w", err)
	}
	if e.relay, err = sshdproc.Start(sshdproc.Options{
		TrustedUserCAKeys: []ssh.PublicKey{e.benchCA.PublicKey()},
		Extra:             append([]string{"AllowTcpForwarding yes"}, limits...),
	}); err != nil {
		return fmt.Errorf("start relay sshd: %w", err)
	}
	return nil
}

// startBastion writes the config of bastion name (CA keys in a) and its
// user's key and certificate into keys, starts it as a child process, and
// returns its port.
func (e *env) startBastion(ctx context.Context, name string, a *certs.Authority, keys string) (int, error) {
	var err error
	if e.users[name], err = newCertKey(keys, name, func(pub ssh.PublicKey) (*ssh.Certificate, error) {
		return a.SignUser(pub, certs.UserCertRequest{Principals: []string{bastionPrincipal}, TTL: 24 * time.Hour, KeyID: "postern-bench"})
	}); err != nil {
		return 0, err
	}
	dir := filepath.Join(e.dir, name)
	cfg := filepath.Join(dir, "postern.yaml")
	var ciphers []string
	if name == bastionChacha {
		ciphers = []string{cipherChacha}
	}
	if err := os.WriteFile(cfg, bastionYAML(filepath.Join(dir, "data"), e.target, e.o.login, name != bastionPlain, name == bastionRules, ciphers), 0o644); err != nil {
		return 0, err
	}
	profile := ""
	if e.o.profileDir != "" {
		if profile, err = filepath.Abs(filepath.Join(e.o.profileDir, name+".pprof")); err != nil {
			return 0, err
		}
		if err := os.MkdirAll(e.o.profileDir, 0o755); err != nil {
			return 0, err
		}
		e.profiles = append(e.profiles, profile)
	}
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find own executable to start bastions: %w", err)
	}
	e.progress("starting bastion %s", name)
	b, err := startBastion(ctx, self, name, cfg, name != bastionPlain && name != bastionNoRec, profile, filepath.Join(dir, "bastion.log"))
	if err != nil {
		return 0, err
	}
	e.bastions[name] = b
	b.hostKey = a.HostKey.PublicKey()
	return b.port, nil
}

// writeClientConfigs writes known_hosts for the sshds and bastions and the
// ssh_config of each cipher in use; ports are the bastions' by name.
func (e *env) writeClientConfigs(keys string, ports map[string]int) error {
	knownHosts := []string{e.target.KnownHostsLine(), e.relay.KnownHostsLine()}
	for _, b := range e.bastions {
		knownHosts = append(knownHosts, fmt.Sprintf("[127.0.0.1]:%d %s", b.port, bytes.TrimSpace(ssh.MarshalAuthorizedKey(b.hostKey))))
	}
	kh := filepath.Join(e.dir, "known_hosts")
	if err := os.WriteFile(kh, []byte(strings.Join(knownHosts, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	e.aes = &clientConfig{cipher: cipherAES, file: filepath.Join(e.dir, "ssh_config.aes"), bastion: bastionFull}
	e.chacha = &clientConfig{cipher: cipherChacha, file: filepath.Join(e.dir, "ssh_config.chacha"), bastion: bastionChacha}
	for _, c := range []*clientConfig{e.aes, e.chacha} {
		if c.cipher == cipherChacha && !e.o.phases["chacha"] {
			continue
		}
		text := clientConfigText(c.cipher, e.o.kex, e.o.login, keys, kh, e.target.Port, e.relay.Port, ports[bastionPlain], ports[bastionNoRec], ports[bastionRules], ports[c.bastion], c.bastion)
		if err := os.WriteFile(c.file, text, 0o644); err != nil {
			return err
		}
	}
	return nil
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

// benchLimits lift the per-identity and per-source connection limits above
// anything the phases open.
const benchLimits = "limits:\n  max_startups: \"2048:30:4096\"\n  max_startups_per_source: 2048\n  max_connections: 4096\n  max_connections_per_identity: 4096\n"

// bastionYAML is a Postern config with the one target t1 (the target sshd,
// host key pinned) and one rule letting principal "bench" log in as login;
// with rules, also an approval rule holding any rm for group ops.
func bastionYAML(dataDir string, target *sshdproc.Instance, login string, masking, rules bool, ciphers []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# written by postern-bench\nlisten: \"127.0.0.1:0\"\ndata_dir: %q\nlog_level: info\n", dataDir)
	if len(ciphers) > 0 {
		fmt.Fprintf(&b, "ciphers: [%s]\n", strings.Join(ciphers, ", "))
	}
	// Every client of the bench is one identity from one address, opening
	// up to hundreds of connections at once (concurrency, soak): the
	// connection limits' defaults would refuse most of them.
	b.WriteString(benchLimits)
	fmt.Fprintf(&b, "targets:\n  - name: %s\n    address: %q\n    host_key: %q\n    logins: [%s]\n    default_login: %s\n",
		targetName, target.Addr, bytes.TrimSpace(ssh.MarshalAuthorizedKey(target.HostKey)), login, login)
	if !masking {
		b.WriteString("    masking: off\n")
	}
	fmt.Fprintf(&b, "rules:\n  - name: bench\n    principals: [%s]\n    targets: [%s]\n    logins: [%s]\n", bastionPrincipal, targetName, login)
	if rules {
		b.WriteString("approvals:\n  - name: bench-rm\n    match: {commands: [rm]}\n    action: approve\n    approvers: [ops]\n")
	}
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
