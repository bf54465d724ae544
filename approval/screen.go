package approval

import "strings"

// The screen's view of the line: the logical line at the cursor (rows the
// terminal wrapped joined) after the prompt read at the line's first key.

// begin starts a line at its first key: what the screen shows before the
// cursor is the prompt, once the program answered the key that ended the
// line before (it printed something since). Before that, the screen still
// shows the line before, which the program may go on with (an Enter it
// did not take): the prompt is taken to be the last one read.
func (t *Tracker) begin() {
	t.keys.reset()
	if t.unsure {
		t.keys.inexact() // the shell may have more than these keys
	}
	t.begun = true
	if !t.answered {
		t.prompt = t.known
		return
	}
	rows, x := t.logical()
	t.prompt = ""
	if len(rows) > 0 {
		rows[len(rows)-1] = cut(rows[len(rows)-1], x)
		t.prompt = strings.Join(rows, "")
	}
	t.known = t.prompt
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

// Reverse-i-search displays of readline (and their failed forms), which
// replace the prompt: (reverse-i-search)`text': line.
var searchMarks = []string{"reverse-i-search)`", "i-search)`"}

// maxCandidates bounds the screen's readings of one line: a search display
// with more places where the line may start is not read.
const maxCandidates = 8

// viewLocked reads both views of the current line.
func (t *Tracker) viewLocked() Line {
	t.catchUp()
	l := Line{Typed: strings.TrimRight(string(t.keys.text), " "), Exact: t.keys.exact, Pasted: t.keys.pasted, Before: t.before, Enter: t.enter}
	l.tail = strings.TrimRight(t.keys.typedTail(), " ")
	if l.Pasted {
		l.Typed = strings.TrimSuffix(l.Typed, "\n") // the pasted newline held
	}
	if t.term.IsAltScreen() {
		l.FullScreen = true
		return l
	}
	if t.capped {
		l.noScreen = true
		return l
	}
	l.Screen = t.screenLines()
	l.ScreenOK = len(l.Screen) > 0
	l.Hidden = l.ScreenOK && t.keys.keys > 0 && len(t.keys.text) > 0 && strings.TrimSpace(strings.Join(l.Screen, "")) == ""
	return l
}

// screenLines reads the line the screen shows: after the prompt, and
// after the prompt of an earlier line the shell may still have; failing
// that, after each place where readline's search display may end. None
// when the screen shows none of these.
func (t *Tracker) screenLines() []string {
	rows, _ := t.logical()
	text := strings.TrimRight(strings.Join(rows, "")+t.after(), " ")
	var lines []string
	add := func(s string) {
		if !contains(lines, s) {
			lines = append(lines, s)
		}
	}
	prompts := []string{t.prompt}
	if t.unsure {
		prompts = append(prompts, t.prev)
	}
	for _, p := range prompts {
		switch {
		case p != "" && strings.HasPrefix(text, p):
			add(strings.TrimRight(text[len(p):], " "))
		case p != "" && text == strings.TrimRight(p, " "):
			add("") // nothing after the prompt
		}
	}
	if len(lines) > 0 {
		return lines
	}
	for _, m := range searchMarks {
		i := strings.Index(text, m)
		if i < 0 {
			continue
		}
		// The display is `TEXT': LINE, and both may hold "': ": the
		// line may start after any of them.
		rest := text[i+len(m):]
		for j := strings.Index(rest, "': "); j >= 0; j = strings.Index(rest, "': ") {
			rest = rest[j+3:]
			add(rest)
			if len(lines) > maxCandidates {
				return nil
			}
		}
		break
	}
	return lines
}
