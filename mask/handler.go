package mask

import (
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
)

// Handler is a slog.Handler that masks every PAN in a record's text, all
// its digits (ModeFull), before the next handler sees it: the message,
// attribute keys and group names, string values, the text of errors and
// of other values (what fmt, MarshalText and MarshalJSON make of them),
// []string and []byte values, the values LogValuers resolve to, and groups
// at every depth, in each record and in the attributes given to WithAttrs.
// A value that holds a PAN is replaced by its masked text. So a logger
// built on it writes no card number, whichever caller forgot to mask one.
//
// Numbers, times, durations and booleans pass unchanged: they are the
// program's own values (serials, counts), not text someone sent, and
// masking one would corrupt an ID.
//
// Text with fewer than 13 digits, which is nearly all log text, is passed
// on without a copy. A Handler is safe for concurrent use if the next
// handler is. The zero value is not usable: create one with NewHandler.
type Handler struct {
	next slog.Handler
}

// NewHandler returns a Handler that passes masked records to next. If next
// is already a Handler, it returns next.
func NewHandler(next slog.Handler) *Handler {
	if h, ok := next.(*Handler); ok {
		return h
	}
	return &Handler{next: next}
}

// Enabled reports whether the next handler handles records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle passes r to the next handler, masked.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	msg, changed := maskString(r.Message)
	var buf [16]slog.Attr
	attrs := buf[:0]
	r.Attrs(func(a slog.Attr) bool {
		m, ch := maskAttr(a)
		changed = changed || ch
		attrs = append(attrs, m)
		return true
	})
	if !changed {
		return h.next.Handle(ctx, r)
	}
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	out.AddAttrs(attrs...)
	return h.next.Handle(ctx, out)
}

// WithAttrs returns a Handler whose next handler has attrs, masked.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	masked := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		masked[i], _ = maskAttr(a)
	}
	return &Handler{next: h.next.WithAttrs(masked)}
}

// WithGroup returns a Handler whose next handler opens group name, masked.
func (h *Handler) WithGroup(name string) slog.Handler {
	name, _ = maskString(name)
	return &Handler{next: h.next.WithGroup(name)}
}

// maskAttr returns a masked, and whether that changed it. A LogValuer
// counts as changed: it is resolved here, and the next handler gets the
// value rather than call LogValue again.
func maskAttr(a slog.Attr) (slog.Attr, bool) {
	key, changed := maskString(a.Key)
	v := a.Value
	if v.Kind() == slog.KindLogValuer {
		v, changed = v.Resolve(), true
	}
	v, ch := maskValue(v)
	return slog.Attr{Key: key, Value: v}, changed || ch
}

func maskValue(v slog.Value) (slog.Value, bool) {
	switch v.Kind() {
	case slog.KindString:
		if s, ok := maskString(v.String()); ok {
			return slog.StringValue(s), true
		}
	case slog.KindGroup:
		group := v.Group()
		var out []slog.Attr // copied once a member changes
		for i, a := range group {
			m, ch := maskAttr(a)
			if ch && out == nil {
				out = append([]slog.Attr(nil), group...)
			}
			if out != nil {
				out[i] = m
			}
		}
		if out != nil {
			return slog.GroupValue(out...), true
		}
	case slog.KindAny:
		if m, ok := maskAny(v.Any()); ok {
			return m, true
		}
	}
	return v, false
}

// maskAny masks a value of any other type, and reports whether it held a
// PAN. Handlers print an error as its Error text, and other values with
// fmt, MarshalText or MarshalJSON: if any of these holds a PAN, the value
// becomes its masked text.
func maskAny(v any) (slog.Value, bool) {
	switch x := v.(type) {
	case []string:
		var out []string // copied once an element changes
		for i, s := range x {
			m, ch := maskString(s)
			if ch && out == nil {
				out = append([]string(nil), x...)
			}
			if out != nil {
				out[i] = m
			}
		}
		return slog.AnyValue(out), out != nil
	case []byte:
		if candidate(x) {
			if out, n := MaskText(nil, x, ModeFull); n > 0 {
				return slog.AnyValue(out), true
			}
		}
		return slog.Value{}, false
	}
	var text string
	if err, ok := v.(error); ok {
		text = err.Error()
	} else {
		text = fmt.Sprintf("%+v", v)
	}
	if s, ok := maskString(text); ok {
		return slog.StringValue(s), true
	}
	if jsonDiffers(v) {
		if b, err := json.Marshal(v); err == nil && candidate(b) {
			if _, n := MaskText(nil, b, ModeFull); n > 0 {
				return slog.StringValue(text), true // text has no PAN
			}
		}
	}
	return slog.Value{}, false
}

// jsonDiffers reports whether a JSON handler may write v with text that
// fmt does not show: through MarshalJSON or MarshalText, or as the fields
// of a composite value. An error is written as its Error text unless it
// is a json.Marshaler; a basic value the same either way.
func jsonDiffers(v any) bool {
	switch v.(type) {
	case nil:
		return false
	case json.Marshaler, encoding.TextMarshaler:
		return true
	case error:
		return false
	}
	switch reflect.TypeOf(v).Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array, reflect.Pointer, reflect.Interface:
		return true
	}
	return false
}

// maskString returns s with every PAN masked, and whether it had one.
func maskString(s string) (string, bool) {
	if !candidate(s) {
		return s, false
	}
	out, n := MaskText(make([]byte, 0, len(s)), []byte(s), ModeFull)
	if n == 0 {
		return s, false
	}
	return string(out), true
}

// candidate reports whether b has the minDigits digits a PAN needs: text
// with fewer is returned as it is, without running the scanner.
func candidate[T string | []byte](b T) bool {
	n := 0
	for i := 0; i < len(b); i++ {
		if b[i]-'0' <= 9 {
			if n++; n >= minDigits {
				return true
			}
		}
	}
	return false
}
