package listing

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/postern/postern/approval"
)

// Approvals writes requests as the table `approvals` prints: one line per
// request, newest last, with what is still needed. now is the time
// remaining deadlines are measured from. Every cell is made visible first.
func Approvals(w io.Writer, list []approval.Request, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tREQUESTER\tTARGET\tLOGIN\tRULE\tAPPROVED\tEXPIRES\tREQUEST")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", Visible(r.ID), Visible(r.State), Visible(r.Requester),
			Visible(r.Target), Visible(r.Login), Visible(r.Rule), approvedCount(r), r.Required, expiresIn(r, now), Clip(what(r), 60))
	}
	return tw.Flush()
}

// ApprovalJSON writes requests as `approvals --json` prints them.
func ApprovalJSON(w io.Writer, list []approval.Request) error {
	if list == nil {
		list = []approval.Request{}
	}
	return WriteJSON(w, list)
}

// Approval writes one request in full, as `show` prints it.
func Approval(w io.Writer, r approval.Request, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("request", Visible(r.ID))
	row("kind", Visible(r.Kind))
	row("state", Visible(r.State))
	row("requester", Visible(r.Requester))
	row("target", Visible(r.Target)+" as "+Visible(r.Login))
	if r.Session != "" {
		row("session", Visible(r.Session))
	}
	switch r.Kind {
	case approval.KindAccess:
		row("for", r.For.String())
	case approval.KindSQL:
		row("database", Visible(r.Database)+" as "+Visible(r.DBUser))
		row("statement", Visible(r.Line))
	default:
		row("command", Visible(r.Line))
	}
	if r.Why != "" {
		row("why held", Visible(r.Why))
	}
	if r.Reason != "" {
		row("reason", Visible(r.Reason))
	}
	row("rule", Visible(r.Rule))
	row("approvers", "group "+Visible(strings.Join(r.Approvers, " or "))+", "+strconv.Itoa(r.Required)+" needed")
	row("created", r.Created.UTC().Format(time.RFC3339))
	row("expires", r.Expires.UTC().Format(time.RFC3339)+" ("+expiresIn(r, now)+")")
	for _, d := range r.Decisions {
		verb := "denied"
		if d.Approve {
			verb = "approved"
		}
		line := verb + " by " + Visible(d.By) + " at " + d.At.UTC().Format(time.RFC3339)
		if d.Reason != "" {
			line += ": " + Visible(d.Reason)
		}
		row("decision", line)
	}
	if r.GrantUntil != nil {
		row("access until", r.GrantUntil.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// ApprovalChange is the one line `approvals --watch` prints for a change.
func ApprovalChange(c approval.Change, now time.Time) string {
	line := now.UTC().Format(time.TimeOnly) + " " + Visible(c.Event) + " " + Visible(c.Request.ID) + " " +
		Visible(c.Request.Requester) + " on " + Visible(c.Request.Target) + " (rule " + Visible(c.Request.Rule) + "): " + Clip(what(c.Request), 80)
	if d := c.Decision; d != nil {
		line += " — by " + Visible(d.By)
		if d.Reason != "" {
			line += ": " + Clip(d.Reason, 80)
		}
	}
	return line
}

func approvedCount(r approval.Request) int {
	n := 0
	for _, d := range r.Decisions {
		if d.Approve {
			n++
		}
	}
	return n
}

// what is what a request asks for: its command line, or access for a
// while.
func what(r approval.Request) string {
	switch r.Kind {
	case approval.KindAccess:
		return "access for " + r.For.String()
	case approval.KindSQL:
		return "sql " + r.Database + " as " + r.DBUser + ": " + r.Line
	}
	return r.Line
}

func expiresIn(r approval.Request, now time.Time) string {
	if r.State != approval.StatePending {
		return "-"
	}
	if d := r.Expires.Sub(now); d > 0 {
		return "in " + d.Round(time.Second).String()
	}
	return "now"
}
