package bastion

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
)

// channel is one session channel: the proxy between the client's channel
// and the target's, its pipeline once a program starts, and its teardown.
// The output pumps, the input pump, the request loop and the teardown use
// it from different goroutines.
type channel struct {
	c   *conn
	n   uint32
	ch  ssh.Channel // the client's channel
	uch ssh.Channel // the target's channel

	// ctx is the channel's context (a child of the connection's); its
	// cause says why the channel ended. cancel is first-wins.
	ctx    context.Context
	cancel context.CancelCauseFunc

	noticeSent atomic.Bool            // the user was already told why the session ended
	announced  atomic.Pointer[string] // the last Announce shown (drain.go)
	notes      notices                // notices it can take, or keeps until it can (notices.go)
	started    atomic.Bool            // a shell, exec or subsystem request was accepted

	// The pipeline startProgram chose: set before ready closes and only
	// read after it, which orders the accesses.
	// mode is nil until a program starts.
	kind   string      // shell, exec, sftp, scp, rsync
	mode   mode        // how stdin and stdout pass: terminal or transfer
	stderr *outStage   // the target's stderr: always the terminal path
	rec    *recording  // nil when recording is off
	input  *inputStage // the terminal's input stage; nil in transfer mode
	lines  *lineGate   // judges typed lines; nil when nothing needs judging

	// ready is closed once the request that starts the program (shell,
	// exec or subsystem) has been handled and its reply relayed, and done
	// when the target's side of the channel has closed. Input and output
	// wait for ready: x/crypto queues data apart from requests, so
	// without the wait the first keystrokes could pass before the
	// recording exists, and the program's first output could reach the
	// client before the reply to the request that started it.
	ready     chan struct{}
	readyOnce sync.Once
	done      chan struct{}

	bytesIn, bytesOut atomic.Int64

	// outMu and errMu order the writes to the client's stdout and stderr
	// streams when more than one goroutine writes (the output pump and
	// the line gate's notices): x/crypto reuses one packet buffer per
	// stream, so concurrent writes would mix their bytes. Each is held
	// for one write only.
	outMu, errMu sync.Mutex
	eofSent      bool // guarded by errMu: no notice after EOF (drain.go)

	mu     sync.Mutex // guards the fields below
	pty    ptyState
	failed error // the channel's own end cause (recording, transfer, refusal)
	// ownExit is the exit status the bastion gives a command it did not
	// run (approval refused); sent when the target sent none.
	ownExit *int
	// overrideExit: ownExit replaces the target's exit status (a shell
	// whose input was cut at a refused line).
	overrideExit bool
	// reasonText is the requester's POSTERN_REASON, logSafe'd.
	reasonText string
}

// ptyState is the client's terminal as its pty-req and window-change
// requests describe it (RFC 4254 §6.2, §6.7).
type ptyState struct {
	requested  bool
	term       string
	cols, rows int
}

// session proxies a session channel to a session channel on the target,
// forwarding the requests the bastion allows. Teardown follows RFC 4254
// §6.10 and OpenSSH: the reply that started the program, all output, then
// exit-status, then EOF, then CLOSE.
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
	if c.s.wrapChannel != nil {
		ch = c.s.wrapChannel(ch)
	}
	ctx, cancel := context.WithCancelCause(c.ctx)
	st := &channel{c: c, n: c.chanSeq.Add(1), uch: uch, ch: ch, ctx: ctx, cancel: cancel,
		ready: make(chan struct{}), done: make(chan struct{})}
	c.track(ch)
	defer c.untrack(ch)
	c.live.add(st)
	defer c.live.remove(st)
	c.s.live.add(st)
	defer c.s.live.remove(st)
	defer cancel(errors.New("channel closed"))
	defer ch.Close()
	defer uch.Close()
	doneOnce := sync.OnceFunc(func() { close(st.done) })
	defer doneOnce()

	out := st.startPumps(creqs)
	exits := st.relayTargetRequests(ureqs)
	// ureqs closes when the target closed the channel; its data is all
	// buffered, so the output pumps finish (output that came before any
	// program started is dropped: see waitReady).
	doneOnce()
	out.Wait()
	st.teardown(exits)
}

// startPumps starts the channel's copiers and its request loop. The
// returned group holds the output pumps, which teardown waits for; the
// others end when either channel closes, which session's deferred closes
// guarantee, and belong to the connection's group.
func (st *channel) startPumps(creqs <-chan *ssh.Request) *sync.WaitGroup {
	c, uch := st.c, st.uch
	// Output (stdout and stderr, as a terminal shows both) is masked,
	// recorded and then sent; a recording failure closes the target's
	// channel (fail).
	var out sync.WaitGroup
	out.Go(func() {
		c.pump(outPort{st}, uch)
		if st.isReady() && st.mode != nil {
			st.mode.outputDone()
		}
	})
	out.Go(func() {
		c.pump(errPort{st}, uch.Stderr())
		if st.isReady() && st.stderr != nil {
			st.stderr.close()
		}
	})
	// stdin: the client's EOF reaches the target as EOF.
	c.goSafe(func() {
		c.pump(inPort{st}, st.ch)
		if st.isReady() {
			st.lines.atEOF() // a last line without a newline is judged too
			if st.input != nil {
				st.input.closeWrite(uch.CloseWrite)
				return
			}
		}
		uch.CloseWrite()
	})
	// The client's requests go to the target in order. When the client
	// closes the channel, creqs closes, and so does the target's channel.
	c.goSafe(func() {
		for r := range creqs {
			st.request(r)
		}
		uch.Close()
	})
	return &out
}

// relayTargetRequests passes the target's channel requests on until the
// target closes the channel. exit-status and exit-signal are returned, to
// be sent after every byte of output: x/crypto delivers requests and data
// on separate queues, so relayed at once they could pass the last output.
func (st *channel) relayTargetRequests(ureqs <-chan *ssh.Request) []*ssh.Request {
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
			ok, _ := st.ch.SendRequest(r.Type, r.WantReply, nil)
			if r.WantReply {
				r.Reply(ok, nil)
			}
		default:
			// Anything else could carry target text past the
			// masker: not relayed.
			st.c.log.Info("target request not relayed", "request", logSafe(r.Type))
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}
	return exits
}

// teardown ends the client's channel after the target's has closed and all
// output went out: the exit (or a notice saying why there is none), EOF,
// CLOSE; then the recording is sealed, off the user's wait.
func (st *channel) teardown(exits []*ssh.Request) {
	// The reply to the request that started the program comes before its
	// exit: a fast program's exit-status and CLOSE can reach the bastion
	// while the request goroutine is still relaying the target's reply,
	// and x/crypto drops a reply that follows CLOSE (AsyncSSH and paramiko
	// then hang or fail). ready closes right after that reply.
	if st.started.Load() {
		<-st.ready
	}
	end := []any{"channel", st.n}
	// The output is all in the recording's buffer (recorded before it
	// was sent); the exit status vouches that it is in the recording, so
	// it is written out first, and a failure ends the channel instead.
	if err := st.rec.flush(); err != nil {
		st.fail(err)
	}
	failed := st.failure()
	var exitStatus *int
	var exitSignal string
	st.mu.Lock()
	override := st.overrideExit
	st.mu.Unlock()
	if failed == nil && !override { // after a failure the target's status is not the session's
		exitStatus, exitSignal, end = st.sendExits(exits, end)
	}
	if exitStatus == nil && exitSignal == "" && failed == nil {
		exitStatus, end = st.sendOwnExit(end)
	}
	if exitStatus == nil && exitSignal == "" {
		// The target went away, the bastion ended the session, or
		// recording failed: say so, after all output, instead of a
		// bare disconnect.
		msg := st.c.notice()
		if failed != nil {
			msg = userMessage(failed, msg)
		}
		if !st.noticeSent.Load() {
			st.clientErr().Write([]byte("\r\n" + msg + "\r\n"))
		}
		end = append(end, "reason", msg)
	}
	st.errMu.Lock()
	st.eofSent = true
	st.ch.CloseWrite()
	st.errMu.Unlock()
	st.ch.Close()
	// Every byte the client saw is already in the recording's buffer.
	var masked int64
	if st.mode != nil {
		masked = st.mode.masked()
		st.mode.end() // input's held tail, files still open: recorded
	}
	if st.stderr != nil {
		masked += st.stderr.masked()
	}
	st.rec.finish(exitStatus, exitSignal, st.bytesIn.Load(), st.bytesOut.Load(), masked)
	st.c.s.metrics.PANsMasked(masked)
	end = append(end, "bytes_in", st.bytesIn.Load(), "bytes_out", st.bytesOut.Load(), "masked_pans", masked)
	audit.Record(st.c.log, audit.SessionEnd, end...)
}

// sendExits relays the target's exit-status and exit-signal requests,
// rebuilt from what was parsed, and adds them to the audit record end.
func (st *channel) sendExits(exits []*ssh.Request, end []any) (*int, string, []any) {
	var exitStatus *int
	var exitSignal string
	for _, r := range exits {
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
			if mode, ok := st.c.maskMode(); ok {
				sig.Message = maskText(sig.Message, mode, st.c.maskDetect())
			}
			r.Payload = ssh.Marshal(&sig)
			exitSignal = sig.Signal
			end = append(end, "exit_signal", exitSignal)
		}
		st.ch.SendRequest(r.Type, false, r.Payload)
	}
	return exitStatus, exitSignal, end
}

// sendOwnExit sends the exit status the bastion chose (ownExit), if any.
func (st *channel) sendOwnExit(end []any) (*int, []any) {
	st.mu.Lock()
	code := st.ownExit
	st.mu.Unlock()
	if code == nil {
		return nil, end
	}
	st.ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, uint32(*code)))
	return code, append(end, "exit_status", *code)
}

// fail ends the channel with cause, first cause wins: output stops at the
// gate, the target's channel closes, and teardown shows the cause's
// UserMessage instead of an exit status. It reports whether cause was the
// first.
func (st *channel) fail(cause error) bool {
	st.mu.Lock()
	first := st.failed == nil
	if first {
		st.failed = cause
	}
	st.mu.Unlock()
	st.cancel(cause)
	st.uch.Close()
	return first
}

// failure is the channel's own end cause, nil while it runs.
func (st *channel) failure() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.failed
}

func (st *channel) setReady() { st.readyOnce.Do(func() { close(st.ready); st.openNotices() }) }

// isReady reports whether ready has closed: only then may the pipeline's
// fields be read. A pump that ended before wrote nothing, so its stage
// holds nothing to release.
func (st *channel) isReady() bool {
	select {
	case <-st.ready:
		return true
	default:
		return false
	}
}

// errNotStarted refuses bytes that come before the channel's program: they
// are dropped, not passed unrecorded.
var errNotStarted = errors.New("session channel ended before its program started")

// waitReady blocks until the program started and its request was
// answered, or fails once the channel ends before any program started.
func (st *channel) waitReady() error {
	select {
	case <-st.ready:
		return nil
	default:
	}
	select {
	case <-st.ready:
		return nil
	case <-st.done:
		if st.started.Load() {
			// startProgram runs and closes ready when it returns.
			<-st.ready
			return nil
		}
		return errNotStarted
	}
}

// outPort is the target's stdout as the pump sees it: it waits for the
// program, counts, and hands the bytes to the channel's mode.
type outPort struct{ st *channel }

func (o outPort) Write(p []byte) (int, error) {
	if err := o.st.waitReady(); err != nil {
		return 0, err
	}
	if o.st.mode == nil {
		return 0, errNotStarted
	}
	o.st.bytesOut.Add(int64(len(p)))
	o.st.c.s.metrics.Bytes(false, int64(len(p)))
	return o.st.mode.output(p)
}

// errPort is the target's stderr: the terminal path in every mode.
type errPort struct{ st *channel }

func (o errPort) Write(p []byte) (int, error) {
	if err := o.st.waitReady(); err != nil {
		return 0, err
	}
	if o.st.stderr == nil {
		return 0, errNotStarted
	}
	o.st.bytesOut.Add(int64(len(p)))
	o.st.c.s.metrics.Bytes(false, int64(len(p)))
	return o.st.stderr.Write(p)
}

// inPort is the client's stdin: it waits for the program to start (and
// its request to be answered), counts, and hands the bytes to the mode.
type inPort struct{ st *channel }

func (i inPort) Write(p []byte) (int, error) {
	if err := i.st.waitReady(); err != nil {
		return 0, err
	}
	if i.st.mode == nil {
		return 0, errNotStarted
	}
	i.st.bytesIn.Add(int64(len(p)))
	i.st.c.s.metrics.Bytes(true, int64(len(p)))
	return i.st.mode.input(p)
}

// mode is how a started channel's stdin and stdout pass: the terminal
// (masked, recorded) or a transfer protocol (parsed both ways). startProgram
// chooses it once; the target's stderr takes the terminal path in every
// mode. input and output are called from one pump each, in stream order.
type mode interface {
	input(p []byte) (int, error)  // client → target
	output(p []byte) (int, error) // target → client
	outputDone()                  // the target's stdout ended: release held tails
	end()                         // teardown, after the client's channel closed
	masked() int64                // PANs masked in stdout
}
