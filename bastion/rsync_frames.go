package bastion

import (
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// The rsync stream's handshake and frames, byte by byte (see rsync.go).

// data streams MSG_DATA payload bytes, through the Data hook when they come
// from the server.
func (r *rsyncStream) data(d *rsyncDir, p []byte) (int, error) {
	n := min(len(p), d.left)
	chunk := p[:n]
	if d.server && r.hooks.Data != nil {
		got, err := r.hooks.Data(chunk)
		if err != nil {
			return n, err
		}
		if len(got) != n {
			return n, errors.New("rsync data hook changed the length")
		}
		chunk = got
	}
	d.out = append(d.out, chunk...)
	if d.left -= n; d.left == 0 {
		d.state = rsStateHeader
	}
	return n, nil
}

// size sets d.need, the length of the element that starts with byte b, or
// for a negotiation string with a two-byte length, the length of that.
func (r *rsyncStream) size(d *rsyncDir, b byte) error {
	switch d.state {
	case rsStateVersion, rsStateSeed, rsStateHeader:
		d.need = 4
	case rsStateFlags:
		if strings.IndexByte(r.opts.caps, 'V') >= 0 && strings.IndexByte(r.opts.caps, 'v') < 0 {
			d.need = 1 // a pre-release client reads one byte
			return nil
		}
		extra := rsyncVarintExtra(b)
		if extra > 4 {
			return rsyncBroke("compat flags overflow")
		}
		d.need = 1 + extra
	case rsStateStrings:
		if b&0x80 != 0 {
			d.need = 2
		} else {
			d.need = 1 + int(b)
		}
	}
	return nil
}

// rsyncVarintExtra is how many bytes follow the first byte b of an rsync
// varint: one per leading 1 bit.
func rsyncVarintExtra(b byte) int {
	n := 0
	for b&0x80 != 0 {
		n++
		b <<= 1
	}
	return n
}

// complete checks the element in d.held, releases it and moves on.
func (r *rsyncStream) complete(d *rsyncDir) error {
	h := d.held
	release := true
	switch d.state {
	case rsStateVersion:
		v := int(int32(binary.LittleEndian.Uint32(h)))
		if v < 20 || v > rsyncMaxProtocol {
			return rsyncBroke("protocol version " + strconv.Itoa(v) + " out of range")
		}
		if v < rsyncMinProtocol {
			return rsyncBroke("protocol version " + strconv.Itoa(v) + " is older than " + strconv.Itoa(rsyncMinProtocol))
		}
		if d.server {
			r.sVersion = v
			d.state = rsStateFlags
		} else {
			r.cVersion = v
			d.state = rsStateStrings
		}
	case rsStateFlags:
		if r.cVersion == 0 {
			return rsyncBroke("server went on before the client's version")
		}
		if err := r.checkFlags(rsyncVarint(h)); err != nil {
			return err
		}
		d.state = rsStateStrings
	case rsStateStrings:
		body := h[rsyncStrHead(h):]
		for _, c := range body {
			if !rsyncNameChar(c) {
				return rsyncBroke("negotiation string is not a list of names")
			}
		}
		if r.hooks.Text != nil && len(body) > 0 {
			if err := rsyncText(r.hooks.Text, body); err != nil {
				return err
			}
		}
		if d.strings--; d.strings == 0 {
			r.afterStrings(d)
		}
	case rsStateSeed:
		d.state = rsStateHeader
	case rsStateHeader:
		if err := r.header(d); err != nil {
			return err
		}
		if d.state == rsStateBody {
			release = false // released with its payload
		}
	case rsStateBody:
		body := h[4:]
		if err := rsyncCheckBody(d.tag, body); err != nil {
			return err
		}
		if rsyncIsText(d.tag) && r.hooks.Text != nil && len(body) > 0 {
			if err := rsyncText(r.hooks.Text, body); err != nil {
				return err
			}
		}
		d.state = rsStateHeader
	}
	if !release {
		return nil
	}
	d.out = append(d.out, d.held...)
	d.held, d.need = d.held[:0], 0
	return nil
}

// countStrings works out how many negotiation strings d sends, which needs
// the other side's handshake, and moves on when there are none.
func (r *rsyncStream) countStrings(d *rsyncDir) error {
	var sends bool
	if d.server {
		// The server sends its lists when the client asked with 'v'.
		sends = strings.IndexByte(r.opts.caps, 'v') >= 0
	} else {
		// The client sends its lists after reading the server's compat
		// flags, when they say so: a byte before those is not rsync.
		if r.flags < 0 {
			return rsyncBroke("client went on before the server's compat flags")
		}
		sends = r.flags&rsyncCFVarintFlist != 0
	}
	d.strings = 0
	if sends {
		if r.opts.negotiateCsum {
			d.strings++
		}
		if r.opts.negotiateCpress {
			d.strings++
		}
	}
	if d.strings == 0 {
		r.afterStrings(d)
	}
	return nil
}

// afterStrings moves d past the negotiation strings.
func (r *rsyncStream) afterStrings(d *rsyncDir) {
	if d.server {
		d.state = rsStateSeed
	} else {
		d.state = rsStateHeader
	}
}

// rsyncStrHead is the length of a held negotiation string's length prefix.
func rsyncStrHead(h []byte) int {
	if h[0]&0x80 != 0 {
		return 2
	}
	return 1
}

func rsyncNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == ' ' || c == '-' || c == '_' || c == '.' || c == '+' || c == ','
}

// rsyncText runs the Text hook over p in place.
func rsyncText(text func([]byte) []byte, p []byte) error {
	got := text(p)
	if len(got) != len(p) {
		return errors.New("rsync text hook changed the length")
	}
	copy(p, got)
	return nil
}

// rsyncVarint decodes a complete rsync varint (io.c read_varint): the first
// byte's leading 1 bits count the little-endian bytes that follow, and its
// remaining bits are the most significant ones.
func rsyncVarint(h []byte) int {
	extra := len(h) - 1
	var v uint32
	for i := extra; i >= 1; i-- {
		v = v<<8 | uint32(h[i])
	}
	if extra > 0 {
		top := uint32(h[0]) & (1<<(8-extra) - 1)
		v |= top << (8 * extra)
	} else {
		v = uint32(h[0])
	}
	return int(int32(v))
}

// checkFlags checks the server's compat flags against what the client's
// capability string asked for, and records them.
func (r *rsyncStream) checkFlags(f int) error {
	if f < 0 || f&^rsyncCFKnown != 0 {
		return rsyncBroke("unknown compat flags " + strconv.Itoa(f))
	}
	caps := r.opts.caps
	for i := 0; i < len(rsyncCapsWithLetter); i++ {
		bit := 1 << (3 + i)
		asked := strings.IndexByte(caps, rsyncCapsWithLetter[i]) >= 0
		if bit == rsyncCFVarintFlist && strings.IndexByte(caps, 'V') >= 0 {
			asked = true
		}
		if asked != (f&bit != 0) {
			return rsyncBroke("compat flags do not answer the client's capabilities")
		}
	}
	if f&rsyncCFIncRecurse != 0 && strings.IndexByte(caps, 'i') < 0 {
		return rsyncBroke("compat flags do not answer the client's capabilities")
	}
	r.flags = f
	return nil
}

// header checks a complete frame header in d.held and sets up its payload.
func (r *rsyncStream) header(d *rsyncDir) error {
	v := binary.LittleEndian.Uint32(d.held)
	n := int(v & 0xffffff)
	if v>>24 < rsyncMplexBase {
		return rsyncBroke("not a multiplexed frame")
	}
	tag := int(v>>24) - rsyncMplexBase
	d.tag = tag
	maxLen := 0
	switch tag {
	case rsyncMsgData:
		maxLen = rsyncMaxData
	case rsyncMsgErrorXfer, rsyncMsgInfo, rsyncMsgError, rsyncMsgWarning, rsyncMsgDeleted:
		maxLen = rsyncMaxText
	case rsyncMsgIOError, rsyncMsgSuccess, rsyncMsgNoSend, rsyncMsgErrorExit:
		maxLen = 4
	case rsyncMsgIOTimeout:
		if !d.server {
			return rsyncBroke("message type 33 from the client")
		}
		maxLen = 4
	case rsyncMsgNoop:
		maxLen = 0
	default:
		return rsyncBroke("unknown message type " + strconv.Itoa(tag))
	}
	if n > maxLen {
		return rsyncBroke("message type " + strconv.Itoa(tag) + " of " + strconv.Itoa(n) + " bytes")
	}
	switch {
	case tag == rsyncMsgData && n > 0:
		d.state, d.left = rsStateData, n
	case tag == rsyncMsgData:
		// An empty MSG_DATA is a keep-alive.
	case n == 0:
		if err := rsyncCheckBody(tag, nil); err != nil {
			return err
		}
	default:
		d.state, d.need = rsStateBody, 4+n
		return nil
	}
	return nil
}

// rsyncCheckBody checks the length of a non-data message's payload.
func rsyncCheckBody(tag int, body []byte) error {
	ok := true
	switch tag {
	case rsyncMsgIOError, rsyncMsgSuccess, rsyncMsgNoSend, rsyncMsgIOTimeout:
		ok = len(body) == 4
	case rsyncMsgErrorExit:
		ok = len(body) == 0 || len(body) == 4
	}
	if !ok {
		return rsyncBroke("message type " + strconv.Itoa(tag) + " of " + strconv.Itoa(len(body)) + " bytes")
	}
	return nil
}

func rsyncIsText(tag int) bool {
	switch tag {
	case rsyncMsgErrorXfer, rsyncMsgInfo, rsyncMsgError, rsyncMsgWarning, rsyncMsgDeleted:
		return true
	}
	return false
}

// arg reads the client's secluded arguments: NUL-terminated strings ending
// with an empty one. The first is the program name; the options among the
// rest shape the handshake like those on the command line.
func (r *rsyncStream) arg(d *rsyncDir, p []byte) (int, error) {
	i := 0
	for i < len(p) {
		c := p[i]
		i++
		if d.held == nil {
			d.held = make([]byte, 0, rsyncMaxHold)
		}
		d.held = append(d.held, c)
		if c != 0 {
			if len(d.held) > rsyncMaxArg {
				return i, rsyncBroke("secluded argument too long")
			}
			continue
		}
		a := string(d.held[:len(d.held)-1])
		d.out = append(d.out, d.held...)
		d.held = d.held[:0]
		if a == "" {
			d.state = rsStateVersion
			r.opts.finish()
			return i, nil
		}
		if d.args++; d.args > rsyncMaxArgs {
			return i, rsyncBroke("too many secluded arguments")
		}
		if d.args > 1 { // the first is the program name
			if err := r.opts.word(a); err != nil {
				return i, rsyncBroke("secluded --daemon")
			}
		}
	}
	return i, nil
}
