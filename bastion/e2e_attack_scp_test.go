package bastion

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// HOLE (high, invariant 1): scpDirection takes any program whose name ends
// in "/scp" (here the user's own script), and scpStream lets digits through
// unmasked in the fields it checks only for being digits: a T line's four
// times have no length limit, and a C line's size may have 18 digits. A
// program that speaks just enough scp sends a card number to the client in
// clear, and nothing is recorded (the command, and the transfer record,
// show nothing of it).
func TestAttackSCPDigitFieldsLeakPAN(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	for name, line := range map[string]string{
		"T line mtime": "T" + testPAN + " 0 0 0",
		"T line atime": "T0 0 " + testPAN + " 0",
		"C line size":  "C0644 " + testPAN + " x",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			prog := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"), "scp")
			writeScript(t, prog, "head -c1 >/dev/null\nprintf '%s\\n' '"+line+"'\nhead -c1 >/dev/null\n")
			client := h.dialGo(t, h.alice, "root@t1")
			sess, err := client.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			in, _ := sess.StdinPipe()
			out, _ := sess.StdoutPipe()
			if err := sess.Start(prog + " -f x"); err != nil {
				t.Fatal(err)
			}
			in.Write([]byte{0})
			buf := make([]byte, 0, 256)
			testenv.WaitFor(t, 20*time.Second, func() bool {
				var b [256]byte
				n, err := out.Read(b[:])
				buf = append(buf, b[:n]...)
				return err != nil || bytes.Contains(buf, []byte("\n"))
			})
			in.Close()
			t.Logf("client got %q", buf)
			assertNoPAN(t, "scp control line", buf)
		})
	}
}

// HOLE (medium, invariant 4: the record names the wrong path): scpStream
// names every downloaded file after the directory of the command's LAST
// argument. Real `scp -f` sends every file named on its command line, so
// `scp -f /secret/cards.txt /tmp/x/decoy` downloads /secret/cards.txt and
// the index says /tmp/x/cards.txt.
func TestAttackSCPDownloadRecordWrongPath(t *testing.T) {
	t.Parallel()
	h := env(t)
	secret, decoyDir := t.TempDir(), t.TempDir()
	src := filepath.Join(secret, "cards.txt")
	os.WriteFile(src, []byte("nothing to see\n"), 0o644)
	decoy := filepath.Join(decoyDir, "decoy.txt")
	os.WriteFile(decoy, []byte("decoy\n"), 0o644)
	client := h.dialGo(t, h.alice, "root@t1")
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	sess.Stdin = bytes.NewReader(make([]byte, 16)) // acknowledgements
	got, _ := sess.Output("scp -f " + src + " " + decoy)
	if !bytes.Contains(got, []byte("nothing to see")) {
		t.Fatalf("scp sent %q; want cards.txt's content", got)
	}
	var recs []recorder.Transfer
	testenv.WaitFor(t, 15*time.Second, func() bool {
		list, _ := h.store.List(t.Context(), recorder.Filter{})
		for _, s := range list {
			if s.Kind == "scp" && s.Status != recorder.StatusActive && strings.Contains(s.Command, decoy) {
				recs = s.Transfers
				return true
			}
		}
		return false
	})
	for _, r := range recs {
		if r.Path == src {
			return
		}
	}
	t.Fatalf("cards.txt (%s) was downloaded; the records name %+v", src, recs)
}

// HOLE (medium, invariant 4: the record names the wrong path): for an
// upload, scpStream always joins the C line's name to the command's
// target, but `scp -t FILE` writes to FILE itself when it is not a
// directory. Uploading over /some/dir/victim.conf is recorded as
// /some/dir/victim.conf/innocent.txt, a path that does not exist.
func TestAttackSCPUploadRecordWrongPath(t *testing.T) {
	t.Parallel()
	h := env(t)
	scp := testenv.Require(t, "scp")
	local := filepath.Join(t.TempDir(), "innocent.txt")
	os.WriteFile(local, []byte("replacement\n"), 0o644)
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim.conf")
	os.WriteFile(victim, []byte("original\n"), 0o644)
	r := testenv.Cmd(t, time.Minute, nil, scp, append(h.opts(h.alice), "-O", "-P", strconv.Itoa(h.port), local, "root@t1@127.0.0.1:"+victim)...)
	if r.ExitCode != 0 {
		t.Fatalf("scp: exit %d: %s", r.ExitCode, r.Stderr)
	}
	if got, _ := os.ReadFile(victim); string(got) != "replacement\n" {
		t.Fatalf("victim.conf holds %q", got)
	}
	recs := h.sealedTransfers(t, "scp", dir)
	for _, rec := range recs {
		if rec.Path == victim && rec.Op == "upload" {
			return
		}
	}
	t.Fatalf("%s was overwritten; the records say %+v", victim, recs)
}
