package bastion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/recorder"
)

// Agent forwarding (ssh -A) through the bastion. The client asks for it
// with an auth-agent-req@openssh.com request on a session channel; where
// the certificate and the rule allow it (agentRefusal), the request goes
// on to the target, whose sshd then opens an auth-agent@openssh.com
// channel (OpenSSH PROTOCOL §2.1) for each program that connects to
// SSH_AUTH_SOCK. The bastion relays each such channel to the client as a
// channel of the same type, reading the agent protocol both ways
// (agentproto.go): listing keys and signing pass, anything that would
// change the agent is refused, and every request is an audit record.
const (
	agentRequestType = "auth-agent-req@openssh.com"
	agentChannelType = "auth-agent@openssh.com"
)

// maxAgentChannels caps the agent channels open at once on one
// connection: each is a program on the target talking to the agent.
const maxAgentChannels = 16

// agentForwarding is a connection's agent forwarding state.
type agentForwarding struct {
	asked atomic.Bool  // an agent request was passed to the target
	open  atomic.Int32 // agent channels open now
}

// agentRequest passes a session channel's auth-agent-req@openssh.com on
// to the target (agentRefusal has allowed it): from then on the target
// may open agent channels on this connection. The request has no fields
// (PROTOCOL §2.1); one with any is refused.
func (st *channel) agentRequest(r *ssh.Request) ([]byte, bool) {
	if len(r.Payload) != 0 {
		audit.Record(st.c.log, audit.SessionRequest, "channel", st.n, "request", agentRequestType, "allowed", false, "reason", "malformed request")
		return nil, false
	}
	st.c.agent.asked.Store(true)
	audit.Record(st.c.log, audit.SessionRequest, "channel", st.n, "request", agentRequestType, "allowed", true, "rule", st.c.grant.Rule)
	return nil, true
}

// serveAgent takes the agent channels the target opens on up until up
// closes, each on a goroutine c owns. Without it x/crypto's Client
// rejects them.
func (c *conn) serveAgent(up *ssh.Client) {
	chans := up.HandleChannelOpen(agentChannelType)
	if chans == nil { // a handler is registered already
		return
	}
	c.goSafe(func() {
		for nc := range chans {
			c.goSafe(func() { c.agentChannel(nc) })
		}
	})
}

// agentChannel relays one agent channel the target opened to a new agent
// channel to the client; refused if the client never asked for agent
// forwarding on this connection, or too many are open.
func (c *conn) agentChannel(nc ssh.NewChannel) {
	log := c.log
	refuse := func(reason string) {
		audit.Record(log, audit.Agent, "allowed", false, "reason", reason)
		nc.Reject(ssh.Prohibited, "agent forwarding refused by the bastion: "+reason)
	}
	if !c.agent.asked.Load() {
		refuse("the client did not ask for agent forwarding")
		return
	}
	if c.agent.open.Add(1) > maxAgentChannels {
		c.agent.open.Add(-1)
		refuse(fmt.Sprintf("more than %d agent channels open", maxAgentChannels))
		return
	}
	defer c.agent.open.Add(-1)
	a := c.newAgentRelay()
	if err := a.begin(); err != nil {
		audit.Record(a.log, audit.Agent, "allowed", true, "ok", false, "reason", "not recorded: "+err.Error())
		nc.Reject(ssh.ConnectionFailed, "agent forwarding refused by the bastion: not recorded")
		a.end("not recorded")
		return
	}
	c.mu.Lock()
	sc := c.sc
	c.mu.Unlock()
	ch, creqs, err := sc.OpenChannel(agentChannelType, nil)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, "the client refused the agent channel")
		a.end("client refused the channel: " + logSafe(err.Error()))
		return
	}
	// The request discarders end when their channels close, which
	// every path out of here does before the deferred wait.
	var reqs sync.WaitGroup
	defer reqs.Wait()
	reqs.Go(func() { ssh.DiscardRequests(creqs) })
	uch, ureqs, err := nc.Accept()
	if err != nil {
		ch.Close()
		a.end("target gone before the channel opened")
		return
	}
	reqs.Go(func() { ssh.DiscardRequests(ureqs) })
	audit.Record(a.log, audit.Agent, "allowed", true, "ok", true, "recording", a.id)
	c.track(ch)
	defer c.untrack(ch)
	reason := a.relay(ch, uch)
	// EOF, then CLOSE, both ways (RFC 4254 §5.3).
	uch.CloseWrite()
	uch.Close()
	ch.CloseWrite()
	ch.Close()
	a.end(reason)
}

// agentRelay is one agent channel: its index entry and recording, and
// what passed. Only its relay goroutine uses it after begin.
type agentRelay struct {
	c     *conn
	n     uint32 // numbered with the connection's session channels
	id    string // the index entry's ID
	log   *slog.Logger
	rec   *recording
	start time.Time

	toClient, toTarget int64 // bytes to the client's agent, to the target
	ops                map[string]int
	refused            int
}

func (c *conn) newAgentRelay() *agentRelay {
	n := c.chanSeq.Add(1)
	return &agentRelay{c: c, n: n, id: c.id + "-" + strconv.Itoa(int(n)), log: c.log.With("channel", n),
		start: time.Now().UTC(), ops: map[string]int{}}
}

// begin starts the index entry and recording (with recording on): the
// requests are its text, one line each.
func (a *agentRelay) begin() error {
	c := a.c
	if c.s.cfg.Recording == nil {
		return nil
	}
	meta := c.sessionMeta(a.id, agentKind, a.command(), a.start)
	identity := logSafe(c.identity.Name())
	h := recorder.Header{
		Timestamp: a.start.Unix(),
		Title:     fmt.Sprintf("%s's agent used from %s", identity, c.grant.Target.Name),
		Postern: &recorder.Meta{ID: a.id, Session: c.id, Identity: identity, Login: logSafe(c.grant.Login),
			Target: c.grant.Target.Name, Client: c.remote.String(), Kind: agentKind, Command: a.command()},
	}
	var err error
	if a.rec, err = c.beginRecording(c.ctx, a.n, meta, h, ""); err != nil {
		return err
	}
	return a.rec.output([]byte("-- agent forwarding: a program on " + c.grant.Target.Name + " opened a connection to " +
		terminalText(identity) + "'s agent; only listing keys and signing are relayed\r\n"))
}

// agentKind is the kind of an agent channel's index entry.
const agentKind = "agent"

// command is what the index shows: the requests by kind.
func (a *agentRelay) command() string {
	var parts []string
	for _, name := range []string{"list", "sign", "session-bind"} {
		if n := a.ops[name]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", name, n))
		}
	}
	if a.refused > 0 {
		parts = append(parts, fmt.Sprintf("refused %d", a.refused))
	}
	if len(parts) == 0 {
		return "ssh-agent"
	}
	return "ssh-agent: " + strings.Join(parts, ", ")
}

// relay answers the target's requests until either side closes or breaks
// the protocol, and returns why it ended. Each request is judged; one
// that passes goes to the client's agent, whose answer is checked and
// sent back. One request at a time: the protocol answers in order.
func (a *agentRelay) relay(client, target io.ReadWriter) string {
	for {
		req, err := readAgentMessage(target)
		if err != nil {
			return closeReason("target", err)
		}
		op := judgeAgentRequest(req)
		if !op.allowed {
			a.refused++
			a.record(&op)
			if err := writeAgentMessage(target, []byte{agentMsgFailure}); err != nil {
				return closeReason("target", err)
			}
			a.toTarget += 5
			continue
		}
		if err := writeAgentMessage(client, req); err != nil {
			return closeReason("client", err)
		}
		a.toClient += int64(4 + len(req))
		rep, err := readAgentMessage(client)
		if err != nil {
			return closeReason("client", err)
		}
		if err := op.checkAnswer(rep); err != nil {
			op.result = "not relayed: " + err.Error()
			a.record(&op)
			return logSafe(err.Error())
		}
		a.ops[op.name]++
		a.record(&op)
		if err := writeAgentMessage(target, rep); err != nil {
			return closeReason("target", err)
		}
		a.toTarget += int64(4 + len(rep))
	}
}

// closeReason says why side ("client", "target") ended the relay with
// err.
func closeReason(side string, err error) string {
	switch {
	case errors.Is(err, io.EOF):
		return side + " closed"
	case errors.Is(err, errAgentMessage):
		return side + " sent a " + err.Error()
	}
	return side + ": " + logSafe(err.Error())
}

// record writes op's audit record and its line in the recording.
func (a *agentRelay) record(op *agentOp) {
	attrs := []any{"op", op.name, "allowed", op.allowed, "recording", a.id}
	line := op.name
	if op.key != "" {
		attrs = append(attrs, "key", op.key)
		line += " with " + op.key
	}
	if op.detail != "" {
		attrs = append(attrs, "detail", op.detail)
		line += ": " + op.detail
	}
	if op.allowed {
		attrs = append(attrs, "ok", op.ok, "result", op.result)
		line += " → " + op.result
	} else {
		attrs = append(attrs, "reason", "only listing keys and signing are relayed")
		line = "refused: " + line + " (only listing keys and signing are relayed)"
	}
	audit.Record(a.log, audit.AgentOp, attrs...)
	a.rec.output([]byte("-- " + terminalText(line) + "\r\n"))
}

// end seals the index entry and writes the channel's last audit record.
func (a *agentRelay) end(reason string) {
	if a.c.ctx.Err() != nil {
		reason = "connection ended: " + context.Cause(a.c.ctx).Error()
	}
	requests := 0
	for _, n := range a.ops {
		requests += n
	}
	a.rec.output(fmt.Appendf(nil, "-- closed (%s): relayed %d, refused %d; %d bytes to the agent, %d to the target\r\n",
		terminalText(reason), requests, a.refused, a.toClient, a.toTarget))
	a.rec.setCommand(a.command())
	a.rec.finish(nil, "", a.toTarget, a.toClient, 0)
	audit.Record(a.log, audit.AgentEnd, "recording", a.id, "requests", requests, "refused", a.refused,
		"bytes_to_agent", a.toClient, "bytes_to_target", a.toTarget, "duration_ms", time.Since(a.start).Milliseconds(),
		"close_reason", reason)
}
