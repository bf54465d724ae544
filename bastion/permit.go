package bastion

import (
	"io"
	"log/slog"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
)

// Extensions of an OpenSSH user certificate that grant a feature
// (PROTOCOL.certkeys in OpenSSH). sshd grants none of them to a certificate
// that lacks the extension, and neither does the bastion: a CA that signs
// with `ssh-keygen -O clear` means "no terminal, no forwarding".
const (
	permitPTY            = "permit-pty"
	permitPortForwarding = "permit-port-forwarding"
	permitAgent          = "permit-agent-forwarding"
	permitX11            = "permit-X11-forwarding"
)

// refusal says why the bastion refused a session request or a channel
// because of what the user's certificate permits, or because the bastion
// never offers the feature.
type refusal struct {
	// Reason is for the audit record and the log.
	Reason string
	// Message is the one line the user sees.
	Message string
}

// UserMessage is the one-line text the SSH client sees.
func (r *refusal) UserMessage() string { return r.Message }

// permits reports whether cert carries the extension ext. A nil
// certificate permits nothing.
func permits(cert *ssh.Certificate, ext string) bool {
	if cert == nil {
		return false
	}
	_, ok := cert.Extensions[ext]
	return ok
}

// requestRefusal returns why a session request of type typ is refused for
// cert and grant g (nil on the admin connection), or nil if neither stands
// in its way. Only the requests that a certificate extension governs are
// considered; the rest are for sessionRequest to decide.
func requestRefusal(cert *ssh.Certificate, g *Grant, typ string) *refusal {
	switch typ {
	case "pty-req":
		// sshd answers failure and the session goes on without a
		// terminal (OpenSSH session.c); so does the bastion.
		if !permits(cert, permitPTY) {
			return &refusal{
				Reason:  "certificate lacks " + permitPTY,
				Message: "postern: no terminal: your certificate does not permit one (it lacks " + permitPTY + "); the session continues without a pty",
			}
		}
	case agentRequestType:
		return agentRefusal(cert, g)
	case "x11-req":
		reason := "X11 forwarding is not supported"
		if !permits(cert, permitX11) {
			reason = "certificate lacks " + permitX11 + "; " + reason
		}
		return &refusal{Reason: reason, Message: "postern: X11 forwarding is not supported"}
	}
	return nil
}

// agentRefusal returns why the user may not forward their agent (ssh -A)
// to the grant's target, or nil: the certificate must carry
// permit-agent-forwarding and the grant's rule must set agent_forwarding,
// as for port forwarding. The record names every reason; the user's line
// the first. The admin connection (g nil) has no target to forward to.
func agentRefusal(cert *ssh.Certificate, g *Grant) *refusal {
	if g == nil {
		return &refusal{Reason: "the admin connection does not forward agents",
			Message: "postern: agent forwarding is not offered on the admin connection"}
	}
	var ref refusal
	add := func(reason, msg string) {
		if ref.Reason != "" {
			ref.Reason += "; "
		}
		ref.Reason += reason
		if ref.Message == "" {
			ref.Message = msg
		}
	}
	if !permits(cert, permitAgent) {
		add("certificate lacks "+permitAgent, "postern: agent forwarding is not allowed: your certificate lacks "+permitAgent)
	}
	if !g.AgentForwarding {
		add("agent forwarding not granted by rule "+g.Rule, "postern: agent forwarding is not allowed for you on "+g.Target.Name)
	}
	if ref.Reason == "" {
		return nil
	}
	return &ref
}

// forwardRefusal returns why a direct-tcpip channel is refused for cert, or
// nil if the certificate permits port forwarding. The policy's grant is
// checked as well, separately: both must allow it.
func forwardRefusal(cert *ssh.Certificate) *refusal {
	if permits(cert, permitPortForwarding) {
		return nil
	}
	return &refusal{
		Reason:  "certificate lacks " + permitPortForwarding,
		Message: "postern: port forwarding is not allowed: your certificate lacks " + permitPortForwarding,
	}
}

// refuseRequest answers a session request that the certificate does not
// permit, or that the bastion never grants: failure to the client, one line
// on the channel's stderr saying why, an audit record. It reports whether
// it refused r; if not, r is left for sessionRequest.
func (c *conn) refuseRequest(r *ssh.Request, st *channel) bool {
	ref := requestRefusal(c.cert, c.grant, r.Type)
	if ref == nil {
		return false
	}
	c.refuseSessionRequest(r.Type, ref, st.clientErr(), st.n)
	if !r.WantReply {
		return true
	}
	// `ssh -t` closes the channel when its pty is refused, and drops
	// stderr it has read but not yet written out. A request the client
	// must answer (RFC 4254 §5.4; sshd's ClientAlive sends this one on
	// a session channel) makes it take the line in before the failure
	// arrives.
	st.ch.SendRequest("keepalive@openssh.com", true, nil)
	st.reply(r, false)
	return true
}

// refuseSessionRequest writes the audit record of a session request of
// type typ refused on channel n for ref's reason, and shows the user
// ref's line on stderr, the channel's stderr (under the lock its other
// writers take, so the line is never mixed with a notice). The caller sends the reply, after the line,
// so that OpenSSH prints it next to its own "PTY allocation request
// failed". No program has started yet in the usual order, so it cannot
// land inside a program's output; "\r\n" because the client's terminal
// may be raw.
func (c *conn) refuseSessionRequest(typ string, ref *refusal, stderr io.Writer, n uint32) {
	audit.Record(c.log, audit.SessionRequest, "channel", n, "request", typ, "allowed", false, "reason", ref.Reason)
	stderr.Write([]byte(ref.UserMessage() + "\r\n"))
}

// adminRequestRefusal is requestRefusal for a session channel of the admin
// connection, which never offers a terminal: nil for the requests it
// refuses without a record (env, window-change and the like).
func adminRequestRefusal(cert *ssh.Certificate, typ string) *refusal {
	if typ == "pty-req" {
		return &refusal{
			Reason:  "the admin connection has no terminal",
			Message: "postern: no terminal: the admin connection runs its commands without one",
		}
	}
	return requestRefusal(cert, nil, typ)
}

// refuseForward rejects a direct-tcpip channel that the certificate does
// not permit (RFC 4254 §5.1: administratively prohibited, with the reason),
// with an audit record on log. It reports whether it did.
func (c *conn) refuseForward(nc ssh.NewChannel, log *slog.Logger) bool {
	ref := forwardRefusal(c.cert)
	if ref == nil {
		return false
	}
	audit.Record(log, audit.Forward, "allowed", false, "reason", ref.Reason)
	nc.Reject(ssh.Prohibited, ref.UserMessage())
	return true
}
