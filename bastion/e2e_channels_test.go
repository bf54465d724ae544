package bastion

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestSeveralChannelsOneConnection(t *testing.T) {
	t.Parallel()
	h := env(t)
	client := h.dialGo(t, h.alice, "root@t1")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			s, err := client.NewSession()
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			out, err := s.Output(fmt.Sprintf("echo channel-%d; exit %d", i, i))
			if want := fmt.Sprintf("channel-%d\n", i); string(out) != want {
				errs <- fmt.Errorf("channel %d: output %q, want %q (err %v)", i, out, want, err)
				return
			}
			var ee *ssh.ExitError
			if i > 0 && (!asExit(err, &ee) || ee.ExitStatus() != i) {
				errs <- fmt.Errorf("channel %d: err %v, want exit status %d", i, err, i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSignalAndExitSignal(t *testing.T) {
	t.Parallel()
	h := env(t)
	client := h.dialGo(t, h.alice, testUser+"@t1")
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, _ := s.StdoutPipe()
	if err := s.Start("echo started; exec sleep 60"); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 8)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "started\n" {
		t.Fatalf("read %q, %v", line, err)
	}
	if err := s.Signal(ssh.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		ee, ok := err.(*ssh.ExitError)
		if !ok || ee.Signal() != "TERM" {
			t.Fatalf("Wait = %v, want exit-signal TERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("signal did not end the command")
	}
}
