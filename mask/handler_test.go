package mask

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const testPAN = "4111111111111111"

// panForms are testPAN as the masker reads it and as a partial masking
// would leave it: none may reach a log.
var panForms = []string{testPAN, "4111 1111 1111 1111", "4111-1111-1111-1111", "411111******1111", "************1111"}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

type secret struct{ pan string }

func (s secret) LogValue() slog.Value { return slog.GroupValue(slog.String("card", s.pan)) }

// jsonOnly shows its PAN only to encoding/json, as a JSON handler prints
// it: fmt sees an empty struct.
type jsonOnly struct{ pan string }

func (j jsonOnly) MarshalJSON() ([]byte, error) { return []byte(`"` + j.pan + `"`), nil }
func (jsonOnly) String() string                 { return "jsonOnly" }

type wrapped struct{ err error }

func (w wrapped) Error() string { return "dial: " + w.err.Error() }
func (w wrapped) Unwrap() error { return w.err }

// noTime drops the time, so that two handlers' lines compare equal.
func noTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Attr{}
	}
	return a
}

// TestLogMaskHandler logs a PAN through every kind of text a record can
// carry, with the JSON and the text handler, and checks each is masked in
// place.
func TestLogMaskHandler(t *testing.T) {
	t.Parallel()
	spaced := "4111 1111 1111 1111"
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			var next slog.Handler = slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime})
			if format == "text" {
				next = slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: noTime})
			}
			log := slog.New(NewHandler(next))
			// A JSON handler writes []byte in base64.
			bytesShown := func(s string) string {
				if format == "json" {
					return base64.StdEncoding.EncodeToString([]byte(s))
				}
				return s
			}
			tests := []struct {
				name string
				log  func()
				want []string // masked text the line must hold
			}{
				{"message", func() { log.Info("card " + testPAN + " seen") }, []string{"card **************** seen"}},
				{"string", func() { log.Info("m", "reason", "card "+spaced) }, []string{"card **** **** **** ****"}},
				{"key", func() { log.Info("m", testPAN, 1) }, []string{"****************"}},
				{"error", func() { log.Info("m", "err", fmt.Errorf("ssh: disconnect: %q", testPAN)) }, []string{`****************`}},
				{"wrapped error", func() { log.Info("m", "err", wrapped{errors.New("card " + testPAN)}) }, []string{"dial: card ****************"}},
				{"stringer", func() { log.Info("m", "v", stringer{testPAN}) }, []string{"****************"}},
				{"strings", func() { log.Info("m", "list", []string{"ok", testPAN}) }, []string{"ok", "****************"}},
				{"bytes", func() { log.Info("m", "b", []byte("x "+testPAN)) }, []string{bytesShown("x ****************")}},
				{"struct", func() { log.Info("m", "v", struct{ Card string }{testPAN}) }, []string{"****************"}},
				{"map", func() { log.Info("m", "v", map[string]string{"card": testPAN}) }, []string{"****************"}},
				{"json only", func() { log.Info("m", "v", jsonOnly{testPAN}) }, []string{"jsonOnly"}},
				{"log valuer", func() { log.Info("m", "v", secret{testPAN}) }, []string{"****************"}},
				{"nested groups", func() {
					log.Info("m", slog.Group("a", slog.String("ok", "x"), slog.Group("b", slog.String("card", testPAN), slog.Any("err", errors.New(spaced)))))
				}, []string{"****************", "**** **** **** ****"}},
				{"with", func() {
					log.With("user", testPAN).With(slog.Group("g", slog.String("k", spaced))).Info("m")
				}, []string{"****************", "**** **** **** ****"}},
				{"with group", func() {
					log.WithGroup("grp-"+testPAN).With("k", testPAN).Info("m", "e", errors.New(testPAN))
				}, []string{"grp-****************", "****************"}},
				{"with log valuer", func() { log.With("v", secret{testPAN}).Info("m") }, []string{"****************"}},
			}
			for _, tt := range tests {
				buf.Reset()
				tt.log()
				line := buf.String()
				for _, f := range panForms {
					if strings.Contains(line, f) {
						t.Errorf("%s: line holds %q: %s", tt.name, f, line)
					}
				}
				for _, w := range tt.want {
					if !strings.Contains(line, w) {
						t.Errorf("%s: line lacks %q: %s", tt.name, w, line)
					}
				}
			}
		})
	}
}

// TestLogMaskHandlerKeeps checks that what holds no PAN, and numbers, pass
// unchanged: masking must not cost a log its precision.
func TestLogMaskHandlerKeeps(t *testing.T) {
	t.Parallel()
	logAll := func(h func(io.Writer) slog.Handler) string {
		var buf bytes.Buffer
		log := slog.New(h(&buf))
		log = log.With("session", "01J8ZQ4K7YV3", "client", "127.0.0.1:41234").WithGroup("g")
		log.Info("audit", "event", "connect", "serial", uint64(4111111111111111), "size", int64(4111111111111111),
			"principals", []string{"alice", "ops"}, "err", errors.New("dial tcp 10.0.0.1:22: connection refused"),
			"at", time.Unix(1700000000, 0).UTC(), "took", 1500*time.Millisecond, "id", "deadbeef4111111111111111",
			"nil", nil, slog.Group("sub", "n", 1, "s", "short 1234 5678"))
		return buf.String()
	}
	plain := logAll(func(w io.Writer) slog.Handler {
		return slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: noTime})
	})
	masked := logAll(func(w io.Writer) slog.Handler {
		return NewHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: noTime}))
	})
	if plain != masked {
		t.Fatalf("masking changed a line without a PAN:\n got %s\nwant %s", masked, plain)
	}
	if !strings.Contains(masked, `"serial":4111111111111111`) {
		t.Fatalf("a number was masked: %s", masked)
	}
}

func TestLogMaskHandlerIdempotent(t *testing.T) {
	t.Parallel()
	h := NewHandler(slog.DiscardHandler)
	if NewHandler(h) != h {
		t.Fatal("NewHandler wrapped a Handler again")
	}
	if h.Enabled(context.Background(), slog.LevelInfo) != slog.DiscardHandler.Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("Enabled differs from the next handler's")
	}
}

// BenchmarkLogMask compares an audit record through the JSON handler
// alone, through a Handler in front of it, and through a Handler that
// finds a PAN to mask.
func BenchmarkLogMask(b *testing.B) {
	record := func(log *slog.Logger, reason string) {
		log.Info("audit", "audit", true, "event", "connect", "allowed", true, "principals", []string{"alice"},
			"key_id", "alice@example.com", "serial", uint64(8736451209), "rule", "ops", "reason", reason)
	}
	for _, bc := range []struct {
		name   string
		masked bool
		reason string
	}{
		{"plain", false, "ok"},
		{"masked", true, "ok"},
		{"masked/error", true, "ssh: handshake failed: read tcp 127.0.0.1:40122->127.0.0.1:22: connection reset by peer"},
		{"masked/pan", true, "ssh: disconnect, reason 2: card " + testPAN},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h slog.Handler = slog.NewJSONHandler(io.Discard, nil)
			if bc.masked {
				h = NewHandler(h)
			}
			log := slog.New(h).With("session", "01J8ZQ4K7YV3ABCDEFGHJKMNPQ", "client", "127.0.0.1:41234")
			b.ReportAllocs()
			for b.Loop() {
				record(log, bc.reason)
			}
		})
	}
}
