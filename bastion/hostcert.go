package bastion

import (
	"time"

	"golang.org/x/crypto/ssh"
)

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
