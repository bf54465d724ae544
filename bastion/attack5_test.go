package bastion

import (
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/testenv"
)

// An approver's reason reaches the requester's terminal as it was typed:
// runDecide only masks PANs in it (logSafe), and awaitDecision writes
// decisionText to the requester's stderr raw. An approver-group member can
// thus send escape sequences to the requester's terminal (OSC 52 clipboard
// writes, screen clears, title reports on some terminals) and forge lines
// ("\r\npostern: request … approved; running"). The admin connection
// passes the exec line's bytes as they come, so `ssh postern@bastion deny
// ID --reason $'\e]52;c;…\a'` is all it takes.
func TestAttack5ApproverReasonCannotDriveRequesterTerminal(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	marker := filepath.Join(e.dir, "reason")
	_, wait := e.start(t, nil, "touch "+marker)
	r := e.pending(t)
	// What runDecide hands the Broker for these words after --reason.
	reason := logSafe("no\x1b]52;c;cm0gLXJmIH4K\x07\x1b[2J\x9b31m\r\npostern: forged line")
	if _, err := e.broker.Decide(t.Context(), r.ID, bob, false, reason); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := wait()
	if code != ExitRefused {
		t.Fatalf("exit %d", code)
	}
	if strings.ContainsAny(stderr, "\x1b\x07\u009b") || strings.Contains(stderr, "\r\npostern: forged line") {
		t.Fatalf("the approver's reason reached the requester's terminal raw: %q", stderr)
	}
}

// goExec opens a session channel on client and sends exec command,
// returning the channel once the bastion replied.
func goExec(t *testing.T, client *ssh.Client, command string) ssh.Channel {
	t.Helper()
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{command}))
	if err != nil || !ok {
		t.Fatalf("exec %q: %v %v", command, ok, err)
	}
	return ch
}

// While a command is held, a raw client sends everything it can on the
// held channel: stdin and EOF, a second exec, a shell, an sftp subsystem,
// signals, window changes, a new reason, eow. Nothing runs before the
// approval, the second program never runs, and the reason is the one the
// request was made with.
func TestAttack5HoldsHeldChannelTricks(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	first, second, third := filepath.Join(e.dir, "first"), filepath.Join(e.dir, "second"), filepath.Join(e.dir, "third")
	client := e.dialGo(t, e.alice, "root@t1")
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	ch.SendRequest("env", true, ssh.Marshal(struct{ Name, Value string }{ReasonEnv, "original"}))
	if ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{"touch " + first + "; cat > /dev/null"})); !ok || err != nil {
		t.Fatalf("exec: %v %v", ok, err)
	}
	r := e.pending(t)
	for _, req := range []struct {
		typ     string
		payload []byte
	}{
		{"exec", ssh.Marshal(struct{ Command string }{"touch " + second})},
		{"shell", nil},
		{"subsystem", ssh.Marshal(struct{ Name string }{"sftp"})},
		{"env", ssh.Marshal(struct{ Name, Value string }{ReasonEnv, "approved by bob"})},
		{"signal", ssh.Marshal(struct{ Name string }{"KILL"})},
		{"window-change", ssh.Marshal(struct{ C, R, W, H uint32 }{80, 24, 0, 0})},
		{"break", ssh.Marshal(struct{ Ms uint32 }{100})},
		{"eow@openssh.com", nil},
		{"keepalive@openssh.com", nil},
		{"exec", []byte("\x00\x00\x00")}, // malformed
	} {
		ok, err := ch.SendRequest(req.typ, true, req.payload)
		if err != nil {
			t.Fatalf("%s: %v", req.typ, err)
		}
		if ok && (req.typ == "exec" || req.typ == "shell" || req.typ == "subsystem") {
			t.Errorf("a second %s on the held channel was accepted", req.typ)
		}
	}
	ch.Write([]byte("touch " + third + "\n"))
	// Every request above was answered, so the bastion has handled them;
	// the check is made now, with no guessed wait, and again after the
	// approval (second and third never run at all).
	if exists(first) || exists(second) || exists(third) {
		t.Fatal("something ran before the approval")
	}
	if g, _ := e.broker.Get(t.Context(), r.ID); g.Reason != "original" || g.State != approval.StatePending || g.Line != "touch "+first+"; cat > /dev/null" {
		t.Fatalf("request changed while held: %+v", g)
	}
	if _, err := e.broker.Decide(t.Context(), r.ID, bob, true, ""); err != nil {
		t.Fatal(err)
	}
	ch.CloseWrite()
	io.Copy(io.Discard, ch)
	if !exists(first) || exists(second) || exists(third) {
		t.Fatalf("after approval: first %v second %v third %v", exists(first), exists(second), exists(third))
	}
}

// A held command line longer than approval.MaxLine cannot be judged and
// is held; nothing bounds it below the SSH packet size, so each
// open-exec-close round trip over one connection leaves a request of up
// to 256 KiB in the Broker's memory (kept an hour), the index and two
// audit log records. This shows the line is stored whole.
func TestAttack5HeldLineBounded(t *testing.T) {
	t.Parallel()
	e := newHoldEnv(t)
	client := e.dialGo(t, e.alice, "root@t1")
	long := "touch " + filepath.Join(e.dir, "long") + " #" + strings.Repeat("x", 200<<10)
	start := time.Now()
	const rounds = 20
	for range rounds {
		ch := goExec(t, client, long)
		ch.Close()
	}
	t.Logf("%d held requests of %d bytes in %s", rounds, len(long), time.Since(start))
	testenv.WaitFor(t, 30*time.Second, func() bool { return len(e.broker.List(t.Context(), false)) == 0 })
	for _, r := range e.broker.List(t.Context(), true) {
		if len(r.Line) > approval.MaxLine {
			t.Fatalf("request %s stores a %d-byte line (MaxLine %d)", r.ID, len(r.Line), approval.MaxLine)
		}
	}
}

// Many clients leaving while their commands are held: every request is
// cancelled and the bastion's goroutines go back to where they were.
func TestAttack5HoldsNoLeakOnDisconnectWhileHeld(t *testing.T) {
	e := newHoldEnv(t)
	client := e.dialGo(t, e.alice, "root@t1")
	goExec(t, client, "true").Close() // warm up the connection's goroutines
	// Counted now, the warm-up's goroutines still ending raise the base:
	// the test only gets more lenient, never flaky.
	base := runtime.NumGoroutine()
	for i := range 60 {
		ch := goExec(t, client, "touch "+filepath.Join(e.dir, "leak"))
		if i%2 == 0 {
			ch.Close()
		} else {
			ch.CloseWrite()
			ch.Close()
		}
	}
	// And whole connections dropped while held.
	for range 10 {
		c := e.dialGo(t, e.alice, "root@t1")
		goExec(t, c, "touch "+filepath.Join(e.dir, "leak"))
		c.Close()
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { return len(e.broker.List(t.Context(), false)) == 0 })
	for _, r := range e.broker.List(t.Context(), true) {
		if r.State != approval.StateCancelled {
			t.Fatalf("request %s is %s", r.ID, r.State)
		}
	}
	if exists(filepath.Join(e.dir, "leak")) {
		t.Fatal("a cancelled command ran")
	}
	var n int
	deadline := time.Now().Add(20 * time.Second)
	for n = runtime.NumGoroutine(); n > base+5 && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(100 * time.Millisecond)
	}
	if n > base+5 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}
