package approval

import (
	"context"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"
)

// Terminal line tracking: the line an interactive shell is about to run
// when the user presses Enter, whether typed, recalled (Up, Ctrl-R),
// completed (Tab) or edited. A Tracker is fed the terminal's output as the
// user sees it (masked) and the keys the user sends, and gives two views
// of the line at Enter (Line):
//
//   - the screen: a terminal emulator (charmbracelet/x/vt) keeps the
//     screen; when a line's first key comes, the text before the cursor
//     is the prompt; at Enter the line is the logical line at the cursor
//     (soft-wrapped rows joined) after that prompt, or after the "': " of
//     readline's reverse-i-search display.
//   - the keys: the typed keys replayed (typed), exact as long as only
//     plain typing, Backspace, Ctrl-U, Ctrl-W and bracketed paste were used.
//
// Full-screen programs (the alternate screen: vim, less, top) are not
// inspected: Keys finds no Enter while the alternate screen is on.

// Tracker follows one terminal. Write (the output) and Keys (the input)
// may be called from different goroutines, and Line from a third. Close
// ends its emulator's reader goroutine and waits for it. Use NewTracker.
type Tracker struct {
	mu        sync.Mutex // guards the fields below
	term      *vt.Emulator
	keys      typed
	begun     bool   // the line's first key came, and prompt was read
	prompt    string // the logical line before the cursor at the line's first key
	before    string // the unfinished lines the shell has (Continue)
	bracketed bool   // the program enabled bracketed paste
	pending   []byte // output the emulator has not parsed yet (lazy.go)
	entered   time.Time
	last      time.Time // when output last came
	closed    bool

	wrote   chan struct{} // gets a value after output came: Line waits on it
	drained chan struct{} // closed when the emulator's reader ends
}

// NewTracker returns a Tracker for a terminal of cols × rows (80 × 24 when
// either is not positive).
func NewTracker(cols, rows int) *Tracker {
	cols, rows = trackedSize(cols, rows)
	t := &Tracker{term: vt.NewEmulator(cols, rows), wrote: make(chan struct{}, 1), drained: make(chan struct{})}
	t.keys.reset()
	// Lines scrolled off are not needed: no scrollback to keep or trim.
	t.term.SetScrollbackSize(1)
	t.term.SetCallbacks(vt.Callbacks{
		// Called from Write, with mu held.
		EnableMode:  func(m ansi.Mode) { t.setMode(m, true) },
		DisableMode: func(m ansi.Mode) { t.setMode(m, false) },
	})
	// The emulator answers the program's queries (cursor position,
	// device attributes) on a pipe that blocks until read: nobody needs
	// the answers, the target's pty gets none from the bastion.
	go func() {
		io.Copy(io.Discard, t.term)
		close(t.drained)
	}()
	return t
}

func (t *Tracker) setMode(m ansi.Mode, on bool) {
	if m == ansi.ModeBracketedPaste {
		t.bracketed = on
	}
}

// Write feeds the terminal's output. It never fails: a byte the emulator
// cannot parse is its own problem, not the session's.
func (t *Tracker) Write(p []byte) (int, error) {
	t.mu.Lock()
	if !t.closed {
		t.queue(p)
		t.last = time.Now()
	}
	t.mu.Unlock()
	select {
	case t.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Terminal sizes the emulator keeps at most: the client chooses the
// size, and the emulator allocates every cell of two screens.
const (
	maxCols = 512
	maxRows = 200
)

// trackedSize is the emulator's size for a terminal of cols × rows: 80 ×
// 24 when either is not positive, capped at maxCols × maxRows (a line on a
// wider terminal then wraps differently and is read from the keys).
func trackedSize(cols, rows int) (int, int) {
	if cols <= 0 || rows <= 0 {
		return 80, 24
	}
	return min(cols, maxCols), min(rows, maxRows)
}

// Resize follows a window change.
func (t *Tracker) Resize(cols, rows int) {
	if cols <= 0 || rows <= 0 {
		return
	}
	cols, rows = trackedSize(cols, rows)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.catchUp()
		t.term.Resize(cols, rows)
	}
}

// Close stops the emulator and waits for its reader.
func (t *Tracker) Close() error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		// The pipe's writer, not the emulator: Emulator.Close sets a
		// field its Read reads unlocked. The reader then sees EOF.
		if c, ok := t.term.InputPipe().(io.Closer); ok {
			c.Close()
		}
	}
	t.mu.Unlock()
	<-t.drained
	return nil
}

// Keys feeds keys the user sent, up to the first Enter that ends a line to
// judge, and returns its index in p (-1: none; the bytes after it are not
// read: feed them again once the Enter was passed on or dropped). Keys for
// a full-screen program are not read.
func (t *Tracker) Keys(p []byte) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.catchUp()
	if t.term.IsAltScreen() {
		t.begun = false
		return -1
	}
	for i, b := range p {
		if !t.begun {
			t.begin()
		}
		if t.keys.key(b, t.bracketed) {
			t.begun = false
			t.entered = time.Now()
			return i
		}
		if b == 0x03 && !t.keys.paste { // Ctrl-C abandons the line(s)
			t.begun = false
			t.before = ""
		}
	}
	return -1
}

// Reset forgets the lines the shell has: the last one was judged, or
// dropped (and the shell asked to abandon it). Call it before the Enter
// passes.
func (t *Tracker) Reset() {
	t.mu.Lock()
	t.begun = false
	t.before = ""
	t.mu.Unlock()
}

// Continue notes that the shell has the unfinished lines text and asks
// for more: the next line is judged with them. Call it before the Enter
// passes.
func (t *Tracker) Continue(text string) {
	t.mu.Lock()
	t.before = text
	t.mu.Unlock()
}

// begin starts a line at its first key: what the screen shows before the
// cursor is the prompt.
func (t *Tracker) begin() {
	t.keys.reset()
	t.begun = true
	rows, x := t.logical()
	t.prompt = ""
	if len(rows) > 0 {
		rows[len(rows)-1] = cut(rows[len(rows)-1], x)
		t.prompt = strings.Join(rows, "")
	}
}

// cut is row's first x cells' text.
func cut(row string, x int) string {
	r := []rune(row)
	return string(r[:min(x, len(r))])
}

// logical returns the rows of the logical line at the cursor, each as
// text with one character per cell, ending with the cursor's row, and the
// cursor's column. A row continues on the next when its last cell is
// used: the terminal wrapped it.
func (t *Tracker) logical() ([]string, int) {
	pos := t.term.CursorPosition()
	w, h := t.term.Width(), t.term.Height()
	if pos.Y < 0 || pos.Y >= h {
		return nil, 0
	}
	top := pos.Y
	for top > 0 && t.used(w-1, top-1) {
		top--
	}
	var rows []string
	for y := top; y <= pos.Y; y++ {
		rows = append(rows, t.row(y, w))
	}
	return rows, pos.X
}

// after is the rest of the logical line below the cursor's row.
func (t *Tracker) after() string {
	pos := t.term.CursorPosition()
	w, h := t.term.Width(), t.term.Height()
	var b strings.Builder
	for y := pos.Y; y >= 0 && y < h-1 && t.used(w-1, y); y++ {
		b.WriteString(t.row(y+1, w))
	}
	return b.String()
}

func (t *Tracker) used(x, y int) bool {
	c := t.term.CellAt(x, y)
	return c != nil && c.Content != "" && c.Content != " "
}

// row is row y's text, one character per cell (a blank cell is a space;
// the second cell of a wide character adds nothing).
func (t *Tracker) row(y, w int) string {
	var b strings.Builder
	for x := 0; x < w; x++ {
		c := t.term.CellAt(x, y)
		switch {
		case c == nil || c.Content == "" && c.Width == 0 && x > 0 && t.wide(x-1, y):
		case c.Content == "":
			b.WriteByte(' ')
		default:
			b.WriteString(c.Content)
		}
	}
	return b.String()
}

func (t *Tracker) wide(x, y int) bool {
	c := t.term.CellAt(x, y)
	return c != nil && c.Width > 1
}

// Line is what a Tracker knows of the line an Enter sends.
type Line struct {
	// Screen holds the line as the screen shows it (usually one
	// candidate; two when a reverse-i-search display is ambiguous), when
	// ScreenOK: the prompt was found.
	Screen   []string
	ScreenOK bool
	// Typed is the line replayed from the keys; Exact says it is the
	// line (no editing key whose effect is unknown).
	Typed string
	Exact bool
	// Hidden: keys were typed but the screen shows none of them (echo
	// off: a password prompt, or a shell after stty -echo).
	Hidden bool
	// Pasted: the typed line holds a newline from a bracketed paste.
	Pasted bool
	// FullScreen: a full-screen program runs; nothing is judged.
	FullScreen bool
	// Before holds the unfinished lines the shell already has (see
	// LineVerdict.Unfinished), judged with this one.
	Before string
}

// Settle bounds, after an Enter: how long Line waits for the echo of the
// keys typed before it, and how long output must have been quiet when the
// echo cannot be compared with the keys.
const (
	MaxSettle = 50 * time.Millisecond
	quietFor  = 5 * time.Millisecond
)

// Line returns the line the last Enter sends, once the screen settled:
// when it shows the keys typed (plain typing), or after output was quiet
// for a few milliseconds (editing keys), and at most after bound (or when
// ctx ends).
func (t *Tracker) Line(ctx context.Context, bound time.Duration) Line {
	deadline := time.NewTimer(bound)
	defer deadline.Stop()
	quiet := time.NewTimer(quietFor)
	defer quiet.Stop()
	for {
		t.mu.Lock()
		l := t.viewLocked()
		wait := quietFor - time.Since(later(t.last, t.entered))
		t.mu.Unlock()
		// Keys typed plainly: until the screen shows them (fail closed
		// at the bound: the views differ and both are judged). Keys
		// whose effect is unknown: until output is quiet.
		settled := l.Exact && l.ScreenOK && contains(l.Screen, l.Typed) || !l.Exact && wait <= 0
		if l.FullScreen || settled {
			return l
		}
		if l.Exact {
			wait = bound
		}
		quiet.Reset(wait)
		select {
		case <-t.wrote:
		case <-quiet.C:
		case <-deadline.C:
			t.mu.Lock()
			defer t.mu.Unlock()
			return t.viewLocked()
		case <-ctx.Done():
			return l
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Reverse-i-search displays of readline (and their failed forms), which
// replace the prompt: (reverse-i-search)`text': line.
var searchMarks = []string{"reverse-i-search)`", "i-search)`"}

// viewLocked reads both views of the current line.
func (t *Tracker) viewLocked() Line {
	t.catchUp()
	l := Line{Typed: strings.TrimRight(string(t.keys.text), " "), Exact: t.keys.exact, Pasted: t.keys.pasted, Before: t.before}
	if t.term.IsAltScreen() {
		l.FullScreen = true
		return l
	}
	rows, _ := t.logical()
	text := strings.TrimRight(strings.Join(rows, "")+t.after(), " ")
	switch {
	case t.prompt != "" && strings.HasPrefix(text, t.prompt):
		l.Screen, l.ScreenOK = []string{strings.TrimRight(text[len(t.prompt):], " ")}, true
	case t.prompt != "" && text == strings.TrimRight(t.prompt, " "):
		l.Screen, l.ScreenOK = []string{""}, true // nothing after the prompt
	default:
		for _, m := range searchMarks {
			if i := strings.Index(text, m); i >= 0 {
				rest := text[i+len(m):]
				a, b := strings.Index(rest, "': "), strings.LastIndex(rest, "': ")
				if a >= 0 {
					l.Screen, l.ScreenOK = []string{rest[a+3:], rest[b+3:]}, true
				}
				break
			}
		}
	}
	l.Hidden = l.ScreenOK && t.keys.keys > 0 && len(t.keys.text) > 0 && strings.TrimSpace(strings.Join(l.Screen, "")) == ""
	return l
}

// LineVerdict is what DecideLine decides about the line an Enter sends.
type LineVerdict struct {
	Verdict
	// Line is the view judged (with the lines before it), for approvers;
	// "(not shown)" when no view could be trusted.
	Line string
	// Unfinished: every view is an unfinished line (an open quote or
	// construct, a trailing backslash or operator, a here-document): the
	// shell asks for more and runs nothing yet. Line is what it has, to
	// be judged whole with the lines that finish it (Line.Before).
	Unfinished bool
}

// DecideLine decides the line an Enter sends from the views in l, failing
// closed: each view that can be trusted is decided (the screen when its
// prompt was found and it shows the line, the keys when exact), and the
// most restrictive verdict wins. When neither view can be trusted, the
// line cannot be judged. A line typed blind (echo off) is judged from its
// keys, but only rules that name commands hold or refuse it: it is most
// often a password, which a catch-all rule must not send to approvers.
func (p *Policy) DecideLine(s *Subject, l Line) LineVerdict {
	if l.FullScreen {
		return LineVerdict{Verdict: Verdict{Action: Allow, Reason: "a full-screen program"}}
	}
	var views []string
	if l.ScreenOK && !l.Hidden && !(l.Pasted && l.Exact) {
		// A multi-line paste shows as several rows; its keys are exact.
		views = append(views, l.Screen...)
	}
	if l.Exact {
		views = append(views, l.Typed)
	}
	if len(views) == 0 {
		v := p.decide(s, []Command{{Unjudged: "a line the terminal does not show whole (edited before its prompt was seen, or with echo off)"}})
		return LineVerdict{Verdict: v, Line: "(not shown)"}
	}
	if l.Before != "" {
		for i := range views {
			views[i] = l.Before + "\n" + views[i]
		}
	}
	if !l.Hidden && len(views[0]) <= MaxLine && Unfinished(views[0]) {
		same := true
		for _, v := range views[1:] {
			same = same && v == views[0]
		}
		if same {
			return LineVerdict{Verdict: Verdict{Action: Allow, Reason: "unfinished line"}, Line: views[0], Unfinished: true}
		}
	}
	best := LineVerdict{Verdict: Verdict{Action: Allow, Reason: "no rule matches"}}
	for i, line := range views {
		v := p.Decide(s, line)
		if l.Hidden && v.Rule != nil && v.Rule.Match.All() {
			continue
		}
		if i == 0 || v.Action > best.Action {
			best = LineVerdict{Verdict: v, Line: line}
		}
	}
	if l.Hidden && best.Action == Allow {
		best.Line = ""
	}
	return best
}
