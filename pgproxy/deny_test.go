package pgproxy_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/postern/postern/pgproxy"
)

// denyDeletes refuses every statement that deletes, and lets the rest run.
func denyDeletes(_ context.Context, st pgproxy.Statement) error {
	if strings.Contains(strings.ToUpper(st.Text), "DELETE") {
		return &pgproxy.Denied{Message: "postern: DELETE denied by alice: not today"}
	}
	return nil
}

// isDenied checks err is the refusal, as the server would have sent it.
func isDenied(t *testing.T, err error) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || pe.Severity != "ERROR" || !strings.Contains(pe.Message, "not today") {
		t.Fatalf("want the refusal as an ERROR 42501, got %v", err)
	}
}

func count(t *testing.T, conn *pgx.Conn, mode pgx.QueryExecMode) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM cards", mode).Scan(&n); err != nil {
		t.Fatalf("the next statement on the connection: %v", err)
	}
	return n
}

// A denied statement, in the simple and in the extended protocol, gets an
// ERROR and never runs; the connection goes on, and transactions behave
// as they do after any failed statement.
func TestDeniedStatementConnectionGoesOn(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, ev, runs := relayTo(t, pg.Addr(), pgproxy.Config{Judge: denyDeletes})
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec} {
		conn, err := pgx.Connect(t.Context(), dsn(addr, "sslmode=disable"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(t.Context(), "DELETE FROM cards WHERE id = $1", mode, 1)
		isDenied(t, err)
		if n := count(t, conn, mode); n != 2 {
			t.Fatalf("%v: %d rows after the denied DELETE", mode, n)
		}
		// In a transaction the denial aborts it, as an error does.
		tx, err := conn.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(t.Context(), "INSERT INTO cards (id) VALUES (3)", mode); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(t.Context(), "DELETE FROM cards", mode)
		isDenied(t, err)
		_, err = tx.Exec(t.Context(), "SELECT 1", mode)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "25P02" {
			t.Fatalf("%v: after the denial in a transaction: %v, want 25P02", mode, err)
		}
		if err := tx.Rollback(t.Context()); err != nil {
			t.Fatal(err)
		}
		// A pipeline: the statements before run, those after until
		// Sync are skipped, the next batch runs.
		b := &pgx.Batch{}
		b.Queue("SELECT 1")
		b.Queue("DELETE FROM cards")
		b.Queue("SELECT 2")
		br := conn.SendBatch(t.Context(), b)
		var one int
		if err := br.QueryRow().Scan(&one); err != nil || one != 1 {
			t.Fatalf("%v: first of the batch: %v", mode, err)
		}
		_, err = br.Exec()
		isDenied(t, err)
		br.Close()
		if n := count(t, conn, mode); n != 2 {
			t.Fatalf("%v: %d rows", mode, n)
		}
		conn.Close(t.Context())
		if r := next(t, runs); r.err != nil {
			t.Fatalf("%v: the relay ended with %v", mode, r.err)
		}
	}
	if _, res, ok := ev.find("DELETE FROM cards WHERE id = $1"); !ok || len(res) != 1 || res[0].Err == nil || res[0].Err.Code != "42501" {
		t.Errorf("the denied statement's result as recorded: %+v", res)
	}
}

// A held statement waits, unsent, until the Judge decides; the client then
// gets the server's result. A client that leaves meanwhile cancels the
// Judge's context with ErrClientLeft.
func TestHeldStatementWaits(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	asked, release := make(chan struct{}, 1), make(chan struct{})
	left := make(chan error, 1)
	judge := func(ctx context.Context, st pgproxy.Statement) error {
		if !strings.HasPrefix(st.Text, "DROP") {
			return nil
		}
		asked <- struct{}{}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			left <- context.Cause(ctx)
			return ctx.Err()
		}
	}
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{Judge: judge})
	conn, err := pgx.Connect(t.Context(), dsn(addr, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), "DROP TABLE cards")
		done <- err
	}()
	waitFor(t, asked)
	if n := strings.TrimSpace(pg.SQL(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'cards'")); n != "1" {
		t.Fatal("the held DROP ran")
	}
	release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.TrimSpace(pg.SQL(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'cards'")); n != "0" {
		t.Fatal("the approved DROP did not run")
	}

	// Held again on a second connection; the client goes away.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pgconn.ConnectConfig(t.Context(), mustConfig(t, addr, c))
	if err != nil {
		t.Fatal(err)
	}
	go pc.Exec(context.Background(), "DROP TABLE IF EXISTS nothing").ReadAll()
	waitFor(t, asked)
	c.Close()
	select {
	case cause := <-left:
		if !errors.Is(cause, pgproxy.ErrClientLeft) {
			t.Fatalf("the Judge's context ended with %v", cause)
		}
	case <-time.After(time.Minute):
		t.Fatal("the client left and the Judge was not told")
	}
}

// mustConfig is a pgconn config for addr that uses c as its connection.
func mustConfig(t *testing.T, addr string, c net.Conn) *pgconn.Config {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn(addr, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) { return c, nil }
	return cfg
}

func waitFor(t *testing.T, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(time.Minute):
		t.Fatal("the statement was not judged within a minute")
	}
}
