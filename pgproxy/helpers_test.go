package pgproxy_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/pgproxy"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// The card number the tests store, and how it must reach the client.
const (
	testPAN   = "4111111111111111"
	maskedPAN = "411111******1111"
)

// events keeps what the relays' Observers saw, each connection's apart.
type events struct {
	mu         sync.Mutex
	startups   []pgproxy.Startup
	statements []connStatement
	results    []connResult
}

type connStatement struct {
	conn int
	pgproxy.Statement
}

type connResult struct {
	conn int
	pgproxy.Result
}

// observer is one connection's Observer.
type observer struct {
	e    *events
	conn int
}

func (o observer) Startup(s pgproxy.Startup) {
	o.e.mu.Lock()
	defer o.e.mu.Unlock()
	o.e.startups = append(o.e.startups, s)
}

func (o observer) Statement(s pgproxy.Statement) {
	o.e.mu.Lock()
	defer o.e.mu.Unlock()
	o.e.statements = append(o.e.statements, connStatement{o.conn, s})
}

func (o observer) Result(r pgproxy.Result) {
	o.e.mu.Lock()
	defer o.e.mu.Unlock()
	o.e.results = append(o.e.results, connResult{o.conn, r})
}

// find returns the last statement whose text is text, and its results.
func (e *events) find(text string) (pgproxy.Statement, []pgproxy.Result, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.statements) - 1; i >= 0; i-- {
		s := e.statements[i]
		if s.Text == text {
			var rs []pgproxy.Result
			for _, r := range e.results {
				if r.conn == s.conn && r.Seq == s.Seq {
					rs = append(rs, r.Result)
				}
			}
			return s.Statement, rs, true
		}
	}
	return pgproxy.Statement{}, nil, false
}

// run is one relayed connection's outcome.
type run struct {
	stats pgproxy.Stats
	err   error
}

// relayTo listens on loopback and relays each connection to the server at
// upstream with cfg (its Observer set to the returned events). It returns
// the address, the events, and a channel of each connection's outcome.
func relayTo(t *testing.T, upstream string, cfg pgproxy.Config) (string, *events, <-chan run) {
	t.Helper()
	ev := &events{}
	if _, err := pgproxy.New(cfg); err != nil {
		t.Fatal(err)
	}
	conns := 0
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runs := make(chan run, 100)
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns++
			cfg := cfg
			if cfg.Observer == nil {
				cfg.Observer = observer{ev, conns}
			}
			r, _ := pgproxy.New(cfg)
			wg.Go(func() {
				defer c.Close()
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					runs <- run{err: err}
					return
				}
				defer u.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				st, err := r.Run(ctx, c.(*net.TCPConn), u.(*net.TCPConn))
				runs <- run{st, err}
			})
		}
	})
	return l.Addr().String(), ev, runs
}

// next waits for a connection's outcome.
func next(t *testing.T, runs <-chan run) run {
	t.Helper()
	select {
	case r := <-runs:
		return r
	case <-time.After(time.Minute):
		t.Fatal("no relayed connection ended within a minute")
	}
	return run{}
}

// dsn is a libpq connection string for addr, as user postgres.
func dsn(addr string, extra string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "host=" + host + " port=" + port + " user=postgres dbname=postgres connect_timeout=20 " + extra
}

// fakeServer accepts one connection on loopback and runs serve on it.
func fakeServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		serve(c)
	})
	return l.Addr().String()
}

func asProtocolError(err error) (*pgproxy.ProtocolError, bool) {
	var pe *pgproxy.ProtocolError
	ok := errors.As(err, &pe)
	return pe, ok
}

var _ = strconv.Itoa
