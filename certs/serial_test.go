package certs

import (
	"testing"

	"github.com/postern/postern/mask"
)

// TestSerialNeverCardShaped draws serials the way every certificate gets
// one: none may be zero, at or above 2^63, or card-shaped. One random
// number in ten or so of 13 to 19 digits passes the Luhn check, so
// without the filter 2000 draws would hold about 200.
func TestSerialNeverCardShaped(t *testing.T) {
	for range 2000 {
		s, err := Serial()
		if err != nil {
			t.Fatal(err)
		}
		if s == 0 || s >= 1<<63 || mask.CardShaped(s) {
			t.Fatalf("serial %d: zero, not below 2^63 or card-shaped", s)
		}
		if r := randomSerial(); r == 0 || mask.CardShaped(r) {
			t.Fatalf("randomSerial %d: zero or card-shaped", r)
		}
	}
}
