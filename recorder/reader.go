package recorder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

func parseEvent(line []byte) (Event, error) {
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
