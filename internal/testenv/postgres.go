package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// PostgresBin is where Debian's PostgreSQL 15 server binaries live.
const PostgresBin = "/usr/lib/postgresql/15/bin"

// PostgresInstance is a throwaway PostgreSQL cluster on loopback, owned by
// the test that started it.
type PostgresInstance struct {
	Dir       string // cluster's temp dir (data, socket, log)
	SocketDir string // unix socket directory (psql -h)
	Port      int    // TCP port on 127.0.0.1 and the socket's port
	cmd       *exec.Cmd
	logs      *Buffer
	done      chan struct{}
}

// Logs returns the server's log so far.
func (p *PostgresInstance) Logs() string { return p.logs.String() }

// PostgresOptions configures PostgresWith. The zero value is Postgres's
// cluster: trust authentication everywhere.
type PostgresOptions struct {
	// HostAuth is the authentication method for TCP connections
	// (pg_hba's "host" lines): "" for trust, "scram-sha-256", "md5" or
	// "password". The unix socket stays trust, for the harness.
	HostAuth string
	// Password is set for the superuser "postgres" (stored as HostAuth
	// asks: md5 or SCRAM), when HostAuth is not trust.
	Password string
}

// Postgres starts a cluster made with initdb (trust auth, superuser
// "postgres") as the postgres OS user, which initdb requires when tests run
// as root. It is stopped and removed at the end of the test; its log is
// printed if the test failed.
func Postgres(t testing.TB) *PostgresInstance {
	t.Helper()
	return PostgresWith(t, PostgresOptions{})
}

// PostgresWith is Postgres with the options o.
func PostgresWith(t testing.TB, o PostgresOptions) *PostgresInstance {
	t.Helper()
	initdb := filepath.Join(PostgresBin, "initdb")
	if _, err := os.Stat(initdb); err != nil {
		if InCI() {
			t.Fatalf("testenv: PostgreSQL server not installed (%s); scripts/deps.sh installs postgresql", initdb)
		}
		t.Skipf("testenv: PostgreSQL server not installed (%s)", initdb)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("testenv: no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	// Not t.TempDir: its parents are root's 0700 directories, which the
	// postgres user cannot enter.
	dir, err := os.MkdirTemp("", "testenv-pg-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.Chown(dir, uid, gid)
	p := &PostgresInstance{Dir: dir, SocketDir: dir, Port: FreePort(t), logs: &Buffer{Max: 8 << 20}, done: make(chan struct{})}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("testenv: postgres log:\n%s", p.Logs())
		}
		os.RemoveAll(dir)
	})
	asPostgres := func(name string, args ...string) *exec.Cmd {
		c := exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		c.Dir = dir
		return c
	}
	data := filepath.Join(dir, "data")
	hostAuth := "trust"
	if o.HostAuth != "" {
		hostAuth = o.HostAuth
	}
	if out, err := asPostgres(initdb, "-D", data, "--auth-local=trust", "--auth-host="+hostAuth, "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}
	// FreePort's port may be taken before postgres binds it (by another
	// FreePort's caller): postgres then exits, and another port is tried.
	for attempt := 1; ; attempt++ {
		err := p.start(asPostgres, data)
		if err == nil {
			break
		}
		if errors.Is(err, errPortTaken) && attempt < pgStartAttempts {
			p.Port = FreePort(t)
			continue
		}
		t.Fatalf("testenv: %v\n%s", err, p.Logs())
	}
	if hostAuth != "trust" && o.Password != "" {
		enc := "scram-sha-256"
		if hostAuth == "md5" {
			enc = "md5"
		}
		p.SQL(t, "SET password_encryption = '"+enc+"'; ALTER USER postgres PASSWORD '"+strings.ReplaceAll(o.Password, "'", "''")+"'")
	}
	return p
}

// SQL runs sql with psql on the cluster's socket as postgres (unaligned,
// tuples only, stopping at the first error) and returns what it printed.
// The test fails if psql does.
func (p *PostgresInstance) SQL(t testing.TB, sql string) string {
	t.Helper()
	psql := Require(t, "psql")
	r := Cmd(t, 5*time.Minute, strings.NewReader(sql), psql, p.PSQL("-q", "-A", "-t", "-v", "ON_ERROR_STOP=1")...)
	if r.ExitCode != 0 {
		t.Fatalf("testenv: psql: exit %d: %s", r.ExitCode, r.Stderr)
	}
	return string(r.Stdout)
}

// Addr is the cluster's TCP address on loopback.
func (p *PostgresInstance) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port)) }

// pgStartAttempts bounds the ports PostgresWith tries.
const pgStartAttempts = 3

// errPortTaken is start's error when postgres could not listen on p.Port.
var errPortTaken = errors.New("postgres could not listen on its port")

// start starts postgres on data (made by initdb) listening on p.Port and
// waits until it accepts connections. When it exits before that, it says
// why: errPortTaken when its port was taken.
func (p *PostgresInstance) start(asPostgres func(string, ...string) *exec.Cmd, data string) error {
	off := p.logs.End()
	p.done = make(chan struct{})
	p.cmd = asPostgres(filepath.Join(PostgresBin, "postgres"), "-D", data, "-k", p.Dir, "-p", strconv.Itoa(p.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "shared_buffers=16MB")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	cmd, done := p.cmd, p.done
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(filepath.Join(PostgresBin, "pg_isready"), "-h", p.Dir, "-p", strconv.Itoa(p.Port), "-U", "postgres").CombinedOutput()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			if strings.Contains(p.logs.Since(off), "could not create any TCP/IP sockets") {
				return fmt.Errorf("port %d: %w", p.Port, errPortTaken)
			}
			return errors.New("postgres exited")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 30s: %s", bytes.TrimSpace(out))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PSQL returns the psql arguments that connect to the cluster as postgres.
func (p *PostgresInstance) PSQL(args ...string) []string {
	return append([]string{"-X", "-h", p.SocketDir, "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", "postgres"}, args...)
}

var pgStopMu sync.Mutex // pg_ctl stops run one at a time

func (p *PostgresInstance) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	pgStopMu.Lock()
	exec.Command("runuser", "-u", "postgres", "--", filepath.Join(PostgresBin, "pg_ctl"), "stop", "-m", "immediate", "-D", filepath.Join(p.Dir, "data")).Run()
	pgStopMu.Unlock()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// String describes the instance for messages.
func (p *PostgresInstance) String() string {
	return fmt.Sprintf("postgres on %s port %d", p.SocketDir, p.Port)
}
