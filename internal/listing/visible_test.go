package listing

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestVisible(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice":                          "alice",
		"é € 😀":                          "é € 😀",
		"a\x1b[31mb":                     `a\x1b[31mb`,
		"line\nnext\r\t":                 `line\nnext\r\t`,
		"nul\x00del\x7f":                 `nul\x00del\x7f`,
		"c1\u009b6n\u0085":               `c1\u009b6n\u0085`,
		"bad\xff\xc3":                    `bad\xff\xc3`,
		"rtl\u202egnp.exe":               `rtl\u202egnp.exe`,
		"zw\u200bsp\u2028x":              `zw\u200bsp\u2028x`,
		`back\slash`:                     `back\\slash`,
		"cgj4111\u034f1111":              `cgj4111\u034f1111`,
		"vs\ufe00\ufe0f":                 `vs\ufe00\ufe0f`,
		"hangul\u115f\u1160\u3164\uffa0": `hangul\u115f\u1160\u3164\uffa0`,
		"khmer\u17b4\u17b5\u180b\u180f":  `khmer\u17b4\u17b5\u180b\u180f`,
		"big\U000e0100\U000e0001x":       `big\U000e0100\U000e0001x`,
		"keep \u845b\u20e3 é ž":          "keep \u845b\u20e3 é ž",
	} {
		if got := Visible(in); got != want {
			t.Errorf("Visible(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteJSONEscapesC1(t *testing.T) {
	t.Parallel()
	in := map[string]string{"k": "a\u009bb\x7fc\u0080é\x1b"}
	var out bytes.Buffer
	if err := WriteJSON(&out, in); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(out.Bytes(), "\u009b\x7f\u0080\x1b") {
		t.Fatalf("raw controls in %q", out.Bytes())
	}
	var back map[string]string
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back["k"] != in["k"] {
		t.Fatalf("round trip: %q, %v", back["k"], err)
	}
}

// TestWriteJSONEscapesInvisible: characters a terminal draws as nothing
// (default-ignorable, not only Cf) are escaped in JSON too, beyond U+FFFF
// as a surrogate pair, and the document still reads back the same.
func TestWriteJSONEscapesInvisible(t *testing.T) {
	t.Parallel()
	in := map[string]string{"k": "4111\u034f1111\ufe001111\U000e01001111\u3164\U000e0001\u202e😀é"}
	var out bytes.Buffer
	if err := WriteJSON(&out, in); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"\u034f", "\ufe00", "\U000e0100", "\u3164", "\U000e0001", "\u202e"} {
		if bytes.Contains(out.Bytes(), []byte(r)) {
			t.Errorf("%+q raw in %q", r, out.Bytes())
		}
	}
	if !bytes.Contains(out.Bytes(), []byte(`\udb40\udd00`)) || !bytes.Contains(out.Bytes(), []byte("😀é")) {
		t.Errorf("want U+E0100 as a surrogate pair and the emoji and é as they are: %s", out.Bytes())
	}
	var back map[string]string
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back["k"] != in["k"] {
		t.Fatalf("round trip: %+q, %v", back["k"], err)
	}
}
