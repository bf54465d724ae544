package bastion

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

const maskedTestPAN = "411111******1111"

// pgRig is a PostgreSQL on loopback, a bastion whose target db (the shared
// sshd) declares its port as a postgres forward, and `ssh -N -L` through
// the bastion to it.
type pgRig struct {
	*forwardRig
	pg    *testenv.PostgresInstance
	psql  string
	local string // the forward's local address
}

func newPGRig(t *testing.T) *pgRig {
	t.Helper()
	psql := testenv.Require(t, "psql")
	pg := testenv.Postgres(t)
	pg.SQL(t, `CREATE TABLE cards (id int PRIMARY KEY, pan text, note text, epoch_ms text);
INSERT INTO cards VALUES (1, '`+testPAN+`', 'order 12345', '1796149455125'), (2, 'card `+testPAN+` exp 12/29', 'plain', '1796149455126');`)
	r := newForwardRig(t, []Forward{{Port: pg.Port, Protocol: ForwardPostgres}}, []int{pg.Port})
	local, _ := r.localForward(t, r.key(t, "fwd"), "root@db", "localhost:"+strconv.Itoa(pg.Port))
	return &pgRig{forwardRig: r, pg: pg, psql: psql, local: local}
}

// conninfo is a libpq connection string through the forward (via) or
// directly to the cluster.
func (r *pgRig) conninfo(via bool) string {
	addr := r.pg.Addr()
	if via {
		addr = r.local
	}
	host, port, _ := strings.Cut(addr, ":")
	return "host=" + host + " port=" + port + " user=postgres dbname=postgres connect_timeout=30"
}

// run runs psql with args through the forward (or directly) and returns
// its output; it must succeed.
func (r *pgRig) run(t *testing.T, via bool, stdin string, args ...string) string {
	t.Helper()
	res := testenv.Cmd(t, 5*time.Minute, strings.NewReader(stdin), r.psql, append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-d", r.conninfo(via)}, args...)...)
	if res.ExitCode != 0 {
		t.Fatalf("psql %v: exit %d: %s", args, res.ExitCode, res.Stderr)
	}
	if bytes.Contains(res.Stdout, []byte(testPAN)) || bytes.Contains(res.Stderr, []byte(testPAN)) {
		t.Fatalf("psql %v printed a full card number:\n%s%s", args, res.Stdout, res.Stderr)
	}
	return string(res.Stdout)
}

// The acceptance of issue 16 through OpenSSH's ssh -N -L and psql: DDL,
// 100 000 rows in and out with the direct checksum, COPY TO STDOUT, a
// transaction, a prepared statement through pgx's extended protocol (text
// and binary); the card number column masked everywhere, other columns
// untouched, and no full card number in a recording, the index or a log.
func TestPostgresForwardAcceptance(t *testing.T) {
	t.Parallel()
	r := newPGRig(t)
	t.Run("psql aligned and unaligned", func(t *testing.T) {
		for _, mode := range [][]string{nil, {"-A"}} {
			out := r.run(t, true, "", append([]string{"-c", "SELECT * FROM cards ORDER BY id"}, mode...)...)
			if strings.Count(out, maskedTestPAN) != 2 {
				t.Fatalf("psql %v:\n%s\nwant %s twice", mode, out, maskedTestPAN)
			}
			for _, want := range []string{"order 12345", "1796149455125", "1796149455126", "exp 12/29", "(2 rows)"} {
				if !strings.Contains(out, want) {
					t.Errorf("psql %v: %q missing:\n%s", mode, want, out)
				}
			}
		}
	})
	t.Run("100000 rows", func(t *testing.T) {
		r.run(t, true, "", "-c", "CREATE TABLE big (i int, h text, note text)",
			"-c", "INSERT INTO big SELECT i, md5(i::text), 'row ' || i FROM generate_series(1, 100000) i")
		q := []string{"-A", "-t", "-c", "SELECT * FROM big ORDER BY i"}
		via, direct := r.run(t, true, "", q...), r.run(t, false, "", q...)
		if strings.Count(via, "\n") != 100000 || sha256.Sum256([]byte(via)) != sha256.Sum256([]byte(direct)) {
			t.Fatalf("%d lines through the forward, checksum equal %v", strings.Count(via, "\n"), via == direct)
		}
	})
	t.Run("COPY TO STDOUT", func(t *testing.T) {
		via := r.run(t, true, "", "-c", "COPY cards TO STDOUT")
		direct := r.run(t, false, "", "-c", "COPY (SELECT id, replace(pan, '"+testPAN+"', '"+maskedTestPAN+"'), note, epoch_ms FROM cards) TO STDOUT")
		if via != direct || !strings.Contains(via, maskedTestPAN) {
			t.Fatalf("COPY through the forward:\n%s\nwant\n%s", via, direct)
		}
	})
	t.Run("transaction", func(t *testing.T) {
		out := r.run(t, true, "BEGIN;\nINSERT INTO cards VALUES (10, 'x', 'tx', '');\nROLLBACK;\nBEGIN;\nINSERT INTO cards VALUES (11, 'y', 'tx', '');\nCOMMIT;\nSELECT id FROM cards WHERE note = 'tx';\n", "-q", "-A", "-t")
		if strings.TrimSpace(out) != "11" {
			t.Fatalf("after ROLLBACK and COMMIT: %q, want only row 11", out)
		}
	})
	t.Run("pgx prepared statement, text and binary", func(t *testing.T) {
		ctx := t.Context()
		conn, err := pgx.Connect(ctx, r.conninfo(true)+" sslmode=prefer")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Prepare(ctx, "by_pan", "SELECT pan, note FROM cards WHERE pan = $1"); err != nil {
			t.Fatal(err)
		}
		for _, format := range []int16{pgx.TextFormatCode, pgx.BinaryFormatCode} {
			var pan, note string
			if err := conn.QueryRow(ctx, "by_pan", pgx.QueryResultFormats{format, format}, testPAN).Scan(&pan, &note); err != nil {
				t.Fatal(err)
			}
			if pan != maskedTestPAN || note != "order 12345" {
				t.Fatalf("format %d: %q %q", format, pan, note)
			}
		}
	})
	// Every forwarded connection above is sealed; the ones that ran
	// statements name the database and user, and their recordings hold
	// the statements and results, masked.
	var all bytes.Buffer
	seen := map[string]bool{}
	for _, want := range []string{"SELECT * FROM cards ORDER BY id", "SELECT 100000", "COPY 2", "ROLLBACK", "SELECT pan, note FROM cards WHERE pan = $1  -- $1='" + maskedTestPAN + "'"} {
		s := r.forward(t, r.pg.Port, func(s recorder.Session) bool {
			return strings.Contains(recordingText(t, filepath.Join(r.dir, s.Path)), want)
		})
		f := s.Forward
		if s.Kind != recorder.KindPostgres || f.Database != "postgres" || f.DBUser != "postgres" || f.Statements == 0 || s.Identity != "fwd" ||
			s.Command != strconv.Itoa(r.pg.Port)+"/postgres db=postgres user=postgres" {
			t.Fatalf("%q: index entry %+v, forward %+v", want, s, f)
		}
		if !seen[s.ID] {
			seen[s.ID] = true
			all.WriteString(recordingText(t, filepath.Join(r.dir, s.Path)))
		}
	}
	if !strings.Contains(all.String(), "-- postgres: database postgres, user postgres, application psql") || !strings.Contains(all.String(), "-- SELECT 100000, 100000 rows, ") {
		t.Fatalf("recordings:\n%s", all.String())
	}
	checkNoPAN(t, r.dir, r.logs.String())
}

// checkNoPAN fails if the card number, or its digits in any form, is in a
// file under dir or in logs.
func checkNoPAN(t *testing.T, dir, logs string) {
	t.Helper()
	if strings.Contains(logs, testPAN) {
		t.Fatal("the bastion's log holds the full card number")
	}
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(testPAN)) {
			t.Fatalf("%s holds the full card number", path)
		}
		return nil
	})
}
