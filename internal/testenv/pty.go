package testenv

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// PTYResult is what RunOnPTY saw.
type PTYResult struct {
	Output   []byte
	ExitCode int
	// Before and After are the terminal's modes when the program started
	// and when it exited, to check that it restored them.
	Before, After *unix.Termios
}

// RunOnPTY runs name with args in dir (""for the current one) on a
// 30x100 pseudo-terminal, for programs that need /dev/tty (asciinema) or
// read keys (postern play). keys, if not nil, gets the terminal to type
// into and a wait function that blocks until the program has printed s.
// The program is killed after a minute.
func RunOnPTY(t testing.TB, dir string, keys func(tty *os.File, wait func(s string)), name string, args ...string) PTYResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// The terminal's modes are read before the program starts: read after,
	// they could already be the program's own (raw mode), and a program
	// that never restored them would pass.
	tty, tts, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	if err := pty.Setsize(tty, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		tts.Close()
		t.Fatal(err)
	}
	var res PTYResult
	res.Before, _ = unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tts, tts, tts
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	err = cmd.Start()
	tts.Close() // the program holds its own copy
	if err != nil {
		t.Fatal(err)
	}
	out := &Buffer{}
	done := make(chan struct{})
	go func() { io.Copy(out, tty); close(done) }() // ends with EIO when the program exits
	if keys != nil {
		keys(tty, func(s string) {
			t.Helper()
			WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), s) })
		})
	}
	err = cmd.Wait()
	res.After, _ = unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	tty.Close()
	<-done
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.ExitCode = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("testenv: %s: %v", name, err)
	}
	res.Output = []byte(out.String())
	return res
}
