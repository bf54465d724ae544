package mask

import (
	"fmt"
	"testing"

	"github.com/postern/postern/internal/testenv"
)

// TestIssuedTable holds the brand table to the reference's, written apart:
// every six-digit prefix, each with one length of 13 to 19 (cycling), and
// every length for the prefixes of the brands' test numbers.
func TestIssuedTable(t *testing.T) {
	t.Parallel()
	check := func(v, n int) {
		s := fmt.Sprintf("%06d", v)
		for len(s) < n {
			s += "0"
		}
		var d [6]uint8
		for i := range d {
			d[i] = s[i] - '0'
		}
		if got, want := issued(d[:], n), testenv.RefIssued(s); got != want {
			t.Fatalf("%d digits from %06d: issued %v, reference %v", n, v, got, want)
		}
		if q := iinQuick[v/100]; q != mixed && q != search(int32(v)) {
			t.Fatalf("%06d: quick table %b, search %b", v, q, search(int32(v)))
		}
	}
	for v := range 1000000 {
		check(v, 13+v%7)
	}
	for _, v := range []int{411111, 555555, 222300, 378282, 601111, 305693, 356600, 620000, 675964, 220000, 652100, 506099, 979200, 100000, 501900, 650031, 970400, 860000, 986000, 310000} {
		for n := 13; n <= 19; n++ {
			check(v, n)
		}
	}
}

// The groupings the package documents, and some it does not allow.
func TestPrinted(t *testing.T) {
	t.Parallel()
	for _, g := range [][]int{{4, 4, 4, 4}, {4, 6, 5}, {4, 6, 4}, {4, 4, 4, 4, 3}, {6, 13}, {4, 4, 5}, {4, 4, 4, 1}, {4, 4, 4, 7}, {4, 6, 9}, {4, 4, 4, 4, 1}} {
		if !printed(shapeKey(g)) {
			t.Errorf("%v is not a grouping", g)
		}
	}
	for _, g := range [][]int{{5, 12}, {10, 5}, {4, 12}, {8, 4, 4}, {4, 4, 4, 4, 4}, {3, 4, 4, 4}, {4, 4, 4, 8}, {4, 6, 3}, {13, 6}, {4, 5, 6}} {
		if printed(shapeKey(g)) {
			t.Errorf("%v is a grouping", g)
		}
	}
}
