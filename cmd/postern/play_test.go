package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// hostileFrames are the output events of a recording made on a machine
// that someone wanted to reach the auditor's terminal from, with the
// answers a terminal (xterm, tmux) gives to each query. The answers hold
// keys the player knows: q quits, space pauses.
var hostileFrames = []struct {
	at   float64
	data string
}{
	{0, "start\r\n"},
	{0.2, "\x1bP$q q\x1b\\"}, // DECRQSS: the cursor style
	{0.4, "\x1b[31mred\x1b[0m\r\n"},
	{0.6, "\x1b["}, {0.61, ">q"}, // XTVERSION, split across events
	{0.8, "\x1b[c\x1b[6n"},                         // DA1, DSR
	{1.0, "\x1b]52;c;c2VjcmV0\x07\x1b]52;c;?\x07"}, // clipboard write and read
	{1.4, "the-end\r\n"},
}

var terminalAnswers = map[string]string{
	"\x1bP$q q\x1b\\": "\x1bP1$r2 q\x1b\\",
	"\x1b[>q":         "\x1bP>|tmux 3.3a\x1b\\",
	"\x1b[c":          "\x1b[?62;22c",
	"\x1b[6n":         "\x1b[5;1R",
	"\x1b]52;c;?":     "\x1b]52;c;cQ==\x07",
}

// writeHostileCast writes hostileFrames as a recording in dir.
func writeHostileCast(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"version": 2, "width": 100, "height": 30}` + "\n")
	for _, f := range hostileFrames {
		data, _ := json.Marshal(f.data)
		b.WriteString("[" + strconv.FormatFloat(f.at, 'f', 3, 64) + `, "o", ` + string(data) + "]\n")
	}
	path := filepath.Join(dir, "hostile.cast")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// answeringPTY runs name on a pseudo-terminal that behaves like a terminal
// emulator: whenever the program's output holds one of the queries in
// answers, the answer is typed back. It returns the output, the exit code
// and the queries that were answered. The program is killed after 30 s.
func answeringPTY(t *testing.T, answers map[string]string, name string, args ...string) (out []byte, code int, answered []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	var mu sync.Mutex // guards buf and answered
	var buf bytes.Buffer
	seen := map[string]int{} // how many of each query were answered
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			n, err := tty.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			for q, a := range answers {
				for c := bytes.Count(buf.Bytes(), []byte(q)); seen[q] < c; seen[q]++ {
					answered = append(answered, q)
					tty.Write([]byte(a))
				}
			}
			mu.Unlock()
			if err != nil { // EIO once the program has exited
				return
			}
		}
	}()
	err = cmd.Wait()
	tty.Close()
	<-done
	if ctx.Err() != nil {
		t.Fatalf("%s %q still running after 30 s (answered %q): %q", name, args, answered, buf.Bytes())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), code, answered
}

// TestPlayIgnoresRecordedQueries: a recording full of terminal queries
// plays to its end on a terminal that answers them, because none reaches
// it; nor does the clipboard write.
func TestPlayIgnoresRecordedQueries(t *testing.T) {
	t.Parallel()
	path := writeHostileCast(t, t.TempDir())
	out, code, answered := answeringPTY(t, terminalAnswers, binary(t), "play", path)
	if code != 0 || !bytes.Contains(out, []byte("the-end")) {
		t.Fatalf("play stopped early (exit %d, answered %q): %q", code, answered, out)
	}
	if len(answered) > 0 {
		t.Fatalf("the terminal was asked %q: %q", answered, out)
	}
	if !bytes.Contains(out, []byte("\x1b[31mred\x1b[0m")) {
		t.Fatalf("colours lost: %q", out)
	}
	for _, bad := range []string{"\x1bP", "\x1b]52", "\x1b[>q", "\x1b[c", "\x1b[6n"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Fatalf("%q reached the terminal: %q", bad, out)
		}
	}
}

// TestPlayCatRaw: --cat cuts the same sequences and keeps text and
// colours; --cat --raw prints the recording as it is.
func TestPlayCatRaw(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := writeHostileCast(t, dir)
	var all strings.Builder
	for _, f := range hostileFrames {
		all.WriteString(f.data)
	}
	r := admin(t, dir, "play", "--cat", path)
	if r.ExitCode != 0 {
		t.Fatalf("play --cat: %d %s", r.ExitCode, r.Stderr)
	}
	if want := "start\r\n\x1b[31mred\x1b[0m\r\nthe-end\r\n"; string(r.Stdout) != want {
		t.Fatalf("play --cat: %q, want %q", r.Stdout, want)
	}
	r = admin(t, dir, "play", path, "--cat", "--raw")
	if r.ExitCode != 0 || string(r.Stdout) != all.String() {
		t.Fatalf("play --cat --raw: %d %q, want %q", r.ExitCode, r.Stdout, all.String())
	}
	if r := admin(t, dir, "play", "--raw", path); r.ExitCode != 2 || !strings.Contains(string(r.Stderr), "--cat only") {
		t.Fatalf("play --raw without --cat: %d %s", r.ExitCode, r.Stderr)
	}
	if r := admin(t, dir, "play", "--help"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "-raw") {
		t.Fatalf("play --help does not document --raw: %s", r.Stdout)
	}
}
