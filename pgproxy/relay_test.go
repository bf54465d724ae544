package pgproxy_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/pgproxy"
)

// cardsSQL makes a table with a card number column beside columns that
// look like numbers but are none (a 13-digit epoch in milliseconds, an
// order number), and a bigint.
const cardsSQL = `
CREATE TABLE cards (id int PRIMARY KEY, pan text, note text, epoch_ms text, n bigint);
INSERT INTO cards VALUES
  (1, '` + testPAN + `', 'order 12345', '1796149455125', 42),
  (2, 'card ` + testPAN + ` exp 12/29', 'plain', '1796149455126', 7);
`

// cardsDB starts a PostgreSQL with the cards table.
func cardsDB(t *testing.T) *testenv.PostgresInstance {
	t.Helper()
	pg := testenv.Postgres(t)
	pg.SQL(t, cardsSQL)
	return pg
}

func TestPsqlThroughRelayMasksAlignedAndUnaligned(t *testing.T) {
	t.Parallel()
	psql := testenv.Require(t, "psql")
	pg := cardsDB(t)
	addr, ev, runs := relayTo(t, pg.Addr(), pgproxy.Config{})
	for _, mode := range [][]string{nil, {"-A"}} {
		// sslmode=prefer: libpq asks for TLS first; the relay says no.
		args := append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-d", dsn(addr, "sslmode=prefer"), "-c", "SELECT * FROM cards ORDER BY id"}, mode...)
		r := testenv.Cmd(t, time.Minute, nil, psql, args...)
		out := string(r.Stdout)
		if r.ExitCode != 0 {
			t.Fatalf("psql %v: exit %d: %s", mode, r.ExitCode, r.Stderr)
		}
		if strings.Contains(out+string(r.Stderr), testPAN) || strings.Count(out, maskedPAN) != 2 {
			t.Fatalf("psql %v printed:\n%s\nwant %s twice and no full card number", mode, out, maskedPAN)
		}
		for _, want := range []string{"order 12345", "1796149455125", "1796149455126", "exp 12/29", "42", "(2 rows)"} {
			if !strings.Contains(out, want) {
				t.Errorf("psql %v: %q missing (other columns must pass unchanged):\n%s", mode, want, out)
			}
		}
		res := next(t, runs)
		if res.err != nil || res.stats.MaskedPANs != 2 || res.stats.User != "postgres" || res.stats.Database != "postgres" {
			t.Fatalf("relay: %+v %v; want 2 card numbers masked, user and database postgres", res.stats, res.err)
		}
	}
	st, rs, ok := ev.find("SELECT * FROM cards ORDER BY id")
	if !ok || st.Protocol != "simple" || len(rs) != 1 || rs[0].Tag != "SELECT 2" || rs[0].Rows != 2 || rs[0].Err != nil {
		t.Fatalf("observer: statement %+v results %+v", st, rs)
	}
}

func TestPgxExtendedProtocolTextAndBinary(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, ev, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn(addr, "sslmode=prefer"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, format := range []int16{pgx.TextFormatCode, pgx.BinaryFormatCode} {
		var pan, note string
		var n int64
		// A prepared statement with the card number as its parameter.
		err := conn.QueryRow(ctx, "SELECT pan, note, n FROM cards WHERE pan = $1", pgx.QueryResultFormats{format, format, format}, testPAN).Scan(&pan, &note, &n)
		if err != nil {
			t.Fatalf("format %d: %v", format, err)
		}
		if pan != maskedPAN || note != "order 12345" || n != 42 {
			t.Fatalf("format %d: got %q %q %d; want %q, the note and 42 unchanged", format, pan, note, n, maskedPAN)
		}
	}
	st, rs, ok := ev.find("SELECT pan, note, n FROM cards WHERE pan = $1")
	if !ok || st.Protocol != "extended" || len(st.Params) != 1 || st.Params[0] != "'"+maskedPAN+"'" {
		t.Fatalf("observer: statement %+v; want the extended statement with its parameter masked", st)
	}
	if len(rs) != 1 || rs[0].Tag != "SELECT 1" || rs[0].Rows != 1 {
		t.Fatalf("observer: results %+v", rs)
	}
	// A transaction, and an error that quotes a card number.
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "INSERT INTO cards (id, pan) VALUES (3, $1)", "5555555555554444")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE UNIQUE INDEX ON cards (pan)")
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO cards (id, pan) VALUES (4, '5555555555554444')")
	if err == nil || strings.Contains(err.Error(), "5555555555554444") || !strings.Contains(err.Error(), "duplicate key") {
		t.Fatalf("duplicate insert: %v; want a duplicate key error without the card number", err)
	}
	_, rs, ok = ev.find("INSERT INTO cards (id, pan) VALUES (4, '555555******4444')")
	if !ok || len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != "23505" || strings.Contains(rs[0].Err.Detail, "5555555555554444") {
		t.Fatalf("observer: results %+v; want the masked statement with error 23505, masked", rs)
	}
	_, rs, ok = ev.find("commit")
	if !ok || len(rs) != 1 || rs[0].Tag != "COMMIT" {
		t.Fatalf("observer: commit %+v %v", rs, ok)
	}
}

func TestCopyToStdoutMasked(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	ctx := t.Context()
	direct, err := pgx.Connect(ctx, dsn(pg.Addr(), "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	relayed, err := pgx.Connect(ctx, dsn(addr, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close(ctx)
	for _, format := range []string{"text", "csv", "binary"} {
		sql := "COPY cards TO STDOUT (FORMAT " + format + ")"
		var want, got bytes.Buffer
		if _, err := direct.PgConn().CopyTo(ctx, &want, sql); err != nil {
			t.Fatal(err)
		}
		tag, err := relayed.PgConn().CopyTo(ctx, &got, sql)
		if err != nil || tag.String() != "COPY 2" {
			t.Fatalf("%s: %v %v", format, tag, err)
		}
		masked := bytes.ReplaceAll(want.Bytes(), []byte(testPAN), []byte(maskedPAN))
		if !bytes.Equal(got.Bytes(), masked) || bytes.Contains(got.Bytes(), []byte(testPAN)) {
			t.Fatalf("%s: got %q\nwant %q", format, got.Bytes(), masked)
		}
	}
}

func TestStatementsAndErrorsObserved(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, ev, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn(addr, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Simple protocol, two statements in one Query.
	if _, err := conn.Exec(ctx, "SELECT 1; SELECT 2, 3", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	_, rs, ok := ev.find("SELECT 1; SELECT 2, 3")
	if !ok || len(rs) != 2 || rs[0].Tag != "SELECT 1" || rs[1].Tag != "SELECT 1" || rs[0].Rows != 1 {
		t.Fatalf("two statements: %+v", rs)
	}
	// A syntax error at Parse: recorded with its text.
	if _, err := conn.Prepare(ctx, "broken", "SELEC broken"); err == nil {
		t.Fatal("syntax error passed")
	}
	st, rs, ok := ev.find("SELEC broken")
	if !ok || st.Protocol != "parse" || len(rs) != 1 || rs[0].Err == nil || rs[0].Err.Code != "42601" {
		t.Fatalf("parse error: %+v %+v", st, rs)
	}
	// The connection goes on after it.
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM cards").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after the error: %d %v", n, err)
	}
}
