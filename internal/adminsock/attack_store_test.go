package adminsock_test

// Attack tests for the admin socket. The first part holds tests that FAIL
// on the code as it stands (ways through); the second, defences that held.

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// ---------------------------------------------------------------------
// Ways through (fail now).
// ---------------------------------------------------------------------

// TestAttackStoreIssuedByFromClient: HOLE (invariant 4, README: the issue
// is sealed with "the OS user who ran the command"). The register records
// whatever issued_by the client sends: the server, which knows who is on
// the other end of the socket (SO_PEERCRED), takes the client's word.
// Anyone who can reach the socket records a certificate as issued by
// "alice" (and ca sign itself trusts $SUDO_USER, which the caller sets).
// The server must record the peer's uid (and may add the client's claim).
func TestAttackStoreIssuedByFromClient(t *testing.T) {
	t.Parallel()
	s := serve(t)
	c := dial(t, s.dir)
	if _, err := c.IssueCert(t.Context(), recorder.IssuedCert{KeyID: "k", Principals: []string{"root"}, IssuedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.store.Issued(t.Context())
	if err != nil || len(list) != 1 {
		t.Fatalf("issued: %v %v", list, err)
	}
	me := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		me = u.Username
	}
	if !strings.Contains(list[0].IssuedBy, me) {
		t.Fatalf("certificate recorded as issued by %q; the process that asked over the socket runs as %s", list[0].IssuedBy, me)
	}
}

// TestAttackStorePruneIgnoresRetention: HOLE (README: prune "deletes
// recordings older than recording.retention_days"; PCI DSS 10.5.1 wants a
// year of audit history). Retention is the client's to compute: the socket
// prunes whatever IDs it is sent, so a session that ended a second ago is
// deleted, index entry and file, with a prune entry sealed by the bastion's
// key, and verify is clean afterwards. The server must apply its own
// retention (and the chain entry record the cutoff).
func TestAttackStorePruneIgnoresRetention(t *testing.T) {
	t.Parallel()
	s := serve(t)
	ctx := t.Context()
	if err := session(ctx, s.store, "01A-1"); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.dir)
	pruned, head, err := c.Prune(ctx, []string{"01A-1"})
	if len(pruned) != 0 || head != nil {
		t.Fatalf("the socket pruned %d sessions that ended a moment ago (head %v, err %v)", len(pruned), head, err)
	}
}

// TestAttackStorePlantedSocketOtherUser: HOLE (README: "mode 0600: the data
// directory's owner only"; "A socket that accepts is a running server").
// Nothing checks who serves the socket. On a data directory with loose
// permissions (here 0777, as an install script might leave it; neither
// serve nor the CLI checks), an unprivileged local user (uid 65534) plants
// DATA_DIR/admin.sock with a server of their own. Then the admin CLI, run
// as root, talks to it (sessions, verify, ca sign all believe it), and
// `postern serve` refuses to start: "data directory in use". Dial must
// refuse a server whose peer uid is not the data directory's owner (and
// serve should refuse a data directory others can write).
func TestAttackStorePlantedSocketOtherUser(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t, "running the attacker as another uid")
	dir := looseDir(t)
	fake := startAs(t, 65534, "serve-fake", dir)
	defer fake.stop()
	st, err := os.Stat(adminsock.Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 65534 {
		t.Fatalf("planted socket owned by %d", uid)
	}
	c, err := adminsock.Dial(t.Context(), dir)
	if err == nil {
		list, lerr := c.List(t.Context(), recorder.Filter{})
		c.Close()
		t.Errorf("Dial as root accepted a socket served by uid 65534 in the data directory of uid 0: List = %v, %v", list, lerr)
	}
	if _, err := adminsock.Listen(dir); errors.Is(err, adminsock.ErrInUse) {
		t.Errorf("a socket planted by uid 65534 keeps the bastion from starting: %v", err)
	}
}

// TestAttackStoreTrickledAnswerHangsClient: HOLE (commit "a server that
// accepts but never answers cannot hang a command"). Only the wait for the
// headers is bounded (2 minutes). A server that sends its headers and then
// one byte of an answer that never ends (a dying server, or one planted on
// the socket) hangs `postern sessions`, `verify` or `ca sign` for ever, and
// an answer is read without any limit on its size. Calls other than Open
// need a deadline and a size cap.
func TestAttackStoreTrickledAnswerHangsClient(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := net.Listen("unix", adminsock.Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("["))
		w.(http.Flusher).Flush()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range 3000 { // at most 5 minutes
			select {
			case <-stop:
				return
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})}
	go srv.Serve(l)
	defer srv.Close()
	c := dial(t, dir)
	done := make(chan error, 1)
	go func() {
		_, err := c.List(context.Background(), recorder.Filter{})
		done <- err
	}()
	limit := 2*time.Minute + 30*time.Second // what the header wait allows, and then some
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("List returned no error from a server that never finished its answer")
		}
	case <-time.After(limit):
		t.Fatalf("List still waiting after %s on an answer that trickles in one byte at a time", limit)
	}
}

// ---------------------------------------------------------------------
// Helpers: the attacker as another uid, a real process (this test binary).
// ---------------------------------------------------------------------

// looseDir is a data directory anyone may write, reachable by anyone.
func looseDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "postern-loose-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	done  chan struct{}
}

// line reads the helper's next line of output.
func (p *helperProc) line() string {
	s, _ := p.out.ReadString('\n')
	return strings.TrimSpace(s)
}

func (p *helperProc) stop() {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// startAs runs this test binary as uid, in helper mode what. For
// "serve-fake" it waits for the helper to say it listens.
func startAs(t *testing.T, uid int, what, dir string) *helperProc {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a directory only root can read: copy it.
	bindir, err := os.MkdirTemp("", "postern-helper-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bindir) })
	os.Chmod(bindir, 0o755)
	bin := filepath.Join(bindir, "helper")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestAttackStoreHelper$")
	cmd.Env = append(os.Environ(), "POSTERN_ATTACK_HELPER="+what, "POSTERN_ATTACK_DIR="+dir, "HOME=/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	cmd.Dir = "/"
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &helperProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	if what == "serve-fake" {
		if l := p.line(); l != "ready" {
			p.stop()
			t.Fatalf("helper as uid %d: %q", uid, l)
		}
	}
	return p
}

// TestAttackStoreHelper is the attacker's process when run by startAs;
// otherwise it does nothing.
func TestAttackStoreHelper(t *testing.T) {
	what, dir := os.Getenv("POSTERN_ATTACK_HELPER"), os.Getenv("POSTERN_ATTACK_DIR")
	switch what {
	case "":
		t.Skip("helper process only")
	case "serve-fake":
		// A store of the attacker's own, served on the victim's socket
		// path.
		own, err := os.MkdirTemp(dir, "mine-")
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		st, err := recorder.OpenStore(own, recorder.Options{Key: key})
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		defer st.Close()
		l, err := adminsock.Listen(dir)
		if err != nil {
			fmt.Println("error:", err)
			return
		}
		// Make it reachable by anyone: the attacker wants to be
		// called.
		os.Chmod(adminsock.Path(dir), 0o777)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- adminsock.Serve(ctx, l, st) }()
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		cancel()
		<-done
	case "connect":
		conn, err := net.Dial("unix", adminsock.Path(dir))
		if err == nil {
			conn.Close()
			fmt.Println("connected")
		} else {
			fmt.Println(err)
		}
		io.Copy(io.Discard, os.Stdin)
	}
}

// TestPruneJudgedBySeal: the server judges a prune asked through the
// socket by the time of each session's seal in the chain, not by the
// index's own End: an entry re-sealed with an End two years back (what an
// insider with the index could write) is kept, since its seal is recent.
func TestPruneJudgedBySeal(t *testing.T) {
	t.Parallel()
	s := serve(t)
	ctx := t.Context()
	if err := session(ctx, s.store, "01B-1"); err != nil {
		t.Fatal(err)
	}
	rec, err := s.store.Get(ctx, "01B-1")
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().AddDate(-2, 0, 0)
	rec.Start, rec.End = old.Add(-time.Minute), &old
	if _, err := s.store.Finish(ctx, rec); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s.dir)
	pruned, head, err := c.Prune(ctx, []string{"01B-1"})
	if len(pruned) != 0 || head != nil {
		t.Fatalf("the socket pruned a session sealed a moment ago whose index says it ended in %d (pruned %d, head %v, err %v)", old.Year(), len(pruned), head, err)
	}
	if _, err := s.store.Get(ctx, "01B-1"); err != nil {
		t.Fatalf("the session is gone: %v", err)
	}
}
