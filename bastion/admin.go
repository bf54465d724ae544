package bastion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
)

// The admin connection is what the reserved user name AdminUser opens:
// `ssh postern@bastion COMMAND` runs one of the bastion's built-in commands
// (admincmd.go) as an exec request on a session channel. Nothing reaches a
// target: there is no dial, no shell, no terminal, no subsystem and no
// port forwarding. Any user with a valid certificate may open it; what
// each command allows is the command's business (Config.Admins).

// serveAdmin runs an admin connection after the handshake until the client
// leaves or the bastion ends it.
func (c *conn) serveAdmin(sc *ssh.ServerConn, chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request, start time.Time) {
	id := c.identity
	audit.Record(c.log, audit.Connect, "allowed", true, "principals", logSafeAll(id.Principals),
		"groups", logSafeAll(id.Groups), "key_id", logSafe(id.KeyID), "serial", id.Serial, "admin", c.s.isAdmin(id))

	c.touch()
	rt := c.adminRoute(c.ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c.serveRequests(rt, reqs) })
	wg.Go(func() { c.monitor(c.ctx, sc) })
	wg.Go(func() { c.waitToClose(sc) })
	for nc := range chans {
		c.open(rt, nc)
	}
	c.cancel(errors.New("client disconnected")) // first cause wins
	c.wg.Wait()
	wg.Wait()
	reason := context.Cause(c.ctx).Error()
	audit.Record(c.log, audit.Disconnect, "duration_ms", time.Since(start).Milliseconds(), "reason", reason)
}

// adminRoute is the admin connection's route: session channels run
// built-in commands, at most maxAdminChannels at a time; a forward gets a
// clear refusal instead of "unknown channel type". ctx ends with the
// connection.
func (c *conn) adminRoute(ctx context.Context) *route {
	// open counts the session channels being served; each handler
	// goroutine adds itself and removes itself when it returns.
	var open atomic.Int32
	return &route{
		name: "admin",
		channels: map[string]channelHandler{
			"session": func(nc ssh.NewChannel) {
				defer open.Add(-1)
				if open.Add(1) > maxAdminChannels {
					audit.Record(c.log, audit.ChannelRefused, "channel_type", "session", // c.log has the route
						"reason", "too many open channels", "limit", maxAdminChannels)
					nc.Reject(ssh.ResourceShortage, adminChannelsMessage)
					return
				}
				c.adminSession(ctx, nc)
			},
			"direct-tcpip": c.adminForward,
		},
	}
}

// maxAdminChannels caps the session channels open at once on one admin
// connection, as sshd's MaxSessions (10 by default) does: each costs
// goroutines and channel buffers, and no command needs more than one.
const maxAdminChannels = 10

// adminChannelsMessage is the reason a client is given for a session
// channel over maxAdminChannels (RFC 4254 §5.1: resource shortage).
var adminChannelsMessage = "postern: too many open channels on this admin connection (at most " +
	strconv.Itoa(maxAdminChannels) + "); close one and try again"

// adminForwardMessage is what ssh -L or -W through the admin connection
// shows.
const adminForwardMessage = "postern: the admin connection forwards no ports; connect as LOGIN@TARGET@bastion"

func (c *conn) adminForward(nc ssh.NewChannel) {
	audit.Record(c.log, audit.Forward, "allowed", false, "reason", "admin connection")
	nc.Reject(ssh.Prohibited, adminForwardMessage)
}

// adminChannel is one session channel of an admin connection. It runs at
// most one program: the built-in command of its exec request, or the
// refusal a shell or subsystem request gets. Only the channel's request
// loop (adminSession) reads or writes started.
type adminChannel struct {
	c       *conn
	ch      ssh.Channel
	n       uint32 // channel number within the connection, for logs
	started bool   // a program was started or refused: no other may start
}

// adminProgram is what runs on an admin channel: it writes to stdout and
// stderr and returns the exit status.
type adminProgram func(ctx context.Context, stdout, stderr io.Writer) int

// adminSession accepts a session channel and answers its requests until
// the client closes it; the program an exec request starts runs on a
// goroutine this function waits for, so that a later request (a signal,
// one day) is still read while it runs.
func (c *conn) adminSession(ctx context.Context, nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	c.track(ch)
	defer c.untrack(ch)
	ctx, cancel := context.WithCancelCause(ctx)
	a := &adminChannel{c: c, ch: ch, n: c.chanSeq.Add(1)}
	// No command reads input, but what the client sends must be read
	// all the same: x/crypto buffers a channel's input up to its window
	// (2 MiB) and opens the window again only as it is read, so unread
	// input would stay parked on the bastion for as long as the client
	// likes. It is discarded until the channel closes.
	var run, drain sync.WaitGroup
	drain.Go(func() { io.Copy(io.Discard, ch) })
	for r := range reqs {
		c.touch()
		if prog := a.request(r); prog != nil {
			run.Go(func() { a.run(ctx, prog) })
		}
	}
	cancel(errors.New("client closed the channel"))
	run.Wait()
	ch.Close() // ends the drain, if the client's CLOSE has not
	drain.Wait()
}

// request answers one channel request (RFC 4254 §6) and returns the
// program it starts, if any. The reply is sent before the program runs,
// so it reaches the client before any output and the exit status.
func (a *adminChannel) request(r *ssh.Request) adminProgram {
	var prog adminProgram
	ok := false
	switch {
	case a.started:
		// One program per channel (RFC 4254 §6.5); anything after it,
		// pty-req and env included, changes nothing.
	case r.Type == "exec":
		var req struct{ Command string }
		if err := ssh.Unmarshal(r.Payload, &req); err != nil {
			// A payload that does not decode is refused, never
			// guessed at: the client learns why and the channel ends.
			a.started = true
			a.refuse("exec", "malformed exec request", "postern: malformed exec request")
			r.Reply(false, nil)
			a.end(2)
			return nil
		}
		prog, ok = a.command(req.Command), true
	case r.Type == "shell":
		prog, ok = a.refusal("shell", 2, "postern: the admin connection has no shell; run a command: ssh "+AdminUser+"@bastion help"), true
	case r.Type == "subsystem":
		prog, ok = a.refusal("subsystem", 1, "postern: the admin connection has no subsystems; run a command: ssh "+AdminUser+"@bastion help"), true
	default:
		// pty-req (no command needs a terminal; OpenSSH says "PTY
		// allocation request failed" and goes on), agent and X11
		// forwarding are refused with an audit record and a line, as
		// on the proxy route (permit.go); env and the rest quietly.
		if ref := adminRequestRefusal(a.c.cert, r.Type); ref != nil {
			a.c.refuseSessionRequest(r.Type, ref, a.ch.Stderr(), a.n)
		} else {
			a.c.log.Debug("admin channel request refused", "channel", a.n, "request", logSafe(r.Type))
		}
	}
	if prog != nil {
		a.started = true
	}
	if r.WantReply {
		r.Reply(ok, nil)
	}
	return prog
}

// refusal is the program a shell or subsystem request gets: one line on
// stderr and status.
func (a *adminChannel) refusal(kind string, status int, msg string) adminProgram {
	a.refuse(kind, kind+" requested on the admin connection", "")
	return func(_ context.Context, _, stderr io.Writer) int {
		fmt.Fprintln(stderr, msg)
		return status
	}
}

// refuse writes the audit record of a refused program start and, if msg
// is not empty, shows msg on the channel's stderr.
func (a *adminChannel) refuse(kind, reason, msg string) {
	audit.Record(a.c.log, audit.ProgramRefused, "channel", a.n, "kind", kind, "reason", reason)
	if msg != "" {
		fmt.Fprintln(a.ch.Stderr(), msg)
	}
}

// run runs prog, then ends the channel: all output, exit-status, EOF,
// CLOSE (RFC 4254 §6.10). The output is not put through a stream masker:
// it holds serials and session IDs that a masker could take for card
// numbers (DESIGN invariant 8). Each command masks what came from a
// certificate or the client instead (shown), and the index holds masked
// text already. When the bastion ended the connection (its certificate
// expired or was revoked, a shutdown), the channel shows why instead of an
// exit status, as a proxied session does (channel.teardown).
func (a *adminChannel) run(ctx context.Context, prog adminProgram) {
	status := prog(ctx, a.ch, a.ch.Stderr())
	if msg := a.c.endNotice(); msg != "" {
		fmt.Fprintln(a.ch.Stderr(), msg)
		a.ch.CloseWrite()
		a.ch.Close()
		return
	}
	a.end(status)
}

// end sends the exit status, EOF and CLOSE.
func (a *adminChannel) end(status int) {
	a.ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
	a.ch.CloseWrite()
	a.ch.Close()
}

// isAdmin reports whether id is in Config.Admins: an entry NAME matches a
// principal of the certificate, an entry "group:NAME" a group of its
// groups@postern extension.
func (s *Server) isAdmin(id Identity) bool {
	for _, e := range s.current().Admins {
		if g, ok := strings.CutPrefix(e, adminGroupPrefix); ok {
			if slices.Contains(id.Groups, g) {
				return true
			}
		} else if slices.Contains(id.Principals, e) {
			return true
		}
	}
	return false
}

// adminGroupPrefix marks an admins entry that names a group.
const adminGroupPrefix = "group:"

// CheckAdmin reports whether entry may be in Config.Admins: a principal, or
// "group:NAME". Wildcards are refused: admins are named one by one.
func CheckAdmin(entry string) error {
	name, group := strings.CutPrefix(entry, adminGroupPrefix)
	switch {
	case strings.TrimSpace(name) == "":
		if group {
			return fmt.Errorf("%q names no group: use group:NAME", entry)
		}
		return errors.New("must not be empty")
	case strings.Contains(name, "*"):
		return fmt.Errorf("%q: wildcards are not allowed; name each admin principal, or group:NAME", entry)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%q has leading or trailing spaces", entry)
	case strings.ContainsFunc(name, func(r rune) bool { return r == ',' || unicode.IsSpace(r) || unicode.IsControl(r) }):
		// Certificates carry no such name (ca sign refuses them), so
		// the entry could never match: a typo for two entries.
		return fmt.Errorf("%q holds a comma, a space or a control character; give each admin its own entry", entry)
	}
	return nil
}
