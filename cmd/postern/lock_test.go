package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// liveSession runs an OpenSSH session (name and args) that prints
// "live-now" and then waits for a line on its stdin, and returns once it
// printed. end sends the line and returns the session's result.
func liveSession(t *testing.T, name string, args ...string) (end func() testenv.Result) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, errb testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{}) // closed when Wait returned, after setting waitErr
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "live-now") {
		select {
		case <-done:
			t.Fatalf("live session ended early: %v\nstdout %q\nstderr %q", waitErr, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("live session printed nothing within a minute: stderr %q", errb.String())
		}
	}
	return func() testenv.Result {
		t.Helper()
		io.WriteString(stdin, "bye\n")
		stdin.Close()
		select {
		case <-done:
			code := 0
			if ee, ok := waitErr.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if waitErr != nil {
				t.Fatal(waitErr)
			}
			return testenv.Result{Stdout: []byte(out.String()), Stderr: []byte(errb.String()), ExitCode: code}
		case <-time.After(time.Minute):
			t.Fatal("live session did not end after its line")
			return testenv.Result{}
		}
	}
}

// liveCommand is what a live session runs: it holds the session open
// until a line arrives.
const liveCommand = "echo live-now; read line; echo got-$line"

// dataState describes every file of data directory dir (size, mode,
// modification time, SHA-256) except the recordings, which the running
// instance may flush while the test looks.
func dataState(t *testing.T, dir string) map[string]string {
	t.Helper()
	state := make(map[string]string)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() && rel == "recordings" {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String() + " " + fi.ModTime().Format(time.RFC3339Nano)
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += " " + strconv.Itoa(len(data)) + " " + hex.EncodeToString(sum[:])
		}
		state[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := state["postern.db"]; !ok {
		t.Fatalf("no index in %s: %v", dir, state)
	}
	return state
}

// checkUnchanged fails the test if dir's state differs from before.
func checkUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := dataState(t, dir)
	for f, d := range before {
		if after[f] != d {
			t.Errorf("%s changed: %q, was %q", f, after[f], d)
		}
	}
	for f := range after {
		if _, ok := before[f]; !ok {
			t.Errorf("%s appeared", f)
		}
	}
}

// activeIDs lists the IDs of the sessions the index has as active.
func activeIDs(t *testing.T, dir string, where ...string) []string {
	t.Helper()
	var ids []string
	for _, s := range sessionsJSON(t, dir, append(where, "--active")...) {
		ids = append(ids, s.ID+":"+s.Status)
	}
	return ids
}

// TestSecondServeRefused: while `postern serve` runs with a live session,
// a second serve on the same data directory exits 1 with a message naming
// the directory, the running instance and what to do, and changes nothing:
// no file of the data directory, not the live session's status. The first
// server goes on working, and verify finds nothing sealed twice.
func TestSecondServeRefused(t *testing.T) {
	t.Parallel()
	s := startServe(t)
	if r := s.ssh(t, nil, "echo before"); r.ExitCode != 0 {
		t.Fatalf("first session: %d %s", r.ExitCode, r.Stderr)
	}
	end := liveSession(t, s.sshBin, s.sshArgs(liveCommand)...)
	active := activeIDs(t, s.dir, "--config", s.cfg)
	if len(active) != 1 {
		t.Fatalf("active sessions %v, want the live one", active)
	}
	before := dataState(t, s.data)

	r := testenv.Cmd(t, time.Minute, nil, binary(t), "serve", "--config", s.cfg)
	msg := string(r.Stderr)
	if r.ExitCode != 1 || !strings.Contains(msg, "data directory "+s.data+" is in use") ||
		!strings.Contains(msg, "pid "+strconv.Itoa(s.cmd.Process.Pid)) || !strings.Contains(msg, "stop that one first") {
		t.Fatalf("second serve: exit %d, stderr %q", r.ExitCode, msg)
	}
	if strings.Contains(msg, "recording_interrupted") || strings.Contains(msg, "postern listening") {
		t.Fatalf("second serve got past the lock:\n%s", msg)
	}
	checkUnchanged(t, s.data, before)
	if got := activeIDs(t, s.dir, "--config", s.cfg); strings.Join(got, ",") != strings.Join(active, ",") {
		t.Fatalf("active sessions after the second serve: %v, were %v", got, active)
	}

	if r := end(); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "got-bye") {
		t.Fatalf("live session: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := s.ssh(t, nil, "echo after"); r.ExitCode != 0 || string(r.Stdout) != "after\n" {
		t.Fatalf("first server after the refusal: exit %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := admin(t, s.dir, "verify", "--config", s.cfg, "--json"); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), `"problems": []`) {
		t.Fatalf("verify: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	s.stop(t)
	// The lock went with the process: the directory serves again.
	s.start(t)
	if r := s.ssh(t, nil, "echo again"); r.ExitCode != 0 || string(r.Stdout) != "again\n" {
		t.Fatalf("serve after the first stopped: exit %d %q %s", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// TestSecondDemoRefused: the same for `postern demo` in the directory of a
// running demo.
func TestSecondDemoRefused(t *testing.T) {
	t.Parallel()
	testenv.Require(t, "ssh")
	work := t.TempDir()
	d := startDemo(t, work)
	data := filepath.Join(work, demoDir)
	if r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", d.cmds[1]); r.ExitCode != 3 {
		t.Fatalf("%s: exit %d %s", d.cmds[1], r.ExitCode, r.Stderr)
	}
	end := liveSession(t, "sh", "-c", d.cmds[0]+" '"+liveCommand+"'")
	active := activeIDs(t, work)
	if len(active) != 1 {
		t.Fatalf("active sessions %v, want the live one", active)
	}
	before := dataState(t, data)

	r := testenv.Cmd(t, time.Minute, nil, binary(t), "demo", "--listen", "127.0.0.1:0", "--data-dir", data)
	msg := string(r.Stderr)
	if r.ExitCode != 1 || !strings.Contains(msg, "data directory "+data+" is in use") ||
		!strings.Contains(msg, "pid "+strconv.Itoa(d.cmd.Process.Pid)) || len(r.Stdout) != 0 {
		t.Fatalf("second demo: exit %d, stdout %q, stderr %q", r.ExitCode, r.Stdout, msg)
	}
	checkUnchanged(t, data, before)
	if got := activeIDs(t, work); strings.Join(got, ",") != strings.Join(active, ",") {
		t.Fatalf("active sessions after the second demo: %v, were %v", got, active)
	}
	if r := end(); r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "got-bye") {
		t.Fatalf("live session: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := testenv.Cmd(t, time.Minute, nil, "sh", "-c", d.cmds[1]); r.ExitCode != 3 {
		t.Fatalf("first demo after the refusal: exit %d %s", r.ExitCode, r.Stderr)
	}
}
