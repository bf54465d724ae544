package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

type listed struct {
	recorder.Session
	Hits []recorder.Hit `json:"hits"`
}

func sessionsJSON(t *testing.T, dir string, args ...string) []listed {
	t.Helper()
	r := admin(t, dir, append([]string{"sessions", "--json"}, args...)...)
	if r.ExitCode != 0 {
		t.Fatalf("sessions: exit %d: %s", r.ExitCode, r.Stderr)
	}
	var out []listed
	if err := json.Unmarshal(r.Stdout, &out); err != nil {
		t.Fatalf("sessions --json: %v\n%s", err, r.Stdout)
	}
	return out
}

// TestDemoRecordings: sessions through the demo are recorded, listed,
// searched, replayed identically to asciinema, verified, and a session
// killed with the bastion comes back as interrupted but playable.
func TestDemoRecordings(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "ssh")
	asciinema := testenv.Require(t, "asciinema")
	work := t.TempDir()
	d := startDemo(t, work)
	if r := testenv.Cmd(t, time.Minute, strings.NewReader("echo needle-$((6*7))\nexit 0\n"), "sh", "-c", d.cmds[0]); r.ExitCode != 0 {
		t.Fatalf("shell: %d %s", r.ExitCode, r.Stderr)
	}
	testenv.Cmd(t, time.Minute, nil, "sh", "-c", d.cmds[1])
	var list []listed
	testenv.WaitFor(t, 20*time.Second, func() bool {
		list = sessionsJSON(t, work)
		return len(list) == 2 && list[0].Status == "closed" && list[1].Status == "closed"
	})
	if list[0].Kind != "shell" || list[1].Kind != "exec" || list[1].ExitStatus == nil || *list[1].ExitStatus != 3 {
		t.Fatalf("sessions %+v", list)
	}
	// The table names them too.
	if r := admin(t, work, "sessions"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), list[1].ID) {
		t.Fatalf("sessions table: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	// play --cat --raw equals asciinema cat for every recording.
	for _, s := range list {
		ours := admin(t, work, "play", "--cat", "--raw", s.ID)
		pr := testenv.RunOnPTY(t, work, nil, asciinema, "cat", filepath.Join(work, "postern-demo", s.Path))
		theirs, code := pr.Output, pr.ExitCode
		if ours.ExitCode != 0 || code != 0 || !bytes.Equal(ours.Stdout, theirs) {
			t.Fatalf("%s: play --cat --raw %q (exit %d) vs asciinema cat %q (exit %d)", s.ID, ours.Stdout, ours.ExitCode, theirs, code)
		}
	}
	// grep finds the one session that printed the string, with its offset.
	hits := sessionsJSON(t, work, "--grep", "needle-42")
	if len(hits) != 1 || hits[0].ID != list[0].ID || len(hits[0].Hits) == 0 || hits[0].Hits[0].Time <= 0 {
		t.Fatalf("grep: %+v", hits)
	}
	if r := admin(t, work, "play", list[0].ID, "--from-match", "needle-42", "--speed", "1000"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "needle-42") {
		t.Fatalf("play --from-match: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := admin(t, work, "verify"); r.ExitCode != 0 {
		t.Fatalf("verify on untouched data: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}

	// Kill the bastion mid-session; the restart marks it interrupted.
	base, ok := strings.CutSuffix(d.cmds[1], " 'echo hello from $(hostname); exit 3'")
	if !ok {
		t.Fatalf("unexpected demo command %q", d.cmds[1])
	}
	long := exec.Command("sh", "-c", base+" 'echo before-kill; sleep 60'")
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	defer long.Process.Kill()
	var active []listed
	testenv.WaitFor(t, 20*time.Second, func() bool {
		active = sessionsJSON(t, work, "--active")
		return len(active) == 1
	})
	// The recording reaches the disk within the flush interval.
	recPath := filepath.Join(work, "postern-demo", active[0].Path)
	testenv.WaitFor(t, 10*time.Second, func() bool {
		data, _ := os.ReadFile(recPath)
		return bytes.Contains(data, []byte(`"o", "before-kill`))
	})
	d.cmd.Process.Kill()
	<-d.done
	long.Wait()
	restarted := startDemo(t, work)
	s := sessionsJSON(t, work, "--target", "demo")
	var got *listed
	for i := range s {
		if s[i].ID == active[0].ID {
			got = &s[i]
		}
	}
	if got == nil || got.Status != "interrupted" {
		t.Fatalf("after SIGKILL and restart: %+v", got)
	}
	if r := admin(t, work, "play", "--cat", got.ID); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "before-kill") {
		t.Fatalf("play the interrupted session: %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := admin(t, work, "verify"); r.ExitCode != 0 {
		t.Fatalf("verify after the interruption: %s %s", r.Stdout, r.Stderr)
	}
	// The restart logged the chain head, seal of the interrupted session
	// included: an anchor verify accepts.
	startHead := regexp.MustCompile(`"event":"chain_head","chain_head":"([0-9]+:[0-9a-f]{64})"`).FindStringSubmatch(restarted.logs.String())
	if startHead == nil {
		t.Fatalf("no chain_head in the restart's log:\n%s", restarted.logs.String())
	}
	// (The head has moved on since: the demo then issued its user's
	// certificate, a record in the chain.)
	if r := admin(t, work, "verify", "--anchor", startHead[1]); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "0 problems") {
		t.Fatalf("verify --anchor %s: %d %s %s", startHead[1], r.ExitCode, r.Stdout, r.Stderr)
	}

	// Tampering: each kind is named, with a non-zero exit.
	target := filepath.Join(work, "postern-demo", list[1].Path)
	orig, _ := os.ReadFile(target)
	flipped := bytes.Clone(orig)
	flipped[len(flipped)-5] ^= 1
	os.WriteFile(target, flipped, 0o600)
	if r := admin(t, work, "verify"); r.ExitCode != 1 || !strings.Contains(string(r.Stdout), list[1].Path+": modified") {
		t.Fatalf("verify after a flipped byte: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	os.WriteFile(target, orig[:len(orig)-20], 0o600)
	if r := admin(t, work, "verify"); r.ExitCode != 1 || !strings.Contains(string(r.Stdout), list[1].Path+": truncated") {
		t.Fatalf("verify after truncation: %d %s", r.ExitCode, r.Stdout)
	}
	os.Remove(target)
	if r := admin(t, work, "verify"); r.ExitCode != 1 || !strings.Contains(string(r.Stdout), list[1].Path+": deleted") {
		t.Fatalf("verify after deletion: %d %s", r.ExitCode, r.Stdout)
	}
	os.WriteFile(target, orig, 0o600)
	if r := admin(t, work, "verify"); r.ExitCode != 0 {
		t.Fatalf("verify after restoring: %d %s", r.ExitCode, r.Stdout)
	}
}

// TestPlayKeys drives `postern play` on a terminal: pause, step, speed,
// quit, and the terminal is restored.
func TestPlayKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.cast")
	// Frames 5 s apart: without keys, playback would take a minute.
	var b strings.Builder
	b.WriteString(`{"version": 2, "width": 80, "height": 24}` + "\n")
	for i := range 12 {
		b.WriteString("[" + strconv.Itoa(i*5) + `.0, "o", "frame-` + strconv.Itoa(i) + `\r\n"]` + "\n")
	}
	os.WriteFile(path, []byte(b.String()), 0o600)

	pr := testenv.RunOnPTY(t, dir, func(tty *os.File, wait func(string)) {
		wait("frame-0")
		tty.Write([]byte(" ")) // pause
		tty.Write([]byte(".")) // step: frame-1 at once, though 5 s away
		wait("frame-1")
		tty.Write([]byte(".")) // and frame-2
		wait("frame-2")
		tty.Write([]byte("+")) // faster, still paused
		tty.Write([]byte("q"))
	}, binary(t), "play", path)
	out, code, before, after := pr.Output, pr.ExitCode, pr.Before, pr.After
	if code != 0 {
		t.Fatalf("play exited %d: %q", code, out)
	}
	if bytes.Contains(out, []byte("frame-11")) {
		t.Fatalf("q did not stop playback: %q", out)
	}
	if before == nil || after == nil || before.Lflag != after.Lflag || before.Iflag != after.Iflag || before.Oflag != after.Oflag {
		t.Fatalf("terminal not restored: before %+v after %+v", before, after)
	}
	if after.Lflag&unix.ICANON == 0 || after.Lflag&unix.ECHO == 0 {
		t.Fatal("terminal left in raw mode")
	}
}

// TestPlayQuitInAlternateScreen: q pressed while the recorded program has
// the alternate screen up (vim, less, top) with the cursor hidden and
// colours set leaves the terminal on the main screen with the cursor shown.
func TestPlayQuitInAlternateScreen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "alt.cast")
	cast := `{"version": 2, "width": 80, "height": 24}` + "\n" +
		`[0.1, "o", "\u001b[?1049h\u001b[?25l\u001b[7mvim-screen\r\n"]` + "\n" +
		`[60.0, "o", "\u001b[0m\u001b[?25h\u001b[?1049lnever\r\n"]` + "\n"
	os.WriteFile(path, []byte(cast), 0o600)
	pr := testenv.RunOnPTY(t, dir, func(tty *os.File, wait func(string)) {
		wait("vim-screen")
		tty.Write([]byte("q"))
	}, binary(t), "play", path)
	if pr.ExitCode != 0 || bytes.Contains(pr.Output, []byte("never")) {
		t.Fatalf("play exited %d: %q", pr.ExitCode, pr.Output)
	}
	_, after, ok := bytes.Cut(pr.Output, []byte("vim-screen"))
	if !ok {
		t.Fatalf("no frame: %q", pr.Output)
	}
	for _, want := range []string{"\x1b[?1049l", "\x1b[?25h", "\x1b[0m"} {
		if !bytes.Contains(after, []byte(want)) {
			t.Errorf("after q the output lacks %q: %q", want, after)
		}
	}
}
