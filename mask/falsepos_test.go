package mask

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/postern/postern/internal/testenv"
)

// The false-positive half of the corpus: numbers that pass the Luhn check
// but that no brand issues, in the places automation writes them, and
// Ansible temporary directory names whose random part a brand does issue
// but that follows digits and a dash. Under DetectBrands every sample must
// pass unchanged.

// fpSamples is the number of generated samples.
const fpSamples = 12000

// luhnDigit returns the digit that makes digits (without it) pass the
// Luhn check.
func luhnDigit(digits []byte) byte {
	sum := 0
	for i := range digits {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 0 { // doubled once the check digit follows
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

// luhnNumber returns a Luhn-valid number of n digits starting with prefix,
// the rest random.
func luhnNumber(rng *rand.Rand, prefix string, n int) string {
	b := []byte(prefix)
	for len(b) < n-1 {
		b = append(b, byte('0'+rng.IntN(10)))
	}
	return string(append(b, luhnDigit(b)))
}

// unissued returns a Luhn-valid number of 13 to 19 digits that no brand
// issues, by the reference table: its prefix is in no range, or its length
// is not one the brands of its prefix use. inTable reports which.
func unissued(rng *rand.Rand) (num string, inTable bool) {
	for {
		n := 13 + rng.IntN(7)
		num = luhnNumber(rng, "", n)
		if testenv.RefIssued(num) {
			continue
		}
		for k := 13; k <= 19; k++ {
			if testenv.RefIssued(num[:min(k, n)] + strings.Repeat("0", max(0, k-n))) {
				inTable = true
			}
		}
		return num, inTable
	}
}

// dashJoined cuts num into groups of lengths that no printing of a card
// number starts with or holds alone (never 4 or 6, at most 12), joined by
// '-': an ID like 1796149455-32464-540584239609.
func dashJoined(rng *rand.Rand, num string) string {
	var b strings.Builder
	for len(num) > 0 {
		n := min(len(num), []int{1, 2, 3, 5, 7, 8, 9, 10, 11, 12}[rng.IntN(10)])
		if rest := len(num) - n; rest == 4 || rest == 6 {
			// The last group would be 4 or 6 digits.
			if n < 12 {
				n++
			} else {
				n--
			}
		}
		if b.Len() > 0 {
			b.WriteByte('-')
		}
		b.WriteString(num[:n])
		num = num[n:]
	}
	return b.String()
}

// ansibleBrands are the prefixes and lengths of issued numbers that
// Ansible's random part, random.randint(0, 2**48), can take: at most
// 281474976710656, so at most 14 digits: no brand issues 15 digits under
// 1 or 2 (UATP, prefix 1, is not a payment brand the package knows).
var ansibleBrands = []struct {
	prefix string
	n      int
}{
	{"30", 14}, {"36", 14}, {"38", 14}, {"39", 14}, // Diners Club
	{"62", 14}, {"81", 14}, // UnionPay
	{"4", 13}, {"4", 14}, // Visa
	{"50", 13}, {"58", 14}, {"63", 13}, {"67", 14}, // Maestro
}

// ansibleTmp returns the directory Ansible makes on a target,
// ansible-tmp-<time.time()>-<pid>-<random.randint(0, 2**48)>, as a shell
// command: half of them with a pid and random part that pass the Luhn check
// together (17 digits, no brand's), half with a random part that a brand
// issues and that passes the Luhn check on its own.
func ansibleTmp(rng *rand.Rand) string {
	at := fmt.Sprintf("%d.%07d", 1796000000+rng.IntN(1e6), rng.IntN(1e7))
	var pid, random string
	if rng.IntN(2) == 0 {
		pidRand := luhnNumber(rng, strconv.Itoa(10000+rng.IntN(90000)), 17)
		pid, random = pidRand[:5], pidRand[5:]
	} else {
		b := ansibleBrands[rng.IntN(len(ansibleBrands))]
		random = luhnNumber(rng, b.prefix, b.n)
		if !testenv.RefIssued(random) || len(random) == 15 && random > "281474976710656" {
			panic("ansibleTmp: " + random)
		}
		// Any pid up to Linux's largest pid_max, but not one of six digits
		// before 13: pid-random is then grouped 6-13, a printing cards
		// use, and judged as one number of 19 digits (masked when a brand
		// issues it and it passes the Luhn check).
		for pid = strconv.Itoa(1 + rng.IntN(4194304)); len(pid) == 6 && len(random) == 13; {
			pid = strconv.Itoa(1 + rng.IntN(4194304))
		}
	}
	dir := "ansible-tmp-" + at + "-" + pid + "-" + random
	return `/bin/sh -c '( umask 77 && mkdir -p "$HOME/.ansible/tmp"&& mkdir "$HOME/.ansible/tmp/` + dir +
		`" && echo ` + dir + `="` + "`" + ` echo $HOME/.ansible/tmp/` + dir + " `" + `" ) && sleep 0'` + "\n"
}

// fpCorpus returns the generated samples, one Luhn-valid unissued number
// (or group run) each, and how many of the numbers have a prefix in the
// table but a length its brands do not issue.
var fpCorpus = sync.OnceValues(func() ([]string, int) {
	rng := rand.New(rand.NewPCG(13, 1))
	small := func() string { return strconv.Itoa(rng.IntN(1e6)) }
	var out []string
	wrongLength := 0
	for len(out) < fpSamples {
		num, inTable := unissued(rng)
		if inTable {
			wrongLength++
		}
		var s string
		switch rng.IntN(8) {
		case 0:
			s = `{"id":` + num + `,"user":` + small() + `,"ok":true}`
		case 1:
			s = small() + "," + num + ",EUR," + small() + ".00\n"
		case 2:
			s = "2026-12-05T21:16:11.123Z INFO order=" + num + " status=shipped took=" + small() + "ms\n"
		case 3:
			s = "job " + dashJoined(rng, num) + " done\n"
		case 4:
			s = ` | ` + num + ` | ` + small() + " |\n"
		case 5: // epoch milliseconds, 2026-2027: 13 digits from 17 or 18
			num = luhnNumber(rng, strconv.Itoa(17+rng.IntN(2)), 13)
			s = `{"ts":` + num + `,"level":"info"}` + "\n"
		case 6: // Ansible: seconds.micros-pid-random
			s = ansibleTmp(rng)
		default:
			s = "ts=" + luhnNumber(rng, "17", 13) + " id=" + num + " " + dashJoined(rng, num) + "\n"
		}
		out = append(out, s)
	}
	return out, wrongLength
})

// TestFalsePositives: no generated sample is changed, by Mask or by a
// Writer fed them all; the reference agrees; and the broader rules would
// have masked most of them.
func TestFalsePositives(t *testing.T) {
	t.Parallel()
	samples, wrongLength := fpCorpus()
	if wrongLength < fpSamples/20 || wrongLength > fpSamples*19/20 {
		t.Errorf("%d of %d numbers have an issued prefix and an unissued length; want a fair share of both kinds", wrongLength, fpSamples)
	}
	for _, s := range samples {
		if got, n := Mask(nil, []byte(s), ModeFull); n != 0 {
			t.Fatalf("masked %q to %q", s, got)
		}
		if pans := testenv.RefPANs([]byte(s), false); len(pans) > 0 {
			t.Fatalf("reference finds %v in %q", pans, s)
		}
	}
	all := []byte(strings.Join(samples, ""))
	if got := stream(t, all, randomCuts(rand.New(rand.NewPCG(1, 1)), len(all)), ModeFull); !bytes.Equal(got, all) {
		t.Fatal("a Writer changed the corpus")
	}
	brands, luhn, re := fpRates(samples)
	t.Logf("false positives on %d samples of Luhn-valid numbers that are no card numbers: brands %.2f%%, luhn %.2f%%, regexp baseline %.2f%%",
		len(samples), brands, luhn, re)
	if brands != 0 || luhn < 50 || re < 50 {
		t.Errorf("rates brands %.2f%%, luhn %.2f%%, regexp %.2f%%: want 0 and over 50", brands, luhn, re)
	}
}

// fpRates returns the percentage of samples that DetectBrands, DetectLuhn
// and the regexp baseline change.
func fpRates(samples []string) (brands, luhn, re float64) {
	var nb, nl, nr int
	var buf bytes.Buffer
	for _, s := range samples {
		if _, n := Mask(nil, []byte(s), ModeFull); n > 0 {
			nb++
		}
		if _, n := DetectLuhn.Mask(nil, []byte(s), ModeFull); n > 0 {
			nl++
		}
		buf.Reset()
		regexpMasker{&buf}.Write([]byte(s))
		if buf.String() != s {
			nr++
		}
	}
	pct := func(n int) float64 { return 100 * float64(n) / float64(len(samples)) }
	return pct(nb), pct(nl), pct(nr)
}

// randomNumbers are log-like lines holding uniformly random numbers of 13
// to 19 digits, Luhn-valid or not: the share each rule masks is how often
// an arbitrary long number (an ID, a timestamp) is rewritten.
var randomNumbers = sync.OnceValue(func() []string {
	rng := rand.New(rand.NewPCG(17, 19))
	out := make([]string, fpSamples)
	for i := range out {
		n := 13 + rng.IntN(7)
		b := make([]byte, n)
		for k := range b {
			b[k] = byte('0' + rng.IntN(10))
		}
		out[i] = "id=" + string(b) + " ok\n"
	}
	return out
})

// BenchmarkFalsePositives reports the share of samples each rule changes:
// the generated corpus of Luhn-valid unissued numbers (fp-*), and random
// numbers (random-*, where the brand rule's share is numbers that a brand
// does issue).
func BenchmarkFalsePositives(b *testing.B) {
	samples, _ := fpCorpus()
	random := randomNumbers()
	var fb, fl, fr, rb, rl, rr float64
	for b.Loop() {
		fb, fl, fr = fpRates(samples)
		rb, rl, rr = fpRates(random)
	}
	b.ReportMetric(fb, "fp-brands-%")
	b.ReportMetric(fl, "fp-luhn-%")
	b.ReportMetric(fr, "fp-regexp-%")
	b.ReportMetric(rb, "random-brands-%")
	b.ReportMetric(rl, "random-luhn-%")
	b.ReportMetric(rr, "random-regexp-%")
}
