package certs

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// AuditPublicKey reads the public half of dataDir's audit key without
// touching anything; see ReadPublicKey.
func AuditPublicKey(dataDir string) (ed25519.PublicKey, string, error) {
	pk, from, err := ReadPublicKey(dataDir, AuditKeyFile, "audit key")
	if err != nil {
		return nil, from, err
	}
	k, err := auditKey(pk)
	if err != nil {
		return nil, from, fmt.Errorf("%s: %w", from, err)
	}
	return k, from, nil
}

// ReadPublicKey reads the public half of the key file name in dataDir/ca
// (what, e.g. "audit key", names it in errors) without touching anything:
// from name.pub, checked against the private key where that can be read,
// or from the private key alone when the .pub file is missing. It returns
// the file it used. Unlike Open it never creates a key, so showing or
// checking a copied or damaged data directory cannot change it.
func ReadPublicKey(dataDir, name, what string) (ssh.PublicKey, string, error) {
	priv := filepath.Join(dataDir, "ca", name)
	pubPath := priv + ".pub"
	var pub ssh.PublicKey
	data, err := os.ReadFile(pubPath)
	switch {
	case err == nil:
		if pub, err = parseOneKey(data); err != nil {
			return nil, pubPath, fmt.Errorf("%s: %w", pubPath, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, pubPath, fmt.Errorf("read %s: %w", pubPath, err)
	}
	// The private key, where this process may read it, decides: a .pub
	// file that disagrees with it was replaced or damaged.
	data, err = os.ReadFile(priv)
	switch {
	case err != nil && pub != nil:
		return pub, pubPath, nil // e.g. an auditor without access to the private key
	case errors.Is(err, fs.ErrNotExist):
		return nil, priv, fmt.Errorf("no %s in %s (neither %s nor %s.pub): has a bastion run with this data directory?", what, filepath.Join(dataDir, "ca"), name, name)
	case err != nil:
		return nil, priv, fmt.Errorf("read %s: %w", what, err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, priv, fmt.Errorf("parse key %s: %w", priv, err)
	}
	if pub == nil {
		return signer.PublicKey(), priv, nil
	}
	if !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
		return nil, pubPath, fmt.Errorf("%s does not match the private key %s: one of them was replaced", pubPath, priv)
	}
	return pub, pubPath, nil
}

// ParseAuditPublicKey parses an audit public key in authorized_keys form
// ("ssh-ed25519 AAAA... comment"), as audit_ed25519.pub and 'postern ca
// show --audit' print it. Blank lines and # comments are skipped; any other
// line must be that one key: a second key, options or an unreadable line
// are errors, since a wrong pick would fail every signature.
func ParseAuditPublicKey(data []byte) (ed25519.PublicKey, error) {
	pk, err := parseOneKey(data)
	if err != nil {
		return nil, err
	}
	return auditKey(pk)
}

// parseOneKey parses exactly one public key in authorized_keys form,
// skipping blank lines and # comments.
func parseOneKey(data []byte) (ssh.PublicKey, error) {
	var key ssh.PublicKey
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pk, _, options, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("line %d is not an OpenSSH public key: %w", i+1, err)
		}
		if key != nil {
			return nil, fmt.Errorf("line %d: more than one key: give the key alone, as 'postern ca show --audit' prints the audit key", i+1)
		}
		if len(options) > 0 {
			return nil, fmt.Errorf("line %d: options %q before the key: give the key alone", i+1, strings.Join(options, ","))
		}
		if _, ok := pk.(*ssh.Certificate); ok {
			return nil, fmt.Errorf("line %d is a certificate, not a key", i+1)
		}
		key = pk
	}
	if key == nil {
		return nil, errors.New("no key in it: give the key, as 'postern ca show --audit' prints the audit key")
	}
	return key, nil
}

func auditKey(pk ssh.PublicKey) (ed25519.PublicKey, error) {
	if pk.Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("a %s key is not an audit key: want ssh-ed25519", pk.Type())
	}
	return pk.(ssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey), nil
}
