package bastion

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// limitRecord waits for the session_limit audit record of limit and
// action in b's log.
func limitRecord(t *testing.T, b *harness, limit, action string) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, line := range strings.Split(b.logs.String(), "\n") {
			if strings.Contains(line, `"event":"session_limit"`) && strings.Contains(line, `"limit":"`+limit+`"`) && strings.Contains(line, `"action":"`+action+`"`) {
				return true
			}
		}
		return false
	})
}

// verifyStore checks that every recording and chain entry of store
// verifies, as `postern verify` does.
func verifyStore(t *testing.T, store *recorder.Local) {
	t.Helper()
	rep, err := recorder.VerifyStore(t.Context(), store, recorder.VerifyOptions{Key: store.PublicKey()})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v, problems %+v", err, rep.Problems)
	}
}

// markers returns the recording's markers that match re, as
// `postern play --grep` finds them.
func markers(t *testing.T, path string, re string) []string {
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
	hits, err := recorder.Grep(r, regexp.MustCompile(re), 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, h := range hits {
		if h.Kind == "m" {
			out = append(out, h.Text)
		}
	}
	return out
}

// The burst: 20 MB of NULs, each stored as \u0000, stops at the
// recording cap; the session ends with a notice, and the recording, sealed
// with a marker saying why, verifies.
func TestRecordingCapEndsSession(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	const limit = 256 << 10
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, SessionLimits: SessionLimits{RecordingMaxSize: limit}})

	r := b.ssh(t, h.alice, "root@t1", nil, "echo cap-test; head -c 20000000 /dev/zero; exit 0")
	notice := "postern: the recording reached its size limit (256KiB); the session was ended"
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), notice) {
		t.Fatalf("exit %d, %d bytes out, stderr %q: want the session ended with %q", r.ExitCode, len(r.Stdout), r.Stderr, notice)
	}
	if len(r.Stdout) >= 20000000 {
		t.Fatalf("the client got all %d bytes past the recording cap", len(r.Stdout))
	}
	s := h.findRecording(t, store, func(s recorder.Session) bool { return strings.Contains(s.Command, "cap-test") })
	if s.Status != recorder.StatusClosed || s.Limit != limitRecording {
		t.Fatalf("status %q limit %q, want closed, %s", s.Status, s.Limit, limitRecording)
	}
	// At the cap: no output event past it, then the marker. A read is
	// recorded whole or not at all, and a bulk read takes up to 256 KiB
	// (1.5 MB as \u0000s), so the recording may stop well short of the
	// cap (74 KB in one CI run): no lower bound but the text checked below.
	if s.Size > limit+1024 {
		t.Fatalf("recording is %d bytes, want at most the cap %d and a marker", s.Size, limit)
	}
	path := filepath.Join(dir, s.Path)
	if m := markers(t, path, "size limit"); len(m) != 1 || m[0] != notice {
		t.Fatalf("markers %q, want %q", m, notice)
	}
	// Every byte the client saw is in the recording.
	text := recordingText(t, path)
	if !strings.HasPrefix(text, "cap-test\n") || len(r.Stdout) > len(text) || text[:len(r.Stdout)] != string(r.Stdout) {
		t.Fatalf("the client saw %d bytes, the recording holds %d: not a prefix of it", len(r.Stdout), len(text))
	}
	verifyStore(t, store)
	limitRecord(t, b, limitRecording, "ended")
}

// With on_recording_limit: stop_recording, the operator's explicit
// choice, the session goes on unrecorded and the recording is sealed as
// interrupted, still verifiable.
func TestRecordingCapStopRecording(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	const limit = 256 << 10
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store},
		SessionLimits: SessionLimits{RecordingMaxSize: limit, StopRecordingAtLimit: true}})

	r := b.ssh(t, h.alice, "root@t1", nil, "echo stop-test; head -c 2000000 /dev/zero; exit 0")
	if r.ExitCode != 0 || len(r.Stdout) != len("stop-test\n")+2000000 {
		t.Fatalf("exit %d, %d bytes out, stderr %q: want the whole output", r.ExitCode, len(r.Stdout), r.Stderr)
	}
	s := h.findRecording(t, store, func(s recorder.Session) bool { return strings.Contains(s.Command, "stop-test") })
	if s.Status != recorder.StatusInterrupted || s.Limit != limitRecording || s.Size > limit+1024 {
		t.Fatalf("status %q limit %q size %d: want interrupted at the cap", s.Status, s.Limit, s.Size)
	}
	if m := markers(t, filepath.Join(dir, s.Path), "continues unrecorded"); len(m) != 1 {
		t.Fatalf("markers %q, want one saying the session continues unrecorded", m)
	}
	verifyStore(t, store)
	limitRecord(t, b, limitRecording, "recording_stopped")
}

// tmpfsData returns a data directory whose recordings are on a tmpfs of
// size (like "8m"): real statfs figures the test controls.
func tmpfsData(t *testing.T, size string) string {
	t.Helper()
	testenv.RequireRoot(t, "mount a tmpfs for the recordings")
	dir := t.TempDir()
	recs := filepath.Join(dir, "recordings")
	if err := os.Mkdir(recs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", recs, "tmpfs", 0, "size="+size); err != nil {
		if testenv.InCI() {
			t.Fatalf("mount a tmpfs (tests run as root): %v", err)
		}
		t.Skipf("cannot mount tmpfs here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(recs, syscall.MNT_DETACH) })
	return dir
}

// Below the free-disk floor a new session is refused with one line; a
// running session whose recording takes the disk below it is ended with a
// notice, its recording sealed and verifiable.
func TestDiskFloor(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := tmpfsData(t, "8m")
	store := openStore(t, dir, h.auth.AuditKey)
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, SessionLimits: SessionLimits{MinFreeDisk: 5 << 20}})

	// 8 MiB free: the session starts; its recording takes the tmpfs
	// below 5 MiB free, which ends it.
	r := b.ssh(t, h.alice, "root@t1", nil, "echo floor-test; head -c 6000000 /dev/urandom | base64; exit 0")
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "is below its floor (5MiB); the session was ended") {
		t.Fatalf("exit %d, %d bytes out, stderr %q: want the session ended at the floor", r.ExitCode, len(r.Stdout), r.Stderr)
	}
	s := h.findRecording(t, store, func(s recorder.Session) bool { return strings.Contains(s.Command, "floor-test") })
	if s.Status != recorder.StatusClosed || s.Limit != limitDisk {
		t.Fatalf("status %q limit %q, want closed, %s", s.Status, s.Limit, limitDisk)
	}
	if m := markers(t, filepath.Join(dir, s.Path), "below its floor"); len(m) != 1 {
		t.Fatalf("markers %q, want the floor's", m)
	}
	limitRecord(t, b, limitDisk, "ended")

	// Now below the floor: a new session is refused before it runs.
	r = b.ssh(t, h.alice, "root@t1", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode == 0 || bytes.Contains(r.Stdout, []byte("SHOULD-NOT-RUN")) ||
		!strings.Contains(string(r.Stderr), "postern: the bastion's disk is nearly full") || !strings.Contains(string(r.Stderr), "new sessions are refused") {
		t.Fatalf("below the floor: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	limitRecord(t, b, limitDisk, "refused")
	verifyStore(t, store)
}

// A connection ends at the maximum session duration, its user warned
// before and told why at the end.
func TestMaxSessionDuration(t *testing.T) {
	t.Parallel()
	h := env(t)
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	// The warning goes to the session channels open at 3/4 of the limit,
	// counted from authentication: the session must be running by then,
	// which takes a target dial (with 4s, a loaded machine could miss the
	// 3 s and the warning went nowhere).
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}, SessionLimits: SessionLimits{MaxDuration: 8 * time.Second}})
	start := time.Now()
	s := startSSH(t, b, h.alice, "root@t1", "echo started; sleep 120")
	s.ended(t, "a session past the maximum duration", "postern: this connection reached the bastion's maximum session duration (8s) and was ended")
	if took := time.Since(start); took < 8*time.Second {
		t.Fatalf("ended after %s, before the 8s limit", took)
	}
	warn := "postern: this connection reaches the bastion's maximum session duration (8s) in 2s"
	if !strings.Contains(s.stderr.String(), warn) || strings.Index(s.stderr.String(), warn) > strings.Index(s.stderr.String(), "and was ended") {
		t.Fatalf("stderr %q: want the warning %q before the end", s.stderr.String(), warn)
	}
	limitRecord(t, b, limitDuration, "warned")
	limitRecord(t, b, limitDuration, "ended")
	// The warning is in the recording too, as a drain's notice is.
	_, _, raw := h.recordingOf(t, store, func(r recorder.Session) bool { return strings.Contains(r.Command, "echo started") })
	if !strings.Contains(raw, `"m", "`+warn) {
		t.Fatalf("the recording has no marker with the warning %q:\n%s", warn, raw)
	}
}
