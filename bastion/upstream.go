package bastion

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/audit"
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
// minted certificate whose key ID names the identity and the session. It
// takes over the connection speculate began during authentication when
// there is one for the same target and login (speculate.go).
func (c *conn) dial() (*ssh.Client, error) {
	g := c.grant
	t := g.Target
	signer, cert, err := c.s.cfg.Authority.MintUpstream(certs.UpstreamRequest{
		Login:          g.Login,
		KeyID:          fmt.Sprintf("postern session=%s user=%s serial=%d", c.id, logSafe(c.identity.Name()), c.identity.Serial),
		PortForwarding: (g.forwarding() || len(g.RemoteForwards) > 0) && permits(c.cert, permitPortForwarding),
		// sshd refuses an agent request from a certificate without it.
		AgentForwarding: agentRefusal(c.cert, g) == nil,
	})
	if err != nil {
		return nil, &upstreamError{msg: "postern: internal error; the session was not started", err: err}
	}
	if up, err, ok := c.claimSpeculation(signer); ok {
		return up, err
	}
	c.log.Debug("dialing target", "address", t.Address, "upstream_serial", cert.Serial)
	nc, err := c.s.dialTarget(c.ctx, t, &c.acks)
	if err != nil {
		return nil, err
	}
	return c.s.upstreamHandshake(c.ctx, nc, t, g.Login, ssh.PublicKeys(signer), nil)
}

// dialTarget opens the TCP connection to t, bounded by DialTimeout and
// ctx, acknowledging at once until acks ends (quickack.go).
func (s *Server) dialTarget(ctx context.Context, t *Target, acks *quickAcks) (net.Conn, error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", t.Address)
	if err != nil {
		return nil, &upstreamError{msg: "postern: cannot connect to target " + t.Name, err: err}
	}
	return acks.wrap(nc), nil
}

// upstreamHandshake runs the SSH handshake on nc, a connection to t, and
// authenticates as login with auth; it closes nc if it fails, and when ctx
// ends first (a revocation, the client leaving), at whatever stage the
// handshake is: a target that accepts and never answers would otherwise
// hold it for DialTimeout. The host key is verified first; then, if wait
// is not nil, the handshake pauses in the host key callback until wait
// returns: after the key exchange's reply and before the client's
// NEWKEYS, so that nothing of user authentication has been sent (RFC 4253
// section 7.3, RFC 4252 section 5). An error from wait ends the handshake
// there.
func (s *Server) upstreamHandshake(ctx context.Context, nc net.Conn, t *Target, login string, auth ssh.AuthMethod, wait func() error) (*ssh.Client, error) {
	hostKeyCallback, algos, err := hostKeyChecker(t, nc.RemoteAddr())
	if err != nil {
		nc.Close()
		return nil, &upstreamError{msg: "postern: target " + t.Name + " is misconfigured on the bastion", err: err}
	}
	check := hostKeyCallback
	if wait != nil {
		check = func(host string, remote net.Addr, key ssh.PublicKey) error {
			if err := hostKeyCallback(host, remote, key); err != nil {
				return err
			}
			// While it waits nothing is read or written: the
			// deadline would only cut a connection wait bounds.
			nc.SetDeadline(time.Time{})
			if err := wait(); err != nil {
				return err
			}
			nc.SetDeadline(time.Now().Add(s.cfg.DialTimeout))
			return nil
		}
	}
	cfg := &ssh.ClientConfig{
		User:              login,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyCallback:   check,
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-Postern",
		Timeout:           s.cfg.DialTimeout,
		Config:            s.sshConfig(),
	}
	nc.SetDeadline(time.Now().Add(s.cfg.DialTimeout))
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	uc, chans, reqs, err := ssh.NewClientConn(nc, t.Address, cfg)
	if !stop() { // ctx ended: nc is closed, whatever x/crypto made of that
		if err == nil {
			uc.Close()
		}
		return nil, &upstreamError{msg: "postern: the connection was ended", err: fmt.Errorf("handshake with target %s cut: %w", t.Name, context.Cause(ctx))}
	}
	if err != nil {
		nc.Close()
		return nil, handshakeFailure(t, login, err)
	}
	nc.SetDeadline(time.Time{})
	// The Client rejects the channels the target opens unless a handler
	// takes them: forwarded-tcpip for the remote forwards it asked for
	// (Listen), auth-agent@openssh.com once the user asked for agent
	// forwarding (conn.serveAgent). X11 is never requested.
	return ssh.NewClient(uc, chans, reqs), nil
}

// handshakeFailure is the upstreamError for a failed SSH handshake with t.
func handshakeFailure(t *Target, login string, err error) error {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		return &upstreamError{msg: "postern: target " + t.Name + " presented a host key the bastion does not trust; session refused (tell the bastion administrator)", err: err}
	}
	if refusedLogin(err) {
		return &upstreamError{msg: "postern: target " + t.Name + " refused login " + login, err: err}
	}
	return &upstreamError{msg: "postern: SSH to target " + t.Name + " failed", err: err}
}

// refusedLogin reports whether err is x/crypto's for a target that
// refused every authentication method.
func refusedLogin(err error) bool { return strings.Contains(err.Error(), "unable to authenticate") }

// hostKeyChecker returns the callback that verifies t's host key, and the
// host key algorithms to ask for so that the target presents the kind of
// key the check can verify. remote is the target's address as dialed.
//
// A target that can only be verified by plain keys (a pinned key, or
// known_hosts without an @cert-authority line for it) asks for plain
// algorithms only, those of its known keys first, as OpenSSH orders them:
// an sshd with a HostCertificate would otherwise present the certificate,
// which no authority vouches for. Asking for other plain algorithms too
// makes a target without the known key's type fail the host key check (a
// refusal that names the host key) instead of the key exchange.
func hostKeyChecker(t *Target, remote net.Addr) (ssh.HostKeyCallback, []string, error) {
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
		}), plainAlgorithms([]ssh.PublicKey{t.HostKey}), nil
	case t.HostCA != nil:
		want := t.HostCA.Marshal()
		checker := &ssh.CertChecker{
			IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
				return bytes.Equal(auth.Marshal(), want)
			},
		}
		return wrap(checker.CheckHostKey), certAlgorithms, nil
	case t.KnownHostsFile != "":
		return knownHostsChecker(t, remote, wrap)
	}
	return nil, nil, errors.New("no host key verification configured")
}

// knownHostsChecker is hostKeyChecker for t.KnownHostsFile. x/crypto's
// knownhosts does not say which keys or authorities it holds for a host, so
// its callback is asked: a throwaway key is refused with the host's plain
// keys listed (KeyError.Want); an unsigned certificate naming a CA from the
// file as its signer fails the certificate's own checks if the CA is an
// authority for the host, and as an unknown authority otherwise. A failed
// probe only costs the certificate algorithms: the callback still checks
// every key the target presents.
func knownHostsChecker(t *Target, remote net.Addr, wrap func(ssh.HostKeyCallback) ssh.HostKeyCallback) (ssh.HostKeyCallback, []string, error) {
	data, err := os.ReadFile(t.KnownHostsFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load known_hosts %s: %w", t.KnownHostsFile, err)
	}
	cb, err := knownhosts.New(t.KnownHostsFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load known_hosts %s: %w", t.KnownHostsFile, err)
	}
	probe, err := throwawayKey()
	if err != nil {
		return nil, nil, err
	}
	var keyErr *knownhosts.KeyError
	if err := cb(t.Address, remote, probe); !errors.As(err, &keyErr) {
		return nil, nil, fmt.Errorf("probe known_hosts %s: %v", t.KnownHostsFile, err)
	}
	known := make([]ssh.PublicKey, len(keyErr.Want))
	for i, k := range keyErr.Want {
		known[i] = k.Key
	}
	// Without principals the check ends before the (absent) signature is
	// verified, with another error than the one for an unknown authority.
	probeCert := func(ca ssh.PublicKey) string {
		return fmt.Sprint(cb(t.Address, remote, &ssh.Certificate{Key: probe, CertType: ssh.HostCert, SignatureKey: ca}))
	}
	unknownCA := probeCert(probe)
	for _, ca := range knownCAs(data) {
		if probeCert(ca) != unknownCA {
			return wrap(cb), slices.Concat(certAlgorithms, plainAlgorithms(known)), nil
		}
	}
	return wrap(cb), plainAlgorithms(known), nil
}

// knownCAs returns the keys of data's @cert-authority lines.
func knownCAs(data []byte) []ssh.PublicKey {
	var cas []ssh.PublicKey
	for len(data) > 0 {
		marker, _, key, _, rest, err := ssh.ParseKnownHosts(data)
		if err != nil {
			// ParseKnownHosts gives up on the rest at a bad line; skip it,
			// as knownhosts.New does.
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			data = data[i+1:]
			continue
		}
		if marker == "cert-authority" {
			cas = append(cas, key)
		}
		data = rest
	}
	return cas
}

func throwawayKey() (ssh.PublicKey, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate probe key: %w", err)
	}
	return ssh.NewPublicKey(pub)
}

var certAlgorithms = []string{
	ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA256v01, ssh.CertAlgoECDSA384v01,
	ssh.CertAlgoECDSA521v01, ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01,
}

// plainAlgorithms returns the plain (non-certificate) host key algorithms
// x/crypto supports, those that verify one of known first.
func plainAlgorithms(known []ssh.PublicKey) []string {
	var first, rest []string
	for _, algo := range ssh.SupportedAlgorithms().HostKeys {
		if strings.Contains(algo, "-cert-v01@") {
			continue
		}
		if slices.ContainsFunc(known, func(k ssh.PublicKey) bool { return verifiesWith(k.Type(), algo) }) {
			first = append(first, algo)
		} else {
			rest = append(rest, algo)
		}
	}
	return append(first, rest...)
}

// verifiesWith reports whether a key of keyType signs with algo: RSA keys
// sign as rsa-sha2-256/512 (RFC 8332), other keys under their own name.
func verifiesWith(keyType, algo string) bool {
	if keyType == ssh.KeyAlgoRSA {
		return algo == ssh.KeyAlgoRSASHA256 || algo == ssh.KeyAlgoRSASHA512
	}
	return algo == keyType
}

// endedDialing ends a connection whose end (a reload, revocation or drain
// ended it, or its client left) cut the dial of its target, with err: not
// the target's failure, so it is audited as a disconnect with its cause,
// and the client's channels are refused with the cause's message.
func (c *conn) endedDialing(sc *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, start time.Time, err error) {
	cause := context.Cause(c.ctx)
	c.log.Debug("connection ended while its target was dialed", "err", err)
	audit.Record(c.log, audit.Disconnect, "duration_ms", time.Since(start).Milliseconds(), "reason", cause.Error())
	c.refuseAll(sc, chans, reqs, userMessage(cause, "postern: the connection was ended"))
}
