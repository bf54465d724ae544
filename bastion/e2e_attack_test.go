package bastion

// Attack tests for issue 11 (transfer channels exempt from terminal
// recording and masking). Each test names the hole it demonstrates. They
// are written to FAIL until the product code is fixed: a failure here is a
// way through, not a broken test.

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/sshdproc"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// rawSFTP is a hostile SFTP client: it sends any packets it likes over a
// session channel's sftp subsystem through the bastion and reads the raw
// replies.
type rawSFTP struct {
	t    *testing.T
	sess *ssh.Session
	in   io.WriteCloser
	pkts chan []byte
}

func (h *harness) rawSFTP(t *testing.T, key, user string) *rawSFTP {
	t.Helper()
	client := h.dialGo(t, key, user)
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	s := &rawSFTP{t: t, sess: sess, in: in, pkts: make(chan []byte, 64)}
	go func() {
		defer close(s.pkts)
		for {
			var l [4]byte
			if _, err := io.ReadFull(out, l[:]); err != nil {
				return
			}
			body := make([]byte, binary.BigEndian.Uint32(l[:]))
			if _, err := io.ReadFull(out, body); err != nil {
				return
			}
			s.pkts <- body
		}
	}()
	s.send(sftpPacket(fxpInit, uint32(3)))
	if b := s.recv(); b[0] != fxpVersion {
		t.Fatalf("first reply type %d, want VERSION", b[0])
	}
	return s
}

func (s *rawSFTP) send(p []byte) {
	if _, err := s.in.Write(p); err != nil {
		s.t.Fatalf("send: %v", err)
	}
}

// recv returns the next packet's body (type byte first); the channel's end
// fails the test. The timeout only bounds a hang.
func (s *rawSFTP) recv() []byte {
	s.t.Helper()
	select {
	case b, ok := <-s.pkts:
		if !ok {
			s.t.Fatal("the bastion closed the sftp channel")
		}
		return b
	case <-time.After(20 * time.Second):
		s.t.Fatal("no sftp reply")
	}
	return nil
}

// open opens path with SSH_FXF flags and returns the handle.
func (s *rawSFTP) open(id uint32, path string, flags uint32) string {
	s.t.Helper()
	s.send(sftpPacket(fxpOpen, id, path, flags, uint32(0)))
	b := s.recv()
	if b[0] != fxpHandle {
		s.t.Fatalf("open %s: reply type %d %q", path, b[0], b)
	}
	n := binary.BigEndian.Uint32(b[5:])
	return string(b[9 : 9+n])
}

// read reads n bytes at off; it returns the data, or nil and the reply
// when the reply is not DATA (a status: blocked, EOF).
func (s *rawSFTP) read(id uint32, handle string, off uint64, n uint32) ([]byte, []byte) {
	s.t.Helper()
	s.send(sftpPacket(fxpRead, id, handle, off, n))
	b := s.recv()
	if b[0] != fxpData {
		return nil, b
	}
	l := binary.BigEndian.Uint32(b[5:])
	return b[9 : 9+l], b
}

func (s *rawSFTP) close(id uint32, handle string) {
	s.t.Helper()
	s.send(sftpPacket(fxpClose, id, handle))
	if b := s.recv(); b[0] != fxpStatus {
		s.t.Fatalf("close: reply type %d", b[0])
	}
}

// sealedTransfers waits for the sealed index entry of a transfer channel of
// kind with a record whose path starts with prefix, and returns its records.
func (h *harness) sealedTransfers(t *testing.T, kind, prefix string) []recorder.Transfer {
	t.Helper()
	var recs []recorder.Transfer
	testenv.WaitFor(t, 15*time.Second, func() bool {
		list, err := h.store.List(t.Context(), recorder.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if s.Kind != kind || s.Status == recorder.StatusActive {
				continue
			}
			for _, tr := range s.Transfers {
				if strings.HasPrefix(tr.Path, prefix) {
					recs = s.Transfers
					return true
				}
			}
		}
		return false
	})
	return recs
}

// HOLE (high, invariant 1): fileScan.chunk only carries the previous
// chunk's tail into the next when the next READ starts exactly where the
// previous one ended. A client that reads the two halves of a card number
// out of order, through two handles, or with an overlapping read, gets
// every digit under the default policy (block): no READ is refused, and
// the file pieced together holds the number in clear. Real sftp-server,
// raw x/crypto client.
func TestAttackSFTPOutOfOrderReadsLeakPAN(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	content := []byte("card " + testPAN + " end\n") // PAN at [5,21)
	src := filepath.Join(dir, "cards.txt")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	const cut = 13 // 8 digits on each side
	type rd struct {
		handle int // 0 or 1: which of two handles on the same file
		off, n int
	}
	for name, reads := range map[string][]rd{
		"second half first": {{0, cut, len(content) - cut}, {0, 0, cut}},
		"two handles":       {{0, 0, cut}, {1, cut, len(content) - cut}},
		"overlapping read":  {{0, 0, cut}, {0, cut - 4, len(content) - cut + 4}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := h.rawSFTP(t, h.alice, "root@t1")
			handles := []string{s.open(1, src, 1), s.open(2, src, 1)}
			got := make([]byte, len(content))
			id := uint32(10)
			for _, r := range reads {
				id++
				data, reply := s.read(id, handles[r.handle], uint64(r.off), uint32(r.n))
				if data == nil {
					return // refused: the scan held (the fix)
				}
				if len(data) != r.n {
					t.Fatalf("short read %q (reply %q)", data, reply)
				}
				copy(got[r.off:], data)
			}
			assertNoPAN(t, "file pieced together from sftp READs", got)
		})
	}
}

// HOLE (high, invariant 1): a fake sftp-server (a login's ~/.bashrc runs
// whatever it likes instead of sshd's sftp-server: see
// TestSFTPBashrcHookClosesChannel) sends server text the parser checks for
// shape but never masks: VERSION extension data, a HANDLE string, a
// STATUS's language tag, ATTRS extended pairs (in ATTRS and in NAME
// entries). Each passes a card number to the client in clear.
func TestAttackSFTPUnmaskedServerFields(t *testing.T) {
	t.Parallel()
	attrsExt := func(typ byte, id uint32) []byte {
		// flags = EXTENDED, one pair
		return sftpPacket(typ, id, uint32(0x80000000), uint32(1), "x@example.com", testPAN)
	}
	name := func() []byte {
		return sftpPacket(fxpName, uint32(2), uint32(1), "f", "-rw-r--r-- f", uint32(0x80000000), uint32(1), "x@example.com", testPAN)
	}
	for tcName, tc := range map[string]struct {
		version []byte // replaces the server's VERSION
		req     []byte
		reply   []byte
	}{
		"VERSION extension data": {version: sftpPacket(fxpVersion, uint32(3), "x@example.com", testPAN)},
		"HANDLE string":          {req: sftpPacket(fxpOpen, uint32(2), "/f", uint32(1), uint32(0)), reply: sftpPacket(fxpHandle, uint32(2), testPAN)},
		"STATUS language tag":    {req: sftpPacket(fxpStat, uint32(2), "/f"), reply: sftpPacket(fxpStatus, uint32(2), uint32(2), "No such file", testPAN)},
		"ATTRS extended pair":    {req: sftpPacket(fxpStat, uint32(2), "/f"), reply: attrsExt(fxpAttrs, 2)},
		"NAME entry attrs":       {req: sftpPacket(fxpRealpath, uint32(2), "."), reply: name()},
	} {
		t.Run(tcName, func(t *testing.T) {
			t.Parallel()
			a := newSFTPStream(&transferEnv{kind: "sftp", masking: true})
			var toClient []byte
			if _, err := a.fromClient(sftpPacket(fxpInit, uint32(3))); err != nil {
				t.Fatal(err)
			}
			v := tc.version
			if v == nil {
				v = sftpPacket(fxpVersion, uint32(3))
			}
			out, err := a.fromServer(v)
			toClient = append(toClient, out...)
			if err == nil && tc.req != nil {
				if _, err := a.fromClient(tc.req); err != nil {
					t.Fatal(err)
				}
				out, _ = a.fromServer(tc.reply)
				toClient = append(toClient, out...)
			}
			assertNoPAN(t, tcName, toClient)
		})
	}
}

// The same hole end to end: a login whose ~/.bashrc swaps sshd's
// sftp-server for a program that answers INIT with a VERSION whose
// extension data is a card number. The client gets it in clear.
func TestAttackSFTPFakeServerVersionLeaksPAN(t *testing.T) {
	t.Parallel()
	h := env(t)
	// Our own bash login on the target and a bastion that allows it, so
	// that this ~/.bashrc does not race other tests' hooks.
	const login = "posternatk"
	if err := sshdproc.EnsureUser(login, "/bin/bash"); err != nil {
		t.Fatal(err)
	}
	pol := h.policy
	pol.Targets = append([]Target(nil), pol.Targets...)
	pol.Rules = append([]Rule(nil), pol.Rules...)
	pol.Targets[0].Logins = append(append([]string(nil), pol.Targets[0].Logins...), login)
	pol.Rules[0].Logins = append(append([]string(nil), pol.Rules[0].Logins...), login)
	b := h.extraServer(t, Config{Policy: pol, Recording: &Recording{Store: h.store}})
	home := "/home/" + login
	reply := filepath.Join(home, "version.bin")
	if err := os.WriteFile(reply, sftpPacket(fxpVersion, uint32(3), "x@example.com", "card "+testPAN), 0o644); err != nil {
		t.Fatal(err)
	}
	rc := "case \"$BASH_EXECUTION_STRING\" in *sftp-server*) head -c9 >/dev/null; cat " + reply + "; exec cat >/dev/null;; esac\n"
	if err := os.WriteFile(filepath.Join(home, ".bashrc"), []byte(rc), 0o644); err != nil {
		t.Fatal(err)
	}
	client := b.dialGo(t, h.alice, login+"@t1")
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	in.Write(sftpPacket(fxpInit, uint32(3)))
	var got []byte
	testenv.WaitFor(t, 20*time.Second, func() bool {
		var buf [512]byte
		n, err := out.Read(buf[:])
		got = append(got, buf[:n]...)
		return err != nil || len(got) >= 4 && len(got) >= 4+int(binary.BigEndian.Uint32(got))
	})
	in.Close()
	assertNoPAN(t, "sftp VERSION from a fake server", got)
}

// HOLE (medium, invariant 4: audit forgery): an OPEN's record op comes from
// its flags alone. A file opened READ|WRITE (no CREAT/TRUNC: nothing
// changes) is recorded as an "upload", although the client only READ it:
// the index shows a download as an upload.
func TestAttackSFTPReadOnWriteHandleAuditedAsUpload(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	content := []byte("quarterly payroll, confidential\n")
	src := filepath.Join(dir, "payroll.txt")
	os.WriteFile(src, content, 0o644)
	s := h.rawSFTP(t, h.alice, "root@t1")
	hd := s.open(1, src, 0x1|0x2) // READ|WRITE
	data, reply := s.read(2, hd, 0, 4096)
	if !bytes.Equal(data, content) {
		t.Fatalf("read %q (reply %q)", data, reply)
	}
	s.close(3, hd)
	s.in.Close()
	recs := h.sealedTransfers(t, "sftp", dir)
	for _, r := range recs {
		if r.Path == src && r.Op == "download" && r.Bytes == int64(len(content)) {
			return
		}
	}
	t.Fatalf("the client read %d bytes of %s; records %+v have no download of them", len(content), src, recs)
}

// HOLE (medium, invariant 4: audit forgery): WRITE bytes are credited to
// the handle's file when the request passes, whatever the handle is and
// whatever the server answers. A WRITE on a read-only handle (which
// sftp-server refuses) inflates the download's byte count.
func TestAttackSFTPRefusedWriteCountedInDownload(t *testing.T) {
	t.Parallel()
	h := env(t)
	dir := t.TempDir()
	content := []byte("short\n")
	src := filepath.Join(dir, "short.txt")
	os.WriteFile(src, content, 0o644)
	s := h.rawSFTP(t, h.alice, "root@t1")
	hd := s.open(1, src, 0x1) // READ only
	data, _ := s.read(2, hd, 0, 4096)
	if !bytes.Equal(data, content) {
		t.Fatalf("read %q", data)
	}
	s.send(sftpPacket(fxpWrite, uint32(3), hd, uint64(0), strings.Repeat("x", 100000)))
	if b := s.recv(); b[0] != fxpStatus || binary.BigEndian.Uint32(b[5:]) == fxOK {
		t.Fatalf("sftp-server accepted a write on a read-only handle: %q", b[:min(len(b), 40)])
	}
	s.close(4, hd)
	s.in.Close()
	for _, r := range h.sealedTransfers(t, "sftp", dir) {
		if r.Path == src && r.Bytes != int64(len(content)) {
			t.Fatalf("record %+v: %d bytes, but the file has %d and nothing was written", r, r.Bytes, len(content))
		}
	}
}
