package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/creack/pty"
)

// echoGap is the pause between keystrokes: a fast typist, and enough for
// each echo to travel alone.
const echoGap = 10 * time.Millisecond

// echoTimeout bounds one keystroke's round trip.
const echoTimeout = 5 * time.Second

// echo measures keystroke echo latency: on each path an interactive
// `ssh -tt` session runs on a local pseudo-terminal, its remote terminal
// echoing what it gets; one byte is written to the local terminal and the
// time until its echo comes back is taken, samples times per session. The
// paths take turns byte by byte. Each of reps rounds uses fresh sessions
// and gives one p50 and one p99 per path.
//
// Letters and digits are measured apart: Postern's masker holds back a
// digit that could begin a card number until DefaultDeadline (20 ms)
// passes with nothing more, so a typed digit echoes that much later.
func (e *env) echo(ctx context.Context, reps, samples int) ([]Figure, error) {
	p50 := make(map[string][]float64) // by kind + " " + path
	p99 := make(map[string][]float64)
	for rep := range reps {
		lat, err := e.echoRound(ctx, samples)
		if err != nil {
			return nil, err
		}
		for _, kind := range []string{"letter", "digit"} {
			for _, path := range echoPaths {
				s := lat[kind+" "+path]
				slices.Sort(s)
				p50[kind+" "+path] = append(p50[kind+" "+path], percentile(s, 50))
				p99[kind+" "+path] = append(p99[kind+" "+path], percentile(s, 99))
				e.progress("echo round %d/%d %-6s %-13s p50 %5.0f µs, p99 %5.0f µs", rep+1, reps, kind, path, percentile(s, 50), percentile(s, 99))
			}
		}
	}
	var figs []Figure
	for _, f := range []struct {
		name, kind string
		m          map[string][]float64
	}{{figEchoP50, "letter", p50}, {figEchoP99, "letter", p99}, {figEchoDigitP50, "digit", p50}, {figEchoDigitP99, "digit", p99}} {
		for _, path := range echoPaths {
			figs = append(figs, newFigure(f.name, path, cipherAES, 0, "µs", "lower", f.m[f.kind+" "+path], samples))
		}
	}
	return figs, nil
}

// echoRound opens a session on every path and returns each path's
// latencies in microseconds.
func (e *env) echoRound(ctx context.Context, samples int) (map[string][]float64, error) {
	var sessions []*echoSession
	defer func() {
		for _, s := range sessions {
			s.Close()
		}
	}()
	for _, path := range echoPaths {
		s, err := e.startEcho(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("echo session on %s: %w", path, err)
		}
		sessions = append(sessions, s)
	}
	lat := make(map[string][]float64) // by "letter PATH" and "digit PATH"
	for i := range samples {
		// A letter, a space (not timed) and a digit: each digit
		// stands alone after a space, so it could begin a card
		// number, and no run of digits ever forms one.
		for _, k := range []struct {
			kind string
			b    byte
		}{{"letter", byte('a' + i%26)}, {"", ' '}, {"digit", byte('0' + i%10)}} {
			for _, s := range sessions {
				d, err := s.keystroke(ctx, k.b)
				if err != nil {
					return nil, fmt.Errorf("echo on %s: %w", s.path, err)
				}
				if k.kind != "" {
					lat[k.kind+" "+s.path] = append(lat[k.kind+" "+s.path], float64(d.Nanoseconds())/1000)
				}
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(echoGap):
			}
		}
	}
	return lat, nil
}

// echoSession is `ssh -tt PATH 'stty -icanon; echo MARKER; exec cat'`
// on a local pseudo-terminal. Close ends it.
type echoSession struct {
	path   string
	cmd    *exec.Cmd
	tty    io.ReadWriteCloser // the pseudo-terminal's master side (shell: ssh's pipes)
	chunks chan chunk         // what the reader read; closed when it ends
	done   chan struct{}      // closed by Close: the reader stops sending
}

// chunk is one read from the terminal and when it returned.
type chunk struct {
	data []byte
	at   time.Time
}

// startEcho starts a session on path and waits until the remote side runs
// (its marker arrived), by which time ssh has put the local terminal in
// raw mode, so the local side echoes nothing.
func (e *env) startEcho(ctx context.Context, path string) (*echoSession, error) {
	cmd := exec.CommandContext(ctx, e.sshBin, "-F", e.aes.file, "-tt", path, "stty -icanon; echo "+marker+"; exec cat >/dev/null")
	cmd.Env = sshEnv()
	cmd.WaitDelay = 5 * time.Second
	// ssh leads its own session (and so process group) on the terminal.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	tty, err := pty.StartWithAttrs(cmd, &pty.Winsize{Rows: 24, Cols: 80},
		&syscall.SysProcAttr{Setsid: true, Setctty: true, Pdeathsig: syscall.SIGKILL})
	if err != nil {
		return nil, fmt.Errorf("start ssh on a pty: %w", err)
	}
	s := &echoSession{path: path, cmd: cmd, tty: tty, chunks: make(chan chunk, 256), done: make(chan struct{})}
	go s.read()
	var out []byte
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for !bytes.Contains(out, []byte(marker)) {
		select {
		case c, ok := <-s.chunks:
			if !ok {
				s.Close()
				return nil, fmt.Errorf("ssh ended before the remote side started; it printed:\n%s", out)
			}
			out = append(out, c.data...)
		case <-timeout.C:
			s.Close()
			return nil, fmt.Errorf("remote side not started after a minute; ssh printed:\n%s", out)
		case <-ctx.Done():
			s.Close()
			return nil, ctx.Err()
		}
	}
	return s, nil
}

// read copies the terminal's output into chunks, stamped when each read
// returned, until the terminal ends (EIO once ssh exits and the master is
// closed) or Close.
func (s *echoSession) read() {
	defer close(s.chunks)
	buf := make([]byte, 32<<10)
	for {
		n, err := s.tty.Read(buf)
		if n > 0 {
			c := chunk{data: bytes.Clone(buf[:n]), at: time.Now()}
			select {
			case s.chunks <- c:
			case <-s.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// keystroke writes b to the terminal and returns how long its echo took to
// come back.
func (s *echoSession) keystroke(ctx context.Context, b byte) (time.Duration, error) {
	timeout := time.NewTimer(echoTimeout)
	defer timeout.Stop()
	start := time.Now()
	if _, err := s.tty.Write([]byte{b}); err != nil {
		return 0, fmt.Errorf("write to terminal: %w", err)
	}
	for {
		select {
		case c, ok := <-s.chunks:
			if !ok {
				return 0, errors.New("ssh ended")
			}
			if bytes.IndexByte(c.data, b) >= 0 {
				return c.at.Sub(start), nil
			}
		case <-timeout.C:
			return 0, fmt.Errorf("no echo after %v", echoTimeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Close kills ssh, waits for it and for the reader, and closes the
// terminal.
func (s *echoSession) Close() {
	close(s.done)
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	s.cmd.Wait()
	s.tty.Close() // unblocks the reader if ssh's exit did not
	for range s.chunks {
	}
}
