//go:build linux

package bastion

import (
	"io"
	"net"
	"testing"
	"time"
)

// nagleGap times, on loopback, what OpenSSH's setup does: a peer without
// TCP_NODELAY sends two messages in two writes after the connection has
// carried data both ways. It returns the shortest of five waits for the
// second message: Nagle's algorithm sends it only when the first is
// acknowledged, which server, wrapped by wrap, delays or not.
func nagleGap(t *testing.T, wrap func(net.Conn) net.Conn) time.Duration {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	check := func(_ int, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	best := time.Hour
	for range 5 {
		client, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		if err := client.(*net.TCPConn).SetNoDelay(false); err != nil {
			t.Fatal(err)
		}
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		server := wrap(sc)
		one := make([]byte, 1)
		// Two exchanges: the server answers at once, as sshd and the
		// bastion do in the key exchange, so Linux delays its
		// acknowledgements from then on.
		for range 2 {
			check(client.Write([]byte("a")))
			check(io.ReadFull(server, one))
			check(server.Write([]byte("b")))
			check(io.ReadFull(client, one))
		}
		check(client.Write([]byte("x")))
		check(client.Write([]byte("y")))
		check(io.ReadFull(server, one))
		start := time.Now()
		check(io.ReadFull(server, one))
		best = min(best, time.Since(start))
	}
	return best
}

// During setup a wrapped connection acknowledges at once, so a peer's
// second small write follows its first without the delayed ACK's 40 ms;
// after end, and unwrapped, the kernel delays it. The unwrapped case
// shows that the test sees the wait it is about.
func TestSetupQuickAckNoNagleWait(t *testing.T) {
	t.Parallel()
	var setup quickAcks
	// A delayed ACK waits at least 40 ms (TCP_DELACK_MIN); the shortest
	// of five tries stays well under that even on a loaded machine.
	if got := nagleGap(t, setup.wrap); got > 30*time.Millisecond {
		t.Errorf("during setup the second write came %v after the first; want no delayed-ACK wait", got)
	}
	if got := nagleGap(t, func(nc net.Conn) net.Conn { return nc }); got < 30*time.Millisecond {
		t.Fatalf("without quick ACKs the second write came %v after the first: the kernel did not delay the ACK, so this test shows nothing", got)
	}
	var over quickAcks
	over.end()
	if got := nagleGap(t, over.wrap); got < 30*time.Millisecond {
		t.Errorf("after end the second write came %v after the first; want the kernel's default (a delayed ACK)", got)
	}
}
