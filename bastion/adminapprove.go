package bastion

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/internal/listing"
)

// The approval commands of the admin connection. Who sees a request: its
// requester, the members of its approver groups, and the bastion's admins;
// to anyone else it does not exist (the same answer as an unknown ID, so
// IDs cannot be probed). Who decides: the Broker's rules (never the
// requester, only the rule's groups, distinct people for a two-person
// rule).

// addApprovalCommands adds the approval commands to adminCommands (from
// its init, which makes the map).
func addApprovalCommands() {
	for name, cmd := range map[string]adminCommand{
		"approvals": {usage: "approvals [--all] [--json] [--watch]", summary: "list the approval requests you may decide or made (--all: decided ones too)", run: runApprovals},
		"show":      {usage: "show ID [--json]", summary: "show an approval request in full", run: runShowRequest},
		"approve":   {usage: "approve ID [--reason TEXT...]", summary: "approve a request (the words after --reason are the reason)", run: runDecide(true)},
		"deny":      {usage: "deny ID --reason TEXT...", summary: "deny a request, saying why", run: runDecide(false)},
		"request":   {usage: "request TARGET [--login L] --for 1h --reason TEXT...", summary: "ask for just-in-time access to a target", run: runRequestAccess},
	} {
		adminCommands[name] = cmd
	}
}

// broker returns the bastion's approval broker, or why there is none.
func (x *adminExec) broker() (*approval.Broker, error) {
	if b := x.c.s.cfg.Approvals; b != nil {
		return b, nil
	}
	return nil, errors.New("this bastion holds nothing for approval (no approval rules are configured)")
}

// approver is the connection's identity as the Broker sees a decider.
func (x *adminExec) approver() approval.Approver {
	id := x.c.identity
	return approval.Approver{Name: id.Name(), Principals: id.Principals, Groups: id.Groups}
}

// maySee reports whether x's identity may see r.
func (x *adminExec) maySee(r approval.Request) bool {
	id := x.c.identity
	return x.admin || id.Name() == r.Requester || hasCommon(id.Principals, r.RequesterPrincipals) || hasCommon(id.Groups, r.Approvers)
}

func hasCommon(a, b []string) bool {
	return slices.ContainsFunc(a, func(s string) bool { return slices.Contains(b, s) })
}

// request looks up the request an argument names, as x's identity may see
// it.
func (x *adminExec) request(b *approval.Broker, id string) (approval.Request, error) {
	if !approval.ValidID(id) {
		return approval.Request{}, usagef("%s: %q is not a request ID (10 characters, as approvals lists them)", x.name, shown(id))
	}
	r, err := b.Get(x.ctx, id)
	if errors.Is(err, approval.ErrNotFound) || err == nil && !x.maySee(r) {
		return approval.Request{}, &refusedError{msg: "no request " + id + " that you may see", reason: "unknown request"}
	}
	return r, err
}

func runApprovals(x *adminExec, args []string) error {
	fs := x.flags()
	all := fs.Bool("all", false, "")
	asJSON := fs.Bool("json", false, "")
	watch := fs.Bool("watch", false, "")
	if err := x.parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	b, err := x.broker()
	if err != nil {
		return err
	}
	// Subscribe before listing, so that no change falls between the two.
	var changes <-chan approval.Change
	if *watch {
		var stop func()
		changes, stop = b.Subscribe()
		defer stop()
	}
	list := slices.DeleteFunc(b.List(x.ctx, *all), func(r approval.Request) bool { return !x.maySee(r) })
	switch {
	case *asJSON && !*watch:
		return listing.ApprovalJSON(x.stdout, list)
	case !*asJSON:
		if err := listing.Approvals(x.stdout, list, time.Now()); err != nil || !*watch {
			return err
		}
	}
	return x.watch(changes, *asJSON)
}

// watch prints each change x's identity may see, one line (or one JSON
// document) each, until the client leaves or the bastion drains: then
// it shows the drain's notice on stderr and ends, so that the drain need
// not wait for its deadline.
func (x *adminExec) watch(changes <-chan approval.Change, asJSON bool) error {
	for {
		select {
		case <-x.ctx.Done():
			return nil
		case <-x.c.s.drained.done():
			fmt.Fprintln(x.stderr, *x.c.s.drain.Load())
			return nil
		case c, ok := <-changes:
			if !ok {
				return errors.New("--watch fell behind the changes; run it again")
			}
			// Admin rights as in force now: a reload may have
			// removed them since the command started.
			x.admin = x.c.s.isAdmin(x.c.identity)
			if !x.maySee(c.Request) {
				continue
			}
			var err error
			if asJSON {
				err = listing.WriteJSON(x.stdout, c)
			} else {
				_, err = fmt.Fprintln(x.stdout, listing.ApprovalChange(c, time.Now()))
			}
			if err != nil {
				return nil // the client went away
			}
		}
	}
}

func runShowRequest(x *adminExec, args []string) error {
	fs := x.flags()
	asJSON := fs.Bool("json", false, "")
	id, rest := splitID(args)
	if err := x.parse(fs, rest); err != nil {
		return ignoreHelp(err)
	}
	b, err := x.broker()
	if err != nil {
		return err
	}
	r, err := x.request(b, id)
	if err != nil {
		return err
	}
	if *asJSON {
		return listing.WriteJSON(x.stdout, r)
	}
	return listing.Approval(x.stdout, r, time.Now())
}

// splitID takes the request ID from the front of args, before any flags.
func splitID(args []string) (id string, rest []string) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", args
	}
	return args[0], args[1:]
}

// runDecide returns approve's (yes) or deny's run. The reason is every
// word after --reason: the admin connection splits its line at spaces, so
// quotes would not keep a reason together.
func runDecide(yes bool) func(*adminExec, []string) error {
	return func(x *adminExec, args []string) error {
		if slices.Contains(args, "--help") || slices.Contains(args, "-h") {
			fmt.Fprintf(x.stdout, "usage: ssh %s@bastion %s\n", AdminUser, adminCommands[x.name].usage)
			return nil
		}
		id, rest := splitID(args)
		reason := ""
		if len(rest) > 0 {
			if rest[0] != "--reason" && !strings.HasPrefix(rest[0], "--reason=") {
				return usagef("%s: unexpected argument %q; usage: %s", x.name, shown(rest[0]), adminCommands[x.name].usage)
			}
			reason = strings.TrimPrefix(strings.TrimPrefix(strings.Join(rest, " "), "--reason"), "=")
			reason = logSafe(strings.TrimSpace(reason))
		}
		switch {
		case id == "":
			return usagef("%s: give the request ID; usage: %s", x.name, adminCommands[x.name].usage)
		case !yes && reason == "":
			return usagef("deny: say why with --reason; the requester is shown it")
		}
		b, err := x.broker()
		if err != nil {
			return err
		}
		if _, err := x.request(b, id); err != nil {
			return err
		}
		r, err := b.Decide(x.ctx, id, x.approver(), yes, reason)
		var re *approval.RefusedError
		switch {
		case errors.As(err, &re):
			return &refusedError{msg: shown(re.UserMessage()), reason: "decision refused"}
		case err != nil:
			x.c.log.Error("approval decision not saved", "request", id, "err", err)
			return errors.New("the decision could not be saved; nothing was decided (see the bastion's log)")
		}
		switch r.State {
		case approval.StatePending:
			fmt.Fprintf(x.stdout, "approved request %s (%d of %d approvals); it waits for another approver\n", r.ID, len(r.Decisions), r.Required)
		default:
			fmt.Fprintf(x.stdout, "request %s %s\n", r.ID, r.State)
		}
		return nil
	}
}
