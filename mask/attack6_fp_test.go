package mask

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Attack 6, precision: ordinary output that DetectBrands still rewrites.
// The package's own corpus (falsepos_test.go) draws only numbers no brand
// issues; these generators draw what real tools print, so the brand table
// decides by chance. Each class logs its rate under DetectBrands and
// DetectLuhn and fails if DetectBrands changes any sample.

const attack6FPSamples = 5000

// attack6IBAN returns a valid IBAN (ISO 13616 check digits) for country cc
// and the digits of bban, in the paper format: groups of four.
func attack6IBAN(cc, bban string) string {
	conv := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			if r >= 'A' && r <= 'Z' {
				b.WriteString(strconv.Itoa(int(r-'A') + 10))
			} else {
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	n, _ := new(big.Int).SetString(conv(bban+cc+"00"), 10)
	check := 98 - new(big.Int).Mod(n, big.NewInt(97)).Int64()
	iban := fmt.Sprintf("%s%02d%s", cc, check, bban)
	var g []string
	for i := 0; i < len(iban); i += 4 {
		g = append(g, iban[i:min(i+4, len(iban))])
	}
	return strings.Join(g, " ")
}

func attack6Digits(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + rng.IntN(10))
	}
	return string(b)
}

var attack6FPClasses = []struct {
	name string
	gen  func(rng *rand.Rand) string
}{
	// German IBAN, paper format: DEkk BBBB BBBB AAAA AAAA AA, the bank
	// code (BLZ) 8 digits starting 1 to 8.
	{"IBAN DE grouped", func(rng *rand.Rand) string {
		blz := strconv.Itoa(1+rng.IntN(8)) + attack6Digits(rng, 7)
		return "Empfänger: ACME GmbH, IBAN: " + attack6IBAN("DE", blz+attack6Digits(rng, 10)) + ", BIC: COBADEFFXXX\n"
	}},
	// French IBAN: FRkk BBBB BGGG GGCC CCCC CCCC CKK, bank codes 1xxxx to 4xxxx.
	{"IBAN FR grouped", func(rng *rand.Rand) string {
		bank := strconv.Itoa(1+rng.IntN(4)) + attack6Digits(rng, 4)
		return "IBAN " + attack6IBAN("FR", bank+attack6Digits(rng, 5)+attack6Digits(rng, 11)+attack6Digits(rng, 2)) + "\n"
	}},
	// .NET DateTime.Ticks of 2025-2027 (18 digits, 639...): ETags,
	// cache keys, C# logs.
	{".NET ticks", func(rng *rand.Rand) string {
		unix := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Unix() + rng.Int64N(3*365*86400)
		ticks := (unix+62135596800)*10_000_000 + rng.Int64N(10_000_000)
		return `{"ETag":"` + strconv.FormatInt(ticks, 10) + `","Created":"2026-12-05T21:16:11Z"}` + "\n"
	}},
	// Go time.Duration in JSON (slog's JSON handler, encoding/json):
	// nanoseconds, from 17 minutes to 3 days.
	{"Go duration ns in JSON", func(rng *rand.Rand) string {
		d := time.Duration(float64(17*time.Minute) * (1 + rng.Float64()*250))
		return `{"time":"2026-12-05T21:16:11Z","level":"INFO","msg":"job done","elapsed":` + strconv.FormatInt(int64(d), 10) + "}\n"
	}},
	// Shopify REST IDs (orders, products, variants): 13 and 14 digits.
	{"Shopify IDs", func(rng *rand.Rand) string {
		order := 5_000_000_000_000 + rng.Int64N(1_500_000_000_000)
		variant := 40_000_000_000_000 + rng.Int64N(10_000_000_000_000)
		return fmt.Sprintf(`{"order":{"id":%d,"line_items":[{"variant_id":%d,"quantity":1}]}}`+"\n", order, variant)
	}},
	// Facebook user IDs: 15 digits from 1000...
	{"Facebook user IDs", func(rng *rand.Rand) string {
		return `{"id":"` + strconv.FormatInt(100_000_000_000_000+rng.Int64N(90_000_000_000_000), 10) + `","name":"Jane"}` + "\n"
	}},
	// CPython id() of an object: 15 digits (0x7f... addresses).
	{"CPython id()", func(rng *rand.Rand) string {
		return "DEBUG cache miss for object " + strconv.FormatInt(0x7f0000000000+rng.Int64N(0xff0000000)*16, 10) + "\n"
	}},
	// Epoch microseconds of 2040-2056 (16 digits from 2221..., the
	// Mastercard range): a time bomb for every log with µs timestamps.
	{"epoch µs 2040-2056", func(rng *rand.Rand) string {
		us := 2_221_000_000_000_000 + rng.Int64N(500_000_000_000_000)
		return `{"ts_us":` + strconv.FormatInt(us, 10) + `,"msg":"ok"}` + "\n"
	}},
	// Byte counters in /proc/net/dev of a busy host (10 TB to 100 TB, 14 digits).
	{"/proc/net/dev counters", func(rng *rand.Rand) string {
		rx := 10_000_000_000_000 + rng.Int64N(90_000_000_000_000)
		return fmt.Sprintf("  eth0: %d 98765432101    0    0    0     0          0   1234567 8765432101234 5678901234    0    0    0     0       0          0\n", rx)
	}},
	// Held: UUIDs (also all-digit ones), Docker/git IDs, IPs, phone
	// numbers, epoch ms/µs/ns of today, Kubernetes resourceVersions.
	{"held: UUIDs, SHAs, IPs, phones, timestamps", func(rng *rand.Rand) string {
		return fmt.Sprintf("uid=%s-%s-%s-%s-%s sha=%x ip=10.%d.%d.%d tel=+49 %s %s ts_ms=%d ts_us=%d ts_ns=%d rv=%d\n",
			attack6Digits(rng, 8), attack6Digits(rng, 4), attack6Digits(rng, 4), attack6Digits(rng, 4), attack6Digits(rng, 12),
			rng.Uint64(), rng.IntN(256), rng.IntN(256), rng.IntN(256), attack6Digits(rng, 3), attack6Digits(rng, 8),
			1_790_000_000_000+rng.Int64N(1e11), 1_790_000_000_000_000+rng.Int64N(1e14), 1_790_000_000_000_000_000+rng.Int64N(1e17), rng.IntN(1e9))
	}},
}

// maxRewritten is the highest rate of each class the default rule may
// rewrite: the README states these figures, so a change that rewrites more
// fails here; UATP's classes and the held ones are 0.
var maxRewritten = map[string]float64{
	"IBAN DE grouped": 10, "IBAN FR grouped": 15, ".NET ticks": 11, "Go duration ns in JSON": 2,
	"Shopify IDs": 15, "epoch µs 2040-2056": 10, "/proc/net/dev counters": 3,
}

func TestAttack6FalsePositives(t *testing.T) {
	t.Parallel()
	for k, c := range attack6FPClasses {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(6, uint64(k)))
			var nb, nl int
			var example string
			for range attack6FPSamples {
				s := c.gen(rng)
				if out, n := Mask(nil, []byte(s), ModeFull); n > 0 {
					nb++
					if example == "" {
						example = fmt.Sprintf("%q -> %q", s, out)
					}
				}
				if _, n := DetectLuhn.Mask(nil, []byte(s), ModeFull); n > 0 {
					nl++
				}
			}
			pct := func(n int) float64 { return 100 * float64(n) / attack6FPSamples }
			t.Logf("%s: brands %.2f%%, luhn %.2f%% of %d samples", c.name, pct(nb), pct(nl), attack6FPSamples)
			if pct(nb) > maxRewritten[c.name] {
				t.Errorf("brands rewrites %.2f%% of samples (at most %.0f%% stated in the README), e.g. %s", pct(nb), maxRewritten[c.name], example)
			}
		})
	}
}
