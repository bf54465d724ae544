package bastion

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// A connection that max_connections_per_identity refuses is counted and
// audited once, whatever it tries after: a client with two certificates
// of the same identity is refused for each. Its limit_refused record
// names the connection (its session ID), as its connect record does.
func TestLimitIdentityRefusedOncePerConnection(t *testing.T) {
	t.Parallel()
	h := env(t)
	second := h.userKey(t, "alice-second", certs.UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour})
	m := &limitMetrics{}
	b := h.extraServer(t, Config{Policy: h.policy, Limits: Limits{MaxConnsPerIdentity: 1}, Metrics: m})
	b.dialGo(t, h.alice, "root@t1")
	_, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)), &ssh.ClientConfig{
		User:            "root@t1",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(fileSigner(t, h.alice), fileSigner(t, second))},
		HostKeyCallback: ssh.FixedHostKey(h.auth.HostKey.PublicKey()),
		Timeout:         10 * time.Second,
	})
	if err == nil {
		t.Fatal("a second connection of alice was let in at max_connections_per_identity 1")
	}
	if got := m.String(); got != "limit max_connections_per_identity refused; conn max_connections_per_identity;" {
		t.Fatalf("metrics saw %q: want the connection refused once", got)
	}
	var refused []map[string]any
	for _, rec := range eventRecords(b.logs.String(), "limit_refused") {
		if rec["limit"] == LimitConnsPerIdentity {
			refused = append(refused, rec)
		}
	}
	var sid any // the refused connection's, from its connect record (written as the handshake ends)
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, rec := range eventRecords(b.logs.String(), "connect") {
			if reason, _ := rec["reason"].(string); rec["allowed"] == false && strings.Contains(reason, "max_connections_per_identity reached") {
				sid = rec["session"]
			}
		}
		return sid != nil
	})
	if len(refused) != 1 || sid == nil || refused[0]["session"] != sid {
		t.Fatalf("limit_refused records %v, refused connection %v: want one naming the connection", refused, sid)
	}
}
