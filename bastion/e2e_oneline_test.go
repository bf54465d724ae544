package bastion

import (
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// TestRefusalOneLine: with keyboard-interactive enabled, as for a person at
// a terminal (BatchMode=no), ssh offers the certificate and the plain key
// behind it, then tries keyboard-interactive. Whatever refused the
// certificate, the client sees one postern line, the right one: not also
// the plain-key line, which is wrong when a certificate was offered. A user
// name without a target gets a hint about LOGIN@TARGET@bastion.
func TestRefusalOneLine(t *testing.T) {
	t.Parallel()
	h := env(t)
	_, plainPath := testenv.NewKey(t, h.dir, "oneline-plain")
	past := time.Now().Add(-48 * time.Hour)
	tests := []struct {
		name, key, user string
		want            string // the one postern line contains it
	}{
		{"plain key", plainPath, "root@t1", "a certificate is required"},
		{"expired cert", h.userKey(t, "oneline-expired", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, Now: past}), "root@t1", "certificate expired"},
		{"no rule", h.userKey(t, "oneline-bob", certs.UserCertRequest{Principals: []string{"bob"}, TTL: time.Hour}), "root@t1", `bob may not connect to "t1"`},
		{"login not allowed", h.alice, "nobody@t1", `may not log in as "nobody"`},
		{"unknown target", h.alice, "root@nosuch", `unknown target "nosuch"`},
		{"no target", h.alice, "root", "connect as LOGIN@TARGET@bastion"},
		{"no target, login is a user", h.alice, testUser, "connect as LOGIN@TARGET@bastion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := h.sshWith(t, []string{"-o", "BatchMode=no"}, tt.key, tt.user, nil, "echo SHOULD-NOT-RUN")
			if r.ExitCode != 255 || strings.Contains(string(r.Stdout), "SHOULD-NOT-RUN") {
				t.Fatalf("exit %d stdout %q: want refusal (255)", r.ExitCode, r.Stdout)
			}
			var lines []string
			for l := range strings.Lines(string(r.Stderr)) {
				if strings.Contains(l, "postern:") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("client stderr %q: want one postern line saying %q", r.Stderr, tt.want)
			}
		})
	}
}
