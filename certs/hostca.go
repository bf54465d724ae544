package certs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/crypto/ssh"
)

// HostCertTTL is how long a host certificate the bastion signs itself
// lasts; it signs a fresh one well before that (HostCertSigner).
const HostCertTTL = 365 * 24 * time.Hour

// InitHostCA creates dataDir's host CA if there is none, and returns it.
func InitHostCA(dataDir string) (ssh.Signer, error) {
	return loadOrCreate(filepath.Join(dataDir, "ca", HostCAFile), "postern host CA")
}

// HostCertSigner returns HostKey with a host certificate from HostCA for
// names (the host names users connect to: OpenSSH checks the one typed
// against them, without wildcards), valid from a minute before now for
// HostCertTTL.
func (a *Authority) HostCertSigner(now time.Time, names []string) (ssh.Signer, *ssh.Certificate, error) {
	if a.HostCA == nil {
		return nil, nil, errors.New("no host CA: create one with 'postern ca init --host-ca'")
	}
	if len(names) == 0 {
		return nil, nil, errors.New("no host names for the host certificate")
	}
	cert := &ssh.Certificate{
		Key: a.HostKey.PublicKey(), Serial: randomSerial(), CertType: ssh.HostCert, KeyId: "postern host key", ValidPrincipals: names,
		ValidAfter: uint64(now.Add(-Backdate).Unix()), ValidBefore: uint64(now.Add(HostCertTTL).Unix()),
	}
	if err := cert.SignCert(rand.Reader, a.HostCA); err != nil {
		return nil, nil, fmt.Errorf("sign host certificate: %w", err)
	}
	s, err := ssh.NewCertSigner(cert, a.HostKey)
	return s, cert, err
}
