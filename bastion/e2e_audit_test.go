package bastion

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// auditRecords returns the audit records in logs, decoded.
func auditRecords(logs string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(logs) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["audit"] == true {
			out = append(out, m)
		}
	}
	return out
}

// A client with no cipher in common is refused at key exchange, and the
// connect record says so, with the algorithms the client offered: not "no
// certificate offered", which blames the user for a policy mismatch.
func TestKeyExchangeFailureAudited(t *testing.T) {
	t.Parallel()
	h := env(t)
	r := h.sshWith(t, []string{"-c", "aes256-ctr"}, h.alice, "root@t1", nil, "echo SHOULD-NOT-RUN")
	if r.ExitCode != 255 || !strings.Contains(string(r.Stderr), "no matching cipher found") {
		t.Fatalf("aes256-ctr client: exit %d stderr %s; want refused at key exchange", r.ExitCode, r.Stderr)
	}
	var rec map[string]any
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, m := range auditRecords(h.logs.String()) {
			algs, _ := m["client_algorithms"].([]any)
			if m["event"] == "connect" && slices.Contains(algs, any("aes256-ctr")) {
				rec = m
				return true
			}
		}
		return false
	})
	reason, _ := rec["reason"].(string)
	if rec["allowed"] != false || !strings.HasPrefix(reason, "key exchange failed: ") || !strings.Contains(reason, "no common algorithm for client to server cipher") {
		t.Errorf("connect record %v: want allowed false and a key-exchange reason naming the cipher", rec)
	}
}
