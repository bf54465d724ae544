package bastion

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
