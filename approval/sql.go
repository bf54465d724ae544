package approval

import (
	"slices"
	"strings"
)

// SQL statements, as the approval rules see them. A simple Query's text
// may hold several statements; each is split into the commands that may
// run: the statement itself, and every statement it carries inside it
// (see SQLCommands). A rule's sql patterns match a command's normalised
// text.

// maxSQLCommands and maxSQLTokens cap the commands one text is split
// into and their tokens (a statement inside another is also a part of
// it): past them, the text cannot be judged.
const (
	maxSQLCommands = 1000
	maxSQLTokens   = 1 << 20
)

// sqlSplit gathers the commands of a text.
type sqlSplit struct {
	out    []Command
	tokens int
}

// full reports whether the caps are reached.
func (sp *sqlSplit) full() bool { return len(sp.out) > maxSQLCommands || sp.tokens > maxSQLTokens }

// sqlStatementWords start a statement that may run inside another (in
// parentheses, after WITH, EXPLAIN, PREPARE … AS, CREATE RULE … DO).
var sqlStatementWords = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "WITH", "VALUES", "TABLE"}

// SQLCommands returns the commands of text (a simple Query's text, or a
// prepared statement's), as the SQL rules see them: for each statement,
// the statement itself and every statement inside it, each with its
// normalised text (Command.Text: keywords and unquoted identifiers in
// upper case, quoted identifiers without their quotes, comments dropped,
// tokens separated by single spaces). What cannot be judged (an
// unterminated literal or comment, a DO block, whose code is not read) is
// a Command with Unjudged set.
func SQLCommands(text string) []Command {
	stmts, backslash, bad := lexSQL(text, false)
	if bad != "" {
		return []Command{{Unjudged: bad}}
	}
	sp := &sqlSplit{}
	for _, st := range stmts {
		sp.statement(st)
	}
	if backslash {
		// A '…' literal with a backslash ends elsewhere when the session
		// has standard_conforming_strings off: read both ways.
		stmts, _, bad := lexSQL(text, true)
		if bad != "" {
			return append(sp.out, Command{Unjudged: "a string literal whose end depends on standard_conforming_strings"})
		}
		for _, st := range stmts {
			sp.statement(st)
		}
	}
	if sp.full() {
		return []Command{{Unjudged: "a text with more statements than can be judged"}}
	}
	return sp.out
}

// statement adds the commands of one statement's tokens.
func (sp *sqlSplit) statement(toks []sqlToken) {
	for len(toks) > 0 && toks[0].kind == 'p' && toks[0].text == "(" {
		toks = toks[1:] // (SELECT …) UNION …: the statement inside
	}
	if len(toks) == 0 || sp.full() {
		return
	}
	sp.tokens += len(toks)
	sp.out = append(sp.out, sqlCommand(toks))
	first := toks[0]
	switch {
	case first.kind != 'w':
	case first.text == "DO":
		sp.out[len(sp.out)-1] = Command{Unjudged: "a DO block (its code is not read)"}
	case createsRoutine(toks):
		// Its body runs when it is called, as whatever statements it
		// holds: it is not read, as a DO block's code is not.
		sp.out[len(sp.out)-1] = Command{Unjudged: "a function or procedure's body (its code is not read)"}
	case first.text == "DECLARE":
		// A cursor's query runs at FETCH: judged here.
		if i := wordAt(toks, "FOR", 0); i > 0 {
			sp.statement(toks[i+1:])
		}
	case first.text == "EXPLAIN":
		sp.statement(explained(toks[1:]))
	case first.text == "PREPARE":
		if i := wordAt(toks, "AS", 0); i > 0 {
			sp.statement(toks[i+1:])
		}
	case first.text == "CREATE" && wordAt(toks, "RULE", 0) > 0:
		if i := wordAt(toks, "DO", 0); i > 0 {
			rest := toks[i+1:]
			if len(rest) > 0 && rest[0].kind == 'w' && (rest[0].text == "ALSO" || rest[0].text == "INSTEAD") {
				rest = rest[1:]
			}
			sp.statement(rest)
		}
	case first.text == "WITH":
		// The main statement follows the WITH list: any statement word
		// outside parentheses may start it (a CTE may be named delete).
		for i, depth := 1, 0; i < len(toks); i++ {
			depth = nest(toks[i], depth)
			if depth == 0 && isStatementWord(toks[i]) {
				sp.statement(toks[i:])
			}
		}
	}
	sp.inner(toks)
}

// inner adds the statements in parentheses within toks: (DELETE …
// RETURNING …) in a WITH list, COPY (…) TO, a subquery.
func (sp *sqlSplit) inner(toks []sqlToken) {
	for i := 0; i+1 < len(toks); i++ {
		if toks[i].kind != 'p' || toks[i].text != "(" || !isStatementWord(toks[i+1]) {
			continue
		}
		end, depth := len(toks), 1
		for j := i + 1; j < len(toks); j++ {
			if depth = nest(toks[j], depth); depth == 0 {
				end = j
				break
			}
		}
		// Its own inner statements are found by statement.
		sp.statement(toks[i+1 : end])
		i = end
	}
}

// createsRoutine reports whether toks create a function or procedure:
// CREATE [OR REPLACE] FUNCTION|PROCEDURE.
func createsRoutine(toks []sqlToken) bool {
	w := make([]string, 0, 4)
	for _, t := range toks[:min(len(toks), 4)] {
		w = append(w, t.text)
		if t.kind != 'w' {
			break
		}
	}
	if len(w) < 2 || w[0] != "CREATE" {
		return false
	}
	if len(w) == 4 && w[1] == "OR" && w[2] == "REPLACE" {
		w = w[2:]
	}
	return w[1] == "FUNCTION" || w[1] == "PROCEDURE"
}

// nest returns the parenthesis depth after t.
func nest(t sqlToken, depth int) int {
	if t.kind == 'p' {
		switch t.text {
		case "(":
			return depth + 1
		case ")":
			return max(depth-1, 0)
		}
	}
	return depth
}

func isStatementWord(t sqlToken) bool {
	return t.kind == 'w' && slices.Contains(sqlStatementWords, t.text)
}

// explained skips EXPLAIN's options: what follows is the statement it
// explains (and, with ANALYZE, runs).
func explained(toks []sqlToken) []sqlToken {
	if len(toks) > 0 && toks[0].kind == 'p' && toks[0].text == "(" {
		depth := 0
		for i, t := range toks {
			if depth = nest(t, depth); depth == 0 {
				return toks[i+1:]
			}
		}
		return nil
	}
	for len(toks) > 0 && toks[0].kind == 'w' && slices.Contains([]string{"ANALYZE", "ANALYSE", "VERBOSE"}, toks[0].text) {
		toks = toks[1:]
	}
	return toks
}

// wordAt returns the index of the first word w outside parentheses from
// toks[from:], or -1.
func wordAt(toks []sqlToken, w string, from int) int {
	depth := 0
	for i := from; i < len(toks); i++ {
		if depth = nest(toks[i], depth); depth == 0 && toks[i].kind == 'w' && toks[i].text == w {
			return i
		}
	}
	return -1
}

// sqlCommand makes a Command of a statement's tokens: its first token is
// the Name, the others the Args.
func sqlCommand(toks []sqlToken) Command {
	c := Command{Name: toks[0].text, ArgsKnown: true}
	c.Args = make([]string, 0, len(toks)-1)
	for _, t := range toks[1:] {
		c.Args = append(c.Args, t.text)
	}
	return c
}

// NormaliseSQL returns the commands of text as the SQL rules see them, one
// per line; an unjudged part reads "? " and the reason.
func NormaliseSQL(text string) string {
	var b strings.Builder
	for _, c := range SQLCommands(text) {
		if c.Unjudged != "" {
			b.WriteString("? " + c.Unjudged + "\n")
			continue
		}
		b.WriteString(c.Text() + "\n")
	}
	return b.String()
}

// sqlMatch reports whether pattern matches a command's normalised text:
// case-insensitively, * matching any run of characters, the pattern
// covering the whole text or its first words (DROP matches DROP TABLE x).
func sqlMatch(pattern, text string) bool {
	p, t := strings.ToUpper(pattern), strings.ToUpper(text)
	return glob(p, t) || glob(p+" *", t)
}

// glob matches p, whose only special character is *, against all of s.
func glob(p, s string) bool {
	// Iterative, with one backtrack point: linear in practice, never
	// exponential.
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi, mark = star+1, mark+1
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
