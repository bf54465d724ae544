// Package certs is Postern's certificate authority: it keeps the user CA,
// the upstream CA and the bastion host key, issues user certificates, mints
// the short-lived certificates the bastion presents to targets, and checks
// the user certificates clients present.
package certs

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/mask"
)

// Key file names inside DATA_DIR/ca.
const (
	UserCAFile     = "user_ca"
	UpstreamCAFile = "upstream_ca"
	HostKeyFile    = "host_ed25519"
	AuditKeyFile   = "audit_ed25519"
	// HostCAFile is the optional host CA (ca init --host-ca).
	HostCAFile = "host_ca"
)

// MaxUpstreamTTL caps the validity of a certificate minted for a target.
const MaxUpstreamTTL = 5 * time.Minute

// Authority holds the bastion's signing keys. It is safe for concurrent use;
// its fields are read-only after Open.
type Authority struct {
	// Dir is DATA_DIR/ca.
	Dir string
	// UserCA signs user certificates (ca sign, and OIDC login later).
	UserCA ssh.Signer
	// UpstreamCA signs the certificates the bastion presents to targets,
	// which trust it with TrustedUserCAKeys.
	UpstreamCA ssh.Signer
	// HostKey is the bastion's own SSH host key.
	HostKey ssh.Signer
	// AuditKey signs the audit chain that seals recordings.
	AuditKey ed25519.PrivateKey
	// HostCA, if not nil (ca init --host-ca created it), signs a host
	// certificate for HostKey, which the bastion presents beside the
	// plain key: users may trust the bastion with an @cert-authority
	// line for the CA instead of pinning the key.
	HostCA ssh.Signer
}

// Open loads the keys in dataDir/ca, generating any that are missing
// (ed25519, private files 0600, directory 0700). A private key file that
// group or others may read is refused rather than used.
func Open(dataDir string) (*Authority, error) {
	dir := filepath.Join(dataDir, "ca")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA directory: %w", err)
	}
	a := &Authority{Dir: dir}
	var err error
	if a.UserCA, err = loadOrCreate(filepath.Join(dir, UserCAFile), "postern user CA"); err != nil {
		return nil, err
	}
	if a.UpstreamCA, err = loadOrCreate(filepath.Join(dir, UpstreamCAFile), "postern upstream CA"); err != nil {
		return nil, err
	}
	if a.HostKey, err = loadOrCreate(filepath.Join(dir, HostKeyFile), "postern host key"); err != nil {
		return nil, err
	}
	auditPath := filepath.Join(dir, AuditKeyFile)
	if _, err = loadOrCreate(auditPath, "postern audit key"); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(auditPath)
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", auditPath, err)
	}
	raw, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", auditPath, err)
	}
	k, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s is %T, want ed25519", auditPath, raw)
	}
	a.AuditKey = *k
	hostCA := filepath.Join(dir, HostCAFile)
	if _, err := os.Stat(hostCA); err == nil {
		if a.HostCA, err = loadOrCreate(hostCA, "postern host CA"); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// LoadOrCreateKey loads the ed25519 private key at path, or generates it
// (0600, with path.pub beside it) if there is none.
func LoadOrCreateKey(path, comment string) (ssh.Signer, error) {
	return loadOrCreate(path, comment)
}

func loadOrCreate(path, comment string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return create(path, comment)
	}
	if err != nil {
		return nil, fmt.Errorf("read key %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat key %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key %s is readable by group or others (mode %#o); run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	s, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", path, err)
	}
	return s, nil
}

func create(path, comment string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	// Write to a temporary name and link it into place so that a crash
	// never leaves a half-written key and a concurrent start never
	// overwrites one: os.Link fails if path exists.
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("write key %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(pem.EncodeToMemory(block))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write key %s: %w", tmp, err)
	}
	if err := os.Link(tmp, path); err != nil {
		return nil, fmt.Errorf("install key %s: %w", path, err)
	}
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + comment + "\n"
	if err := os.WriteFile(path+".pub", []byte(pub), 0o644); err != nil {
		return nil, fmt.Errorf("write public key %s.pub: %w", path, err)
	}
	return signer, nil
}

// UserCertRequest describes a user certificate to issue.
type UserCertRequest struct {
	// Principals are the identity's names; at least one is required.
	Principals []string
	// Groups, if any, are carried in the groups@postern extension.
	// Principals and groups must be names without commas, white space
	// or control characters (checkName).
	Groups []string
	// TTL is the validity from now; it must be positive.
	TTL time.Duration
	// KeyID is recorded in the certificate and in every audit record.
	KeyID string
	// SourceAddress, if set, becomes the source-address critical option
	// (comma-separated addresses or CIDR blocks).
	SourceAddress string
	// Now is the issue time; zero means time.Now().
	Now time.Time
	// Serial is the certificate's serial number, allocated by the
	// register of issued certificates; zero means a random one.
	Serial uint64
	// NoPTY leaves out permit-pty: the bastion, like sshd, then refuses
	// the holder a terminal. The zero value grants one.
	NoPTY bool
	// NoPortForwarding leaves out permit-port-forwarding: the bastion
	// then refuses every forward, whatever the policy grants. The zero
	// value permits forwarding where the policy grants it.
	NoPortForwarding bool
	// AgentForwarding adds permit-agent-forwarding: the bastion then
	// relays the holder's agent to targets whose rule allows it. Off by
	// default: whoever is root on the target can use a forwarded agent
	// while the session lasts.
	AgentForwarding bool
}

// GroupsExtension carries an identity's groups, comma separated; SignUser
// refuses a group name with a comma, and Checker.Check a list with an
// empty name.
const GroupsExtension = "groups@postern"

// Backdate is how far before issue time a certificate becomes valid, to
// absorb small clock differences between machines.
const Backdate = time.Minute

// SignUser issues a user certificate for pub.
func (a *Authority) SignUser(pub ssh.PublicKey, req UserCertRequest) (*ssh.Certificate, error) {
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, errors.New("sign user key: key is already a certificate; pass the plain public key")
	}
	if len(req.Principals) == 0 {
		return nil, errors.New("sign user key: at least one principal is required")
	}
	for _, names := range []struct {
		kind string
		list []string
	}{{"principal", req.Principals}, {"group", req.Groups}} {
		for _, n := range names.list {
			if err := checkName(names.kind, n); err != nil {
				return nil, fmt.Errorf("sign user key: %w", err)
			}
		}
	}
	if req.TTL <= 0 {
		return nil, fmt.Errorf("sign user key: ttl must be positive, got %s", req.TTL)
	}
	if req.SourceAddress != "" {
		if err := validSourceAddress(req.SourceAddress); err != nil {
			return nil, fmt.Errorf("sign user key: %w", err)
		}
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	serial := req.Serial
	if serial == 0 {
		serial = randomSerial()
	}
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           req.KeyID,
		ValidPrincipals: req.Principals,
		ValidAfter:      uint64(now.Add(-Backdate).Unix()),
		ValidBefore:     uint64(now.Add(req.TTL).Unix()),
		Permissions: ssh.Permissions{
			CriticalOptions: map[string]string{},
			Extensions:      map[string]string{},
		},
	}
	// X11 forwarding is never granted: the bastion does not offer it.
	if !req.NoPTY {
		cert.Extensions["permit-pty"] = ""
	}
	if !req.NoPortForwarding {
		cert.Extensions["permit-port-forwarding"] = ""
	}
	if req.AgentForwarding {
		cert.Extensions["permit-agent-forwarding"] = ""
	}
	if req.SourceAddress != "" {
		// Stored without spaces: OpenSSH and x/crypto split on ','
		// only.
		cert.CriticalOptions["source-address"] = strings.ReplaceAll(req.SourceAddress, " ", "")
	}
	if len(req.Groups) > 0 {
		cert.Extensions[GroupsExtension] = strings.Join(req.Groups, ",")
	}
	if err := cert.SignCert(rand.Reader, a.UserCA); err != nil {
		return nil, fmt.Errorf("sign user key: %w", err)
	}
	return cert, nil
}

// UpstreamRequest describes the certificate the bastion presents to a
// target for one session.
type UpstreamRequest struct {
	// Login is the account on the target and the certificate's principal.
	Login string
	// KeyID names the user identity and the session ID; sshd logs it.
	KeyID string
	// PortForwarding adds permit-port-forwarding.
	PortForwarding bool
	// AgentForwarding adds permit-agent-forwarding: sshd then accepts
	// the agent request the bastion relays for the user.
	AgentForwarding bool
	// TTL is the validity; zero or more than MaxUpstreamTTL means
	// MaxUpstreamTTL.
	TTL time.Duration
}

// MintUpstream makes a fresh ed25519 key pair and a certificate for it from
// the upstream CA, and returns a signer that presents the certificate. The
// private key never leaves memory.
func (a *Authority) MintUpstream(req UpstreamRequest) (ssh.Signer, *ssh.Certificate, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate upstream key: %w", err)
	}
	key, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	ttl := req.TTL
	if ttl <= 0 || ttl > MaxUpstreamTTL {
		ttl = MaxUpstreamTTL
	}
	// The window [now-30s, now+ttl-30s] is ttl long in all: a target whose
	// clock lags slightly still accepts it, and it never exceeds ttl.
	now := time.Now()
	ext := map[string]string{"permit-pty": ""}
	if req.PortForwarding {
		ext["permit-port-forwarding"] = ""
	}
	if req.AgentForwarding {
		ext["permit-agent-forwarding"] = ""
	}
	cert := &ssh.Certificate{
		Key:             key.PublicKey(),
		Serial:          randomSerial(),
		CertType:        ssh.UserCert,
		KeyId:           req.KeyID,
		ValidPrincipals: []string{req.Login},
		ValidAfter:      uint64(now.Add(-30 * time.Second).Unix()),
		ValidBefore:     uint64(now.Add(ttl - 30*time.Second).Unix()),
		Permissions:     ssh.Permissions{Extensions: ext},
	}
	if err := cert.SignCert(rand.Reader, a.UpstreamCA); err != nil {
		return nil, nil, fmt.Errorf("sign upstream certificate: %w", err)
	}
	signer, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		return nil, nil, fmt.Errorf("upstream cert signer: %w", err)
	}
	return signer, cert, nil
}

// randomSerial is Serial for callers that cannot fail: crypto/rand does
// not fail on Linux.
func randomSerial() uint64 {
	s, err := Serial()
	if err != nil {
		panic(err)
	}
	return s
}

// Serial draws a random certificate serial that is not zero, is below 2^63
// (consumers that read it as signed see it positive) and is never
// card-shaped (mask.CardShaped): a serial the masker took for a card
// number would reach the user, in a revocation notice, and the log as
// asterisks. One draw in ten or so is card-shaped; 64 draws all being so
// is beyond practical reach.
func Serial() (uint64, error) {
	var b [8]byte
	for range 64 {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("draw certificate serial: %w", err)
		}
		s := binary.BigEndian.Uint64(b[:]) &^ (1 << 63)
		if s != 0 && !mask.CardShaped(s) {
			return s, nil
		}
	}
	return 0, errors.New("draw certificate serial: every draw was card-shaped")
}
