package pgproxy_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/postern/postern/pgproxy"
)

// discardConn reads a fixed input and counts what is written. With later
// set, it reads later only once writes began with a Query message, as a
// server answers.
type discardConn struct {
	in, later *bytes.Reader // read by the relay's reader of this side
	asked     chan struct{} // closed once a Query was written
	once      sync.Once
	n         atomic.Int64
}

func (c *discardConn) Read(p []byte) (int, error) {
	if c.in.Len() == 0 && c.later != nil {
		<-c.asked
		c.in, c.later = c.later, nil
	}
	return c.in.Read(p)
}

func (c *discardConn) Write(p []byte) (int, error) {
	if c.asked != nil && len(p) > 0 && p[0] == 'Q' {
		c.once.Do(func() { close(c.asked) })
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

func (c *discardConn) CloseWrite() error { return nil }
func (c *discardConn) Close() error      { return nil }

// BenchmarkRelayRows relays a 100 000-row result like the one of
// BenchmarkForward100kRows (an int, an md5 sum, a short text) from a server
// to a client in memory: the relay's own cost per byte.
func BenchmarkRelayRows(b *testing.B) {
	client := encode(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "u"}},
		&pgproto3.Query{String: "SELECT i, h, note FROM big"}, &pgproto3.Terminate{})
	hello := encode(&pgproto3.AuthenticationOk{}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	var server []byte
	server, _ = (&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("i")}, {Name: []byte("h")}, {Name: []byte("note")}}}).Encode(server)
	for i := range 100000 {
		row := pgproto3.DataRow{Values: [][]byte{fmt.Appendf(nil, "%d", i), fmt.Appendf(nil, "%x", md5.Sum(fmt.Appendf(nil, "%d", i))), fmt.Appendf(nil, "row %d", i)}}
		server, _ = row.Encode(server)
	}
	server, _ = (&pgproto3.CommandComplete{CommandTag: []byte("SELECT 100000")}).Encode(server)
	server, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(server)
	r, err := pgproxy.New(pgproxy.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(server)))
	b.ResetTimer()
	for range b.N {
		c := &discardConn{in: bytes.NewReader(client)}
		s := &discardConn{in: bytes.NewReader(hello), later: bytes.NewReader(server), asked: make(chan struct{})}
		if _, err := r.Run(context.Background(), c, s); err != nil {
			b.Fatal(err)
		}
		if c.n.Load() != int64(len(hello)+len(server)) {
			b.Fatalf("client got %d bytes, server sent %d", c.n.Load(), len(server))
		}
	}
}
