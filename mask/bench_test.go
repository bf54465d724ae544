package mask

import (
	"bytes"
	"io"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/postern/postern/internal/benchdata"
	"github.com/postern/postern/internal/testenv"
)

const benchSize = 64 << 20

// benchText is 64 MiB of terminal output: log lines, psql tables, colored
// ls listings and prose, with a PAN in about one line in 2000.
var benchText = sync.OnceValue(func() []byte { return benchdata.TerminalText(benchSize) })

// benchDense is 64 MiB of CSV numbers: ids, epoch milliseconds, 16-digit
// account numbers (a tenth pass the Luhn check), amounts; a PAN in one row
// in 20.
var benchDense = sync.OnceValue(func() []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	var lines [][]byte
	for range 4096 {
		l := strconv.AppendInt(nil, int64(rng.IntN(1e9)), 10)
		l = append(l, ',')
		l = strconv.AppendInt(l, 1718000000000+int64(rng.IntN(1e9)), 10)
		l = append(l, ',')
		l = strconv.AppendInt(l, 1e15+rng.Int64N(9e15), 10)
		l = append(l, ',')
		l = strconv.AppendInt(l, int64(rng.IntN(100000)), 10)
		l = append(l, '.')
		l = strconv.AppendInt(l, int64(10+rng.IntN(90)), 10)
		l = append(l, ",4 12 7 99\n"...)
		lines = append(lines, l)
	}
	return fill(rng, lines, func(b []byte) []byte {
		if rng.IntN(20) == 0 {
			return append(b, "1,5555 5555 5555 4444,12/26,10.00\n"...)
		}
		return b
	})
})

func fill(rng *rand.Rand, lines [][]byte, extra func([]byte) []byte) []byte {
	b := make([]byte, 0, benchSize+4096)
	for len(b) < benchSize {
		b = append(b, lines[rng.IntN(len(lines))]...)
		b = extra(b)
	}
	return b
}

// regexpMasker is the baseline: a straightforward regexp over each write,
// a Luhn check on each match, no escape handling, no carry-over.
type regexpMasker struct{ w io.Writer }

var panRE = regexp.MustCompile(`\b[0-9](?:[ -]?[0-9]){12,18}\b`)

func (m regexpMasker) Write(p []byte) (int, error) {
	out := panRE.ReplaceAllFunc(p, func(s []byte) []byte {
		var pos []int
		for i, c := range s {
			if c >= '0' && c <= '9' {
				pos = append(pos, i)
			}
		}
		if !testenv.RefLuhn(s, pos) {
			return s
		}
		s = bytes.Clone(s)
		for _, i := range pos[6 : len(pos)-4] {
			s[i] = '*'
		}
		return s
	})
	return m.w.Write(out)
}

func BenchmarkMask(b *testing.B) {
	for _, ds := range []struct {
		name string
		data func() []byte
	}{{"text", benchText}, {"dense", benchDense}} {
		writeAll := func(b *testing.B, w io.Writer) {
			data := ds.data()
			w.Write(data[:32<<10]) // warm up: the Writer grows its buffer once
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for i := 0; i < len(data); i += 32 << 10 {
					w.Write(data[i:min(i+32<<10, len(data))])
				}
			}
		}
		b.Run(ds.name+"/writer", func(b *testing.B) {
			w := NewWriter(io.Discard, Config{Deadline: -1})
			defer w.Close()
			writeAll(b, w)
		})
		b.Run(ds.name+"/regexp", func(b *testing.B) {
			writeAll(b, regexpMasker{io.Discard})
		})
		b.Run(ds.name+"/Mask", func(b *testing.B) {
			data := ds.data()
			dst := make([]byte, 0, 32<<10)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for i := 0; i < len(data); i += 32 << 10 {
					dst, _ = Mask(dst[:0], data[i:min(i+32<<10, len(data))], ModeFirst6Last4)
				}
			}
		})
	}
}
