package approval

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// session plays a shell on a Tracker: prompt, keys with their echo.
type session struct {
	t  *testing.T
	tr *Tracker
}

func newSession(t *testing.T, cols, rows int) *session {
	tr := NewTracker(cols, rows)
	t.Cleanup(func() { tr.Close() })
	return &session{t: t, tr: tr}
}

func (s *session) out(p string) { s.tr.Write([]byte(p)) }

// keys feeds keys and reports where the Enter is (-1: none).
func (s *session) keys(p string) int { return s.tr.Keys([]byte(p)) }

func (s *session) line() Line { return s.tr.Line(s.t.Context(), MaxSettle) }

func TestTrackerLine(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		cols       int
		play       func(s *session)
		screen     []string
		typed      string
		exact      bool
		screenOK   bool
		hidden     bool
		fullScreen bool
	}{
		{name: "typed", cols: 80, play: func(s *session) {
			s.out("old output\r\nuser@host:~$ ")
			s.keys("touch x")
			s.out("touch x")
		}, screen: []string{"touch x"}, typed: "touch x", exact: true, screenOK: true},
		{name: "history", cols: 80, play: func(s *session) {
			s.out("$ ")
			s.keys("\x1b[A")
			s.out("rm -rf /tmp/x")
		}, screen: []string{"rm -rf /tmp/x"}, typed: "", exact: false, screenOK: true},
		{name: "wrapped", cols: 10, play: func(s *session) {
			s.out("$ ")
			s.keys("echo 1234567890abc")
			s.out("echo 1234567890abc")
		}, screen: []string{"echo 1234567890abc"}, typed: "echo 1234567890abc", exact: true, screenOK: true},
		{name: "search", cols: 80, play: func(s *session) {
			s.out("$ ")
			s.keys("\x12tou")
			s.out("\r(reverse-i-search)`tou': touch /tmp/y\x1b[K")
		}, screen: []string{"touch /tmp/y"}, typed: "tou", exact: false, screenOK: true},
		{name: "echo off", cols: 80, play: func(s *session) {
			s.out("Password: ")
			s.keys("hunter2")
		}, screen: []string{""}, typed: "hunter2", exact: true, screenOK: true, hidden: true},
		{name: "prompt gone", cols: 80, play: func(s *session) {
			s.out("$ ")
			s.keys("\x1b[A")
			s.out("\x1b[2J\x1b[Hsomething else")
		}, typed: "", exact: false},
		{name: "backspace and ctrl-w", cols: 80, play: func(s *session) {
			s.out("$ ")
			s.keys("rm x\x7f\x7f\x7f\x7fls foo\x17bar")
			s.out("ls bar")
		}, screen: []string{"ls bar"}, typed: "ls bar", exact: true, screenOK: true},
		{name: "full screen", cols: 80, play: func(s *session) {
			s.out("$ vim\r\n\x1b[?1049h")
		}, fullScreen: true, exact: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSession(t, c.cols, 24)
			c.play(s)
			enter := s.keys("\r")
			if c.fullScreen {
				if enter != -1 {
					t.Fatalf("Enter found in a full-screen program: %d", enter)
				}
			} else if enter != 0 {
				t.Fatalf("Enter at %d, want 0", enter)
			}
			l := s.line()
			if !slices.Equal(l.Screen, c.screen) || l.ScreenOK != c.screenOK || l.Typed != c.typed || l.Exact != c.exact || l.Hidden != c.hidden || l.FullScreen != c.fullScreen {
				t.Fatalf("line %+v", l)
			}
		})
	}
}

// Keys stops at the Enter: the keys after it belong to the next line,
// fed once the Enter passed. A newline inside a bracketed paste does not
// end the line when the program asked for bracketed paste (it is judged
// there, EnterPaste, as a program that ignores the markers would run the
// line, and the line goes on), and is an Enter otherwise.
func TestTrackerKeys(t *testing.T) {
	t.Parallel()
	s := newSession(t, 80, 24)
	s.out("$ ")
	if i := s.keys("echo a\recho b\r"); i != 6 {
		t.Fatalf("Enter at %d, want 6", i)
	}
	s.out("\x1b[?2004h$ ")
	paste := "\x1b[200~echo a\necho b\x1b[201~\r"
	if i := s.keys(paste); i != len("\x1b[200~echo a") {
		t.Fatalf("pasted newline at %d", i)
	}
	if l := s.line(); l.Enter != EnterPaste || !l.Exact || l.Typed != "echo a" {
		t.Fatalf("line at the pasted newline %+v", l)
	}
	if i := s.keys(paste[len("\x1b[200~echo a\n"):]); i != len("echo b\x1b[201~") {
		t.Fatalf("Enter at %d: the pasted newline ended the line", i)
	}
	if l := s.line(); l.Enter != EnterPlain || !l.Exact || !l.Pasted || l.Typed != "echo a\necho b" {
		t.Fatalf("pasted line %+v", l)
	}
	s.out("\x1b[?2004l$ ")
	if i := s.keys("\x1b[200~echo a\necho b\x1b[201~\r"); i != len("\x1b[200~echo a") {
		t.Fatalf("Enter at %d without bracketed paste mode", i)
	}
}

// Line waits for the echo of the keys before the Enter, but no longer
// than its bound.
func TestTrackerSettles(t *testing.T) {
	t.Parallel()
	s := newSession(t, 80, 24)
	s.out("$ ")
	s.keys("touch x\r")
	s.out("touch")
	go func() { s.out(" x") }()
	// Line returns when the echo shows, well before this bound; with
	// MaxSettle (50ms) a loaded machine could run the goroutine too late.
	if l := s.tr.Line(t.Context(), time.Minute); !slices.Equal(l.Screen, []string{"touch x"}) {
		t.Fatalf("line %+v before the echo settled", l)
	}
	s.keys("ls\r") // no echo at all
	start := time.Now()
	s.line()
	// At least the bound, as nothing echoes; the upper limit only catches
	// a Line that ignores its bound (a timer can fire late under load).
	if d := time.Since(start); d < MaxSettle || d > MaxSettle+10*time.Second {
		t.Fatalf("Line waited %v with a bound of %v", d, MaxSettle)
	}
}

func TestUnfinished(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		s    string
		want bool
	}{
		{"for i in 1 2; do", true}, {"echo 'a", true}, {"touch x \\", true}, {"touch x # \\", false},
		{"touch x &&", true}, {"cat <<EOF", true}, {"cat <<EOF\nhi\nEOF", false}, {"echo a\\\\", false},
		{"ls", false}, {"", false}, {"touch x; if true; then", true}, {"echo \"$(", true},
	} {
		if got := Unfinished(c.s); got != c.want {
			t.Errorf("Unfinished(%q) = %v", c.s, got)
		}
	}
}

func TestDecideLine(t *testing.T) {
	t.Parallel()
	p := &Policy{Rules: []Rule{
		{Name: "rm", Match: Match{Commands: []string{"rm"}}, Action: Deny},
		{Name: "ls", Match: Match{Commands: []string{"ls"}}, Action: Allow},
		{Name: "rest", Action: Approve},
	}}
	for _, c := range []struct {
		name       string
		line       Line
		action     Action
		shown      string
		unfinished bool
	}{
		{"screen", Line{Screen: []string{"rm x"}, ScreenOK: true}, Deny, "rm x", false},
		{"keys disagree", Line{Screen: []string{"ls"}, ScreenOK: true, Typed: "rm x", Exact: true}, Deny, "rm x", false},
		{"both allowed", Line{Screen: []string{"ls"}, ScreenOK: true, Typed: "ls", Exact: true}, Allow, "ls", false},
		{"neither", Line{Typed: "l", Exact: false}, Approve, "(not shown)", false},
		{"password", Line{Screen: []string{""}, ScreenOK: true, Hidden: true, Typed: "hunter2", Exact: true}, Allow, "", false},
		{"blind rm", Line{Screen: []string{""}, ScreenOK: true, Hidden: true, Typed: "rm x", Exact: true}, Deny, "rm x", false},
		{"empty", Line{Screen: []string{""}, ScreenOK: true, Exact: true}, Allow, "", false},
		// The alternate screen came on after the Enter: the keys tell.
		{"full screen", Line{FullScreen: true}, Approve, "(not shown)", false},
		{"full screen typed", Line{FullScreen: true, Screen: []string{"rm x"}, ScreenOK: true, Typed: "ls", Exact: true}, Allow, "ls", false},
		{"unfinished", Line{Screen: []string{"for f in *; do"}, ScreenOK: true, Typed: "for f in *; do", Exact: true}, Allow, "for f in *; do", true},
		{"finished", Line{Before: "for f in *; do", Screen: []string{"rm $f; done"}, ScreenOK: true}, Deny, "for f in *; do\nrm $f; done", false},
		{"views differ", Line{Screen: []string{"echo 'a"}, ScreenOK: true, Typed: "echo 'b", Exact: true}, Approve, "echo 'a", false},
	} {
		v := p.DecideLine(nil, c.line)
		if v.Action != c.action || v.Line != c.shown || v.Unfinished != c.unfinished {
			t.Errorf("%s: %v %q unfinished %v (%s), want %v %q", c.name, v.Action, v.Line, v.Unfinished, v.Reason, c.action, c.shown)
		}
	}
	if !p.Judges(nil) || (&Policy{Rules: []Rule{{Name: "ls", Match: Match{Commands: []string{"ls"}}, Action: Allow}}}).Judges(nil) {
		t.Error("Judges")
	}
}

// BenchmarkTrackerEnter is the bastion's work at Enter on a plainly typed
// line: the echo read, the line found, both views judged.
func BenchmarkTrackerEnter(b *testing.B) {
	p := &Policy{Rules: []Rule{{Name: "touch", Match: Match{Commands: []string{"touch"}}, Action: Approve, Approvers: []string{"ops"}}}}
	tr := NewTracker(100, 24)
	defer tr.Close()
	line := "ls -l /var/log | grep -c syslog"
	for b.Loop() {
		tr.Write([]byte("\r\nuser@host:~$ "))
		tr.Keys([]byte(line))
		tr.Write([]byte(line))
		tr.Keys([]byte("\r"))
		if v := p.DecideLine(nil, tr.Line(b.Context(), MaxSettle)); v.Action != Allow || v.Line != line {
			b.Fatalf("%+v", v)
		}
	}
}

// BenchmarkTrackerOutput is the tracker's cost on output: lines of text
// that scroll the screen (cat of a log).
func BenchmarkTrackerOutput(b *testing.B) {
	tr := NewTracker(100, 24)
	defer tr.Close()
	chunk := []byte(strings.Repeat(strings.Repeat("x", 79)+"\r\n", 400))
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		tr.Write(chunk)
	}
}

// Output past the pending cap is folded: the screen still ends with the
// newest output, and a mode set in the folded part still counts.
func TestTrackerFoldsOutput(t *testing.T) {
	t.Parallel()
	s := newSession(t, 80, 24)
	s.out("\x1b[?1049h")                                                 // a full-screen program starts
	s.out(strings.Repeat("\x1b[31mred line of output\x1b[0m\r\n", 5000)) // and draws a lot
	s.out("\x1b[?1049l" + strings.Repeat("more\r\n", 3000))              // it ends; more output
	s.out("$ ")
	s.keys("ls")
	s.out("ls")
	if i := s.keys("\r"); i != 0 {
		t.Fatalf("Enter at %d: the alternate screen's end was lost in the fold", i)
	}
	if l := s.line(); !l.ScreenOK || !slices.Equal(l.Screen, []string{"ls"}) {
		t.Fatalf("line %+v", l)
	}
	s.out(strings.Repeat("x\r\n", 10000) + "\x1b[?1049h" + strings.Repeat("y\r\n", 10000))
	if i := s.keys("\r"); i != -1 {
		t.Fatal("keys judged in a full-screen program that started in the folded output")
	}
}
