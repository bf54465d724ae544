//go:build linux

package bastion

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// quickAckOpt reads or, with set, writes TCP_QUICKACK on c's socket.
// Linux reads it as 1 while the socket acknowledges at once and 0 in
// delayed-acknowledgement ("pingpong") mode, and writing 0 enters that
// mode.
func quickAckOpt(t *testing.T, c *net.TCPConn, set *int) int {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var opErr error
	err = raw.Control(func(fd uintptr) {
		if set != nil {
			opErr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, *set)
			return
		}
		v, opErr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	})
	if err = errors.Join(err, opErr); err != nil {
		t.Fatal(err)
	}
	return v
}

// quickAckAfterRead puts a fresh loopback connection's server side in
// delayed-acknowledgement mode, reads from it through wrap (a read that
// times out at once: nothing was sent, so no acknowledgement is pending
// and no timer can change the mode meanwhile), and returns the mode
// after the read.
func quickAckAfterRead(t *testing.T, wrap func(net.Conn) net.Conn) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sc := nc.(*net.TCPConn)
	zero := 0
	quickAckOpt(t, sc, &zero)
	if got := quickAckOpt(t, sc, nil); got != 0 {
		t.Fatalf("TCP_QUICKACK reads %d after writing 0: the kernel did not enter delayed-ACK mode, so this test shows nothing", got)
	}
	if err := sc.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := wrap(sc).Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want the deadline's error", err)
	}
	return quickAckOpt(t, sc, nil)
}

// During setup every read through a wrapped connection first asks for
// immediate acknowledgements, so a peer's second small write (OpenSSH's
// NEWKEYS then service request, sshd's host keys then channel open
// confirmation, sent with Nagle's algorithm on) does not wait up to 40 ms
// for a delayed ACK; after end, and unwrapped, reads leave the kernel's
// mode alone. How much setup this saves is measured by benchmarks
// (postern-bench's connect phase, BenchmarkSetupClientLatency's
// delayed-acks case), not here.
func TestSetupQuickAckBeforeRead(t *testing.T) {
	t.Parallel()
	var setup quickAcks
	if got := quickAckAfterRead(t, setup.wrap); got != 1 {
		t.Errorf("during setup TCP_QUICKACK reads %d after a read, want 1 (acknowledge at once)", got)
	}
	if got := quickAckAfterRead(t, func(nc net.Conn) net.Conn { return nc }); got != 0 {
		t.Errorf("unwrapped TCP_QUICKACK reads %d after a read, want 0", got)
	}
	var over quickAcks
	over.end()
	if got := quickAckAfterRead(t, over.wrap); got != 0 {
		t.Errorf("after end TCP_QUICKACK reads %d after a read, want 0 (the kernel's default)", got)
	}
}
