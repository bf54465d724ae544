package approval

import (
	"io"
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
// Besides a plain Enter, the keys that run a line in readline's default
// bindings end it too (Enter, keys.go), and so does a newline in a
// bracketed paste. After a line the shell may still have (a refusal, whose
// Ctrl-C it may ignore; Ctrl-C; an Enter that is not a plain CR or LF) the
// tracker is unsure: the next line is read from the screen, after its own
// prompt and after the earlier one, and its keys are not trusted.
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
	enter     Enter  // how the last key that ended a line was typed
	unsure    bool   // the shell may still have an earlier line (Unsure)
	prev      string // then: that line's prompt
	capped    bool   // the terminal is larger than the emulator: its screen cannot be read
	answered  bool   // output came since a key that ends a line (or Ctrl-C) passed
	known     string // the last prompt read when it had
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
	t := &Tracker{wrote: make(chan struct{}, 1), drained: make(chan struct{})}
	t.capped = cols > MaxCols || rows > MaxRows
	cols, rows = trackedSize(cols, rows)
	t.term = vt.NewEmulator(cols, rows)
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
		t.answered = true
	}
	t.mu.Unlock()
	select {
	case t.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Terminal sizes the emulator keeps at most: the client chooses the
// size, and the emulator allocates every cell of two screens. A caller
// tells the program at most this size (the bastion does), so that it
// wraps and moves the cursor as on the emulator.
const (
	MaxCols = 512
	MaxRows = 200
)

// trackedSize is the emulator's size for a terminal of cols × rows: 80 ×
// 24 when either is not positive, capped at MaxCols × MaxRows. The screen
// of a larger terminal is not read: the program's cursor movements would
// land elsewhere on the emulator's (lines are read from the keys, and
// cannot be judged once they are not exact).
func trackedSize(cols, rows int) (int, int) {
	if cols <= 0 || rows <= 0 {
		return 80, 24
	}
	return min(cols, MaxCols), min(rows, MaxRows)
}

// Resize follows a window change.
func (t *Tracker) Resize(cols, rows int) {
	if cols <= 0 || rows <= 0 {
		return
	}
	capped := cols > MaxCols || rows > MaxRows
	cols, rows = trackedSize(cols, rows)
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.capped = capped
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

// Keys feeds keys the user sent, up to the first key that may run a line
// (an Enter, see Enter) and returns its index in p (-1: none; the bytes
// after it are not read: feed them again once it was passed on or
// dropped). Keys for a full-screen program are not read.
func (t *Tracker) Keys(p []byte) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.catchUp()
	if t.term.IsAltScreen() {
		if t.begun {
			// The alternate screen came on while a line was typed:
			// the shell may still have it when it goes off.
			t.unsureLocked()
		}
		t.begun = false
		return -1
	}
	for i, b := range p {
		if !t.begun {
			t.begin()
		}
		if e := t.keys.key(b, t.bracketed); e != 0 {
			t.enter = e
			t.begun = e == EnterPaste // a pasted newline: the line goes on
			t.entered = time.Now()
			return i
		}
		if (b == 0x03 || b == 0x1a || b == 0x1c) && !t.keys.paste {
			// Ctrl-C (and Ctrl-Z, Ctrl-\ for a program that runs)
			// abandons the line(s), unless the shell reads it as a
			// key (stty intr undef).
			t.unsureLocked()
			t.begun = false
			t.before = ""
			t.answered = false
		}
	}
	return -1
}

// Reset forgets the lines the shell has: a plain Enter (EnterPlain) that
// ends a judged line passes. Call it before the Enter passes.
func (t *Tracker) Reset() {
	t.mu.Lock()
	t.answered = false
	t.begun = false
	t.before = ""
	t.unsure, t.prev = false, ""
	t.mu.Unlock()
}

// Continue notes that the shell has the unfinished lines text and asks
// for more: a plain Enter passes, and the next line is judged with them.
// Call it before the Enter passes.
func (t *Tracker) Continue(text string) {
	t.mu.Lock()
	t.answered = false
	t.before = text
	t.unsure, t.prev = false, ""
	t.mu.Unlock()
}

// Unsure notes that the shell may still have the line: it was dropped
// (the shell was sent Ctrl-C, which it may read as a key), or a key that may
// not run it (not EnterPlain) passes. Until a plain Enter passes, lines
// are read from the screen, after their prompt and after this line's.
// Call it before the key passes.
func (t *Tracker) Unsure() {
	t.mu.Lock()
	t.answered = false
	t.unsureLocked()
	t.begun = false
	t.before = ""
	t.mu.Unlock()
}

// unsureLocked keeps the prompt of the oldest line the shell may have.
func (t *Tracker) unsureLocked() {
	if !t.unsure {
		t.unsure, t.prev = true, t.prompt
	}
}

// Granted notes that the line so far, up to a pasted newline, was
// approved: the rest of the line is judged without it. Call it before
// the newline passes.
func (t *Tracker) Granted() {
	t.mu.Lock()
	t.keys.text = t.keys.text[:0]
	t.keys.tail = 0
	t.before = ""
	t.mu.Unlock()
}
