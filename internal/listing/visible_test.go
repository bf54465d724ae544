package listing

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestVisible(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice":             "alice",
		"é € 😀":             "é € 😀",
		"a\x1b[31mb":        `a\x1b[31mb`,
		"line\nnext\r\t":    `line\nnext\r\t`,
		"nul\x00del\x7f":    `nul\x00del\x7f`,
		"c1\u009b6n\u0085":  `c1\u009b6n\u0085`,
		"bad\xff\xc3":       `bad\xff\xc3`,
		"rtl\u202egnp.exe":  `rtl\u202egnp.exe`,
		"zw\u200bsp\u2028x": `zw\u200bsp\u2028x`,
		`back\slash`:        `back\\slash`,
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
