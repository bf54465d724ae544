package pgproxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/mask"
	"github.com/postern/postern/pgproxy"
)

// Attacks on the SQL approval holds through the relay, against a real
// PostgreSQL: each sends a statement an approval rule matches in a way
// that must not let it run unjudged. The Judge is the approval rules'
// (as the bastion's is) with an approver who always says no.

// attackRules holds DROP, TRUNCATE and deletes from cards.
var attackRules = &approval.Policy{Rules: []approval.Rule{
	{Name: "ddl", Match: approval.Match{SQL: []string{"DROP", "TRUNCATE", "DELETE FROM *cards*"}}, Action: approval.Approve, Approvers: []string{"ops"}},
}}

// ruleJudge judges as the bastion does and refuses what is not allowed.
// Each text it judged is sent on judged.
func ruleJudge(judged chan<- string) func(context.Context, pgproxy.Statement) error {
	return func(ctx context.Context, st pgproxy.Statement) error {
		var v approval.Verdict
		var lookupErr error
		switch {
		case st.Protocol == "function":
			v = attackRules.DecideSQLUnjudged(nil, "a fast-path function call")
		case st.Text == "":
			v = attackRules.DecideSQLUnjudged(nil, "a portal whose statement the bastion did not see")
		default:
			v = attackRules.DecideSQLPrepared(nil, st.SQL, func(name string) (string, bool) {
				_, sql, ok, err := pgproxy.PreparedStatement(ctx, name)
				if err != nil {
					lookupErr = err
				}
				return sql, ok
			})
		}
		if judged != nil {
			select {
			case judged <- st.Text:
			default:
			}
		}
		if v.Action != approval.Allow || lookupErr != nil {
			return &pgproxy.Denied{Message: "postern: not today: " + v.Reason}
		}
		return nil
	}
}

// cardsLeft counts the rows of cards, straight from the server.
func cardsLeft(t *testing.T, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn(addr, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res, err := c.Exec(ctx, "SELECT count(*) FROM cards").ReadAll()
	if err != nil {
		return "error: " + err.Error()
	}
	return string(res[0].Rows[0][0])
}

// frontend connects through the relay and returns the protocol's frontend.
func frontend(t *testing.T, addr string) *pgproto3.Frontend {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn(addr, "sslmode=disable"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Conn().Close() })
	c.Conn().SetDeadline(time.Now().Add(time.Minute))
	return c.Frontend()
}

// exchange sends msgs and reads the replies until ready ReadyForQuery
// messages came; it returns the replies' type names and error messages.
func exchange(t *testing.T, fe *pgproto3.Frontend, ready int, msgs ...pgproto3.FrontendMessage) []string {
	t.Helper()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for ready > 0 {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			ready--
			got = append(got, "Z")
		case *pgproto3.ErrorResponse:
			got = append(got, "E:"+m.Message)
		case *pgproto3.CommandComplete:
			got = append(got, "C:"+string(m.CommandTag))
		default:
			got = append(got, strings.TrimPrefix(strings.TrimPrefix(typeName(m), "*pgproto3."), "pgproto3."))
		}
	}
	return got
}

// A -- comment ends at a carriage return in PostgreSQL: what follows it
// is judged.
func TestAttackCommentEndsAtCarriageReturn(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{Judge: ruleJudge(nil)})
	fe := frontend(t, addr)
	got := exchange(t, fe, 1, &pgproto3.Query{String: "SELECT 1 --\r; DELETE FROM cards"})
	if n := cardsLeft(t, pg.Addr()); n != "2" {
		t.Fatalf("DELETE after a --…\\r comment ran unjudged (%v); %s rows left", got, n)
	}
}

// U&"…" spells a table's name with Unicode escapes.
func TestAttackUnicodeIdentifier(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{Judge: ruleJudge(nil)})
	fe := frontend(t, addr)
	for _, q := range []string{`DELETE FROM U&"c\0061rds"`, `DELETE FROM U&"c!0061rds" UESCAPE '!'`} {
		got := exchange(t, fe, 1, &pgproto3.Query{String: q})
		if n := cardsLeft(t, pg.Addr()); n != "2" {
			t.Fatalf("%s ran unjudged (%v); %s rows left", q, got, n)
		}
	}
}

// A function's body runs when it is called: creating one is judged as a
// DO block is (it cannot be read), so it cannot carry a DELETE past the
// rules.
func TestAttackFunctionBody(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{Judge: ruleJudge(nil)})
	fe := frontend(t, addr)
	got := exchange(t, fe, 2,
		&pgproto3.Query{String: "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM cards'"},
		&pgproto3.Query{String: "SELECT f()"})
	if n := cardsLeft(t, pg.Addr()); n != "2" {
		t.Fatalf("a function's body ran a DELETE unjudged (%v); %s rows left", got, n)
	}
}

func typeName(m any) string { return fmt.Sprintf("%T", m) }

// A statement prepared with the protocol's Parse is not judged until an
// Execute runs it; SQL's EXECUTE runs it too, and is judged as what it
// runs.
func TestAttackSQLExecuteOfParsedStatement(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{Judge: ruleJudge(nil)})
	fe := frontend(t, addr)
	got := exchange(t, fe, 3,
		&pgproto3.Parse{Name: "s1", Query: "DELETE FROM cards"}, &pgproto3.Sync{},
		&pgproto3.Query{String: "EXECUTE s1"},
		&pgproto3.Query{String: `explain analyze execute "s1"`})
	if n := cardsLeft(t, pg.Addr()); n != "2" {
		t.Fatalf("EXECUTE of a parsed DELETE ran unjudged (%v); %s rows left", got, n)
	}
}

// The relay must judge the text the server's statement has, not the text
// of a Parse the server refused (the name was taken) or skipped (after an
// error, until Sync).
func TestAttackParseTheServerDidNotTake(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{Judge: ruleJudge(nil)})
	for _, tc := range []struct {
		name  string
		ready int
		msgs  []pgproto3.FrontendMessage
	}{
		{"named statement redefined", 3, []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "s1", Query: "DELETE FROM cards"}, &pgproto3.Sync{},
			&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Sync{}, // already exists: refused
			&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}},
		{"unnamed statement replaced after an error", 2, []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: "DELETE FROM cards"},
			&pgproto3.Parse{Name: "bad", Query: "SELEC nothing"}, // error: skipped to Sync
			&pgproto3.Parse{Query: "SELECT 1"},
			&pgproto3.Sync{},
			&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}},
		{"closed after an error", 3, []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "s2", Query: "DELETE FROM cards"}, &pgproto3.Sync{},
			&pgproto3.Parse{Name: "bad", Query: "SELEC nothing"},
			&pgproto3.Close{ObjectType: 'S', Name: "s2"},
			&pgproto3.Parse{Name: "s2", Query: "SELECT 1"},
			&pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "s2"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}},
		{"pipelined", 3, []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "s3", Query: "DELETE FROM cards"}, &pgproto3.Sync{},
			&pgproto3.Parse{Name: "s3", Query: "SELECT 1"}, &pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "s3"}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}},
	} {
		fe := frontend(t, addr)
		msgs := tc.msgs
		if tc.name != "pipelined" {
			// Each batch's replies before the next batch: the relay
			// knows what the server made of it.
			start := 0
			for i, m := range msgs {
				if _, ok := m.(*pgproto3.Sync); ok {
					exchange(t, fe, 1, msgs[start:i+1]...)
					start = i + 1
				}
			}
		} else {
			exchange(t, fe, tc.ready, msgs...)
		}
		if n := cardsLeft(t, pg.Addr()); n != "2" {
			t.Fatalf("%s: a DELETE ran as the SELECT the relay judged; %s rows left", tc.name, n)
		}
	}
}

// Rules judge the statement as the client sent it, not as it is recorded
// (masked): masking turns a card number's digits into '*', and /4111…
// would then read as the start of a comment.
func TestAttackMaskingMakesAComment(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{Judge: ruleJudge(nil), Mode: mask.ModeLast4})
	fe := frontend(t, addr)
	q := "SELECT 1/" + testPAN + "; DELETE FROM cards; -- */"
	got := exchange(t, fe, 1, &pgproto3.Query{String: q})
	if n := cardsLeft(t, pg.Addr()); n != "2" {
		t.Fatalf("a DELETE hidden by masking ran (%v); %s rows left", got, n)
	}
	// Extended protocol: the Parse's text.
	q = "WITH x AS (SELECT 1/" + testPAN + ") DELETE FROM cards -- */"
	got = exchange(t, fe, 1, &pgproto3.Parse{Query: q}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if n := cardsLeft(t, pg.Addr()); n != "2" {
		t.Fatalf("an extended DELETE hidden by masking ran (%v); %s rows left", got, n)
	}
}

// What the README says the rules do not see: a view and a function made
// before (here, straight on the server) carry a DELETE of cards past a
// rule that names DELETE FROM cards; the rules judge what the client
// sends.
func TestAttackDocumentedLimits(t *testing.T) {
	t.Parallel()
	pg := cardsDB(t)
	pg.SQL(t, "CREATE VIEW v AS SELECT * FROM cards; CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS 'DELETE FROM cards WHERE id = 2'")
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{Judge: ruleJudge(nil)})
	fe := frontend(t, addr)
	exchange(t, fe, 1, &pgproto3.Query{String: "DELETE FROM v WHERE id = 1"})
	if n := cardsLeft(t, pg.Addr()); n != "1" {
		t.Fatalf("DELETE through a view: %s rows left, want 1 (not judged as cards)", n)
	}
	exchange(t, fe, 1, &pgproto3.Query{String: "SELECT wipe()"})
	if n := cardsLeft(t, pg.Addr()); n != "0" {
		t.Fatalf("a function made before: %s rows left, want 0", n)
	}
}
