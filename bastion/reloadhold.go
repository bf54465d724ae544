package bastion

import (
	"reflect"
	"regexp"
	"slices"

	"github.com/postern/postern/approval"
)

// Approvals across a reload: a request records the rule that asked for it
// (name, approver groups, how many), and an approver of that rule may
// decide it after a reload replaced it. An approval counts only if the
// approval rules in force when it arrives are those it was asked under
// (sameApprovalRules): otherwise the held command or statement does not
// run, and the user is told to run it again, to be judged, and held if
// need be, under the rules in force. An access grant counts only for the
// access rule in force with the approvers and count it was approved
// under (grantStands).

// voidedApproval is what the requester is told when an approval arrived
// after a reload replaced the rules it was asked under.
func voidedApproval(id, what string) string {
	return "postern: request " + id + " was approved under approval rules a policy change replaced; the " + what +
		" did not run: run it again to ask under the rules in force"
}

// sameApprovalRules reports whether a and b are the same rules, field by
// field.
func sameApprovalRules(a, b *approval.Policy) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || len(a.Rules) != len(b.Rules) {
		return false
	}
	for i := range a.Rules {
		x, y := a.Rules[i], b.Rules[i]
		if reString(x.Match.Args) != reString(y.Match.Args) || reString(x.Match.Regex) != reString(y.Match.Regex) {
			return false
		}
		x.Match.Args, x.Match.Regex, y.Match.Args, y.Match.Regex = nil, nil, nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// reString is the source of re, "" for nil, with a mark that tells a
// nil regexp from an empty one.
func reString(re *regexp.Regexp) string {
	if re == nil {
		return ""
	}
	return "re:" + re.String()
}

// grantStands reports whether access grant g was approved as rule r, in
// force now, asks: by its approver groups, as many approvers as it needs.
func grantStands(g approval.Request, r *approval.Rule) bool {
	a, b := slices.Clone(g.Approvers), slices.Clone(r.Approvers)
	slices.Sort(a)
	slices.Sort(b)
	return g.Rule == r.Name && slices.Equal(a, b) && g.Required >= r.Approvals()
}

// judgedNow says what r's approval rules judge of sub's connection that
// was's did not, or "". A shell started when no rule judged its lines
// has no line tracker, and a postgres forward opened when no SQL rule
// applied has no judge: rules that now would must end the connection.
func judgedNow(was, r *Rules, sub *approval.Subject) string {
	var old *approval.Policy
	if was != nil {
		old = was.ApprovalRules
	}
	switch {
	case !old.Judges(sub) && r.ApprovalRules.Judges(sub):
		return "approval rules now judge what is typed"
	case !old.JudgesSQL(sub) && r.ApprovalRules.JudgesSQL(sub):
		return "approval rules now judge SQL statements"
	}
	return ""
}
