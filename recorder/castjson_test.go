package recorder

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// refAppendJSONString is the escaper as it was before it copied as it
// scanned: one append per run of plain text. Recordings must not change,
// so the escaper has to produce exactly its bytes.
func refAppendJSONString(b []byte, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// TestAppendJSONStringBytes: the escaper writes the reference's bytes for
// random mixes of plain text, escapes, UTF-8 (whole, cut and invalid) at
// every length and alignment, after a prefix already in b, with b's spare
// room from none to plenty, and for input made of one byte that needs
// escaping, which grows b two- to sixfold.
func TestAppendJSONStringBytes(t *testing.T) {
	pieces := [][]byte{
		[]byte("some terminal text 0123456789 abcdef"), []byte("\n"), []byte("\r\n"),
		[]byte("\x1b[32m"), []byte("\t"), []byte(`"`), []byte(`\`), []byte("\x00"), []byte("\x7f"),
		[]byte("é"), []byte("€"), []byte("𝄞"), []byte("\xe2\x82"), []byte("\xff"), []byte("\xc0\xaf"),
		[]byte("a"), []byte("abcdefgh"),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 3000 {
		size := n % 300
		if n%10 == 0 {
			size = n // long runs of escapes and UTF-8
		}
		var in []byte
		for len(in) < size {
			in = append(in, pieces[rng.IntN(len(pieces))]...)
		}
		prefix := []byte("[0.000001, \"o\", ")[:rng.IntN(17)]
		b := make([]byte, len(prefix), len(prefix)+rng.IntN(2*len(in)+32))
		copy(b, prefix)
		want := refAppendJSONString(bytes.Clone(prefix), in)
		if got := appendJSONString(b, in); !bytes.Equal(got, want) {
			t.Fatalf("%q after %q:\n got %q\nwant %q", in, prefix, got, want)
		}
	}
	for _, c := range []byte{0x01, '"', '\n', 0xff} {
		in := bytes.Repeat([]byte{c}, 1000)
		if got, want := appendJSONString(nil, in), refAppendJSONString(nil, in); !bytes.Equal(got, want) {
			t.Fatalf("1000 × %q: got %d bytes, want %d", c, len(got), len(want))
		}
	}
}

// FuzzJSONStringBytes: the escaper writes exactly the reference's bytes.
func FuzzJSONStringBytes(f *testing.F) {
	f.Add([]byte("plain ascii text, long enough for words"), 3)
	f.Add([]byte("quote\" back\\slash \x00\x1f\x7f é € \xff\xfe end"), 0)
	f.Fuzz(func(t *testing.T, in []byte, room int) {
		b := make([]byte, 2, 2+min(max(room, 0), 1<<16))
		if got, want := appendJSONString(b, in), refAppendJSONString(make([]byte, 2), in); !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %q\nwant %q", in, got, want)
		}
	})
}
