package pgproxy_test

import (
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/postern/postern/pgproxy"
)

// memConn is a Conn that reads a fixed input and keeps what is written.
type memConn struct {
	mu  sync.Mutex
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *memConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.in.Read(p)
}

func (c *memConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out.Len() < 1<<20 {
		c.out.Write(p)
	}
	return len(p), nil
}

func (c *memConn) CloseWrite() error { return nil }

func (c *memConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.in.Seek(0, io.SeekEnd)
	return nil
}

// encode concatenates messages as they go on the wire.
func encode(msgs ...interface{ Encode([]byte) ([]byte, error) }) []byte {
	var b []byte
	for _, m := range msgs {
		b, _ = m.Encode(b)
	}
	return b
}

// FuzzRelay feeds arbitrary bytes from both sides through the relay: it
// must end, without a panic, and say why.
func FuzzRelay(f *testing.F) {
	startup := encode(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "u"}})
	queries := encode(&pgproto3.Query{String: "select 1"}, &pgproto3.Parse{Query: "select $1"}, &pgproto3.Bind{Parameters: [][]byte{[]byte("x")}},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{}, &pgproto3.Terminate{})
	hello := encode(&pgproto3.AuthenticationMD5Password{}, &pgproto3.AuthenticationOk{}, &pgproto3.ParameterStatus{Name: "a", Value: "b"},
		&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	answers := encode(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("a")}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("4111111111111111")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.ReadyForQuery{TxStatus: 'I'}, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, &pgproto3.NoData{},
		&pgproto3.CopyOutResponse{OverallFormat: 1}, &pgproto3.CopyData{Data: []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
		&pgproto3.CopyDone{}, &pgproto3.ErrorResponse{Severity: "ERROR", Message: "4111111111111111"}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	password := encode(&pgproto3.PasswordMessage{Password: "md5x"})
	f.Add(append(append(startup, password...), queries...), append(hello, answers...))
	f.Add(encode(&pgproto3.SSLRequest{}, &pgproto3.GSSEncRequest{}), []byte("N"))
	f.Add(encode(&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}}), []byte{})
	f.Add(startup, []byte("SSH-2.0-x\r\n"))
	r, err := pgproxy.New(pgproxy.Config{MaxMessage: 1 << 16, MaxPending: 64})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, fromClient, fromServer []byte) {
		client := &memConn{in: bytes.NewReader(fromClient)}
		server := &memConn{in: bytes.NewReader(fromServer)}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.Run(ctx, client, server)
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not end")
		}
		// A value that is a card number, whole, is always masked.
		fe := pgproto3.NewFrontend(bytes.NewReader(client.out.Bytes()), io.Discard)
		for {
			msg, err := fe.Receive()
			if err != nil {
				break
			}
			if row, ok := msg.(*pgproto3.DataRow); ok {
				for _, v := range row.Values {
					if string(v) == "4111111111111111" {
						t.Fatalf("a card number reached the client: %q", client.out.Bytes())
					}
				}
			}
		}
	})
}
