package recorder

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"time"
)

// Cat writes every output event's data to w, without timing: what the
// user's terminal was sent. It matches `asciinema cat`.
func Cat(r *Reader, w io.Writer) error {
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Kind == "o" {
			if _, err := io.WriteString(w, ev.Data); err != nil {
				return err
			}
		}
	}
}

// PlayOptions control Play. The zero value plays in real time from the
// start with no idle limit.
type PlayOptions struct {
	Speed     float64       // playback speed factor; 0 means 1
	IdleLimit time.Duration // cap on any pause between frames; 0 means none
	From      time.Duration // output before this offset is shown at once
}

// Keys understood by Play.
const (
	KeyPause  = ' ' // pause or resume
	KeyStep   = '.' // while paused, show the next frame
	KeyFaster = '+'
	KeySlower = '-'
	KeyQuit   = 'q'
)

// Play writes r's output events to w with their timing. keys, if not nil,
// delivers key presses (see the Key constants); Play returns when the
// recording ends, on KeyQuit or when ctx is done.
func Play(ctx context.Context, r *Reader, w io.Writer, opt PlayOptions, keys <-chan byte) error {
	p := &player{speed: opt.Speed, keys: keys, timer: time.NewTimer(time.Hour)}
	if p.speed <= 0 {
		p.speed = 1
	}
	defer p.timer.Stop()
	from := opt.From.Seconds()
	last := 0.0 // recording time of the last frame shown
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if ev.Kind != "o" {
			continue
		}
		if ev.Time > from {
			delay := ev.Time - last
			if opt.IdleLimit > 0 && delay > opt.IdleLimit.Seconds() {
				delay = opt.IdleLimit.Seconds()
			}
			if quit, err := p.wait(ctx, delay); quit || err != nil {
				return err
			}
		}
		last = ev.Time
		if _, err := io.WriteString(w, ev.Data); err != nil {
			return err
		}
	}
}

// player is Play's state between frames: the speed and pause the keys
// change, and the timer it waits on.
type player struct {
	speed  float64
	paused bool
	step   bool // show the next frame now (a step while paused)
	keys   <-chan byte
	timer  *time.Timer
}

// wait waits delay seconds of recording time at the current speed, less
// while keys speed it up, indefinitely while paused, and not at all for
// a step. It reports quit on KeyQuit or Ctrl-C, and ctx's error.
func (p *player) wait(ctx context.Context, delay float64) (quit bool, err error) {
	deadline := time.Now().Add(time.Duration(delay / p.speed * float64(time.Second)))
	for {
		if p.step {
			p.step = false
			return false, nil
		}
		var timerC <-chan time.Time
		if !p.paused {
			remaining := time.Until(deadline)
			if remaining <= 0 {
				return false, nil
			}
			p.timer.Reset(remaining)
			timerC = p.timer.C
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-timerC:
			continue
		case k, ok := <-p.keys:
			if !ok {
				p.keys = nil
			} else if p.key(k, &deadline) {
				return true, nil
			}
		}
		if !p.timer.Stop() {
			select {
			case <-p.timer.C:
			default:
			}
		}
	}
}

// key applies one key press; it reports whether playback must stop.
func (p *player) key(k byte, deadline *time.Time) (quit bool) {
	switch k {
	case KeyQuit, 3: // q or Ctrl-C in raw mode
		return true
	case KeyPause:
		p.paused = !p.paused
		if !p.paused {
			*deadline = time.Now()
		}
	case KeyStep:
		if p.paused {
			p.step = true
		}
	case KeyFaster:
		p.speed *= 2
	case KeySlower:
		p.speed /= 2
	}
	return false
}

// Hit is one match of Grep.
type Hit struct {
	Time float64 `json:"time"` // offset in seconds of the event where the match starts
	Kind string  `json:"kind"` // "o" output, "i" input, "m" marker
	Text string  `json:"text"` // the matching line, escapes stripped
}

// maxGrepLine caps a reconstructed line; longer lines are searched in
// pieces of this size.
const maxGrepLine = 64 << 10

// Grep streams r and returns every line of output (with terminal escapes
// removed), input and markers that re matches, with the time offset at
// which the line began. It holds one line at a time.
func Grep(r *Reader, re *regexp.Regexp, limit int) ([]Hit, error) {
	var hits []Hit
	var line []byte
	lineStart := -1.0
	flush := func() {
		if len(line) > 0 && re.Match(line) && (limit <= 0 || len(hits) < limit) {
			hits = append(hits, Hit{Time: lineStart, Kind: "o", Text: string(line)})
		}
		line = line[:0]
		lineStart = -1
	}
	var esc escapeStripper
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			flush()
			return hits, nil
		}
		if err != nil {
			return hits, err
		}
		switch ev.Kind {
		case "m", "i":
			if re.MatchString(ev.Data) && (limit <= 0 || len(hits) < limit) {
				hits = append(hits, Hit{Time: ev.Time, Kind: ev.Kind, Text: ev.Data})
			}
		case "o":
			data := ev.Data
			for len(data) > 0 {
				if esc.state != stText {
					esc.feed(data[0])
					data = data[1:]
					continue
				}
				// Copy the run up to the next byte that matters.
				j := strings.IndexAny(data, "\x1b\n\r")
				if j < 0 {
					j = len(data)
				}
				for run := data[:j]; len(run) > 0; {
					if lineStart < 0 {
						lineStart = ev.Time
					}
					n := min(len(run), maxGrepLine-len(line))
					line = append(line, run[:n]...)
					run = run[n:]
					if len(line) >= maxGrepLine {
						flush()
					}
				}
				if j == len(data) {
					break
				}
				switch data[j] {
				case '\n':
					flush()
				case 0x1b:
					esc.feed(0x1b)
				}
				data = data[j+1:]
			}
		}
	}
}

// escapeStripper drops ANSI/VT escape sequences (CSI, OSC, two-byte ESC)
// from a byte stream, one byte at a time.
type escapeStripper struct{ state int }

const (
	stText = iota
	stEsc
	stCSI
	stOSC
	stOSCEsc
)

func (s *escapeStripper) feed(c byte) (byte, bool) {
	switch s.state {
	case stEsc:
		switch c {
		case '[':
			s.state = stCSI
		case ']', 'P', '_', '^':
			s.state = stOSC
		default:
			s.state = stText
		}
		return 0, false
	case stCSI:
		if c >= 0x40 && c <= 0x7e {
			s.state = stText
		}
		return 0, false
	case stOSC:
		switch c {
		case 7:
			s.state = stText
		case 0x1b:
			s.state = stOSCEsc
		}
		return 0, false
	case stOSCEsc:
		s.state = stText
		return 0, false
	}
	if c == 0x1b {
		s.state = stEsc
		return 0, false
	}
	return c, true
}
