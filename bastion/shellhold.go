package bastion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/audit"
)

// The approval gate for lines typed into a terminal channel. With a pty,
// the line is the one the shell is about to run when the user presses
// Enter, whatever produced it (typing, history, completion, editing): an
// approval.Tracker reads it from the masked output and the keys. The
// input stage holds from the Enter while the gate's goroutine judges the
// line: allowed, the Enter passes at once; held, the user is told the
// request's ID and may keep typing or press Ctrl-C to cancel; approved,
// the Enter passes; refused, denied, expired or cancelled, the held keys
// are dropped, the shell is sent Ctrl-C to abandon the line, and the user
// is told why. A shell without a pty reads its input line by line (no
// echo, no editing): each line is held whole until judged, and a refused
// line ends the channel, as a script must not go on without it.

// lineGate judges the lines of one terminal channel. Its goroutine (run)
// ends with the channel's context; close stops its tracker.
type lineGate struct {
	st    *channel
	in    *inputStage
	rules *approval.Policy
	t     *approval.Tracker // nil without a pty
	judge chan struct{}     // a line waits to be judged; capacity 1

	before  string        // the held lines of an unfinished construct (no pty); only run uses it
	kept    int           // how many held bytes they are
	long    bool          // a line too long to hold whole was let through: its rest passes (no pty); only run uses it
	full    atomic.Bool   // the client sent more of a line than the stage holds (no pty)
	stopped atomic.Bool   // a line was refused: no more input passes (no pty)
	eof     atomic.Bool   // the client's input ended (no pty)
	eofDone chan struct{} // closed once the input after the last newline was judged
	eofOnce sync.Once

	mu     sync.Mutex              // guards the fields below
	cancel context.CancelCauseFunc // ends the wait for a held line's request; nil when none
	ctrlC  bool                    // Ctrl-C came while the line was held
}

// errLineCancelled cancels a request whose requester pressed Ctrl-C.
var errLineCancelled = errors.New("the requester cancelled the line with Ctrl-C")

// newLineGate returns the gate for st's terminal input stage in, or nil
// when nothing typed needs judging: no rule in scope for the connection
// approves or denies, or the channel is an exec without a pty (its
// command was judged before it started).
func (st *channel) newLineGate(in *inputStage) *lineGate {
	rules := st.c.s.current().ApprovalRules
	if !rules.Judges(st.c.subject()) {
		return nil
	}
	pty := st.ptyState()
	g := &lineGate{st: st, in: in, rules: rules, judge: make(chan struct{}, 1), eofDone: make(chan struct{})}
	switch {
	case pty.requested:
		g.t = approval.NewTracker(pty.cols, pty.rows)
		in.holdAt = g.enterAt
	case st.kind == "shell":
		in.holdAt = g.lineAt
	default:
		return nil
	}
	in.onHeld = g.held
	st.c.goSafe(g.run)
	return g
}

// judgedSize is the terminal size the target is told: when lines typed on
// the connection are judged, at most the size the line tracker's emulator
// follows, so that the program wraps lines and moves the cursor as the
// emulator does (on a wider terminal its screen could not be read).
func (st *channel) judgedSize(cols, rows uint32) (uint32, uint32) {
	if !st.c.s.current().ApprovalRules.Judges(st.c.subject()) {
		return cols, rows
	}
	return min(cols, approval.MaxCols), min(rows, approval.MaxRows)
}

// observers adds the tracker, if any, to the observers of the masked
// output: it sees what the user sees.
func (g *lineGate) observers(list []io.Writer) []io.Writer {
	if g == nil || g.t == nil {
		return list
	}
	return append(list[:len(list):len(list)], g.t)
}

func (g *lineGate) signal() {
	select {
	case g.judge <- struct{}{}:
	default:
	}
}

// enterAt is holdAt with a pty: hold from the Enter that ends a line.
func (g *lineGate) enterAt(p []byte) int {
	i := g.t.Keys(p)
	if i >= 0 {
		// A Ctrl-C from now on, even in the same write (held sees
		// it), cancels this line's request.
		g.mu.Lock()
		g.ctrlC = false
		g.mu.Unlock()
		g.signal()
	}
	return i
}

// lineAt is holdAt without a pty: hold every line whole, from its first
// byte, and judge it once its newline came.
func (g *lineGate) lineAt(p []byte) int {
	if len(p) == 0 {
		return -1
	}
	if bytes.IndexByte(p, '\n') >= 0 {
		g.signal()
	}
	return 0
}

// held sees the bytes the client sends while a line is held.
func (g *lineGate) held(p []byte, n int) {
	if g.t != nil {
		if bytes.IndexByte(p, 0x03) >= 0 {
			g.mu.Lock()
			g.ctrlC = true
			if g.cancel != nil {
				g.cancel(errLineCancelled)
			}
			g.mu.Unlock()
		}
		return
	}
	if n+len(p) > maxHeld {
		g.full.Store(true)
	}
	if bytes.IndexByte(p, '\n') >= 0 || n+len(p) > maxHeld {
		g.signal()
	}
}

// atEOF judges what the client sent after its last newline, once its
// input ended, before the target is told (no pty). It returns when that
// was passed on or refused, or the channel ended.
func (g *lineGate) atEOF() {
	if g == nil || g.t != nil {
		return
	}
	g.eof.Store(true)
	g.signal()
	select {
	case <-g.eofDone:
	case <-g.st.ctx.Done():
	}
}

func (g *lineGate) close() {
	if g != nil && g.t != nil {
		g.t.Close()
	}
}

func (g *lineGate) run() {
	for {
		select {
		case <-g.st.ctx.Done():
			return
		case <-g.judge:
		}
		if g.st.ctx.Err() != nil { // select may take a line after the end
			return
		}
		// Each line is judged under the rules in force when it is
		// (a reload may have replaced those of the shell's start).
		g.rules = g.st.c.s.current().ApprovalRules
		if g.t != nil {
			g.judgeEnter()
		} else {
			g.judgeLine()
		}
	}
}

// judgeEnter judges the line a held Enter (or another key that may run
// it, approval.Enter) sends.
func (g *lineGate) judgeEnter() {
	st := g.st
	l := g.t.Line(st.ctx, approval.MaxSettle)
	v := g.rules.DecideLine(st.c.subject(), l)
	var passed func(approved bool)
	switch l.Enter {
	case approval.EnterPaste:
		// A newline in a bracketed paste: readline keeps the line,
		// which goes on; judged again, it is judged without what was
		// approved.
		passed = func(approved bool) {
			if approved {
				g.t.Granted()
			}
		}
	case approval.EnterPlain:
		if v.Unfinished {
			// The shell asks for more and runs nothing yet: the
			// Enter passes, and the next line is judged with this.
			g.t.Continue(v.Line)
			g.in.releaseThrough(1)
			return
		}
		passed = func(bool) { g.t.Reset() }
	default:
		// A key that may or may not run the line: the shell may
		// still have it.
		passed = func(bool) { g.t.Unsure() }
	}
	g.apply(v.Verdict, v.Line, 1, passed)
}

// judgeLine judges the first held line of a shell without a pty. The
// lines of a construct the shell has not finished (an open quote, for …
// do, a trailing backslash, a here-document) stay held until the line
// that finishes it comes, and are judged whole: the shell gets none of
// them before, as at the end of its input it would run what it has (a
// here-document ends there, a trailing backslash is dropped).
func (g *lineGate) judgeLine() {
	held := g.in.peek()
	if g.stopped.Load() || len(held) == 0 && g.eof.Load() {
		g.eofOnce.Do(func() { close(g.eofDone) })
		return
	}
	if g.long {
		g.passLong(held, bytes.IndexByte(held, '\n'))
		return
	}
	rest := held[g.kept:]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		switch {
		case g.full.Load() && !g.eof.Load():
			g.judgeLong(held)
			return
		case !g.eof.Load():
			return // not a whole line yet
		case len(rest) == 0:
			// The input ended inside a construct: judged as it
			// stands, as the shell will run it.
			line := g.before
			g.before, g.kept = "", 0
			g.apply(g.rules.Decide(g.st.c.subject(), line), line, len(held), nil)
			g.signal()
			return
		}
		i = len(rest)
	}
	n := g.kept + min(i+1, len(rest))
	line := strings.TrimSuffix(string(rest[:i]), "\r")
	if g.before != "" {
		line = g.before + "\n" + line
	}
	if i < len(rest) && len(line) <= approval.MaxLine && approval.Unfinished(line) {
		g.before, g.kept = line, n
		if n < len(held) || g.eof.Load() {
			g.signal() // more lines came with it, or the input ended
		}
		return
	}
	g.before, g.kept = "", 0
	g.apply(g.rules.Decide(g.st.c.subject(), line), line, n, nil)
	if g.eof.Load() {
		g.signal() // until all that came before the end is judged
	}
}

// judgeLong decides a line longer than the input stage holds, of which
// held is the start (no pty): it cannot be judged whole, and judged in
// pieces a command could straddle them ("…; r" and "m x"). Let through,
// the rest of it passes too (passLong).
func (g *lineGate) judgeLong(held []byte) {
	g.full.Store(false)
	g.before, g.kept = "", 0
	why := fmt.Sprintf("a line longer than %d bytes, which the bastion does not hold whole", maxHeld)
	shown := string(held[:min(len(held), 1024)]) + "… (cut: " + why + ")"
	g.apply(g.rules.DecideUnjudged(g.st.c.subject(), why), shown, len(held), func(bool) { g.long = true })
}

// passLong passes the rest of a long line that was let through, up to its
// newline at i (-1: not come yet), and goes on judging after it.
func (g *lineGate) passLong(held []byte, i int) {
	g.full.Store(false)
	n := len(held)
	if i >= 0 {
		n, g.long = i+1, false
	}
	if n > 0 {
		g.in.releaseThrough(n)
	}
	if i >= 0 && n < len(held) || g.eof.Load() {
		g.signal()
	}
}

// apply carries out verdict v on the held line shown, whose first n held
// bytes pass when it may run; passed, if not nil, is called first, with
// whether approvers approved.
func (g *lineGate) apply(v approval.Verdict, shown string, n int, passed func(approved bool)) {
	st := g.st
	switch v.Action {
	case approval.Allow:
		if passed != nil {
			passed(false)
		}
		g.in.releaseThrough(n)
		return
	case approval.Approve:
		if st.c.s.cfg.Approvals != nil {
			g.hold(v, shown, n, passed)
			return
		}
		// Rules ask for approval but nothing can hold: fail closed.
		v.Reason += "; this bastion cannot hold commands for approval"
	}
	audit.Record(st.c.log, audit.LineRefused, "channel", st.n, "rule", logSafe(ruleName(v.Rule)), "reason", logSafe(v.Reason))
	g.refuse(fmt.Sprintf("postern: refused by rule %s: %s", ruleName(v.Rule), v.Reason))
}

// hold asks for approval of the held line and waits for the decision,
// while the input stage keeps reading (Ctrl-C cancels).
func (g *lineGate) hold(v approval.Verdict, shown string, n int, passed func(approved bool)) {
	st := g.st
	req, err := st.submit(shown, v)
	if errors.Is(err, errUnrecorded) {
		return // the channel ended: nothing passes
	}
	if err != nil {
		g.refuse("postern: not run: " + st.submitFailed(err))
		return
	}
	hint := ""
	if g.t != nil {
		hint = " (Ctrl-C cancels)"
	}
	g.notify(heldNotice(req, v) + hint) // unrecorded, it ends the channel: wait cancels
	w, err := g.wait(req.ID)
	if st.ctx.Err() != nil {
		return // the channel ended: nothing passes
	}
	if w.State == approval.StateApproved && !sameApprovalRules(g.rules, st.c.s.current().ApprovalRules) {
		audit.Record(st.c.log, audit.LineRefused, "channel", st.n, "request", req.ID, "reason", "approved under replaced rules")
		g.refuse(voidedApproval(req.ID, "command"))
		return
	}
	if w.State == approval.StateApproved {
		if err := st.rec.marker(fmt.Sprintf("approval granted: %s%s", req.ID, decisionText(w))); err != nil {
			st.fail(err) // the recording ended: the line does not pass
			return
		}
		if !g.notify(fmt.Sprintf("postern: request %s approved%s; running", req.ID, decisionText(w))) {
			return // the channel ended: the line does not pass
		}
		if passed != nil {
			passed(true)
		}
		g.in.releaseThrough(n)
		return
	}
	why := w.State + decisionText(w)
	if errors.Is(err, errLineCancelled) {
		why = "cancelled with Ctrl-C"
	} else if err != nil && w.State != approval.StateCancelled {
		st.c.log.Error("approval wait failed", "request", req.ID, "err", err)
	}
	g.refuse(fmt.Sprintf("postern: request %s %s; the command did not run", req.ID, why))
}

// wait waits for request id to be decided, until Ctrl-C or the channel's
// end cancels it.
func (g *lineGate) wait(id string) (approval.Request, error) {
	ctx, cancel := context.WithCancelCause(g.st.ctx)
	defer cancel(nil)
	g.mu.Lock()
	g.cancel = cancel
	if g.ctrlC {
		cancel(errLineCancelled)
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.cancel = nil
		g.mu.Unlock()
	}()
	return g.st.c.s.cfg.Approvals.Wait(ctx, id)
}

// refuse drops the held line and tells the user why. With a pty the shell
// is sent Ctrl-C to abandon the line it has; without one the channel ends.
func (g *lineGate) refuse(msg string) {
	st := g.st
	if g.t == nil {
		g.stopped.Store(true)
		g.in.stop()
		st.rec.marker(logSafe(msg))
		g.notify(msg)
		// The lines before it run; the shell then reads the end of
		// its input, and the session ends with ExitRefused.
		st.mu.Lock()
		code := ExitRefused
		st.ownExit, st.overrideExit = &code, true
		st.mu.Unlock()
		g.in.closeWrite(st.uch.CloseWrite)
		return
	}
	g.notify(msg)
	// The shell may read the Ctrl-C as a key (stty intr undef) and keep
	// the line: the tracker reads the next line with it.
	g.t.Unsure()
	g.in.replace([]byte{0x03})
}

// notify tells the user msg on a line of its own, and records it; one the
// recording cannot take (its cap) is not shown, and ends the channel.
func (g *lineGate) notify(msg string) bool {
	msg = logSafe(msg)
	if g.t == nil {
		g.st.clientErr().Write([]byte(msg + "\n"))
		return true
	}
	if err := g.st.rec.marker(msg); err != nil {
		g.st.fail(err)
		return false
	}
	g.st.clientOut().Write([]byte("\r\n" + msg + "\r\n"))
	return true
}
