package mask

import "strconv"

// CardShaped reports whether n, written in decimal, could be taken for a
// card number under some Detect setting: 13 to 19 digits that pass the
// Luhn check. Numbers Postern makes up for people to read, such as
// certificate serials, avoid these, so that masking never hides them from
// the user or the audit log.
func CardShaped(n uint64) bool {
	var buf [20]byte
	d := strconv.AppendUint(buf[:0], n, 10)
	if len(d) < minDigits || len(d) > maxDigits {
		return false
	}
	sum := 0
	for i, k := len(d)-1, 0; i >= 0; i, k = i-1, k+1 {
		v := d[i] - '0'
		if k&1 == 1 {
			v = luhnDouble[v]
		}
		sum += int(v)
	}
	return sum%10 == 0
}
