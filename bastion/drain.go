package bastion

import (
	"context"
	"sync"
)

// Draining (SIGTERM): the server stops accepting, tells each open session
// why its end is coming, and waits for the sessions to end until a
// deadline, when it closes them (Shutdown), every recording sealed as at
// any other end. A notice goes on the session's stderr stream, which the
// client shows on its terminal whatever the program prints on stdout (a
// transfer's protocol bytes are never touched), and into its recording as
// a marker.

// liveChannels are open session channels: a Server's, for Announce, and
// a connection's, for its duration warning. The zero value is empty and
// ready.
type liveChannels struct {
	mu sync.Mutex // guards m
	m  map[*channel]struct{}
}

func (l *liveChannels) add(st *channel) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[*channel]struct{})
	}
	l.m[st] = struct{}{}
}

func (l *liveChannels) remove(st *channel) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, st)
}

func (l *liveChannels) all() []*channel {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*channel, 0, len(l.m))
	for st := range l.m {
		out = append(out, st)
	}
	return out
}

// Drain stops accepting connections, shows notice on every open session
// channel, then waits as Shutdown does: until every connection ended or
// ctx is done, when it closes the rest. It returns ctx's error if it had
// to close connections.
func (s *Server) Drain(ctx context.Context, notice string) error {
	s.closeListeners()
	msg := logSafe(notice)
	s.drain.Store(&msg) // before Announce: a channel that can take notices only after is told by openNotices
	s.drained.begin()   // after: a watch told to end finds the notice
	s.Announce(notice)
	return s.Shutdown(ctx)
}

// drainSignal is a channel closed once, when a drain begins: an admin
// `approvals --watch`, which would otherwise run until its client leaves,
// shows the notice and ends. The zero value is ready.
type drainSignal struct {
	once, closeOnce sync.Once
	c               chan struct{}
}

// done is closed once the drain began.
func (d *drainSignal) done() <-chan struct{} {
	d.once.Do(func() { d.c = make(chan struct{}) })
	return d.c
}

func (d *drainSignal) begin() {
	d.done()
	d.closeOnce.Do(func() { close(d.c) })
}

// Announce shows msg, one line, on the stderr of every open session
// channel, and records it in the channel's recording: at once where the
// program runs or is held for approval, else once it is (notices.go). It
// does not wait for slow clients: each notice is written on a goroutine
// the channel's connection owns. It returns how many channels it told or
// will tell.
func (s *Server) Announce(msg string) int {
	msg = logSafe(msg)
	n := 0
	// Under the lock, a listed channel's handler has not returned (it
	// removes the channel first): its connection's group is not done,
	// so goSafe may add to it.
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	for st := range s.live.m {
		if st.ctx.Err() != nil {
			continue
		}
		n++
		if st.noticeNow(msg) {
			st.c.goSafe(func() { st.announce(msg) })
		}
	}
	return n
}

// announce writes msg on the client's stderr unless the channel's EOF is
// sent (eofSent, under errMu) or msg was the last it was told, and marks
// it in the recording.
func (st *channel) announce(msg string) {
	if last := st.announced.Swap(&msg); last != nil && *last == msg {
		return // Announce and openNotices both gave it
	}
	st.errMu.Lock()
	sent := st.eofSent
	st.errMu.Unlock()
	if sent {
		return
	}
	// Not under errMu: the output stage takes the recording's lock and
	// errMu in its own order. A notice the recording cannot take (its
	// cap) is not shown: the channel ends, as at output past the cap.
	if err := st.rec.marker(msg); err != nil {
		st.fail(err)
		return
	}
	st.errMu.Lock()
	defer st.errMu.Unlock()
	if !st.eofSent {
		st.ch.Stderr().Write([]byte("\r\n" + msg + "\r\n"))
	}
}

// LiveConn describes one open connection, for a drain's log.
type LiveConn struct {
	ID       string // the connection's session ID
	Client   string // the client's address
	User     string // the identity's name; "" while the handshake runs
	Target   string // "" for an admin connection or during the handshake
	Login    string
	Admin    bool
	Channels int // channels open
}

// Live lists the open connections. It is safe for concurrent use.
func (s *Server) Live() []LiveConn {
	var out []LiveConn
	for _, c := range s.liveConns() {
		c.mu.Lock()
		authed, n := c.liveCert != nil, len(c.channels)
		c.mu.Unlock()
		lc := LiveConn{ID: c.id, Client: c.remote.String(), Channels: n}
		if authed { // set after the handshake wrote identity and grant
			lc.User, lc.Admin = logSafe(c.identity.Name()), c.admin
			if c.grant != nil {
				lc.Target, lc.Login = c.grant.Target.Name, logSafe(c.grant.Login)
			}
		}
		out = append(out, lc)
	}
	return out
}
