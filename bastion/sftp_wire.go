package bastion

import "encoding/binary"

// wire reads SSH wire types (RFC 4251 §5) from a packet body; a short or
// malformed field clears ok, and every later read returns zero values.
type wire struct {
	b  []byte
	ok bool
}

func (r *wire) u32() uint32 {
	if !r.ok || len(r.b) < 4 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *wire) u64() uint64 {
	if !r.ok || len(r.b) < 8 {
		r.ok = false
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// bytes returns a string field as a slice of the packet, so a caller can
// mask it in place.
func (r *wire) bytes() []byte {
	n := r.u32()
	if !r.ok || uint64(n) > uint64(len(r.b)) {
		r.ok = false
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

func (r *wire) str() string { return string(r.bytes()) }

// attrs reads an ATTRS structure (draft-02 §5), refusing unknown flags;
// the text of extended pairs is masked in place by text, if not nil.
func (r *wire) attrs(text func([]byte)) {
	const size, uidgid, perms, times, ext = 0x1, 0x2, 0x4, 0x8, 0x80000000
	flags := r.u32()
	if flags&^(size|uidgid|perms|times|ext) != 0 {
		r.ok = false
		return
	}
	if flags&size != 0 {
		r.u64()
	}
	if flags&uidgid != 0 {
		r.u32()
		r.u32()
	}
	if flags&perms != 0 {
		r.u32()
	}
	if flags&times != 0 {
		r.u32()
		r.u32()
	}
	if flags&ext != 0 {
		n := r.u32()
		for i := uint32(0); i < n && r.ok; i++ {
			k, v := r.bytes(), r.bytes()
			if text != nil {
				text(k)
				text(v)
			}
		}
	}
}

// done reports whether the whole body was read, and well.
func (r *wire) done() bool { return r.ok && len(r.b) == 0 }

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// statusPacket builds an SSH_FXP_STATUS reply.
func statusPacket(id, code uint32, msg string) []byte {
	n := 1 + 4 + 4 + 4 + len(msg) + 4 + 2
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+n), uint32(n))
	b = append(b, fxpStatus)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, code)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	b = append(b, msg...)
	b = binary.BigEndian.AppendUint32(b, 2)
	return append(b, "en"...)
}
