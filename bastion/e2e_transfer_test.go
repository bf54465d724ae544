package bastion

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// assertNoPAN fails if any of the outputs holds the test PAN in clear.
func assertNoPAN(t *testing.T, what string, outs ...[]byte) {
	t.Helper()
	for _, o := range outs {
		if bytes.Contains(o, []byte(testPAN)) || bytes.Contains(o, []byte("4111 1111 1111 1111")) {
			t.Fatalf("%s: a card number reached the user:\n%s", what, o)
		}
	}
}

// A program that merely claims to be the remote half of scp or rsync (a
// user's own script with that name) gets neither a shell nor a card number
// through: its output breaks the protocol, so the channel closes first.
func TestFakeTransferProgramsGetNoShell(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	shell := "echo card " + testPAN + "\nexec bash -i 2>&1\n"
	for _, name := range []string{"scp", "rsync"} {
		writeScript(t, filepath.Join(dir, "bin", name), shell)
	}
	// A fake scp that speaks the protocol well enough to send a file
	// holding a card number: a real download, blocked by the scan.
	writeScript(t, filepath.Join(dir, "speaks", "scp"), "printf 'C0644 22 cards.txt\\n'\nhead -c1 >/dev/null\nprintf 'card "+testPAN+"\\n\\0'\nexec bash -i 2>&1\n")
	const keys = "echo SHELL-$((6*7))\nexit 0\n"
	for _, tc := range []struct{ name, key, cmd, stdin, why string }{
		{"scp -f", h.alice, dir + "/bin/scp -f x", "\x00" + keys, "broke its protocol"},
		{"scp -t", h.alice, dir + "/bin/scp -t x", keys, "broke its protocol"},
		// rsync is granted by a rule that names it; the default refuses it.
		{"rsync", h.rsyncer, dir + "/bin/rsync --server -e.LsfxCIvu . .", keys, "broke protocol"},
		{"rsync sender", h.rsyncer, dir + "/bin/rsync --server --sender -e.LsfxCIvu . .", keys, "broke protocol"},
		{"rsync by default", h.alice, dir + "/bin/rsync --server --sender -e.LsfxCIvu . .", keys, "rsync is not allowed for you on t1"},
		// Valid acknowledgements from the client this time.
		{"scp speaking the protocol", h.alice, dir + "/speaks/scp -f x", "\x00\x00\x00", "holds a card number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mark := len(h.logs.String())
			stdin := strings.NewReader(tc.stdin)
			r := h.ssh(t, tc.key, "root@t1", stdin, tc.cmd)
			assertNoPAN(t, tc.name, r.Stdout, r.Stderr)
			if bytes.Contains(r.Stdout, []byte("SHELL-42")) || bytes.Contains(r.Stderr, []byte("SHELL-42")) {
				t.Fatalf("the fake program gave a shell: stdout %q stderr %q", r.Stdout, r.Stderr)
			}
			if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), tc.why) {
				t.Fatalf("exit %d, stderr %q; want a failure saying %q", r.ExitCode, r.Stderr, tc.why)
			}
			testenv.WaitFor(t, 10*time.Second, func() bool {
				l := h.logs.String()[mark:]
				return strings.Contains(l, `"event":"transfer_stopped"`) || strings.Contains(l, `"event":"program_refused"`)
			})
		})
	}
}

// A ~/.bashrc that runs something else when sshd starts the sftp server
// gets the channel closed, not forwarded unseen.
func TestSFTPBashrcHookClosesChannel(t *testing.T) {
	t.Parallel()
	h := env(t)
	sftp := testenv.Require(t, "sftp")
	// The hook runs as hookUser: its marker goes where that user can write.
	dir, err := os.MkdirTemp("", "postern-hook-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	ran := filepath.Join(dir, "hook-ran")
	home := "/home/" + hookUser
	rc := fmt.Sprintf("case \"$BASH_EXECUTION_STRING\" in *sftp-server*) touch %s; echo card %s; exec bash -i;; esac\n", ran, testPAN)
	if err := os.WriteFile(filepath.Join(home, ".bashrc"), []byte(rc), 0o644); err != nil {
		t.Fatal(err)
	}
	batch := filepath.Join(dir, "batch")
	os.WriteFile(batch, []byte("ls /\n"), 0o644)
	mark := len(h.logs.String())
	r := testenv.Cmd(t, time.Minute, strings.NewReader("echo SHELL-$((6*7))\n"), sftp,
		append(h.opts(h.alice), "-P", strconv.Itoa(h.port), "-b", batch, hookUser+"@t1@127.0.0.1")...)
	if _, err := os.Stat(ran); err != nil {
		t.Fatalf("the .bashrc hook never ran (%v): the test proves nothing; sftp said %s", err, r.Stderr)
	}
	assertNoPAN(t, "sftp", r.Stdout, r.Stderr)
	if r.ExitCode == 0 || bytes.Contains(r.Stdout, []byte("SHELL-42")) {
		t.Fatalf("sftp exit %d stdout %q stderr %q; want a closed channel", r.ExitCode, r.Stdout, r.Stderr)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		l := h.logs.String()[mark:]
		return strings.Contains(l, `"event":"transfer_stopped"`) && strings.Contains(l, `"kind":"sftp"`)
	})
}

// The forgery from the review: two OPENs with one request id, so that the
// reply for the first (cards.txt) would be credited to the second. The
// reuse breaks the protocol: the channel closes before the second open.
func TestSFTPDuplicateRequestIDRefused(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	cards, innocent := filepath.Join(dir, "cards.txt"), filepath.Join(dir, "innocent.txt")
	os.WriteFile(cards, []byte("secret\n"), 0o644)
	os.WriteFile(innocent, []byte("nothing\n"), 0o644)
	mark := len(h.logs.String())
	s := h.rawSFTP(t, h.alice, "root@t1")
	s.send(sftpPacket(fxpOpen, uint32(7), cards, uint32(1), uint32(0)))
	s.send(sftpPacket(fxpOpen, uint32(7), innocent, uint32(1), uint32(0)))
	var got []byte
	for b := range s.pkts { // ends when the bastion closes the channel
		got = append(got, b...)
	}
	if bytes.Contains(got, []byte("nothing")) {
		t.Fatal("innocent.txt was opened")
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(h.logs.String()[mark:], "reused while outstanding")
	})
	if strings.Contains(h.logs.String()[mark:], `"path":"`+innocent+`"`) {
		t.Fatal("the audit trail names innocent.txt")
	}
}

// OpenSSH's sftp `rename` and `ln` (posix-rename@openssh.com and
// hardlink@openssh.com) are audited, as are symlink and remove.
func TestSFTPRenameAndLinkAudited(t *testing.T) {
	t.Parallel()
	h := env(t)
	sftp := testenv.Require(t, "sftp")
	dir := t.TempDir()
	a, b, c, d := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c"), filepath.Join(dir, "d")
	os.WriteFile(a, []byte("x"), 0o644)
	batch := filepath.Join(dir, "batch")
	os.WriteFile(batch, []byte(fmt.Sprintf("rename %s %s\nln %s %s\nln -s %s %s\nrm %s\n", a, b, b, c, b, d, c)), 0o644)
	r := testenv.Cmd(t, time.Minute, nil, sftp, append(h.opts(h.alice), "-P", strconv.Itoa(h.port), "-b", batch, "root@t1@127.0.0.1")...)
	if r.ExitCode != 0 {
		t.Fatalf("sftp: exit %d: %s", r.ExitCode, r.Stderr)
	}
	for _, want := range []string{
		fmt.Sprintf(`"event":"sftp_op","op":"rename","path":%q,"to":%q`, a, b),
		fmt.Sprintf(`"event":"sftp_op","op":"link","path":%q,"to":%q`, b, c),
		`"event":"sftp_op","op":"symlink"`,
		fmt.Sprintf(`"event":"sftp_op","op":"remove","path":%q`, c),
	} {
		testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(h.logs.String(), want) })
	}
}

// An scp warning that names a card number reaches the user masked.
func TestSCPWarningMasked(t *testing.T) {
	t.Parallel()
	h := env(t)
	scp := testenv.Require(t, "scp")
	missing := "/nonexistent-postern/" + testPAN
	r := testenv.Cmd(t, time.Minute, nil, scp, append(h.opts(h.alice), "-O", "-P", strconv.Itoa(h.port), "root@t1@127.0.0.1:"+missing, t.TempDir())...)
	assertNoPAN(t, "scp", r.Stdout, r.Stderr)
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "411111******1111") {
		t.Fatalf("exit %d stderr %q; want the target's warning with the number masked", r.ExitCode, r.Stderr)
	}
}

// transferRecord waits for the index entry of a transfer channel that
// moved path, and returns its record of path.
func (h *harness) transferRecord(t *testing.T, kind, path, identity string) (recorder.Session, recorder.Transfer) {
	t.Helper()
	var sess recorder.Session
	var rec recorder.Transfer
	testenv.WaitFor(t, 10*time.Second, func() bool {
		list, err := h.store.List(t.Context(), recorder.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if s.Kind != kind || s.Status == recorder.StatusActive || s.Identity != identity {
				continue
			}
			for _, tr := range s.Transfers {
				if tr.Path == path && (tr.Op == "download" || tr.Op == "upload") {
					sess, rec = s, tr
					return true
				}
			}
		}
		return false
	})
	return sess, rec
}

// A downloaded file holding a card number is blocked by default, masked
// under file_pans: mask and delivered but counted under allow, through
// sftp and legacy scp; the index records each outcome.
func TestDownloadWithCardNumber(t *testing.T) {
	t.Parallel()
	h := env(t)
	sftp, scp, rsync := testenv.Require(t, "sftp"), testenv.Require(t, "scp"), testenv.Require(t, "rsync")
	dir := t.TempDir()
	var content []byte
	for i := range 20000 {
		content = fmt.Appendf(content, "line %d of an ordinary report\n", i)
		if i == 10000 {
			content = append(content, "card 4111 1111 1111 1111 expires 12/29\n"...)
		}
	}
	src := filepath.Join(dir, "report.txt")
	os.WriteFile(src, content, 0o644)
	masked := bytes.Replace(content, []byte("4111 1111 1111 1111"), []byte("4111 11** **** 1111"), 1)
	for _, tc := range []struct {
		name, key, outcome string
		want               []byte // nil: the download fails
	}{
		{"alice", h.alice, "blocked", nil},
		{"filemask", h.fileMask, "masked", masked},
		{"fileallow", h.fileAllow, "allowed", content},
	} {
		for _, proto := range []string{"sftp", "scp", "rsync"} {
			if proto == "rsync" && tc.key == h.fileAllow {
				continue // that rule does not grant rsync
			}
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				t.Parallel()
				tc := tc
				if proto == "rsync" {
					// Rules that grant rsync, blocking and masking.
					tc.name, tc.key = "rsyncer", h.rsyncer
					if tc.outcome == "masked" {
						// rsync discards a copy whose checksum
						// differs: masking blocks instead.
						tc.name, tc.key, tc.outcome, tc.want = "rsyncmask", h.rsyncMask, "blocked", nil
					}
				}
				dst := filepath.Join(t.TempDir(), "got.txt")
				var r testenv.Result
				if proto == "sftp" {
					batch := filepath.Join(t.TempDir(), "batch")
					os.WriteFile(batch, []byte("get "+src+" "+dst+"\n"), 0o644)
					r = testenv.Cmd(t, time.Minute, nil, sftp, append(h.opts(tc.key), "-P", strconv.Itoa(h.port), "-b", batch, "root@t1@127.0.0.1")...)
				} else if proto == "scp" {
					r = testenv.Cmd(t, time.Minute, nil, scp, append(h.opts(tc.key), "-O", "-P", strconv.Itoa(h.port), "root@t1@127.0.0.1:"+src, dst)...)
				} else {
					r = testenv.Cmd(t, time.Minute, nil, rsync, "-e", h.rsyncRSH(tc.key), "root@t1@127.0.0.1:"+src, dst)
				}
				got, _ := os.ReadFile(dst)
				assertNoPAN(t, "download", r.Stdout, r.Stderr)
				if tc.outcome != "allowed" {
					assertNoPAN(t, "download", got)
				}
				if tc.want == nil {
					if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "holds a card number") {
						t.Fatalf("exit %d stderr %q; want the download refused, naming the file", r.ExitCode, r.Stderr)
					}
				} else {
					if r.ExitCode != 0 || !bytes.Equal(got, tc.want) {
						t.Fatalf("exit %d, %d bytes (stderr %q); want %d bytes as expected", r.ExitCode, len(got), r.Stderr, len(tc.want))
					}
				}
				if tc.outcome == "masked" && !strings.Contains(string(r.Stderr), "differs from the original") {
					t.Fatalf("stderr %q does not say the copy differs", r.Stderr)
				}
				_, rec := h.transferRecord(t, proto, src, tc.name)
				if rec.Op != "download" || rec.PANs != 1 || rec.Outcome != tc.outcome {
					t.Fatalf("index record %+v; want a download with 1 card number, %s", rec, tc.outcome)
				}
				if tc.outcome == "blocked" && rec.Bytes >= int64(len(content)) {
					t.Fatalf("index says %d bytes reached the client of a blocked file", rec.Bytes)
				}
			})
		}
	}
}

// A rule's transfers list is enforced: a rule that grants none refuses
// sftp and scp with a message.
func TestTransfersNotGranted(t *testing.T) {
	t.Parallel()
	h := env(t)
	key := h.userKey(t, "notransfer", certsReq("notransfer"))
	r := h.ssh(t, key, "root@t1", nil, "scp -f /etc/hostname")
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "scp is not allowed for you on t1") {
		t.Fatalf("exit %d stderr %q; want scp refused", r.ExitCode, r.Stderr)
	}
	sftp := testenv.Require(t, "sftp")
	batch := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(batch, []byte("ls /\n"), 0o644)
	r = testenv.Cmd(t, time.Minute, nil, sftp, append(h.opts(key), "-P", strconv.Itoa(h.port), "-b", batch, "root@t1@127.0.0.1")...)
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "sftp is not allowed for you on t1") {
		t.Fatalf("exit %d stderr %q; want sftp refused", r.ExitCode, r.Stderr)
	}
}

// Real scp (both protocols) and sftp move a 100 MB binary file through the
// bastion unchanged under the default policy, and so does rsync under a
// rule that grants it.
func TestBinary100MBByteIdentical(t *testing.T) {
	t.Parallel()
	h := env(t)
	sftp, scp, rsync := testenv.Require(t, "sftp"), testenv.Require(t, "scp"), testenv.Require(t, "rsync")
	dir := t.TempDir()
	data := make([]byte, 100<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	src := filepath.Join(dir, "blob.bin")
	os.WriteFile(src, data, 0o644)
	want := sha256.Sum256(data)
	check := func(what, path string) {
		t.Helper()
		got, err := os.ReadFile(path)
		if err != nil || sha256.Sum256(got) != want {
			t.Fatalf("%s: %d bytes (err %v), not the 100 MB sent", what, len(got), err)
		}
		os.Remove(path)
	}
	port := strconv.Itoa(h.port)
	remote := "root@t1@127.0.0.1:"
	for _, flag := range []string{"-s", "-O"} { // sftp protocol, legacy scp protocol
		up, down := filepath.Join(dir, "up"+flag), filepath.Join(dir, "down"+flag)
		for _, args := range [][]string{{src, remote + up}, {remote + up, down}} {
			r := testenv.Cmd(t, 3*time.Minute, nil, scp, append(append(h.opts(h.alice), flag, "-P", port), args...)...)
			if r.ExitCode != 0 {
				t.Fatalf("scp %s %v: exit %d: %s", flag, args, r.ExitCode, r.Stderr)
			}
		}
		check("scp "+flag+" upload", up)
		check("scp "+flag+" download", down)
	}
	batch := filepath.Join(dir, "batch")
	os.WriteFile(batch, []byte(fmt.Sprintf("put %s %s/sup\nget %s/sup %s/sdown\n", src, dir, dir, dir)), 0o644)
	r := testenv.Cmd(t, 3*time.Minute, nil, sftp, append(h.opts(h.alice), "-P", port, "-b", batch, "root@t1@127.0.0.1")...)
	if r.ExitCode != 0 {
		t.Fatalf("sftp: exit %d: %s", r.ExitCode, r.Stderr)
	}
	check("sftp upload", filepath.Join(dir, "sup"))
	check("sftp download", filepath.Join(dir, "sdown"))
	// rsync is not granted by default (its content cannot be scanned
	// whole): refused with a message, then through a rule that names it.
	r = testenv.Cmd(t, time.Minute, nil, rsync, "-e", h.rsyncRSH(h.alice), src, remote+dir+"/rup")
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "rsync is not allowed for you on t1") {
		t.Fatalf("rsync under the default policy: exit %d: %s", r.ExitCode, r.Stderr)
	}
	for _, args := range [][]string{{src, remote + dir + "/rup"}, {remote + dir + "/rup", dir + "/rdown"}} {
		r := testenv.Cmd(t, 3*time.Minute, nil, rsync, append([]string{"-e", h.rsyncRSH(h.rsyncer)}, args...)...)
		if r.ExitCode != 0 {
			t.Fatalf("rsync %v: exit %d: %s", args, r.ExitCode, r.Stderr)
		}
	}
	check("rsync upload", filepath.Join(dir, "rup"))
	check("rsync download", filepath.Join(dir, "rdown"))
}

// certsReq is a one-hour certificate request for principal p.
func certsReq(p string) certs.UserCertRequest {
	return certs.UserCertRequest{Principals: []string{p}, TTL: time.Hour}
}

// A card number split by the boundary between two pipelined reads (as
// OpenSSH's sftp sends them once its window has grown) is judged whole:
// none of its digits are delivered under block, and both halves are
// masked under mask. Both reads are sent before either reply is read, so
// the first reply always has a read of its file outstanding.
func TestSFTPNumberAcrossReads(t *testing.T) {
	t.Parallel()
	h := env(t)
	const boundary = 32 << 10
	content := bytes.Repeat([]byte("x"), boundary-len("card 4111 1111"))
	content = append(content, "card 4111 1111 1111 1111 end\n"...)
	content = append(content, bytes.Repeat([]byte("y"), boundary)...)
	src := filepath.Join(t.TempDir(), "straddle.txt")
	os.WriteFile(src, content, 0o644)
	for _, tc := range []struct {
		name, key string
		want      []byte // nil: both reads refused
	}{
		{"block", h.alice, nil},
		{"mask", h.fileMask, bytes.Replace(content, []byte("4111 1111 1111 1111"), []byte("4111 11** **** 1111"), 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.rawSFTP(t, tc.key, "root@t1")
			hd := s.open(1, src, 1)
			s.send(sftpPacket(fxpRead, uint32(2), hd, uint64(0), uint32(boundary)))
			s.send(sftpPacket(fxpRead, uint32(3), hd, uint64(boundary), uint32(boundary)))
			var got []byte
			for range 2 {
				b := s.recv()
				if b[0] == fxpData {
					got = append(got, b[9:]...)
				}
			}
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("block: %d bytes delivered, ending %q", len(got), got[max(0, len(got)-20):])
				}
				return
			}
			if !bytes.Equal(got, tc.want[:2*boundary]) {
				t.Fatalf("mask: the number is not masked whole around %q", got[boundary-20:boundary+20])
			}
		})
	}
}
