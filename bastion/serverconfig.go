package bastion

import (
	"time"

	"golang.org/x/crypto/ssh"
)

func (s *Server) serverConfig(c *conn) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		ServerVersion:             "SSH-2.0-Postern",
		MaxAuthTries:              6,
		PublicKeyCallback:         c.checkKey,
		VerifiedPublicKeyCallback: c.authorizeLimited,
		AuthLogCallback:           c.authLog, // connlimits.go, speculate.go
		// Offered only so that the reason for a refusal can be shown
		// once every key has failed; see conn.lastResort.
		KeyboardInteractiveCallback: c.lastResort,
		PublicKeyAuthAlgorithms:     userAuthAlgorithms,
		// Called on the handshake goroutine once key exchange is done,
		// so that a refusal can say which stage failed.
		PreAuthConnCallback: func(ssh.ServerPreAuthConn) { c.kexDone = true },
		Config:              s.sshConfig(),
	}
	cfg.AddHostKey(s.cfg.Authority.HostKey)
	if hs := s.hostCertSigner(); hs != nil {
		// A distinct algorithm: clients that trust the bastion's host
		// CA ask for it; those that pinned the key ask for the key.
		cfg.AddHostKey(hs)
	}
	return cfg
}

// renewHostCert is how long before its end the host certificate is
// signed anew.
const renewHostCert = 30 * 24 * time.Hour

// hostCertSigner returns the host key with a certificate from the host
// CA, signed again when it nears its end; nil without a host CA (or, after
// a logged failure to sign, until the next connection tries again).
func (s *Server) hostCertSigner() ssh.Signer {
	a := s.cfg.Authority
	if a.HostCA == nil || len(s.cfg.HostNames) == 0 {
		return nil
	}
	s.hostCertMu.Lock()
	defer s.hostCertMu.Unlock()
	now := time.Now()
	if s.hostCert == nil || now.Add(renewHostCert).After(time.Unix(int64(s.hostCert.ValidBefore), 0)) {
		signer, cert, err := a.HostCertSigner(now, s.cfg.HostNames)
		if err != nil {
			s.log.Error("host certificate not signed", "err", err)
			return s.hostSigner
		}
		s.hostCert, s.hostSigner = cert, signer
	}
	return s.hostSigner
}
