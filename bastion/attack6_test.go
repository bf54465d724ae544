package bastion

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/recorder"
)

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
