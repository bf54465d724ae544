package bastion

import (
	"encoding/binary"
	"log/slog"
	"testing"
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

// FuzzSFTPAudit: arbitrary bytes in either direction, split anywhere, never
// panic and never grow the tracking maps past their caps.
func FuzzSFTPAudit(f *testing.F) {
	f.Add(sftpPacket(fxpOpen, uint32(1), "/etc/passwd", uint32(1), uint32(0)), sftpPacket(fxpHandle, uint32(1), "h1"), 3)
	f.Add(sftpPacket(fxpWrite, uint32(2), "h1", uint64(0), "data"), sftpPacket(fxpData, uint32(2), "xyz"), 1)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 3}, []byte{0, 0, 0, 0}, 0)
	f.Fuzz(func(t *testing.T, client, server []byte, split int) {
		a := newSFTPAudit(slog.New(slog.DiscardHandler))
		if split < 0 {
			split = -split
		}
		cs := min(split%(len(client)+1), len(client))
		a.fromClient(client[:cs])
		a.fromServer(server)
		a.fromClient(client[cs:])
		a.close()
		if len(a.opens) > fxpMaxTrack || len(a.reads) > fxpMaxTrack || len(a.handles) > 0 {
			t.Fatalf("maps grew: %d %d %d", len(a.opens), len(a.reads), len(a.handles))
		}
	})
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

// FuzzSCPAudit: any sender stream, in any chunks, never panics.
func FuzzSCPAudit(f *testing.F) {
	f.Add([]byte("D0755 0 dir\nC0644 5 a.txt\nhello\x00E\n"), 3)
	f.Add([]byte("C0644 -1 x\n"), 1)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		a := newSCPAudit(slog.New(slog.DiscardHandler), "upload", "scp -t /x")
		if split < 0 {
			split = -split
		}
		s := split % (len(data) + 1)
		a.feed(data[:s])
		a.feed(data[s:])
	})
}
