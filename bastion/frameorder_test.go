package bastion

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/recorder"
)

// frames records, in order, the frames the bastion sends the client on one
// session channel: "reply", "data", "stderr", a request's name, "eof",
// "close". A frame is recorded once the call that sent it returned.
type frames struct {
	mu     sync.Mutex
	list   []string
	exited chan struct{} // closed at the first exit-status, exit-signal or close
	closed chan struct{} // closed at "close"
}

func (f *frames) add(frame string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.list); (frame == "data" || frame == "stderr") && n > 0 && f.list[n-1] == frame {
		return // a run of data is one step of the order
	}
	f.list = append(f.list, frame)
	switch frame {
	case "exit-status", "exit-signal", "close":
		select {
		case <-f.exited:
		default:
			close(f.exited)
		}
	}
	if frame == "close" {
		close(f.closed)
	}
}

func (f *frames) get() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.list)
}

// frameChan is the client's channel as the bastion sees it, wrapped: it
// records each frame, and it holds each reply back until the exit is sent
// or 300 ms passed, so that a teardown that does not wait for the reply
// sends the exit first, every time.
type frameChan struct {
	ssh.Channel
	f *frames
}

func (c frameChan) Write(p []byte) (int, error) {
	n, err := c.Channel.Write(p)
	c.f.add("data")
	return n, err
}

func (c frameChan) Stderr() io.ReadWriter { return frameStderr{c.Channel.Stderr(), c.f} }

func (c frameChan) SendRequest(name string, wantReply bool, payload []byte) (bool, error) {
	ok, err := c.Channel.SendRequest(name, wantReply, payload)
	c.f.add(name)
	return ok, err
}

func (c frameChan) CloseWrite() error {
	err := c.Channel.CloseWrite()
	c.f.add("eof")
	return err
}

func (c frameChan) Close() error {
	err := c.Channel.Close()
	c.f.mu.Lock()
	done := slices.Contains(c.f.list, "close")
	c.f.mu.Unlock()
	if !done {
		c.f.add("close")
	}
	return err
}

func (c frameChan) reply(r *ssh.Request, ok bool) error {
	t := time.NewTimer(300 * time.Millisecond)
	defer t.Stop()
	select {
	case <-c.f.exited:
	case <-t.C:
	}
	err := r.Reply(ok, nil)
	c.f.add("reply")
	return err
}

type frameStderr struct {
	io.ReadWriter
	f *frames
}

func (s frameStderr) Write(p []byte) (int, error) {
	n, err := s.ReadWriter.Write(p)
	s.f.add("stderr")
	return n, err
}

// Replies before exits: the reply to the request that started a program
// reaches the client before its exit-status, EOF and CLOSE (x/crypto drops
// a reply that follows CLOSE), for exec, shell and subsystem, when the
// target's program ends at once, and when the recording fails.
func TestWireOrderReplyBeforeExit(t *testing.T) {
	t.Parallel()
	h := env(t)
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "recordings"), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		broken bool // the recording cannot be created
		full   bool // the recording's disk fills while the program runs
		last   bool // the recording's disk fails when a short exec ends
		req    string
		arg    string
		stdin  []byte
		want   []string
	}{
		{"exec", false, false, false, "exec", "echo wire-order", nil, []string{"reply", "data", "exit-status", "eof", "close"}},
		{"exec exits at once", false, false, false, "exec", "exit 7", nil, []string{"reply", "exit-status", "eof", "close"}},
		{"exec killed at once", false, false, false, "exec", "kill -9 $$", nil, []string{"reply", "exit-signal", "eof", "close"}},
		{"shell", false, false, false, "shell", "", []byte("echo from-shell; exit 3\n"), []string{"reply", "data", "exit-status", "eof", "close"}},
		{"subsystem", false, false, false, "subsystem", "sftp", sftpInit(), []string{"reply", "data", "exit-status", "eof", "close"}},
		{"recording cannot start", true, false, false, "exec", "echo never", nil, []string{"reply", "stderr", "eof", "close"}},
		{"recording fails midway", false, true, false, "exec", "head -c 3000000 /dev/zero | base64", nil, []string{"reply", "data", "stderr", "eof", "close"}},
		// The output is shown before the failing write (it sits in the
		// cast writer's buffer), but no exit status follows it.
		{"recording fails at exit", false, false, true, "exec", attack3Command, nil, []string{"reply", "data", "stderr", "eof", "close"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if tc.broken {
				dir = broken
			}
			if tc.full {
				dir = smallDisk(t)
			}
			got := make(chan *frames, 1)
			wrap := func(ch ssh.Channel) ssh.Channel {
				f := &frames{exited: make(chan struct{}), closed: make(chan struct{})}
				got <- f
				return frameChan{ch, f}
			}
			local := openStore(t, dir, h.auth.AuditKey)
			var store recorder.Store = local
			if tc.last {
				store = &attack3FailingBlobs{Local: local}
			}
			cfg := Config{Policy: h.policy, Recording: &Recording{Store: store}}
			b := h.serveWith(t, context.Background(), cfg, wrap)
			client := b.dialGo(t, h.alice, "root@t1")
			ch, reqs, err := client.OpenChannel("session", nil)
			if err != nil {
				t.Fatal(err)
			}
			go ssh.DiscardRequests(reqs) // ends when the channel closes
			var payload []byte
			if tc.arg != "" {
				payload = ssh.Marshal(&struct{ S string }{tc.arg})
			}
			ok, err := ch.SendRequest(tc.req, true, payload)
			if err != nil || !ok {
				t.Fatalf("%s request: ok %v, err %v: the client did not get its reply", tc.req, ok, err)
			}
			if tc.stdin != nil {
				ch.Write(tc.stdin)
				if tc.req == "subsystem" {
					// sftp-server exits at EOF without answering
					// what came with it: take its reply first.
					var version [9]byte
					if _, err := io.ReadFull(ch, version[:]); err != nil {
						t.Fatalf("sftp version: %v", err)
					}
				}
				ch.CloseWrite()
			}
			var f *frames
			select {
			case f = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("no channel wrapped")
			}
			drained := make(chan struct{})
			go func() { io.Copy(io.Discard, ch); io.Copy(io.Discard, ch.Stderr()); close(drained) }()
			select {
			case <-f.closed:
			case <-time.After(20 * time.Second):
				t.Fatalf("channel not closed; frames so far %v", f.get())
			}
			ch.Close()
			<-drained
			if list := f.get(); !slices.Equal(list, tc.want) {
				t.Fatalf("frames %v, want %v", list, tc.want)
			}
		})
	}
}

// smallDisk returns a data directory whose recordings go to a 1 MiB tmpfs.
func smallDisk(t *testing.T) string { return tmpfsData(t, "1m") }

// sftpInit is an SSH_FXP_INIT packet (version 3).
func sftpInit() []byte {
	p := binary.BigEndian.AppendUint32(nil, 5)
	p = append(p, 1) // SSH_FXP_INIT
	return binary.BigEndian.AppendUint32(p, 3)
}

// An x/crypto client, which drops a reply that comes after CLOSE, runs
// 1000 execs on one connection through the bastion and gets every exit
// status: 8 sequences of 125 side by side, as AsyncSSH runs 8 conn.run()
// at once (one of them used to hang), each exec of a sequence after the
// one before (x/crypto failed 2 of 1000 of those).
func TestThousandSequentialExecs(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 execs")
	}
	t.Parallel()
	h := env(t)
	b := h.serveWith(t, context.Background(), Config{Policy: h.policy}, nil)
	client := b.dialGo(t, h.alice, "root@t1")
	// An exec costs the target about 100 ms here (sshd leaves Nagle on
	// for sessions without a terminal), direct or through the bastion.
	deadline := time.Now().Add(5 * time.Minute)
	const workers, each = 8, 125
	errs := make(chan error, workers)
	for w := range workers {
		go func() { errs <- execSequence(client, w, each, deadline) }()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// execSequence runs n execs one after another on client, each exiting
// with a status of its own, and returns the first that went wrong.
func execSequence(client *ssh.Client, w, n int, deadline time.Time) error {
	for i := range n {
		if time.Now().After(deadline) {
			return fmt.Errorf("sequence %d: only %d execs before the deadline", w, i)
		}
		s, err := client.NewSession()
		if err != nil {
			return fmt.Errorf("sequence %d, exec %d: new session: %v", w, i, err)
		}
		want := (w + i) % 5
		err = s.Run("exit " + strconv.Itoa(want))
		s.Close()
		var ee *ssh.ExitError
		switch {
		case want == 0 && err != nil:
			return fmt.Errorf("sequence %d, exec %d: %v, want exit 0", w, i, err)
		case want != 0 && (!errors.As(err, &ee) || ee.ExitStatus() != want):
			return fmt.Errorf("sequence %d, exec %d: %v, want exit %d", w, i, err, want)
		}
	}
	return nil
}
