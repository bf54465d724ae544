package approval

import "testing"

// Texts that PostgreSQL runs as a matched statement but a reader that
// lexes differently from PostgreSQL could take for something else: each
// must be held (or refused), never allowed.
func TestDecideSQLLexerAttacks(t *testing.T) {
	t.Parallel()
	p := sqlPolicy()
	for _, tc := range []struct {
		name, sql string
		want      Action
	}{
		// PostgreSQL ends a -- comment at a carriage return too.
		{"comment ends at CR", "SELECT 1 --\r; DROP TABLE x", Approve},
		{"comment ends at CR alone", "-- x\rDROP TABLE x", Approve},
		// U&"…" names a table with Unicode escapes.
		{"unicode identifier", `DELETE FROM U&"c\0061rds"`, Approve},
		{"unicode identifier lower u", `DELETE FROM u&"\0063\0061rds"`, Approve},
		{"unicode identifier UESCAPE", `DELETE FROM U&"c!0061rds" UESCAPE '!'`, Approve},
		{"unicode identifier long form", `DELETE FROM U&"c\+000061rds"`, Approve},
		{"unicode identifier no escape", `DELETE FROM U&"cards"`, Approve},
		{"unicode other table", `DELETE FROM U&"\006Frders"`, Allow},
		// A function's body runs later, when it is called: its code is
		// not read, as a DO block's is not.
		{"sql function", "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DROP TABLE x'", Approve},
		{"or replace function", "create or replace function f() returns void as $$ truncate x $$ language sql", Approve},
		{"procedure", "CREATE PROCEDURE p() LANGUAGE sql AS $$DELETE FROM cards$$", Approve},
		{"atomic body", "CREATE FUNCTION f() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM cards; END", Approve},
		// A cursor's query runs at FETCH: it is judged at DECLARE.
		{"cursor", "DECLARE c CURSOR FOR WITH d AS (DELETE FROM cards RETURNING *) SELECT * FROM d", Approve},
		{"plain select", "SELECT 'CREATE FUNCTION'", Allow},
	} {
		if got := p.DecideSQL(nil, tc.sql); got.Action != tc.want {
			t.Errorf("%s: DecideSQL(%q) = %v (%s), want %v; commands:\n%s", tc.name, tc.sql, got.Action, got.Reason, tc.want, NormaliseSQL(tc.sql))
		}
	}
}

// A cursor's query is judged at DECLARE: FETCH runs it.
func TestDecideSQLCursor(t *testing.T) {
	t.Parallel()
	p := &Policy{Rules: []Rule{{Name: "card-reads", Match: Match{SQL: []string{"SELECT * FROM *cards*"}}, Action: Approve, Approvers: []string{"ops"}}}}
	if d := p.DecideSQL(nil, "DECLARE c CURSOR WITH HOLD FOR SELECT pan FROM cards"); d.Action != Approve {
		t.Errorf("DECLARE … FOR SELECT … FROM cards: %+v", d)
	}
	if d := p.DecideSQL(nil, "DECLARE c CURSOR FOR SELECT 1"); d.Action != Allow {
		t.Errorf("DECLARE … FOR SELECT 1: %+v", d)
	}
}
