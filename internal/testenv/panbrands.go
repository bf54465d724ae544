package testenv

import (
	"fmt"
	"slices"
	"strings"
)

// The reference brand table, kept apart from mask/brands.go and written
// differently (prefix strings compared as text, lengths as lists), from
// the same sources: Wikipedia's "Payment card number" IIN table and
// braintree/credit-card-type. A number is issued if its first digits fall
// in a range from..to (compared over len(from) digits) and its length is
// listed.
var refBrands = []struct {
	from, to string
	lengths  []int
}{
	{"34", "34", []int{15}}, {"37", "37", []int{15}}, // American Express
	{"31", "31", []int{19}},                                                                  // China T-Union
	{"62", "62", []int{14, 15, 16, 17, 18, 19}}, {"81", "81", []int{14, 15, 16, 17, 18, 19}}, // UnionPay
	{"30", "30", []int{14, 15, 16, 17, 18, 19}}, {"36", "36", []int{14, 15, 16, 17, 18, 19}}, // Diners Club
	{"38", "39", []int{14, 15, 16, 17, 18, 19}},
	{"6011", "6011", []int{16, 17, 18, 19}}, {"622126", "622925", []int{16, 17, 18, 19}}, // Discover
	{"644", "649", []int{16, 17, 18, 19}}, {"65", "65", []int{16, 17, 18, 19}},
	{"60", "60", []int{16}}, {"65", "65", []int{16}}, {"81", "82", []int{16}}, // RuPay
	{"508", "508", []int{16}}, {"353", "353", []int{16}}, {"356", "356", []int{16}},
	{"60400100", "60420099", []int{16, 17, 18, 19}},                                                          // UkrCard
	{"636", "636", []int{16, 17, 18, 19}},                                                                    // InterPayment
	{"637", "639", []int{16}},                                                                                // InstaPayment
	{"3528", "3589", []int{16, 17, 18, 19}},                                                                  // JCB
	{"50", "50", []int{12, 13, 14, 15, 16, 17, 18, 19}}, {"56", "59", []int{12, 13, 14, 15, 16, 17, 18, 19}}, // Maestro
	{"63", "63", []int{12, 13, 14, 15, 16, 17, 18, 19}}, {"67", "67", []int{12, 13, 14, 15, 16, 17, 18, 19}},
	{"5893", "5893", []int{12, 13, 14, 15, 16, 17, 18, 19}},
	{"5019", "5019", []int{16}}, {"4571", "4571", []int{16}}, // Dankort
	{"2200", "2204", []int{16, 17, 18, 19}},              // Mir
	{"2205", "2205", []int{16, 17, 18, 19}},              // BORICA
	{"6054740", "6054744", []int{16}},                    // NPS Pridnestrovie
	{"51", "55", []int{16}}, {"2221", "2720", []int{16}}, // Mastercard
	{"9792", "9792", []int{16}},                                                                                               // Troy
	{"4", "4", []int{13, 14, 15, 16, 17, 18, 19}},                                                                             // Visa
	{"506099", "506198", []int{16, 18, 19}}, {"650002", "650027", []int{16, 18, 19}}, {"507865", "507964", []int{16, 18, 19}}, // Verve
	{"8600", "8600", []int{16}}, {"5614", "5614", []int{16}}, // UzCard
	{"9860", "9860", []int{16}},                                                                           // Humo
	{"1946", "1946", []int{16, 18, 19}}, {"58", "58", []int{16, 18, 19}}, {"60", "63", []int{16, 18, 19}}, // GPN (50, 56 above)
	{"9704", "9704", []int{16, 19}}, // Napas
	{"650031", "650051", []int{16}}, // elo (those outside wider rows)
	{"650405", "650439", []int{16}}, {"650485", "650538", []int{16}}, {"650541", "650598", []int{16}},
	{"650700", "650727", []int{16}}, {"650901", "650978", []int{16}}, {"651652", "651679", []int{16}},
	{"655000", "655058", []int{16}}, {"504175", "504175", []int{16}}, {"506699", "506778", []int{16}},
	{"509000", "509999", []int{16}}, {"627780", "627780", []int{16}}, {"636297", "636297", []int{16}},
	{"636368", "636368", []int{16}},
}

// RefIssued reports whether a payment brand issues the card number digits
// (its prefix and its length).
func RefIssued(digits string) bool {
	for _, r := range refBrands {
		if len(digits) < len(r.from) || !slices.Contains(r.lengths, len(digits)) {
			continue
		}
		head := digits[:len(r.from)]
		if head >= r.from && head <= r.to {
			return true
		}
	}
	return false
}

// refPrintings are the groupings of a card number written in groups.
var refPrintings = []string{
	"4-4-4-1", "4-4-4-2", "4-4-4-3", "4-4-4-4", "4-4-4-5", "4-4-4-6", "4-4-4-7",
	"4-4-4-4-1", "4-4-4-4-2", "4-4-4-4-3",
	"4-4-5",
	"4-6-4", "4-6-5", "4-6-6", "4-6-7", "4-6-8", "4-6-9",
	"6-13",
}

// refPrinted reports whether groups of lengths lens, first to last, are a
// grouping cards are printed with.
func refPrinted(lens []int) bool {
	s := make([]string, len(lens))
	for i, n := range lens {
		s[i] = fmt.Sprint(n)
	}
	return slices.Contains(refPrintings, strings.Join(s, "-"))
}
