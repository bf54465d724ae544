package mask

import "fmt"

// Mode says which digits of a PAN are replaced by '*'.
type Mode int

const (
	// ModeFirst6Last4 keeps the first six and the last four digits
	// (411111******1111), the most PCI DSS 3.3 allows to display. It is the
	// zero value.
	ModeFirst6Last4 Mode = iota
	// ModeLast4 keeps only the last four digits (************1111).
	ModeLast4
	// ModeFull replaces every digit (****************). Any Mode value not
	// listed here behaves like ModeFull.
	ModeFull
)

// String returns the name ParseMode accepts.
func (m Mode) String() string {
	switch m {
	case ModeFirst6Last4:
		return "first6last4"
	case ModeLast4:
		return "last4"
	case ModeFull:
		return "full"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode returns the Mode named s: "first6last4" (or ""), "last4" or
// "full".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "first6last4":
		return ModeFirst6Last4, nil
	case "last4":
		return ModeLast4, nil
	case "full":
		return ModeFull, nil
	}
	return 0, fmt.Errorf("mask: unknown mode %q (want first6last4, last4 or full)", s)
}

// Detect says which numbers are card numbers (see the package
// documentation, Detection).
type Detect int

const (
	// DetectBrands masks a number only if a payment brand issues numbers
	// of its prefix and length, it is written in one group that does not
	// follow digits and a dash or in a grouping cards are printed with,
	// and it passes the Luhn check. It is the zero value.
	DetectBrands Detect = iota
	// DetectLuhn masks every number of 13 to 19 digits, in one group or
	// any groups, that passes the Luhn check: the broader rule, which also
	// masks about one in ten timestamps and long IDs. Any Detect value not
	// listed here behaves like DetectLuhn.
	DetectLuhn
)

// String returns the name ParseDetect accepts.
func (d Detect) String() string {
	switch d {
	case DetectBrands:
		return "brands"
	case DetectLuhn:
		return "luhn"
	}
	return fmt.Sprintf("Detect(%d)", int(d))
}

// ParseDetect returns the Detect named s: "brands" (or "") or "luhn".
func ParseDetect(s string) (Detect, error) {
	switch s {
	case "", "brands":
		return DetectBrands, nil
	case "luhn":
		return DetectLuhn, nil
	}
	return 0, fmt.Errorf("mask: unknown detection %q (want brands or luhn)", s)
}
