package approval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Webhook posts each new request to a URL (a Slack incoming webhook, or
// anything that takes JSON): {"text": "…", "request": {…}}. It never slows
// the Broker: Notify queues, and Run posts from the queue until its context
// ends. A full queue, or a post that fails, is logged and dropped; the
// request itself waits in the Broker either way. The zero value is not
// usable; use NewWebhook.
type Webhook struct {
	url    string
	client *http.Client
	queue  chan Request
	log    *slog.Logger
}

// webhookQueue bounds the requests waiting to be posted.
const webhookQueue = 64

// NewWebhook returns a Webhook posting to url, each post bounded by
// timeout (zero: 10 s). log (nil discards) gets the failures.
func NewWebhook(url string, timeout time.Duration, log *slog.Logger) *Webhook {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Webhook{url: url, client: &http.Client{Timeout: timeout}, queue: make(chan Request, webhookQueue), log: log}
}

// Notify queues c's request if c is a new one. Safe for concurrent use.
func (w *Webhook) Notify(c Change) {
	if c.Event != "requested" {
		return
	}
	select {
	case w.queue <- c.Request.clone():
	default:
		w.log.Warn("approval webhook queue full: request not posted", "request", c.Request.ID)
	}
}

// Run posts queued requests until ctx ends.
func (w *Webhook) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-w.queue:
			if err := w.post(ctx, r); err != nil {
				w.log.Warn("approval webhook post failed", "request", r.ID, "err", err)
			}
		}
	}
}

func (w *Webhook) post(ctx context.Context, r Request) error {
	body, err := json.Marshal(struct {
		Text    string  `json:"text"`
		Request Request `json:"request"`
	}{webhookText(r), r})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", w.url, resp.Status)
	}
	return nil
}

// webhookText is the message's text, with what Slack treats as markup in
// the request's fields escaped (&, <, >: <!channel> would notify everyone)
// and control characters replaced.
func webhookText(r Request) string {
	what := "run `" + r.Line + "`"
	switch r.Kind {
	case KindAccess:
		what = "access for " + r.For.String()
	case KindSQL:
		what = "run `" + r.Line + "` in database " + r.Database + " as " + r.DBUser
	}
	s := fmt.Sprintf("postern: %s asks to %s on %s as %s (rule %s, request %s", r.Requester, what, r.Target, r.Login, r.Rule, r.ID)
	if r.Reason != "" {
		s += ", reason: " + r.Reason
	}
	s += "). Decide with: ssh postern@BASTION approve " + r.ID + " (or deny " + r.ID + " --reason …)"
	s = strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0 {
			return '?'
		}
		return c
	}, s)
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
