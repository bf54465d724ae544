package bastion

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
)

// session proxies a session channel to a session channel on the target,
// forwarding the requests the bastion allows. Teardown follows RFC 4254
// §6.10 and OpenSSH: all output, then exit-status, then EOF, then CLOSE.
func (c *conn) session(nc ssh.NewChannel, up *ssh.Client) {
	uch, ureqs, err := up.OpenChannel("session", nil)
	if err != nil {
		c.log.Warn("target refused session channel", "err", logSafe(err.Error()))
		nc.Reject(ssh.ConnectionFailed, "postern: target "+c.grant.Target.Name+" refused the session")
		return
	}
	ch, creqs, err := nc.Accept()
	if err != nil {
		uch.Close()
		return
	}
	st := &chanState{c: c, n: c.chanSeq.Add(1), uch: uch, ch: ch,
		ready: make(chan struct{}), outReady: make(chan struct{}), done: make(chan struct{})}
	c.track(ch)
	defer c.untrack(ch)
	defer ch.Close()
	defer uch.Close()
	doneOnce := sync.OnceFunc(func() { close(st.done) })
	defer doneOnce()

	// Output (stdout and stderr, as a terminal shows both) is recorded
	// before it is sent; a recording failure closes the target's channel.
	// PANs are masked in both, before recording and before the client.
	stdout, stderr := newOutStream(st, ch, true), newOutStream(st, ch.Stderr(), false)
	var out sync.WaitGroup
	for _, s := range []struct {
		w   *outStream
		src io.Reader
	}{{stdout, uch}, {stderr, uch.Stderr()}} {
		out.Go(func() {
			c.pump(s.w, s.src)
			s.w.close()
			if st.failure() != "" {
				uch.Close()
			}
		})
	}
	// stdin: the client's EOF reaches the target as EOF. This copier ends
	// when either channel closes; the deferred closes above guarantee it.
	stdin := newInStream(st, uch)
	c.goSafe(func() {
		c.pump(stdin, ch)
		stdin.close()
		uch.CloseWrite()
	})
	// The client's requests go to the target in order. When the client
	// closes the channel, creqs closes, and so does the target's channel.
	c.goSafe(func() {
		for r := range creqs {
			c.sessionRequest(r, st)
		}
		uch.Close()
	})

	// The target's requests go to the client, except exit-status and
	// exit-signal, which are held until every byte of output is sent:
	// x/crypto delivers requests and data on separate queues, so without
	// this the client could see the exit before the last output.
	var exits []*ssh.Request
	for r := range ureqs {
		switch r.Type {
		case "exit-status", "exit-signal":
			// RFC 4254 §6.10 says want_reply is false; answer a
			// peer that sets it anyway so it never waits.
			if r.WantReply {
				r.Reply(false, nil)
			}
			exits = append(exits, r)
		case "eow@openssh.com", "keepalive@openssh.com":
			// Payload-free requests OpenSSH's sshd sends; relayed.
			ok, _ := ch.SendRequest(r.Type, r.WantReply, nil)
			if r.WantReply {
				r.Reply(ok, nil)
			}
		default:
			// Anything else could carry target text past the
			// masker: not relayed.
			c.log.Info("target request not relayed", "request", logSafe(r.Type))
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
	// ureqs closes when the target closed the channel; its data is all
	// buffered, so the output pumps finish (output that came before any
	// program started is dropped: see waitReady).
	doneOnce()
	out.Wait()
	// The reply to the request that started the program comes before its
	// exit: a fast program's exit-status and CLOSE can reach the bastion
	// while the request goroutine is still relaying the target's reply,
	// and x/crypto drops a reply that follows CLOSE (AsyncSSH and paramiko
	// then hang or fail). ready closes right after that reply.
	if st.started.Load() {
		<-st.ready
	}
	end := []any{"channel", st.n}
	var exitStatus *int
	var exitSignal string
	failed := st.failure()
	for _, r := range exits {
		if failed != "" {
			break // the target's status is not the session's
		}
		switch r.Type {
		case "exit-status":
			if len(r.Payload) != 4 {
				continue // malformed: not relayed
			}
			code := int(binary.BigEndian.Uint32(r.Payload))
			exitStatus = &code
			end = append(end, "exit_status", code)
		case "exit-signal":
			// RFC 4254 §6.10: signal, core dumped, error message,
			// language tag. The message is target text: masked.
			var sig struct {
				Signal     string
				CoreDumped bool
				Message    string
				Lang       string
			}
			if ssh.Unmarshal(r.Payload, &sig) != nil {
				continue // malformed: not relayed
			}
			// Rebuilt from masked fields: nothing of the target's
			// payload passes unread.
			sig.Signal, sig.Lang = logSafe(sig.Signal), logSafe(sig.Lang)
			if mode, ok := st.maskMode(); ok {
				sig.Message = maskText(sig.Message, mode)
			}
			r.Payload = ssh.Marshal(&sig)
			exitSignal = sig.Signal
			end = append(end, "exit_signal", exitSignal)
		}
		ch.SendRequest(r.Type, false, r.Payload)
	}
	if exitStatus == nil && exitSignal == "" {
		// The target went away, the bastion ended the session, or
		// recording failed: say so, after all output, instead of a
		// bare disconnect.
		msg := failed
		if msg == "" {
			msg = c.notice()
		}
		if !st.noticeSent.Load() {
			ch.Stderr().Write([]byte("\r\n" + msg + "\r\n"))
		}
		end = append(end, "reason", msg)
	}
	ch.CloseWrite()
	ch.Close()
	// The client is done; sealing the recording (flush, fsync, digest,
	// index, chain) happens after, off the user's wait. Every byte the
	// client saw is already in the recording's buffer.
	masked := stdout.masked() + stderr.masked()
	stdin.close() // its held tail goes into the recording before it closes
	if st.xfer != nil {
		st.xfer.end() // files still open get their records
	}
	st.finish(exitStatus, exitSignal, masked)
	end = append(end, "bytes_in", st.bytesIn.Load(), "bytes_out", st.bytesOut.Load(), "masked_pans", masked)
	audit.Record(c.log, audit.SessionEnd, end...)
}

// sessionRequest forwards one client request on a session channel to the
// target and relays the answer (RFC 4254 §6).
func (c *conn) sessionRequest(r *ssh.Request, st *chanState) {
	if c.refuseRequest(r, st) { // what the certificate does not permit: permit.go
		return
	}
	uch := st.uch
	forward := false
	switch r.Type {
	case "pty-req":
		// RFC 4254 §6.2: TERM, columns, rows, pixel sizes, modes.
		var pty struct {
			Term       string
			Cols, Rows uint32
			W, H       uint32
			Modes      string
		}
		if ssh.Unmarshal(r.Payload, &pty) == nil {
			st.setPty(pty.Term, int(pty.Cols), int(pty.Rows))
		}
		forward = true
	case "window-change":
		// RFC 4254 §6.7: columns, rows, pixel sizes.
		var wc struct{ Cols, Rows, W, H uint32 }
		if ssh.Unmarshal(r.Payload, &wc) == nil {
			st.resize(int(wc.Cols), int(wc.Rows))
		}
		forward = true
	case "shell", "exec", "signal", "break":
		forward = true
	case "env":
		// RFC 4254 §6.4: string name, string value.
		var env struct{ Name, Value string }
		if ssh.Unmarshal(r.Payload, &env) == nil && c.envAllowed(env.Name) {
			forward = true
		} else {
			c.log.Debug("env refused", "name", logSafe(env.Name))
		}
	case "subsystem":
		var sub struct{ Name string }
		if ssh.Unmarshal(r.Payload, &sub) == nil && sub.Name == "sftp" {
			forward = true
			// Forwarded re-marshalled: nothing unread reaches the target.
			r.Payload = ssh.Marshal(&sub)
		} else {
			c.log.Info("subsystem refused", "subsystem", logSafe(sub.Name))
		}
	default:
		// Anything unknown (x11-req and auth-agent-req@openssh.com
		// were refused above).
		c.log.Info("session request refused", "request", logSafe(r.Type))
	}
	if !forward {
		if r.WantReply {
			r.Reply(false, nil)
		}
		return
	}
	var err error
	start := r.Type == "shell" || r.Type == "exec" || r.Type == "subsystem"
	if start {
		// One program per session channel (RFC 4254 §6.5): a second
		// start could run unmasked under the first one's transfer
		// state, or unrecorded.
		if !st.started.CompareAndSwap(false, true) {
			if r.WantReply {
				r.Reply(false, nil)
			}
			return
		}
		defer st.setReady() // after the reply: input and output may flow
	}
	switch r.Type {
	case "exec":
		var cmd struct{ Command string }
		if ssh.Unmarshal(r.Payload, &cmd) != nil {
			err = st.refuse("malformed exec request")
			break
		}
		r.Payload = ssh.Marshal(&cmd) // forwarded as parsed, nothing more
		// What is stored of the command line is masked like output.
		shown := cmd.Command
		if mode, ok := st.maskMode(); ok {
			shown = maskText(shown, mode)
		}
		// The command goes into the recording and the index, not
		// the log: it may hold secrets, and logs never hold PANs.
		c.log.Info("exec", "channel", st.n, "command_bytes", len(cmd.Command))
		// File transfers are not recorded byte by byte (masking would
		// corrupt them), so the channel must then speak the protocol
		// the command claims, checked both ways (transfer.go).
		if op, ok := scpDirection(cmd.Command); ok {
			err = st.startTransfer("scp", shown, func(env *transferEnv) (transfer, error) {
				return newSCPStream(env, op, cmd.Command), nil
			})
		} else if isRsyncServer(cmd.Command) {
			err = st.startTransfer("rsync", shown, func(env *transferEnv) (transfer, error) {
				return newRsyncTransfer(env, cmd.Command)
			})
		} else {
			err = st.start("exec", shown)
		}
	case "shell":
		c.log.Info("shell", "channel", st.n)
		err = st.start("shell", "")
	case "subsystem":
		c.log.Info("subsystem", "channel", st.n)
		// Only sftp gets this far.
		err = st.startTransfer("sftp", "", func(env *transferEnv) (transfer, error) {
			return newSFTPStream(env), nil
		})
	}
	if err != nil {
		// The request never reaches the target. It is answered
		// "success" so that the client reads the notice: OpenSSH
		// exits on a failed exec without printing data it already
		// received. The channel then closes without an exit status
		// (ssh exits 255). Nothing else writes to the channel yet,
		// as the target has not started anything.
		if r.WantReply {
			r.Reply(true, nil)
		}
		st.ch.Stderr().Write([]byte(st.failure() + "\r\n"))
		st.noticeSent.Store(true)
		uch.Close()
		return
	}
	// A start request always asks the target for a reply, whatever the
	// client asked: if the target refuses, the channel ends rather than
	// keep a transfer or recording state for a program that never ran.
	if start {
		st.setOutReady() // the recording (or transfer audit) is in place
	}
	ok, err := uch.SendRequest(r.Type, r.WantReply || start, r.Payload)
	if r.WantReply {
		r.Reply(ok && err == nil, nil)
	}
	if start && (!ok || err != nil) {
		c.log.Info("target refused the session's program", "request", r.Type, "channel", st.n)
		uch.Close()
	}
}

// Pump buffers: every pump starts with a small one, and one whose reads
// fill it (bulk output) moves to a large one, so that a bulk stream is
// masked, recorded and sent in fewer, larger pieces while an idle session
// holds little memory.
const (
	smallBuf = 32 << 10
	largeBuf = 256 << 10
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}
)

func (c *conn) pump(dst io.Writer, src io.Reader) {
	bp, pool := smallPool.Get().(*[]byte), &smallPool
	defer func() { pool.Put(bp) }()
	for {
		buf := *bp
		n, err := src.Read(buf)
		if n > 0 {
			c.touch()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		if n == len(buf) && pool == &smallPool {
			pool.Put(bp)
			bp, pool = largePool.Get().(*[]byte), &largePool
		}
	}
}

const sshJMessage = "postern: ProxyJump (ssh -J) is not supported: postern terminates SSH so it can record and mask the session. Connect with: ssh -p PORT LOGIN@TARGET@BASTION"

// directTCPIP handles a port-forwarding channel (RFC 4254 §7.2). A request
// for a target's SSH port is what `ssh -J` sends: refused with directions,
// because a relay would hide the session from the bastion.
func (c *conn) directTCPIP(nc ssh.NewChannel, up *ssh.Client) {
	var req struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &req); err != nil {
		nc.Reject(ssh.ConnectionFailed, "postern: malformed direct-tcpip request")
		return
	}
	log := c.log.With("forward_host", logSafe(req.Host), "forward_port", req.Port)
	if c.isSSHPort(req.Host, req.Port) {
		audit.Record(log, audit.Forward, "allowed", false, "reason", "ssh -J style relay to an SSH port")
		nc.Reject(ssh.Prohibited, sshJMessage)
		return
	}
	if c.refuseForward(nc, log) { // the certificate and the policy must both allow it
		return
	}
	if !c.grant.PortForwarding {
		audit.Record(log, audit.Forward, "allowed", false, "reason", "port forwarding not granted")
		nc.Reject(ssh.Prohibited, "postern: port forwarding is not allowed for you on "+c.grant.Target.Name)
		return
	}
	// Forwarding goes to the target itself: its name or localhost means
	// the target's loopback; anything else is refused.
	switch req.Host {
	case c.grant.Target.Name, "localhost", "127.0.0.1", "::1":
		req.Host = "localhost"
		if _, p, err := net.SplitHostPort(c.grant.Target.Address); err == nil && p == strconv.Itoa(int(req.Port)) {
			audit.Record(log, audit.Forward, "allowed", false, "reason", "forward to the target's own SSH port")
			nc.Reject(ssh.Prohibited, sshJMessage)
			return
		}
	default:
		audit.Record(log, audit.Forward, "allowed", false, "reason", "destination is not the target")
		nc.Reject(ssh.Prohibited, "postern: forwarding is only allowed to ports on "+c.grant.Target.Name+" itself")
		return
	}
	uch, ureqs, err := up.OpenChannel("direct-tcpip", ssh.Marshal(&req))
	if err != nil {
		audit.Record(log, audit.Forward, "allowed", true, "ok", false, "reason", logSafe(err.Error()))
		nc.Reject(ssh.ConnectionFailed, "postern: target could not open the forwarded port")
		return
	}
	go ssh.DiscardRequests(ureqs)
	ch, creqs, err := nc.Accept()
	if err != nil {
		uch.Close()
		return
	}
	audit.Record(log, audit.Forward, "allowed", true, "ok", true)
	go ssh.DiscardRequests(creqs)
	c.track(ch)
	defer c.untrack(ch)
	var wg sync.WaitGroup
	wg.Go(func() {
		guard := newSSHGuard(ch)
		c.pump(guard, uch)
		if guard.match == len("SSH-") {
			audit.Record(log, audit.Forward, "allowed", false, "reason", "destination speaks SSH")
			ch.Close()
			uch.Close()
			return
		}
		ch.CloseWrite()
	})
	wg.Go(func() { c.pump(uch, ch); uch.CloseWrite() })
	wg.Wait()
	ch.Close()
	uch.Close()
}

// How long a forward's output is watched for an SSH version string: SSH
// servers may send other lines first (RFC 4253 §4.2). OpenSSH 9 accepts
// 1024 lines, older OpenSSH 64 KiB and takes every 255 bytes of a long
// line as a line of its own: the guard watches until both 1024 lines and
// 256 KiB have passed, and starts a line every 255 bytes.
const (
	sshMaxPreBanner      = 1024
	sshMaxPreBannerBytes = 256 << 10
	sshMaxLine           = 255
)

// errSpeaksSSH ends a forward whose destination turned out an SSH server.
var errSpeaksSSH = errors.New("forward destination speaks SSH")

// sshGuard passes a forward's output to the client unless a line of it
// begins an SSH version string ("SSH-") within the lines an SSH client
// would read before one: an SSH server on any port of the target would let
// the client run an unrecorded session through the tunnel. A line start
// that may still become "SSH-" is held until it is decided. Not safe for
// concurrent use; one pump writes to it.
type sshGuard struct {
	w       io.Writer
	lines   int   // lines seen
	total   int64 // bytes seen
	lineLen int   // bytes of the current line
	match   int   // bytes of "SSH-" matched at the current line's start; -1: no match
	out     []byte
}

// watching reports whether the guard still looks for a version string.
func (g *sshGuard) watching() bool {
	return g.lines < sshMaxPreBanner || g.total < sshMaxPreBannerBytes
}

func newSSHGuard(w io.Writer) *sshGuard { return &sshGuard{w: w} }

func (g *sshGuard) Write(p []byte) (int, error) {
	if !g.watching() && g.match <= 0 {
		return g.w.Write(p)
	}
	g.out = g.out[:0]
	for _, c := range p {
		g.total++
		g.lineLen++
		switch {
		case !g.watching() || g.match < 0:
		case c == "SSH-"[g.match]:
			g.match++
			if g.match == len("SSH-") {
				// Pass what came before this line, then end.
				g.w.Write(g.out)
				return 0, errSpeaksSSH
			}
			continue // held until decided
		default:
			g.out = append(g.out, "SSH-"[:g.match]...)
			g.match = -1
		}
		g.out = append(g.out, c)
		if c == '\n' || g.lineLen >= sshMaxLine {
			g.lines++
			g.lineLen = 0
			g.match = 0
		}
	}
	if len(g.out) > 0 {
		if _, err := g.w.Write(g.out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// isSSHPort reports whether host:port is the SSH port of a target, or port
// 22 anywhere.
func (c *conn) isSSHPort(host string, port uint32) bool {
	if port == 22 {
		return true
	}
	hp := net.JoinHostPort(host, strconv.Itoa(int(port)))
	for i := range c.s.cfg.Policy.Targets {
		t := &c.s.cfg.Policy.Targets[i]
		if t.Address == hp {
			return true
		}
		if h, p, err := net.SplitHostPort(t.Address); err == nil && p == strconv.Itoa(int(port)) && (host == t.Name || host == h) {
			return true
		}
	}
	return false
}
