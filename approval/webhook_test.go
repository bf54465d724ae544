package approval

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A new request is posted once, as JSON with a Slack-style text in which
// markup and control characters from the request are neutralised;
// decisions are not posted.
func TestWebhookPostsNewRequests(t *testing.T) {
	t.Parallel()
	got := make(chan map[string]any, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &m) != nil {
			t.Errorf("bad post: %s %s", r.Header.Get("Content-Type"), body)
		}
		got <- m
	}))
	defer srv.Close()
	// The post's timeout is no part of what is checked: 10 s, which a
	// loopback post on a loaded machine does not reach (1 s could).
	wh := NewWebhook(srv.URL, 10*time.Second, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wh.Run(ctx) }()

	f := newFixture(t)
	f.b.cfg.Audit = func(_ context.Context, c Change) error { wh.Notify(c); return nil }
	r, err := f.b.Submit(context.Background(), Request{Kind: KindCommand, Requester: "alice", Target: "db01", Login: "root",
		Line: "rm -rf <!channel> \x1b[2J", Reason: "ticket & co", Rule: "rm", Approvers: []string{"ops"}, Expires: f.clock.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.Decide(context.Background(), r.ID, Approver{Name: "bob", Groups: []string{"ops"}}, true, ""); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	select {
	case m = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("nothing was posted")
	}
	text, _ := m["text"].(string)
	req, _ := m["request"].(map[string]any)
	if req["id"] != r.ID || !strings.Contains(text, "alice asks to run `rm -rf &lt;!channel&gt; ?[2J` on db01 as root (rule rm, request "+r.ID+", reason: ticket &amp; co)") {
		t.Fatalf("posted %q %v", text, req)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		t.Fatalf("a decision was posted too: %v", m)
	default:
	}
}

// Notify never blocks: past the queue, requests are dropped.
func TestWebhookNotifyNeverBlocks(t *testing.T) {
	t.Parallel()
	wh := NewWebhook("http://127.0.0.1:1/", time.Second, nil) // never run
	for i := range webhookQueue + 10 {
		wh.Notify(Change{Event: "requested", Request: Request{ID: string(rune('a' + i%26))}})
	}
	if len(wh.queue) != webhookQueue {
		t.Fatalf("queue holds %d", len(wh.queue))
	}
}
