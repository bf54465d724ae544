package certs

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// DefaultSkew is the clock difference tolerated at the start of a
// certificate's validity window. None is tolerated at its end: the bastion
// ends a connection when its certificate expires (OpenSSH's sshd refuses
// at ValidBefore too), and a connection it would end at once must not be
// let in.
const DefaultSkew = 2 * time.Minute

// Checker verifies user certificates presented to the bastion.
// The zero value is not usable: CA must be set. It is safe for concurrent use.
type Checker struct {
	// CA is the user CA public key; certificates must be signed by it.
	CA ssh.PublicKey
	// Skew is the tolerated clock difference at ValidAfter; zero means
	// DefaultSkew.
	Skew time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Revoked lists the revoked certificates; nil revokes none.
	Revoked *RevocationList
}

// CheckError is a refused certificate. Reason is for the audit log;
// UserMessage is the one line the client sees.
type CheckError struct {
	Reason  string
	Message string
}

func (e *CheckError) Error() string { return e.Reason }

// UserMessage is safe to show to the SSH client.
func (e *CheckError) UserMessage() string { return e.Message }

func refuse(msg, reason string, args ...any) *CheckError {
	return &CheckError{Message: "postern: " + msg, Reason: fmt.Sprintf(reason, args...)}
}

// supportedCriticalOptions lists the critical options the bastion honours.
// Any other critical option refuses the certificate: PROTOCOL.certkeys says
// a server must refuse certificates with options it does not recognise.
var supportedCriticalOptions = []string{"source-address"}

// Check verifies key, as presented by a client connecting from remote, and
// returns the certificate. It refuses plain keys, certificates not signed
// by the user CA, host certificates, certificates outside their validity
// window (from ValidAfter less Skew until ValidBefore), without
// principals, with unknown critical options, whose source-address does not
// include remote, or that Revoked lists.
func (c *Checker) Check(key ssh.PublicKey, remote net.Addr) (*ssh.Certificate, error) {
	cert, ok := key.(*ssh.Certificate)
	if !ok {
		return nil, refuse("a certificate is required; plain public keys are not accepted (get one with `postern login` or from an admin with `postern ca sign`)",
			"plain public key %s offered", ssh.FingerprintSHA256(key))
	}
	if cert.CertType != ssh.UserCert {
		return nil, refuse("certificate is not a user certificate", "certificate type %d (not user) serial %d", cert.CertType, cert.Serial)
	}
	if !bytes.Equal(cert.SignatureKey.Marshal(), c.CA.Marshal()) {
		return nil, refuse("certificate is not signed by this bastion's user CA",
			"certificate serial %d key_id %q signed by unknown CA %s", cert.Serial, cert.KeyId, ssh.FingerprintSHA256(cert.SignatureKey))
	}
	if len(cert.ValidPrincipals) == 0 {
		return nil, refuse("certificate has no principals", "certificate serial %d has no principals", cert.Serial)
	}
	now := time.Now
	if c.Clock != nil {
		now = c.Clock
	}
	skew := c.Skew
	if skew == 0 {
		skew = DefaultSkew
	}
	t := now()
	if err := checkWindow(cert, t, skew); err != nil {
		return nil, err
	}
	for opt := range cert.CriticalOptions {
		known := false
		for _, s := range supportedCriticalOptions {
			known = known || s == opt
		}
		if !known {
			return nil, refuse(fmt.Sprintf("certificate has unsupported critical option %q", opt),
				"certificate serial %d has unsupported critical option %q", cert.Serial, opt)
		}
	}
	if list, ok := cert.Extensions[GroupsExtension]; ok {
		if err := checkGroupList(list); err != nil {
			return nil, refuse("certificate's "+GroupsExtension+" extension is malformed (an empty group name); get a new one",
				"certificate serial %d: %v", cert.Serial, err)
		}
	}
	if src, ok := cert.CriticalOptions["source-address"]; ok {
		if err := checkSource(src, remote); err != nil {
			return nil, refuse("certificate may not be used from this address",
				"certificate serial %d: %v", cert.Serial, err)
		}
	}
	// The signature check comes last, after every cheap test, and is done
	// by x/crypto against a clock inside the window we already accepted,
	// so that it checks exactly the signature; revocation follows it, so
	// that only a genuine certificate learns that it was revoked.
	inWindow := time.Unix(int64(cert.ValidAfter), 0)
	if t.After(inWindow) {
		inWindow = t
	}
	if cert.ValidBefore != ssh.CertTimeInfinity && !inWindow.Before(time.Unix(int64(cert.ValidBefore), 0)) {
		inWindow = time.Unix(int64(cert.ValidBefore)-1, 0)
	}
	verify := ssh.CertChecker{
		SupportedCriticalOptions: supportedCriticalOptions,
		Clock:                    func() time.Time { return inWindow },
	}
	if err := verify.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return nil, refuse("certificate is not valid", "certificate serial %d: %v", cert.Serial, err)
	}
	if r, ok := c.Revoked.Revoked(cert); ok {
		return nil, &CheckError{Message: r.UserMessage(),
			Reason: fmt.Sprintf("certificate serial %d key_id %q revoked (%s): %s", cert.Serial, cert.KeyId, r.What(), r.Reason)}
	}
	return cert, nil
}

// checkWindow refuses cert unless t is inside its validity window: from
// ValidAfter less skew until ValidBefore.
func checkWindow(cert *ssh.Certificate, t time.Time, skew time.Duration) *CheckError {
	after := time.Unix(int64(cert.ValidAfter), 0)
	if int64(cert.ValidAfter) < 0 || t.Add(skew).Before(after) {
		return refuse("certificate is not yet valid (valid from "+after.UTC().Format(time.RFC3339)+")",
			"certificate serial %d not valid until %s", cert.Serial, after.UTC().Format(time.RFC3339))
	}
	if cert.ValidBefore == ssh.CertTimeInfinity {
		return nil
	}
	before := time.Unix(int64(cert.ValidBefore), 0)
	if int64(cert.ValidBefore) < 0 || !t.Before(before) {
		return &CheckError{Message: ExpiredMessage(before),
			Reason: fmt.Sprintf("certificate serial %d expired at %s", cert.Serial, before.UTC().Format(time.RFC3339))}
	}
	return nil
}

// Groups returns the groups carried in cert's groups@postern extension,
// split at its commas. Check refuses a certificate whose list holds an
// empty name; names are taken as they are otherwise (whatever a CA other
// than SignUser wrote: callers escape them before showing them).
func Groups(cert *ssh.Certificate) []string {
	v, ok := cert.Extensions[GroupsExtension]
	if !ok || v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// checkGroupList reports whether list, a groups@postern extension, is a
// comma-separated list of names with no empty one: "a,,b", ",a", "a," and
// "" are refused rather than read as fewer groups, since a CA that wrote
// one did not write what it meant.
func checkGroupList(list string) error {
	for i, g := range strings.Split(list, ",") {
		if g == "" {
			return fmt.Errorf("%s %q: group %d is empty", GroupsExtension, list, i+1)
		}
	}
	return nil
}

// checkName reports whether name may be a principal or a group name (kind
// says which) in a certificate SignUser issues: not empty, UTF-8, and
// without commas (groups@postern is a comma-separated list, and OpenSSH
// splits principal lists on commas: "contractors,auditors" would come back
// as two groups), white space or control and format characters (which
// make a name read as another, or act on a terminal).
func checkName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", kind)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%s %q is not UTF-8", kind, name)
	}
	for _, r := range name {
		switch {
		case r == ',':
			return fmt.Errorf("%s %q contains a comma, which separates names in a certificate; use one name per %s", kind, name, kind)
		case unicode.IsSpace(r):
			return fmt.Errorf("%s %q contains white space", kind, name)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			return fmt.Errorf("%s %q contains the control or format character %U", kind, name, r)
		}
	}
	return nil
}

func validSourceAddress(list string) error {
	for _, s := range strings.Split(list, ",") {
		if _, err := parsePrefix(strings.TrimSpace(s)); err != nil {
			return err
		}
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("source-address %q: not an address or CIDR block", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("source-address %q: not an address or CIDR block", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// checkSource reports whether remote is inside one of the comma-separated
// addresses or CIDR blocks of a source-address option. A malformed list
// refuses: fail closed.
func checkSource(list string, remote net.Addr) error {
	tcp, ok := remote.(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("source-address set but remote %v is not a TCP address", remote)
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return fmt.Errorf("remote address %v unparsable", remote)
	}
	ip = ip.Unmap()
	for _, s := range strings.Split(list, ",") {
		p, err := parsePrefix(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		if p.Contains(ip) {
			return nil
		}
	}
	return fmt.Errorf("remote address %s not in source-address %q", ip, list)
}
