package approval

import (
	"context"
	"strings"
	"time"
)

// Line is what a Tracker knows of the line an Enter sends.
type Line struct {
	// Screen holds the line as the screen shows it (usually one
	// candidate; more when the shell may have an earlier line, or a
	// reverse-i-search display is ambiguous), when ScreenOK: the prompt
	// was found.
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
	// FullScreen: the alternate screen is on (a full-screen program
	// runs). Keys typed there are not read (Keys finds no Enter); after
	// an Enter typed on the normal screen, it came on since: the line is
	// judged from the keys.
	FullScreen bool
	// Before holds the unfinished lines the shell already has (see
	// LineVerdict.Unfinished), judged with this one.
	Before string
	// Enter is how the key that ends the line was typed.
	Enter Enter

	tail     string // the keys typed plainly since the last inexact one
	noScreen bool   // the screen is not read (a terminal larger than the emulator)
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
// for a few milliseconds and the screen shows the keys typed plainly
// since the last editing key (editing keys), and at most after bound (or
// when ctx ends). A pasted line, and one on a screen that is not read, is
// judged from its keys at once.
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
		// whose effect is unknown: until output is quiet and shows the
		// keys typed after them.
		shows := l.ScreenOK && contains(l.Screen, l.Typed)
		settled := l.Exact && (shows || l.Pasted || l.noScreen)
		if !l.Exact && (l.tail == "" || l.ScreenOK && showsPart(l.Screen, l.tail)) {
			settled = wait <= 0
		} else {
			wait = bound // until output comes
		}
		if l.FullScreen || settled {
			return l
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

// showsPart reports whether one of the lines holds s.
func showsPart(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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
// line cannot be judged, and so cannot one handed to an editor or a
// keyboard macro (EnterEditor). A line typed blind (echo off) is judged
// from its keys, but only rules that name commands hold or refuse it: it
// is most often a password, which a catch-all rule must not send to
// approvers.
func (p *Policy) DecideLine(s *Subject, l Line) LineVerdict {
	var views []string
	if l.ScreenOK && !l.FullScreen && !l.Hidden && !(l.Pasted && l.Exact) {
		// A multi-line paste shows as several rows; its keys are exact.
		views = append(views, l.Screen...)
	}
	if l.Exact {
		views = append(views, l.Typed)
	}
	if l.Before != "" {
		for i := range views {
			views[i] = l.Before + "\n" + views[i]
		}
	}
	if l.Enter == EnterEditor {
		v := p.decide(s, []Command{{Unjudged: "a line handed to an editor or a keyboard macro (Ctrl-X Ctrl-E, Ctrl-X e), which runs what they return"}})
		shown := "(not shown)"
		if len(views) > 0 {
			shown = views[0]
		}
		return LineVerdict{Verdict: v, Line: shown}
	}
	if len(views) == 0 {
		v := p.decide(s, []Command{{Unjudged: "a line the terminal does not show whole (edited before its prompt was seen or after a line the shell may still have, or typed with echo off)"}})
		return LineVerdict{Verdict: v, Line: "(not shown)"}
	}
	// Only Enter asks for more: another key (Ctrl-D, the end of input)
	// may make the shell run what it has.
	more := l.Enter == 0 || l.Enter == EnterPlain || l.Enter == EnterPaste
	if more && !l.Hidden && len(views[0]) <= MaxLine && Unfinished(views[0]) {
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
