package bastion

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/postern/postern/approval"
)

// Through ssh -L and pgx, statements that once ran past the SQL rules are
// held, and the approver sees what would run, masked: a DELETE after a
// comment ended by a carriage return, behind a U&"…" name, hidden by what
// masking makes of a card number (/4111… read as /****…), a function's
// body, and a statement Parse'd with the protocol and run by SQL's
// EXECUTE.
func TestSQLHoldAttacks(t *testing.T) {
	t.Parallel()
	r := newSQLHoldRig(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, r.conninfo(true)+" sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deny := func(sql string, want ...string) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
			done <- err
		}()
		req := r.pending(t)
		for _, w := range want {
			if !strings.Contains(req.Line, w) {
				t.Errorf("%q: the approver sees %q, want %q in it", sql, req.Line, w)
			}
		}
		if strings.Contains(req.Line+req.Why, testPAN) {
			t.Errorf("%q: a card number in the request: %+v", sql, req)
		}
		if _, err := r.broker.Decide(ctx, req.ID, bob, false, "no"); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !isRefusal(err, "request "+req.ID+" denied by bob: no") {
			t.Fatalf("%q: %v", sql, err)
		}
		if n := r.count(t); n != "2" {
			t.Fatalf("%q: %s rows after", sql, n)
		}
	}
	deny("SELECT 1 --\r; DELETE FROM cards")
	deny(`DELETE FROM U&"c\0061rds"`)
	deny("SELECT 1/"+testPAN+"; DELETE FROM cards; -- */", "SELECT 1/411111******1111; DELETE FROM cards")
	deny("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM cards'")
	if _, err := conn.Prepare(ctx, "gone", "DELETE FROM cards WHERE pan <> '"+testPAN+"'"); err != nil {
		t.Fatal(err)
	}
	deny("EXECUTE gone", "EXECUTE gone runs: DELETE FROM cards WHERE pan <> '411111******1111'")
	if list := r.broker.List(ctx, true); len(list) != 5 || list[0].Kind != approval.KindSQL {
		t.Fatalf("%d requests, want the five held above", len(list))
	}
	checkNoPAN(t, r.dir, r.logs.String())
}
