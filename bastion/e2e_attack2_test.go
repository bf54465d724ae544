package bastion

// Second-round attack tests for the transfer modes (issue 11, round two:
// rsync's validator and wiring, the round-one fixes, denial of service,
// stderr). Each test names the hole it demonstrates in a HOLE comment. They
// are written to FAIL until the product code is fixed: a failure here is a
// way through, not a broken test.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/mask"
)

// rsyncRSH is the -e command that makes the real rsync client reach the
// target through the bastion with key.
func (h *harness) rsyncRSH(key string) string {
	return strings.Join(append([]string{h.sshBin, "-p", strconv.Itoa(h.port)}, h.opts(key)...), " ")
}

// HOLE (critical, invariant 1): rsync's sender writes a file's literal data
// as tokens of at most 32 KiB, each preceded by its 4-byte length
// (token.c simple_send_token). The bastion scans the MSG_DATA payload as one
// byte stream, so a card number that straddles a 32 KiB boundary of the
// file is cut in two by "\x00\x80\x00\x00" and is never seen; the client's
// rsync strips the token headers and writes the number whole. Real rsync,
// real sshd, an ordinary file, default policy (block).
func TestAttack2RsyncTokenBoundarySplitsPAN(t *testing.T) {
	t.Parallel()
	h := env(t)
	rsync := testenv.Require(t, "rsync")
	dir := t.TempDir()
	var content []byte
	for len(content) < 32768-8-6 {
		content = append(content, "filler line of an ordinary report....\n"...)
	}
	content = content[:32768-8-6]
	content = append(content, "card: "...)
	if len(content) != 32768-8 {
		t.Fatal("layout")
	}
	content = append(content, testPAN+" end\n"...) // digits 8 before and 8 after 32768
	for len(content) < 70000 {
		content = append(content, "more of the report\n"...)
	}
	src := filepath.Join(dir, "report.txt")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "got.txt")
	r := testenv.Cmd(t, time.Minute, nil, rsync, "-e", h.rsyncRSH(h.alice), "root@t1@127.0.0.1:"+src, dst)
	got, _ := os.ReadFile(dst)
	noPAN(t, "rsync download (stdout, stderr)", r.Stdout, r.Stderr)
	noPAN(t, "file downloaded by rsync under file_pans: block (exit "+strconv.Itoa(r.ExitCode)+")", got)
}

// noPAN is assertNoPAN that shows only the bytes around the number.
func noPAN(t *testing.T, what string, outs ...[]byte) {
	t.Helper()
	for _, o := range outs {
		for _, p := range []string{testPAN, "4111 1111 1111 1111"} {
			if i := bytes.Index(o, []byte(p)); i >= 0 {
				t.Fatalf("%s: a card number reached the user: ...%q...", what, o[max(0, i-40):min(len(o), i+len(p)+40)])
			}
		}
	}
}

// HOLE (critical, invariant 1): on an upload the target's rsync (the
// receiver) sends the client the block checksums of its basis file, and
// the client chooses the block size (-B, passed as "-B1" on the server's
// command line, which the bastion does not look at). With one-byte blocks
// the rolling checksum of each block is the byte itself (sum1 = b | b<<16),
// so the client learns the target file byte by byte; stock rsync prints the
// sums with --debug=deltasum3. With --fuzzy and a new name the target file
// is not even changed. The bastion scans the receiver's stream, but there
// the digits are interleaved with zeros and strong checksums: nothing is
// found, under the default policy (block).
func TestAttack2RsyncUploadChecksumsLeakTargetFile(t *testing.T) {
	t.Parallel()
	h := env(t)
	rsync := testenv.Require(t, "rsync")
	remote := t.TempDir()
	secret := []byte("card " + testPAN + " end\n")
	if err := os.WriteFile(filepath.Join(remote, "cards.txt"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	src := filepath.Join(local, "cards.tx_") // a new name: --fuzzy picks cards.txt as the basis
	if err := os.WriteFile(src, bytes.Repeat([]byte("z"), len(secret)), 0o644); err != nil {
		t.Fatal(err)
	}
	r := testenv.Cmd(t, time.Minute, nil, rsync, "-e", h.rsyncRSH(h.alice), "--fuzzy", "--no-whole-file", "-B1", "--debug=deltasum3",
		src, "root@t1@127.0.0.1:"+remote+"/")
	// Fixed by policy: rsync's content cannot be scanned whole, so no
	// rule grants it unless it names it (README, File transfers).
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "rsync is not allowed") {
		t.Fatalf("rsync under the default policy: exit %d: %s", r.ExitCode, r.Stderr)
	}
}

// HOLE (high, invariant 1): rsync sends file names in its file list with
// the prefix they share with the previous name left out (flist.c,
// XMIT_SAME_NAME). The bastion scans the file list as data, so a card
// number that is a file name after a similar name ("4111111111111110",
// which fails Luhn, then "4111111111111111") crosses as a single digit
// "1": the client's rsync prints it (-v) and creates a file of that name.
// sftp masks the same names in NAME replies.
func TestAttack2RsyncFileListNamePrefixLeaksPAN(t *testing.T) {
	t.Parallel()
	h := env(t)
	rsync := testenv.Require(t, "rsync")
	remote := t.TempDir()
	for _, n := range []string{"4111111111111110", testPAN} {
		if err := os.WriteFile(filepath.Join(remote, n), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := t.TempDir()
	r := testenv.Cmd(t, time.Minute, nil, rsync, "-e", h.rsyncRSH(h.alice), "-r", "-v", "root@t1@127.0.0.1:"+remote+"/", dst+"/")
	var names []byte
	entries, _ := os.ReadDir(dst)
	for _, e := range entries {
		names = append(names, e.Name()+"\n"...)
	}
	noPAN(t, fmt.Sprintf("rsync -v output (exit %d)", r.ExitCode), r.Stdout, r.Stderr)
	noPAN(t, "names of the files rsync created", names)
}

// HOLE (high, invariant 1): rsync's option parser (popt) takes options
// anywhere on the server's command line, also after "." and the paths;
// rsyncOpts.parse stops at ".", so "-z" there is not seen, and compressed
// rsync passes under file_pans: block. The client is stock rsync with -z;
// its -e wrapper (the user's own machine) only moves the compression
// options behind the path. The card number crosses deflated and the scan
// sees nothing. (TestRsyncCommand asserts "-z" after the paths is a path:
// rsync 3.x does not agree.)
func TestAttack2RsyncCompressionAfterPathsNotSeen(t *testing.T) {
	t.Parallel()
	h := env(t)
	rsync := testenv.Require(t, "rsync")
	dir := t.TempDir()
	src := filepath.Join(dir, "cards.txt")
	if err := os.WriteFile(src, []byte("card "+testPAN+" end\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(dir, "rsh")
	writeScript(t, wrapper, `# rsync runs: wrapper [-l user] host rsync --server ...
pre=""
while [ "$1" != rsync ]; do pre="$pre $1"; shift; done
cmd=$(echo "$*" | sed -e 's/^\(rsync --server.* -[a-zA-Z]*\)z\([a-zA-Z]*e\.\)/\1\2/' -e 's/ --old-compress//')
echo "$cmd -z --old-compress" > `+filepath.Join(dir, "sent")+`
exec `+h.rsyncRSH(h.alice)+` $pre "$cmd -z --old-compress"
`)
	dst := filepath.Join(t.TempDir(), "got.txt")
	r := testenv.Cmd(t, time.Minute, nil, rsync, "-e", wrapper, "-z", "--zc=zlib", "root@t1@127.0.0.1:"+src, dst)
	got, _ := os.ReadFile(dst)
	if sent, _ := os.ReadFile(filepath.Join(dir, "sent")); !bytes.HasSuffix(sent, []byte(" -z --old-compress\n")) {
		t.Fatalf("the wrapper did not run (sent %q): exit %d, stderr %q", sent, r.ExitCode, r.Stderr)
	}
	noPAN(t, "rsync output", r.Stdout, r.Stderr)
	noPAN(t, fmt.Sprintf("file downloaded by compressed rsync under file_pans: block (exit %d, stderr %q)", r.ExitCode, r.Stderr), got)
}

// rsyncTestTransfer is an rsync download channel's transfer under the
// default policy, past the handshake (the test hellos of rsync_test.go).
func rsyncTestTransfer(t *testing.T, show func([]byte)) *rsyncTransfer {
	t.Helper()
	env := &transferEnv{kind: "rsync", masking: true, mode: mask.ModeFirst6Last4, show: show}
	x, err := newRsyncTransfer(env, rsyncTestCmd)
	if err != nil {
		t.Fatal(err)
	}
	tr := x.(*rsyncTransfer)
	if _, err := tr.fromClient(rsyncTestClientHello[:4]); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.fromServer(rsyncTestServerHello); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.fromClient(rsyncTestClientHello[4:]); err != nil {
		t.Fatal(err)
	}
	return tr
}

// HOLE (medium, invariant 1): rsync text messages are masked one frame at a
// time. A message split over two MSG_INFO frames (rsync's client prints
// each payload as it comes, so the user's terminal shows them as one
// line) carries a card number in two halves, each unmasked; the recording
// gets the same halves. The terminal path, by contrast, masks output
// across writes.
func TestAttack2RsyncTextSplitAcrossFramesUnmasked(t *testing.T) {
	t.Parallel()
	var shown []byte
	tr := rsyncTestTransfer(t, func(p []byte) { shown = append(shown, p...) })
	var printed []byte
	for _, part := range []string{"file: card 41111111", "11111111 end\n"} {
		out, err := tr.fromServer(rsyncFrame(rsyncMsgInfo, part))
		if err != nil {
			t.Fatal(err)
		}
		printed = append(printed, out[4:]...) // what rsync prints: the payload
	}
	noPAN(t, "rsync MSG_INFO text as the client prints it", printed)
}

// HOLE (high, invariant 1): the same as TestAttack2RsyncCompressionAfterPathsNotSeen
// at the parser: rsync (popt) reads options after "." and after the paths,
// and a long option whose value is the next word ("--partial-dir .")
// makes the bastion stop early; compression is not seen and a compressed
// download is allowed under file_pans: block.
func TestAttack2RsyncCompressionOptionHidden(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{
		"rsync --server --sender -e.LsfxCIvu . /src/cards.txt -z",
		"rsync --server --sender -e.LsfxCIvu . /src/cards.txt --old-compress",
		"rsync --server --sender -e.LsfxCIvu --partial-dir . -z . /src/cards.txt",
	} {
		_, err := newRsyncTransfer(&transferEnv{kind: "rsync", masking: true}, cmd)
		if err != errRsyncCompressed {
			t.Errorf("%q: %v; want it refused as compressed", cmd, err)
		}
	}
}

// HOLE (low, invariant 4): the record's direction comes from " --sender "
// with spaces, while the command is split on spaces and tabs (as the
// target's shell does): with tabs, a download is recorded as an upload,
// and its bytes are counted from the wrong side.
func TestAttack2RsyncDirectionSpoofedWithTabs(t *testing.T) {
	t.Parallel()
	cmd := "rsync\t--server\t--sender\t-e.LsfxCIvu\t.\t/src/cards.txt"
	x, err := newRsyncTransfer(&transferEnv{kind: "rsync"}, cmd)
	if err != nil {
		t.Fatal(err)
	}
	tr := x.(*rsyncTransfer)
	if !tr.stream.opts.sender {
		t.Fatal("the validator does not see --sender: the test proves nothing")
	}
	if tr.rec.Op != "download" {
		t.Fatalf("a download (--sender) is recorded as %q, path %q", tr.rec.Op, tr.rec.Path)
	}
}

// HOLE (medium, denial of service): every sftp path read gets a fileScan
// that keeps its scratch buffer (f.buf: the previous tail and the whole
// last chunk, up to 256 KiB) after its handle closes, and a.scans holds up
// to 4096 of them: one channel that reads one big chunk from each of 4096
// paths (symlinks, or /proc/self/root/... spellings of one file) pins
// about 1 GiB of bastion memory until it ends, and a connection may open
// many channels. Measured here with 64 paths.
func TestAttack2SFTPScansRetainChunkBuffers(t *testing.T) {
	t.Parallel()
	a := newSFTPStream(&transferEnv{masking: true})
	sftpSetup(t, a, "/f")
	chunk := string(bytes.Repeat([]byte("a"), sftpMaxPacket-1024))
	id := uint32(10)
	const files = 64
	for i := range files {
		p := "/proc/self/root" + strings.Repeat("/proc/self/root", i) + "/srv/big.bin"
		h := "x" + strconv.Itoa(i)
		steps := [][2][]byte{
			{sftpPacket(fxpOpen, id, p, uint32(1), uint32(0)), sftpPacket(fxpHandle, id, h)},
			{sftpPacket(fxpRead, id+1, h, uint64(0), uint32(len(chunk))), sftpPacket(fxpData, id+1, chunk)},
			{sftpPacket(fxpClose, id+2, h), sftpPacket(fxpStatus, id+2, uint32(0), "", "")},
		}
		for _, s := range steps {
			if _, err := a.fromClient(s[0]); err != nil {
				t.Fatal(err)
			}
			if _, err := a.fromServer(s[1]); err != nil {
				t.Fatal(err)
			}
		}
		id += 3
	}
	a.mu.Lock()
	held := 0
	for _, sc := range a.scans {
		held += cap(sc.tail)
	}
	n := len(a.scans)
	a.mu.Unlock()
	runtime.KeepAlive(a)
	if held > 4<<20 {
		t.Fatalf("%d closed files keep %d KiB of scan buffers (%d scans); at the 4096-scan cap that is %d MiB per channel",
			n, held>>10, n, int64(held)/int64(n)*sftpMaxPending>>20)
	}
}

// Held (regression guard for the round-one fixes): OpenSSH sftp's get
// twice, reget, get -r, and two files fetched by one batch with many
// requests in flight all still work under the forward-only rule; and what
// a fake rsync writes on stderr is masked for the user.
func TestAttack2HeldLegitSFTPAndStderr(t *testing.T) {
	t.Parallel()
	h := env(t)
	sftp := testenv.Require(t, "sftp")
	dir := t.TempDir()
	var content []byte
	for i := range 200000 {
		content = fmt.Appendf(content, "line %d\n", i)
	}
	os.MkdirAll(filepath.Join(dir, "tree", "sub"), 0o755)
	for _, n := range []string{"a.txt", "tree/b.txt", "tree/sub/c.txt"} {
		os.WriteFile(filepath.Join(dir, n), content, 0o644)
	}
	out := t.TempDir()
	os.WriteFile(filepath.Join(out, "r"), content[:100000], 0o644) // a partial copy for reget
	batch := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(batch, []byte(fmt.Sprintf("get %[1]s/a.txt %[2]s/1\nget %[1]s/a.txt %[2]s/2\nreget %[1]s/a.txt %[2]s/r\nget -r %[1]s/tree %[2]s/tree\n", dir, out)), 0o644)
	r := testenv.Cmd(t, 2*time.Minute, nil, sftp, append(h.opts(h.alice), "-P", strconv.Itoa(h.port), "-b", batch, "root@t1@127.0.0.1")...)
	if r.ExitCode != 0 {
		t.Fatalf("sftp: exit %d: %s", r.ExitCode, r.Stderr)
	}
	for _, n := range []string{"1", "2", "r", "tree/b.txt", "tree/sub/c.txt"} {
		if got, _ := os.ReadFile(filepath.Join(out, n)); !bytes.Equal(got, content) {
			t.Errorf("%s: %d bytes, want %d", n, len(got), len(content))
		}
	}
	bin := filepath.Join(dir, "bin", "rsync")
	writeScript(t, bin, "echo 'card "+testPAN+"' >&2\nprintf 'card 4111 1111 ' >&2\nprintf '1111 1111\\n' >&2\n")
	r = h.ssh(t, h.rsyncer, "root@t1", nil, bin+" --server --sender -e.LsfxCIvu . /x")
	noPAN(t, "a fake rsync's stderr", r.Stdout, r.Stderr)
	if !strings.Contains(string(r.Stderr), "411111******1111") {
		t.Fatalf("stderr %q: want the number masked", r.Stderr)
	}
}

// Held (denial of service): transfer channels stalled mid-stream (rsync
// and scp sending a big file the client does not read, sftp with reads in
// flight) leave no goroutine behind when the client's connection drops.
// Not parallel, so the count is this test's alone.
func TestAttack2HeldNoGoroutineLeakOnAbruptClose(t *testing.T) {
	h := env(t)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.bin")
	os.WriteFile(big, bytes.Repeat([]byte("abcdefgh\n"), 4<<20), 0o644)
	settle := func() int {
		runtime.GC()
		return runtime.NumGoroutine()
	}
	// Warm up the shared harness (pools, the sshd's first connection).
	warm := h.dialGo(t, h.alice, "root@t1")
	warm.Close()
	base := settle()
	for range 3 {
		client := h.dialGo(t, h.alice, "root@t1")
		for _, cmd := range []string{"rsync --server --sender -e.LsfxCIvu . " + big, "scp -f " + big} {
			s, err := client.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			in, _ := s.StdinPipe()
			if err := s.Start(cmd); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(cmd, "rsync") {
				in.Write([]byte{32, 0, 0, 0}) // version; then never read
			} else {
				in.Write([]byte{0})
			}
		}
		s, _ := client.NewSession()
		in, _ := s.StdinPipe()
		s.RequestSubsystem("sftp")
		in.Write(sftpPacket(fxpInit, uint32(3)))
		in.Write(sftpPacket(fxpOpen, uint32(1), big, uint32(1), uint32(0)))
		testenv.WaitFor(t, 10*time.Second, func() bool { return settle() > base+20 })
		client.Close()
	}
	var now int
	testenv.WaitFor(t, 30*time.Second, func() bool { now = settle(); return now <= base+2 })
	t.Logf("goroutines: %d before, %d after", base, now)
}
