package sshdproc

import (
	"net"
	"os"
	"strconv"
	"testing"
)

// TestFreePortOutsideEphemeralRange: FreePort's ports come from below the
// kernel's ephemeral range, where no socket that connects or listens on
// port 0 is given them, and can be listened on. A port from listening on
// port 0 (inside the range) went to such a socket in CI between FreePort
// and the bind of the program it was meant for.
func TestFreePortOutsideEphemeralRange(t *testing.T) {
	t.Parallel()
	low, err := ephemeralLow()
	if err != nil || low-freePortLow < 1000 {
		if os.Getenv("CI") != "" {
			// CI's machines leave room; without it FreePort's guarantee is off.
			t.Fatalf("no room below the ephemeral range (starts at %d, %v): FreePort lets the kernel pick", low, err)
		}
		t.Skipf("no room below the ephemeral range (starts at %d, %v): FreePort lets the kernel pick", low, err)
	}
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < freePortLow || p >= low {
			t.Fatalf("port %d: want one in [%d, %d), below the ephemeral range", p, freePortLow, low)
		}
		seen[p] = true
	}
	if len(seen) < 40 {
		t.Fatalf("50 draws gave %d distinct ports: not random enough to keep parallel callers apart", len(seen))
	}
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("listen on the free port: %v", err)
	}
	ln.Close()
}
