package bastion

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
)

// AdminUser is the reserved SSH user name of the admin connection:
// `ssh -p 2222 postern@bastion whoami` runs a built-in command on the
// bastion itself instead of reaching a target. No target or login may be
// named so (ParseUser refuses it, in any case, and so does the config).
const AdminUser = "postern"

// errReservedName is what ParseUser returns for a user name that names
// AdminUser as a target or a login.
var errReservedName = errors.New(`"` + AdminUser + `" is reserved for the admin connection`)

// reserved reports whether name is AdminUser in any case: "Postern" as a
// target would look like the admin connection to every reader of a log.
func reserved(name string) bool { return strings.EqualFold(name, AdminUser) }

// CheckName reports whether name may be a target or login name: what
// ParseUser accepts, and not AdminUser. The config checks its names with
// it, so that a name the bastion could never route is refused at start.
func CheckName(name string) error {
	if !validName(name) {
		return fmt.Errorf("%q is not a valid name: use 1 to 128 of A-Z a-z 0-9 . _ -", name)
	}
	if reserved(name) {
		return fmt.Errorf("%q is reserved for the admin connection (ssh %s@bastion); choose another name", name, AdminUser)
	}
	return nil
}

// A route is what a connection does once the handshake is over: a table
// from channel type to handler and one from global request type to
// handler (the model is gliderlabs/ssh's ChannelHandlers and
// RequestHandlers). A type in neither table is refused. The user name
// decides the route: LOGIN@TARGET is a proxy connection (proxyRoute),
// AdminUser the admin connection (adminRoute).
type route struct {
	// name is "proxy" or "admin", for logs and audit records.
	name string
	// channels handle the channels the client opens (RFC 4254 §5.1).
	// Each runs on a goroutine the connection owns (conn.goSafe) and
	// must accept or reject its channel.
	channels map[string]channelHandler
	// requests answer the client's global requests (RFC 4254 §4); the
	// reply is sent for them. Nil or missing means "failure".
	requests map[string]requestHandler
	// open counts the channels being served, at most
	// Limits.MaxChannels.
	open atomic.Int32
}

// channelHandler handles one channel the client asked to open.
type channelHandler func(nc ssh.NewChannel)

// requestHandler answers one global request; after, if not nil, runs
// once the reply has been sent (what must not reach the client before
// it, such as the connections of a remote forward).
type requestHandler func(r *ssh.Request) (ok bool, payload []byte, after func())

// proxyRoute is the route of a LOGIN@TARGET connection: session channels
// and direct-tcpip forwards, each proxied to a channel on up, and remote
// forwards (tcpip-forward) where the grant allows them.
func (c *conn) proxyRoute(up *ssh.Client) *route {
	return &route{
		name: "proxy",
		channels: map[string]channelHandler{
			"session":      func(nc ssh.NewChannel) { c.session(nc, up) },
			"direct-tcpip": func(nc ssh.NewChannel) { c.directTCPIP(nc, up) },
		},
		requests: map[string]requestHandler{
			"tcpip-forward": func(r *ssh.Request) (bool, []byte, func()) { return c.tcpipForward(up, r) },
			"cancel-tcpip-forward": func(r *ssh.Request) (bool, []byte, func()) {
				return c.cancelTCPIPForward(r), nil, nil
			},
		},
	}
}

// open starts the handler of nc's channel type on a goroutine c owns, or
// rejects nc if the route has none.
func (c *conn) open(rt *route, nc ssh.NewChannel) {
	h := rt.channels[nc.ChannelType()]
	if h == nil {
		attrs := []any{"channel_type", logSafe(nc.ChannelType()), "reason", "channel type not supported"}
		if !c.admin { // an admin connection's logger already says "route"
			attrs = append(attrs, "route", rt.name)
		}
		audit.Record(c.log, audit.ChannelRefused, attrs...)
		nc.Reject(ssh.UnknownChannelType, "postern: channel type "+strconv.Quote(logSafe(nc.ChannelType()))+" is not supported")
		return
	}
	if max := c.s.cfg.Limits.MaxChannels; rt.open.Add(1) > int32(max) {
		rt.open.Add(-1)
		c.s.refused(&limitRefusal{limit: LimitChannels, attrs: []any{"max", max}}, c.lim.src,
			"client", c.remote.String(), "session", c.id, "identity", logSafe(c.identity.Name()), "channel_type", logSafe(nc.ChannelType()))
		nc.Reject(ssh.ResourceShortage, fmt.Sprintf("postern: %d channels are already open on this connection, the limit; close one, or open another connection", max))
		return
	}
	c.goSafe(func() {
		defer rt.open.Add(-1)
		h(nc)
	})
}

// serveRequests answers the client's global requests until reqs closes,
// which happens when the connection does. With no handler the answer is
// failure: OpenSSH takes that for keepalive@openssh.com as a sign of life,
// and remote forwarding (tcpip-forward) is refused where no handler is.
func (c *conn) serveRequests(rt *route, reqs <-chan *ssh.Request) {
	for r := range reqs {
		var ok bool
		var payload []byte
		var after func()
		if h := rt.requests[r.Type]; h != nil {
			ok, payload, after = h(r)
		}
		if r.WantReply {
			r.Reply(ok, payload)
		}
		if after != nil {
			after()
		}
	}
}
