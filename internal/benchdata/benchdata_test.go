package benchdata

import (
	"bytes"
	"testing"

	"github.com/postern/postern/mask"
)

// TerminalText is the same for the same size (benchmark figures compare
// across runs), holds the mix it promises, and its PANs are the ones the
// masker masks.
func TestTerminalText(t *testing.T) {
	const size = 4 << 20
	a, b := TerminalText(size), TerminalText(size)
	if len(a) < size || !bytes.Equal(a, b) {
		t.Fatalf("two texts of %d bytes: lengths %d and %d, equal %v", size, len(a), len(b), bytes.Equal(a, b))
	}
	for _, want := range []string{"\x1b[01;34m", " | ", "Z INFO  http:", "systemctl status", "\r\n"} {
		if !bytes.Contains(a, []byte(want)) {
			t.Errorf("text holds no %q", want)
		}
	}
	pans := bytes.Count(a, []byte("payment card=4111111111111111"))
	if pans == 0 {
		t.Fatal("text holds no PAN")
	}
	if _, n := mask.Mask(nil, a, mask.ModeFirst6Last4); n != pans {
		t.Errorf("masker masks %d PANs, text has %d", n, pans)
	}
}
