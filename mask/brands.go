package mask

import "slices"

// The brand table: which issuer prefixes (IINs) payment brands issue card
// numbers under, and in which lengths; and the groupings card numbers are
// printed in. DetectBrands masks only numbers that fit both.
//
// Sources, checked in 2026 (facts only):
//   - Wikipedia, "Payment card number", section "Issuer identification
//     number (IIN)": the table of brands, IIN ranges and lengths (revision
//     of July 2024), itself built on ISO/IEC 7812-1 (the numbering: a PAN
//     is 8 to 19 digits, the last a Luhn check digit) and the brands'
//     published ranges. Earlier revisions of the same table list Maestro
//     as 50 and 56–69.
//   - braintree/credit-card-type (src/lib/card-types.ts), the card-brand
//     table of Braintree's client SDKs: ranges and lengths for Maestro,
//     UnionPay, JCB, elo, Hipercard and Hiper, and the gaps its formatter
//     prints numbers with (after digits 4, 8 and 12 for most brands; after
//     4 and 10 for American Express and Diners Club).
//
// Left out: brands that no longer issue (Bankcard, Diners Club enRoute,
// Laser, Solo, Switch) and those without a Luhn check digit (AfriGo).
// Lengths below 13 (Maestro issues 12) are never candidates: see minDigits.
// A range longer than six digits is widened to its six-digit prefixes,
// which can only mask more.

// brand is one row of the table: IIN ranges as "lo-hi" or a single prefix,
// lo and hi with the same number of digits, and the lengths issued.
type brand struct {
	name string
	iins []iin
	lens lengthSet
}

// iin is a range of issuer prefixes, inclusive, both with digits digits.
type iin struct {
	lo, hi int32
	digits int8
}

// lengthSet has bit n set when n-digit numbers are issued.
type lengthSet uint32

func lengths(from, to int) lengthSet {
	var s lengthSet
	for n := from; n <= to; n++ {
		s |= 1 << n
	}
	return s
}

func only(n ...int) lengthSet {
	var s lengthSet
	for _, k := range n {
		s |= 1 << k
	}
	return s
}

// pfx is a single prefix; pfxs a range. The digit count is that of lo.
func pfx(v int32) iin { return pfxs(v, v) }
func pfxs(lo, hi int32) iin {
	d := int8(0)
	for x := lo; x > 0; x /= 10 {
		d++
	}
	return iin{lo, hi, d}
}

var brands = []brand{
	{"American Express", []iin{pfx(34), pfx(37)}, only(15)},
	{"China T-Union", []iin{pfx(31)}, only(19)},
	{"UnionPay", []iin{pfx(62), pfx(81)}, lengths(14, 19)},
	{"Diners Club International", []iin{pfx(30), pfx(36), pfxs(38, 39)}, lengths(14, 19)},
	{"Discover", []iin{pfx(6011), pfxs(622126, 622925), pfxs(644, 649), pfx(65)}, lengths(16, 19)},
	{"RuPay", []iin{pfx(60), pfx(65), pfxs(81, 82), pfx(508), pfx(353), pfx(356)}, only(16)},
	{"UkrCard", []iin{pfxs(604001, 604200)}, lengths(16, 19)}, // 60400100–60420099
	{"InterPayment", []iin{pfx(636)}, lengths(16, 19)},
	{"InstaPayment", []iin{pfxs(637, 639)}, only(16)},
	{"JCB", []iin{pfxs(3528, 3589)}, lengths(16, 19)},
	{"Maestro", []iin{pfx(5018), pfx(5020), pfx(5038), pfx(5893), pfx(6304), pfx(6759), pfxs(6761, 6763),
		pfx(50), pfxs(56, 59), pfx(63), pfx(67)}, lengths(12, 19)},
	{"Dankort", []iin{pfx(5019), pfx(4571)}, only(16)},
	{"Mir", []iin{pfxs(2200, 2204)}, lengths(16, 19)},
	{"BORICA", []iin{pfx(2205)}, lengths(16, 19)},
	{"NPS Pridnestrovie", []iin{pfx(605474)}, only(16)}, // 6054740–6054744
	{"Mastercard", []iin{pfxs(51, 55), pfxs(2221, 2720)}, only(16)},
	{"Troy", []iin{pfx(65), pfx(9792)}, only(16)},
	{"Visa", []iin{pfx(4)}, lengths(13, 19)}, // 13, 16 and 19; V Pay any of 13 to 19
	{"Verve", []iin{pfxs(506099, 506198), pfxs(650002, 650027), pfxs(507865, 507964)}, only(16, 18, 19)},
	{"LankaPay", []iin{pfx(357111)}, only(16)},
	{"UzCard", []iin{pfx(8600), pfx(5614)}, only(16)},
	{"Humo", []iin{pfx(9860)}, only(16)},
	{"GPN", []iin{pfx(1946), pfx(50), pfx(56), pfx(58), pfxs(60, 63)}, only(16, 18, 19)},
	{"Napas", []iin{pfx(9704)}, only(16, 19)},
	{"elo", []iin{pfx(401178), pfx(401179), pfx(431274), pfx(438935), pfx(451416), pfx(457393), pfx(457631), pfx(457632),
		pfx(504175), pfxs(506699, 506778), pfxs(509000, 509999), pfx(627780), pfx(636297), pfx(636368),
		pfxs(650031, 650033), pfxs(650035, 650051), pfxs(650405, 650439), pfxs(650485, 650538), pfxs(650541, 650598),
		pfxs(650700, 650718), pfxs(650720, 650727), pfxs(650901, 650978), pfxs(651652, 651679),
		pfxs(655000, 655019), pfxs(655021, 655058)}, only(16)},
	{"Hipercard", []iin{pfx(606282)}, only(16)},
	{"Hiper", []iin{pfx(637095), pfx(637374), pfx(637433), pfx(637568), pfx(637599), pfx(637609), pfx(637612)}, only(16)},
}

// iinStart and iinLengths are the table flattened over six-digit
// prefixes: the prefixes from iinStart[i] up to the next start are issued
// in the lengths iinLengths[i]. Built once; read without locks.
var iinStart, iinLengths = flatten(brands)

// flatten cuts the six-digit prefix space at every range bound and gives
// each piece the union of the lengths of the ranges that cover it.
func flatten(bs []brand) ([]int32, []lengthSet) {
	type span struct {
		lo, hi int32 // six-digit prefixes, inclusive
		l      lengthSet
	}
	var spans []span
	cuts := []int32{0}
	for _, b := range bs {
		for _, x := range b.iins {
			scale := int32(1)
			for range 6 - x.digits {
				scale *= 10
			}
			s := span{x.lo * scale, (x.hi+1)*scale - 1, b.lens}
			spans = append(spans, s)
			cuts = append(cuts, s.lo, s.hi+1)
		}
	}
	slices.Sort(cuts)
	cuts = slices.Compact(cuts)
	var start []int32
	var ls []lengthSet
	for _, c := range cuts {
		var l lengthSet
		for _, s := range spans {
			if s.lo <= c && c <= s.hi {
				l |= s.l
			}
		}
		if len(ls) > 0 && ls[len(ls)-1] == l {
			continue
		}
		start, ls = append(start, c), append(ls, l)
	}
	return start, ls
}

// iinQuick[p] holds the lengths issued under the four-digit prefix p when
// all its six-digit prefixes share them, and mixed when they do not (then
// issued searches iinStart): one load instead of a search for nearly every
// prefix.
var iinQuick = func() (q [10000]lengthSet) {
	j := 0
	for p := range int32(10000) {
		lo, hi := p*100, p*100+99
		for j+1 < len(iinStart) && iinStart[j+1] <= lo {
			j++
		}
		q[p] = iinLengths[j]
		if j+1 < len(iinStart) && iinStart[j+1] <= hi {
			q[p] = mixed
		}
	}
	return q
}()

// mixed marks an iinQuick entry whose six-digit prefixes differ; no length
// uses its bit.
const mixed lengthSet = 1 << 31

// issued reports whether a brand issues n-digit numbers that start with
// the digit values d[0:6].
func issued(d []uint8, n int) bool {
	d = d[:6]
	p := uint32(d[0])*1000 + uint32(d[1])*100 + uint32(d[2])*10 + uint32(d[3])
	l := iinQuick[p%10000]
	if l == mixed {
		l = search(int32(p*100 + uint32(d[4])*10 + uint32(d[5])))
	}
	return l>>n&1 != 0
}

// search returns the lengths issued under the six-digit prefix v.
func search(v int32) lengthSet {
	// The last start at or below v.
	lo, hi := 0, len(iinStart)
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if iinStart[m] <= v {
			lo = m
		} else {
			hi = m
		}
	}
	return iinLengths[lo]
}

// The groupings a number written in several groups must follow, as the
// lengths of its groups, first to last. A card shows its number in groups
// of four (16 digits: 4-4-4-4), American Express in 4-6-5 and Diners Club
// in 4-6-4; formatters that put a gap every four digits print any length
// as fours and a shorter rest, and those that stop after the third gap
// (Braintree's) end in one longer group. So:
//   - 4-4-4-N, N from 1 to 7 (13 to 19 digits);
//   - 4-4-4-4-N, N from 1 to 3 (17 to 19 digits);
//   - 4-4-5 (13 digits, as Visa printed them);
//   - 4-6-N, N from 4 to 9 (14 to 19 digits);
//   - 6-13 (19 digits: UnionPay and Maestro cards that print the IIN apart).
//
// A number in one group (no separator) has no grouping to follow.
var groupings = func() (keys []uint32) {
	var shapes [][]int
	for n := 1; n <= 7; n++ {
		shapes = append(shapes, []int{4, 4, 4, n})
	}
	for n := 1; n <= 3; n++ {
		shapes = append(shapes, []int{4, 4, 4, 4, n})
	}
	for n := 4; n <= 9; n++ {
		shapes = append(shapes, []int{4, 6, n})
	}
	shapes = append(shapes, []int{4, 4, 5}, []int{6, 13})
	for _, sh := range shapes {
		keys = append(keys, shapeKey(sh))
	}
	return keys
}()

// maxGroups is the most groups a grouping has.
const maxGroups = 5

// shapeKey encodes group lengths the way scanner.card builds them, from
// the last group back: five bits each, the first group lowest.
func shapeKey(groups []int) uint32 {
	var k uint32
	for i := len(groups) - 1; i >= 0; i-- {
		k = k<<5 | uint32(groups[i])
	}
	return k
}

// printed reports whether the grouping encoded in key is one of groupings.
func printed(key uint32) bool {
	return slices.Contains(groupings, key)
}
