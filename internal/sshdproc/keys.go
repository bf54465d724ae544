package sshdproc

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
)

// NewSigner returns a fresh in-memory ed25519 signer (a CA, host or user
// key).
func NewSigner() (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}

// WriteKey generates an ed25519 key pair in dir: dir/name holds the
// OpenSSH private key (mode 0600, no passphrase) and dir/name.pub the
// public key. It returns the signer and the private key's path.
func WriteKey(dir, name string) (ssh.Signer, string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, "", fmt.Errorf("marshal private key: %w", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return nil, "", err
	}
	return signer, path, nil
}

// UserCert describes a user certificate for SignUserCert. The zero value
// is valid for five minutes, has key ID "testenv" and the permit-pty
// extension, and no principals (which x/crypto refuses to sign).
type UserCert struct {
	Principals []string
	KeyID      string        // "": "testenv"
	TTL        time.Duration // 0: five minutes; valid from a minute ago
	// Extensions replace the default {permit-pty} when not nil.
	Extensions map[string]string
	// Edit, if not nil, changes the certificate before it is signed (to
	// make a bad one).
	Edit func(*ssh.Certificate)
}

// SignUserCert signs a user certificate for pub with ca, as req describes.
func SignUserCert(ca ssh.Signer, pub ssh.PublicKey, req UserCert) (*ssh.Certificate, error) {
	now := time.Now()
	ttl, id, ext := req.TTL, req.KeyID, req.Extensions
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	if id == "" {
		id = "testenv"
	}
	if ext == nil {
		ext = map[string]string{"permit-pty": ""}
	}
	cert := &ssh.Certificate{
		Key:             pub,
		CertType:        ssh.UserCert,
		KeyId:           id,
		ValidPrincipals: req.Principals,
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(ttl).Unix()),
		Permissions:     ssh.Permissions{Extensions: ext},
	}
	if req.Edit != nil {
		req.Edit(cert)
	}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return cert, nil
}
