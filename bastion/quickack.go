package bastion

import (
	"net"
	"sync/atomic"
	"syscall"
)

// Acknowledging at once while a connection is set up. Until a session
// starts, neither OpenSSH's client nor its sshd sets TCP_NODELAY, and
// both send some messages in two writes without waiting for an answer in
// between: the client its NEWKEYS and then the service request, sshd its
// host keys announcement and debug messages and then the channel open
// confirmation. Nagle's algorithm holds the second write until the first
// is acknowledged, and Linux, once a connection has exchanged data both
// ways, delays an acknowledgement up to 40 ms in the hope of sending it
// with data. Each such pair costs the connection's setup 40 ms on any
// network; on loopback, setup through the bastion paid it two or three
// times (once on the target's leg, once or twice on the client's), of
// about 180 ms. So the bastion asks for immediate acknowledgements
// (TCP_QUICKACK, which the kernel resets, hence before every read) on
// both legs until the connection's first channel is open to the client:
// the OpenSSH client sets TCP_NODELAY when its session channel opens,
// sshd when the session's program starts. After that reads cost no
// extra system call.

// quickAcks ends the setup phase of one client connection's legs. The
// zero value is in the setup phase; it is safe for concurrent use.
type quickAcks struct {
	over atomic.Bool
}

// wrap returns nc acknowledging at once until end, or nc itself when it
// is not a TCP connection or the platform has no TCP_QUICKACK.
func (q *quickAcks) wrap(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok || !haveQuickAck {
		return nc
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	return &quickAckConn{Conn: nc, raw: raw, q: q}
}

// end ends the setup phase: reads no longer ask for quick acknowledgements.
func (q *quickAcks) end() { q.over.Store(true) }

// quickAckConn is a connection that, during its quickAcks' setup phase,
// asks the kernel before every read to acknowledge what arrives at once.
type quickAckConn struct {
	net.Conn
	raw syscall.RawConn
	q   *quickAcks
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	if !c.q.over.Load() {
		// Best effort: a failure only costs the wait it would save.
		_ = c.raw.Control(setQuickAck)
	}
	return c.Conn.Read(p)
}
