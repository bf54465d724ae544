package bastion

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/sshdproc"
	"github.com/postern/postern/internal/testenv"
)

// bashUser is a login whose shell is bash with a known prompt and no
// history file: the interactive shells of these tests.
const bashUser = "posternbash"

// shellPrompt is bashUser's PS1 as the terminal shows it.
const shellPrompt = "shellhold$ "

var bashUserOnce sync.Once

// ensureBashUser creates bashUser (once per test binary) with a
// ~/.bash_profile that sets the prompt and keeps history in memory only.
func ensureBashUser(t testing.TB) {
	t.Helper()
	var err error
	bashUserOnce.Do(func() {
		if err = sshdproc.EnsureUser(bashUser, "/bin/bash"); err != nil {
			return
		}
		profile := "PS1='shellhold\\$ '\nunset HISTFILE\nunset PROMPT_COMMAND\n"
		err = os.WriteFile(filepath.Join("/home", bashUser, ".bash_profile"), []byte(profile), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// newShellEnv is a holdEnv whose alice may log in as bashUser, with rules
// that hold touch, refuse cp, and allow everything else; dir is writable
// by bashUser.
func newShellEnv(t testing.TB) *holdEnv {
	t.Helper()
	ensureBashUser(t)
	h := env(t)
	policy := shellPolicy(h)
	rules := &approval.Policy{Rules: []approval.Rule{
		{Name: "no-cp", Match: approval.Match{Commands: []string{"cp"}}, Action: approval.Deny},
		{Name: "touch-needs-approval", Match: approval.Match{Commands: []string{"touch"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
	}}
	dir, err := os.MkdirTemp("", "postern-shellhold-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	b, broker := approvalServer(t, h, policy, rules)
	return &holdEnv{harness: b, broker: broker, dir: dir}
}

// shellPolicy is h's policy with bashUser as a login of t1 for alice.
func shellPolicy(h *harness) Policy {
	policy := Policy{Rules: slices.Clone(h.policy.Rules), Targets: slices.Clone(h.policy.Targets)}
	for i := range policy.Targets {
		if policy.Targets[i].Name == "t1" {
			policy.Targets[i].Logins = append(slices.Clone(policy.Targets[i].Logins), bashUser)
		}
	}
	for i := range policy.Rules {
		if policy.Rules[i].Name == "alice" {
			policy.Rules[i].Logins = append(slices.Clone(policy.Rules[i].Logins), bashUser)
		}
	}
	return policy
}

// term is an interactive ssh session on a pty: keys in, screen text out.
type term struct {
	t     *testing.T
	tty   *os.File
	out   *testenv.Buffer
	seen  int // how far expect has read out
	syncs int
	wait  func() error
}

func (e *holdEnv) shell(t *testing.T) *term {
	t.Helper()
	tty, out, wait := e.ptySSH(t, e.alice, bashUser+"@t1", 24, 100)
	tm := &term{t: t, tty: tty, out: out, wait: wait}
	tm.expect(shellPrompt)
	return tm
}

func (tm *term) send(s string) {
	tm.t.Helper()
	if _, err := tm.tty.Write([]byte(s)); err != nil {
		tm.t.Fatal(err)
	}
}

// expect waits for s in what the terminal printed after the last expect.
func (tm *term) expect(s string) {
	tm.t.Helper()
	if !tm.within(s, 20*time.Second) {
		tm.t.Logf("goroutines of the bastion:\n%s", bastionStacks())
		tm.t.Fatalf("waited for %q; terminal shows:\n%q", s, tm.out.String()[max(0, tm.seen-600):])
	}
}

// within reports whether the terminal printed s within d.
func (tm *term) within(s string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		all := tm.out.String()
		if i := strings.Index(all[tm.seen:], s); i >= 0 {
			tm.seen += i + len(s)
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sync waits until the shell reads keys again and shows a fresh prompt:
// bash may drop keys that come while it handles the Ctrl-C the bastion
// sent, and readline redraws a line with its prompt before it runs it. A
// line of the no-op command : with a unique word is typed (again, if its
// echo does not come) and run. bash handles a Ctrl-C in two steps, first
// redrawing the line it had, then dropping it when it next looks at its
// signals, so keys that come in between can join a cancelled line, which
// is then held again: such a try is cancelled, and the tries after the
// first empty the line first (Ctrl-E Ctrl-U). The first does not: edits
// where the bastion cannot be sure what line the shell has (after a
// paste, say) make the line one it cannot judge, held for that.
func (tm *term) sync() {
	tm.t.Helper()
	for i := 0; ; i++ {
		if i == 20 {
			tm.t.Logf("goroutines of the bastion:\n%s", bastionStacks())
			tm.t.Fatalf("the shell does not read keys; terminal shows:\n%q", tm.out.String()[max(0, tm.seen-600):])
		}
		word := "sync" + strconv.Itoa(tm.syncs) + "x" + strconv.Itoa(i)
		keys := " : " + word
		if i > 0 {
			keys = "\x05\x15" + keys
		}
		tm.send(keys)
		if !tm.within(word, time.Second) {
			continue
		}
		tm.send("\r")
		switch tm.first(shellPrompt, "postern: held for approval") {
		case shellPrompt:
			tm.syncs++
			return
		default: // held: cancel it, and try again
			tm.send("\x03")
			tm.expect("cancelled with Ctrl-C")
		}
	}
}

// first waits for whichever of a and b the terminal prints first after
// the last expect, and returns it.
func (tm *term) first(a, b string) string {
	tm.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rest := tm.out.String()[tm.seen:]
		ia, ib := strings.Index(rest, a), strings.Index(rest, b)
		if ia >= 0 && (ib < 0 || ia < ib) {
			tm.seen += ia + len(a)
			return a
		}
		if ib >= 0 {
			tm.seen += ib + len(b)
			return b
		}
		if time.Now().After(deadline) {
			tm.t.Logf("goroutines of the bastion:\n%s", bastionStacks())
			tm.t.Fatalf("waited for %q or %q; terminal shows:\n%q", a, b, tm.out.String()[max(0, tm.seen-600):])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// enter types keys, which end with Enter: the rest first, then, once the
// terminal shows echo, the Enter.
func (tm *term) enter(keys, echo string) {
	tm.t.Helper()
	tm.send(strings.TrimSuffix(keys, "\r"))
	tm.expect(echo)
	tm.send("\r")
}

// exit ends the shell and waits for ssh.
func (tm *term) exit() {
	tm.t.Helper()
	tm.send("exit\r")
	tm.wait()
}

// heldLine waits for the one pending request, checks its line, and that
// the terminal said it is held.
func (e *holdEnv) heldLine(t *testing.T, tm *term, line string) approval.Request {
	t.Helper()
	r := e.pending(t)
	if r.Line != line || r.Rule != "touch-needs-approval" {
		t.Fatalf("request %+v, want line %q", r, line)
	}
	tm.expect("postern: held for approval (request " + r.ID)
	return r
}

// A line the rules hold waits for approval however it was produced:
// typed, recalled with Up, found with Ctrl-R, completed with Tab.
func TestShellLineHeld(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm := e.shell(t)
	marker := func(name string) string { return filepath.Join(e.dir, name) }
	for _, c := range []struct {
		name, setup, keys, line string
	}{ // keys end with Enter, sent once the rest shows (as a person types)
		{"typed", "", "touch " + marker("typed") + "\r", "touch " + marker("typed")},
		{"up", "history -s 'touch " + marker("up") + "'\r", "\x1b[A\r", "touch " + marker("up")},
		{"ctrl-r", "history -s 'touch " + marker("search") + "'; history -s 'echo other'\r", "\x12search\r", "touch " + marker("search")},
		{"tab", "", "tou\t" + marker("tab") + "\r", "touch " + marker("tab")},
		{"paste", "", "\x1b[200~echo pasted\ntouch " + marker("paste") + "\x1b[201~\r", "echo pasted\ntouch " + marker("paste")},
		{"continued", "for f in " + marker("loop") + "; do\r", "touch $f; done\r", "for f in " + marker("loop") + "; do\ntouch $f; done"},
	} {
		t.Run(c.name, func(t *testing.T) {
			switch setup := strings.TrimSuffix(c.setup, "\r"); {
			case strings.HasSuffix(setup, "do"):
				tm.enter(c.setup, setup[len(setup)-4:])
				tm.expect("> ") // PS2: the shell asks for more
			case c.setup != "":
				tm.enter(c.setup, setup[len(setup)-4:])
				tm.expect(shellPrompt)
			}
			tm.enter(c.keys, c.line[strings.LastIndexAny(c.line, "/ ")+1:])
			r := e.heldLine(t, tm, c.line)
			file := marker(c.name)
			if c.name == "continued" {
				file = marker("loop")
			} else if c.name == "ctrl-r" {
				file = marker("search")
			}
			if exists(file) {
				t.Fatal("the held line ran before approval")
			}
			if _, err := e.broker.Decide(t.Context(), r.ID, bob, true, "ok"); err != nil {
				t.Fatal(err)
			}
			tm.expect("postern: request " + r.ID + " approved by bob: ok; running")
			// Readline may redraw the line with its prompt before it
			// runs it (after Ctrl-R): wait for the file, then a prompt.
			testenv.WaitFor(t, 20*time.Second, func() bool { return exists(file) })
			tm.sync()
		})
	}
	tm.exit()
}

// A denied request, a deny rule and Ctrl-C while held all drop the line:
// it never runs, the user is told why, and the shell goes on.
func TestShellLineRefused(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm := e.shell(t)
	denied := filepath.Join(e.dir, "denied")
	tm.enter("touch "+denied+"\r", denied)
	r := e.heldLine(t, tm, "touch "+denied)
	if _, err := e.broker.Decide(t.Context(), r.ID, bob, false, "not today"); err != nil {
		t.Fatal(err)
	}
	tm.expect("postern: request " + r.ID + " denied by bob: not today; the command did not run")
	tm.sync()

	copied := filepath.Join(e.dir, "copied")
	tm.enter("cp /etc/hostname "+copied+"\r", copied)
	tm.expect("postern: refused by rule no-cp")
	tm.sync()

	cancelled := filepath.Join(e.dir, "cancelled")
	tm.enter("touch "+cancelled+"\r", cancelled)
	r = e.heldLine(t, tm, "touch "+cancelled)
	tm.send("\x03")
	tm.expect("postern: request " + r.ID + " cancelled with Ctrl-C; the command did not run")
	if g, _ := e.broker.Get(t.Context(), r.ID); g.State != approval.StateCancelled {
		t.Fatalf("request after Ctrl-C: %s", g.State)
	}
	tm.sync()

	tm.enter("echo still-$((6*7))\r", "7))")
	tm.expect("still-42")
	tm.exit()
	for _, m := range []string{denied, copied, cancelled} {
		if exists(m) {
			t.Fatalf("%s was created", m)
		}
	}
}

// Unflagged lines run with no request, and keys for a full-screen
// program are not judged.
func TestShellUnflagged(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm := e.shell(t)
	tm.enter("echo $((6*7))\r", "7))")
	tm.expect("42")
	tm.expect(shellPrompt)
	tm.exit()
	if n := len(e.broker.List(t.Context(), true)); n != 0 {
		t.Fatalf("%d requests for unflagged lines", n)
	}
}

// A shell without a pty reads its input line by line: each line is
// judged whole; a held one waits, a refused one ends the session before
// the lines after it run.
func TestShellWithoutPTY(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	marker := filepath.Join(e.dir, "nopty")
	_, wait := e.startStdin(t, "echo one\ntouch "+marker+"\nfor i in 1; do\n echo two\ndone\n")
	r := e.pending(t)
	if r.Line != "touch "+marker {
		t.Fatalf("request line %q", r.Line)
	}
	if _, err := e.broker.Decide(t.Context(), r.ID, bob, true, ""); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := wait()
	if code != 0 || stdout != "one\ntwo\n" || !exists(marker) {
		t.Fatalf("exit %d stdout %q stderr %q marker %v", code, stdout, stderr, exists(marker))
	}

	copied := filepath.Join(e.dir, "nopty-copied")
	_, wait = e.startStdin(t, "echo one\ncp /etc/hostname "+copied+"\necho two")
	stdout, stderr, code = wait()
	if code != ExitRefused || stdout != "one\n" || exists(copied) || !strings.Contains(stderr, "postern: refused by rule no-cp") {
		t.Fatalf("exit %d stdout %q stderr %q", code, stdout, stderr)
	}
}

// startStdin runs a shell without a pty as bashUser, its input stdin.
func (e *holdEnv) startStdin(t *testing.T, stdin string) (func(), func() (string, string, int)) {
	t.Helper()
	return e.startAs(t, bashUser+"@t1", bytes.NewReader([]byte(stdin)))
}

// startAs runs ssh -T (a shell, no pty) as user with stdin in the
// background; wait returns its result.
func (e *holdEnv) startAs(t *testing.T, user string, stdin io.Reader) (cancel func(), wait func() (stdout, stderr string, code int)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	args := append(e.opts(e.alice), "-T", "-p", strconv.Itoa(e.port), user+"@127.0.0.1")
	cmd := exec.CommandContext(ctx, e.sshBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cancel, func() (string, string, int) {
		cmd.Wait()
		cancel()
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
}

// An exec with a pty is a terminal too (ssh -t host bash): its lines are
// judged like a shell's, whatever its prompt.
func TestExecPTYLinesJudged(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tty, out, wait := e.ptySSH(t, e.alice, bashUser+"@t1", 24, 100, "bash")
	tm := &term{t: t, tty: tty, out: out, wait: wait}
	tm.enter("PS1='exec''pty$ '\r", "$ '")
	tm.expect("execpty$ ")
	marker := filepath.Join(e.dir, "execpty")
	tm.enter("touch "+marker+"\r", marker)
	r := e.heldLine(t, tm, "touch "+marker)
	if _, err := e.broker.Decide(t.Context(), r.ID, bob, false, ""); err != nil {
		t.Fatal(err)
	}
	tm.expect("postern: request " + r.ID + " denied by bob; the command did not run")
	tm.expect("execpty$ ")
	tm.exit()
	if exists(marker) {
		t.Fatal("the denied line ran")
	}
}

// bastionStacks is the stacks of the goroutines in the bastion's code, to
// tell a stuck pipeline from a stuck shell.
func bastionStacks() string {
	buf := make([]byte, 8<<20)
	var out strings.Builder
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "postern/bastion.(*") || strings.Contains(g, "postern/approval.(*") {
			out.WriteString(g + "\n\n")
		}
	}
	return out.String()
}
