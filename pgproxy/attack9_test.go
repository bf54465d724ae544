package pgproxy_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/pgproxy"
)

// attackSQL prepares what the channels below read: the card number in a
// table, in types of every kind, behind a function.
const attackSQL = `
CREATE TABLE cards (id int PRIMARY KEY, pan text, jp text, latin text, gb text);
INSERT INTO cards VALUES (1, '` + testPAN + `', 'カード番号：` + testPAN + `',
  E'4111\u00ad1111\u00ad1111\u00ad1111', E'card\u200b` + testPAN + `');
CREATE TYPE cardrec AS (pan text, note text);
CREATE DOMAIN pan_d AS text;
CREATE TYPE pan_e AS ENUM ('` + testPAN + `');
CREATE FUNCTION leak() RETURNS text LANGUAGE sql AS $$ SELECT pan FROM cards WHERE id = 1 $$;
`

// Every way a stored card number can be asked for with SQL alone, through
// psql: the relay masks each.
func TestAttack9PsqlChannels(t *testing.T) {
	t.Parallel()
	psql := testenv.Require(t, "psql")
	pg := testenv.Postgres(t)
	pg.SQL(t, attackSQL)
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	for name, c := range map[string]struct{ sql, extra string }{
		"notice":       {sql: `DO $$ BEGIN RAISE NOTICE '%', leak() USING DETAIL = leak(), HINT = leak(); END $$`},
		"error fields": {sql: `DO $$ BEGIN RAISE EXCEPTION '%', leak() USING DETAIL = leak(), HINT = leak(), COLUMN = leak(), CONSTRAINT = leak(), DATATYPE = leak(), TABLE = leak(), SCHEMA = leak(); END $$`, extra: "options='-c log_error_verbosity=verbose'"},
		"context":      {sql: "\\set VERBOSITY verbose\nDO $$ BEGIN PERFORM 1/0 FROM cards WHERE pan = leak() AND leak() IS NOT NULL; EXCEPTION WHEN OTHERS THEN RAISE; END $$;\nCREATE FUNCTION boom(p text) RETURNS int LANGUAGE plpgsql AS $f$ BEGIN RETURN p::int; END $f$;\nSELECT boom(leak());"},
		"copy text":    {sql: `COPY (SELECT pan, jp FROM cards) TO STDOUT`},
		"copy csv":     {sql: `COPY (SELECT pan, jp FROM cards) TO STDOUT (FORMAT csv)`},
		"copy binary":  {sql: `COPY (SELECT pan, ROW(pan, 'x')::cardrec, ARRAY[pan] FROM cards) TO STDOUT (FORMAT binary)`},
		"notify":       {sql: "LISTEN \"" + testPAN + "\"; NOTIFY \"" + testPAN + "\", '" + testPAN + "'; SELECT pg_notify('" + testPAN + "', leak());"},
		"activity":     {sql: "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid() AND query <> '" + testPAN + "'"},
		"setting":      {sql: "SET application_name = '" + testPAN + "'; SELECT current_setting('application_name'); SHOW application_name;"},
		"alias":        {sql: `SELECT 1 AS "` + testPAN + `"`},
		"types":        {sql: `SELECT leak()::varchar, leak()::char(20), leak()::name, to_json(leak()), to_jsonb(leak()), xmlelement(name x, leak()), ARRAY[leak()], ROW(leak(), 'x')::cardrec, leak()::pan_d, '` + testPAN + `'::pan_e, to_tsvector(leak())`},
		"sjis":         {sql: `SELECT jp FROM cards`, extra: "client_encoding=SJIS"},
		"sjis later":   {sql: `SET client_encoding = 'SJIS'; SELECT jp FROM cards`},
		"gb18030":      {sql: `SELECT gb FROM cards`, extra: "client_encoding=GB18030"},
		"latin1":       {sql: `SELECT latin FROM cards`, extra: "client_encoding=LATIN1"},
		"latin utf8":   {sql: `SELECT latin, gb FROM cards`},
		"win1252":      {sql: `SELECT latin FROM cards`, extra: "client_encoding=WIN1252"},
	} {
		t.Run(name, func(t *testing.T) {
			r := testenv.Cmd(t, time.Minute, strings.NewReader(c.sql), psql, "-X", "-d", dsn(addr, "sslmode=disable "+c.extra))
			out := string(r.Stdout) + string(r.Stderr)
			if strings.Contains(out, testPAN) || strings.Contains(out, "4111\xad1111") {
				t.Errorf("the card number reached psql:\n%s", out)
			}
		})
	}
}

// rawConn is a client speaking the protocol with pgproto3 through a relay.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	fe *pgproto3.Frontend
}

func dialRaw(t *testing.T, addr string, params map[string]string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	r := &rawConn{t: t, c: c, fe: pgproto3.NewFrontend(c, c)}
	p := map[string]string{"user": "postgres", "database": "postgres"}
	maps.Copy(p, params)
	r.send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: p})
	r.until(func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
	return r
}

func (r *rawConn) send(msgs ...pgproto3.FrontendMessage) {
	r.t.Helper()
	for _, m := range msgs {
		r.fe.Send(m)
	}
	if err := r.fe.Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// until reads messages until stop says so, and returns everything read,
// re-encoded (what the client got), so a test can look for the card
// number in every byte.
func (r *rawConn) until(stop func(pgproto3.BackendMessage) bool) []byte {
	r.t.Helper()
	var all []byte
	for range 100000 {
		m, err := r.fe.Receive()
		if err != nil {
			r.t.Fatalf("receive: %v (so far %q)", err, all)
		}
		all, _ = m.Encode(all)
		if stop(m) {
			return all
		}
	}
	r.t.Fatal("no end in 100000 messages")
	return nil
}

func isReady(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok }

// Binary format of every text-like type, the fast-path function call, a
// portal executed a row at a time, and a pipeline without Sync: masked.
func TestAttack9RawProtocolChannels(t *testing.T) {
	t.Parallel()
	pg := testenv.Postgres(t)
	pg.SQL(t, attackSQL)
	oid := strings.TrimSpace(pg.SQL(t, "SELECT 'leak'::regproc::oid"))
	addr, _, _ := relayTo(t, pg.Addr(), pgproxy.Config{})
	r := dialRaw(t, addr, nil)
	check := func(name string, got []byte) {
		t.Helper()
		if bytes.Contains(got, []byte(testPAN)) {
			t.Errorf("%s: the card number reached the client: %q", name, got)
		}
		if !bytes.Contains(got, []byte(maskedPAN)) {
			t.Errorf("%s: no masked card number in %q", name, got)
		}
	}
	types := `SELECT leak()::varchar, leak()::char(20), leak()::name, to_json(leak()), to_jsonb(leak()), xmlelement(name x, leak()),
		ARRAY[leak()], ROW(leak(), 'x')::cardrec, leak()::pan_d, '` + testPAN + `'::pan_e, to_tsvector(leak()), leak()::bytea, ARRAY[ROW(leak(),'y')::cardrec]`
	r.send(&pgproto3.Parse{Query: types}, &pgproto3.Bind{ResultFormatCodes: []int16{1}}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
	check("binary types", r.until(isReady))
	n, _ := strconv.ParseUint(oid, 10, 32)
	for _, format := range []uint16{0, 1} {
		r.send(&pgproto3.FunctionCall{Function: uint32(n), ResultFormatCode: format})
		check("function call", r.until(isReady))
	}
	r.send(&pgproto3.Parse{Name: "s", Query: "SELECT pan FROM cards UNION ALL SELECT leak()"}, &pgproto3.Bind{PreparedStatement: "s", DestinationPortal: "p"},
		&pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{})
	check("suspended portal", r.until(isReady))
	var pipe []pgproto3.FrontendMessage
	for range 200 {
		pipe = append(pipe, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{})
	}
	r.send(append(pipe, &pgproto3.Flush{})...)
	rows := 0
	check("pipeline", r.until(func(m pgproto3.BackendMessage) bool {
		if _, ok := m.(*pgproto3.CommandComplete); ok {
			rows++
		}
		return rows == 200
	}))
	r.send(&pgproto3.Sync{})
	r.until(isReady)
}

// A replication connection: BASE_BACKUP streams the cluster's files as
// COPY data, compressed if asked; the relay must not carry it.
func TestAttack9ReplicationRefused(t *testing.T) {
	t.Parallel()
	bb := testenv.Require(t, "pg_basebackup")
	pg := testenv.Postgres(t)
	pg.SQL(t, attackSQL+"CHECKPOINT;")
	addr, _, runs := relayTo(t, pg.Addr(), pgproxy.Config{})
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	r := testenv.Cmd(t, 2*time.Minute, nil, bb, "-h", host, "-p", port, "-U", "postgres", "-D", dir, "-Ft", "-X", "none", "--compress=server-gzip", "--no-manifest")
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
			if u, err := io.ReadAll(zr); err == nil || len(u) > 0 {
				b = u
			}
		}
		if bytes.Contains(b, []byte(testPAN)) {
			found = append(found, p)
		}
		return nil
	})
	if len(found) > 0 {
		t.Errorf("the card number reached the client in %v", found)
	}
	if r.ExitCode == 0 {
		t.Errorf("pg_basebackup through the relay succeeded; want it refused:\n%s", r.Stderr)
	}
	if res := next(t, runs); res.err == nil {
		t.Errorf("relay: no error for a replication connection")
	}
}

// Messages that declare a huge length and never come: each costs the
// relay only what its Memory allows, not the length declared; the
// connections past it are ended at once, with a FATAL error. Before
// authentication (a password message), nothing over PostgreSQL's own
// limit passes at all. Not parallel: it measures the heap.
func TestAttack9HugeDeclaredLengthsBounded(t *testing.T) {
	for _, phase := range []struct {
		name        string
		auth        testenv.PostgresOptions
		typ         byte
		wantRefused int // at least
	}{
		{name: "password", auth: testenv.PostgresOptions{HostAuth: "password", Password: "pw"}, typ: 'p', wantRefused: 12},
		{name: "query", typ: 'Q', wantRefused: 10},
	} {
		t.Run(phase.name, func(t *testing.T) {
			pg := testenv.PostgresWith(t, phase.auth)
			addr, _, runs := relayTo(t, pg.Addr(), pgproxy.Config{})
			const conns, declared = 12, 120 << 20
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			ended := make(chan bool, conns)
			for range conns {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				c.SetDeadline(time.Now().Add(30 * time.Second))
				fe := pgproto3.NewFrontend(c, c)
				fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "postgres"}})
				fe.Flush()
				for {
					m, err := fe.Receive()
					if err != nil {
						t.Fatal(err)
					}
					_, pw := m.(*pgproto3.AuthenticationCleartextPassword)
					_, ready := m.(*pgproto3.ReadyForQuery)
					if pw || ready {
						break
					}
				}
				// A message 120 MiB long, of which only the header
				// comes.
				c.Write([]byte{phase.typ, declared >> 24, declared >> 16 & 0xff, declared >> 8 & 0xff, declared & 0xff})
				go func() {
					b, _ := io.ReadAll(c)
					ended <- bytes.Contains(b, []byte("FATAL"))
				}()
			}
			refused := 0
			deadline := time.After(20 * time.Second)
		wait:
			for refused < phase.wantRefused {
				select {
				case fatal := <-ended:
					if fatal {
						refused++
					}
				case <-deadline:
					break wait
				}
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("%d of %d connections refused; heap grew %d MiB", refused, conns, grown>>20)
			if grown > 600<<20 {
				t.Errorf("the heap grew by %d MiB for %d connections that sent a header each", grown>>20, conns)
			}
			if refused < phase.wantRefused {
				t.Errorf("%d connections refused with a FATAL error, want at least %d", refused, phase.wantRefused)
			}
			for range refused {
				if res := next(t, runs); res.err == nil {
					t.Errorf("relay: a refused connection ended without an error")
				}
			}
		})
	}
}
