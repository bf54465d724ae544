package bastion

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// forwardRig is a bastion of its own, with its own index, whose target
// "db" is the shared sshd and declares the forwards given.
type forwardRig struct {
	*harness
	store *recorder.Local
	dir   string
}

// newForwardRig starts a bastion whose target db declares decl; principal
// "fwd" may forward the ports grant lists, "nofwd" none.
func newForwardRig(t testing.TB, decl []Forward, grant []int) *forwardRig {
	t.Helper()
	h := env(t)
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	pol := Policy{
		Targets: []Target{{Name: "db", Address: h.sshd.Addr, HostKey: h.sshd.HostKey, Logins: []string{"root"}, DefaultLogin: "root", Forwards: decl}},
		Rules: []Rule{
			{Name: "fwd", Principals: []string{"fwd"}, Targets: []string{"db"}, Logins: []string{"root"}, Forwards: grant},
			{Name: "nofwd", Principals: []string{"nofwd"}, Targets: []string{"db"}, Logins: []string{"root"}},
		},
	}
	b := h.extraServer(t, Config{Policy: pol, Recording: &Recording{Store: store}})
	return &forwardRig{harness: b, store: store, dir: dir}
}

// key returns a key with a certificate for principal.
func (r *forwardRig) key(t testing.TB, principal string) string {
	t.Helper()
	return r.userKey(t, principal+"-"+uniqueMarker(""), certs.UserCertRequest{Principals: []string{principal}, TTL: time.Hour, KeyID: principal + "@forward-test"})
}

// forward returns the sealed index entry of the forward to port.
func (r *forwardRig) forward(t *testing.T, port int, match func(recorder.Session) bool) recorder.Session {
	t.Helper()
	return r.findRecording(t, r.store, func(s recorder.Session) bool {
		return s.Forward != nil && s.Forward.Port == uint32(port) && (match == nil || match(s))
	})
}

// A declared tcp forward carries an HTTP exchange unchanged, opaque; the
// forwarded connection is an index entry, sealed, with its byte counts,
// originator and close reason, and an audit record.
func TestForwardTCPToHTTPServerAudited(t *testing.T) {
	t.Parallel()
	const body = "hello through a declared tcp forward\n"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	port := l.Addr().(*net.TCPAddr).Port
	r := newForwardRig(t, []Forward{{Port: port, Protocol: ForwardTCP}}, []int{port})
	local, stderr := r.localForward(t, r.key(t, "fwd"), "root@db", "localhost:"+strconv.Itoa(port))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	resp, err := client.Get("http://" + local + "/")
	if err != nil {
		t.Fatalf("GET through the forward: %v; ssh: %s", err, stderr.String())
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != body {
		t.Fatalf("body %q, want %q", got, body)
	}
	// localForward's probe was a connection of its own, empty.
	s := r.forward(t, port, func(s recorder.Session) bool { return s.BytesOut > 0 })
	f := s.Forward
	if s.Kind != recorder.KindForward || f.Protocol != "tcp" || f.Host != "localhost" || f.Originator == "" || f.CloseReason == "" ||
		s.BytesIn < int64(len("GET / HTTP/1.1")) || s.BytesOut < int64(len(body)) || s.End == nil || s.Identity != "fwd" || s.SHA256 == "" {
		t.Fatalf("index entry %+v forward %+v", s, f)
	}
	if s.Command != strconv.Itoa(port)+"/tcp" {
		t.Fatalf("command %q", s.Command)
	}
	// The recording says what it was, and that it holds no traffic.
	text := recordingText(t, filepath.Join(r.dir, s.Path))
	if !strings.Contains(text, "opaque, its bytes are counted, not recorded") || strings.Contains(text, body) {
		t.Fatalf("recording %q", text)
	}
	var end map[string]any
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, m := range r.audits(s.KeyID, "forward_end") {
			if m["recording"] == s.ID {
				end = m
				return true
			}
		}
		return false
	})
	if end["bytes_to_target"] != float64(s.BytesIn) || end["bytes_to_client"] != float64(s.BytesOut) || end["close_reason"] != f.CloseReason {
		t.Fatalf("forward_end %v, index %+v", end, s)
	}
	rep, err := recorder.VerifyStore(t.Context(), r.store, recorder.VerifyOptions{Key: r.store.PublicKey()})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
}

// Forwards the policy does not allow are refused as administratively
// prohibited with a readable reason, and audited; nothing is indexed.
func TestForwardRefusals(t *testing.T) {
	t.Parallel()
	const declared, other = 15432, 18080
	r := newForwardRig(t, []Forward{{Port: declared, Protocol: ForwardPostgres}, {Port: other, Protocol: ForwardTCP}}, []int{declared})
	tests := []struct {
		name, principal string
		port            int
		want, reason    string
	}{
		{"undeclared port", "fwd", 15433, "port 15433 of db is not declared for forwarding (declared: 15432 (postgres), 18080 (tcp))", "port not declared for forwarding"},
		{"declared, not granted", "fwd", other, "you may not forward port 18080 of db (rule fwd grants 15432)", "port not granted by rule fwd"},
		{"identity without forwards", "nofwd", declared, "port forwarding is not allowed for you on db", "port forwarding not granted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := r.key(t, tt.principal)
			local, stderr := r.localForward(t, key, "root@db", "localhost:"+strconv.Itoa(tt.port))
			c, err := net.Dial("tcp", local)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) || len(got) != 0 {
				t.Fatalf("a refused forward delivered %q (%v)", got, err)
			}
			testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(stderr.String(), tt.want) })
			if !strings.Contains(stderr.String(), "administratively prohibited") {
				t.Fatalf("ssh stderr %q: want the channel refused as prohibited", stderr.String())
			}
			testenv.WaitFor(t, 10*time.Second, func() bool {
				for _, m := range r.audits(tt.principal+"@forward-test", "forward") {
					if m["reason"] == tt.reason && m["allowed"] == false {
						return true
					}
				}
				return false
			})
		})
	}
	list, err := r.store.List(t.Context(), recorder.Filter{})
	if err != nil || len(list) != 0 {
		t.Fatalf("refused forwards were indexed: %+v %v", list, err)
	}
}

// Remote forwarding (ssh -R) is refused unless the rule allows the port;
// where it does, the target listens on its loopback and each connection
// reaches the client's side, opaque, indexed and counted like a tcp forward.
func TestRemoteForward(t *testing.T) {
	t.Parallel()
	h := env(t)
	echo, err := serveTCP(func(c net.Conn) { io.Copy(c, c) })
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	pol := Policy{
		Targets: []Target{{Name: "db", Address: h.sshd.Addr, HostKey: h.sshd.HostKey, Logins: []string{"root"}}},
		Rules: []Rule{
			{Name: "rfwd", Principals: []string{"rfwd"}, Targets: []string{"db"}, Logins: []string{"root"}, RemoteForwards: []int{port}},
			{Name: "other", Principals: []string{"other"}, Targets: []string{"db"}, Logins: []string{"root"}, RemoteForwards: []int{port + 1}},
			{Name: "none", Principals: []string{"none"}, Targets: []string{"db"}, Logins: []string{"root"}, Forwards: []int{AnyDeclaredPort}},
		},
	}
	r := &forwardRig{harness: h.extraServer(t, Config{Policy: pol, Recording: &Recording{Store: store}}), store: store, dir: dir}
	spec := fmt.Sprintf("127.0.0.1:%d:127.0.0.1:%d", port, echo)
	for _, tt := range []struct{ principal, reason string }{
		{"none", "remote forwarding not granted"},
		{"other", "remote port not granted by rule other"},
	} {
		res := testenv.Cmd(t, time.Minute, nil, r.sshBin, append(r.opts(r.key(t, tt.principal)), "-p", strconv.Itoa(r.port), "-N",
			"-o", "ExitOnForwardFailure=yes", "-R", spec, "root@db@127.0.0.1")...)
		if res.ExitCode == 0 || !strings.Contains(string(res.Stderr), "remote port forwarding failed") {
			t.Fatalf("%s: ssh -R: exit %d stderr %q; want the forward refused", tt.principal, res.ExitCode, res.Stderr)
		}
		testenv.WaitFor(t, 10*time.Second, func() bool {
			for _, m := range r.audits(tt.principal+"@forward-test", "forward") {
				if m["direction"] == "remote" && m["allowed"] == false && m["reason"] == tt.reason {
					return true
				}
			}
			return false
		})
	}
	cmd := exec.CommandContext(t.Context(), r.sshBin, append(r.opts(r.key(t, "rfwd")), "-v", "-p", strconv.Itoa(r.port), "-N",
		"-o", "ExitOnForwardFailure=yes", "-R", spec, "root@db@127.0.0.1")...)
	stderr := &testenv.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { <-exited })
	c := dialRemoteForward(t, stderr, exited, port)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	const msg = "through the target to the client\n"
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q %v; ssh: %s", got, err, stderr.String())
	}
	c.Close()
	s := r.forward(t, port, func(s recorder.Session) bool { return s.BytesOut > 0 })
	if !s.Forward.Remote || s.Forward.Protocol != "tcp" || s.BytesOut != int64(len(msg)) || s.BytesIn != int64(len(msg)) ||
		s.Command != fmt.Sprintf("remote %d/tcp", port) || s.Identity != "rfwd" {
		t.Fatalf("index entry %+v %+v", s, s.Forward)
	}
}
