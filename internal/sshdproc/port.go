package sshdproc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Bounds of FreePort's draw: at or above freePortLow and below the
// kernel's ephemeral range.
const (
	freePortLow   = 10000
	freePortDraws = 200
)

// portRangeFile holds the kernel's ephemeral port range, "LOW\tHIGH".
const portRangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// FreePort returns a TCP port on 127.0.0.1 that was free when asked, for a
// program that is told which port to listen on (sshd, PostgreSQL, ssh -L,
// ssh -R, a login's redirect port). It draws the port at random below the
// kernel's ephemeral range (ip_local_port_range): a port the kernel picks
// for a listener on port 0 is free again the moment that listener closes,
// and the kernel then hands it to the next socket that connects anywhere
// or listens on port 0 — a test suite opens thousands of loopback
// connections, and one of them took the port before sshd or ssh bound it
// (or a parallel test's listener answered on it). Below the range only an
// explicit bind takes a port, in practice another FreePort whose draw
// from some 20000 ports was the same. Another process may still take it
// before the caller binds it; Start retries for that reason. Where the
// range cannot be read or leaves too few ports below it, the kernel picks
// (port 0).
func FreePort() (int, error) {
	high, err := ephemeralLow()
	if err != nil || high-freePortLow < 1000 {
		return kernelPort()
	}
	var lastErr error
	for range freePortDraws {
		p := freePortLow + rand.IntN(high-freePortLow)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			lastErr = err
			continue
		}
		ln.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d draws below %d: %w", freePortDraws, high, lastErr)
}

// ephemeralLow returns the lowest port of the kernel's ephemeral range.
func ephemeralLow() (int, error) {
	b, err := os.ReadFile(portRangeFile)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, errors.New("malformed " + portRangeFile + ": " + string(b))
	}
	return strconv.Atoi(f[0])
}

// kernelPort is FreePort's fallback: the port the kernel picks.
func kernelPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
