package pgproxy

import (
	"strings"
	"testing"

	"github.com/postern/postern/mask"
)

// Stored text as the server sends it in other client encodings: the card
// number is masked however the bytes around it read as UTF-8; and text
// that is UTF-8 is judged as before, the views adding no false positive.
func TestEncodingViews(t *testing.T) {
	t.Parallel()
	const pan = "4111111111111111"
	for _, c := range []struct {
		name   string
		v      string
		legacy bool
		masked bool
	}{
		// "カード番号：" in SJIS: the fullwidth colon is 81 46, 'F'.
		{name: "sjis colon", v: "\x83J\x81[\x83h\x94\xd4\x8d\x86\x81F" + pan, masked: true},
		// ア is 83 41 in SJIS: an 'A' before the number.
		{name: "sjis a", v: "\x83A" + pan, masked: true},
		// BIG5, GBK and UHC trail bytes from 0x40: a letter.
		{name: "big5", v: "\xa4\x40" + pan, masked: true},
		// GB18030 writes U+200B as 81 36 A4 37 and U+00A0 as 81 30 84 36.
		{name: "gb18030 zwsp", v: "card\x816\xa47" + pan, masked: true},
		{name: "gb18030 inside", v: "4111\x816\xa471111\x816\xa471111\x816\xa471111", masked: true},
		{name: "gb18030 nbsp", v: "x\x810\x846" + pan, masked: true},
		// JOHAB's trail bytes include digits.
		{name: "johab", v: "\x885" + pan, masked: true},
		// LATIN1, WIN1252: the soft hyphen is one byte, AD.
		{name: "latin1 shy", v: "4111\xad1111\xad1111\xad1111", masked: true},
		// The same stored text in UTF-8, judged as ever.
		{name: "utf8 colon", v: "カード番号：" + pan, masked: true},
		{name: "utf8 shy", v: "4111\u00ad1111\u00ad1111\u00ad1111", masked: true},
		// UTF-8 text whose bytes the views would misread: left alone
		// unless the connection's encoding is another.
		{name: "utf8 order number", v: "注文番号：5" + pan},
		{name: "utf8 letter after", v: "éX" + pan},
		{name: "utf8 accent groups", v: "4111é1111é1111é1111"},
		{name: "legacy order number", v: "注文番号：5" + pan, legacy: true, masked: true},
		// ASCII and other numbers: untouched either way.
		{name: "epoch", v: "ts\x831796149455125", legacy: true},
		{name: "ascii id", v: "id X" + pan + "x", legacy: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := []byte(c.v)
			if !mayHoldPAN(v) {
				t.Fatalf("%q: mayHoldPAN says no card number", c.v)
			}
			var scratch []byte
			n := maskBytes(v, mask.DetectBrands, mask.ModeFirst6Last4, &scratch, c.legacy)
			got := string(v)
			switch {
			case c.masked && (n == 0 || strings.Contains(strings.Map(digitsOnly, got), pan)):
				t.Errorf("%q masked as %q (%d): the card number's digits stand", c.v, got, n)
			case !c.masked && got != c.v:
				t.Errorf("%q masked as %q: a false positive", c.v, got)
			}
			if len(got) != len(c.v) {
				t.Errorf("length %d, want %d", len(got), len(c.v))
			}
		})
	}
}

// digitsOnly keeps ASCII digits: what a reader of the masked value could
// put together.
func digitsOnly(r rune) rune {
	if r >= '0' && r <= '9' {
		return r
	}
	return -1
}

// FuzzMaskBytes holds maskBytes to what a masker may do: keep the length,
// change only digits, and only to '*', and mask at least every digit the
// UTF-8 judgement (mask.MaskText) masks, views or not.
func FuzzMaskBytes(f *testing.F) {
	f.Add([]byte("\x83J\x81F4111111111111111"), false)
	f.Add([]byte("4111\xad1111\xad1111\xad1111"), true)
	f.Add([]byte("card\x816\xa474111111111111111"), false)
	f.Fuzz(func(t *testing.T, v []byte, legacy bool) {
		want, _ := mask.MaskText(nil, v, mask.ModeFirst6Last4)
		got := append([]byte(nil), v...)
		var scratch []byte
		maskBytes(got, mask.DetectBrands, mask.ModeFirst6Last4, &scratch, legacy)
		if len(got) != len(v) {
			t.Fatalf("%q: length %d, want %d", v, len(got), len(v))
		}
		for i := range v {
			switch {
			case got[i] != v[i] && (got[i] != '*' || v[i] < '0' || v[i] > '9'):
				t.Fatalf("%q: byte %d changed to %q", v, i, got[i])
			case want[i] == '*' && v[i] != '*' && got[i] != '*':
				t.Fatalf("%q: byte %d is masked by MaskText, not by maskBytes (%q)", v, i, got)
			}
		}
	})
}
