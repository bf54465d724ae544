package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/postern/postern/internal/testenv"
)

// TestLoginIssueRate: with login.issue_burst 1 and an hour's
// issue_interval (no refill within the test), a second `postern login`
// of the same user through a real OpenID provider is refused: the user
// sees one line naming the limit and when to try again, exit 1, and the
// bastion's log has the refusal's audit record (429, sealed) after the
// first certificate's. Not parallel: login reads SSH_AUTH_SOCK and HOME.
func TestLoginIssueRate(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("HOME", t.TempDir())
	p := testenv.OIDC(t, testenv.OIDCOptions{})
	ls := startLoginServe(t, p.Issuer, p.ClientID, "  issue_burst: 1\n  issue_interval: 1h\n")
	if code, out, errs := runLogin(t, ls.loginURL, p, "alice", "--dir", filepath.Join(t.TempDir(), "postern")); code != 0 {
		t.Fatalf("first login: exit %d\n%s%s", code, out, errs)
	}
	dir := filepath.Join(t.TempDir(), "postern")
	code, _, errs := runLogin(t, ls.loginURL, p, "alice", "--dir", dir)
	line := regexp.MustCompile(`(?m)^postern: the bastion refused: too many certificates for alice@example\.com: this bastion issues at most 1 to one identity at once, then one every 1h0m0s; try again in (\d+m\d+s|1h0m0s) \(HTTP 429\)$`)
	if code != 1 || !line.MatchString(errs) {
		t.Fatalf("second login: exit %d, stderr:\n%s", code, errs)
	}
	if st := admin(t, ls.dir, "status", "--dir", dir); st.ExitCode != 1 {
		t.Fatalf("status after the refused login: exit %d %s", st.ExitCode, st.Stdout)
	}
	logs := ls.logs.String()
	refused := regexp.MustCompile(`"event":"cert_refused".*"status":429,"reason":"issue rate limited: a burst of 1 certificates, then one every 1h0m0s, per identity","identity":"alice@example.com".*"refusal":"`)
	if strings.Count(logs, `"event":"cert_issued"`) != 1 || !refused.MatchString(logs) {
		t.Fatalf("audit records: want 1 cert_issued and a sealed cert_refused with status 429:\n%s", logs)
	}
	ls.stop(t)
}
