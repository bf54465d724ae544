package bastion

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/postern/postern/recorder"
)

func sftpPacket(typ byte, fields ...any) []byte {
	var body []byte
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		}
	}
	p := binary.BigEndian.AppendUint32(nil, uint32(len(body)+1))
	p = append(p, typ)
	return append(p, body...)
}

func TestSCPDirection(t *testing.T) {
	t.Parallel()
	for cmd, want := range map[string]string{
		"scp -t /tmp/x": "upload", "scp -r -t dir": "upload", "scp -f file": "download",
		"/usr/bin/scp -pf a": "download", "scp -- -t": "", "echo scp -t": "", "scpx -t a": "", "scp": "",
		// Shell syntax after a transfer command would run unmasked and
		// unrecorded: not a transfer.
		"scp -f x; cat cards.txt": "", "scp -t x && bash": "", "scp -f $(cat y)": "", "scp -f x\nbash": "", "scp -t '/tmp/a dir'": "upload",
	} {
		op, ok := scpDirection(cmd)
		if op != want || ok != (want != "") {
			t.Errorf("scpDirection(%q) = %q, %v; want %q", cmd, op, ok, want)
		}
	}
	for cmd, want := range map[string]bool{
		"rsync --server -logDtpre.iLsfxCIvu . /tmp/x/": true, "rsync --server --sender -e.x . a": true,
		"rsync --server . x; cat cards": false, "rsync -av a b": false, "echo rsync --server": false,
	} {
		if got := isRsyncServer(cmd); got != want {
			t.Errorf("isRsyncServer(%q) = %v", cmd, got)
		}
	}
}

// sftpSetup is an INIT and VERSION exchange, then an open of path with
// handle "h1".
func sftpSetup(t *testing.T, a *sftpStream, path string) {
	t.Helper()
	for _, step := range []struct {
		client bool
		pkt    []byte
	}{
		{true, sftpPacket(fxpInit, uint32(3))},
		{false, sftpPacket(fxpVersion, uint32(3), "posix-rename@openssh.com", "1")},
		{true, sftpPacket(fxpOpen, uint32(1), path, uint32(1), uint32(0))},
		{false, sftpPacket(fxpHandle, uint32(1), "h1")},
	} {
		feed := a.fromServer
		if step.client {
			feed = a.fromClient
		}
		if out, err := feed(step.pkt); err != nil || !bytes.Equal(out, step.pkt) {
			t.Fatalf("setup: %v, out %q", err, out)
		}
	}
}

// A reply must answer an outstanding request of a type it fits: a DATA
// for no READ, a second reply to one id, a reply longer than asked, or
// shell output instead of packets are refused, and nothing of them passes.
func TestSFTPStreamRefusesForgedReplies(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ client, server []byte }{
		"data without read":   {nil, sftpPacket(fxpData, uint32(9), "x")},
		"data to a stat":      {sftpPacket(fxpStat, uint32(2), "/x"), sftpPacket(fxpData, uint32(2), "x")},
		"longer than asked":   {sftpPacket(fxpRead, uint32(2), "h1", uint64(0), uint32(2)), sftpPacket(fxpData, uint32(2), "abc")},
		"shell output":        {nil, []byte("bash-5.2$ ")},
		"handle to a read":    {sftpPacket(fxpRead, uint32(2), "h1", uint64(0), uint32(2)), sftpPacket(fxpHandle, uint32(2), "h2")},
		"trailing bytes":      {sftpPacket(fxpStat, uint32(2), "/x"), sftpPacket(fxpAttrs, uint32(2), uint32(0), uint32(5))},
		"unknown handle read": {sftpPacket(fxpRead, uint32(2), "zz", uint64(0), uint32(2)), nil},
		"unknown extension":   {sftpPacket(fxpExtended, uint32(2), "tunnel@example.com"), nil},
		"duplicate id":        {append(sftpPacket(fxpStat, uint32(2), "/a"), sftpPacket(fxpStat, uint32(2), "/b")...), nil},
	} {
		t.Run(name, func(t *testing.T) {
			a := newSFTPStream(&transferEnv{})
			sftpSetup(t, a, "/f")
			_, cerr := a.fromClient(tc.client)
			var out []byte
			var serr error
			if cerr == nil {
				out, serr = a.fromServer(tc.server)
			}
			if cerr == nil && serr == nil {
				t.Fatal("accepted")
			}
			if len(out) > 0 {
				t.Fatalf("passed on %q", out)
			}
		})
	}
}

// A card number split between two DATA replies is judged whole: the first
// reply ends in digits and another read is outstanding, so it is held
// until the second arrives. Under block both become failure statuses,
// under mask both halves are masked, under allow both pass unchanged.
func TestSFTPStreamScansAcrossChunks(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{FilePANsBlock, FilePANsMask, FilePANsAllow} {
		t.Run(policy, func(t *testing.T) {
			var recs []recorder.Transfer
			a := newSFTPStream(&transferEnv{masking: true, filePANs: policy, record: func(r recorder.Transfer) { recs = append(recs, r) }})
			sftpSetup(t, a, "/cards")
			first, second := "name: 4111 1111", " 1111 1111 end"
			a.fromClient(sftpPacket(fxpRead, uint32(2), "h1", uint64(0), uint32(len(first))))
			a.fromClient(sftpPacket(fxpRead, uint32(3), "h1", uint64(len(first)), uint32(len(second))))
			out1, err := a.fromServer(sftpPacket(fxpData, uint32(2), first))
			if err != nil {
				t.Fatal(err)
			}
			out2, err := a.fromServer(sftpPacket(fxpData, uint32(3), second))
			if err != nil {
				t.Fatal(err)
			}
			out := append(out1, out2...)
			switch policy {
			case FilePANsBlock:
				if bytes.Contains(out, []byte("4111")) || bytes.Contains(out, []byte("1111 end")) || bytes.Count(out, []byte("was blocked")) != 2 {
					t.Fatalf("blocked data passed: %q", out)
				}
			case FilePANsMask:
				if !bytes.Contains(out, []byte("name: 4111 11**")) || !bytes.Contains(out, []byte(" **** 1111 end")) {
					t.Fatalf("not masked whole: %q", out)
				}
			case FilePANsAllow:
				if !bytes.Contains(out, []byte(first)) || !bytes.Contains(out, []byte(second)) {
					t.Fatalf("changed: %q", out)
				}
			}
			a.fromClient(sftpPacket(fxpClose, uint32(4), "h1"))
			a.fromServer(sftpPacket(fxpStatus, uint32(4), uint32(0), "", ""))
			if len(recs) != 1 || recs[0].PANs != 1 || recs[0].Path != "/cards" {
				t.Fatalf("records %+v", recs)
			}
		})
	}
}

// A reply about another path passes a held one (clients match replies by
// id); the next read of the held file is judged with it and both go on;
// and a reply with no read of its file outstanding is not held at all
// (nothing would release it).
func TestSFTPStreamHoldReleases(t *testing.T) {
	t.Parallel()
	a := newSFTPStream(&transferEnv{masking: true})
	sftpSetup(t, a, "/f")
	a.fromClient(sftpPacket(fxpRead, uint32(2), "h1", uint64(0), uint32(10)))
	a.fromClient(sftpPacket(fxpRead, uint32(3), "h1", uint64(10), uint32(10)))
	a.fromClient(sftpPacket(fxpStat, uint32(4), "/g"))
	if out, _ := a.fromServer(sftpPacket(fxpData, uint32(2), "abc 123456")); len(out) != 0 {
		t.Fatalf("not held: %q", out)
	}
	attrs := sftpPacket(fxpAttrs, uint32(4), uint32(0))
	if out, err := a.fromServer(attrs); err != nil || !bytes.Equal(out, attrs) {
		t.Fatalf("a reply about another path: %q %v; want it alone, the hold kept", out, err)
	}
	// The last read of the file: both go on, in order.
	out, _ := a.fromServer(sftpPacket(fxpData, uint32(3), "7890 12345"))
	if i, j := bytes.Index(out, []byte("abc 123456")), bytes.Index(out, []byte("7890 12345")); i < 0 || j < i {
		t.Fatalf("held and last reply: %q", out)
	}
}

// FuzzSFTPStream: arbitrary bytes both ways, split anywhere, never panic,
// and what passes is always whole packets.
func FuzzSFTPStream(f *testing.F) {
	f.Add(append(sftpPacket(fxpInit, uint32(3)), sftpPacket(fxpOpen, uint32(1), "/etc/passwd", uint32(1), uint32(0))...),
		append(sftpPacket(fxpVersion, uint32(3)), sftpPacket(fxpHandle, uint32(1), "h1")...), 3)
	f.Add(sftpPacket(fxpInit, uint32(3)), []byte{0xff, 0xff, 0xff, 0xff, 3}, 0)
	f.Fuzz(func(t *testing.T, client, server []byte, split int) {
		a := newSFTPStream(&transferEnv{masking: true})
		if split < 0 {
			split = -split
		}
		cs := split % (len(client) + 1)
		check := func(out []byte) {
			for len(out) > 0 {
				if len(out) < 4 {
					t.Fatalf("partial packet passed: %q", out)
				}
				n := 4 + int(binary.BigEndian.Uint32(out))
				if n > len(out) {
					t.Fatalf("partial packet passed")
				}
				out = out[n:]
			}
		}
		out, _ := a.fromClient(client[:cs])
		check(out)
		out, _ = a.fromServer(server)
		check(out)
		out, _ = a.fromClient(client[cs:])
		check(out)
		a.end()
		if len(a.pending) > sftpMaxPending || len(a.handles) > 0 {
			t.Fatalf("maps grew: %d %d", len(a.pending), len(a.handles))
		}
	})
}

// Legacy scp: a real download passes unchanged; a warning's card number
// is masked; shell output, a bad control line or a blocked file stop it.
func TestSCPStream(t *testing.T) {
	t.Parallel()
	valid := "T1700000000 0 1700000000 0\nD0755 0 dir\nC0644 6 a.txt\nhello\n\x00\x01scp: warning\nE\n"
	s := newSCPStream(&transferEnv{masking: true}, "download", "scp -r -f /x/dir")
	if out, err := s.fromServer([]byte(valid)); err != nil || string(out) != valid {
		t.Fatalf("valid stream: %v %q", err, out)
	}
	for name, tc := range map[string]struct {
		server, want string
		bad          bool
	}{
		"shell":         {"bash-5.2# ", "", true},
		"warning":       {"\x01scp: /x/" + testPAN + ": No such file\n", "\x01scp: /x/411111******1111: No such file\n", false},
		"bad mode":      {"C06x4 5 a\n", "", true},
		"slash in name": {"C0644 5 ../a\n", "", true},
		"E at the top":  {"E\n", "", true},
		"no status":     {"C0644 1 a\nxC", "C0644 1 a\nx", true},
		"card in data":  {"C0644 20 a\n" + testPAN + "\n\x00", "C0644 20 a\n", true},
	} {
		t.Run(name, func(t *testing.T) {
			s := newSCPStream(&transferEnv{masking: true}, "download", "scp -f /x/a")
			out, err := s.fromServer([]byte(tc.server))
			if (err != nil) != tc.bad || string(out) != tc.want {
				t.Fatalf("got %q, %v; want %q, error %v", out, err, tc.want, tc.bad)
			}
		})
	}
	// A number split between two reads: its first digits are held back
	// until the rest decides, so none of them pass when it is blocked.
	s = newSCPStream(&transferEnv{masking: true}, "download", "scp -f /x/a")
	out, err := s.fromServer([]byte("C0644 25 a\ncard 4111 1111"))
	if err != nil || string(out) != "C0644 25 a\ncard " {
		t.Fatalf("first part: %q, %v", out, err)
	}
	if out, err = s.fromServer([]byte(" 1111 1111\n\x00")); err == nil || len(out) != 0 {
		t.Fatalf("second part: %q, %v; want it withheld", out, err)
	}
	// The receiver's side: status bytes and messages only.
	s = newSCPStream(&transferEnv{}, "download", "scp -f /x/a")
	if _, err := s.fromClient([]byte("\x00ls\n")); err == nil {
		t.Fatal("a command from the client passed as acknowledgements")
	}
}

// FuzzSCPStream: any streams, in any chunks, never panic, and the
// sender's output is a prefix of what a valid parse would pass.
func FuzzSCPStream(f *testing.F) {
	f.Add([]byte("D0755 0 dir\nC0644 5 a.txt\nhello\x00E\n"), []byte("\x00\x00\x00"), 3)
	f.Add([]byte("C0644 -1 x\n"), []byte("\x01oops\n"), 1)
	f.Fuzz(func(t *testing.T, sender, receiver []byte, split int) {
		for _, op := range []string{"upload", "download"} {
			s := newSCPStream(&transferEnv{masking: true, filePANs: FilePANsAllow}, op, "scp -t /x")
			if split < 0 {
				split = -split
			}
			k := split % (len(sender) + 1)
			send, recv := s.fromServer, s.fromClient
			if op == "upload" {
				send, recv = recv, send
			}
			var out []byte
			o, err := send(sender[:k])
			out = append(out, o...)
			if err == nil {
				o, _ = send(sender[k:])
				out = append(out, o...)
			}
			recv(receiver)
			s.end()
			if len(out) > len(sender) {
				t.Fatalf("passed %d bytes of %d", len(out), len(sender))
			}
		}
	})
}

// A card number split across two chunks of a file is found.
func TestFileScanAcrossChunks(t *testing.T) {
	t.Parallel()
	f := &fileScan{policy: FilePANsMask, next: -1}
	a, b := []byte("x 4111 1111 111"), []byte("1 1111 y")
	if f.chunk(0, a, nil) || f.chunk(int64(len(a)), b, nil) {
		t.Fatal("mask policy withheld a chunk")
	}
	if f.pans != 1 || string(b) != "* 1111 y" { // first six and last four stay
		t.Fatalf("pans %d, second chunk %q", f.pans, b)
	}
}
