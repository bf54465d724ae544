package bastion

import (
	"bytes"
	"strings"
	"testing"

	"github.com/postern/postern/mask"
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
