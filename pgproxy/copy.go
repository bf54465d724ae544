package pgproxy

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// binarySignature starts a binary COPY stream (PostgreSQL, COPY, "Binary
// Format").
var binarySignature = []byte("PGCOPY\n\xff\r\n\x00")

// copyBinary walks a binary COPY stream across CopyData messages and masks
// each field's bytes in place: the header (signature, flags, extension),
// then tuples (a 16-bit field count, -1 for the trailer; per field a
// 32-bit length, -1 for NULL, and the bytes). Headers may straddle
// messages; a field's bytes may not, since a card number cut in two would
// be judged as two pieces (PostgreSQL sends one row per message).
type copyBinary struct {
	state   int    // what the next bytes are: one of the copy* states
	need    int    // bytes of the current header item still wanted
	hdr     []byte // header bytes gathered so far (at most 19)
	fields  int    // fields left in the current tuple
	extLeft uint32 // header extension bytes left to skip
}

const (
	copySignature = iota // signature, flags and extension length: 19 bytes
	copyExtension        // header extension bytes
	copyCount            // a tuple's field count: 2 bytes
	copyLength           // a field's length: 4 bytes
	copyTrailer          // after the trailer: nothing may follow
)

var errFieldSplit = errors.New("a binary COPY field is split across messages")

func newCopyBinary() *copyBinary { return &copyBinary{state: copySignature, need: 19} }

// data masks the fields in one CopyData message's payload with m.
func (c *copyBinary) data(p []byte, m *masker) error {
	for len(p) > 0 {
		switch c.state {
		case copyExtension:
			k := min(uint32(len(p)), c.extLeft)
			p, c.extLeft = p[k:], c.extLeft-k
			if c.extLeft == 0 {
				c.state, c.need = copyCount, 2
			}
			continue
		case copyTrailer:
			return errors.New("data after the binary COPY trailer")
		}
		k := min(len(p), c.need-len(c.hdr))
		c.hdr, p = append(c.hdr, p[:k]...), p[k:]
		if len(c.hdr) < c.need {
			return nil
		}
		rest, err := c.item(p, m)
		if err != nil {
			return err
		}
		p = rest
	}
	return nil
}

// item handles a complete header item in c.hdr; p follows it.
func (c *copyBinary) item(p []byte, m *masker) ([]byte, error) {
	h := c.hdr
	c.hdr = c.hdr[:0]
	switch c.state {
	case copySignature:
		if !bytes.Equal(h[:11], binarySignature) {
			return nil, errors.New("binary COPY data without its signature")
		}
		c.extLeft = binary.BigEndian.Uint32(h[15:19])
		c.state, c.need = copyCount, 2
		if c.extLeft > 0 {
			c.state = copyExtension
		}
	case copyCount:
		n := int16(binary.BigEndian.Uint16(h))
		switch {
		case n == -1:
			c.state = copyTrailer
		case n < 0:
			return nil, errors.New("negative binary COPY field count")
		case n == 0:
			c.need = 2
		default:
			c.fields, c.state, c.need = int(n), copyLength, 4
		}
	case copyLength:
		n := int32(binary.BigEndian.Uint32(h))
		switch {
		case n == -1: // NULL
		case n < 0:
			return nil, errors.New("negative binary COPY field length")
		case int(n) > len(p):
			return nil, errFieldSplit
		default:
			m.value(p[:n])
			p = p[n:]
		}
		if c.fields--; c.fields == 0 {
			c.state, c.need = copyCount, 2
		}
	}
	return p, nil
}
