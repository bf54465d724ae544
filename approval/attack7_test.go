package approval

import (
	"slices"
	"strings"
	"testing"
)

// Attacks on the terminal line tracker: keys that run a line other than
// a plain Enter, Enters the shell may not run, and screens that show
// another line than the shell has.

var touchPolicy = &Policy{Rules: []Rule{{Name: "touch", Match: Match{Commands: []string{"touch"}}, Action: Approve, Approvers: []string{"ops"}}}}

// Keys that make readline run the line are Enters: Ctrl-O, CR or LF
// after Esc (vi mode), inside an aborted escape sequence, after Ctrl-X or
// after Ctrl-V; Ctrl-X Ctrl-E and Ctrl-X e run what an editor or a macro
// returns, which cannot be judged.
func TestAttack7TrackerEnterKeys(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		keys  string
		enter Enter
	}{
		{"touch x\r", EnterPlain},
		{"touch x\n", EnterPlain},
		{"touch x\x0f", EnterOther},
		{"touch x\x04", EnterOther},
		{"touch x\x1b\r", EnterOther},
		{"touch x\x1b[\r", EnterOther},
		{"touch x\x1b[1;2\n", EnterOther},
		{"touch x\x1bO\r", EnterOther},
		{"touch x\x16\r", EnterOther},
		{"touch x\x11\n", EnterOther},
		{"touch x\x18\r", EnterOther},
		{"touch x\x18\x05", EnterEditor},
		{"touch x\x18e", EnterEditor},
	} {
		s := newSession(t, 80, 24)
		s.out("$ ")
		if i := s.keys(c.keys); i != len(c.keys)-1 {
			t.Errorf("%q: Enter at %d", c.keys, i)
			continue
		}
		s.out("touch x")
		l := s.line()
		if l.Enter != c.enter {
			t.Errorf("%q: Enter %v, want %v", c.keys, l.Enter, c.enter)
		}
		v := touchPolicy.DecideLine(nil, l)
		if v.Action != Approve {
			t.Errorf("%q: %v (%s)", c.keys, v.Action, v.Reason)
		}
		if c.enter == EnterEditor && !strings.Contains(v.Reason, "editor") {
			t.Errorf("%q: reason %q", c.keys, v.Reason)
		}
	}
	// Ctrl-X, Ctrl-V and Esc followed by other keys are not Enters.
	s := newSession(t, 80, 24)
	s.out("$ ")
	if i := s.keys("ls\x18\x18\x16a\x1bb\x1b[D\x18u"); i != -1 {
		t.Fatalf("Enter at %d", i)
	}
}

// Backspace, Ctrl-W or Ctrl-U with nothing typed may erase what the shell
// has from before: the keys no longer tell the line.
func TestAttack7TrackerEraseBeforeLine(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"\x7f", "\x08", "\x17", "\x15"} {
		s := newSession(t, 80, 24)
		s.out("$ ")
		s.keys(k + "ls\r")
		if l := s.line(); l.Exact {
			t.Errorf("%q then ls: exact %+v", k, l)
		}
	}
}

// Keys that come before the program answered the Enter before them (it
// printed nothing since) find the screen still showing the line before:
// it is not their prompt. "tou" Enter, unanswered, then Backspace and
// "ch x": a program that took the Enter as a character erases it, and
// the screen shows "touch x" after the old line's "$ tou".
func TestAttack7TrackerUnansweredEnter(t *testing.T) {
	t.Parallel()
	s := newSession(t, 80, 24)
	s.out("$ ")
	s.keys("tou")
	s.out("tou")
	s.keys("\r")
	s.line()
	s.tr.Reset()
	s.keys("\x7fch x\r")
	s.out("^M\b \b\b \bch x")
	l := s.line()
	if v := touchPolicy.DecideLine(nil, l); v.Action != Approve {
		t.Fatalf("line %+v: %v (%s)", l, v.Action, v.Reason)
	}
}

// After an Enter that may not have run the line (one that is not a plain
// CR or LF), after a refusal (the shell was sent Ctrl-C, which it may not
// act on) and after Ctrl-C, the shell may still have the line: the next
// line is read from the screen, also after the earlier prompt, never from
// the keys alone.
func TestAttack7TrackerUnsure(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		end  func(s *session)
	}{
		{"ctrl-c", func(s *session) { s.keys("\x03") }},
		{"refused", func(s *session) { s.keys("\r"); s.line(); s.tr.Unsure() }},
		{"other enter", func(s *session) { s.keys("\x1b\r"); s.line(); s.tr.Unsure() }},
	} {
		s := newSession(t, 80, 24)
		s.out("$ ")
		s.keys("touch x")
		s.out("touch x")
		c.end(s)
		// The shell ignored it: the line is still there.
		s.keys(" y\r")
		s.out(" y")
		l := s.line()
		if l.Exact || !slices.Contains(l.Screen, "touch x y") {
			t.Errorf("%s: line %+v", c.name, l)
		}
		if v := touchPolicy.DecideLine(nil, l); v.Action != Approve {
			t.Errorf("%s: %v (%s)", c.name, v.Action, v.Reason)
		}
		// A plain Enter that passed ends the doubt.
		s.tr.Reset()
		s.out("\r\n$ ")
		s.keys("ls\r")
		s.out("ls")
		if l := s.line(); !l.Exact || !slices.Equal(l.Screen, []string{"ls"}) {
			t.Errorf("%s: after a plain Enter: %+v", c.name, l)
		}
	}
}

// Every place the search display could end is a candidate.
func TestAttack7TrackerSearchQuote(t *testing.T) {
	t.Parallel()
	s := newSession(t, 80, 24)
	s.out("$ ")
	s.keys("\x12': x\r")
	s.out("\r(reverse-i-search)`': x': touch y #': x\x1b[K")
	l := s.line()
	if !slices.Contains(l.Screen, "touch y #': x") {
		t.Fatalf("line %+v", l)
	}
	if v := touchPolicy.DecideLine(nil, l); v.Action != Approve {
		t.Fatalf("%v (%s)", v.Action, v.Reason)
	}
}

// A terminal larger than the emulator keeps: the screen cannot be read.
func TestAttack7TrackerWideTerminal(t *testing.T) {
	t.Parallel()
	s := newSession(t, 600, 24)
	s.out("$ ")
	s.keys("\x1b[Als\r")
	s.out("ls")
	if l := s.line(); l.ScreenOK {
		t.Fatalf("line %+v", l)
	}
	s.tr.Resize(100, 24)
	s.out("\r\n$ ")
	s.keys("\x1b[Als\r")
	s.out("ls")
	if l := s.line(); !l.ScreenOK {
		t.Fatalf("after resize: %+v", l)
	}
}

// A newline in a bracketed paste is where a program that does not know
// bracketed paste runs the line: the line so far is judged there, and
// the line goes on (readline keeps it) unless it was refused.
func TestAttack7TrackerPastedNewline(t *testing.T) {
	t.Parallel()
	s := newSession(t, 80, 24)
	s.out("\x1b[?2004h$ ")
	keys := "\x1b[200~echo a\ntouch y\necho b\x1b[201~\r"
	i := s.keys(keys)
	if i != len("\x1b[200~echo a") {
		t.Fatalf("first hold at %d", i)
	}
	if l := s.line(); l.Enter != EnterPaste || l.Typed != "echo a" || !l.Exact {
		t.Fatalf("first pasted line %+v", l)
	}
	rest := keys[i+1:]
	i = s.keys(rest)
	if i != len("touch y") {
		t.Fatalf("second hold at %d", i)
	}
	l := s.line()
	if l.Typed != "echo a\ntouch y" {
		t.Fatalf("second pasted line %+v", l)
	}
	if v := touchPolicy.DecideLine(nil, l); v.Action != Approve || v.Line != "echo a\ntouch y" {
		t.Fatalf("%+v", v)
	}
	// Approved: what follows is judged without it.
	s.tr.Granted()
	rest = rest[i+1:]
	if i = s.keys(rest); i != len(rest)-1 {
		t.Fatalf("Enter at %d", i)
	}
	if l := s.line(); l.Enter != EnterPlain || l.Typed != "echo b" {
		t.Fatalf("after the approval: %+v", l)
	}
}

// The alternate screen coming on (any program can switch to it) while a
// line is typed: the shell may still have the line when it goes off, and
// an Enter found before it came on is judged from the keys.
func TestAttack7TrackerAlternateScreen(t *testing.T) {
	t.Parallel()
	s := newSession(t, 80, 24)
	s.out("$ ")
	s.keys("touch x")
	s.out("touch x\x1b[?1049h")
	if i := s.keys(" "); i != -1 {
		t.Fatalf("Enter at %d on the alternate screen", i)
	}
	s.out("\x1b[?1049l")
	s.keys("y\r")
	s.out(" y")
	l := s.line()
	if v := touchPolicy.DecideLine(nil, l); v.Action != Approve {
		t.Fatalf("line %+v: %v (%s)", l, v.Action, v.Reason)
	}
	s.tr.Reset()
	s.out("\r\n$ ")
	s.keys("touch z\r")
	s.out("touch z\x1b[?1049h")
	l = s.line()
	if v := touchPolicy.DecideLine(nil, l); v.Action != Approve || v.Line != "touch z" {
		t.Fatalf("line %+v: %v %q (%s)", l, v.Action, v.Line, v.Reason)
	}
}

// Ctrl-D after an unfinished line ends the input: bash runs a
// here-document or a trailing backslash's line as it stands. Only a plain
// Enter (or a pasted newline) lets an unfinished line pass unjudged.
func TestAttack7UnfinishedAtOtherEnter(t *testing.T) {
	t.Parallel()
	for _, e := range []Enter{EnterOther, EnterEditor} {
		l := Line{Before: "touch x <<EOF", Screen: []string{""}, ScreenOK: true, Exact: true, Enter: e}
		if v := touchPolicy.DecideLine(nil, l); v.Unfinished || v.Action != Approve {
			t.Errorf("%v: %+v", e, v)
		}
	}
	l := Line{Before: "touch x <<EOF", Screen: []string{""}, ScreenOK: true, Exact: true, Enter: EnterPlain}
	if v := touchPolicy.DecideLine(nil, l); !v.Unfinished {
		t.Errorf("plain: %+v", v)
	}
}
