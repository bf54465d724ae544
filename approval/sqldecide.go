package approval

import "slices"

// DecideSQL decides a SQL text (a simple Query's, or the text of a
// prepared statement an Execute runs) that s sends through a postgres
// forward. Only SQL rules (Match.SQL set) judge it. Each of the text's
// commands (SQLCommands) gets the first SQL rule in scope with a pattern
// that matches it; a command that cannot be judged gets the first rule
// with the pattern "*", else the first approve rule, else the first deny
// rule in scope: it fails closed. The text gets the most restrictive
// action of its commands, as a command line does; Allow when no SQL rule
// is in scope or none matched.
func (p *Policy) DecideSQL(s *Subject, text string) Verdict {
	return p.decideSQL(s, SQLCommands(text))
}

// DecideSQLPrepared decides text as DecideSQL does, together with the
// prepared statements its EXECUTEs run (SQLExecutes) whose texts prepared
// returns (ok false for a name it does not know): the most restrictive
// verdict of them all.
func (p *Policy) DecideSQLPrepared(s *Subject, text string, prepared func(name string) (string, bool)) Verdict {
	v := p.DecideSQL(s, text)
	for _, name := range SQLExecutes(text) {
		if t, ok := prepared(name); ok {
			if w := p.DecideSQL(s, t); w.Action > v.Action {
				w.Commands = append(v.Commands, w.Commands...)
				v = w
			} else {
				v.Commands = append(v.Commands, w.Commands...)
			}
		}
	}
	return v
}

// DecideSQLUnjudged decides a request whose SQL cannot be read, for why (a
// phrase: "a fast-path function call"), as DecideSQL decides a command
// that cannot be judged.
func (p *Policy) DecideSQLUnjudged(s *Subject, why string) Verdict {
	return p.decideSQL(s, []Command{{Unjudged: why}})
}

// JudgesSQL reports whether a statement s sends could be held or refused:
// some SQL rule in scope approves or denies. When none does, statements
// need not be read.
func (p *Policy) JudgesSQL(s *Subject) bool {
	if p == nil {
		return false
	}
	if s == nil {
		s = &Subject{}
	}
	for i := range p.Rules {
		if r := &p.Rules[i]; len(r.Match.SQL) > 0 && r.Access != AccessRequest && r.action() != Allow && r.Scope.In(s) {
			return true
		}
	}
	return false
}

func (p *Policy) decideSQL(s *Subject, cmds []Command) Verdict {
	return p.decideBy(s, cmds, sqlRules, "no statements")
}

// sqlRules judge SQL: a command that cannot be judged gets the first rule
// with the pattern "*", as DecideSQL says.
var sqlRules = ruleKind{
	judges: func(r *Rule) bool { return len(r.Match.SQL) > 0 },
	matches: func(r *Rule, c *Command) bool {
		text := c.Text()
		return slices.ContainsFunc(r.Match.SQL, func(p string) bool { return sqlMatch(p, text) })
	},
	all: func(r *Rule) bool { return slices.Contains(r.Match.SQL, "*") },
}
