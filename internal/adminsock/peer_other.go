//go:build !linux

package adminsock

import (
	"errors"
	"net"
)

// peerCred is not implemented outside Linux: without the peer's
// credentials neither side can tell who is on the other end, so the admin
// socket is refused (fail closed) and admin commands need the server
// stopped.
func peerCred(net.Conn) (Peer, error) {
	return Peer{}, errors.New("peer credentials of a unix socket are only checked on Linux")
}
