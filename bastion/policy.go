package bastion

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Target is one server reachable through the bastion.
//
// Exactly one of HostKey, KnownHostsFile or HostCA must be set: the bastion
// never dials a target whose host key it cannot verify (DESIGN invariant 2).
type Target struct {
	// Name is what users type after the '@' in LOGIN@TARGET.
	Name string
	// Address is host:port of the target's sshd.
	Address string
	// HostKey pins the target's host key.
	HostKey ssh.PublicKey
	// KnownHostsFile is an OpenSSH known_hosts file checked for Address.
	KnownHostsFile string
	// HostCA is a host certificate authority the target's host cert must be
	// signed by (like @cert-authority in known_hosts).
	HostCA ssh.PublicKey
	// Labels select targets in rules.
	Labels map[string]string
	// Logins are the accounts that may be used on this target. Empty means
	// the rules alone decide.
	Logins []string
	// DefaultLogin is used when the user name is just TARGET and the
	// matching rule names no default.
	DefaultLogin string
	// Masking is how PANs in the target's output are masked:
	// "" or "first6last4" (the default), "last4", "full", or "off",
	// which must be chosen explicitly.
	Masking string
	// Forwards are the ports of the target that users may forward to
	// (ssh -L), each with the protocol the bastion treats it as. A port
	// not listed is refused, whatever the rules grant. Nil declares none.
	Forwards []Forward
}

// Forward is a port of a target that may be forwarded to (a direct-tcpip
// channel, RFC 4254 §7.2, to the target's own loopback).
type Forward struct {
	// Port is the TCP port on the target, 1 to 65535.
	Port int
	// Protocol is ForwardTCP or ForwardPostgres.
	Protocol string
}

// Forward protocols.
const (
	// ForwardTCP passes the bytes through opaque: counted and audited,
	// neither recorded nor masked.
	ForwardTCP = "tcp"
	// ForwardPostgres parses the PostgreSQL wire protocol both ways:
	// statements are recorded, card numbers in results masked.
	ForwardPostgres = "postgres"
)

// ForwardProtocols are the protocols a target's forward may declare.
var ForwardProtocols = []string{ForwardTCP, ForwardPostgres}

// AnyDeclaredPort in a rule's Forwards grants every port the target
// declares (written "*" in the config).
const AnyDeclaredPort = 0

// Rule grants principals or groups access to targets.
type Rule struct {
	// Name identifies the rule in audit records.
	Name string
	// Principals and Groups select identities; an identity matches if it
	// has any listed principal or group. "*" matches every identity.
	Principals []string
	Groups     []string
	// Targets are target names or shell patterns (path.Match); "*" is all.
	Targets []string
	// TargetLabels, when set, additionally require each label to match.
	TargetLabels map[string]string
	// Logins the identity may use; "*" allows any login the target allows.
	Logins []string
	// DefaultLogin is used when the user connects as plain TARGET.
	DefaultLogin string
	// Forwards are the ports, among those a target declares
	// (Target.Forwards), that the rule lets its identities forward to
	// (ssh -L); AnyDeclaredPort grants all of them. Nil grants none. SSH
	// ports are refused regardless.
	Forwards []int
	// RemoteForwards are the ports on the target's loopback the rule
	// lets its identities listen on (ssh -R), each connection relayed
	// to the client opaque, like a tcp forward; AnyDeclaredPort (0)
	// allows any port, and lets the target choose one. Nil allows none.
	RemoteForwards []int
	// AgentForwarding lets its identities forward their SSH agent to
	// the target (ssh -A), if their certificates carry
	// permit-agent-forwarding too. Off by default: whoever is root on
	// the target can use the forwarded agent while the session lasts.
	// Only listing keys and signing are relayed (agentfwd.go).
	AgentForwarding bool
	// Transfers lists the file-transfer protocols the rule grants:
	// "sftp", "scp", "rsync". Nil grants DefaultTransfers. Each is parsed
	// strictly; a channel that only claims to be a transfer is never
	// exempt from recording (see transfer.go). rsync must be listed: its
	// framing is checked, but its content cannot be scanned reliably.
	Transfers []string
	// FilePANs is what happens when a downloaded file holds a card
	// number: FilePANsBlock (the default, also for ""), FilePANsMask or
	// FilePANsAllow.
	FilePANs string
}

// What a rule's FilePANs does with a card number found in a download.
const (
	// FilePANsBlock fails the file's transfer: nothing from the chunk
	// holding the first card number on reaches the client.
	FilePANsBlock = "block"
	// FilePANsMask masks the card numbers (same length, so the file's
	// checksum changes) and delivers the file.
	FilePANsMask = "mask"
	// FilePANsAllow delivers the file unchanged; the count is audited.
	FilePANsAllow = "allow"
)

// TransferKinds are the file-transfer protocols a rule can grant.
var TransferKinds = []string{"sftp", "scp", "rsync"}

// DefaultTransfers are granted by a rule that lists none: the protocols
// whose downloads are scanned whole. rsync's data frames carry file
// contents cut by rsync's own token headers, names compressed against the
// previous name, and block checksums of the target's files, none of which
// the bastion parses, so a card number can cross it unseen: a rule grants
// rsync only by naming it.
var DefaultTransfers = []string{"sftp", "scp"}

// Identity is who a verified user certificate says the user is.
type Identity struct {
	// Principals from the certificate; the first is the display name.
	Principals []string
	// Groups from the certificate's groups@postern extension, if any.
	Groups []string
	// KeyID and Serial of the certificate, for the audit trail.
	KeyID  string
	Serial uint64
}

// Name is the identity's display name: its first principal.
func (id Identity) Name() string {
	if len(id.Principals) == 0 {
		return ""
	}
	return id.Principals[0]
}

// Policy is the set of targets and rules. The zero value denies everything.
type Policy struct {
	Targets []Target
	Rules   []Rule
}

// Grant is the outcome of a successful Policy.Decide.
type Grant struct {
	Target   *Target
	Login    string
	Rule     string
	Forwards []int // the rule's Forwards: ports granted, or AnyDeclaredPort
	// RemoteForwards is the rule's: ports the user may listen on.
	RemoteForwards []int
	// AgentForwarding is the rule's: the user may forward an agent.
	AgentForwarding bool
	Transfers       []string // granted transfer protocols; nil means DefaultTransfers
	FilePANs        string   // FilePANs* of the rule; "" means block
}

// forwarding reports whether the grant lets the user forward to any port.
func (g *Grant) forwarding() bool { return len(g.Forwards) > 0 }

// Forward returns the target's declaration of port if the grant lets the
// user forward to it (ssh -L), or why not.
func (g *Grant) Forward(port uint32) (*Forward, *DenyError) {
	t := g.Target
	if !g.forwarding() {
		return nil, &DenyError{Reason: "port forwarding not granted",
			Message: "postern: port forwarding is not allowed for you on " + t.Name}
	}
	var decl *Forward
	for i := range t.Forwards {
		if uint32(t.Forwards[i].Port) == port {
			decl = &t.Forwards[i]
		}
	}
	if decl == nil {
		return nil, &DenyError{Reason: "port not declared for forwarding",
			Message: fmt.Sprintf("postern: port %d of %s is not declared for forwarding (declared: %s); ask the bastion's administrator", port, t.Name, declaredPorts(t))}
	}
	if !slices.Contains(g.Forwards, AnyDeclaredPort) && !slices.Contains(g.Forwards, decl.Port) {
		return nil, &DenyError{Reason: "port not granted by rule " + g.Rule,
			Message: fmt.Sprintf("postern: you may not forward port %d of %s (rule %s grants %s)", port, t.Name, g.Rule, grantedPorts(g.Forwards))}
	}
	return decl, nil
}

// RemoteForward says why the grant does not let the user listen on port
// of the target (ssh -R), or nil if it does. Port 0 asks the target to
// choose one: only a grant of any port allows it.
func (g *Grant) RemoteForward(port uint32) *DenyError {
	switch {
	case len(g.RemoteForwards) == 0:
		return &DenyError{Reason: "remote forwarding not granted",
			Message: "postern: remote forwarding (ssh -R) is not allowed for you on " + g.Target.Name}
	case slices.Contains(g.RemoteForwards, AnyDeclaredPort):
		return nil
	case port == 0 || !slices.Contains(g.RemoteForwards, int(port)):
		return &DenyError{Reason: "remote port not granted by rule " + g.Rule,
			Message: fmt.Sprintf("postern: you may not listen on port %d of %s (rule %s grants %s)", port, g.Target.Name, g.Rule, grantedPorts(g.RemoteForwards))}
	}
	return nil
}

// declaredPorts lists t's forwards for a message: "5432 (postgres), 8080
// (tcp)", or "none".
func declaredPorts(t *Target) string {
	if len(t.Forwards) == 0 {
		return "none"
	}
	parts := make([]string, len(t.Forwards))
	for i, f := range t.Forwards {
		parts[i] = strconv.Itoa(f.Port) + " (" + f.Protocol + ")"
	}
	return strings.Join(parts, ", ")
}

// grantedPorts lists a rule's forwards for a message.
func grantedPorts(ports []int) string {
	parts := make([]string, len(ports))
	for i, p := range ports {
		parts[i] = strconv.Itoa(p)
		if p == AnyDeclaredPort {
			parts[i] = "every declared port"
		}
	}
	return strings.Join(parts, ", ")
}

// allowsTransfer reports whether the grant permits transfer kind k.
func (g *Grant) allowsTransfer(k string) bool {
	if g.Transfers == nil {
		return slices.Contains(DefaultTransfers, k)
	}
	return slices.Contains(g.Transfers, k)
}

// DenyError says why a connection was refused. UserMessage is safe to show
// the client; Reason is for the audit record only.
type DenyError struct {
	Message string
	Reason  string
}

func (e *DenyError) Error() string { return e.Reason }

// UserMessage is the one-line text the SSH client sees.
func (e *DenyError) UserMessage() string { return e.Message }

func deny(msg, reason string, args ...any) *DenyError {
	return &DenyError{Message: msg, Reason: fmt.Sprintf(reason, args...)}
}

// ParseUser splits an SSH user name "LOGIN@TARGET" or "TARGET". OpenSSH
// splits user@host at the last '@', so the bastion receives everything
// before it. AdminUser is refused as a login or target: the bare name
// AdminUser opens the admin connection and is routed before ParseUser.
func ParseUser(user string) (login, target string, err error) {
	i := strings.LastIndexByte(user, '@')
	if i < 0 {
		login, target = "", user
	} else {
		login, target = user[:i], user[i+1:]
		if login == "" {
			return "", "", fmt.Errorf("empty login in %q", user)
		}
	}
	if target == "" {
		return "", "", fmt.Errorf("empty target in %q", user)
	}
	if !validName(target) || (login != "" && !validName(login)) {
		return "", "", fmt.Errorf("user name %q has characters outside [A-Za-z0-9._-]", user)
	}
	if reserved(target) || reserved(login) {
		return "", "", fmt.Errorf("user name %q: %w", user, errReservedName)
	}
	return login, target, nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Target returns the target named name, or nil.
func (p *Policy) Target(name string) *Target {
	for i := range p.Targets {
		if p.Targets[i].Name == name {
			return &p.Targets[i]
		}
	}
	return nil
}

// Decide resolves an SSH user name for an identity into a Grant, or a
// *DenyError. Rules are tried in order; the first rule that matches the
// identity and target and allows the login wins.
func (p *Policy) Decide(id Identity, user string) (*Grant, error) {
	login, name, err := ParseUser(user)
	if errors.Is(err, errReservedName) {
		return nil, deny("postern: "+errReservedName.Error()+"; connect as "+AdminUser+"@bastion for its commands", "parse user: %v", err)
	}
	if err != nil {
		return nil, deny("postern: bad user name; connect as LOGIN@TARGET@bastion", "parse user: %v", err)
	}
	t := p.Target(name)
	if t == nil && login == "" {
		// Most likely a login without a target (ssh -p PORT
		// root@bastion): say how to name one.
		return nil, deny(fmt.Sprintf("postern: unknown target %q; connect as LOGIN@TARGET@bastion (%s@TARGET@bastion if %q is the login)", name, name, name),
			"unknown target %q", name)
	}
	if t == nil {
		return nil, deny(fmt.Sprintf("postern: unknown target %q", name), "unknown target %q", name)
	}
	matched := false
	for i := range p.Rules {
		r := &p.Rules[i]
		if !r.matchesIdentity(id) || !r.matchesTarget(t) {
			continue
		}
		matched = true
		l := login
		if l == "" {
			l = r.DefaultLogin
			if l == "" {
				l = t.DefaultLogin
			}
			if l == "" {
				continue
			}
		}
		if !allowed(r.Logins, l) || (len(t.Logins) > 0 && !slices.Contains(t.Logins, l)) {
			continue
		}
		return &Grant{Target: t, Login: l, Rule: r.Name, Forwards: r.Forwards, RemoteForwards: r.RemoteForwards,
			AgentForwarding: r.AgentForwarding, Transfers: r.Transfers, FilePANs: r.FilePANs}, nil
	}
	if !matched {
		// Same words as for an unknown target would hide which targets
		// exist, but users need to know the name was right; PCI reviewers
		// prefer the explicit message.
		return nil, deny(fmt.Sprintf("postern: %s may not connect to %q", id.Name(), name),
			"no rule grants %v (groups %v) target %q", id.Principals, id.Groups, name)
	}
	if login == "" {
		return nil, deny(fmt.Sprintf("postern: no default login on %q; connect as LOGIN@%s@bastion", name, name),
			"no default login for %v on %q", id.Principals, name)
	}
	return nil, deny(fmt.Sprintf("postern: %s may not log in as %q on %q", id.Name(), login, name),
		"login %q not allowed for %v on %q", login, id.Principals, name)
}

func (r *Rule) matchesIdentity(id Identity) bool {
	for _, p := range r.Principals {
		if p == "*" || slices.Contains(id.Principals, p) {
			return true
		}
	}
	for _, g := range r.Groups {
		if g == "*" || slices.Contains(id.Groups, g) {
			return true
		}
	}
	return false
}

// MatchesTarget reports whether r's targets or target labels select t.
func (r *Rule) MatchesTarget(t *Target) bool { return r.matchesTarget(t) }

func (r *Rule) matchesTarget(t *Target) bool {
	for k, v := range r.TargetLabels {
		if t.Labels[k] != v {
			return false
		}
	}
	if len(r.Targets) == 0 {
		return len(r.TargetLabels) > 0
	}
	for _, pat := range r.Targets {
		if ok, _ := path.Match(pat, t.Name); ok {
			return true
		}
	}
	return false
}

func allowed(list []string, login string) bool {
	for _, l := range list {
		if l == "*" || l == login {
			return true
		}
	}
	return false
}
