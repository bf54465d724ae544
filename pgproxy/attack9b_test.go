package pgproxy_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/pgproxy"
)

// Large values pass, masked, within the Memory, which has them all back
// afterwards; one larger than the Memory ends its connection with a
// FATAL error that says why, and ErrMemory.
func TestAttack9LargeValuesWithinMemory(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	mem := pgproxy.NewMemory(64 << 20)
	addr, _, runs := relayTo(t, pg.Addr(), pgproxy.Config{Memory: mem})
	r := dialRaw(t, addr, nil)
	for range 3 {
		r.send(&pgproto3.Query{String: "SELECT repeat('x', 5000000) || ' " + testPAN + " ' || repeat('y', 3000000)"})
		got := r.until(isReady)
		if bytes.Contains(got, []byte(testPAN)) || !bytes.Contains(got, []byte(maskedPAN)) || len(got) < 8000000 {
			t.Fatalf("a large value: %d bytes, card number masked: %v", len(got), bytes.Contains(got, []byte(maskedPAN)))
		}
	}
	if u := mem.Used(); u != 0 {
		t.Fatalf("%d bytes of the Memory still taken between statements", u)
	}
	r.send(&pgproto3.Query{String: "SELECT repeat('x', 30000000)"})
	var fatal []byte
	for range 100 {
		m, err := r.fe.Receive()
		if err != nil {
			break
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			fatal = append(fatal, e.Severity+" "+e.Message...)
		}
	}
	if !bytes.Contains(fatal, []byte("FATAL postern: a PostgreSQL message on this connection is larger than the bastion can hold now")) {
		t.Fatalf("the client got %q; want the relay's FATAL error", fatal)
	}
	if res := next(t, runs); !errors.Is(res.err, pgproxy.ErrMemory) {
		t.Fatalf("relay: %v, want ErrMemory", res.err)
	}
	if u := mem.Used(); u != 0 {
		t.Fatalf("%d bytes of the Memory still taken after the connection ended", u)
	}
}

// What the README says is not masked, held to it: a card number kept as a
// bigint and fetched in binary format, and one kept as bytea and shown in
// text format as hex, pass as they are; the same bytea in binary format,
// or with bytea_output escape, shows digits, which are masked.
func TestAttack9DocumentedGaps(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pg.SQL(t, "CREATE TABLE kept (n bigint, b bytea); INSERT INTO kept VALUES ("+testPAN+", convert_to('"+testPAN+"', 'UTF8'))")
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	r := dialRaw(t, addr, nil)
	for _, c := range []struct {
		sql    string
		format int16
		want   string // in what the client gets
	}{
		{"SELECT n FROM kept", 1, string(binary.BigEndian.AppendUint64(nil, 4111111111111111))},
		{"SELECT b FROM kept", 0, `\x` + hex.EncodeToString([]byte(testPAN))},
		{"SELECT b FROM kept", 1, maskedPAN},
		{"SELECT n FROM kept", 0, maskedPAN},
	} {
		r.send(&pgproto3.Parse{Query: c.sql}, &pgproto3.Bind{ResultFormatCodes: []int16{c.format}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if got := r.until(isReady); !bytes.Contains(got, []byte(c.want)) {
			t.Errorf("%s (format %d): %q, want %q in it", c.sql, c.format, got, c.want)
		}
	}
	r.send(&pgproto3.Query{String: "SET bytea_output = escape; SELECT b FROM kept"})
	if got := r.until(isReady); bytes.Contains(got, []byte(testPAN)) || !bytes.Contains(got, []byte(maskedPAN)) {
		t.Errorf("bytea_output escape: %q", got)
	}
}

// A client that asks for protocol 3.2 with options the server does not
// know: PostgreSQL 15 answers NegotiateProtocolVersion, which names the
// options (masked, like every text the server sends), and the
// connection goes on in 3.0, masked.
func TestAttack9ProtocolNegotiation(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32,
		Parameters: map[string]string{"user": "postgres", "_pq_." + testPAN: "x"}})
	fe.Send(&pgproto3.Query{String: "SELECT '" + testPAN + "'"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	r := &rawConn{t: t, c: c, fe: fe}
	var negotiated bool
	ready := 0 // the startup's, then the query's
	got := r.until(func(m pgproto3.BackendMessage) bool {
		if _, ok := m.(*pgproto3.NegotiateProtocolVersion); ok {
			negotiated = true
		}
		if isReady(m) {
			ready++
		}
		return ready == 2
	})
	if !negotiated || bytes.Contains(got, []byte(testPAN)) || bytes.Count(got, []byte(maskedPAN)) != 2 {
		t.Fatalf("negotiated %v; the client got %q", negotiated, got)
	}
}

// What a statement does must be in its record however the client sends
// it: a text parameter sent in binary format (the same bytes) and the
// arguments of a fast-path function call are recorded as text, masked;
// parameters that are not text stay a size.
func TestAttack9ParamsCannotHideStatements(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pg.SQL(t, "CREATE TABLE t (x text); CREATE FUNCTION run(q text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE q; RETURN 1; END $$;")
	oid := strings.TrimSpace(pg.SQL(t, "SELECT 'run'::regproc::oid"))
	n, _ := strconv.ParseUint(oid, 10, 32)
	addr, ev, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	r := dialRaw(t, addr, nil)
	const hidden, called = "INSERT INTO t VALUES ('" + testPAN + "')", "DELETE FROM t"
	r.send(&pgproto3.Parse{Query: "SELECT run($1)", ParameterOIDs: []uint32{25}},
		&pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{[]byte(hidden)}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r.until(isReady)
	r.send(&pgproto3.FunctionCall{Function: uint32(n), ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte(called)}})
	r.until(isReady)
	r.send(&pgproto3.Parse{Query: "SELECT $1::int4"}, &pgproto3.Bind{ParameterFormatCodes: []int16{1}, Parameters: [][]byte{{0, 0, 0, 42}}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	r.until(isReady)
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var got []string
	for _, s := range ev.statements {
		got = append(got, s.Text+" "+strings.Join(s.Params, ","))
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{"SELECT run($1) binary 'INSERT INTO t VALUES (''" + maskedPAN + "'')'", "'" + called + "'", "SELECT $1::int4 <binary, 4 bytes>"} {
		if !strings.Contains(all, want) {
			t.Errorf("records:\n%s\nlack %q", all, want)
		}
	}
	if strings.Contains(all, testPAN) {
		t.Errorf("a record holds the card number:\n%s", all)
	}
}

// A statement cannot hide its text behind padding: a long comment before
// it is recorded with it; a statement too long to record whole is refused
// with a FATAL error and ErrTooLong.
func TestAttack9PaddedStatementRecorded(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pg.SQL(t, "CREATE TABLE t (x int)")
	addr, ev, runs := relayTo(t, pg.Addr(), pgproxy.Config{})
	r := dialRaw(t, addr, nil)
	padded := "/* " + strings.Repeat("x", 20<<10) + " */ DROP TABLE t"
	r.send(&pgproto3.Query{String: padded})
	r.until(isReady)
	if _, _, ok := ev.find(padded); !ok {
		t.Errorf("the padded statement is not recorded whole")
	}
	r.send(&pgproto3.Query{String: "/* " + strings.Repeat("x", pgproxy.MaxText) + " */ SELECT 1"})
	var fatal string
	r.until(func(m pgproto3.BackendMessage) bool {
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			fatal = e.Severity + " " + e.Message
			return true
		}
		return false
	})
	if !strings.HasPrefix(fatal, "FATAL postern: a statement over 1 MiB cannot be recorded whole") {
		t.Errorf("client got %q", fatal)
	}
	if res := next(t, runs); !errors.Is(res.err, pgproxy.ErrTooLong) {
		t.Errorf("relay: %v, want ErrTooLong", res.err)
	}
}

// A prepared statement's text cannot be pushed out of the relay's memory
// before it runs: past the number of named statements and portals the
// relay keeps, a new one ends the connection rather than making a later
// Execute unrecordable.
func TestAttack9NamedStatementsCannotEvict(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pg.SQL(t, "CREATE TABLE t (x int)")
	addr, ev, runs := relayTo(t, pg.Addr(), pgproxy.Config{})
	r := dialRaw(t, addr, nil)
	r.send(&pgproto3.Parse{Name: "evil", Query: "DROP TABLE t"}, &pgproto3.Sync{})
	r.until(isReady)
	var fill []pgproto3.FrontendMessage
	for i := range 5000 {
		fill = append(fill, &pgproto3.Parse{Name: "s" + strconv.Itoa(i), Query: "SELECT 1"})
	}
	r.send(append(fill, &pgproto3.Sync{})...)
	ended := false
	for range 20000 {
		m, err := r.fe.Receive()
		if err != nil {
			ended = true
			break
		}
		if isReady(m) {
			break
		}
	}
	if !ended {
		r.send(&pgproto3.Bind{PreparedStatement: "evil"}, &pgproto3.Execute{}, &pgproto3.Sync{})
		r.until(isReady)
		if _, _, ok := ev.find("DROP TABLE t"); !ok {
			t.Fatalf("the prepared statement ran, its text not recorded")
		}
		return
	}
	if res := next(t, runs); !errors.Is(res.err, pgproxy.ErrTooMany) {
		t.Errorf("relay: %v, want ErrTooMany", res.err)
	}
}

// A portal runs the statement it was bound to, even after that statement
// was closed and its name reused: the record names what ran.
func TestAttack9PortalKeepsItsStatement(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pg.SQL(t, "CREATE TABLE t (x int)")
	addr, ev, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	r := dialRaw(t, addr, nil)
	r.send(&pgproto3.Query{String: "BEGIN"})
	r.until(isReady)
	r.send(&pgproto3.Parse{Name: "s", Query: "DROP TABLE t"}, &pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "p"},
		&pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Parse{Name: "s", Query: "SELECT 1"},
		&pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{})
	r.until(isReady)
	r.send(&pgproto3.Query{String: "COMMIT"})
	r.until(isReady)
	if got := strings.TrimSpace(pg.SQL(t, "SELECT count(*) FROM pg_class WHERE relname = 't'")); got != "0" {
		t.Fatalf("the portal did not drop the table (%s): the test does not test what it says", got)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, s := range ev.statements {
		if s.Protocol == "extended" {
			if s.Text != "DROP TABLE t" {
				t.Fatalf("the Execute is recorded as %q; DROP TABLE t ran", s.Text)
			}
			return
		}
	}
	t.Fatal("no Execute recorded")
}
