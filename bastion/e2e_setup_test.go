//go:build linux

package bastion

import (
	"testing"
	"time"
)

// `ssh … true` through the bastion, with the real OpenSSH client and
// sshd, waits for no delayed acknowledgement during setup: without quick
// ACKs (quickack.go) the client's service request and the target's
// channel open confirmation each wait up to 40 ms for one. The shortest
// of five setups is compared, taking turns with a bastion that leaves
// acknowledgements to the kernel: load only lengthens setups, and the
// waits, at least 40 ms each, are not load.
func TestSetupNoDelayedAckWaits(t *testing.T) {
	h := env(t)
	on := h.extraServer(t, Config{Policy: h.policy})
	off := h.extraServer(t, Config{Policy: h.policy, noQuickAck: true})
	setup := func(b *harness) time.Duration {
		t.Helper()
		start := time.Now()
		r := b.ssh(t, h.alice, testUser+"@t1", nil, "true")
		d := time.Since(start)
		if r.ExitCode != 0 {
			t.Fatalf("ssh %s@t1 true: exit %d, stderr %q", testUser, r.ExitCode, r.Stderr)
		}
		return d
	}
	bestOn, bestOff := time.Hour, time.Hour
	for range 5 {
		bestOn = min(bestOn, setup(on))
		bestOff = min(bestOff, setup(off))
	}
	t.Logf("shortest setup: %v with quick ACKs, %v without", bestOn, bestOff)
	if bestOff-bestOn < 30*time.Millisecond {
		t.Fatalf("shortest setup %v with quick ACKs against %v without: want at least one 40 ms delayed-ACK wait fewer", bestOn, bestOff)
	}
}
