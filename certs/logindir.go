package certs

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Files of a login directory (~/.postern).
const (
	LoginKeyFile   = "id_ed25519" // the generated key; .pub and -cert.pub beside it
	LoginStateFile = "login.json"
	SSHConfigFile  = "ssh_config"
	KnownHostsFile = "known_hosts"
)

// LoginKey is the key a login certifies.
type LoginKey struct {
	// Private is the raw private key (ed25519.PrivateKey, *rsa.PrivateKey,
	// …), or nil when the key file is passphrase-protected: it then
	// cannot be added to an agent from here.
	Private any
	// Public is the public key.
	Public ssh.PublicKey
	// Path is the user's key file (--key); empty for a generated key.
	Path string
}

// GenerateLoginKey makes a fresh ed25519 key, in memory.
func GenerateLoginKey() (*LoginKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	p, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return &LoginKey{Private: priv, Public: p}, nil
}

// LoadLoginKey reads the user's private key file path. A passphrase-
// protected key is used through path.pub (the private half stays locked).
func LoadLoginKey(path string) (*LoginKey, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	var pm *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &pm):
		pub := pm.PublicKey
		if pub == nil {
			if pub, err = readPublicKey(abs + ".pub"); err != nil {
				return nil, fmt.Errorf("key %s is passphrase-protected and %s.pub cannot be used: %w", abs, abs, err)
			}
		}
		return &LoginKey{Public: pub, Path: abs}, nil
	case err != nil:
		return nil, fmt.Errorf("key %s is not an OpenSSH private key: %w", abs, err)
	}
	signer, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", abs, err)
	}
	return &LoginKey{Private: raw, Public: signer.PublicKey(), Path: abs}, nil
}

func readPublicKey(path string) (ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseOneKey(data)
}

// LoginState is DIR/login.json: what the last login set up, so that the
// next one, status and logout know it.
type LoginState struct {
	// URL is the bastion API's base; kept after logout.
	URL string `json:"url"`
	// The fields below are empty when logged out.
	// KeyFile is the private key ssh uses; for an agent-only login it is
	// the public key, which makes ssh pick the agent's key.
	KeyFile string `json:"key_file,omitempty"`
	// CertFile is the certificate.
	CertFile string `json:"certificate_file,omitempty"`
	// Generated says KeyFile (and KeyFile.pub) are the login's own:
	// logout removes them. False for --key.
	Generated bool `json:"generated_key,omitempty"`
	// AgentOnly says the private key exists only in ssh-agent.
	AgentOnly bool   `json:"agent_only,omitempty"`
	SSHHost   string `json:"ssh_host,omitempty"`
	SSHPort   int    `json:"ssh_port,omitempty"`
}

// LoginDir is the directory `postern login` writes to, mode 0700.
type LoginDir struct{ Path string }

// OpenLoginDir creates path (0700) if needed and refuses one that group
// or others may write, or that another user owns (as OpenSSH's StrictModes
// does for ~/.ssh): whoever can write it can replace the key ssh uses, its
// owner can read it. Each directory above it must belong to the user or
// root and be writable by no one else, unless sticky (like /tmp): else
// someone could rename it away and put theirs in its place.
func OpenLoginDir(path string) (*LoginDir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := checkAbove(filepath.Dir(abs)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", abs, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", abs)
	}
	if uid, ok := fileOwner(st); ok && uid != os.Geteuid() {
		return nil, fmt.Errorf("%s is owned by uid %d, not by you (uid %d): its owner could read or replace the key ssh uses; use a directory of your own", real, uid, os.Geteuid())
	}
	if st.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s is writable by group or others (mode %#o): they could replace the key ssh uses; run chmod 700 %s", abs, st.Mode().Perm(), abs)
	}
	if err := checkAbove(filepath.Dir(real)); err != nil {
		return nil, err
	}
	return &LoginDir{Path: abs}, nil
}

func (d *LoginDir) file(name string) string { return filepath.Join(d.Path, name) }

// holds reports whether path names a file directly in the directory
// (however the directory's path is spelt).
func (d *LoginDir) holds(path string) bool {
	if !filepath.IsAbs(path) {
		return false
	}
	if filepath.Dir(path) == d.Path {
		return true
	}
	a, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return false
	}
	b, err := os.Stat(d.Path)
	return err == nil && os.SameFile(a, b)
}

// State reads login.json; a missing file is the zero state.
func (d *LoginDir) State() (*LoginState, error) {
	var st LoginState
	data, err := os.ReadFile(d.file(LoginStateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%s is damaged (%v): delete it, then log in again", d.file(LoginStateFile), err)
	}
	// Logout removes the certificate, and a generated key: they must be
	// the login's own files, in this directory.
	ok := st.CertFile == "" || d.holds(st.CertFile) && strings.HasSuffix(st.CertFile, "-cert.pub")
	if st.Generated {
		base := filepath.Base(st.KeyFile)
		ok = ok && d.holds(st.KeyFile) && (base == LoginKeyFile || base == LoginKeyFile+".pub")
	}
	if !ok {
		return nil, fmt.Errorf("%s is damaged (it names files outside %s that login did not write): delete it, then log in again", d.file(LoginStateFile), d.Path)
	}
	return &st, nil
}

// Certificate reads the state's certificate; nil if logged out.
func (d *LoginDir) Certificate(st *LoginState) (*ssh.Certificate, error) {
	if st.CertFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(st.CertFile)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", st.CertFile, err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("%s holds a key, not a certificate", st.CertFile)
	}
	return cert, nil
}

// TimeLeft is how long cert stays valid after now (negative once expired).
func TimeLeft(cert *ssh.Certificate, now time.Time) time.Duration {
	return certTime(cert.ValidBefore).Sub(now)
}

// CertValidBefore is the end of cert's validity.
func CertValidBefore(cert *ssh.Certificate) time.Time { return certTime(cert.ValidBefore) }

// Saved is what SaveLogin writes: the outcome of a login.
type Saved struct {
	URL  string
	Info *LoginInfo
	Cert *ssh.Certificate
	Key  *LoginKey
	// AgentOnly: the private key is not written (it goes to ssh-agent).
	AgentOnly bool
}

// SaveLogin writes a login's files, each atomically and 0600: the
// generated key (unless agent-only: then only its .pub), the certificate,
// known_hosts, ssh_config and login.json, in that order, so a failure
// leaves no state that names a missing file.
func (d *LoginDir) SaveLogin(s Saved) (*LoginState, error) {
	st := &LoginState{URL: s.URL, SSHHost: s.Info.SSHHost, SSHPort: s.Info.SSHPort, AgentOnly: s.AgentOnly}
	switch {
	case s.Key.Path != "":
		st.KeyFile = s.Key.Path
		st.CertFile = d.file(filepath.Base(s.Key.Path) + "-cert.pub")
	case s.AgentOnly:
		st.KeyFile = d.file(LoginKeyFile + ".pub")
		st.Generated = true
		st.CertFile = d.file(LoginKeyFile + "-cert.pub")
		// A stale private key of an earlier login must not linger.
		if err := removeIfExists(d.file(LoginKeyFile)); err != nil {
			return nil, err
		}
	default:
		st.KeyFile = d.file(LoginKeyFile)
		st.Generated = true
		st.CertFile = d.file(LoginKeyFile + "-cert.pub")
		block, err := ssh.MarshalPrivateKey(s.Key.Private, "postern login "+s.URL)
		if err != nil {
			return nil, fmt.Errorf("marshal key: %w", err)
		}
		if err := writeFileAtomic(st.KeyFile, pem.EncodeToMemory(block)); err != nil {
			return nil, err
		}
	}
	if st.Generated {
		if err := writeFileAtomic(d.file(LoginKeyFile+".pub"), ssh.MarshalAuthorizedKey(s.Key.Public)); err != nil {
			return nil, err
		}
	}
	cfg, err := sshConfig(st, d.file(KnownHostsFile))
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{
		{st.CertFile, ssh.MarshalAuthorizedKey(s.Cert)},
		{d.file(KnownHostsFile), s.Info.knownHostsFile()},
		{d.file(SSHConfigFile), cfg},
	} {
		if err := writeFileAtomic(f.path, f.data); err != nil {
			return nil, err
		}
	}
	return st, d.writeState(st)
}

func (d *LoginDir) writeState(st *LoginState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(d.file(LoginStateFile), append(data, '\n'))
}

// sshConfig renders the Host block that makes plain ssh use the login.
func sshConfig(st *LoginState, knownHosts string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by 'postern login' for %s; 'postern logout' removes it.\n", st.URL)
	fmt.Fprintf(&b, "Host %s\n", st.SSHHost)
	fmt.Fprintf(&b, "    HostName %s\n", st.SSHHost)
	fmt.Fprintf(&b, "    Port %d\n", st.SSHPort)
	for _, kv := range [][2]string{
		{"IdentityFile", st.KeyFile},
		{"CertificateFile", st.CertFile},
		{"UserKnownHostsFile", knownHosts},
	} {
		v, err := configPath(kv[1])
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "    %s %s\n", kv[0], v)
	}
	b.WriteString("    IdentitiesOnly yes\n")
	b.WriteString("    StrictHostKeyChecking yes\n")
	return b.Bytes(), nil
}

// configPath quotes a path for ssh_config: '%' starts a token there
// (ssh_config(5), TOKENS), white space ends an argument unless quoted.
func configPath(p string) (string, error) {
	for _, r := range p {
		if r < ' ' || r == '"' || r == 0x7f {
			return "", fmt.Errorf("path %q cannot be written into ssh_config (a quote or control character): use --dir elsewhere", p)
		}
	}
	p = strings.ReplaceAll(p, "%", "%%")
	if strings.ContainsAny(p, " \t#") {
		p = `"` + p + `"`
	}
	return p, nil
}

// files lists the files SaveLogin wrote for st (never a --key file).
func (d *LoginDir) files(st *LoginState) []string {
	if st.CertFile == "" {
		return nil
	}
	files := []string{st.CertFile, d.file(SSHConfigFile), d.file(KnownHostsFile)}
	if st.Generated {
		files = append(files, d.file(LoginKeyFile), d.file(LoginKeyFile+".pub"))
	}
	return files
}

// RemoveStale removes the files of an earlier login old that the current
// one, cur, no longer uses (a certificate for another --key, a generated
// key replaced by --key).
func (d *LoginDir) RemoveStale(old, cur *LoginState) error {
	keep := map[string]bool{}
	for _, f := range d.files(cur) {
		keep[f] = true
	}
	if cur.AgentOnly {
		keep[d.file(LoginKeyFile)] = false
	}
	for _, f := range d.files(old) {
		if !keep[f] {
			if err := removeIfExists(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// Logout removes the files SaveLogin wrote (never a --key file) and
// keeps only the URL in login.json. It returns the paths removed.
func (d *LoginDir) Logout(st *LoginState) ([]string, error) {
	var removed []string
	for _, f := range d.files(st) {
		err := os.Remove(f)
		switch {
		case err == nil:
			removed = append(removed, f)
		case !errors.Is(err, fs.ErrNotExist):
			return removed, fmt.Errorf("remove %s: %w", f, err)
		}
	}
	return removed, d.writeState(&LoginState{URL: st.URL})
}
