package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/sshdproc"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// dest is what every client connects as: login posternclients on target
// t1, through the bastion on loopback (the port is given separately). The
// login's shell is /bin/sh, so an exec costs what the bastion adds, not
// what this machine's root dotfiles run at every start of bash.
const (
	login  = "posternclients"
	target = "t1"
	dest   = login + "@" + target + "@127.0.0.1"
)

// ensureLogin creates the target login once: parallel tests running
// useradd at the same time would race on /etc/passwd.
var ensureLogin = sync.OnceValue(func() error { return sshdproc.EnsureUser(login, "/bin/sh") })

// env is one Postern bastion in the test binary, configured from YAML as
// an operator writes it, in front of a real OpenSSH sshd (target t1, login
// posternclients, the target's default masking of card numbers). Its
// cleanup is registered with the test that started it.
type env struct {
	dir        string // the test's temporary directory
	auth       *certs.Authority
	sshd       *testenv.SSHDInstance
	port       int             // the bastion's port on 127.0.0.1
	knownHosts string          // an OpenSSH known_hosts file pinning the bastion's host key
	hostKeyFP  string          // SHA256:… of the bastion's host key, as PuTTY's -hostkey takes it
	logs       *testenv.Buffer // the bastion's JSON log, audit records included
	key        string          // ed25519 key for principal alice; KEY-cert.pub beside it
	extraYAML  string          // top-level config lines this bastion was started with
	configPath string          // the YAML file it was parsed from
}

// start starts a target sshd and a bastion in front of it, whose config
// file is the standard one plus extraYAML (top-level keys, e.g. a ciphers
// line), and makes a key with an alice certificate.
func start(t testing.TB, extraYAML string) *env {
	t.Helper()
	testenv.RequireRoot(t, "creating the target login")
	if err := ensureLogin(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	auth, err := certs.Open(filepath.Join(dir, "ca-data"))
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{auth.UpstreamCA.PublicKey()}})
	e := &env{dir: dir, auth: auth, sshd: sshd}
	e = e.serve(t, extraYAML)
	e.key = e.userKey(t, "alice", "ed25519")
	return e
}

// serve starts another bastion with the same authority and target as e,
// configured with extraYAML instead of e's, and returns it; its data
// directory and log are its own.
func (e *env) serve(t testing.TB, extraYAML string) *env {
	t.Helper()
	b := &env{dir: e.dir, auth: e.auth, sshd: e.sshd, key: e.key, logs: &testenv.Buffer{}, extraYAML: extraYAML}
	cdir, err := os.MkdirTemp(e.dir, "bastion-")
	if err != nil {
		t.Fatal(err)
	}
	b.configPath = filepath.Join(cdir, "postern.yaml")
	yaml := b.yaml(filepath.Join(cdir, "data"))
	if err := os.WriteFile(b.configPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(b.configPath, []byte(yaml))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yaml, err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := recorder.OpenStore(cfg.DataDir, recorder.Options{Key: e.auth.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := bastion.New(cfg.Bastion(e.auth, store, log))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
		store.Close()
		if t.Failed() {
			t.Logf("bastion (config %s) log:\n%s", b.configPath, b.logs.String())
		}
	})
	b.port = l.Addr().(*net.TCPAddr).Port
	hostKey := e.auth.HostKey.PublicKey()
	b.hostKeyFP = ssh.FingerprintSHA256(hostKey)
	b.knownHosts = filepath.Join(cdir, "known_hosts")
	line := fmt.Sprintf("[127.0.0.1]:%d %s", b.port, ssh.MarshalAuthorizedKey(hostKey))
	if err := os.WriteFile(b.knownHosts, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// yaml is the bastion's config file: one target, the sshd, reachable by
// principal alice as the login, with the defaults for everything else (AES-GCM
// only, card numbers masked, sftp and scp granted), plus extraYAML.
func (e *env) yaml(dataDir string) string {
	hostKey := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.sshd.HostKey)))
	return fmt.Sprintf(`data_dir: %s
%s
targets:
  - name: %s
    address: %s
    host_key: %q
    logins: [%s]
rules:
  - name: clients
    principals: [alice]
    targets: [%s]
    logins: [%s]
`, dataDir, e.extraYAML, target, e.sshd.Addr, hostKey, login, target, login)
}

// userKey makes a key pair of type typ ("ed25519", "ecdsa", "rsa") with
// ssh-keygen in the test's directory, named name, and an alice
// certificate for it in NAME-cert.pub. It returns the private key's path.
func (e *env) userKey(t testing.TB, name, typ string) string {
	t.Helper()
	keygen := testenv.Require(t, "ssh-keygen")
	path := filepath.Join(e.dir, name)
	args := []string{"-q", "-t", typ, "-N", "", "-C", name, "-f", path}
	if typ == "rsa" {
		// The default 3072 bits can take half a minute on a busy
		// machine; the size is not what is tested.
		args = append(args, "-b", "2048")
	}
	if r := testenv.Cmd(t, time.Minute, nil, keygen, args...); r.ExitCode != 0 {
		t.Fatalf("ssh-keygen -t %s: %s", typ, r.Stderr)
	}
	data, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := e.auth.SignUser(pub, certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, KeyID: "clients-" + name})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WriteCert(t, path+"-cert.pub", cert)
	return path
}

// sshArgs are the OpenSSH client's options to reach the bastion with key
// (and its certificate), before the destination; ssh takes the port as
// -p, so it is last.
func (e *env) sshArgs(key string) []string {
	return append(testenv.ClientOpts{Identity: key, KnownHosts: e.knownHosts}.Options(), "-p", strconv.Itoa(e.port))
}

// audits returns the bastion's audit records of event, decoded.
func (e *env) audits(event string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(e.logs.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["audit"] == true && m["event"] == event {
			out = append(out, m)
		}
	}
	return out
}

// writeFile writes data to dir/name and returns the path.
func writeFile(t testing.TB, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// remoteDir returns a new temporary directory that the target login owns:
// the target is this machine, so the test reads what clients put there.
func remoteDir(t testing.TB) string {
	t.Helper()
	// Not t.TempDir, whose parent only root may enter.
	dir, err := os.MkdirTemp("", "postern-clients-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	u, err := user.Lookup(login)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}
