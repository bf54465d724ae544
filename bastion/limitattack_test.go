package bastion

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// Attacks on the connection limits by a hostile client, each against a
// bastion of its own.

// flushAudits writes every refusal and failed handshake the server has
// counted but not yet recorded, as closing it would.
func (s *Server) flushAudits() {
	s.limitLog.flush()
	s.loginLog.flush()
}

// settle waits until every connection b accepted before now has ended:
// a login from another address is accepted after them (the listen queue
// is first in, first out), and once it is over nothing holds a place.
func (b *harness) settle(t *testing.T, h *harness) {
	t.Helper()
	// While the bastion still takes the flood from its queue, the login
	// may be dropped by max_startups: try again.
	testenv.WaitFor(t, 60*time.Second, func() bool {
		r, _ := b.sshFrom(t, "127.0.0.1", h.alice, "root@t1", "true")
		return r.ExitCode == 0
	})
	testenv.WaitFor(t, 30*time.Second, func() bool { u, a := b.srv.gate.counts(); return u == 0 && a == 0 })
}

// Connections that close before key exchange (or fail it) cost the
// attacker one TCP handshake each and must not cost the bastion one audit
// record each: 300 from one address and 800 from as many addresses leave
// a bounded number of connect records, and their counts add up to every
// handshake the bastion saw.
func TestLimitAttackAuditFloodOfHandshakes(t *testing.T) {
	t.Parallel()
	h := env(t)
	raiseNoFile(t, 8192)
	b := h.extraServer(t, Config{Policy: h.policy})
	const one, many = 300, 800
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < one+many; i += 8 {
				src := "127.0.0.5"
				if i >= one {
					src = fmt.Sprintf("127.2.%d.%d", i>>8, i&0xff)
				}
				c, err := dialFrom(src, b.port)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d dials failed, the first: %v", len(errs), errs[0])
	}
	b.settle(t, h)
	mark := len(b.logs.String())
	records, fromOne := 0, 0
	for _, m := range auditRecords(b.logs.String()) {
		if m["event"] == "connect" && m["allowed"] == false {
			records++
			if strings.HasPrefix(fmt.Sprint(m["client"]), "127.0.0.5:") || m["source"] == "127.0.0.5" {
				fromOne++
			}
		}
	}
	t.Logf("%d handshakes closed early: %d connect records, %d of them for the one address", one+many, records, fromOne)
	if max := limitAuditBudget + loginAuditBurst; records > max || fromOne > loginAuditBurst {
		t.Fatalf("%d connect records (%d from one address) for %d handshakes closed early, want at most %d (%d)",
			records, fromOne, one+many, max, loginAuditBurst)
	}
	// Nothing is lost: the records' counts, and the refusals by a limit
	// of the ones the bastion closed at accept, add up to every one.
	b.srv.flushAudits()
	total := 0
	for _, m := range auditRecords(b.logs.String()) {
		n, _ := m["count"].(float64)
		if m["source"] == "127.0.0.1" || strings.HasPrefix(fmt.Sprint(m["client"]), "127.0.0.1:") {
			continue // the logins that waited for the flood
		}
		switch {
		case m["event"] == "connect" && m["allowed"] == false:
			total += max(int(n), 1)
		case m["event"] == "limit_refused":
			total += int(n)
		}
	}
	if total != one+many {
		t.Fatalf("the audit records count %d handshakes, want %d:\n%s", total, one+many, lastLines(b.logs.String()[mark:], 5))
	}
}

// A source whose connections waste places without ever offering a key
// (idle until the handshake timeout, before or after key exchange, or
// asking for "none" alone) is blocked like one that offers bad keys:
// otherwise one address could hold max_startups_per_source places again
// and again, and a few could fill max_startups for everyone.
func TestLimitAttackWastedHandshakesCountAsFailures(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, HandshakeTimeout: 300 * time.Millisecond,
		Limits: Limits{AuthFailures: 3}})
	// The client that asks for "none" and stops needs its key exchange
	// done before the timeout, which under -race on a loaded machine can
	// take longer than 300ms (the bastion then closes it first, and the
	// client sees EOF, not the refusal): a bastion with the default.
	patient := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{AuthFailures: 3}})
	hostKey := ssh.FixedHostKey(h.auth.HostKey.PublicKey())
	for _, tt := range []struct {
		name, src string
		srv       *harness // nil: b
		waste     func(nc net.Conn) error
	}{
		{"idle before key exchange", "127.0.0.6", nil, func(nc net.Conn) error {
			nc.Write([]byte("SSH-2.0-idle\r\n"))
			_, err := io.Copy(io.Discard, nc) // until the bastion closes it
			return err
		}},
		{"idle after key exchange", "127.0.0.7", nil, func(nc net.Conn) error {
			// Key exchange, "none" (every client's first request),
			// then a key the client never signs with: idle until the
			// bastion closes the connection at the timeout.
			release := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				_, _, _, err := ssh.NewClientConn(nc, "127.0.0.1", &ssh.ClientConfig{User: "root@t1", HostKeyCallback: hostKey,
					Auth: []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) { <-release; return nil, nil })}})
				done <- err
			}()
			testenv.WaitFor(t, 10*time.Second, func() bool { u, _ := b.srv.gate.counts(); return u == 0 })
			close(release)
			if err := <-done; err == nil {
				return errors.New("logged in")
			}
			return nil
		}},
		{"none only", "127.0.0.8", patient, func(nc net.Conn) error {
			_, _, _, err := ssh.NewClientConn(nc, "127.0.0.1", &ssh.ClientConfig{User: "root@t1", HostKeyCallback: hostKey})
			if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
				return fmt.Errorf("want refused, got %v", err)
			}
			return nil
		}},
	} {
		src := sourceOf(&net.TCPAddr{IP: net.ParseIP(tt.src)})
		srv := b
		if tt.srv != nil {
			srv = tt.srv
		}
		for i := range 3 {
			nc, err := dialFrom(tt.src, srv.port)
			if err != nil {
				t.Fatal(err)
			}
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := tt.waste(nc); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			nc.Close()
			testenv.WaitFor(t, 10*time.Second, func() bool { u, _ := srv.srv.gate.counts(); return u == 0 })
			if n := srv.srv.gate.failuresOf(src); n != i+1 {
				t.Fatalf("%s: %d connections wasted, %d failures counted", tt.name, i+1, n)
			}
		}
		nc, err := dialFrom(tt.src, srv.port)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		line, _ := io.ReadAll(nc)
		nc.Close()
		if !strings.Contains(string(line), "too many failed logins") {
			t.Fatalf("%s: the 4th connection got %q, want it closed at accept", tt.name, line)
		}
	}
	if r, _ := b.sshFrom(t, "127.0.0.1", h.alice, "root@t1", "echo", "in"); r.ExitCode != 0 {
		t.Fatalf("login from another address: exit %d stderr %q", r.ExitCode, r.Stderr)
	}
}

// Many sessions writing at once, each less than the recording growth
// between two checks of the free-disk floor: the floor is checked on what
// the bastion writes in all, so together they cannot take the disk far
// below it unseen.
func TestLimitAttackDiskFloorParallelSessions(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := tmpfsData(t, "40m")
	store := openStore(t, dir, h.auth.AuditKey)
	const floor, sessions = 32 << 20, 16
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, SessionLimits: SessionLimits{MinFreeDisk: floor}})
	// Each writes about 0.95 MiB of recording once every session has
	// begun (and passed the floor's check at the start).
	cmd := "read x; head -c 740000 /dev/urandom | base64 -w0; echo"
	go1 := make([]*io.PipeWriter, sessions)
	results := make([]testenv.Result, sessions)
	var wg sync.WaitGroup
	for i := range sessions {
		pr, pw := io.Pipe()
		go1[i] = pw
		wg.Go(func() { results[i] = b.ssh(t, h.alice, "root@t1", pr, cmd) })
	}
	testenv.WaitFor(t, 60*time.Second, func() bool {
		return strings.Count(b.logs.String(), `"event":"recording_start"`) == sessions
	})
	for _, pw := range go1 {
		pw.Write([]byte("go\n"))
		pw.Close()
	}
	wg.Wait()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Join(dir, "recordings"), &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	ended := 0
	for _, r := range results {
		if strings.Contains(string(r.Stderr), "is below its floor") {
			ended++
		}
	}
	t.Logf("%d sessions of 0.95 MiB: %d ended at the floor, %.2f MiB free at the end (floor %d MiB)", sessions, ended, float64(free)/(1<<20), floor>>20)
	if ended == 0 || free < floor-4<<20 {
		t.Fatalf("%d sessions ended at the floor and %d bytes are free, want some ended and at most 4 MiB below the floor", ended, free)
	}
	verifyStore(t, store)
}

// Connections that end abnormally (the client gone with sessions running
// and a channel refused at the cap, or refused at login by a limit) give
// back every place they held: the counts return to zero.
func TestLimitAttackPlacesComeBack(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{MaxChannels: 3, MaxConnsPerIdentity: 3}})
	for round := range 2 {
		var clients []*ssh.Client
		for range 3 {
			c := b.dialGo(t, h.alice, "root@t1")
			clients = append(clients, c)
			for range 3 {
				s, err := c.NewSession()
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Start("sleep 30"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := c.NewSession(); err == nil {
				t.Fatal("a channel past the cap was accepted")
			}
		}
		if _, a := b.srv.gate.counts(); a != 3 {
			t.Fatalf("round %d: %d authenticated places held by 3 connections", round, a)
		}
		// A 4th connection is refused by max_connections_per_identity.
		if r, _ := b.sshFrom(t, "127.0.0.1", h.alice, "root@t1", "true"); r.ExitCode == 0 {
			t.Fatalf("round %d: a 4th connection logged in", round)
		}
		for _, c := range clients {
			c.Close() // the client goes, its sessions still running
		}
		testenv.WaitFor(t, 30*time.Second, func() bool { u, a := b.srv.gate.counts(); return u == 0 && a == 0 })
	}
}

// Two addresses holding every unauthenticated place (max_startups full)
// cannot keep a user from a third address out: each of the user's logins
// takes the oldest place of the address holding the most.
func TestLimitAttackFewSourcesFillStartups(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{Startups: Startups{Start: 4, Rate: 30, Full: 8}, StartupsPerSource: 4}})
	var flood []net.Conn
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	for round := range 5 {
		// Top the flood up to 4 idle places from each of two addresses
		// (past start, MaxStartups drops some of its connections).
		held := func(src string) int {
			b.srv.gate.mu.Lock()
			defer b.srv.gate.mu.Unlock()
			return len(b.srv.gate.perSource[sourceOf(&net.TCPAddr{IP: net.ParseIP(src)})])
		}
		for i := 0; held("127.0.0.11")+held("127.0.0.12") < 8; i++ {
			if i == 500 {
				t.Fatalf("round %d: the flood holds %d and %d places after 500 connections", round, held("127.0.0.11"), held("127.0.0.12"))
			}
			src := "127.0.0.11"
			if held(src) >= 4 {
				src = "127.0.0.12"
			}
			c, err := dialFrom(src, b.port)
			if err != nil {
				t.Fatal(err)
			}
			flood = append(flood, c)
			// The bastion's version line once it took the place, or
			// its refusal and EOF.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte("SSH-2.0-flood\r\n"))
			if _, err := c.Read(make([]byte, 256)); err != nil {
				t.Fatal(err)
			}
		}
		r, _ := b.sshFrom(t, "127.0.0.13", h.alice, "root@t1", "echo", "in")
		if r.ExitCode != 0 || strings.TrimSpace(string(r.Stdout)) != "in" {
			t.Fatalf("round %d: login with max_startups held by two addresses: exit %d stderr %q", round, r.ExitCode, r.Stderr)
		}
	}
	if !strings.Contains(b.logs.String(), `"reason":"evicted: max_startups 4:30:8 was reached and a connection from 127.0.0.13, a source holding fewer places, took this one's"`) {
		t.Fatalf("no connect record says why flood connections were closed:\n%s", lastLines(b.logs.String(), 5))
	}
}

// Before login a client can make the bastion hold about one SSH packet per
// place: x/crypto allocates a packet's buffer when its length arrives. 256
// places (max_startups' full), each sent the length of the largest packet
// and nothing more, hold about 64 MiB, and all of it is freed at the
// handshake timeout.
func TestLimitAttackMemoryBeforeLogin(t *testing.T) {
	h := env(t)
	const places = 256
	raiseNoFile(t, 4*places)
	b := h.extraServer(t, Config{Policy: h.policy, HandshakeTimeout: 5 * time.Second,
		Limits: Limits{Startups: Startups{Start: places, Rate: 100, Full: places}}})
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	// The largest packet's length (cipher.go's maxPacket), 4 bytes of
	// padding, and no body.
	hdr := []byte{0, 4, 0, 0, 4}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range places {
		c, err := dialFrom(fmt.Sprintf("127.3.%d.%d", i>>8, i&0xff), b.port)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write(append([]byte("SSH-2.0-big\r\n"), hdr...))
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { u, _ := b.srv.gate.counts(); return u == places })
	// The bastion has read every header once each connection's reader
	// waits for the body; give the readers a bounded number of checks.
	var held uint64
	for range 50 {
		if held = heap() - min(before, heap()); held >= places*200<<10 {
			break
		}
	}
	t.Logf("%d unauthenticated places, each sent a 256 KiB packet's length: %.1f MiB held", places, float64(held)/(1<<20))
	if held > places*400<<10 {
		t.Fatalf("%d bytes held for %d places, want at most 400 KiB each", held, places)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, c) // closed at the handshake timeout
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { u, _ := b.srv.gate.counts(); return u == 0 })
	if after := heap(); after > before+16<<20 {
		t.Fatalf("%d bytes still held after the handshake timeout (%d before)", after, before)
	}
}

// Markers count against the recording cap: an sftp session of thousands
// of directory operations, each a marker in the recording, ends at the cap
// like output does, and the recording verifies.
func TestLimitAttackRecordingCapMarkers(t *testing.T) {
	t.Parallel()
	h := env(t)
	sftp := testenv.Require(t, "sftp")
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	const limit = 64 << 10
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, SessionLimits: SessionLimits{RecordingMaxSize: limit}})
	base := filepath.Join(t.TempDir(), strings.Repeat("d", 150))
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	var batch strings.Builder
	for i := range 1500 {
		fmt.Fprintf(&batch, "mkdir %s/%d\nrmdir %s/%d\n", base, i, base, i)
	}
	r := testenv.Cmd(t, 2*time.Minute, strings.NewReader(batch.String()), sftp, append(b.opts(h.alice), "-P", strconv.Itoa(b.port), "-b", "-", "root@t1@127.0.0.1")...)
	s := h.findRecording(t, store, func(s recorder.Session) bool { return s.Kind == "sftp" || strings.Contains(s.Command, "sftp") })
	t.Logf("sftp exit %d; recording %d bytes, limit %q, %d transfers in the index (+%d omitted)", r.ExitCode, s.Size, s.Limit, len(s.Transfers), s.TransfersOmitted)
	if s.Size > limit+1024 || s.Limit != limitRecording || r.ExitCode == 0 {
		t.Fatalf("recording of %d bytes (limit %q), sftp exit %d: want the session ended at the %d-byte cap", s.Size, s.Limit, r.ExitCode, limit)
	}
	verifyStore(t, store)
}
