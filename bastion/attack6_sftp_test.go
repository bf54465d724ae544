package bastion

import (
	"bytes"
	"strings"
	"testing"
)

// attack6UTF16 is s in UTF-16LE, as Windows tools and PowerShell's ">"
// write text files.
func attack6UTF16(s string) string {
	var b strings.Builder
	for i := range len(s) {
		b.WriteByte(s[i])
		b.WriteByte(0)
	}
	return b.String()
}

// An sftp reply whose data ends in a digit is held until the next read is
// judged with it, but one that ends in a digit and a NUL (UTF-16LE text:
// every character is followed by one) is not: candidateEnd passes over
// escape sequences only, while the detector passes over NUL and the other
// ignored controls. A card number in a UTF-16 file cut between two reads
// (a 32 KiB read boundary, with OpenSSH's 64 reads in flight) leaves its
// first digits unmasked: cut after its 12th digit, under file_pans: mask
// with the default first6last4, the client gets all 16; under block, the
// first 12.
func TestAttack6SFTPUTF16SplitNumberNotHeld(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{FilePANsMask, FilePANsBlock} {
		a := newSFTPStream(&transferEnv{masking: true, filePANs: policy})
		sftpSetup(t, a, "/f")
		first, second := attack6UTF16("card 411111111111"), attack6UTF16("1111 exp 12/29\r\n")
		a.fromClient(sftpPacket(fxpRead, uint32(2), "h1", uint64(0), uint32(len(first))))
		a.fromClient(sftpPacket(fxpRead, uint32(3), "h1", uint64(len(first)), uint32(len(second))))
		out1, _ := a.fromServer(sftpPacket(fxpData, uint32(2), first))
		out2, _ := a.fromServer(sftpPacket(fxpData, uint32(3), second))
		if len(out1) != 0 {
			t.Errorf("%s: the first reply, ending in a digit and a NUL, is not held", policy)
		}
		got := strings.ReplaceAll(string(append(out1, out2...)), "\x00", "")
		if strings.Contains(got, "4111111111111111") || strings.Contains(got, "41111111111") {
			t.Errorf("%s: the client gets the digits in clear: %q", policy, got)
		}
	}
	// The same, UTF-16 with a separator at the cut ("4111 1111 1111 " | "1111").
	a := newSFTPStream(&transferEnv{masking: true, filePANs: FilePANsMask})
	sftpSetup(t, a, "/f")
	first, second := attack6UTF16("card 4111 1111 1111 "), attack6UTF16("1111\r\n")
	a.fromClient(sftpPacket(fxpRead, uint32(2), "h1", uint64(0), uint32(len(first))))
	a.fromClient(sftpPacket(fxpRead, uint32(3), "h1", uint64(len(first)), uint32(len(second))))
	if out1, _ := a.fromServer(sftpPacket(fxpData, uint32(2), first)); len(out1) != 0 {
		t.Errorf("a reply ending in digit, NUL, space, NUL is not held: %q", bytes.ReplaceAll(out1, []byte{0}, nil))
	}
}

// A reply whose data ends in an erase (BS) is not held either, but what
// follows may continue the number the erase reopened: "4111111111111\b"
// then "1111" is the card number 4111111111111111 to the detector, and its
// first 12 digits went out in the first reply.
func TestAttack6SFTPEraseAtReadEnd(t *testing.T) {
	t.Parallel()
	a := newSFTPStream(&transferEnv{masking: true, filePANs: FilePANsMask})
	sftpSetup(t, a, "/f")
	first, second := "card 4111111111112\b", "1111 exp\n"
	a.fromClient(sftpPacket(fxpRead, uint32(2), "h1", uint64(0), uint32(len(first))))
	a.fromClient(sftpPacket(fxpRead, uint32(3), "h1", uint64(len(first)), uint32(len(second))))
	out1, _ := a.fromServer(sftpPacket(fxpData, uint32(2), first))
	out2, _ := a.fromServer(sftpPacket(fxpData, uint32(3), second))
	if len(out1) != 0 {
		t.Errorf("the first reply, ending in an erase, is not held: %q", out1)
	}
	if got := string(append(out1, out2...)); strings.Contains(got, "411111111111") {
		t.Errorf("the client gets the digits in clear: %q", got)
	}
}
