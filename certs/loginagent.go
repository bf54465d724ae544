package certs

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// ErrNoAgent says SSH_AUTH_SOCK is not set.
var ErrNoAgent = errors.New("no ssh-agent: SSH_AUTH_SOCK is not set")

// agentTimeout bounds a whole conversation with the agent.
const agentTimeout = 30 * time.Second

// Agent is a connection to a running ssh-agent, good for agentTimeout.
// Close it when done; it is not safe for concurrent use.
type Agent struct {
	conn net.Conn
	ag   agent.ExtendedAgent
}

// DialAgent connects to the agent at sock (SSH_AUTH_SOCK); an empty sock
// is ErrNoAgent.
func DialAgent(sock string) (*Agent, error) {
	if sock == "" {
		return nil, ErrNoAgent
	}
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("reach ssh-agent at %s: %w", sock, err)
	}
	// An agent that hangs (one waiting for a confirmation nobody gives)
	// must not hang the command.
	c.SetDeadline(time.Now().Add(agentTimeout))
	return &Agent{conn: c, ag: agent.NewClient(c)}, nil
}

// Close ends the connection.
func (a *Agent) Close() error { return a.conn.Close() }

// Add gives the agent the key with its certificate, and for a generated
// key the plain key too (as ssh-add does: a client may ask for either),
// removed by the agent itself when the certificate expires. It returns
// that lifetime. A key of the user's own (key.Path set) goes in with its
// certificate only: adding it plain would replace an entry the user made,
// and the agent would drop the user's key at the certificate's expiry.
func (a *Agent) Add(key *LoginKey, cert *ssh.Certificate, comment string, now time.Time) (time.Duration, error) {
	if key.Private == nil {
		return 0, errors.New("the key is passphrase-protected: add it to the agent with ssh-add")
	}
	left := TimeLeft(cert, now).Truncate(time.Second)
	if left <= 0 {
		return 0, errors.New("the certificate has expired")
	}
	secs := uint32(min(left/time.Second, 1<<31))
	entries := []*ssh.Certificate{cert}
	if key.Path == "" {
		entries = append(entries, nil)
	}
	for _, c := range entries {
		err := a.ag.Add(agent.AddedKey{PrivateKey: key.Private, Certificate: c, Comment: comment, LifetimeSecs: secs})
		if err != nil {
			return 0, fmt.Errorf("add the key to ssh-agent: %w", err)
		}
	}
	return time.Duration(secs) * time.Second, nil
}

// Holds reports whether the agent has cert.
func (a *Agent) Holds(cert *ssh.Certificate) (bool, error) {
	keys, err := a.ag.List()
	if err != nil {
		return false, fmt.Errorf("list ssh-agent keys: %w", err)
	}
	blob := cert.Marshal()
	for _, k := range keys {
		if bytes.Equal(k.Blob, blob) {
			return true, nil
		}
	}
	return false, nil
}

// Remove deletes from the agent the plain key pub and every certificate
// for it: for a key the login generated, all of it is the login's. It
// returns how many entries it removed.
func (a *Agent) Remove(pub ssh.PublicKey) (int, error) {
	return a.remove(pub, nil, true)
}

// RemoveLogin deletes from the agent the certificates for cert's key that
// cert's CA signed (this login's, and earlier ones' from the same
// bastion), and the plain key if plain: a key of the user's own keeps
// its plain entry and certificates from other CAs. It returns how many
// entries it removed.
func (a *Agent) RemoveLogin(cert *ssh.Certificate, plain bool) (int, error) {
	return a.remove(cert.Key, cert.SignatureKey, plain)
}

// remove deletes the certificates for pub (those ca signed, unless ca is
// nil) and, if plain, pub itself.
func (a *Agent) remove(pub, ca ssh.PublicKey, plain bool) (int, error) {
	keys, err := a.ag.List()
	if err != nil {
		return 0, fmt.Errorf("list ssh-agent keys: %w", err)
	}
	want := pub.Marshal()
	n := 0
	for _, k := range keys {
		pk, err := ssh.ParsePublicKey(k.Blob)
		if err != nil {
			continue // a key type x/crypto does not know is not ours
		}
		mine := plain
		if c, ok := pk.(*ssh.Certificate); ok {
			pk = c.Key
			mine = ca == nil || bytes.Equal(c.SignatureKey.Marshal(), ca.Marshal())
		}
		if !mine || !bytes.Equal(pk.Marshal(), want) {
			continue
		}
		if err := a.ag.Remove(k); err != nil {
			return n, fmt.Errorf("remove %s from ssh-agent: %w", k.Format, err)
		}
		n++
	}
	return n, nil
}
