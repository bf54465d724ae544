package testenv

import (
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostgresPortTaken: a cluster whose port was taken before postgres
// bound it is told apart from other failures (errPortTaken), so that
// PostgresWith tries another port instead of failing the test, and it
// starts on a free one.
func TestPostgresPortTaken(t *testing.T) {
	t.Parallel()
	p := Postgres(t)
	p.stop()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	asPostgres := func(name string, args ...string) *exec.Cmd {
		c := exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		c.Dir = p.Dir
		return c
	}
	data := filepath.Join(p.Dir, "data")
	p.Port = taken.Addr().(*net.TCPAddr).Port
	if err := p.start(asPostgres, data); !errors.Is(err, errPortTaken) {
		t.Fatalf("start on a taken port: %v, want errPortTaken\n%s", err, p.Logs())
	}
	p.Port = FreePort(t)
	if err := p.start(asPostgres, data); err != nil {
		t.Fatalf("start on a free port: %v\n%s", err, p.Logs())
	}
	if out := p.SQL(t, "select 40+2"); !strings.Contains(out, "42") {
		t.Fatalf("select on the restarted cluster: %q", out)
	}
}
