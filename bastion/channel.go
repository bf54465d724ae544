package bastion

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
)

// Pump buffers: every pump starts with a small one, and one whose reads
// fill it (bulk output) moves to a large one, so that a bulk stream is
// masked, recorded and sent in fewer, larger pieces while an idle session
// holds little memory.
const (
	smallBuf = 32 << 10
	largeBuf = 256 << 10
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}
)

func (c *conn) pump(dst io.Writer, src io.Reader) {
	bp, pool := smallPool.Get().(*[]byte), &smallPool
	defer func() { pool.Put(bp) }()
	for {
		buf := *bp
		n, err := src.Read(buf)
		if n > 0 {
			c.touch()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		if n == len(buf) && pool == &smallPool {
			pool.Put(bp)
			bp, pool = largePool.Get().(*[]byte), &largePool
		}
	}
}

// How long a forward's output is watched for an SSH version string: SSH
// servers may send other lines first (RFC 4253 §4.2). OpenSSH 9 accepts
// 1024 lines, older OpenSSH 64 KiB and takes every 255 bytes of a long
// line as a line of its own: the guard watches until both 1024 lines and
// 256 KiB have passed, and starts a line every 255 bytes.
const (
	sshMaxPreBanner      = 1024
	sshMaxPreBannerBytes = 256 << 10
	sshMaxLine           = 255
)

// errSpeaksSSH ends a forward whose destination turned out an SSH server.
var errSpeaksSSH = errors.New("forward destination speaks SSH")

// sshGuard passes a forward's output to the client unless a line of it
// begins an SSH version string ("SSH-") within the lines an SSH client
// would read before one: an SSH server on any port of the target would let
// the client run an unrecorded session through the tunnel. A line start
// that may still become "SSH-" is held until it is decided. Not safe for
// concurrent use; one pump writes to it.
type sshGuard struct {
	w       io.Writer
	lines   int   // lines seen
	total   int64 // bytes seen
	lineLen int   // bytes of the current line
	match   int   // bytes of "SSH-" matched at the current line's start; -1: no match
	out     []byte
}

// watching reports whether the guard still looks for a version string.
func (g *sshGuard) watching() bool {
	return g.lines < sshMaxPreBanner || g.total < sshMaxPreBannerBytes
}

func newSSHGuard(w io.Writer) *sshGuard { return &sshGuard{w: w} }

func (g *sshGuard) Write(p []byte) (int, error) {
	if !g.watching() && g.match <= 0 {
		return g.w.Write(p)
	}
	g.out = g.out[:0]
	for _, c := range p {
		g.total++
		g.lineLen++
		switch {
		case !g.watching() || g.match < 0:
		case c == "SSH-"[g.match]:
			g.match++
			if g.match == len("SSH-") {
				// Pass what came before this line, then end.
				g.w.Write(g.out)
				return 0, errSpeaksSSH
			}
			continue // held until decided
		default:
			g.out = append(g.out, "SSH-"[:g.match]...)
			g.match = -1
		}
		g.out = append(g.out, c)
		if c == '\n' || g.lineLen >= sshMaxLine {
			g.lines++
			g.lineLen = 0
			g.match = 0
		}
	}
	if len(g.out) > 0 {
		if _, err := g.w.Write(g.out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// isSSHPort reports whether host:port is the SSH port of a target, or port
// 22 anywhere.
func (c *conn) isSSHPort(host string, port uint32) bool {
	if port == 22 {
		return true
	}
	hp := net.JoinHostPort(host, strconv.Itoa(int(port)))
	targets := c.s.current().Policy.Targets
	for i := range targets {
		t := &targets[i]
		if t.Address == hp {
			return true
		}
		if h, p, err := net.SplitHostPort(t.Address); err == nil && p == strconv.Itoa(int(port)) && (host == t.Name || host == h) {
			return true
		}
	}
	return false
}
