package bastion

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/postern/postern/mask"
	"github.com/postern/postern/recorder"
)

// attack4Reads sends READs of /cards (h1, sftpSetup) of the given lengths,
// back to back from offset 0, ids from 2.
func attack4Reads(t *testing.T, a *sftpStream, lens ...int) {
	t.Helper()
	off := uint64(0)
	for i, n := range lens {
		if _, err := a.fromClient(sftpPacket(fxpRead, uint32(2+i), "h1", off, uint32(n))); err != nil {
			t.Fatal(err)
		}
		off += uint64(n)
	}
}

// attack4FileData is the data of the DATA replies in out, in order: the
// client's copy of the file.
func attack4FileData(t *testing.T, out []byte) []byte {
	t.Helper()
	var file []byte
	for len(out) > 0 {
		if len(out) < 13 {
			t.Fatalf("partial packet %q", out)
		}
		n := 4 + int(binary.BigEndian.Uint32(out))
		if out[4] == fxpData {
			file = append(file, out[13:n]...)
		}
		out = out[n:]
	}
	return file
}

// attack4Digits is every decimal digit of b, in order.
func attack4Digits(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= '0' && c <= '9' {
			s.WriteByte(c)
		}
	}
	return s.String()
}

// Under file_pans: mask, a held reply's data was masked when it was judged
// alone. When the next reply of the file brings a new card number, chunk
// copies the joined scan's tail (the held data's last 64 bytes, as
// received) back over the held data: a card number that the tail cuts
// through is no number in the joined text, so its digits inside the tail
// are written back unmasked. With first6last4 (the default) the first six
// digits were shown anyway: the whole number reaches the client; with
// full masking, all but the digits before the cut.
func TestAttack4SFTPMaskLiveUnmasksHeldNumber(t *testing.T) {
	t.Parallel()
	const pan = "4111111111111111"
	for name, tc := range map[string]struct {
		mode mask.Mode
		cut  int // digits of pan before the 64-byte tail begins
	}{
		"first6last4": {mask.ModeFirst6Last4, 6},
		"full":        {mask.ModeFull, 3},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := newSFTPStream(&transferEnv{masking: true, mode: tc.mode, filePANs: FilePANsMask})
			sftpSetup(t, a, "/cards")
			// The held data: the number, then text, ending in a digit so
			// that it is held; its last 64 bytes start inside the number.
			head := "card " + pan
			first := head + " " + strings.Repeat("x", 64-(len(pan)-tc.cut)-3) + " 7"
			if len(first)-64 != len("card ")+tc.cut {
				t.Fatalf("layout: %d", len(first))
			}
			second := " next 5500000000000004 end"
			attack4Reads(t, a, len(first), len(second))
			out1, err := a.fromServer(sftpPacket(fxpData, uint32(2), first))
			if err != nil || len(out1) != 0 {
				t.Fatalf("first reply not held: %q %v", out1, err)
			}
			out2, err := a.fromServer(sftpPacket(fxpData, uint32(3), second))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("client got %q", out2)
			if bytes.Contains(out2, []byte(pan)) {
				t.Fatalf("card number %s reached the client whole", pan)
			}
			if d := attack4Digits(out2); strings.Contains(d, pan[tc.cut:]) {
				t.Fatalf("digits %s of the card number reached the client unmasked", pan[tc.cut:])
			}
		})
	}
}

// attack4Pump feeds each of msgs to feed as the pump does: read into one
// buffer that is used again for the next read.
func attack4Pump(t *testing.T, buf []byte, feed func([]byte) ([]byte, error), msg []byte) []byte {
	t.Helper()
	n := copy(buf, msg)
	if n != len(msg) {
		t.Fatal("buffer too small")
	}
	out, err := feed(buf[:n])
	if err != nil {
		t.Fatalf("%v (passed %q)", err, out)
	}
	return append([]byte(nil), out...) // written to the client before the next read
}

// The pump reads the target's output into one buffer for every read, and
// sftpStream keeps that buffer as its output scratch (pktBuf.out) once a
// read passes unchanged. A released hold makes a replacement longer than
// the packet it replaces, so it is written over the rest of the same read,
// which has not been parsed yet: an OpenSSH download (many reads in
// flight, several replies per channel read) whose read ends in a digit
// breaks the protocol check or reaches the client corrupted.
func TestAttack4SFTPReleaseOverwritesUnparsedInput(t *testing.T) {
	t.Parallel()
	a := newSFTPStream(&transferEnv{masking: true, filePANs: FilePANsBlock})
	buf := make([]byte, 4096) // the pump's buffer
	client := func(p []byte) {
		if _, err := a.fromClient(p); err != nil {
			t.Fatal(err)
		}
	}
	client(sftpPacket(fxpInit, uint32(3)))
	attack4Pump(t, buf, a.fromServer, sftpPacket(fxpVersion, uint32(3)))
	client(sftpPacket(fxpOpen, uint32(1), "/f", uint32(1), uint32(0)))
	attack4Pump(t, buf, a.fromServer, sftpPacket(fxpHandle, uint32(1), "h1"))
	// Three reads in flight, as sftp keeps them.
	d2, d3, d4 := "order 1234", "5 is shipped ", "next line\n"
	attack4Reads(t, a, len(d2), len(d3), len(d4))
	var got []byte
	got = append(got, attack4Pump(t, buf, a.fromServer, sftpPacket(fxpData, uint32(2), d2))...)
	// The target's next channel read holds two replies.
	both := append(sftpPacket(fxpData, uint32(3), d3), sftpPacket(fxpData, uint32(4), d4)...)
	got = append(got, attack4Pump(t, buf, a.fromServer, both)...)
	want := append(append(sftpPacket(fxpData, uint32(2), d2), sftpPacket(fxpData, uint32(3), d3)...), sftpPacket(fxpData, uint32(4), d4)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("client got %q\nwant %q", got, want)
	}
}

// The pump gives its 32 KiB buffer back to the pool when a read fills it
// and takes a 256 KiB one; the pool hands the small one to another
// channel's pump (another session's raw target output). sftpStream still
// uses it as output scratch: the next reply it replaces (a released hold,
// here) is assembled in, and returned from, memory that now belongs to
// someone else. What the client is sent changes under it.
func TestAttack4SFTPOutputAliasesReturnedBuffer(t *testing.T) {
	t.Parallel()
	a := newSFTPStream(&transferEnv{masking: true, filePANs: FilePANsBlock})
	a.fromClient(sftpPacket(fxpInit, uint32(3)))
	small := make([]byte, 32<<10)
	attack4Pump(t, small, a.fromServer, sftpPacket(fxpVersion, uint32(3)))
	a.fromClient(sftpPacket(fxpOpen, uint32(1), "/f", uint32(1), uint32(0)))
	attack4Pump(t, small, a.fromServer, sftpPacket(fxpHandle, uint32(1), "h1"))
	d2, d3 := "order 1234", "5 is shipped "
	attack4Reads(t, a, len(d2), len(d3))
	a.fromClient(sftpPacket(fxpRead, uint32(9), "h1", uint64(100), uint32(10)))
	// The pump moved to a large buffer; small is back in the pool.
	large := make([]byte, 256<<10)
	n := copy(large, sftpPacket(fxpData, uint32(2), d2))
	if out, err := a.fromServer(large[:n]); err != nil || len(out) != 0 {
		t.Fatalf("not held: %q %v", out, err)
	}
	n = copy(large, sftpPacket(fxpData, uint32(3), d3))
	out, err := a.fromServer(large[:n])
	if err != nil {
		t.Fatal(err)
	}
	sent := append([]byte(nil), out...)
	// Another channel's pump reads its target's raw output into small.
	copy(small, bytes.Repeat([]byte("4111111111111111 "), 100))
	if !bytes.Equal(out, sent) {
		t.Fatalf("the reply to the client changed under it: %q", out)
	}
}

// The detector treats escape sequences inside a number as invisible (a
// number coloured digit by digit is one number), but the hold looks only
// at the data's last byte: a reply that ends in digits and an escape
// sequence, whole or cut, goes on at once though the client has the next
// read outstanding; the next reply completes the number and is blocked,
// after 15 of its digits.
func TestAttack4SFTPHoldMissesEscapeAfterDigits(t *testing.T) {
	t.Parallel()
	// sent is what the first reply holds of the number. With a separator
	// the number is written as cards print it (4-4-4-1, a 13-digit Visa):
	// 15-1 is no card grouping.
	for name, tc := range map[string]struct{ first, sent string }{
		"whole escape": {"card 411111111111111\x1b[0m", "411111111111111"},
		"cut escape":   {"card 411111111111111\x1b[", "411111111111111"},
		"escape, sep":  {"card 4222 2222 2222\x1b[m ", "4222 2222 2222"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := newSFTPStream(&transferEnv{masking: true, filePANs: FilePANsBlock})
			sftpSetup(t, a, "/cards")
			first, second := tc.first, "1 end"
			switch {
			case strings.HasSuffix(first, "["):
				second = "0m1 end"
			case strings.HasPrefix(first, "card 4222"):
				second = "2 end"
			}
			if b := []byte(first + second); mask.MaskInPlace(b, mask.ModeFull) != 1 {
				t.Fatalf("not one number: %q", b)
			}
			attack4Reads(t, a, len(first), len(second))
			out1, _ := a.fromServer(sftpPacket(fxpData, uint32(2), first))
			out2, _ := a.fromServer(sftpPacket(fxpData, uint32(3), second))
			out := append(append([]byte(nil), out1...), out2...)
			if bytes.Contains(out, []byte(tc.sent)) {
				t.Fatalf("the first digits of a blocked number reached the client: %q", out)
			}
		})
	}
}

// A held reply is let go by any other reply: a user who sends a cheap
// request (STAT) between two READs gets every read's digits at once,
// though the next read of the file is outstanding all along: the hold
// that README promises for that case never happens.
func TestAttack4SFTPHoldReleasedByInterleavedStat(t *testing.T) {
	t.Parallel()
	a := newSFTPStream(&transferEnv{masking: true, filePANs: FilePANsBlock})
	sftpSetup(t, a, "/cards")
	first, second := "card 411111111111111", "1 end"
	a.fromClient(sftpPacket(fxpRead, uint32(2), "h1", uint64(0), uint32(len(first))))
	a.fromClient(sftpPacket(fxpStat, uint32(3), "/"))
	a.fromClient(sftpPacket(fxpRead, uint32(4), "h1", uint64(len(first)), uint32(len(second))))
	var out []byte
	for _, p := range [][]byte{
		sftpPacket(fxpData, uint32(2), first),
		sftpPacket(fxpAttrs, uint32(3), uint32(0)),
		sftpPacket(fxpData, uint32(4), second),
	} {
		o, _ := a.fromServer(p)
		out = append(out, o...)
	}
	if bytes.Contains(out, []byte("411111111111111")) {
		t.Fatalf("15 digits of a blocked number reached the client with the next read outstanding: %q", out)
	}
}

// attack4Guard writes each piece to a fresh sshGuard and reports whether it
// stopped the stream, and what reached the client.
func attack4Guard(pieces ...string) (bool, string) {
	var b bytes.Buffer
	g := newSSHGuard(&b)
	for _, p := range pieces {
		if _, err := g.Write([]byte(p)); errors.Is(err, errSpeaksSSH) {
			return true, b.String()
		}
	}
	return false, b.String()
}

// The guard's pre-banner budget is OpenSSH 9's 1024 lines, but the clients
// a user may bring count otherwise: PuTTY (plink, psftp; putty-tools is a
// supported client) looks for "SSH-" at every line start without a limit,
// and OpenSSH 7.x clients (sshconnect.c ssh_exchange_identification) read
// up to 64 KiB of pre-banner bytes, newlines not counted, however many
// lines. A service on a forwarded port that prints 1024 short lines before
// relaying to sshd gives such a client an unrecorded session.
func TestAttack4SSHGuardBannerAfter1024Lines(t *testing.T) {
	t.Parallel()
	stopped, out := attack4Guard(strings.Repeat("\n", 1024), "SSH-2.0-OpenSSH_9.2\r\n")
	if !stopped || strings.Contains(out, "SSH-2.0") {
		t.Fatalf("an SSH version line after 1024 empty lines reached the client (stopped %v)", stopped)
	}
}

// OpenSSH 7.x clients read a version line into a 256-byte buffer and
// judge each 255 bytes as a line of its own: "SSH-" that starts 255 bytes
// into a long line is a version line to them, and the guard only looks at
// line starts.
func TestAttack4SSHGuardBannerInLongLine(t *testing.T) {
	t.Parallel()
	stopped, out := attack4Guard(strings.Repeat("x", 255) + "SSH-2.0-OpenSSH_9.2\r\n")
	if !stopped || strings.Contains(out, "SSH-2.0") {
		t.Fatalf("an SSH version 255 bytes into a line reached the client (stopped %v)", stopped)
	}
}

// The detector joins digits across escape sequences (up to 64 bytes of
// them between two visible bytes), so a coloured number can span far more
// than fileScan's 64-byte overlap. Split between two reads, with the hold
// engaged (the second read outstanding), neither the first read alone nor
// the overlap and the second read holds the whole number: it passes in
// full under file_pans: block, and the record counts no card number.
func TestAttack4SFTPEscapedNumberOutrunsOverlap(t *testing.T) {
	t.Parallel()
	const pan = "4111111111111111"
	var b strings.Builder
	b.WriteString("card ")
	for i := range len(pan) {
		b.WriteByte(pan[i])
		if i < len(pan)-1 {
			b.WriteString("\x1b[38;5;196m")
		}
	}
	b.WriteString("\x1b[0m end\n")
	file := b.String()
	if whole := []byte(file); mask.MaskInPlace(whole, mask.ModeFull) != 1 {
		t.Fatalf("the detector does not see one number in %q", file)
	}
	cut := len("card ") + 8*len("1\x1b[38;5;196m") - len("\x1b[38;5;196m") // after the 8th digit
	first, second := file[:cut], file[cut:]                                // first ends in a digit: held
	var recs []recorder.Transfer
	a := newSFTPStream(&transferEnv{masking: true, filePANs: FilePANsBlock, record: func(r recorder.Transfer) { recs = append(recs, r) }})
	sftpSetup(t, a, "/cards")
	attack4Reads(t, a, len(first), len(second))
	out1, err := a.fromServer(sftpPacket(fxpData, uint32(2), first))
	if err != nil || len(out1) != 0 {
		t.Fatalf("first reply not held: %q %v", out1, err)
	}
	out2, err := a.fromServer(sftpPacket(fxpData, uint32(3), second))
	if err != nil {
		t.Fatal(err)
	}
	shown := bytes.ReplaceAll(attack4FileData(t, out2), []byte("\x1b[38;5;196m"), nil) // as a terminal shows the copy
	if bytes.Contains(shown, []byte(pan)) {
		t.Errorf("the card number reached the client: %q", shown)
	}
	a.fromClient(sftpPacket(fxpClose, uint32(9), "h1"))
	a.fromServer(sftpPacket(fxpStatus, uint32(9), uint32(0), "", ""))
	if len(recs) != 1 || recs[0].PANs != 1 {
		t.Errorf("records %+v", recs)
	}
}

// Under file_pans: mask, chunk counts the numbers of the joined text less
// those of the previous chunk's tail alone, and masks nothing unless that
// is positive. A read that ends inside a long digit run (a 20-digit
// transaction id) where its first digits pass the Luhn check (one cut in
// ten; a user picks the read's length) leaves a tail that holds a number
// alone, and none once the next read's digits join it: the count is one
// short, and the one card number of the next read goes unmasked. With a
// transaction id before each card number, a user reads every number of a
// file whole.
func TestAttack4SFTPMaskTailCountHidesNewNumber(t *testing.T) {
	t.Parallel()
	a := newSFTPStream(&transferEnv{masking: true, mode: mask.ModeFull, filePANs: FilePANsMask})
	sftpSetup(t, a, "/cards")
	line := "txn 41111111111111110325 card 5500000000000004\n"
	if b := []byte(line); mask.MaskInPlace(b, mask.ModeFull) != 1 {
		t.Fatalf("layout: %q", b)
	}
	cut := len("txn 4111111111111111")
	first, second := line[:cut], line[cut:]
	// One read at a time: nothing is held.
	var out []byte
	for i, d := range []string{first, second} {
		off := 0
		if i == 1 {
			off = len(first)
		}
		if _, err := a.fromClient(sftpPacket(fxpRead, uint32(2+i), "h1", uint64(off), uint32(len(d)))); err != nil {
			t.Fatal(err)
		}
		o, err := a.fromServer(sftpPacket(fxpData, uint32(2+i), d))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o...)
	}
	if bytes.Contains(out, []byte("5500000000000004")) {
		t.Fatalf("a card number reached the client whole under file_pans: mask: %q", attack4FileData(t, out))
	}
}
