package mask

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// attack4JSONLog logs msg as an attribute through a Handler in front of
// slog's JSON handler and returns the line.
func attack4JSONLog(msg string) string {
	var b bytes.Buffer
	slog.New(NewHandler(slog.NewJSONHandler(&b, nil))).Info("exec", "command", msg)
	return b.String()
}

// MaskText's plain judgement makes every control byte a space, but a C1
// control written in UTF-8 (two bytes, C2 80..9F) becomes two spaces, and
// two spaces end a run: a number whose groups are joined by NEL (U+0085)
// or CSI (U+009B) is masked by neither judgement, though the same number
// joined by a C0 control (one byte, one space) is. slog writes U+0085 as
// it is, and a viewer shows it as nothing.
func TestAttack4MaskTextC1InUTF8Joins(t *testing.T) {
	t.Parallel()
	for _, sep := range []string{"\x1f", "\u0085", "\u009b", "\u0080"} {
		src := strings.Join([]string{"4111", "1111", "1111", "1111"}, sep)
		out, n := MaskText(nil, []byte(src), ModeFull)
		if n == 0 || bytes.Contains(out, []byte("4111")) {
			t.Errorf("separator %q: MaskText left %q", sep, out)
		}
		if line := attack4JSONLog("cat " + src); strings.Contains(line, "4111") {
			t.Errorf("separator %q: the JSON log line holds the number: %s", sep, line)
		}
	}
}

// Characters that no viewer draws (zero width space, word joiner, zero
// width no-break space, soft hyphen) between a number's groups end its run,
// so neither judgement of MaskText masks it; slog writes them as they are,
// and the log line reads as the card number whole.
func TestAttack4MaskTextInvisibleSeparators(t *testing.T) {
	t.Parallel()
	for _, sep := range []string{"\u200b", "\u2060", "\ufeff", "\u00ad", "\u200c", "\u200d"} {
		src := strings.Join([]string{"4111", "1111", "1111", "1111"}, sep)
		if line := attack4JSONLog("cat " + src); strings.Contains(line, "4111") {
			t.Errorf("separator %+q: the JSON log line holds the number: %s", sep, line)
		}
	}
}
