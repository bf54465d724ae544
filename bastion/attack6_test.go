package bastion

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// attack6Shown is what a terminal draws for s as far as these tests need:
// the zero-width characters they use are drawn as nothing.
func attack6Shown(s string) string {
	return strings.NewReplacer("\u200b", "", "\u2060", "", "\ufeff", "").Replace(s)
}

// attack6Recording returns the output and typed input of the recording
// that match selects.
func attack6Recording(t *testing.T, h *harness, store *recorder.Local, dir string, match func(recorder.Session) bool) (out, in, raw string) {
	t.Helper()
	s := h.findRecording(t, store, match)
	path := filepath.Join(dir, s.Path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := recorder.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var o, i strings.Builder
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case "o":
			o.WriteString(ev.Data)
		case "i":
			i.WriteString(ev.Data)
		}
	}
	return o.String(), i.String(), string(b)
}

// grep's context lines put "LINE-" before the line, and the dash-tail
// exception takes a number after digits and a dash for an ID's tail: an
// ordinary grep through a file of orders shows card numbers in clear, to
// the client and in the recording.
func TestAttack6E2EGrepContextLine(t *testing.T) {
	t.Parallel()
	h := env(t)
	file := filepath.Join(t.TempDir(), "orders.txt")
	os.WriteFile(file, []byte("order 17\nCard:\n4111111111111111\nCard:\n5555555555554444\n"), 0o644)
	cmd := "grep -n -A1 Card: " + file
	r := h.ssh(t, h.alice, "root@t1", nil, cmd)
	got := string(r.Stdout)
	for _, pan := range []string{"4111111111111111", "5555555555554444"} {
		if strings.Contains(got, pan) {
			t.Errorf("the client is shown %s: %q", pan, got)
		}
	}
	_, text, raw := h.recordingOf(t, h.store, func(s recorder.Session) bool { return s.Command == cmd })
	if strings.Contains(text, "4111111111111111") || strings.Contains(raw, "4111111111111111") {
		t.Errorf("the recording holds the card number: %q", text)
	}
}

// Zero-width characters between the digits are drawn as nothing, but end
// the masker's digit runs: the client's terminal and the recording's
// replay show the card number whole.
func TestAttack6E2EZeroWidthBetweenDigits(t *testing.T) {
	t.Parallel()
	h := env(t)
	// printf turns the octal escapes into U+200B (e2 80 8b).
	cmd := `printf '4111\342\200\2131111\342\200\2131111\342\200\2131111\n'`
	r := h.ssh(t, h.alice, "root@t1", nil, cmd)
	if shown := attack6Shown(string(r.Stdout)); strings.Contains(shown, "4111111111111111") {
		t.Errorf("the client's terminal shows %q", shown)
	}
	_, text, _ := h.recordingOf(t, h.store, func(s recorder.Session) bool { return s.Command == cmd })
	if shown := attack6Shown(text); strings.Contains(shown, "4111111111111111") {
		t.Errorf("the recording replays as %q", shown)
	}
}

// A 19-digit card number typed with one digit too many and corrected with
// the erase key: the screen shows the number, and the recorded keys enter
// it, but a group that reached 20 digits stays dead after the erase, so
// neither is masked (unlike the doc's "41111111111111112" + DEL).
func TestAttack6E2ETypedOverlongCorrection(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store, Input: true}})
	tty, out, wait := b.ptySSH(t, h.alice, "root@t1", 40, 200)
	marker := uniqueMarker("typed6")
	tty.Write([]byte("echo " + marker + "-$((1+1))\n"))
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), marker+"-2") })
	const pan = "4111111111111111110"
	tty.Write([]byte(": " + pan + "7\x7f; echo " + marker + "-$((2+2))\n"))
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), marker+"-4") })
	tty.Write([]byte("exit\n"))
	wait()
	if seen := out.String(); strings.Contains(seen, pan) {
		t.Errorf("the client's screen shows the number: %q", seen)
	}
	output, input, _ := attack6Recording(t, h, store, dir, func(s recorder.Session) bool { return s.Kind == "shell" })
	if strings.Contains(output, pan) {
		t.Errorf("the recorded output shows the number: %q", output)
	}
	if strings.Contains(input, pan+"7\x7f") {
		t.Errorf("the recorded keys enter the number: %q", input)
	}
}

// stdout and stderr are masked by separate stages, and a terminal shows
// both: a number split between them is drawn whole and masked by neither.
func TestAttack6E2EStdoutStderrSplit(t *testing.T) {
	t.Parallel()
	h := env(t)
	cmd := `printf '4111 1111 '; sleep 0.2; printf '1111 1111' >&2`
	r := h.ssh(t, h.alice, "root@t1", nil, cmd)
	if strings.Contains(string(r.Stdout), "4111 1111") && strings.Contains(string(r.Stderr), "1111 1111") {
		t.Errorf("the client's terminal shows %q then %q: 4111 1111 1111 1111", r.Stdout, r.Stderr)
	}
}

// ESC CAN (a sequence aborted at once, which shows nothing) between the
// halves of a number: the masker makes the ESC a break, the terminal and
// the recording's replay show the number whole.
func TestAttack6E2EBrokenEscapeBetweenHalves(t *testing.T) {
	t.Parallel()
	h := env(t)
	cmd := `printf '41111111\033\03011111111\n5555 5555 \033[\0305555 4444\n'`
	r := h.ssh(t, h.alice, "root@t1", nil, cmd)
	shown := strings.NewReplacer("\x1b[\x18", "", "\x1b\x18", "").Replace(string(r.Stdout))
	for _, pan := range []string{"4111111111111111", "5555 5555 5555 4444"} {
		if strings.Contains(shown, pan) {
			t.Errorf("the client's terminal shows %s: %q", pan, r.Stdout)
		}
	}
	_, text, _ := h.recordingOf(t, h.store, func(s recorder.Session) bool { return s.Command == cmd })
	if shown := strings.NewReplacer("\x1b[\x18", "", "\x1b\x18", "").Replace(text); strings.Contains(shown, "4111111111111111") {
		t.Errorf("the recording replays as %q", shown)
	}
}
