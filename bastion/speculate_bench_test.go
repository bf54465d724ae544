package bastion

import (
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// BenchmarkSetupClientLatency times a connection's setup (dial, session
// channel, exec true) from a client 20 ms away (one way; loopback through a delay
// line), with and without the speculative upstream connection: the
// client's authentication round trips are what speculation overlaps the
// target's TCP connect, sshd start and key exchange with. On loopback
// without latency the client authenticates in a few milliseconds, too
// fast for any overlap to show. The third case leaves acknowledgements
// to the kernel during setup (quickack.go): sshd's channel open
// confirmation then waits for a delayed ACK.
//
//	go test -run '^$' -bench SetupClientLatency -benchtime 20x ./bastion
func BenchmarkSetupClientLatency(b *testing.B) {
	h := env(b)
	signer := fileSigner(b, h.alice)
	for _, tc := range []struct {
		name       string
		off, slack bool
	}{{"dial-after-auth", true, false}, {"speculative", false, false}, {"delayed-acks", false, true}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := h.extraServer(b, Config{Policy: h.policy, noSpeculation: tc.off, noQuickAck: tc.slack})
			addr := delayLine(b, net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.port)), 20*time.Millisecond)
			cfg := &ssh.ClientConfig{
				User: "root@t1", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
				HostKeyCallback: ssh.FixedHostKey(h.auth.HostKey.PublicKey()), Timeout: 10 * time.Second,
			}
			var open time.Duration
			for b.Loop() {
				c, err := ssh.Dial("tcp", addr, cfg)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				s, err := c.NewSession()
				if err != nil {
					b.Fatal(err)
				}
				open += time.Since(start)
				if err := s.Run("true"); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			// From authenticated to the session channel open: the
			// upstream connection's setup that speculation did not
			// hide, and the channel's own open.
			b.ReportMetric(float64(open.Milliseconds())/float64(b.N), "open-ms/op")
		})
	}
}

// delayLine listens on loopback and relays each connection to addr, every
// chunk delayed by d in each direction; it stops with the benchmark.
func delayLine(b *testing.B, addr string, d time.Duration) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			go delay(out, in, d)
			go delay(in, out, d)
		}
	}()
	return l.Addr().String()
}

// delay copies src to dst, each chunk d after it was read, and closes
// both at the end.
func delay(dst, src net.Conn, d time.Duration) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(d), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at)) // simulated latency, not synchronisation
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range q { // let the reader end
	}
}
