package recorder

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// FuzzParseEvent: the hand-written event decoder agrees with
// encoding/json whenever it accepts a line.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{
		`[0.5, "o", "hello\r\n"]`, `[1, "r", "80x24"]`, `[2.25, "m", "exit status 0"]`,
		`[0.1, "o", "\u001b[31mred\u001b[0m \"q\" \\ \/ \b\f\t"]`, `[3, "o", "\ud83d\ude00 \ud800 x"]`,
		`[1e3, "o", "x"]`, `[ 1 , "o" , "x" ]`, `[1, "o", "x", 4]`, `[1, "o"]`, `{"a":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fast, ok := fastEvent(line)
		if !ok {
			return
		}
		slow, err := slowEvent(line)
		if err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refused it: %v", line, err)
		}
		if fast != slow {
			t.Fatalf("%q: fast %+v, encoding/json %+v", line, fast, slow)
		}
	})
}

// FuzzReader: any bytes either fail to open or read to the end without
// panicking, holding at most MaxLine per line.
func FuzzReader(f *testing.F) {
	f.Add([]byte("{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.1, \"o\", \"hi\"]\n[0.2, \"o\", \"tor"))
	f.Add([]byte("{\"version\": 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for range 10000 {
			if _, err := r.Next(); err != nil {
				if err == io.EOF {
					return
				}
				return
			}
		}
	})
}

// FuzzJSONString: the escaper's output is what encoding/json decodes back
// to the input (invalid UTF-8 as U+FFFD, as json.Marshal would).
func FuzzJSONString(f *testing.F) {
	f.Add([]byte("plain ascii text, long enough for words"))
	f.Add([]byte("quote\" back\\slash \x00\x1f\x7f é € \xff\xfe end"))
	f.Fuzz(func(t *testing.T, in []byte) {
		enc := appendJSONString(nil, in)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q encoded as invalid JSON %q: %v", in, enc, err)
		}
		want, _ := json.Marshal(string(in))
		var wantS string
		json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("%q: decoded %q, want %q", in, got, wantS)
		}
	})
}

// FuzzParseChainHead: an accepted anchor prints back as the same anchor
// and parses again unchanged; nothing panics.
func FuzzParseChainHead(f *testing.F) {
	f.Add("41:6f1c1b2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7")
	f.Add("0:" + strings.Repeat("A", 64))
	f.Add("18446744073709551615:" + strings.Repeat("0", 64))
	f.Add("1:abc")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseChainHead(s)
		if err != nil {
			return
		}
		if len(h.SHA256) != 64 || strings.ToLower(h.SHA256) != h.SHA256 {
			t.Fatalf("%q: digest %q", s, h.SHA256)
		}
		h2, err := ParseChainHead(h.String())
		if err != nil || h2 != h {
			t.Fatalf("%q parsed to %v, which prints as %q and parses to %v, %v", s, h, h.String(), h2, err)
		}
	})
}
