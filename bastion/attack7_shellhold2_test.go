package bastion

import (
	"bytes"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/testenv"
)

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
		// The command sleeps 8s so that the keys come while it runs on a
		// loaded machine too.
		{"type-ahead", []string{"history -s 'touch M'"}, []string{"printf 'X''Y'; sleep 8\r", "true\x10\x10\r"}, []string{"XY", ""}},
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
			if !waitExists(marker, 20*time.Second) {
				t.Fatalf("%s was not made; terminal shows:\n%q", marker, tm.out.String())
			}
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
	// Each shell still runs what it may; the held lines never ran. bash
	// takes keys that come while it handles the bastion's Ctrl-C into the
	// line it then drops (the tracker, unsure, reads them with the held
	// line), so each try empties the line first (Ctrl-E Ctrl-U) and the
	// line is typed again until its echo shows.
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatalf("the shell never echoed a line typed after the refusal:\n%s", a.out.String())
		}
		seen := len(a.out.String())
		word := "try" + strconv.Itoa(i)
		if _, err := a.in.Write([]byte("\x05\x15echo $((6*7))" + word)); err != nil {
			t.Fatal(err)
		}
		if echoed(a.out, seen, "))"+word, time.Second) {
			break
		}
	}
	if _, err := a.in.Write([]byte("\r")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(a.out.String(), "42try") })
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

// echoed reports whether s shows in out past its first seen bytes within d.
func echoed(out *testenv.Buffer, seen int, s string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !strings.Contains(out.String()[seen:], s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// waitExists reports whether path exists within d.
func waitExists(path string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !exists(path) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
