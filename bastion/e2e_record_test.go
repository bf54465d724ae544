package bastion

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// findRecording waits for the sealed index entry whose command or
// recorded output contains marker.
func (h *harness) findRecording(t *testing.T, store *recorder.Local, match func(recorder.Session) bool) recorder.Session {
	t.Helper()
	var found recorder.Session
	testenv.WaitFor(t, 20*time.Second, func() bool {
		list, err := store.List(t.Context(), recorder.Filter{})
		if err != nil {
			return false
		}
		for _, s := range list {
			if s.Status != recorder.StatusActive && match(s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// ptyRun runs a program on a pseudo-terminal (asciinema needs /dev/tty)
// and returns everything it printed and its exit code.
func ptyRun(t *testing.T, name string, args ...string) ([]byte, int) {
	t.Helper()
	r := testenv.RunOnPTY(t, "", nil, name, args...)
	return r.Output, r.ExitCode
}

func recordingText(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := recorder.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := recorder.Cat(r, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestExecIsRecorded(t *testing.T) {
	t.Parallel()
	h := env(t)
	asciinema := testenv.Require(t, "asciinema")
	marker := uniqueMarker("rec-")
	cmd := "echo " + marker + "; printf 'tab\\there \\342\\202\\254 done\\n'; exit 4"
	r := h.ssh(t, h.alice, "root@t1", nil, cmd)
	if r.ExitCode != 4 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	s := h.findRecording(t, h.store, func(s recorder.Session) bool { return s.Command == cmd })
	if s.Kind != "exec" || s.Identity != "alice" || s.Target != "t1" || s.Login != "root" ||
		s.ExitStatus == nil || *s.ExitStatus != 4 || s.SHA256 == "" || s.Status != recorder.StatusClosed ||
		s.BytesOut != int64(len(r.Stdout)) {
		t.Fatalf("index entry %+v (client got %d bytes)", s, len(r.Stdout))
	}
	path := filepath.Join(h.store.Dir(), s.Path)
	// asciinema's own reader reproduces exactly what the client saw.
	got, code := ptyRun(t, asciinema, "cat", path)
	if code != 0 || !bytes.Equal(got, r.Stdout) {
		t.Fatalf("asciinema cat: exit %d\n got %q\nwant %q", code, got, r.Stdout)
	}
	if text := recordingText(t, path); text != string(r.Stdout) {
		t.Fatalf("postern's reader: %q, want %q", text, r.Stdout)
	}
	if _, code := ptyRun(t, asciinema, "play", "-s", "100", path); code != 0 {
		t.Fatalf("asciinema play exited %d", code)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte(`"m", "exit status 4"`)) || !bytes.Contains(data, []byte(`"m", "exec: echo `+marker)) {
		t.Fatalf("recording lacks exec/exit markers:\n%s", data)
	}
	// The log names the chain head the seal made: shipped off the
	// bastion, it anchors the chain for verify.
	var ended struct {
		Recording, Status string
		ChainHead         string `json:"chain_head"`
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, line := range strings.Split(h.logs.String(), "\n") {
			if strings.Contains(line, `"event":"recording_end"`) && strings.Contains(line, s.ID) {
				return json.Unmarshal([]byte(line), &ended) == nil
			}
		}
		return false
	})
	anchor, err := recorder.ParseChainHead(ended.ChainHead)
	if err != nil || ended.Recording != s.ID || ended.Status != recorder.StatusClosed {
		t.Fatalf("recording_end log for %s: %+v (%v)", s.ID, ended, err)
	}
	if rep, err := recorder.VerifyStore(t.Context(), h.store, recorder.VerifyOptions{Key: h.store.PublicKey(), Anchors: []recorder.ChainHead{anchor}}); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %v %v", rep.Problems, err)
	}
}

// The interactive session of TestInteractivePTY, recorded: its resize is
// in the recording and the recorded output is what the client's terminal
// received.
func TestInteractiveIsRecorded(t *testing.T) {
	t.Parallel()
	h := env(t)
	asciinema := testenv.Require(t, "asciinema")
	tty, out, wait := h.ptySSH(t, h.alice, "root@t1", 24, 80)
	marker := uniqueMarker("irec")
	tty.Write([]byte("PS1='$ '; echo " + marker + "-$((1+1))\n"))
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), marker+"-2") })
	pty.Setsize(tty, &pty.Winsize{Rows: 40, Cols: 100})
	testenv.WaitFor(t, 20*time.Second, func() bool {
		tty.Write([]byte("stty size\n"))
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(out.String(), "40 100")
	})
	tty.Write([]byte("exit 0\n"))
	wait()

	s := h.findRecording(t, h.store, func(s recorder.Session) bool {
		return s.Kind == "shell" && strings.Contains(recordingText(t, filepath.Join(h.store.Dir(), s.Path)), marker+"-2")
	})
	path := filepath.Join(h.store.Dir(), s.Path)
	data, _ := os.ReadFile(path)
	if !bytes.Contains(data, []byte(`"r", "100x40"`)) {
		t.Fatalf("no resize event in the recording:\n%s", data)
	}
	if !bytes.Contains(data, []byte(`"width":80,"height":24`)) || !bytes.Contains(data, []byte(`"TERM":"xterm"`)) {
		t.Fatalf("header lacks the initial size or TERM: %s", data[:bytes.IndexByte(data, '\n')])
	}
	got, code := ptyRun(t, asciinema, "cat", path)
	if code != 0 || !strings.Contains(out.String(), string(got)) || len(got) == 0 {
		t.Fatalf("asciinema cat (exit %d) output is not what the client saw:\n got %q\nclient %q", code, got, out.String())
	}
}

// Fail closed: when the recording cannot be written, the session ends
// with a message and what was recorded stays.
func TestRecordingFailureEndsSession(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := smallDisk(t)
	store := openStore(t, dir, h.auth.AuditKey)
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}})

	// 8 MB of output into 1 MiB of disk.
	r := b.ssh(t, h.alice, "root@t1", nil, "echo full-disk-test; head -c 6000000 /dev/zero | base64; exit 0")
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "postern: recording failed") {
		t.Fatalf("exit %d, %d bytes out, stderr %q: want the session ended with a message", r.ExitCode, len(r.Stdout), r.Stderr)
	}
	if len(r.Stdout) >= 8000000 {
		t.Fatalf("the client got all %d bytes although recording failed", len(r.Stdout))
	}
	s := h.findRecording(t, store, func(s recorder.Session) bool { return strings.Contains(s.Command, "full-disk-test") })
	if s.Status != recorder.StatusInterrupted {
		t.Fatalf("status %q, want interrupted", s.Status)
	}
	// What reached the disk stays: 1 MiB less at most a torn last event
	// (one read of up to 256 KiB, escaped). The
	// recording and the client agree byte for byte as far as both go;
	// either may be ahead, by what was queued for the file when the write
	// failed (the client may have seen it) or by the last read, recorded
	// but refused to the client once the failure was known.
	text := recordingText(t, filepath.Join(dir, s.Path))
	common := min(len(text), len(r.Stdout))
	if !strings.HasPrefix(text, "full-disk-test\n") || len(text) < 384<<10 || text[:common] != string(r.Stdout[:common]) {
		t.Fatalf("recorded prefix (%d bytes) does not match what the client saw (%d bytes)", len(text), len(r.Stdout))
	}
	// What the user saw beyond the file is bounded by the writer's queue
	// (4 chunks of 128 KiB, each up to one more 256 KiB read) and the
	// chunk being filled.
	if ahead := len(r.Stdout) - len(text); ahead > 3<<20 {
		t.Fatalf("the client saw %d bytes beyond the recording", ahead)
	}
	// The seal describes the file as it is, so verify finds it intact.
	sum, size, err := recorder.FileDigest(filepath.Join(dir, s.Path))
	if err != nil || s.SHA256 != sum || s.Size != size {
		t.Fatalf("sealed sha256 %s size %d, file has %s size %d (%v)", s.SHA256, s.Size, sum, size, err)
	}

	// A recording that cannot even be created refuses the session.
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, "recordings"), []byte("not a directory"), 0o600)
	brokenStore := openStore(t, broken, h.auth.AuditKey)
	b2 := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: brokenStore}})
	r = b2.ssh(t, h.alice, "root@t1", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode == 0 || bytes.Contains(r.Stdout, []byte("SHOULD-NOT-RUN")) || !strings.Contains(string(r.Stderr), "cannot be recorded") {
		t.Fatalf("unrecordable session: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	// Its index entry is sealed as interrupted, and the log names the
	// chain head that seal made.
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(b2.logs.String(), `"event":"recording_sealed"`) })
	var sealed struct {
		Status    string
		ChainHead string `json:"chain_head"`
	}
	for _, line := range strings.Split(b2.logs.String(), "\n") {
		if strings.Contains(line, `"event":"recording_sealed"`) {
			json.Unmarshal([]byte(line), &sealed)
		}
	}
	if head, err := brokenStore.Head(t.Context()); err != nil || head == nil || sealed.Status != recorder.StatusInterrupted || sealed.ChainHead != head.String() {
		t.Fatalf("recording_sealed %+v, chain head %v (%v)", sealed, head, err)
	}
	// Unless the operator said to continue.
	b3 := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: brokenStore, ContinueOnFailure: true}})
	r = b3.ssh(t, h.alice, "root@t1", nil, "echo ran-unrecorded")
	if r.ExitCode != 0 || string(r.Stdout) != "ran-unrecorded\n" {
		t.Fatalf("on_failure continue: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
}

// Input is recorded only when the operator enables it.
func TestInputRecordingIsOptIn(t *testing.T) {
	t.Parallel()
	h := env(t)
	for _, input := range []bool{false, true} {
		dir := t.TempDir()
		store := openStore(t, dir, h.auth.AuditKey)
		b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store, Input: input}})
		cmd := fmt.Sprintf("cat >/dev/null; echo input-%v", input)
		r := b.ssh(t, h.alice, "root@t1", strings.NewReader("typed-secret\n"), cmd)
		if r.ExitCode != 0 {
			t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
		}
		s := h.findRecording(t, store, func(s recorder.Session) bool { return s.Command == cmd })
		data, _ := os.ReadFile(filepath.Join(dir, s.Path))
		got := bytes.Contains(data, []byte(`"i", "typed-secret\n"`))
		if got != input || (!input && bytes.Contains(data, []byte("typed-secret"))) {
			t.Fatalf("input recording %v: recording has the typed text: %v\n%+v\n%s", input, got, s, data)
		}
		if s.BytesIn != int64(len("typed-secret\n")) {
			t.Fatalf("bytes_in %d", s.BytesIn)
		}
	}
}

// openStore opens the store of data directory dir for the test's life.
func openStore(t testing.TB, dir string, key ed25519.PrivateKey) *recorder.Local {
	t.Helper()
	s, err := recorder.OpenStore(dir, recorder.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
