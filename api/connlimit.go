package api

import (
	"net"
	"net/netip"
	"sync"
)

// Defaults of ServerConfig's connection limits.
const (
	DefaultMaxConns          = 4096
	DefaultMaxConnsPerClient = 64
)

// connLimit is a listener that holds at most total connections at once,
// and at most perClient from one client (an IPv4 address or an IPv6 /64,
// as the failure limiter counts them): a connection past either is closed
// as soon as it is accepted. Without it, a client that opens connections
// and sends its headers slowly (each within ReadHeaderTimeout) holds
// memory and descriptors without bound, which the bastion's SSH listener
// shares.
type connLimit struct {
	net.Listener
	total, perClient int

	mu     sync.Mutex // guards all and client
	all    int
	client map[netip.Prefix]int
}

func newConnLimit(l net.Listener, total, perClient int) *connLimit {
	return &connLimit{Listener: l, total: total, perClient: perClient, client: map[netip.Prefix]int{}}
}

// Accept returns the next connection within the limits.
func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var addr netip.Addr
		if tcp, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			addr = tcp.AddrPort().Addr().Unmap()
		}
		key := clientKey(addr)
		l.mu.Lock()
		if l.all >= l.total || l.client[key] >= l.perClient {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.all++
		l.client[key]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: sync.OnceFunc(func() { l.release(key) })}, nil
	}
}

func (l *connLimit) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all--
	if l.client[key]--; l.client[key] <= 0 {
		delete(l.client, key)
	}
}

// limitedConn gives its place back when closed (once).
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// CloseWrite half-closes a TCP connection, which net/http uses to end a
// response before closing.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
