package bastion

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// sqlHoldRig is a postgres forward (ssh -N -L through the bastion) whose
// SQL rules hold DROP and TRUNCATE, deletes from cards, and ALTER TABLE
// (expiring after a second) for group approvers.
type sqlHoldRig struct {
	*pgRig
	broker *approval.Broker
	bob    string // an approver's key
}

func newSQLHoldRig(t *testing.T) *sqlHoldRig {
	t.Helper()
	return newSQLHoldRigLimited(t, SessionLimits{})
}

// newSQLHoldRigLimited is newSQLHoldRig with session limits.
func newSQLHoldRigLimited(t *testing.T, limits SessionLimits) *sqlHoldRig {
	t.Helper()
	psql := testenv.Require(t, "psql")
	h := env(t)
	pg := testenv.Postgres(t)
	pg.SQL(t, `CREATE TABLE cards (id int PRIMARY KEY, pan text); INSERT INTO cards VALUES (1, '`+testPAN+`'), (2, 'x'); CREATE TABLE gone (i int);`)
	rules := &approval.Policy{Rules: []approval.Rule{
		{Name: "ddl", Match: approval.Match{SQL: []string{"DROP", "TRUNCATE"}}, Scope: approval.Scope{Targets: []string{"db"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
		{Name: "card-deletes", Match: approval.Match{SQL: []string{"DELETE FROM *cards*"}}, Action: approval.Approve, Approvers: []string{"approvers"}},
		{Name: "alter-quick", Match: approval.Match{SQL: []string{"ALTER TABLE"}}, Action: approval.Approve, Approvers: []string{"approvers"}, Timeout: time.Second},
	}}
	if err := rules.Check(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	broker, err := approval.NewBroker(t.Context(), approval.BrokerConfig{Store: ApprovalStore(store, nil), Audit: ApprovalAudit(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	pol := Policy{
		Targets: []Target{{Name: "db", Address: h.sshd.Addr, HostKey: h.sshd.HostKey, Logins: []string{"root"}, DefaultLogin: "root",
			Forwards: []Forward{{Port: pg.Port, Protocol: ForwardPostgres}}}},
		Rules: []Rule{{Name: "fwd", Principals: []string{"fwd"}, Targets: []string{"db"}, Logins: []string{"root"}, Forwards: []int{pg.Port}}},
	}
	b := h.extraServer(t, Config{Policy: pol, Recording: &Recording{Store: store}, ApprovalRules: rules, Approvals: broker, SessionLimits: limits})
	r := &forwardRig{harness: b, store: store, dir: dir}
	local, _ := r.localForward(t, r.key(t, "fwd"), "root@db", "localhost:"+strconv.Itoa(pg.Port))
	bob := b.userKey(t, "bob", certs.UserCertRequest{Principals: []string{"bob"}, Groups: []string{"approvers"}, TTL: time.Hour, KeyID: "bob"})
	return &sqlHoldRig{pgRig: &pgRig{forwardRig: r, pg: pg, psql: psql, local: local}, broker: broker, bob: bob}
}

// pending waits for the one pending request and returns it.
func (r *sqlHoldRig) pending(t *testing.T) approval.Request {
	t.Helper()
	var list []approval.Request
	testenv.WaitFor(t, 30*time.Second, func() bool {
		list = r.broker.List(t.Context(), false)
		return len(list) == 1
	})
	return list[0]
}

// psql starts psql through the forward with stdin; wait returns its
// output and exit status.
func (r *sqlHoldRig) psqlStart(t *testing.T, stdin string, args ...string) (wait func() (stdout, stderr string, code int)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, r.psql, append([]string{"-X", "-d", r.conninfo(true)}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() (string, string, int) {
		cmd.Wait()
		cancel()
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
}

func (r *sqlHoldRig) count(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(r.pg.SQL(t, "SELECT count(*) FROM cards"))
}

func isRefusal(err error, want string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501" && strings.Contains(pe.Message, want)
}

// Through OpenSSH's ssh -L and psql: a held DROP waits, unsent, and the
// approver sees it with the database and user in the approvals listing;
// approved over the admin connection, it runs. A denied DELETE gets an
// ERROR with the reason, and the next statement on the same connection
// runs. A statement no rule matches is not held.
func TestSQLHoldPsql(t *testing.T) {
	t.Parallel()
	r := newSQLHoldRig(t)

	wait := r.psqlStart(t, "", "-c", "DROP TABLE gone")
	req := r.pending(t)
	if req.Kind != approval.KindSQL || req.Line != "DROP TABLE gone" || req.Database != "postgres" || req.DBUser != "postgres" ||
		req.Rule != "ddl" || req.Requester != "fwd" || req.Target != "db" || req.Session == "" {
		t.Fatalf("request %+v", req)
	}
	list := r.sshWith(t, nil, r.bob, AdminUser, nil, "approvals")
	if !strings.Contains(string(list.Stdout), req.ID) || !strings.Contains(string(list.Stdout), "sql postgres as postgres: DROP TABLE gone") {
		t.Fatalf("approvals:\n%s%s", list.Stdout, list.Stderr)
	}
	if strings.TrimSpace(r.pg.SQL(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'gone'")) != "1" {
		t.Fatal("the held DROP ran before approval")
	}
	if res := r.sshWith(t, nil, r.bob, AdminUser, nil, "approve", req.ID, "--reason", "ticket", "CHG-9"); res.ExitCode != 0 {
		t.Fatalf("approve: %s", res.Stderr)
	}
	stdout, stderr, code := wait()
	if code != 0 || !strings.Contains(stdout, "DROP TABLE") || !strings.Contains(stderr, "held for approval (request "+req.ID+", rule ddl") ||
		!strings.Contains(stderr, "approved by bob: ticket CHG-9; running") {
		t.Fatalf("psql after approval: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.TrimSpace(r.pg.SQL(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'gone'")) != "0" {
		t.Fatal("the approved DROP did not run")
	}

	wait = r.psqlStart(t, "DELETE FROM cards WHERE id = 1;\nSELECT 'next' || count(*) FROM cards;\n", "-A", "-t")
	req = r.pending(t)
	if req.Line != "DELETE FROM cards WHERE id = 1;" && req.Line != "DELETE FROM cards WHERE id = 1" {
		t.Fatalf("request %+v", req)
	}
	if _, err := r.broker.Decide(t.Context(), req.ID, bob, false, "not during the freeze"); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = wait()
	if !strings.Contains(stderr, "ERROR:  postern: request "+req.ID+" denied by bob: not during the freeze; the statement did not run") ||
		strings.TrimSpace(stdout) != "next2" || r.count(t) != "2" {
		t.Fatalf("psql after the denial: exit %d\n%s\n%s", code, stdout, stderr)
	}

	if out := r.run(t, true, "", "-A", "-t", "-c", "SELECT count(*) FROM cards", "-c", "UPDATE cards SET pan = pan WHERE false"); !strings.Contains(out, "2") {
		t.Fatalf("unheld: %q", out)
	}
	if list := r.broker.List(t.Context(), true); len(list) != 2 {
		t.Fatalf("%d requests, want the two held above", len(list))
	}
	checkNoPAN(t, r.dir, r.logs.String())
}

// Through pgx over the forward, in the extended and the simple protocol: a
// denied statement gets an ERROR and the connection goes on; what tries to
// hide a held statement (comments, case, a second statement, a CTE, DO,
// EXPLAIN ANALYZE, PREPARE) is held too; a request that expires is
// refused with the reason.
func TestSQLHoldPgx(t *testing.T) {
	t.Parallel()
	r := newSQLHoldRig(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, r.conninfo(true)+" sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	count := func(mode pgx.QueryExecMode) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM cards", mode).Scan(&n); err != nil {
			t.Fatalf("the statement after: %v", err)
		}
		return n
	}
	deny := func(mode pgx.QueryExecMode, sql string, args ...any) {
		t.Helper()
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, sql, append([]any{mode}, args...)...)
			done <- err
		}()
		req := r.pending(t)
		if _, err := r.broker.Decide(ctx, req.ID, bob, false, "no"); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !isRefusal(err, "request "+req.ID+" denied by bob: no") {
			t.Fatalf("%v %q: %v", mode, sql, err)
		}
		if n := count(mode); n != 2 {
			t.Fatalf("%v %q: %d rows after", mode, sql, n)
		}
	}
	deny(pgx.QueryExecModeCacheStatement, "DELETE FROM cards WHERE id = $1", 1)
	deny(pgx.QueryExecModeExec, "DELETE FROM cards WHERE id = $1", 2)
	for _, sql := range []string{
		"/* a comment */ dRoP TABLE IF EXISTS nothing",
		"-- a comment\n  (TRUNCATE cards)",
		"SELECT 1; TRUNCATE cards",
		"WITH d AS (DELETE FROM public.cards RETURNING *) SELECT count(*) FROM d",
		"DO $$ BEGIN EXECUTE 'TRUNC' || 'ATE cards'; END $$",
		"EXPLAIN ANALYZE DELETE FROM cards",
		"PREPARE p AS DELETE FROM cards",
		`DELETE FROM "cards"`,
	} {
		deny(pgx.QueryExecModeSimpleProtocol, sql)
	}
	_, err = conn.Exec(ctx, "ALTER TABLE cards ADD COLUMN x int")
	if !isRefusal(err, "expired") {
		t.Fatalf("ALTER after its request expired: %v", err)
	}
	if n := count(pgx.QueryExecModeCacheStatement); n != 2 {
		t.Fatal(n)
	}
	if strings.TrimSpace(r.pg.SQL(t, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'cards' AND column_name = 'x'")) != "0" {
		t.Fatal("the expired ALTER ran")
	}
}
