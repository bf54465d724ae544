package bastion

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/postern/postern/certs"
)

// upstreamError is a failure to reach a target, with the line the user sees.
type upstreamError struct {
	msg string
	err error
}

func (e *upstreamError) Error() string       { return e.err.Error() }
func (e *upstreamError) Unwrap() error       { return e.err }
func (e *upstreamError) UserMessage() string { return e.msg }

// HostKeyError is a target presenting a host key that its configuration does
// not vouch for.
type HostKeyError struct {
	Target      string
	Fingerprint string // SHA256 fingerprint of the key presented
	Err         error
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("target %s host key %s not trusted: %v", e.Target, e.Fingerprint, e.Err)
}

func (e *HostKeyError) Unwrap() error { return e.Err }

// dial connects to the grant's target as the grant's login with a freshly
// minted certificate whose key ID names the identity and the session.
func (c *conn) dial() (*ssh.Client, error) {
	g := c.grant
	t := g.Target
	signer, cert, err := c.s.cfg.Authority.MintUpstream(certs.UpstreamRequest{
		Login:          g.Login,
		KeyID:          fmt.Sprintf("postern session=%s user=%s serial=%d", c.id, logSafe(c.identity.Name()), c.identity.Serial),
		PortForwarding: g.PortForwarding && permits(c.cert, permitPortForwarding),
	})
	if err != nil {
		return nil, &upstreamError{msg: "postern: internal error; the session was not started", err: err}
	}
	hostKeyCallback, algos, err := hostKeyChecker(t)
	if err != nil {
		return nil, &upstreamError{msg: "postern: target " + t.Name + " is misconfigured on the bastion", err: err}
	}
	cfg := &ssh.ClientConfig{
		User:              g.Login,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   hostKeyCallback,
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-Postern",
		Timeout:           c.s.cfg.DialTimeout,
		Config:            c.s.sshConfig(),
	}
	c.log.Debug("dialing target", "address", t.Address, "upstream_serial", cert.Serial)
	d := net.Dialer{Timeout: c.s.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.Dial("tcp", t.Address)
	if err != nil {
		return nil, &upstreamError{msg: "postern: cannot connect to target " + t.Name, err: err}
	}
	nc.SetDeadline(time.Now().Add(c.s.cfg.DialTimeout))
	uc, chans, reqs, err := ssh.NewClientConn(nc, t.Address, cfg)
	if err != nil {
		nc.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, &upstreamError{msg: "postern: target " + t.Name + " presented a host key the bastion does not trust; session refused (tell the bastion administrator)", err: err}
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, &upstreamError{msg: "postern: target " + t.Name + " refused login " + g.Login, err: err}
		}
		return nil, &upstreamError{msg: "postern: SSH to target " + t.Name + " failed", err: err}
	}
	nc.SetDeadline(time.Time{})
	// The target has no business opening channels to the bastion (agent,
	// X11, remote forwarding are never requested); with no handlers
	// registered, the Client rejects them all.
	return ssh.NewClient(uc, chans, reqs), nil
}

// hostKeyChecker returns the callback that verifies t's host key, and the
// host key algorithms to ask for so that the target presents the kind of
// key the check can verify.
func hostKeyChecker(t *Target) (ssh.HostKeyCallback, []string, error) {
	wrap := func(cb ssh.HostKeyCallback) ssh.HostKeyCallback {
		return func(host string, remote net.Addr, key ssh.PublicKey) error {
			if err := cb(host, remote, key); err != nil {
				return &HostKeyError{Target: t.Name, Fingerprint: ssh.FingerprintSHA256(key), Err: err}
			}
			return nil
		}
	}
	switch {
	case t.HostKey != nil:
		want := t.HostKey.Marshal()
		return wrap(func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if !bytes.Equal(key.Marshal(), want) {
				return fmt.Errorf("does not match pinned key %s", ssh.FingerprintSHA256(t.HostKey))
			}
			return nil
		}), algorithmsFor(t.HostKey.Type()), nil
	case t.HostCA != nil:
		want := t.HostCA.Marshal()
		checker := &ssh.CertChecker{
			IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
				return bytes.Equal(auth.Marshal(), want)
			},
		}
		return wrap(checker.CheckHostKey), certAlgorithms, nil
	case t.KnownHostsFile != "":
		cb, err := knownhosts.New(t.KnownHostsFile)
		if err != nil {
			return nil, nil, fmt.Errorf("load known_hosts %s: %w", t.KnownHostsFile, err)
		}
		return wrap(cb), nil, nil
	}
	return nil, nil, errors.New("no host key verification configured")
}

var certAlgorithms = []string{
	ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01,
	ssh.CertAlgoECDSA521v01, ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}
