package bastion

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// startTold starts command on a new session of client and waits for it
// to print "started"; its stderr is returned.
func startTold(t *testing.T, client *ssh.Client, command string) *testenv.Buffer {
	t.Helper()
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb testenv.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if err := s.Start(command); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(out.String(), "started") })
	return &errb
}

// A session opened during a drain, on a connection open before it, is
// told the drain's notice too: it will be closed at the deadline all the
// same.
func TestDrainTellsSessionsOpenedDuringIt(t *testing.T) {
	t.Parallel()
	r := newReloadRig(t)
	client := r.dialGo(t, r.key, "root@t1")
	first := startTold(t, client, "echo started; sleep 60")
	const notice = "postern: drain notice for the test"
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- r.srv.Drain(ctx, notice) }()
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(first.String(), notice) })
	second := startTold(t, client, "echo started; sleep 60")
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(second.String(), notice) })
	cancel()
	if err := <-drained; err == nil {
		t.Fatal("Drain closed sessions at its deadline and says nothing")
	}
}

// An admin `approvals --watch` open when the drain begins shows the
// drain's notice and ends: the drain does not wait for its deadline
// while an approver watches.
func TestDrainEndsApprovalsWatch(t *testing.T) {
	t.Parallel()
	b, _ := certEndServer(t)
	admin := startSSH(t, b, b.alice, AdminUser, "approvals --watch")
	testenv.WaitFor(t, 30*time.Second, func() bool { return strings.Contains(admin.stdout.String(), "ID") })
	const notice = "postern: drain notice for the watch test"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- b.srv.Drain(ctx, notice) }()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain: %v, want the watch ended before the deadline", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("Drain still waits for the watch; its stderr %q", admin.stderr.String())
	}
	select {
	case err := <-admin.done:
		admin.done <- err
		if err != nil || !strings.Contains(admin.stderr.String(), notice+"\n") {
			t.Fatalf("the watch ended with %v, stderr %q: want 0 and the notice", err, admin.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the watch's client still runs after the drain")
	}
}
