package main

// Attack tests for the admin commands over the store refactor (admin
// socket, openData, ca sign's register). The first part holds tests that
// FAIL on the code as it stands (ways through); the second, defences that
// held. Every command runs as a real process with a deadline.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// ---------------------------------------------------------------------
// Ways through (fail now).
// ---------------------------------------------------------------------

// TestAttackStoreVerifyTrustsPlantedSocket: HOLE (README: `verify
// --audit-key FILE --anchor SEQ:SHA256` "covers every change up to it").
// Verify reads the recordings it checks from whatever answers on
// DATA_DIR/admin.sock, and nothing checks that it is the server that owns
// the index. An insider who can write the data directory (no audit key
// needed) keeps a copy of it, edits an old, anchored recording, and puts a
// socket of their own at admin.sock serving the untouched copy: `postern
// verify` with the auditor's pinned key and anchor says "0 problems", while
// the recording on disk is not what was sealed. Verify must read the
// recordings from the data directory itself, or make sure the peer is the
// process holding the index (SO_PEERCRED pid holds postern.db's lock).
func TestAttackStoreVerifyTrustsPlantedSocket(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, "data")
	sealedDir(t, data, "the evidence\r\n")
	pinned := filepath.Join(work, "audit.pub")
	r := cli(t, work, nil, "ca", "show", "--audit", "--data-dir", data)
	os.WriteFile(pinned, r.Stdout, 0o644)
	r = cli(t, work, nil, "verify", "--data-dir", data, "--audit-key", pinned)
	m := headLine.FindSubmatch(r.Stdout)
	if r.ExitCode != 0 || m == nil {
		t.Fatalf("clean verify: %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	anchor := string(m[1])

	// The insider's copy, then the edit.
	pristine := filepath.Join(work, "copy")
	if out, err := exec.Command("cp", "-a", data, pristine).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	rec := filepath.Join(data, "recordings", "2026", "11", "25", "01B-1.cast")
	body, _ := os.ReadFile(rec)
	os.WriteFile(rec, bytes.Replace(body, []byte("second"), []byte("SECOND"), 1), 0o600)
	if r := cli(t, work, nil, "verify", "--data-dir", data, "--audit-key", pinned, "--anchor", anchor); r.ExitCode != 1 || !strings.Contains(string(r.Stdout), "modified") {
		t.Fatalf("direct verify of the edited recording: %d %s", r.ExitCode, r.Stdout)
	}

	// The planted server: the real adminsock code over the copy.
	st, err := recorder.OpenStore(pristine, recorder.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := adminsock.Listen(data)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- adminsock.Serve(ctx, l, st) }()
	defer func() { cancel(); <-done }()

	r = cli(t, work, nil, "verify", "--data-dir", data, "--audit-key", pinned, "--anchor", anchor)
	if r.ExitCode != 1 || !strings.Contains(string(r.Stdout), "modified") {
		t.Fatalf("verify with a planted admin socket, recording 01B-1 edited on disk: exit %d\n%s", r.ExitCode, r.Stdout)
	}
}

// TestAttackStoreCertIssueNotAnchored: HOLE (README: anchors "come from the
// logs: each recording_end and recording_sealed line carries the new
// chain_head"; invariant 4). A certificate issue appends to the audit
// chain, but no log line carries the head it makes: the cert_issued record
// goes to the stderr of whoever ran ca sign (and, with a server, the
// server's log has nothing at all). So the newest entries of the chain, the
// certificates issued since the last session ended, are anchored nowhere:
// the operator who issued themselves a certificate can cut the entry and
// the register's record, and every anchor from the shipped logs still
// holds. The cert_issued record must carry the chain head after the
// issue (and the server log it when the issue goes through the socket).
func TestAttackStoreCertIssueNotAnchored(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, demoDir)
	sealedDir(t, data, "x\r\n")
	_, rec := caSign(t, work, "mallory")
	r := cli(t, work, nil, "verify", "--data-dir", data)
	m := headLine.FindSubmatch(r.Stdout)
	if r.ExitCode != 0 || m == nil {
		t.Fatalf("verify: %d %s", r.ExitCode, r.Stdout)
	}
	if rec["chain_head"] != string(m[1]) {
		t.Fatalf("cert_issued record %v does not carry the chain head the issue made (%s)", rec, m[1])
	}
}

// TestAttackStoreReaderBlocksServeStart: HOLE (README: admin commands
// "open the data directory themselves" when no server runs; invariant 6).
// A command in direct mode keeps the index open (a shared bbolt lock) for
// as long as it runs: `postern play ID` for the length of the replay,
// `verify` while it digests every recording. A bastion started (or
// restarted by systemd) meanwhile waits 2 seconds for the lock and exits
// "in use by another process": an auditor watching a replay keeps the
// bastion down. A reader must copy what it needs from the index and let
// go of it before the long part.
func TestAttackStoreReaderBlocksServeStart(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, demoDir)
	auth, err := certs.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	store := openTestStore(data, auth.AuditKey)
	// A recording with an hour's pause in it.
	file := filepath.Join(data, "recordings", "2026", "11", "25", "01L-1.cast")
	os.MkdirAll(filepath.Dir(file), 0o700)
	os.WriteFile(file, []byte(`{"version":2,"width":80,"height":24}`+"\n"+`[0.0,"o","start\r\n"]`+"\n"+`[3600.0,"o","end\r\n"]`+"\n"), 0o600)
	sealSession(t, store, recorder.Session{ID: "01L-1", Path: filepath.Join("recordings", "2026", "11", "25", "01L-1.cast")}, file, "", time.Now())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	play := exec.CommandContext(ctx, binary(t), "play", "01L-1")
	play.Dir = work
	stdin, _ := play.StdinPipe()
	stdout, _ := play.StdoutPipe()
	if err := play.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); play.Process.Kill(); play.Wait() }()
	// The replay has begun once its first frame arrives.
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("play: %v", err)
	}
	demo := exec.CommandContext(ctx, binary(t), "demo", "--listen", "127.0.0.1:0")
	demo.Dir = work
	var logs bytes.Buffer
	demo.Stderr = &logs
	dout, _ := demo.StdoutPipe()
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { demo.Process.Kill(); demo.Wait() }()
	sc := bufio.NewScanner(dout)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "ssh ") {
			return // the bastion started
		}
	}
	demo.Wait()
	t.Fatalf("the bastion did not start while `postern play` replays a recording: %s", logs.String())
}

// TestAttackStoreCASignRecordRawControls: HOLE (invariant 7; README: text
// "from a certificate or the command line is shown with ... control
// characters escaped"). The public key a user hands the admin to sign
// carries a comment of the user's choosing, which ca sign puts in the key
// ID. The cert_issued record ca sign writes to the admin's terminal is
// slog JSON, which escapes C0 controls only: a C1 CSI (U+009B), DEL and a
// right-to-left override (U+202E) from the comment reach the terminal as
// they are, so the user's key can act on the admin's terminal and make the
// audit record read differently from what it holds ("gnp.exe" shown as
// "exe.png"). `ca issued` escapes the same text.
func TestAttackStoreCASignRecordRawControls(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, demoDir)
	if _, err := certs.Open(data); err != nil {
		t.Fatal(err)
	}
	_, key := testenv.NewKey(t, work, "user")
	line, _ := os.ReadFile(key + ".pub")
	fields := strings.Fields(string(line))
	hostile := fields[0] + " " + fields[1] + " x\u009b31mEVIL\u202egnp.exe\x7f\n"
	os.WriteFile(key+".pub", []byte(hostile), 0o644)
	r := cli(t, work, nil, "ca", "sign", "--principal", "bob", "--ttl", "1h", "--out", "-", key+".pub")
	if r.ExitCode != 0 {
		t.Fatalf("ca sign: %d %s", r.ExitCode, r.Stderr)
	}
	for _, bad := range []string{"\u009b", "\u202e", "\x7f"} {
		if strings.Contains(string(r.Stderr), bad) {
			t.Errorf("ca sign's audit record on the admin's terminal holds %q from the key's comment: %q", bad, r.Stderr)
		}
	}
	if out := cli(t, work, nil, "ca", "issued").Stdout; bytes.ContainsAny(out, "\u009b\u202e\x7f") {
		t.Errorf("ca issued prints raw controls: %q", out)
	}
}

// ---------------------------------------------------------------------
// Defences that held (pass now; keep as regression tests).
// ---------------------------------------------------------------------

// TestAttackStoreConcurrentCASignDistinct: ca sign run many times at once,
// through a server's socket and then directly, never hands out a serial
// twice; the register and the chain agree afterwards.
func TestAttackStoreConcurrentCASignDistinct(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, demoDir)
	auth, err := certs.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	_, key := testenv.NewKey(t, work, "user")
	sign := func(n int) (serials []uint64, failures []string) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				r := cli(t, work, nil, "ca", "sign", "--principal", "bob", "--ttl", "1h", "--out", "-", key+".pub")
				mu.Lock()
				defer mu.Unlock()
				if r.ExitCode != 0 {
					failures = append(failures, string(r.Stderr))
					return
				}
				serials = append(serials, parseCert(t, r.Stdout).Serial)
			})
		}
		wg.Wait()
		return serials, failures
	}
	seen := map[uint64]bool{}
	check := func(what string, serials []uint64, failures []string) {
		for _, s := range serials {
			if seen[s] {
				t.Errorf("%s: serial %d handed out twice", what, s)
			}
			seen[s] = true
		}
		if len(failures) > 0 {
			t.Logf("%s: %d of the concurrent ca sign runs failed (no serial taken): %s", what, len(failures), failures[0])
		}
	}
	// Through a server.
	st, err := recorder.OpenStore(data, recorder.Options{Key: auth.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	l, err := adminsock.Listen(data)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- adminsock.Serve(ctx, l, st) }()
	serials, failures := sign(6)
	cancel()
	<-done
	st.Close()
	if len(failures) > 0 {
		t.Fatalf("through the socket, ca sign failed: %v", failures)
	}
	check("through the socket", serials, failures)
	// Directly.
	serials, failures = sign(6)
	check("directly", serials, failures)
	r := cli(t, work, nil, "ca", "issued", "--json")
	var list []recorder.IssuedCert
	if err := json.Unmarshal(r.Stdout, &list); err != nil || len(list) != len(seen) {
		t.Fatalf("ca issued: %d records (%v), %d serials handed out", len(list), err, len(seen))
	}
	if r := cli(t, work, nil, "verify"); r.ExitCode != 0 {
		t.Fatalf("verify after concurrent ca sign: %s", r.Stdout)
	}
}

// TestAttackStoreHostileServerOutputEscaped: what a server on the socket
// says (an error message, a recording name) reaches the auditor's terminal
// escaped: no ESC, OSC 52 or BEL gets through from a planted or broken
// server, and a bogus success answer to verify's calls still leaves
// verify checking with the key it was given.
func TestAttackStoreHostileServerOutputEscaped(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	data := filepath.Join(work, demoDir)
	if _, err := certs.Open(data); err != nil {
		t.Fatal(err)
	}
	evil := "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x1b]0;owned\x07"
	h := http.NewServeMux()
	h.HandleFunc("POST /v1/files", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode([]string{"recordings/" + evil + ".cast"})
	})
	h.HandleFunc("POST /v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(recorder.Snapshot{})
	})
	h.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"kind": "error", "message": "boom " + evil})
	})
	l, err := listenUnix(adminsock.Path(data))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	defer srv.Close()
	for _, args := range [][]string{{"sessions"}, {"verify"}, {"ca", "issued"}, {"play", "01A-1"}} {
		r := cli(t, work, nil, args...)
		if bytes.ContainsAny(r.Stdout, "\x1b\x07") || bytes.ContainsAny(r.Stderr, "\x1b\x07") {
			t.Errorf("postern %s with a hostile server printed raw controls: %q %q", strings.Join(args, " "), r.Stdout, r.Stderr)
		}
		if r.ExitCode == 0 {
			t.Errorf("postern %s with a hostile server: exit 0: %q", strings.Join(args, " "), r.Stdout)
		}
	}
}

// ---------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------

// cli runs the postern binary in dir with a deadline, so that a command
// that hangs fails the test instead of stalling it.
func cli(t *testing.T, dir string, env []string, args ...string) testenv.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, binary(t), args...)
	c.Dir = dir
	c.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	c.Stdin = strings.NewReader("")
	err := c.Run()
	if ctx.Err() != nil {
		t.Fatalf("postern %s: still running after 90s", strings.Join(args, " "))
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return testenv.Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: code}
}

func listenUnix(path string) (net.Listener, error) { return net.Listen("unix", path) }
