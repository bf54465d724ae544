package pgproxy_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/pgproxy"
)

// Authentication through the relay: the client answers the server's
// requests (SCRAM, MD5, clear text), which pass through unrecorded.
func TestAuthenticationThroughRelay(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"scram-sha-256", "md5", "password"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			const secret = "s3cret-pw"
			pg := testenv.PostgresWith(t, testenv.PostgresOptions{HostAuth: method, Password: secret})
			addr, ev, runs := relayTo(t, pg.Addr(), pgproxy.Config{})
			ctx := t.Context()
			if _, err := pgx.Connect(ctx, dsn(addr, "sslmode=disable password=wrong")); err == nil || !strings.Contains(err.Error(), "28P01") {
				t.Fatalf("wrong password: %v, want 28P01", err)
			}
			next(t, runs)
			conn, err := pgx.Connect(ctx, dsn(addr, "sslmode=disable password="+secret))
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRow(ctx, "SELECT 6*7").Scan(&n); err != nil || n != 42 {
				t.Fatalf("query after %s login: %d %v", method, n, err)
			}
			conn.Close(ctx)
			ev.mu.Lock()
			defer ev.mu.Unlock()
			var failed bool
			for _, r := range ev.results {
				if r.Err != nil && r.Err.Code == "28P01" && r.Seq == 0 {
					failed = true
				}
			}
			for _, s := range ev.statements {
				if strings.Contains(s.Text, secret) {
					t.Fatalf("the password reached a record: %+v", s)
				}
			}
			if !failed {
				t.Fatalf("the failed login is not among the results: %+v", ev.results)
			}
		})
	}
}

// A server that answers with something other than PostgreSQL: the relay
// stops, tells the client, and returns a ProtocolError; nothing of it
// reaches the client.
func TestServerGarbageEndsConnection(t *testing.T) {
	t.Parallel()
	for name, reply := range map[string]string{
		"ssh banner":      "SSH-2.0-OpenSSH_9.2p1\r\n",
		"http":            "HTTP/1.1 400 Bad Request\r\n\r\n",
		"huge length":     "R\x7f\xff\xff\xff",
		"unknown type":    "\x01\x00\x00\x00\x04",
		"rows at startup": "D\x00\x00\x00\x06\x00\x00",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			upstream := fakeServer(t, func(c net.Conn) {
				pgproto3.NewBackend(c, c).ReceiveStartupMessage()
				io.WriteString(c, reply)
				io.Copy(io.Discard, c)
			})
			addr, _, runs := relayTo(t, upstream, pgproxy.Config{MaxMessage: 1 << 20})
			_, err := pgx.Connect(t.Context(), dsn(addr, "sslmode=disable"))
			if err == nil || !strings.Contains(err.Error(), "could not be parsed") {
				t.Fatalf("client: %v; want the relay's FATAL message", err)
			}
			if strings.Contains(err.Error(), "SSH-") || strings.Contains(err.Error(), "HTTP") {
				t.Fatalf("the server's bytes reached the client: %v", err)
			}
			res := next(t, runs)
			if pe, ok := asProtocolError(res.err); !ok || pe.Side != "server" {
				t.Fatalf("relay: %v; want a ProtocolError from the server", res.err)
			}
		})
	}
}

// A client that sends no PostgreSQL: refused before anything reaches the
// server.
func TestClientGarbageEndsConnection(t *testing.T) {
	t.Parallel()
	got := make(chan []byte, 1)
	upstream := fakeServer(t, func(c net.Conn) { b, _ := io.ReadAll(c); got <- b })
	addr, _, runs := relayTo(t, upstream, pgproxy.Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.SetDeadline(time.Now().Add(time.Minute))
	reply, _ := io.ReadAll(c)
	if !strings.Contains(string(reply), "could not be parsed") || reply[0] != 'E' {
		t.Fatalf("client got %q; want a FATAL ErrorResponse", reply)
	}
	res := next(t, runs)
	if pe, ok := asProtocolError(res.err); !ok || pe.Side != "client" {
		t.Fatalf("relay: %v; want a ProtocolError from the client", res.err)
	}
	if b := <-got; len(b) != 0 {
		t.Fatalf("the server received %q", b)
	}
}

// GSSENCRequest and SSLRequest are answered 'N' by the relay itself, and
// the startup then goes on in the clear.
func TestEncryptionRequestsRefused(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	addr, ev, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	fe := pgproto3.NewFrontend(c, c)
	for _, req := range []pgproto3.FrontendMessage{&pgproto3.GSSEncRequest{}, &pgproto3.SSLRequest{}} {
		fe.Send(req)
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != 'N' {
			t.Fatalf("%T: answered %q %v, want N", req, b, err)
		}
	}
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "postgres", "application_name": "app-" + testPAN}})
	fe.Send(&pgproto3.Query{String: "SELECT '" + testPAN + "'"})
	fe.Send(&pgproto3.Terminate{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var row []byte
	for {
		msg, err := fe.Receive()
		if err != nil {
			break
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			row = append([]byte(nil), m.Values[0]...)
		case *pgproto3.ParameterStatus:
			if strings.Contains(m.Value, testPAN) {
				t.Errorf("parameter status %s=%q holds the card number", m.Name, m.Value)
			}
		}
	}
	if string(row) != maskedPAN {
		t.Fatalf("row %q, want %q", row, maskedPAN)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.startups) != 1 || ev.startups[0].User != "postgres" || ev.startups[0].Database != "postgres" || ev.startups[0].Application != "app-"+maskedPAN {
		t.Fatalf("startup %+v", ev.startups)
	}
}

// The Judge seam: a refused statement never reaches the server; the client
// is told why and the relay says which statement.
func TestJudgeRefusesStatement(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	judge := func(_ context.Context, st pgproxy.Statement) error {
		if strings.Contains(st.Text, "DROP") {
			return refused("postern: DROP needs approval")
		}
		return nil
	}
	addr, _, runs := relayTo(t, pg.Addr(), pgproxy.Config{Judge: judge})
	conn, err := pgx.Connect(t.Context(), dsn(addr, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), "DROP TABLE cards")
	if err == nil || !strings.Contains(err.Error(), "DROP needs approval") {
		t.Fatalf("DROP: %v", err)
	}
	res := next(t, runs)
	var je *pgproxy.JudgeError
	if !errors.As(res.err, &je) || je.Statement.Text != "DROP TABLE cards" {
		t.Fatalf("relay: %v", res.err)
	}
	if n := strings.TrimSpace(pg.SQL(t, "SELECT count(*) FROM cards")); n != "2" {
		t.Fatalf("the table has %s rows after the refused DROP", n)
	}
}

type refused string

func (r refused) Error() string       { return string(r) }
func (r refused) UserMessage() string { return string(r) }

// 100 000 rows come through the relay as they come directly: the same
// checksum, and the statement's row count recorded.
func TestLargeResultSameChecksum(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pg.SQL(t, "CREATE TABLE big AS SELECT i, md5(i::text) AS h, 'row ' || i AS note FROM generate_series(1, 100000) i")
	addr, ev, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	const q = "SELECT i, h, note FROM big ORDER BY i"
	sum := func(addr string) string {
		conn, err := pgx.Connect(t.Context(), dsn(addr, "sslmode=disable"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		rows, err := conn.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n := 0
		for rows.Next() {
			var i int
			var a, b string
			if err := rows.Scan(&i, &a, &b); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%d|%s|%s\n", i, a, b)
			n++
		}
		if rows.Err() != nil || n != 100000 {
			t.Fatalf("%d rows, %v", n, rows.Err())
		}
		return fmt.Sprintf("%x", h.Sum(nil))
	}
	if direct, relayed := sum(pg.Addr()), sum(addr); direct != relayed {
		t.Fatalf("checksum through the relay %s, direct %s", relayed, direct)
	}
	if _, rs, ok := ev.find(q); !ok || len(rs) != 1 || rs[0].Rows != 100000 || rs[0].Tag != "SELECT 100000" {
		t.Fatalf("observer: %+v", rs)
	}
}

// COPY FROM STDIN (psql and pgx's binary CopyFrom), a notice quoting a
// card number, and a query cancelled from a second connection (a
// CancelRequest through the relay) all pass and are recorded.
func TestCopyInNoticeAndCancel(t *testing.T) {
	t.Parallel()
	psql := testenv.Require(t, "psql")
	pg := cardsDB(t)
	addr, ev, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	r := testenv.Cmd(t, time.Minute, strings.NewReader("10\t"+testPAN+"\tcopied\t\t1\n11\tx\ty\t\t2\n\\.\n"), psql,
		"-X", "-v", "ON_ERROR_STOP=1", "-d", dsn(addr, ""), "-c", "COPY cards FROM STDIN")
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "COPY 2") {
		t.Fatalf("COPY FROM STDIN: exit %d %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	r = testenv.Cmd(t, time.Minute, nil, psql, "-X", "-d", dsn(addr, ""), "-c", "DO $$ BEGIN RAISE NOTICE 'card %', '"+testPAN+"'; END $$")
	if r.ExitCode != 0 || !strings.Contains(string(r.Stderr), "NOTICE:  card "+maskedPAN) || strings.Contains(string(r.Stderr), testPAN) {
		t.Fatalf("notice: exit %d stderr %q", r.ExitCode, r.Stderr)
	}
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn(addr, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"cards"}, []string{"id", "pan"}, pgx.CopyFromRows([][]any{{20, testPAN}, {21, "y"}}))
	if err != nil || n != 2 {
		t.Fatalf("CopyFrom: %d %v", n, err)
	}
	if got := strings.TrimSpace(pg.SQL(t, "SELECT count(*) FROM cards WHERE pan = '"+testPAN+"'")); got != "3" {
		t.Fatalf("%s rows hold the card number after the copies, want 3 (the client's data reaches the database unchanged)", got)
	}
	// psql sends a CancelRequest on Ctrl-C, on a connection of its own.
	slept := make(chan error, 1)
	go func() { _, err := conn.Exec(ctx, "SELECT pg_sleep(60)"); slept <- err }()
	testenv.WaitFor(t, 20*time.Second, func() bool {
		return strings.TrimSpace(pg.SQL(t, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'")) == "1"
	})
	if err := conn.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-slept:
		if err == nil || !strings.Contains(err.Error(), "57014") {
			t.Fatalf("pg_sleep after the cancel request: %v, want 57014", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cancel request did not cancel pg_sleep")
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var cancelled bool
	for _, s := range ev.startups {
		cancelled = cancelled || s.Cancel
	}
	if !cancelled {
		t.Fatalf("no cancel request among the startups %+v", ev.startups)
	}
}
