package bastion

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/pgproxy"
	"github.com/postern/postern/recorder"
)

// openForward opens a direct-tcpip channel to host:port as ssh -L would,
// with any host string and any 32-bit port.
func openForward(c *ssh.Client, host string, port uint32) (ssh.Channel, error) {
	ch, reqs, err := c.OpenChannel("direct-tcpip", ssh.Marshal(&fwdRequest{Host: host, Port: port, OriginHost: "127.0.0.1", OriginPort: 40000}))
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	return ch, nil
}

// echoes checks that ch carries a line to an echo server and back.
func echoes(t *testing.T, ch ssh.Channel) {
	t.Helper()
	const line = "ping through the forward\n"
	if _, err := io.WriteString(ch, line); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(line))
	if _, err := io.ReadFull(ch, got); err != nil || string(got) != line {
		t.Fatalf("echo %q %v", got, err)
	}
}

// Only the target's own names reach its declared port: every other
// spelling of loopback, another address, a port beyond 16 bits that wraps
// to the declared one, port 0, 22 and the target's SSH port are refused as
// prohibited, before the target is asked.
func TestAttack9ForwardHostAndPortVariants(t *testing.T) {
	t.Parallel()
	echo, err := serveTCP(func(c net.Conn) { io.Copy(c, c) })
	if err != nil {
		t.Fatal(err)
	}
	r := newForwardRig(t, []Forward{{Port: echo, Protocol: ForwardTCP}}, []int{AnyDeclaredPort})
	client := r.dialGo(t, r.key(t, "fwd"), "root@db")
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "db"} {
		ch, err := openForward(client, host, uint32(echo))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		echoes(t, ch)
		ch.Close()
	}
	_, sshPort, _ := net.SplitHostPort(r.sshd.Addr)
	sp, _ := strconv.Atoi(sshPort)
	refused := []struct {
		host string
		port uint32
	}{
		{"LOCALHOST", uint32(echo)}, {"localhost.", uint32(echo)}, {"127.0.0.2", uint32(echo)}, {"127.1", uint32(echo)},
		{"0x7f000001", uint32(echo)}, {"[::1]", uint32(echo)}, {"::ffff:127.0.0.1", uint32(echo)}, {"0.0.0.0", uint32(echo)},
		{"", uint32(echo)}, {"db.", uint32(echo)}, {"DB", uint32(echo)}, {"localhost\x00", uint32(echo)},
		{"localhost", uint32(echo) + 1<<16}, {"localhost", 0}, {"localhost", 22}, {"localhost", uint32(sp)}, {"db", uint32(sp)},
	}
	for _, c := range refused {
		ch, err := openForward(client, c.host, c.port)
		var oce *ssh.OpenChannelError
		if err == nil {
			ch.Close()
			t.Errorf("%q port %d: forwarded", c.host, c.port)
			continue
		}
		if !errors.As(err, &oce) || oce.Reason != ssh.Prohibited {
			t.Errorf("%q port %d: %v, want administratively prohibited", c.host, c.port, err)
		}
	}
}

// One SSH connection holds at most maxForwards forwarded connections at
// once; the next is refused with a message that says why, and a slot
// freed is taken again.
func TestAttack9ForwardsPerConnectionCapped(t *testing.T) {
	t.Parallel()
	echo, err := serveTCP(func(c net.Conn) { io.Copy(c, c) })
	if err != nil {
		t.Fatal(err)
	}
	r := newForwardRig(t, []Forward{{Port: echo, Protocol: ForwardTCP}}, []int{echo})
	client := r.dialGo(t, r.key(t, "fwd"), "root@db")
	var open []ssh.Channel
	for range maxForwards {
		ch, err := openForward(client, "localhost", uint32(echo))
		if err != nil {
			t.Fatalf("forward %d: %v", len(open)+1, err)
		}
		open = append(open, ch)
	}
	_, err = openForward(client, "localhost", uint32(echo))
	var oce *ssh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != ssh.ResourceShortage || !strings.Contains(oce.Message, fmt.Sprintf("more than %d forwarded connections", maxForwards)) {
		t.Fatalf("forward %d: %v; want it refused", maxForwards+1, err)
	}
	echoes(t, open[0]) // the open ones still work
	open[0].Close()
	io.Copy(io.Discard, open[0]) // ends when the bastion has closed its side
	var ch ssh.Channel
	testenv.WaitFor(t, 20*time.Second, func() bool {
		ch, err = openForward(client, "localhost", uint32(echo))
		return err == nil
	})
	echoes(t, ch)
}

// ssh -R on a port the target declares for forwarding is refused even
// where the rule grants remote forwards on any port: with the service
// behind it down, the listener would catch other users' forwards to it.
func TestAttack9RemoteForwardOnDeclaredPortRefused(t *testing.T) {
	t.Parallel()
	h := env(t)
	free := testenv.FreePort(t) // declared, nothing listens: the service is down
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	pol := Policy{
		Targets: []Target{{Name: "db", Address: h.sshd.Addr, HostKey: h.sshd.HostKey, Logins: []string{"root"}, Forwards: []Forward{{Port: free, Protocol: ForwardPostgres}}}},
		Rules: []Rule{{Name: "rfwd", Principals: []string{"rfwd"}, Targets: []string{"db"}, Logins: []string{"root"},
			Forwards: []int{AnyDeclaredPort}, RemoteForwards: []int{AnyDeclaredPort}}},
	}
	r := &forwardRig{harness: h.extraServer(t, Config{Policy: pol, Recording: &Recording{Store: store}}), store: store, dir: dir}
	key := r.key(t, "rfwd")
	res := testenv.Cmd(t, time.Minute, nil, r.sshBin, append(r.opts(key), "-p", strconv.Itoa(r.port), "-N",
		"-o", "ExitOnForwardFailure=yes", "-R", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:1", free), "root@db@127.0.0.1")...)
	if res.ExitCode == 0 || !strings.Contains(string(res.Stderr), "remote port forwarding failed") {
		t.Fatalf("ssh -R on the declared port: exit %d stderr %q; want it refused", res.ExitCode, res.Stderr)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, m := range r.audits("rfwd@forward-test", "forward") {
			if m["direction"] == "remote" && m["allowed"] == false && m["reason"] == "remote forward on a port the target declares for forwarding" {
				return true
			}
		}
		return false
	})
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(free))); err == nil {
		c.Close()
		t.Fatal("something listens on the declared port")
	}
}

// dialRemoteForward connects to the remote forward on port of the target
// once ssh (run with -v, its stderr in stderr) says the bastion confirmed
// it. Not before: the bastion's SSH library registers a listener only
// when the target has confirmed it, and a connection the target accepts
// in between is refused (see the README).
func dialRemoteForward(t *testing.T, stderr *testenv.Buffer, exited <-chan struct{}, port int) net.Conn {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("ssh -R exited: %s", stderr.String())
		default:
		}
		return strings.Contains(stderr.String(), fmt.Sprintf("remote forward success for: listen 127.0.0.1:%d", port))
	})
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A remote forward is opaque, as the README says: what a program on the
// target writes to it reaches the client as it is, card numbers
// included. Granting remote_forwards to someone who can run programs on
// the target lets them carry anything from it; the index counts it.
func TestAttack9RemoteForwardIsOpaque(t *testing.T) {
	t.Parallel()
	h := env(t)
	got := make(chan []byte, 1)
	sink, err := serveTCP(func(c net.Conn) { b, _ := io.ReadAll(c); got <- b })
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	pol := Policy{
		Targets: []Target{{Name: "db", Address: h.sshd.Addr, HostKey: h.sshd.HostKey, Logins: []string{"root"}}},
		Rules:   []Rule{{Name: "rfwd", Principals: []string{"rfwd"}, Targets: []string{"db"}, Logins: []string{"root"}, RemoteForwards: []int{port}}},
	}
	r := &forwardRig{harness: h.extraServer(t, Config{Policy: pol, Recording: &Recording{Store: store}}), store: store, dir: dir}
	cmd := exec.CommandContext(t.Context(), r.sshBin, append(r.opts(r.key(t, "rfwd")), "-v", "-p", strconv.Itoa(r.port), "-N",
		"-o", "ExitOnForwardFailure=yes", "-R", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:%d", port, sink), "root@db@127.0.0.1")...)
	stderr := &testenv.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { <-exited })
	c := dialRemoteForward(t, stderr, exited, port)
	msg := "card " + testPAN + "\n"
	io.WriteString(c, msg)
	c.Close()
	select {
	case b := <-got:
		if !bytes.Equal(b, []byte(msg)) {
			t.Fatalf("the client's side got %q, want %q unchanged (opaque)", b, msg)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nothing reached the client's side")
	}
	s := r.forward(t, port, func(s recorder.Session) bool { return s.BytesOut > 0 })
	if !s.Forward.Remote || s.Forward.Protocol != ForwardTCP || s.BytesOut != int64(len(msg)) {
		t.Fatalf("index entry %+v %+v", s, s.Forward)
	}
}

// Through ssh -L and the bastion: a replication connection (pg_basebackup
// with server-side gzip, which would carry the cluster's files past any
// masking) is refused, indexed with its reason and audited; a client that
// asks for SJIS gets the stored card number masked. No full card number
// in what the clients print, the recordings, the index or the log.
func TestAttack9PostgresForwardReplicationAndEncoding(t *testing.T) {
	t.Parallel()
	bb := testenv.Require(t, "pg_basebackup")
	r := newPGRig(t)
	r.pg.SQL(t, "INSERT INTO cards VALUES (3, 'カード番号："+testPAN+"', 'jp', '')")
	host, port, _ := net.SplitHostPort(r.local)
	res := testenv.Cmd(t, 2*time.Minute, nil, bb, "-h", host, "-p", port, "-U", "postgres", "-D", t.TempDir(), "-Ft", "-X", "none", "--compress=server-gzip", "--no-manifest")
	if res.ExitCode == 0 || !strings.Contains(string(res.Stderr), "replication connections") {
		t.Fatalf("pg_basebackup through the forward: exit %d: %s; want it refused", res.ExitCode, res.Stderr)
	}
	s := r.forward(t, r.pg.Port, func(s recorder.Session) bool { return s.Forward.CloseReason == "replication connection refused" })
	if s.Kind != recorder.KindPostgres {
		t.Fatalf("index entry %+v", s)
	}
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, m := range r.audits("fwd@forward-test", "forward") {
			if m["allowed"] == false && m["reason"] == "replication connection" {
				return true
			}
		}
		return false
	})
	out := testenv.Cmd(t, time.Minute, nil, r.psql, "-X", "-A", "-t", "-d", r.conninfo(true)+" client_encoding=SJIS", "-c", "SELECT pan FROM cards WHERE id = 3")
	if out.ExitCode != 0 || bytes.Contains(out.Stdout, []byte(testPAN)) || !bytes.Contains(out.Stdout, []byte(maskedTestPAN)) {
		t.Fatalf("psql in SJIS: exit %d %q %s; want the card number masked", out.ExitCode, out.Stdout, out.Stderr)
	}
	r.forward(t, r.pg.Port, func(s recorder.Session) bool {
		return s.Forward.Statements > 0 && s.Forward.CloseReason == "client closed"
	})
	checkNoPAN(t, r.dir, r.logs.String())
}

// The database user and database a client names are its claim, recorded
// before the server judges it: a name that spells more fields cannot make
// the index's command read as another database or user.
func TestAttack9PostgresStartupNamesCannotForgeCommand(t *testing.T) {
	t.Parallel()
	r := newPGRig(t)
	const claim = "nobody db=prod user=postgres"
	c, err := net.Dial("tcp", r.local)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": claim}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 100 { // the server refuses the login and closes
		if _, err := fe.Receive(); err != nil {
			break
		}
	}
	c.Close()
	s := r.forward(t, r.pg.Port, func(s recorder.Session) bool { return s.Forward.DBUser == claim })
	want := fmt.Sprintf("%d/postgres db=%q user=%q", r.pg.Port, claim, claim)
	if s.Command != want {
		t.Fatalf("command %q, want %q", s.Command, want)
	}
}

// A statement of nearly MaxText bytes, most of them control characters
// (each recorded as an escape), is recorded whole and the recording
// stays readable (recorder.MaxLine); one over MaxText is refused, indexed
// with its reason.
func TestAttack9PostgresLongStatementRecorded(t *testing.T) {
	t.Parallel()
	r := newPGRig(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, r.conninfo(true)+" sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	marker := uniqueMarker("tail-")
	q := "SELECT length('" + strings.Repeat("\x01", pgproxy.MaxText-100) + "') AS \"" + marker + "\""
	var n int
	if err := conn.QueryRow(ctx, q, pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != pgproxy.MaxText-100 {
		t.Fatalf("long statement: %d %v", n, err)
	}
	_, err = conn.Exec(ctx, "SELECT '"+strings.Repeat("y", pgproxy.MaxText)+"'", pgx.QueryExecModeSimpleProtocol)
	if err == nil || !strings.Contains(err.Error(), "cannot be recorded whole") {
		t.Fatalf("over MaxText: %v; want it refused", err)
	}
	s := r.forward(t, r.pg.Port, func(s recorder.Session) bool { return s.Forward.CloseReason == "statement too long to record" })
	if text := recordingText(t, filepath.Join(r.dir, s.Path)); !strings.Contains(text, marker) {
		t.Fatalf("the long statement's end is not in the recording (%d bytes)", len(text))
	}
}
