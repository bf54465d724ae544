package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// The shell phase measures what approval rules cost an interactive shell
// (issue 14). Two bastions alike but for one approval rule (approve any
// `rm`) in scope for the bench user: path postern has none, so nothing
// follows the screen; path postern-rules judges every line at Enter. On
// both, in turns, `ssh -tt` runs bash on the target's terminal and the
// phase types as a person does: `: ` and then letters, each timed from
// write to echo, then Enter, timed until the next prompt; then `cat` of a
// text file of -shell-cat-size bytes, timed until the prompt after it.
const (
	figShellEchoP50  = "shell_echo_p50"
	figShellEchoP99  = "shell_echo_p99"
	figShellEnterP50 = "shell_enter_p50"
	figShellEnterP99 = "shell_enter_p99"
	figShellCat      = "shell_cat"
)

// pathRules is the path through bastionRules.
const pathRules = "postern-rules"

// shellPaths are the paths the shell phase compares.
var shellPaths = []string{pathPostern, pathRules}

const (
	// shellPrompt is the prompt the phase sets: no letter, digit or
	// colon, so that no echo of a typed key matches it, and not in the
	// cat file's text.
	shellPrompt = "%%> "
	// shellLetters is how many letters each typed line has.
	shellLetters = 10
	// shellCatFile is the cat file, in the target login's home.
	shellCatFile = "postern-bench-shell.txt"
	// shellCatTimeout bounds one cat.
	shellCatTimeout = 10 * time.Minute
)

// shell runs reps rounds of the shell phase, each with fresh sessions,
// lines lines per session and one cat of catSize bytes per path.
func (e *env) shell(ctx context.Context, reps, lines int, catSize int64) ([]Figure, error) {
	vals := make(map[string][]float64) // by figure + " " + path
	add := func(fig, path string, v float64) { vals[fig+" "+path] = append(vals[fig+" "+path], v) }
	for rep := range reps {
		lat, rates, err := e.shellRound(ctx, lines, catSize, rep, reps)
		if err != nil {
			return nil, err
		}
		for _, path := range shellPaths {
			for _, k := range []struct{ kind, p50, p99 string }{{"echo", figShellEchoP50, figShellEchoP99}, {"enter", figShellEnterP50, figShellEnterP99}} {
				s := lat[k.kind+" "+path]
				slices.Sort(s)
				add(k.p50, path, percentile(s, 50))
				add(k.p99, path, percentile(s, 99))
				e.progress("shell round %d/%d %-5s %-13s p50 %5.0f µs, p99 %5.0f µs", rep+1, reps, k.kind, path, percentile(s, 50), percentile(s, 99))
			}
			add(figShellCat, path, rates[path])
			e.progress("shell round %d/%d cat   %-13s %.1f MB/s", rep+1, reps, path, rates[path])
		}
	}
	var figs []Figure
	for _, path := range shellPaths {
		for _, f := range []struct {
			name, unit, better string
			samples            int
		}{
			{figShellEchoP50, "µs", "lower", lines * shellLetters}, {figShellEchoP99, "µs", "lower", lines * shellLetters},
			{figShellEnterP50, "µs", "lower", lines}, {figShellEnterP99, "µs", "lower", lines},
			{figShellCat, "MB/s", "higher", 1},
		} {
			figs = append(figs, newFigure(f.name, path, cipherAES, 0, f.unit, f.better, vals[f.name+" "+path], f.samples))
		}
	}
	return figs, nil
}

// shellRound opens a shell on each path and returns the echo and Enter
// latencies in microseconds (by "echo PATH" and "enter PATH") and the cat
// rate in MB/s by path. The first round writes the cat file, the last
// removes it, both through path postern: `rm` is what postern-rules holds.
// Rounds take turns at which path cats first.
func (e *env) shellRound(ctx context.Context, lines int, catSize int64, rep, reps int) (map[string][]float64, map[string]float64, error) {
	var sessions []*shellSession
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	for _, path := range shellPaths {
		s, err := e.startShell(ctx, path)
		if err != nil {
			return nil, nil, fmt.Errorf("shell on %s: %w", path, err)
		}
		sessions = append(sessions, s)
	}
	if rep == 0 {
		cmd := fmt.Sprintf("yes '%s' | head -c %d > ~/%s", bulkLine, catSize, shellCatFile)
		if _, err := sessions[0].run(ctx, cmd, shellCatTimeout); err != nil {
			return nil, nil, fmt.Errorf("write the cat file: %w", err)
		}
	}
	if err := sessions[1].checkHeld(ctx); err != nil {
		return nil, nil, err
	}
	lat := make(map[string][]float64)
	for i := range lines {
		for _, s := range sessions {
			echo, enter, err := s.typeLine(ctx, i)
			if err != nil {
				return nil, nil, fmt.Errorf("shell on %s: %w", s.path, err)
			}
			lat["echo "+s.path] = append(lat["echo "+s.path], echo...)
			lat["enter "+s.path] = append(lat["enter "+s.path], enter)
		}
	}
	rates := make(map[string]float64)
	order := slices.Clone(sessions)
	if rep%2 == 1 {
		slices.Reverse(order)
	}
	for _, s := range order {
		d, err := s.run(ctx, "cat ~/"+shellCatFile, shellCatTimeout)
		if err != nil {
			return nil, nil, fmt.Errorf("cat on %s: %w", s.path, err)
		}
		rates[s.path] = float64(catSize) / d.Seconds() / 1e6
	}
	if rep == reps-1 {
		if _, err := sessions[0].run(ctx, "rm -f ~/"+shellCatFile, echoTimeout); err != nil {
			return nil, nil, fmt.Errorf("remove the cat file: %w", err)
		}
	}
	return lat, rates, nil
}

// shellSession is `ssh -tt PATH`, an interactive bash on the target's
// terminal, with pipes for its standard input and output: the local side
// has no terminal of its own to add latency.
type shellSession struct {
	*echoSession
	seen []byte // read but not yet matched
}

// pipes joins ssh's standard output and input.
type pipes struct {
	io.Reader
	io.WriteCloser
}

// startShell starts a shell on path and sets the prompt.
func (e *env) startShell(ctx context.Context, path string) (*shellSession, error) {
	cmd := e.sshCmd(ctx, e.aes.file, "-tt", path)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ssh: %w", err)
	}
	s := &shellSession{echoSession: &echoSession{path: path, cmd: cmd, tty: pipes{out, in}, chunks: make(chan chunk, 256), done: make(chan struct{})}}
	go s.read()
	// Debian's prompt ends "$ ". Typing before it shows would make the
	// line one postern-rules cannot judge, and so holds.
	if _, err := s.until(ctx, "$ ", time.Minute); err != nil {
		s.Close()
		return nil, err
	}
	// Quoted so that the echo of the line does not show the prompt.
	if _, err := s.run(ctx, "PS1='%%''> '", echoTimeout); err != nil {
		s.Close()
		return nil, fmt.Errorf("set the prompt: %w", err)
	}
	return s, nil
}

// checkHeld shows that the session's bastion judges lines: an rm is held
// for approval. Ctrl-C then cancels the request, and the shell drops the
// line.
func (s *shellSession) checkHeld(ctx context.Context) error {
	s.seen = s.seen[:0]
	if _, err := s.tty.Write([]byte("rm -f ~/postern-bench-nothing\r")); err != nil {
		return fmt.Errorf("write to ssh: %w", err)
	}
	if _, err := s.until(ctx, "held for approval", echoTimeout); err != nil {
		return fmt.Errorf("%s did not hold an rm: %w", s.path, err)
	}
	if _, err := s.run(ctx, "\x03", echoTimeout); err != nil {
		return fmt.Errorf("%s: Ctrl-C after a held rm: %w", s.path, err)
	}
	return nil
}

// typeLine types `: ` and shellLetters letters, each after the echo of the
// last, and Enter, and returns each letter's echo time and the time from
// Enter to the next prompt, in microseconds.
func (s *shellSession) typeLine(ctx context.Context, i int) ([]float64, float64, error) {
	for _, b := range []byte(": ") {
		if _, err := s.keystroke(ctx, b); err != nil {
			return nil, 0, err
		}
	}
	echo := make([]float64, 0, shellLetters)
	for j := range shellLetters {
		d, err := s.keystroke(ctx, byte('a'+(i*shellLetters+j)%26))
		if err != nil {
			return nil, 0, err
		}
		echo = append(echo, float64(d.Nanoseconds())/1000)
	}
	d, err := s.run(ctx, "", echoTimeout)
	if err != nil {
		return nil, 0, fmt.Errorf("enter: %w", err)
	}
	return echo, float64(d.Nanoseconds()) / 1000, nil
}

// run types line and Enter and returns the time from the write to the
// next prompt.
func (s *shellSession) run(ctx context.Context, line string, timeout time.Duration) (time.Duration, error) {
	s.seen = s.seen[:0]
	start := time.Now()
	if _, err := s.tty.Write([]byte(line + "\r")); err != nil {
		return 0, fmt.Errorf("write to ssh: %w", err)
	}
	at, err := s.until(ctx, shellPrompt, timeout)
	return at.Sub(start), err
}

// until reads until the output shows want and returns when the read that
// completed it returned. Only the last len(want)-1 bytes of what it read
// are kept between reads, so a large output costs no memory.
func (s *shellSession) until(ctx context.Context, want string, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case c, ok := <-s.chunks:
			if !ok {
				return time.Time{}, fmt.Errorf("ssh ended waiting for %q; last output: %q", want, s.seen)
			}
			s.seen = append(s.seen, c.data...)
			if i := bytes.Index(s.seen, []byte(want)); i >= 0 {
				s.seen = append(s.seen[:0], s.seen[i+len(want):]...)
				return c.at, nil
			}
			if keep := len(want) - 1; len(s.seen) > keep {
				s.seen = append(s.seen[:0], s.seen[len(s.seen)-keep:]...)
			}
		case <-t.C:
			return time.Time{}, fmt.Errorf("no %q after %v; last output: %q", want, timeout, s.seen)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// shellGoals are issue 14's goals for the shell phase, if it ran.
func shellGoals(r *Report) []Goal {
	aes := r.Params.PrimaryCipher
	pair := func(fig string) (Figure, Figure, bool) {
		a, ok1 := find(r.Figures, fig, pathRules, aes, 0)
		b, ok2 := find(r.Figures, fig, pathPostern, aes, 0)
		return a, b, ok1 && ok2
	}
	var out []Goal
	if a, b, ok := pair(figShellEchoP99); ok {
		d := a.Median - b.Median
		out = append(out, Goal{Name: "shell echo p99: rule in scope - none", Want: "<= 1000", Got: d, Unit: "µs", Met: d <= 1000})
	}
	if a, b, ok := pair(figShellEnterP99); ok {
		d := a.Median - b.Median
		out = append(out, Goal{Name: "shell Enter p99 (unflagged line): rule in scope - none", Want: "<= 2000", Got: d, Unit: "µs", Met: d <= 2000})
	}
	if a, b, ok := pair(figShellCat); ok && b.Median > 0 {
		q := a.Median / b.Median
		out = append(out, Goal{Name: "shell cat: rule in scope / none", Want: ">= 0.80", Got: q, Unit: "×", Met: q >= 0.8})
	}
	return out
}
