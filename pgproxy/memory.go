package pgproxy

import (
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"sync"
)

// LargeMessage is the size above which a message is charged to the
// relays' Memory before it is read: the decoder allocates a message's
// whole length as soon as its header arrives, whether or not the rest
// ever comes.
const LargeMessage = 256 << 10

// DefaultMemory is the size of the Memory that relays share when their
// Config names none.
const DefaultMemory = 1 << 30

// maxAuthMessage caps an authentication message (password, SASL, GSS):
// PostgreSQL's own limit (PG_MAX_AUTH_TOKEN_LENGTH). They come before
// the server knows who is asking.
const maxAuthMessage = 65535

// defaultMemory is shared by every Relay whose Config.Memory is nil.
var defaultMemory = NewMemory(DefaultMemory)

// ErrMemory ends a connection whose next message would take more memory
// than its relays' Memory has left.
var ErrMemory = errors.New("pgproxy: a message is larger than the memory the relay has free for it")

// memoryMessage is what the client is told when ErrMemory ends its
// connection.
const memoryMessage = "postern: a PostgreSQL message on this connection is larger than the bastion can hold now (other large messages are in flight); the forwarded connection was closed, try again"

// Memory is the memory that relays may hold at once for large messages
// (over LargeMessage), shared by the relays given it: a message is taken
// from it when its header arrives, at about three times its length (the
// decoder's buffer, the re-encoded copy, the masker's view), and given
// back when it has been passed on. A message it has no room for ends its
// connection (ErrMemory), at once: a client cannot make the bastion
// allocate by announcing lengths. Safe for concurrent use.
type Memory struct {
	mu   sync.Mutex // guards used
	size int64
	used int64
}

// NewMemory returns a Memory of size bytes.
func NewMemory(size int64) *Memory { return &Memory{size: size} }

// Used returns the bytes taken now.
func (m *Memory) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// take takes n bytes, or reports that they are not free.
func (m *Memory) take(n int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n > m.size-m.used {
		return false
	}
	m.used += n
	return true
}

// give gives back n bytes taken.
func (m *Memory) give(n int64) {
	m.mu.Lock()
	m.used -= n
	m.mu.Unlock()
}

// messageCost is what a message with a body of size bytes takes: the
// decoder's buffer (a power of two), the re-encoded message and a view
// of it for the masker.
func messageCost(size int64) int64 {
	return int64(1)<<bits.Len64(uint64(size-1)) + 2*size
}

// Startup request codes that keep a client's next frame a startup frame
// (PostgreSQL protocol, "Message Formats").
const (
	sslRequestCode = 80877103
	gssEncCode     = 80877104
)

// gate sits between a connection and its decoder and follows the message
// framing: before the header of a message over LargeMessage passes, the
// message is taken from the Memory, and it is given back once the reader
// has handled it (handled). Used by one reader goroutine; release, once
// the reader has returned.
type gate struct {
	r   io.Reader
	mem *Memory
	max int64 // the decoder's limit: a longer message is refused, not taken
	// untyped is set while the frames are a client's startup frames
	// (length first, no type byte).
	untyped bool
	hdr     [8]byte
	nh      int   // header bytes gathered
	body    int64 // bytes of the current message's body still to pass
	seen    int64 // messages whose header passed
	done    int64 // messages the reader has handled
	taken   []taken
	err     error
}

// taken is a message's share of the Memory: seq numbers it among seen.
type taken struct{ seq, n int64 }

func newGate(r io.Reader, mem *Memory, max int, startup bool) *gate {
	return &gate{r: r, mem: mem, max: int64(max), untyped: startup}
}

func (g *gate) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	if ferr := g.follow(p[:n]); ferr != nil {
		g.err = ferr
		return 0, ferr
	}
	return n, err
}

// follow reads the framing of b, the next bytes of the stream.
func (g *gate) follow(b []byte) error {
	for len(b) > 0 {
		if g.body > 0 {
			k := min(int64(len(b)), g.body)
			b, g.body = b[k:], g.body-k
			continue
		}
		hlen := 5
		if g.untyped {
			hlen = 8
		}
		var h []byte
		if g.nh == 0 && len(b) >= hlen { // the usual case: no copy
			h, b = b[:hlen], b[hlen:]
		} else {
			k := copy(g.hdr[g.nh:hlen], b)
			g.nh, b = g.nh+k, b[k:]
			if g.nh < hlen {
				return nil
			}
			h, g.nh = g.hdr[:hlen], 0
		}
		var size int64
		if g.untyped {
			size = int64(int32(binary.BigEndian.Uint32(h[:4]))) - 8
			if code := binary.BigEndian.Uint32(h[4:8]); code != sslRequestCode && code != gssEncCode {
				g.untyped = false
			}
		} else {
			size = int64(int32(binary.BigEndian.Uint32(h[1:5]))) - 4
		}
		size = max(size, 0) // the decoder refuses a negative length
		g.seen++
		if size > LargeMessage && size <= g.max {
			n := messageCost(size)
			if !g.mem.take(n) {
				return ErrMemory
			}
			g.taken = append(g.taken, taken{g.seen, n})
		}
		g.body = size
	}
	return nil
}

// handled says the reader has handled (and passed on) one more message:
// what the messages handled took is given back.
func (g *gate) handled() {
	g.done++
	if len(g.taken) > 0 && g.taken[0].seq <= g.done { // inlined: one test per message
		g.giveBack()
	}
}

// giveBack gives back what the messages handled took.
func (g *gate) giveBack() {
	for len(g.taken) > 0 && g.taken[0].seq <= g.done {
		g.mem.give(g.taken[0].n)
		g.taken = g.taken[1:]
	}
}

// release gives back everything still taken.
func (g *gate) release() {
	for _, t := range g.taken {
		g.mem.give(t.n)
	}
	g.taken = nil
}
