package bastion

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/testenv"
)

// Attacks on the hold of lines typed in an interactive shell, by a user
// with a shell whose touch the rules hold (newShellEnv): each tries to
// make bash run touch MARKER on the target without an approval. The
// marker file says whether it ran.

// attackShell is a bash of bashUser on a terminal cols wide, and the
// marker file an attack tries to create.
func (e *holdEnv) attackShell(t *testing.T, cols uint16) (*term, string) {
	t.Helper()
	tty, out, wait := e.ptySSH(t, e.alice, bashUser+"@t1", 24, cols)
	tm := &term{t: t, tty: tty, out: out, wait: wait}
	tm.expect(shellPrompt)
	return tm, filepath.Join(e.dir, "marker")
}

// run types line plainly, runs it and waits for the next prompt.
func (tm *term) run(line string) {
	tm.t.Helper()
	tm.enter(line+"\r", line[max(0, len(line)-6):])
	tm.expect(shellPrompt)
}

// stopped waits until what the attack sent is held or refused, and fails
// the test if marker appears first: the command ran without approval. A
// held request is denied; stopped returns once the user was told so.
func (e *holdEnv) stopped(t *testing.T, tm *term, marker string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if exists(marker) {
			t.Fatalf("the held command ran without approval; terminal shows:\n%q", tm.out.String()[max(0, tm.seen-300):])
		}
		if list := e.broker.List(t.Context(), false); len(list) > 0 {
			r := list[0]
			if _, err := e.broker.Decide(t.Context(), r.ID, bob, false, "no"); err != nil {
				t.Fatal(err)
			}
			tm.expect("postern: request " + r.ID + " denied by bob: no; the command did not run")
			return
		}
		if tm.within("postern: refused by rule", 0) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("neither held nor run; terminal shows:\n%q", tm.out.String()[max(0, tm.seen-300):])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// notRan checks, after the shell ran a line of its own since, that marker
// was never made. The shell may have kept the refused line (readline
// does when the Ctrl-C comes after a prefix key such as Ctrl-X): Ctrl-E
// Ctrl-U empties it first.
func notRan(t *testing.T, tm *term, marker string) {
	t.Helper()
	tm.send("\x05\x15")
	tm.sync()
	if exists(marker) {
		t.Fatal("the held command ran without approval")
	}
}

// Ctrl-O (readline's operate-and-get-next) runs the line as Enter does.
func TestAttack7ShellCtrlO(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.enter("touch "+marker+"\x0f", marker)
	e.stopped(t, tm, marker)
	notRan(t, tm, marker)
	tm.exit()
}

// Ctrl-X Ctrl-E (edit-and-execute-command) hands the line to $VISUAL and
// runs what it returns: VISUAL=true returns it unchanged; a real editor
// could return anything.
func TestAttack7ShellEditAndExecute(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.run("export VISUAL=true")
	tm.enter("touch "+marker+"\x18\x05", marker)
	e.stopped(t, tm, marker)
	notRan(t, tm, marker)
	tm.exit()
}

// A keyboard macro recorded with an Enter in it (Ctrl-X ( Enter Ctrl-X ))
// runs the line it is replayed on (Ctrl-X e).
func TestAttack7ShellKeyboardMacro(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.send("\x18(")
	tm.send("\r")
	tm.expect(shellPrompt)
	tm.send("\x18)")
	tm.sync()
	tm.enter("touch "+marker+"\x18e", marker)
	e.stopped(t, tm, marker)
	notRan(t, tm, marker)
	tm.exit()
}

// In vi mode, Esc then Enter runs the line: the Enter must not be taken
// for the end of an escape sequence, nor after Esc [.
func TestAttack7ShellViEscEnter(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.run("set -o vi")
	for _, esc := range []string{"\x1b", "\x1b[", "\x1b[1;"} {
		tm.enter("touch "+marker+esc+"\r", marker)
		e.stopped(t, tm, marker)
		// bash may keep the line after the Ctrl-C in vi command mode
		// (it did when keys followed at once): Esc S empties it.
		tm.expect(shellPrompt)
		tm.send("\x1bS")
		notRan(t, tm, marker)
	}
	tm.exit()
}

// An Enter the shell does not run (quoted with Ctrl-V, Esc Enter in emacs
// mode, Ctrl-X Enter) must not leave the bastion believing the shell has
// an unfinished line: the line typed next would be judged as the rest of
// it ("echo 'x" then "touch M" is one quoted word), while the shell,
// after Ctrl-U, runs it alone.
func TestAttack7ShellEnterNotRunDesync(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	for _, fake := range []string{"\x16\r", "\x1b\r", "\x18\r"} {
		tm.enter("echo 'x"+fake, "'x")
		// Such a key on an unfinished line may end the input (Ctrl-D
		// does): it cannot be judged. Approved, it passes.
		r := e.pending(t)
		if _, err := e.broker.Decide(t.Context(), r.ID, bob, true, ""); err != nil {
			t.Fatal(err)
		}
		tm.expect("postern: request " + r.ID + " approved")
		tm.send("\x15") // Ctrl-U: the shell's line is empty again
		tm.enter("touch "+marker+"\r", marker)
		e.stopped(t, tm, marker)
		notRan(t, tm, marker)
	}
	tm.exit()
}

// With Ctrl-C no longer the interrupt character (stty intr undef), the
// Ctrl-C the bastion sends to abandon a refused line does nothing: the
// line stays in the shell, and the next Enter would run it.
func TestAttack7ShellIntrUndef(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.run("stty intr undef")
	tm.enter("touch "+marker+"\r", marker)
	e.stopped(t, tm, marker)
	tm.send(" \r") // the refused line is still there
	e.stopped(t, tm, marker)
	tm.send("\x03\x15") // Ctrl-U empties the line
	notRan(t, tm, marker)
	tm.exit()
}

// readline's search display is (reverse-i-search)`TEXT': LINE; a search
// text and a line that both hold "': " make it ambiguous.
func TestAttack7ShellSearchQuote(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.run("history -s \"touch " + marker + " #': x\"")
	tm.send("\x12': x")
	tm.expect("(reverse-i-search)`': x': ")
	tm.send("\r")
	e.stopped(t, tm, marker)
	notRan(t, tm, marker)
	tm.exit()
}

// On a terminal wider than the emulator's cap, readline's cursor
// movements land elsewhere on the emulator's screen: after Ctrl-A on a
// long line, the text typed at its start showed up as echo's argument.
// The target is told the emulator's width.
func TestAttack7ShellWideTerminal(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 600)
	tm.run("stty size")
	if !strings.Contains(tm.out.String(), "24 512") {
		t.Fatalf("the target's terminal is not 512 wide: %q", tm.out.String())
	}
	tm.send("echo " + strings.Repeat("a", 520) + "Z")
	tm.expect("aaaaZ")
	tm.send("\x01") // Ctrl-A: to the start of the line
	tm.enter("touch "+marker+"; \r", "; ")
	e.stopped(t, tm, marker)
	notRan(t, tm, marker)
	tm.exit()
}

// A newline inside bracketed paste markers is not an Enter for readline,
// but a program that did not ask for bracketed paste (dash reading its
// line, after printf set the mode on the screen) runs each line.
func TestAttack7ShellPasteToPlainReader(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.enter("dash\r", "dash")
	tm.expect("$ ")
	tm.enter(`printf '\033[?2004h'`+"\r", "h'")
	tm.expect("$ ")
	tm.send("\x1b[200~\r")
	tm.expect("200~")
	tm.expect("$ ")
	tm.enter("touch "+marker+"\r", marker)
	e.stopped(t, tm, marker)
	tm.expect("$ ") // after the Ctrl-C the refusal sent
	tm.send("\x1b[201~\x03")
	tm.expect("^C\r\n$ ")
	tm.enter("exit\r", "exit")
	tm.expect(shellPrompt)
	notRan(t, tm, marker)
	tm.exit()
}

// Ctrl-D ends the input of a program reading in the terminal driver's
// cooked mode: dash runs the line it has at the second one.
func TestAttack7ShellEOFToPlainReader(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.enter("dash\r", "dash")
	tm.expect("$ ")
	tm.enter("touch "+marker+"\x04\x04", marker)
	e.stopped(t, tm, marker)
	tm.expect("$ ")
	tm.enter("exit\r", "exit")
	tm.expect(shellPrompt)
	notRan(t, tm, marker)
	tm.exit()
}

// The alternate screen, switched on and off by a background job while a
// line is typed: a key sent meanwhile must not make the bastion take
// what the shell still has for a prompt.
func TestAttack7ShellAltScreenMidLine(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	on, off := filepath.Join(e.dir, "on"), filepath.Join(e.dir, "off")
	wait := func(f string) string {
		return "for i in $(seq 400); do [ -e " + f + " ] && break; sleep 0.05; done\n"
	}
	job := filepath.Join(e.dir, "job")
	if err := os.WriteFile(job, []byte(wait(on)+"printf '\\033[?1049h'\n"+wait(off)+"printf '\\033[?1049l'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tm.run("bash " + job + " &")
	tm.send("touch " + marker)
	tm.expect(marker)
	touchFile(t, on)
	tm.expect("\x1b[?1049h")
	tm.send(" ")
	touchFile(t, off)
	tm.expect("\x1b[?1049l")
	tm.send("x\r")
	e.stopped(t, tm, marker)
	notRan(t, tm, marker)
	tm.exit()
}

func touchFile(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The end of input inside a construct the shell has not finished: bash
// runs a here-document's command, and a line ending in a backslash, as
// they stand. Without a terminal, the lines of a construct reach the
// shell only once it is finished, or the input ended and it was judged.
func TestAttack7NoPTYUnfinishedAtEOF(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	for _, input := range []string{"touch M \\\n", "touch M <<EOF\n", "echo ok\ntouch M <<EOF\nbody\n"} {
		marker := filepath.Join(e.dir, "eof")
		_, wait := e.startStdin(t, strings.ReplaceAll(input, "M", marker))
		r := e.pending(t)
		if !strings.HasPrefix(r.Line, "touch "+marker) {
			t.Fatalf("%q: request %+v", input, r)
		}
		if _, err := e.broker.Decide(t.Context(), r.ID, bob, false, ""); err != nil {
			t.Fatal(err)
		}
		if stdout, stderr, code := wait(); code != ExitRefused || exists(marker) {
			t.Fatalf("%q: exit %d, marker %v, stdout %q, stderr %q", input, code, exists(marker), stdout, stderr)
		}
	}
}

// With a terminal, Ctrl-D at the shell's continuation prompt ends its
// input: bash runs the here-document's command.
func TestAttack7ShellUnfinishedEOF(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.enter("touch "+marker+" <<EOF\r", "<<EOF")
	tm.expect("> ")
	tm.send("\x04")
	e.stopped(t, tm, marker)
	notRan(t, tm, marker)
	tm.exit()
}

// A shell without a terminal: a line longer than the bastion holds is
// judged as one that cannot be judged, never in pieces (its first part
// "…; tou" and the rest "ch M" are harmless apart) and never waits for
// ever.
func TestAttack7NoPTYLongLine(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	for _, size := range []int{maxHeld, maxHeld + 1000, 3 * maxHeld} {
		marker := filepath.Join(e.dir, "long")
		prefix := "echo " + strings.Repeat("a", size-len("echo ; tou"))
		_, wait := e.startStdin(t, prefix+"; tou"+"ch "+marker+"\necho after\n")
		r := e.pending(t)
		if !strings.Contains(r.Why, "longer than") {
			t.Fatalf("request %+v", r)
		}
		if _, err := e.broker.Decide(t.Context(), r.ID, bob, false, ""); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := wait()
		if code != ExitRefused || exists(marker) || strings.Contains(stdout, "after") {
			t.Fatalf("size %d: exit %d, marker %v, stdout %d bytes, stderr %q", size, code, exists(marker), len(stdout), stderr)
		}
	}
	// Approved, the whole line runs, and the lines after it are judged.
	marker := filepath.Join(e.dir, "approved")
	_, wait := e.startStdin(t, "echo "+strings.Repeat("b", maxHeld)+"; touch "+marker+"\ntouch "+marker+"2\n")
	r := e.pending(t)
	if _, err := e.broker.Decide(t.Context(), r.ID, bob, true, ""); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, func() bool {
		list := e.broker.List(t.Context(), false)
		return len(list) == 1 && list[0].ID != r.ID
	})
	next := e.pending(t)
	if next.Line != "touch "+marker+"2" {
		t.Fatalf("second request %+v", next)
	}
	if _, err := e.broker.Decide(t.Context(), next.ID, bob, false, ""); err != nil {
		t.Fatal(err)
	}
	stdout, _, code := wait()
	if code != ExitRefused || !exists(marker) || exists(marker+"2") || !bytes.Contains([]byte(stdout), []byte("bbbb")) {
		t.Fatalf("exit %d, markers %v %v", code, exists(marker), exists(marker+"2"))
	}
}

// What the README states the hold does not see, shown as it is: each of
// these runs the command without a request. A change that holds one of
// them must change the README's list of limits too.
func TestAttack7ShellLimits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		setup []string // lines run first
		keys  []string // then sent in turn, each once the one before shows
		echo  []string
	}{
		// A key bound to accept-line (bind, ~/.inputrc) runs the line.
		{"binding", []string{`bind '"\C-t": accept-line'`}, []string{"touch M\x14"}, []string{""}},
		// The alternate screen, which any program can switch to, is
		// not inspected: the shell goes on reading there.
		{"alternate screen", []string{`printf '\033[?1049h'`}, []string{"touch M\r"}, []string{""}},
		// Typed blind, keys are read as plain typing: stty made # the
		// word-erase character, so "x#touch M" is "touch M".
		{"blind", []string{"stty -echo werase '#'"}, []string{"x#touch M\r"}, []string{""}},
		// Keys typed ahead while a command runs are echoed by the
		// terminal driver (true^P) and read by readline later: Ctrl-P
		// recalls the line the screen never showed at Enter.
		{"type-ahead", []string{"history -s 'touch M'"}, []string{"printf 'X''Y'; sleep 2\r", "true\x10\x10\r"}, []string{"XY", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newShellEnv(t)
			tm, marker := e.attackShell(t, 100)
			for _, s := range c.setup {
				tm.run(strings.ReplaceAll(s, "M", marker))
			}
			for i, k := range c.keys {
				tm.send(strings.ReplaceAll(k, "M", marker))
				if c.echo[i] != "" {
					tm.expect(c.echo[i])
				}
			}
			testenv.WaitFor(t, 20*time.Second, func() bool { return exists(marker) })
			if n := len(e.broker.List(t.Context(), true)); n != 0 {
				t.Fatalf("%d requests", n)
			}
		})
	}
}

// The rules engine's view of a line, through a terminal: ways to spell,
// wrap, defer or assemble a held command on one typed line are each held
// (or refused), never run.
func TestAttack7ShellSpellings(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 200)
	for _, line := range []string{
		`\touch MARK`, `command touch MARK`, `'tou'ch MARK`, `$'\x74ouch' MARK`, `/usr/bin/tou?h MARK`,
		`/usr/bin/{touch,true} MARK`, `x=touch; $x MARK`, `eval "tou""ch MARK"`, `sh -c 'touch MARK'`,
		`bash <<< 'touch MARK'`, `echo MARK | xargs touch`, `find MARK* -maxdepth 0 -exec touch MARK \;`,
		`env -i nice timeout 5 touch MARK`, `alias ll='touch MARK'`, `f() { touch MARK; }`,
		`trap 'touch MARK' DEBUG`, `PROMPT_COMMAND='touch MARK'`, `!tou`, `fc -s tou`,
	} {
		line = strings.ReplaceAll(line, "MARK", marker)
		tm.enter(line+"\r", line[max(0, len(line)-5):])
		e.stopped(t, tm, marker)
		notRan(t, tm, marker)
	}
	tm.exit()
}

// Protocol games on one connection: two shells, each judged on its own;
// a window change and a signal while a line is held, and the client's EOF
// after it, do not let it run.
func TestAttack7ShellProtocol(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	client := e.dialGo(t, e.alice, bashUser+"@t1")
	type shell struct {
		s   *ssh.Session
		in  io.WriteCloser
		out *testenv.Buffer
	}
	open := func() shell {
		s, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		in, err := s.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &testenv.Buffer{}
		s.Stdout, s.Stderr = out, out
		if err := s.RequestPty("xterm", 24, 100, ssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Shell(); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), shellPrompt) })
		return shell{s, in, out}
	}
	a, b := open(), open()
	markers := []string{filepath.Join(e.dir, "a"), filepath.Join(e.dir, "b")}
	for i, sh := range []shell{a, b} {
		if _, err := sh.in.Write([]byte("touch " + markers[i])); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(sh.out.String(), markers[i]) })
		if _, err := sh.in.Write([]byte("\r")); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 20*time.Second, func() bool { return len(e.broker.List(t.Context(), false)) == 2 })
	if err := b.s.WindowChange(30, 120); err != nil {
		t.Fatal(err)
	}
	if err := b.s.Signal(ssh.SIGINT); err != nil {
		t.Fatal(err)
	}
	b.in.Close() // the client's EOF
	for _, r := range e.broker.List(t.Context(), false) {
		if _, err := e.broker.Decide(t.Context(), r.ID, bob, false, ""); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 20*time.Second, func() bool {
		return strings.Contains(a.out.String(), "did not run") && strings.Contains(b.out.String(), "did not run")
	})
	// Each shell still runs what it may; the held lines never ran.
	if _, err := a.in.Write([]byte("echo $((6*7))\r")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(a.out.String(), "42") })
	for _, m := range markers {
		if exists(m) {
			t.Fatalf("%s was made", m)
		}
	}
}

// Keys typed ahead of the prompt, plainly, are judged as typed.
func TestAttack7ShellTypeAheadPlain(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.send("sleep 1; echo sl''ept\rtouch " + marker + "\r")
	tm.expect("slept")
	e.stopped(t, tm, marker)
	notRan(t, tm, marker)
	tm.exit()
}

// An Enter that does not end the line for the program reading it (CR
// after stty -icrnl, for dash in cooked mode) followed by Backspace: the
// Backspace erases the CR and what is typed next continues the line the
// program has ("tou" … "ch M").
func TestAttack7ShellEraseBeforeLine(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.run("stty -icrnl")
	tm.send("dash\n")
	tm.expect("dash")
	tm.expect("$ ")
	tm.enter("tou\r", "tou")
	tm.send("\x7f")
	tm.send("ch " + marker)
	tm.expect(marker)
	tm.send("\n")
	e.stopped(t, tm, marker)
	tm.expect("$ ")
	tm.send("exit\n")
	tm.expect(shellPrompt)
	tm.run("stty icrnl")
	notRan(t, tm, marker)
	tm.exit()
}

// Ctrl-C sent with the Enter, in one write, cancels the request.
func TestAttack7ShellCtrlCWithEnter(t *testing.T) {
	t.Parallel()
	e := newShellEnv(t)
	tm, marker := e.attackShell(t, 100)
	tm.send("touch " + marker)
	tm.expect(marker)
	tm.send("\r\x03")
	tm.expect(" cancelled with Ctrl-C; the command did not run")
	if all := e.broker.List(t.Context(), true); len(all) != 1 || all[0].State != approval.StateCancelled {
		t.Fatalf("requests %+v", all)
	}
	notRan(t, tm, marker)
	tm.exit()
}
