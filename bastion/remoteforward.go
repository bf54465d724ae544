package bastion

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
)

// maxRemoteForwards caps the remote forwards (listeners on the target)
// one connection may hold.
const maxRemoteForwards = 16

// remoteRequest is the payload of tcpip-forward and cancel-tcpip-forward
// (RFC 4254 §7.1).
type remoteRequest struct {
	Addr string
	Port uint32
}

// remoteForwards are a connection's listeners on the target, by the
// address and port the client asked for. Safe for concurrent use.
type remoteForwards struct {
	mu sync.Mutex // guards m
	m  map[remoteRequest]net.Listener
}

// reserve takes req's place, or says why not.
func (r *remoteForwards) reserve(req remoteRequest) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[remoteRequest]net.Listener{}
	}
	if _, dup := r.m[req]; dup {
		return "already forwarded"
	}
	if len(r.m) >= maxRemoteForwards {
		return fmt.Sprintf("more than %d remote forwards on one connection", maxRemoteForwards)
	}
	r.m[req] = nil
	return ""
}

// set fills req's reserved place with l, or frees it if l is nil.
func (r *remoteForwards) set(req remoteRequest, l net.Listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l == nil {
		delete(r.m, req)
		return
	}
	r.m[req] = l
}

// tcpipForward answers a tcpip-forward request (ssh -R): if the
// certificate and the grant allow the port, the bastion asks the target to
// listen on its loopback, and relays each connection the target accepts
// to the client as a forwarded-tcpip channel, opaque, counted and indexed
// like a tcp forward. Refusals are audited; the client learns only that
// the request failed (a global request has no message), so the reason is
// logged for the administrator. Connections are relayed only after the
// reply (after): OpenSSH refuses a forwarded-tcpip channel for a forward
// it has not yet been told of.
func (c *conn) tcpipForward(up *ssh.Client, r *ssh.Request) (ok bool, payload []byte, after func()) {
	var req remoteRequest
	if err := ssh.Unmarshal(r.Payload, &req); err != nil {
		return false, nil, nil
	}
	log := c.log.With("remote_forward_host", logSafe(req.Addr), "remote_forward_port", req.Port)
	refuse := func(reason string) (bool, []byte, func()) {
		audit.Record(log, audit.Forward, "direction", "remote", "allowed", false, "reason", reason)
		return false, nil, nil
	}
	if ref := forwardRefusal(c.cert); ref != nil {
		return refuse(ref.Reason)
	}
	if deny := c.grant.RemoteForward(req.Port); deny != nil {
		return refuse(deny.Reason)
	}
	switch req.Addr {
	case "", "localhost", "127.0.0.1", "::1":
	default:
		return refuse("remote forwards listen on the target's loopback only")
	}
	if declares(c.grant.Target, req.Port) {
		// Its service down, a declared port is free: a listener there
		// would take other users' forwards to it (their passwords, their
		// queries) to this client.
		return refuse("remote forward on a port the target declares for forwarding")
	}
	if reason := c.remotes.reserve(req); reason != "" {
		return refuse(reason)
	}
	// The target's answer is awaited without the lock: the entry,
	// reserved, keeps a second request for the same port out.
	l, err := up.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(req.Port))))
	if err == nil && declares(c.grant.Target, uint32(l.Addr().(*net.TCPAddr).Port)) {
		l.Close() // port 0, and the target chose a declared port
		l, err = nil, errors.New("the port the target chose is declared for forwarding")
	}
	c.remotes.set(req, l)
	if err != nil {
		return refuse("target refused to listen: " + logSafe(err.Error()))
	}
	bound := uint32(l.Addr().(*net.TCPAddr).Port)
	audit.Record(log, audit.Forward, "direction", "remote", "allowed", true, "bound_port", bound)
	after = func() { c.goSafe(func() { c.acceptRemote(l, req, bound, log) }) }
	if req.Port == 0 {
		return true, ssh.Marshal(struct{ Port uint32 }{bound}), after
	}
	return true, nil, after
}

// declares reports whether t declares port for forwarding (ssh -L).
func declares(t *Target, port uint32) bool {
	for _, f := range t.Forwards {
		if uint32(f.Port) == port {
			return true
		}
	}
	return false
}

// cancelTCPIPForward answers cancel-tcpip-forward: the listener closes;
// connections already relayed go on.
func (c *conn) cancelTCPIPForward(r *ssh.Request) bool {
	var req remoteRequest
	if err := ssh.Unmarshal(r.Payload, &req); err != nil {
		return false
	}
	c.remotes.mu.Lock()
	l := c.remotes.m[req]
	if l != nil { // not one still being set up
		delete(c.remotes.m, req)
	}
	c.remotes.mu.Unlock()
	if l == nil {
		return false
	}
	l.Close()
	return true
}

// acceptRemote relays each connection the target accepts on l until l
// closes (cancelled, or the connection to the target ended).
func (c *conn) acceptRemote(l net.Listener, req remoteRequest, bound uint32, log *slog.Logger) {
	for {
		nc, err := l.Accept()
		if err != nil {
			return
		}
		c.goSafe(func() { c.relayRemote(nc, req, bound, log) })
	}
}

// halfConn is a connection either end of a forward can half-close.
type halfConn interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// relayRemote relays one connection accepted on the target to the client
// (RFC 4254 §7.2: forwarded-tcpip, naming the address and port the client
// asked for and the originator).
func (c *conn) relayRemote(nc net.Conn, req remoteRequest, bound uint32, log *slog.Logger) {
	defer nc.Close()
	target, ok := nc.(halfConn)
	if !ok {
		return
	}
	if !c.takeForward() {
		audit.Record(log, audit.Forward, "direction", "remote", "allowed", false, "reason", fmt.Sprintf("more than %d forwards open", maxForwards))
		return
	}
	defer c.forwards.Add(-1)
	var origin fwdRequest
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		origin.OriginHost, origin.OriginPort = a.IP.String(), uint32(a.Port)
	}
	origin.Host, origin.Port = req.Addr, bound
	f := c.newForward(origin, &Forward{Port: int(bound), Protocol: ForwardTCP}, log)
	f.remote = true
	if err := f.begin(); err != nil {
		audit.Record(log, audit.Forward, "direction", "remote", "allowed", true, "ok", false, "reason", "not recorded: "+err.Error())
		f.end("not recorded")
		return
	}
	c.mu.Lock()
	sc := c.sc
	c.mu.Unlock()
	payload := ssh.Marshal(struct {
		Addr       string
		Port       uint32
		OriginAddr string
		OriginPort uint32
	}{req.Addr, bound, origin.OriginHost, origin.OriginPort})
	ch, reqs, err := sc.OpenChannel("forwarded-tcpip", payload)
	if err != nil {
		f.end("client refused the channel: " + logSafe(err.Error()))
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { ssh.DiscardRequests(reqs) })
	audit.Record(f.log, audit.Forward, "direction", "remote", "allowed", true, "ok", true, "protocol", ForwardTCP, "recording", f.id)
	c.track(ch)
	defer c.untrack(ch)
	f.relayTCP(ch, target, false)
	ch.Close()
	f.end("")
}
