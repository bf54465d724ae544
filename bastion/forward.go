package bastion

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/recorder"
)

// maxForwards caps the forwarded connections (ssh -L channels and
// connections accepted for ssh -R) one SSH connection may hold open at
// once: each holds buffers and, for postgres, a decoder each way.
const maxForwards = 64

// forwardsMessage is what the client is told of a forward over
// maxForwards.
var forwardsMessage = fmt.Sprintf("postern: more than %d forwarded connections are open on this SSH connection; close some, or open another SSH connection", maxForwards)

// takeForward counts one more open forward, or reports that maxForwards
// are open; a forward counted must be given back with c.forwards.Add(-1).
func (c *conn) takeForward() bool {
	if c.forwards.Add(1) > maxForwards {
		c.forwards.Add(-1)
		return false
	}
	return true
}

const sshJMessage = "postern: ProxyJump (ssh -J) is not supported: postern terminates SSH so it can record and mask the session. Connect with: ssh -p PORT LOGIN@TARGET@BASTION"

// fwdRequest is a direct-tcpip channel's payload (RFC 4254 §7.2).
type fwdRequest struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

// forward is one forwarded connection (ssh -L): its declaration, its
// index entry and recording, and what it carried.
type forward struct {
	c      *conn
	n      uint32 // numbered with the connection's session channels
	id     string // the index entry's ID
	req    fwdRequest
	decl   *Forward
	remote bool // ssh -R: the target accepted the connection
	log    *slog.Logger
	rec    *recording
	start  time.Time

	toTarget, toClient atomic.Int64

	mu     sync.Mutex // guards the fields below
	reason string     // why it ended, the first one set
	pg     pgSummary  // a postgres forward's startup and counts
}

// pgSummary is what the index keeps of a postgres forward's traffic.
type pgSummary struct {
	user, database     string
	statements, errors int64
	maskedPANs         int64
}

// directTCPIP handles a port-forwarding channel (RFC 4254 §7.2). Only
// ports the target declares, and the grant's rule allows, are forwarded,
// each by its declared protocol; everything else is refused as
// administratively prohibited, with the reason. A request for a target's
// SSH port is what `ssh -J` sends: refused with directions, because a
// relay would hide the session from the bastion.
func (c *conn) directTCPIP(nc ssh.NewChannel, up *ssh.Client) {
	var req fwdRequest
	if err := ssh.Unmarshal(nc.ExtraData(), &req); err != nil {
		nc.Reject(ssh.ConnectionFailed, "postern: malformed direct-tcpip request")
		return
	}
	log := c.log.With("forward_host", logSafe(req.Host), "forward_port", req.Port)
	decl := c.checkForward(nc, &req, log)
	if decl == nil {
		return
	}
	if !c.takeForward() {
		audit.Record(log, audit.Forward, "allowed", false, "reason", fmt.Sprintf("more than %d forwards open", maxForwards))
		nc.Reject(ssh.ResourceShortage, forwardsMessage)
		return
	}
	defer c.forwards.Add(-1)
	uch, ureqs, err := up.OpenChannel("direct-tcpip", ssh.Marshal(&req))
	if err != nil {
		audit.Record(log, audit.Forward, "allowed", true, "ok", false, "protocol", decl.Protocol, "reason", logSafe(err.Error()))
		nc.Reject(ssh.ConnectionFailed, "postern: target could not open the forwarded port")
		return
	}
	// The request discarders end when their channels close, which
	// every path out of here does before the deferred wait.
	var reqs sync.WaitGroup
	defer reqs.Wait()
	reqs.Go(func() { ssh.DiscardRequests(ureqs) })
	f := c.newForward(req, decl, log)
	if err := f.begin(); err != nil {
		uch.Close()
		audit.Record(log, audit.Forward, "allowed", true, "ok", false, "protocol", decl.Protocol, "reason", "not recorded: "+err.Error())
		nc.Reject(ssh.ConnectionFailed, userMessage(err, "postern: the forward cannot be recorded, so it was refused"))
		f.end("not recorded")
		return
	}
	ch, creqs, err := nc.Accept()
	if err != nil {
		uch.Close()
		f.end("client gone before the channel opened")
		return
	}
	audit.Record(log, audit.Forward, "allowed", true, "ok", true, "protocol", decl.Protocol, "recording", f.id)
	reqs.Go(func() { ssh.DiscardRequests(creqs) })
	c.track(ch)
	defer c.untrack(ch)
	switch decl.Protocol {
	case ForwardPostgres:
		f.relayPostgres(ch, uch)
	default:
		f.relayTCP(ch, uch, true)
	}
	ch.Close()
	uch.Close()
	f.end("")
}

// checkForward returns the declaration of the port req asks for if the
// certificate, the policy and the target allow it, with the destination
// rewritten to the target's loopback; else it refuses nc, audited on log,
// and returns nil.
func (c *conn) checkForward(nc ssh.NewChannel, req *fwdRequest, log *slog.Logger) *Forward {
	refuse := func(reason, msg string) *Forward {
		audit.Record(log, audit.Forward, "allowed", false, "reason", reason)
		nc.Reject(ssh.Prohibited, msg)
		return nil
	}
	if c.isSSHPort(req.Host, req.Port) {
		return refuse("ssh -J style relay to an SSH port", sshJMessage)
	}
	if c.refuseForward(nc, log) { // the certificate and the policy must both allow it
		return nil
	}
	if !c.grant.forwarding() {
		_, deny := c.grant.Forward(req.Port)
		return refuse(deny.Reason, deny.UserMessage())
	}
	// Forwarding goes to the target itself: its name or localhost means
	// the target's loopback; anything else is refused.
	switch req.Host {
	case c.grant.Target.Name, "localhost", "127.0.0.1", "::1":
		req.Host = "localhost"
		if _, p, err := net.SplitHostPort(c.grant.Target.Address); err == nil && p == strconv.Itoa(int(req.Port)) {
			return refuse("forward to the target's own SSH port", sshJMessage)
		}
	default:
		return refuse("destination is not the target", "postern: forwarding is only allowed to ports on "+c.grant.Target.Name+" itself")
	}
	decl, deny := c.grant.Forward(req.Port)
	if deny != nil {
		return refuse(deny.Reason, deny.UserMessage())
	}
	return decl
}

func (c *conn) newForward(req fwdRequest, decl *Forward, log *slog.Logger) *forward {
	n := c.chanSeq.Add(1)
	return &forward{c: c, n: n, id: c.id + "-" + strconv.Itoa(int(n)), req: req, decl: decl,
		log: log.With("channel", n), start: time.Now().UTC()}
}

// kind is the forward's kind in the index.
func (f *forward) kind() string {
	if f.decl.Protocol == ForwardPostgres {
		return recorder.KindPostgres
	}
	return recorder.KindForward
}

// command is what the index shows in its command column: PORT/PROTOCOL
// (the host is always the target's loopback), and a postgres forward's
// database and user.
func (f *forward) command() string {
	s := fmt.Sprintf("%d/%s", f.req.Port, f.decl.Protocol)
	if f.remote {
		s = "remote " + s
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pg.database != "" || f.pg.user != "" {
		s += " db=" + field(f.pg.database) + " user=" + field(f.pg.user)
	}
	return s
}

// field is a value of the command column as it stands, or quoted (Go
// syntax) if it is empty or holds a space, '=', '"' or a byte that is not
// printable ASCII: the database and user are the client's claim, and
// "db=prod user=admin" in one must not read as two fields.
func field(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '=' || c == '"' {
			return strconv.Quote(v)
		}
	}
	if v == "" {
		return `""`
	}
	return v
}

// describe is the index entry's Forward as it stands.
func (f *forward) describe() recorder.Forward {
	f.mu.Lock()
	defer f.mu.Unlock()
	return recorder.Forward{
		Host: logSafe(f.req.Host), Port: f.req.Port, Protocol: f.decl.Protocol,
		Originator:  logSafe(net.JoinHostPort(f.req.OriginHost, strconv.Itoa(int(f.req.OriginPort)))),
		CloseReason: f.reason, Remote: f.remote, Database: f.pg.database, DBUser: f.pg.user,
		Statements: f.pg.statements, Errors: f.pg.errors,
	}
}

// begin starts the index entry and recording (with recording on). An
// error is a cause whose UserMessage says the forward is refused; unless
// the recording is nil, it must still be ended.
func (f *forward) begin() error {
	c := f.c
	if c.s.cfg.Recording == nil {
		return nil
	}
	meta := c.sessionMeta(f.id, f.kind(), f.command(), f.start)
	fw := f.describe()
	meta.Forward = &fw
	identity := logSafe(c.identity.Name())
	h := recorder.Header{
		Timestamp: f.start.Unix(),
		Title:     fmt.Sprintf("%s → %s forward %s on %s", identity, f.decl.Protocol, f.command(), c.grant.Target.Name),
		Postern: &recorder.Meta{ID: f.id, Session: c.id, Identity: identity, Login: logSafe(c.grant.Login),
			Target: c.grant.Target.Name, Client: c.remote.String(), Kind: f.kind(), Command: f.command()},
	}
	first := fmt.Sprintf("forward to %s:%d (%s) from %s", fw.Host, fw.Port, fw.Protocol, fw.Originator)
	if f.remote {
		first = fmt.Sprintf("remote forward: %s connected to %s:%d on the target", fw.Originator, fw.Host, fw.Port)
	}
	if f.decl.Protocol == ForwardTCP {
		first += ": opaque, its bytes are counted, not recorded or masked"
	}
	var err error
	if f.rec, err = c.beginRecording(c.ctx, f.n, meta, h, ""); err != nil {
		return err
	}
	// As text, not a marker: play and asciinema show it.
	return f.rec.output([]byte("-- " + terminalText(first) + "\r\n"))
}

// setReason records why the forward ended, if no reason was set before;
// the connection's end takes precedence over what it caused.
func (f *forward) setReason(r string) {
	if f.c.ctx.Err() != nil {
		r = "connection ended: " + context.Cause(f.c.ctx).Error()
	}
	f.mu.Lock()
	if f.reason == "" {
		f.reason = r
	}
	f.mu.Unlock()
}

// end seals the index entry and writes the forward's last audit record.
func (f *forward) end(reason string) {
	if reason != "" {
		f.setReason(reason)
	}
	fw := f.describe()
	in, out := f.toTarget.Load(), f.toClient.Load()
	f.mu.Lock()
	masked := f.pg.maskedPANs
	f.mu.Unlock()
	f.rec.output(fmt.Appendf(nil, "-- closed (%s): %d bytes to the target, %d to the client\r\n", terminalText(fw.CloseReason), in, out))
	f.rec.setForward(fw, f.command())
	f.rec.finish(nil, "", in, out, masked)
	f.c.s.countForward(in, out, masked)
	attrs := []any{"protocol", fw.Protocol, "recording", f.id, "bytes_to_target", in, "bytes_to_client", out,
		"duration_ms", time.Since(f.start).Milliseconds(), "close_reason", fw.CloseReason}
	if fw.Protocol == ForwardPostgres {
		attrs = append(attrs, "database", fw.Database, "db_user", fw.DBUser, "statements", fw.Statements,
			"errors", fw.Errors, "masked_pans", masked)
	}
	audit.Record(f.log, audit.ForwardEnd, attrs...)
}
