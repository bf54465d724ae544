package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/api"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// rig is the API served on loopback with a real CA, index and audit chain,
// checking tokens of an OpenID provider (a TokenIssuer unless the test
// gives another issuer).
type rig struct {
	url   string
	auth  *certs.Authority
	store *recorder.Local
	p     *testenv.TokenIssuer
	logs  *testenv.Buffer
	// offset moves the clock of the API and its verifier.
	offset atomic.Int64
}

func (r *rig) now() time.Time { return time.Now().Add(time.Duration(r.offset.Load())) }

func newRig(t testing.TB, edit func(*api.Config)) *rig {
	t.Helper()
	dir := t.TempDir()
	r := &rig{logs: &testenv.Buffer{}, p: testenv.NewTokenIssuer(t, "postern-cli")}
	var err error
	if r.auth, err = certs.Open(dir); err != nil {
		t.Fatal(err)
	}
	if r.store, err = recorder.OpenStore(dir, recorder.Options{Key: r.auth.AuditKey}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.store.Close() })
	o, err := certs.NewOIDC(certs.OIDCConfig{Issuer: r.p.URL, ClientID: r.p.ClientID, Now: r.now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{
		OIDC: o, Authority: r.auth, Register: r.store,
		Issuer: r.p.URL, ClientID: r.p.ClientID, Scopes: []string{"openid", "email", "profile"},
		TTL: 8 * time.Hour, MaxTTL: 12 * time.Hour, HostNames: []string{"bastion.example.com"}, SSHPort: 2222,
		Log: slog.New(slog.NewJSONHandler(r.logs, nil)), Now: r.now,
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.Listen(a, api.ServerConfig{Addr: "127.0.0.1:0", PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("API log:\n%s", r.logs.String())
		}
	})
	r.url = srv.URL()
	return r
}

// reply is an API answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (r *rig) do(t testing.TB, method, path string, body io.Reader) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, r.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	rep := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	json.Unmarshal(raw, &rep.body)
	return rep
}

func (r *rig) post(t testing.TB, req map[string]any) reply {
	t.Helper()
	b, _ := json.Marshal(req)
	return r.do(t, http.MethodPost, "/v1/certificates", bytes.NewReader(b))
}

// pubKey is a fresh ed25519 public key in authorized_keys form.
func pubKey(t testing.TB) (ssh.Signer, string) {
	s := testenv.NewSigner(t)
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " alice@laptop"
}

// refusals returns the refusals recorded and checks that no certificate
// was issued and that the audit chain verifies.
func (r *rig) refusals(t *testing.T) []recorder.CertRefusal {
	t.Helper()
	list, err := r.store.Refusals(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	issued, err := r.store.Issued(t.Context())
	if err != nil || len(issued) != 0 {
		t.Fatalf("issued %v %v", issued, err)
	}
	rep, err := recorder.VerifyStore(t.Context(), r.store, recorder.VerifyOptions{Key: r.store.PublicKey()})
	if err != nil || len(rep.Problems) != 0 || rep.Refusals != len(list) {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	return list
}

func TestIssueCertificate(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.SourceAddress = true })
	key, pub := pubKey(t)
	claims := r.p.Claims("alice@example.com")
	claims["groups"] = []string{"ops", "dba"}
	claims["nonce"] = "n0nce"
	rep := r.post(t, map[string]any{"id_token": r.p.Sign(claims), "public_key": pub, "ttl": "1h", "nonce": "n0nce"})
	if rep.status != http.StatusOK {
		t.Fatalf("status %d: %s", rep.status, rep.raw)
	}
	var got struct {
		Certificate, Identity string
		Principals, Groups    []string
		Serial                uint64
	}
	json.Unmarshal(rep.raw, &got)
	var times struct {
		ValidAfter  time.Time `json:"valid_after"`
		ValidBefore time.Time `json:"valid_before"`
	}
	if err := json.Unmarshal(rep.raw, &times); err != nil {
		t.Fatal(err)
	}
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(got.Certificate))
	if err != nil {
		t.Fatalf("certificate %q: %v", got.Certificate, err)
	}
	cert := pk.(*ssh.Certificate)
	checker := certs.Checker{CA: r.auth.UserCA.PublicKey()}
	if _, err := checker.Check(cert, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}); err != nil {
		t.Fatalf("the bastion's checker refuses the certificate: %v", err)
	}
	if string(cert.Key.Marshal()) != string(key.PublicKey().Marshal()) || cert.KeyId != "alice@example.com" ||
		strings.Join(cert.ValidPrincipals, ",") != "alice@example.com" || cert.Extensions[certs.GroupsExtension] != "ops,dba" ||
		cert.CriticalOptions["source-address"] != "127.0.0.1" || cert.Serial != got.Serial {
		t.Fatalf("certificate %+v", cert)
	}
	for _, ext := range []string{"permit-pty", "permit-port-forwarding"} {
		if _, ok := cert.Extensions[ext]; !ok {
			t.Fatalf("certificate lacks %s: %v", ext, cert.Extensions)
		}
	}
	if _, ok := cert.Extensions["permit-agent-forwarding"]; ok {
		t.Fatal("agent forwarding granted")
	}
	if got.Identity != "alice@example.com" || strings.Join(got.Groups, ",") != "ops,dba" ||
		!times.ValidAfter.Equal(time.Unix(int64(cert.ValidAfter), 0)) || !times.ValidBefore.Equal(time.Unix(int64(cert.ValidBefore), 0)) {
		t.Fatalf("answer %s", rep.raw)
	}
	if d := times.ValidBefore.Sub(times.ValidAfter); d != time.Hour+certs.Backdate {
		t.Fatalf("validity %s, want 1h and the backdate", d)
	}
	issued, err := r.store.Issued(t.Context())
	if err != nil || len(issued) != 1 || issued[0].Serial != cert.Serial || issued[0].KeyID != "alice@example.com" ||
		issued[0].Client != "127.0.0.1" || issued[0].Subject != "sub-alice@example.com" || !strings.HasPrefix(issued[0].IssuedBy, "login (") {
		t.Fatalf("register %+v %v", issued, err)
	}
	rep2, err := recorder.VerifyStore(t.Context(), r.store, recorder.VerifyOptions{Key: r.store.PublicKey()})
	if err != nil || len(rep2.Problems) != 0 || rep2.ChainEntries != 1 {
		t.Fatalf("verify %+v %v", rep2, err)
	}
	if logs := r.logs.String(); !strings.Contains(logs, `"event":"cert_issued"`) || !strings.Contains(logs, `"chain_head":"0:`) {
		t.Fatalf("no audit record of the issue:\n%s", logs)
	}
	// Without a TTL: the default.
	rep = r.post(t, map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub})
	json.Unmarshal(rep.raw, &times)
	if rep.status != http.StatusOK || times.ValidBefore.Sub(times.ValidAfter) != 8*time.Hour+certs.Backdate {
		t.Fatalf("default TTL: %d %s", rep.status, rep.raw)
	}
}

// Concurrent requests each get a certificate with a serial of its own,
// every one recorded and sealed.
// A login section that lists permit-agent-forwarding has it in every
// certificate (it is never in one by default: TestIssueCertificate).
func TestIssueCertificateAgentForwarding(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.AgentForwarding = true })
	_, pub := pubKey(t)
	rep := r.post(t, map[string]any{"id_token": r.p.Sign(r.p.Claims("alice@example.com")), "public_key": pub})
	if rep.status != http.StatusOK {
		t.Fatalf("status %d: %s", rep.status, rep.raw)
	}
	var got struct{ Certificate string }
	json.Unmarshal(rep.raw, &got)
	pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(got.Certificate))
	if err != nil {
		t.Fatalf("certificate %q: %v", got.Certificate, err)
	}
	for _, ext := range []string{"permit-pty", "permit-port-forwarding", "permit-agent-forwarding"} {
		if _, ok := pk.(*ssh.Certificate).Extensions[ext]; !ok {
			t.Fatalf("certificate lacks %s", ext)
		}
	}
}

func TestConcurrentIssues(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *api.Config) { c.IssueBurst = 16 }) // all alice's
	const n = 16
	serials := make(chan uint64, n)
	errs := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			_, pub := pubKey(t)
			b, _ := json.Marshal(map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub})
			resp, err := http.Post(r.url+"/v1/certificates", "application/json", bytes.NewReader(b))
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			var out struct{ Serial uint64 }
			if json.NewDecoder(resp.Body).Decode(&out) != nil || resp.StatusCode != http.StatusOK {
				errs <- resp.Status
				return
			}
			serials <- out.Serial
		})
	}
	wg.Wait()
	close(errs)
	close(serials)
	for e := range errs {
		t.Fatal(e)
	}
	seen := map[uint64]bool{}
	for s := range serials {
		seen[s] = true
	}
	issued, err := r.store.Issued(t.Context())
	if len(seen) != n || err != nil || len(issued) != n {
		t.Fatalf("%d distinct serials, %d issued (%v)", len(seen), len(issued), err)
	}
	for _, c := range issued {
		if !seen[c.Serial] {
			t.Fatalf("register has serial %d, not answered", c.Serial)
		}
	}
	rep, err := recorder.VerifyStore(t.Context(), r.store, recorder.VerifyOptions{Key: r.store.PublicKey()})
	if err != nil || len(rep.Problems) != 0 || rep.ChainEntries != n {
		t.Fatalf("verify %+v %v", rep, err)
	}
}

// An identity revoked for good (ca revoke --identity) gets no new
// certificate: 403, a refusal record, and another identity still gets one.
func TestIssueRevokedIdentity(t *testing.T) {
	t.Parallel()
	revoked := &certs.RevocationList{}
	revoked.Add(certs.Revocation{KeyID: "bob@example.com", Reason: "left"})
	r := newRig(t, func(c *api.Config) { c.Revoked = revoked.KeyIDRevoked })
	_, pub := pubKey(t)
	rep := r.post(t, map[string]any{"id_token": r.p.Sign(r.p.Claims("bob@example.com")), "public_key": pub})
	if rep.status != http.StatusForbidden || !strings.Contains(fmt.Sprint(rep.body["error"]), "revoked") {
		t.Fatalf("revoked identity: %d %s", rep.status, rep.raw)
	}
	if refs := r.refusals(t); len(refs) != 1 || refs[0].Reason != "identity revoked" {
		t.Fatalf("refusal records %+v", refs)
	}
	if rep := r.post(t, map[string]any{"id_token": r.p.Sign(r.p.Claims("alice@example.com")), "public_key": pub}); rep.status != http.StatusOK {
		t.Fatalf("alice: %d %s", rep.status, rep.raw)
	}
}
