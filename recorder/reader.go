package recorder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxLine caps one line of a recording when reading; the writer never
// writes longer lines than a read's worth of output, escaped.
const MaxLine = 4 << 20

// Event is one asciicast v2 event.
type Event struct {
	Time float64 // seconds since the start
	Kind string  // "o", "i", "r" or "m"
	Data string
}

// Reader reads a recording event by event, never holding more than one
// line. A torn last line (a bastion killed mid-write) ends the stream
// without error; Torn reports it.
type Reader struct {
	br     *bufio.Reader
	Header Header
	line   int
	torn   bool
}

// NewReader reads and checks the header.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{br: bufio.NewReaderSize(r, 64*1024)}
	line, complete, err := rd.readLine()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(line) == 0 || !complete {
		return nil, errors.New("not an asciicast file: no header line")
	}
	if err := json.Unmarshal(line, &rd.Header); err != nil {
		return nil, fmt.Errorf("not an asciicast file: header: %v", err)
	}
	if rd.Header.Version != 2 {
		return nil, fmt.Errorf("asciicast version %d not supported (want 2)", rd.Header.Version)
	}
	return rd, nil
}

// readLine returns the next line without its newline, and whether it was
// terminated by one.
func (r *Reader) readLine() ([]byte, bool, error) {
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLine {
			return nil, false, fmt.Errorf("recording line %d longer than %d bytes", r.line+1, MaxLine)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			buf = append(buf, chunk...)
			continue
		}
		if buf != nil {
			chunk = append(buf, chunk...)
		}
		if err != nil {
			return chunk, false, err
		}
		r.line++
		return chunk[:len(chunk)-1], true, nil
	}
}

// Next returns the next event, or io.EOF.
func (r *Reader) Next() (Event, error) {
	for {
		line, complete, err := r.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return Event{}, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return Event{}, io.EOF
			}
			continue
		}
		ev, perr := parseEvent(line)
		if perr != nil {
			if !complete {
				// The last line was cut short by a crash: a
				// valid prefix ends here.
				r.torn = true
				return Event{}, io.EOF
			}
			return Event{}, fmt.Errorf("recording line %d: %v", r.line, perr)
		}
		return ev, nil
	}
}

// Torn reports whether the recording ended in a partial line.
func (r *Reader) Torn() bool { return r.torn }

// parseEvent reads one event line. The common shape, as Postern and
// asciinema write it, is decoded by hand (it is the hot path of search);
// anything unusual falls back to encoding/json.
func parseEvent(line []byte) (Event, error) {
	if ev, ok := fastEvent(line); ok {
		return ev, nil
	}
	return slowEvent(line)
}

func fastEvent(line []byte) (Event, bool) {
	i := skipSpace(line, 0)
	if i >= len(line) || line[i] != '[' {
		return Event{}, false
	}
	j := bytes.IndexByte(line[i:], ',')
	if j < 0 {
		return Event{}, false
	}
	num := bytes.Trim(line[i+1:i+j], " \t\r")
	if !jsonNumber(num) {
		return Event{}, false
	}
	t, err := strconv.ParseFloat(string(num), 64)
	if err != nil {
		return Event{}, false
	}
	k := skipSpace(line, i+j+1)
	kind, k, ok := jsonString(line, k)
	if !ok {
		return Event{}, false
	}
	k = skipSpace(line, k)
	if k >= len(line) || line[k] != ',' {
		return Event{}, false
	}
	data, k, ok := jsonString(line, skipSpace(line, k+1))
	if !ok {
		return Event{}, false
	}
	k = skipSpace(line, k)
	if k >= len(line) || line[k] != ']' || skipSpace(line, k+1) != len(line) {
		return Event{}, false
	}
	return Event{Time: t, Kind: kind, Data: data}, true
}

// jsonNumber reports whether b is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(b []byte) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonString decodes the JSON string starting at b[i] (a quote) and
// returns it with the index after its closing quote.
func jsonString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	i++
	start := i
	// Fast path: no escapes.
	for i < len(b) && b[i] != '"' && b[i] != '\\' && b[i] >= 0x20 {
		i++
	}
	if i < len(b) && b[i] == '"' {
		if !utf8.Valid(b[start:i]) {
			return "", 0, false
		}
		return string(b[start:i]), i + 1, true
	}
	out := make([]byte, 0, len(b)-start)
	out = append(out, b[start:i]...)
	for i < len(b) {
		// Copy the run up to the next quote, backslash or control byte.
		j := i
		for j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 {
			j++
		}
		out = append(out, b[i:j]...)
		i = j
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return "", 0, false
			}
			return string(out), i + 1, true
		case c < 0x20:
			return "", 0, false
		}
		if i+1 >= len(b) {
			return "", 0, false
		}
		switch b[i+1] {
		case '"', '\\', '/':
			out = append(out, b[i+1])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, ok := unicodeEscape(b[i:])
			if !ok {
				return "", 0, false
			}
			out = utf8.AppendRune(out, r)
			i += n
			continue
		default:
			return "", 0, false
		}
		i += 2
	}
	return "", 0, false
}

// unicodeEscape decodes \uXXXX, or a surrogate pair of them, at the start of
// b, as encoding/json does (a lone surrogate becomes U+FFFD).
func unicodeEscape(b []byte) (rune, int, bool) {
	hex4 := func(b []byte) (rune, bool) {
		if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(b[2:6]), 16, 32)
		return rune(v), err == nil
	}
	r, ok := hex4(b)
	if !ok {
		return 0, 0, false
	}
	if utf16.IsSurrogate(r) {
		if r2, ok := hex4(b[6:]); ok {
			if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
				return dec, 12, true
			}
		}
		return utf8.RuneError, 6, true
	}
	return r, 6, true
}

func slowEvent(line []byte) (Event, error) {
	var raw [3]json.RawMessage
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil {
		return Event{}, err
	}
	if len(parts) != 3 {
		return Event{}, fmt.Errorf("event has %d fields, want 3", len(parts))
	}
	copy(raw[:], parts)
	var ev Event
	if err := json.Unmarshal(raw[0], &ev.Time); err != nil {
		return Event{}, fmt.Errorf("event time: %v", err)
	}
	if err := json.Unmarshal(raw[1], &ev.Kind); err != nil {
		return Event{}, fmt.Errorf("event type: %v", err)
	}
	if err := json.Unmarshal(raw[2], &ev.Data); err != nil {
		return Event{}, fmt.Errorf("event data: %v", err)
	}
	return ev, nil
}
