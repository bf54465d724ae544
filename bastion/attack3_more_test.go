package bastion

// Attack round 3 on the channel pipeline: defences that held, kept as
// regression tests (the ways through this round found are in the recorder
// package: recorder/attack3_more_test.go).

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestAttack3SecondProgramAndOddRequestsAfterStart: once an exec runs, a
// second exec, a shell, an sftp subsystem and requests with malformed
// payloads (pty-req, window-change, env, signal) on the same channel are
// refused, and none of them disturbs the running program: its output and
// exit status arrive, and nothing of the second command runs.
func TestAttack3SecondProgramAndOddRequestsAfterStart(t *testing.T) {
	t.Parallel()
	h := env(t)
	client := h.dialGo(t, h.alice, "root@t1")
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	exits := make(chan *ssh.Request, 4)
	go func() {
		for r := range reqs {
			exits <- r
		}
		close(exits)
	}()
	// The program reads stdin until EOF, so it is still running while
	// the later requests arrive.
	if ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ C string }{"cat; echo first-done"})); !ok || err != nil {
		t.Fatalf("exec: %v %v", ok, err)
	}
	later := []struct {
		typ     string
		payload []byte
	}{
		{"exec", ssh.Marshal(struct{ C string }{"echo SECOND-RAN"})},
		{"shell", nil},
		{"subsystem", ssh.Marshal(struct{ N string }{"sftp"})},
		{"pty-req", []byte{0, 0, 0, 200, 'x'}},       // string runs past the end
		{"window-change", []byte{0, 0, 0, 80, 0, 0}}, // short
		{"env", []byte{0, 0, 0, 1, 'A', 0xff}},       // value missing
		{"signal", []byte{0, 0, 0, 9, 'K'}},          // truncated
		{"exec", []byte{0, 0, 0, 3, 'i', 'd'}},       // malformed, and second
	}
	for _, r := range later {
		ok, err := ch.SendRequest(r.typ, true, r.payload)
		if err != nil {
			t.Fatalf("%s after exec: %v", r.typ, err)
		}
		if ok {
			t.Errorf("%s with payload %q after exec: accepted", r.typ, r.payload)
		}
	}
	var stdout bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(&stdout, ch)
		done <- err
	}()
	if _, err := ch.Write([]byte("typed\n")); err != nil {
		t.Fatal(err)
	}
	ch.CloseWrite()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a bound, not a synchronisation
		t.Fatal("the running program never finished")
	}
	if got := stdout.String(); got != "typed\nfirst-done\n" || strings.Contains(got, "SECOND") {
		t.Fatalf("stdout %q: want only the first program's output", got)
	}
	status := -1
	for r := range exits {
		if r.Type == "exit-status" && len(r.Payload) == 4 {
			status = int(r.Payload[3])
		}
	}
	if status != 0 {
		t.Fatalf("exit status %d, want 0", status)
	}
}
