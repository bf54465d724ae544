package approval

import (
	"strings"
	"testing"
)

// sqlPolicy holds DROP, TRUNCATE and deletes from cards, refuses ALTER
// SYSTEM, and allows the rest.
func sqlPolicy() *Policy {
	return &Policy{Rules: []Rule{
		{Name: "no-alter-system", Match: Match{SQL: []string{"ALTER SYSTEM"}}, Action: Deny},
		{Name: "ddl", Match: Match{SQL: []string{"DROP", "TRUNCATE", "DELETE FROM *cards*"}}, Action: Approve, Approvers: []string{"ops"}},
		{Name: "shell-rm", Match: Match{Commands: []string{"rm"}}, Action: Deny},
	}}
}

func TestDecideSQL(t *testing.T) {
	t.Parallel()
	p := sqlPolicy()
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sql  string
		want Action
	}{
		{"SELECT 1", Allow},
		{"select * from cards", Allow},
		{"DELETE FROM orders WHERE id = 1", Allow},
		{"DROP TABLE x", Approve},
		{"drop table x", Approve},
		{"  \n\t(DROP TABLE x)", Approve},
		{"/* hi */ DrOp TABLE x", Approve},
		{"/* nested /* comment */ still */ DROP TABLE x", Approve},
		{"-- a comment\nDROP TABLE x", Approve},
		{"SELECT 1; DROP TABLE x", Approve},
		{"SELECT 1 -- ; DROP TABLE x", Allow},
		{"SELECT '; DROP TABLE x'", Allow},
		{"SELECT $$; DROP TABLE x$$", Allow},
		{"SELECT $a$ $$; $a$; DROP TABLE x", Approve},
		{`SELECT "a;"; DROP TABLE x`, Approve},
		{"SELECT E'\\'; DROP TABLE x; --'", Allow},
		// standard_conforming_strings off ends it after the \': read both ways.
		{"SELECT 'a\\'; DROP TABLE x; --'", Approve},
		{"DELETE FROM public.cards", Approve},
		{`DELETE FROM "cards" WHERE true`, Approve},
		{"WITH gone AS (DELETE FROM cards RETURNING *) SELECT count(*) FROM gone", Approve},
		{"WITH x AS (SELECT 1) DELETE FROM cards", Approve},
		{"WITH delete AS (SELECT 1) DELETE FROM cards", Approve},
		{"COPY (DELETE FROM cards RETURNING *) TO STDOUT", Approve},
		{"EXPLAIN ANALYZE DELETE FROM cards", Approve},
		{"EXPLAIN (ANALYZE, FORMAT JSON) TRUNCATE cards", Approve},
		{"PREPARE p AS DELETE FROM cards", Approve},
		{"PREPARE p (int) AS DELETE FROM cards WHERE id = $1", Approve},
		{"CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM cards", Approve},
		{"DO $$ BEGIN EXECUTE 'DR' || 'OP TABLE x'; END $$", Approve},
		{"SELECT 'unterminated", Approve},
		{"SELECT /* unterminated", Approve},
		{"SELECT $q$ unterminated", Approve},
		{"ALTER SYSTEM SET fsync = off", Deny},
		{"DROP TABLE x; ALTER SYSTEM SET fsync = off", Deny},
		{"rm -rf /", Allow}, // shell rules never judge SQL
		{"", Allow},
		{";;", Allow},
	} {
		if got := p.DecideSQL(nil, tc.sql); got.Action != tc.want {
			t.Errorf("DecideSQL(%q) = %v (%s), want %v; commands:\n%s", tc.sql, got.Action, got.Reason, tc.want, NormaliseSQL(tc.sql))
		}
	}
}

func TestSQLRulesDoNotJudgeLines(t *testing.T) {
	t.Parallel()
	p := sqlPolicy()
	if d := p.Decide(nil, "DROP TABLE x"); d.Action != Allow {
		t.Errorf("a SQL rule judged a command line: %+v", d)
	}
	if d := p.Decide(nil, "rm x"); d.Action != Deny {
		t.Errorf("rm: %+v", d)
	}
	only := &Policy{Rules: p.Rules[:2]}
	if only.Judges(nil) {
		t.Error("SQL rules alone make shells judged")
	}
	if !only.JudgesSQL(nil) || (&Policy{Rules: p.Rules[2:]}).JudgesSQL(nil) {
		t.Error("JudgesSQL")
	}
}

func TestDecideSQLUnjudged(t *testing.T) {
	t.Parallel()
	p := sqlPolicy()
	if d := p.DecideSQLUnjudged(nil, "a fast-path function call"); d.Action != Approve || d.Rule.Name != "ddl" ||
		!strings.Contains(d.Reason, "fast-path") {
		t.Errorf("unjudged: %+v", d)
	}
	all := &Policy{Rules: []Rule{{Name: "reads", Match: Match{SQL: []string{"SELECT"}}, Action: Allow}, {Name: "rest", Match: Match{SQL: []string{"*"}}, Action: Deny}}}
	if d := all.DecideSQL(nil, "DO $$ $$"); d.Action != Deny || d.Rule.Name != "rest" {
		t.Errorf("DO under *: %+v", d)
	}
	if d := all.DecideSQL(nil, "select 1"); d.Action != Allow {
		t.Errorf("select under allowlist: %+v", d)
	}
	bad := &Policy{Rules: []Rule{{Name: "x", Match: Match{SQL: []string{"DROP"}, Commands: []string{"rm"}}, Action: Deny}}}
	if bad.Check() == nil {
		t.Error("sql with commands accepted")
	}
}

func TestGlob(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"DROP", "DROP TABLE X", true},
		{"DROP", "DROPX", false},
		{"DROP*", "DROPX", true},
		{"DELETE FROM CARDS*", "DELETE FROM CARDS_OLD", true},
		{"*CARDS*", "SELECT * FROM CARDS", true},
		{"A*B*C", "AXXBXXC", true},
		{"A*B*C", "AXXBXX", false},
		{strings.Repeat("*A", 30), strings.Repeat("A", 10000) + "B", false},
	} {
		if got := sqlMatch(tc.p, tc.s); got != tc.want {
			t.Errorf("sqlMatch(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

func FuzzSQLCommands(f *testing.F) {
	for _, s := range []string{"SELECT 1; DROP TABLE x", "WITH a AS (DELETE FROM t RETURNING *) SELECT 1", "$a$x$a$", "E'\\''", "/* /* */ */"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		SQLCommands(s)
		// Whatever hides after a comment-free statement break is seen.
		if d := sqlPolicy().DecideSQL(nil, s+"\n;DROP TABLE x"); d.Action == Allow {
			t.Errorf("%q then DROP allowed", s)
		}
	})
}
