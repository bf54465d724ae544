package bastion

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// A card number typed with one correction (a wrong last digit, then the
// erase key) reads as the card number on the screen and in the keys, so
// it is masked in the recorded output, in the recorded input ("i" events,
// where DEL erases) and in what `postern sessions --grep` finds. The
// client's screen may show it: the echo of the user's own keys is shown
// as typed (typedEcho), whatever the chunks it comes in.
func TestMaskingTypedCorrection(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store, Input: true}})
	tty, out, wait := b.ptySSH(t, h.alice, "root@t1", 40, 200)
	marker := uniqueMarker("typed")
	// The session is up (and ssh's terminal raw, so DEL reaches the
	// target as typed) once the first command's output comes back.
	tty.Write([]byte("echo " + marker + "-$((1+1))\n"))
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), marker+"-2") })
	const pan, typed = "4111111111111111", "41111111111111112\x7f"
	tty.Write([]byte(": " + typed + "; echo " + marker + "-$((2+2))\n"))
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), marker+"-4") })
	tty.Write([]byte("exit\n"))
	wait()

	s := h.findRecording(t, store, func(s recorder.Session) bool { return s.Kind == "shell" })
	path := filepath.Join(dir, s.Path)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), pan) {
		t.Errorf("the recording file holds the number:\n%s", raw)
	}
	var output, input strings.Builder
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := recorder.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
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
			output.WriteString(ev.Data)
		case "i":
			input.WriteString(ev.Data)
		}
	}
	if pans := testenv.PANs(output.String()); len(pans) > 0 {
		t.Errorf("recorded output holds %v: %q", pans, output.String())
	}
	if pans := testenv.InputPANs(input.String()); len(pans) > 0 || !strings.Contains(input.String(), "411111******11112\x7f") {
		t.Errorf("recorded input holds %v, or the typed number is not masked: %q", pans, input.String())
	}

	// sessions --grep searches the recording line by line.
	f.Seek(0, io.SeekStart)
	r, err = recorder.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	hits, err := recorder.Grep(r, regexp.MustCompile(`1111|\*\*\*\*`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) == 0 {
		t.Error("sessions --grep finds no line with the typed number")
	}
	for _, hit := range hits {
		pans := testenv.PANs(hit.Text)
		if hit.Kind == "i" {
			pans = testenv.InputPANs(hit.Text)
		}
		if strings.Contains(hit.Text, pan) || len(pans) > 0 {
			t.Errorf("sessions --grep shows the number: %+v", hit)
		}
	}
}

// The echo of typed keys is shown at once, but what the target prints is
// not echo, though the user typed the same digits just before: a number
// printed in two pieces is shown masked whole. The masker's deadline is
// an hour here, so only the echo could release the first piece early.
func TestEchoReleaseKeepsTargetOutputMasked(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, maskDeadline: time.Hour})
	tty, out, wait := b.ptySSH(t, h.alice, "root@t1", 40, 200)
	marker := uniqueMarker("echo")
	tty.Write([]byte("echo " + marker + "-$((1+1))\n"))
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), marker+"-2") })
	// Typed key by key, each after its echo: the digits are echo.
	for _, k := range ": 4111 1111 1111 1111 x" {
		n := strings.Count(out.String(), string(k))
		tty.Write([]byte(string(k)))
		testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Count(out.String(), string(k)) > n })
	}
	tty.Write([]byte("\n"))
	tty.Write([]byte("printf 41111111; sleep 0.2; printf 11111111; echo; echo " + marker + "-$((3+3))\n"))
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), marker+"-6") })
	tty.Write([]byte("exit\n"))
	wait()
	seen := out.String()
	if !strings.Contains(seen, "4111 1111 1111 1111 x") {
		t.Errorf("the typed number's echo is not shown as typed: %q", seen)
	}
	if !strings.Contains(seen, "411111******1111\r\n"+marker+"-6") {
		t.Errorf("the number the target printed in two pieces is not masked whole: %q", seen)
	}
}

// Keys that reach bash as escape sequences and are never echoed (Delete,
// Ctrl-Right, End, a paste's markers) do not hold up the echo of what is
// typed after them: each digit still shows at once, with the masker's
// deadline at an hour.
func TestEchoReleaseAfterEditingKeys(t *testing.T) {
	t.Parallel()
	h := env(t)
	b := h.extraServer(t, Config{Policy: h.policy, maskDeadline: time.Hour})
	tty, out, wait := b.ptySSH(t, h.alice, "root@t1", 40, 200)
	marker := uniqueMarker("keys")
	tty.Write([]byte("PS1='P''S> '; echo " + marker + "-$((1+1))\n"))
	testenv.WaitFor(t, 20*time.Second, func() bool {
		s := out.String()
		i := strings.LastIndex(s, marker+"-2")
		return i >= 0 && strings.HasSuffix(s[i:], "PS> ")
	})
	// x, Left and Delete (x is gone), Ctrl-Right, End, a pasted 7.
	tty.Write([]byte("x\x1b[D\x1b[3~\x1b[1;5C\x1b[4~\x1b[200~7\x1b[201~"))
	for _, k := range ": 4111 1111" {
		n := strings.Count(out.String(), string(k))
		tty.Write([]byte(string(k)))
		testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Count(out.String(), string(k)) > n })
	}
	tty.Write([]byte("\x15exit\n"))
	wait()
}
