package bastion

import (
	"encoding/binary"
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

