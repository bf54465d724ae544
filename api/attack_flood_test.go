package api_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/postern/postern/api"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// fromAddr is an HTTP client whose connections leave from addr (any of
// 127.0.0.0/8 on Linux): a client with many addresses, as an attacker with
// an IPv6 prefix or many machines has.
func fromAddr(addr string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// An attacker with many addresses sends failing requests from each: every
// address stays within its own limit, yet the refusals sealed in the
// audit chain are bounded for all clients together (each still refused,
// and logged).
func TestAttackRefusalFloodFromManyAddresses(t *testing.T) {
	t.Parallel()
	const budget = 20
	r := newRig(t, func(c *api.Config) { c.RecordedRefusals = budget })
	_, pub := pubKey(t)
	body := mustJSON(map[string]any{"id_token": "not-a-token", "public_key": pub})
	const addrs = 30
	refused := 0
	for i := range addrs {
		c := fromAddr(fmt.Sprintf("127.0.%d.%d", 1+i/200, 2+i%200))
		for range api.DefaultMaxFailures + 1 {
			resp, err := c.Post(r.url+"/v1/certificates", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusTooManyRequests {
				refused++
			}
		}
	}
	if refused != addrs*(api.DefaultMaxFailures+1) {
		t.Fatalf("%d of %d requests refused", refused, addrs*(api.DefaultMaxFailures+1))
	}
	list := r.refusals(t)
	if len(list) != budget+1 || !strings.Contains(list[budget].Reason, "refusal records suspended") {
		t.Fatalf("%d refusals sealed from %d failing requests (budget %d); last %+v", len(list), refused, budget, list[len(list)-1])
	}
	if n := strings.Count(r.logs.String(), `"event":"cert_refused"`); n != refused {
		t.Fatalf("%d refusals logged, want %d", n, refused)
	}
	// The next window seals again.
	r.offset.Store(int64(api.DefaultFailureWindow + time.Second))
	if rep := r.post(t, map[string]any{"id_token": "not-a-token", "public_key": pub}); rep.status != http.StatusUnauthorized {
		t.Fatalf("next window: %d %s", rep.status, rep.raw)
	}
	if list := r.refusals(t); len(list) != budget+2 {
		t.Fatalf("%d refusals sealed after the window", len(list))
	}
}

// A provider's error may quote its answer, which the bastion puts in the
// refusal's reason: the record holds no control characters (which would
// act on the terminal of whoever reads it, or forge lines) and is short.
func TestAttackRefusalReasonFromProvider(t *testing.T) {
	t.Parallel()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\r\n{\"event\":\"cert_issued\",\"identity\":\"root\"}\x00\u202e%s", strings.Repeat("A", 100000))
	}))
	t.Cleanup(evil.Close)
	r := newRig(t, func(c *api.Config) {
		o, err := certs.NewOIDC(certs.OIDCConfig{Issuer: evil.URL, ClientID: c.ClientID})
		if err != nil {
			t.Fatal(err)
		}
		c.OIDC, c.Issuer = o, evil.URL
	})
	_, pub := pubKey(t)
	rep := r.post(t, map[string]any{"id_token": r.p.Token("alice@example.com"), "public_key": pub})
	if rep.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", rep.status, rep.raw)
	}
	list := r.refusals(t)
	if len(list) != 1 {
		t.Fatalf("refusals %+v", list)
	}
	reason := list[0].Reason
	for _, c := range reason {
		if unicode.IsControl(c) || unicode.Is(unicode.Cf, c) {
			t.Fatalf("reason holds control character %U: %q", c, reason)
		}
	}
	if len(reason) > 600 || !strings.Contains(reason, "500") {
		t.Fatalf("reason (%d bytes): %q", len(reason), reason)
	}
}

// A client holding connections open without finishing a request
// (slowloris) is refused connections past its share: each address (IPv6:
// each /64) may hold MaxConnsPerClient at once, so one host cannot hold
// the API, or the memory and descriptors the bastion's SSH side shares;
// other addresses are still served, and the address is again once it lets
// go.
func TestAttackSlowlorisConnectionCap(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil)
	a, err := api.New(api.Config{OIDC: mustOIDC(t, r), Authority: r.auth, Register: r.store,
		Issuer: r.p.URL, ClientID: r.p.ClientID, TTL: time.Hour, SSHPort: 2222})
	if err != nil {
		t.Fatal(err)
	}
	const perClient = 4
	srv, err := api.Listen(a, api.ServerConfig{Addr: "127.0.0.1:0", PlainHTTP: true, MaxConnsPerClient: perClient})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(t.Context()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	addr := srv.Addr().String()
	// perClient connections that send half a request line and stop.
	var held []net.Conn
	for range perClient {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
		held = append(held, c)
	}
	// One more from the same address is closed at once, not kept until
	// the header timeout.
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection %d from one address kept open: read %d, %v", perClient+1, n, err)
	}
	// Another address is served meanwhile.
	resp, err := fromAddr("127.0.0.9").Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("another address: %v %v", resp, err)
	}
	resp.Body.Close()
	// Once one held connection is closed, the address is served again.
	held[0].Close()
	testenv.WaitFor(t, 10*time.Second, func() bool {
		resp, err := fromAddr("127.0.0.1").Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func mustOIDC(t *testing.T, r *rig) *certs.OIDC {
	o, err := certs.NewOIDC(certs.OIDCConfig{Issuer: r.p.URL, ClientID: r.p.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	return o
}
