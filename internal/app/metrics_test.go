package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/metrics"
	"github.com/postern/postern/internal/testenv"
)

// TestMetricsAfterSessions runs the app with a metrics listener in front
// of a real sshd, sends a real OpenSSH session through it that prints a
// card number, then a connection with a plain key (refused), and scrapes
// /metrics over loopback: one session, bytes both ways, the PAN masked,
// the refusal and its auth failure, two handshakes timed. /readyz says
// ready while Run serves and not while draining.
// (Before Run nothing answers on the listener: it is bound by New, served
// by Run.)
func TestMetricsAfterSessions(t *testing.T) {
	t.Parallel()
	sshBin := testenv.Require(t, "ssh")
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	auth, err := certs.Open(data) // the keys exist before the target trusts them
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.SSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: []ssh.PublicKey{auth.UpstreamCA.PublicKey()}})
	logs := &testenv.Buffer{}
	a, err := app.New(app.Config{
		Settings: &config.Config{Listen: "127.0.0.1:0", DataDir: data, Metrics: &config.Metrics{Listen: "127.0.0.1:0"},
			Policy: bastion.Policy{
				Targets: []bastion.Target{{Name: "t", Address: sshd.Addr, HostKey: sshd.HostKey, Logins: []string{"root"}, DefaultLogin: "root"}},
				Rules:   []bastion.Rule{{Name: "r", Principals: []string{"alice"}, Targets: []string{"t"}, Logins: []string{"root"}}},
			}},
		Log:   app.NewLogger(logs, -4),
		Drain: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s\nsshd:\n%s", logs.String(), sshd.Logs())
		}
	})
	base := a.MetricsURL()
	if base == "" {
		t.Fatal("no metrics URL with a metrics section")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	ready := func() int {
		t.Helper()
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-ran
	})
	if code := ready(); code != http.StatusOK {
		t.Fatalf("/readyz while serving: %d", code)
	}

	port := strconv.Itoa(a.Addr().(*net.TCPAddr).Port)
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte("[127.0.0.1]:"+port+" "+string(ssh.MarshalAuthorizedKey(a.Auth.HostKey.PublicKey()))), 0o600)
	key, keyFile := testenv.NewKey(t, dir, "alice")
	cert, err := a.Auth.SignUser(key.PublicKey(), certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	testenv.NewKey(t, dir, "plain") // no certificate: refused
	testenv.WriteCert(t, keyFile+"-cert.pub", cert)
	run := func(identity string) testenv.Result {
		args := append(testenv.ClientOpts{Identity: identity, KnownHosts: kh}.Options(), "-p", port, "t@127.0.0.1",
			"printf '%s%s\\n' 41111111 11111111; cat")
		return testenv.Cmd(t, time.Minute, strings.NewReader("typed input\n"), sshBin, args...)
	}
	r := run(keyFile)
	if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), "typed input") || strings.Contains(string(r.Stdout), "4111111111111111") {
		t.Fatalf("session: exit %d stdout %q stderr %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	if r := run(filepath.Join(dir, "plain")); r.ExitCode == 0 {
		t.Fatalf("a plain key was let in: %q", r.Stdout)
	}

	var s metrics.Samples
	// The session's end is counted once its connection's goroutine ends,
	// just after the client saw the end.
	testenv.WaitFor(t, 10*time.Second, func() bool {
		if s, err = metrics.Scrape(context.Background(), client, base+"/metrics"); err != nil {
			t.Fatal(err)
		}
		return s["postern_sessions_active"] == 0 && s[`postern_connections_refused_total{reason="auth"}`] == 1
	})
	for series, want := range map[string]float64{
		"postern_sessions_total":                                    1,
		"postern_sessions_active":                                   0,
		"postern_connections_accepted_total":                        2,
		`postern_connections_refused_total{reason="auth"}`:          1,
		`postern_connections_refused_total{reason="key_exchange"}`:  0,
		`postern_auth_failures_total{reason="no_certificate"}`:      1,
		`postern_auth_failures_total{reason="denied"}`:              0,
		"postern_pans_masked_total":                                 1,
		"postern_recording_errors_total":                            0,
		`postern_handshake_duration_seconds_count{result="ok"}`:     1,
		`postern_handshake_duration_seconds_count{result="failed"}`: 1,
		`postern_channel_bytes_total{direction="to_target"}`:        float64(len("typed input\n")),
		"postern_approvals_pending":                                 0,
		`postern_approvals_decided_total{state="approved"}`:         0,
	} {
		if got, ok := s[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if got := s[`postern_channel_bytes_total{direction="to_client"}`]; got < float64(len("typed input\n")+17) {
		t.Errorf("bytes to the client %v: fewer than the session printed", got)
	}
	if s["go_goroutines"] <= 0 || s["process_resident_memory_bytes"] <= 0 {
		t.Errorf("the Go and process collectors are missing: go_goroutines %v, RSS %v", s["go_goroutines"], s["process_resident_memory_bytes"])
	}

	a.SetDraining(true)
	if code := ready(); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while draining: %d", code)
	}
	a.SetDraining(false)
	if code := ready(); code != http.StatusOK {
		t.Fatalf("/readyz after draining was turned off: %d", code)
	}
}
