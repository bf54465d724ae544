package approval

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"mvdan.cc/sh/v3/syntax"
)

// Bounds on the work one line may cause. Past them the line is not judged:
// a command says why, and Decide holds it like any command it cannot judge.
const (
	MaxLine     = 64 << 10 // bytes in a line
	maxDepth    = 8        // strings parsed as shell inside strings (sh -c "sh -c '…'")
	maxCommands = 1024     // commands found in one line
	maxParsed   = 1 << 20  // bytes parsed in all, counting nested strings
	maxShown    = 80       // bytes of a word quoted in a reason
)

// Command is one simple command found on a line, after quote removal and
// after unwrapping wrappers (see the package documentation).
type Command struct {
	// Name is the base name of the command (rm for '/bin/r'm), or "" when
	// Unjudged is set.
	Name string
	// Args are the arguments after quote removal; a word with an
	// expansion ($x, $(…), globs) is kept as written.
	Args []string
	// ArgsKnown is false when an argument has an expansion, or when more
	// arguments are added when it runs (xargs, find -exec).
	ArgsKnown bool
	// Unjudged says why this part of the line cannot be judged (a
	// non-literal command name, a line that does not parse, …); "" when
	// Name is set.
	Unjudged string
	// Rule is the name of the rule Decide matched to the command, "" when
	// none did; Action is that rule's action, Allow when none did.
	Rule   string
	Action Action
}

// Text is the command's normalised text: the name and the arguments joined
// by single spaces. An unjudged command's text is "".
func (c *Command) Text() string {
	if c.Name == "" {
		return ""
	}
	if len(c.Args) == 0 {
		return c.Name
	}
	return c.Name + " " + strings.Join(c.Args, " ")
}

// Normalise returns the commands of line, one normalised text per line, as
// Decide sees them; an unjudged part reads "? " and the reason.
func Normalise(line string) string {
	var b strings.Builder
	for i, c := range Commands(line) {
		if i > 0 {
			b.WriteByte('\n')
		}
		if c.Unjudged != "" {
			b.WriteString("? " + c.Unjudged)
		} else {
			b.WriteString(c.Text())
		}
	}
	return b.String()
}

// Commands returns the commands of line in the order found: each command
// before the commands in its arguments, a wrapper before what it runs.
func Commands(line string) []Command {
	a := &analyser{budget: maxParsed, code: map[*syntax.Word]bool{}, printer: syntax.NewPrinter(syntax.SingleLine(true))}
	if len(line) > MaxLine {
		a.unjudged("line too long (%d bytes; at most %d are judged)", len(line), MaxLine)
		return a.cmds
	}
	if strings.IndexByte(line, 0) >= 0 {
		// bash -c stops at a NUL and readline does not insert one;
		// the parser would read on.
		a.unjudged("a NUL byte in the line")
	}
	if historyExpansion(line) {
		a.unjudged("history expansion (a ! that interactive bash replaces with an earlier line)")
	}
	if strings.HasPrefix(line, "^") {
		// Bash's quick substitution (^old^new) reruns the last line.
		a.unjudged("history substitution (a line starting with ^)")
	}
	a.source(line, 0, true)
	a.checkIntegers()
	return a.cmds
}

// analyser collects the commands of one line. It is used once.
type analyser struct {
	cmds    []Command
	budget  int                   // bytes that may still be parsed
	full    bool                  // maxCommands reached: stop
	code    map[*syntax.Word]bool // words already analysed as shell code
	quiet   int                   // > 0 inside a string that only looks like code
	printer *syntax.Printer
	ints    integers // integer variables and what is assigned to them
}

// add records c, unless the line already has too many commands.
func (a *analyser) add(c Command) {
	if a.full {
		return
	}
	if len(a.cmds) == maxCommands {
		a.full = true
		c = Command{Unjudged: fmt.Sprintf("more than %d commands", maxCommands)}
	}
	a.cmds = append(a.cmds, c)
}

// unjudged records a part of the line that cannot be judged. Inside a
// string that only looks like code it records nothing: the string is text
// unless it is run later, and running it is judged then ($x, eval "$x").
func (a *analyser) unjudged(format string, args ...any) {
	if a.quiet == 0 {
		a.add(Command{Unjudged: fmt.Sprintf(format, args...)})
	}
}

// source analyses src as shell code at nesting depth. strict says whether
// a parse error makes the code unjudged (the line, sh -c strings) or is
// ignored (a quoted string that merely looks like code).
func (a *analyser) source(src string, depth int, strict bool) (parsed bool) {
	switch {
	case a.full:
		return true
	case depth > maxDepth:
		a.unjudged("shell code nested more than %d deep", maxDepth)
		return true
	case len(src) > a.budget:
		a.unjudged("too much nested shell code to judge")
		return true
	}
	a.budget -= len(src)
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(src), "")
	switch {
	case err == nil:
	case !strict:
		return false
	case syntax.IsIncomplete(err):
		a.unjudged("unfinished line (%s): an open quote, a continuation or a missing keyword", show(err.Error()))
		return true
	default:
		a.unjudged("does not parse as shell: %s", show(err.Error()))
		return true
	}
	a.arithmetic(f)
	syntax.Walk(f, func(n syntax.Node) bool {
		if a.full {
			return false
		}
		switch n := n.(type) {
		case *syntax.Stmt:
			if c, ok := n.Cmd.(*syntax.CallExpr); ok {
				a.assigns(c.Assigns, depth)
				a.call(a.words(c.Args), n, depth, false)
			}
		case *syntax.DeclClause:
			a.decl(n, depth)
		case *syntax.LetClause:
			a.add(Command{Name: "let"})
		case *syntax.ForClause:
			a.loopVar(n)
		case *syntax.UnaryTest:
			if w, ok := n.X.(*syntax.Word); ok && (n.Op == syntax.TsVarSet || n.Op == syntax.TsRefVar) && !a.word(w).known() {
				a.unjudged("[[ -v ]] with a non-literal variable name %s", show(a.word(w).text))
			}
		case *syntax.ParamExp:
			a.paramExp(n)
		case *syntax.Word:
			a.embedded(n, depth)
		case *syntax.Lit:
			if continued(n.Value) {
				a.unjudged("unfinished line (a continuation: it ends in a backslash)")
			}
		}
		return true
	})
	return true
}

// paramExp holds expansions that run what a variable holds: ${!r}
// expands the variable r names, subscript (evaluated as arithmetic)
// included; ${x@P} expands x as a prompt, command substitutions included.
func (a *analyser) paramExp(p *syntax.ParamExp) {
	if p.Param == nil {
		return
	}
	if p.Excl && p.Names == 0 && !keys(p) {
		a.unjudged("indirect expansion %s", show("${!"+p.Param.Value+"}"))
	}
	if p.Exp != nil && (p.Exp.Op == syntax.AssignUnset || p.Exp.Op == syntax.AssignUnsetOrNull) {
		v := word{lit: true}
		if p.Exp.Word != nil {
			v = a.word(p.Exp.Word)
		}
		a.setVar(p.Param.Value, v) // ${x:=v}
	}
	if p.Exp != nil && p.Exp.Op == syntax.OtherParamOps && p.Exp.Word != nil && strings.Contains(p.Exp.Word.Lit(), "P") {
		a.unjudged("prompt expansion %s", show("${"+p.Param.Value+"@P}"))
	}
}

// keys reports whether p is ${!a[@]} or ${!a[*]}: the keys of an array.
func keys(p *syntax.ParamExp) bool {
	w, ok := p.Index.(*syntax.Word)
	return ok && (w.Lit() == "@" || w.Lit() == "*")
}

// continued reports whether an unquoted literal ends in a backslash that
// escapes nothing: the end of the line, which the shell continues on the
// next.
// Unfinished reports whether a shell reading line would ask for more
// before it runs anything: an open quote or construct, a trailing
// backslash or operator (&&, |), an unterminated here-document.
func Unfinished(line string) bool {
	// The Enter that ends the line is a newline: after it, a
	// here-document's body starts.
	parse := func(src string) (*syntax.File, error) {
		return syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(src), "")
	}
	if _, err := parse(line + "\n"); err != nil {
		return syntax.IsIncomplete(err)
	}
	f, err := parse(line)
	if err != nil {
		return false
	}
	// A word that ends in an odd backslash (not one in a comment).
	more := false
	syntax.Walk(f, func(n syntax.Node) bool {
		if l, ok := n.(*syntax.Lit); ok && continued(l.Value) {
			more = true
		}
		return !more
	})
	return more
}

func continued(lit string) bool {
	n := len(lit) - len(strings.TrimRight(lit, `\`))
	return n%2 == 1
}

// decl records declare, export, local, readonly, typeset and nameref as
// commands of that name.
func (a *analyser) decl(d *syntax.DeclClause, depth int) {
	c := Command{Name: d.Variant.Value, ArgsKnown: true}
	for _, as := range d.Args {
		var b strings.Builder
		if err := a.printer.Print(&b, as); err != nil {
			c.ArgsKnown = false
		}
		if as.Value != nil && !a.word(as.Value).lit || as.Array != nil || as.Index != nil {
			c.ArgsKnown = false
		}
		c.Args = append(c.Args, b.String())
	}
	a.add(c)
	a.declArgs(d.Args)
	a.assigns(d.Args, depth)
	for _, as := range d.Args {
		// declare "$n=1" sets the variable $n names, and declare -n
		// r=$x makes r a name for whatever $x names: a subscript in
		// the name is evaluated as arithmetic.
		if as.Naked && as.Value != nil && !a.word(as.Value).known() {
			a.unjudged("%s with a non-literal variable name", d.Variant.Value)
			return
		}
	}
	if !c.ArgsKnown && strings.Contains(a.declFlags(d.Args), "n") {
		a.unjudged("%s -n with a non-literal name", d.Variant.Value)
	}
}

// codeVars are variables whose value bash runs as shell code.
// BASH_CMDS and BASH_ALIASES are bash's command hash and aliases: a value
// there is the path or the code that a name runs, analysed as code.
var codeVars = map[string]bool{"PROMPT_COMMAND": true, "BASH_CMDS": true, "BASH_ALIASES": true}

// promptVars are variables whose value bash expands as a prompt, command
// substitutions included; a literal value is checked by embedded.
var promptVars = map[string]bool{"PS0": true, "PS1": true, "PS2": true, "PS3": true, "PS4": true}

// assigns analyses the values of assignments to codeVars, and holds a
// non-literal value for promptVars.
func (a *analyser) assigns(as []*syntax.Assign, depth int) {
	for _, as := range as {
		a.assigned(as)
		if as.Name != nil && promptVars[as.Name.Value] && as.Value != nil && !a.word(as.Value).known() {
			a.unjudged("%s set to a non-literal value: it is expanded as a prompt", as.Name.Value)
		}
		if as.Name == nil || !codeVars[as.Name.Value] {
			continue
		}
		if as.Array != nil {
			for _, e := range as.Array.Elems {
				if e.Value != nil {
					a.code[e.Value] = true
					a.codeWord(a.word(e.Value), as.Name.Value, depth)
				}
			}
		}
		if as.Value != nil {
			a.code[as.Value] = true
			a.codeWord(a.word(as.Value), as.Name.Value, depth)
		}
	}
}

// codeWord analyses w as shell code run by what.
func (a *analyser) codeWord(w word, what string, depth int) {
	if !w.known() {
		a.unjudged("non-literal shell code for %s: %s", what, show(w.text))
		return
	}
	a.source(w.text, depth+1, true)
}

// embedded analyses a quoted string that holds command substitution syntax
// as shell code: it may be run later (eval "$x", arithmetic on a[$(…)],
// PS1), and holding it is cheaper than missing it. Parse errors are
// ignored: such a string is most likely text.
func (a *analyser) embedded(w *syntax.Word, depth int) {
	if a.code[w] {
		return
	}
	var b strings.Builder
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			var shape strings.Builder
			unescape(p.Value, &b, &shape)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				if l, ok := q.(*syntax.Lit); ok {
					b.WriteString(unescapeDouble(l.Value))
				}
			}
		}
		b.WriteByte(' ')
	}
	s := b.String()
	if !strings.Contains(s, "$(") && !strings.Contains(s, "`") {
		return
	}
	a.quiet++
	defer func() { a.quiet-- }()
	if a.source(s, depth+1, false) {
		return
	}
	// Not code as a whole (a[$(cmd)] is an arithmetic subscript): try
	// from each substitution on.
	for range maxEmbedded {
		i := strings.IndexAny(s, "$`")
		if i < 0 {
			return
		}
		if s[i] == '`' || strings.HasPrefix(s[i:], "$(") {
			a.source(s[i:], depth+1, false)
		}
		s = s[i+1:]
	}
}

// maxEmbedded bounds the substitutions tried in a string that is not code
// as a whole.
const maxEmbedded = 8

// historyExpansion reports whether interactive bash would expand a '!' in
// line from its history before parsing it (!!, !-2, !rm, !#): what runs
// is then not what was typed. It scans as bash's history expansion does:
// single quotes (outside double quotes) and backslashes protect; a '!'
// before a blank, '=' or '(', at the end, before '"' inside double quotes,
// or in $! and ${!x} is not expanded.
func historyExpansion(line string) bool {
	double := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\':
			i++
		case c == '\'' && !double:
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return false
			}
			i += j + 1
		case c == '"':
			double = !double
		case c == '!' && i+1 < len(line):
			next := line[i+1]
			switch {
			case strings.IndexByte(" \t\r\n=(", next) >= 0, double && next == '"':
			case i > 0 && line[i-1] == '$', i > 1 && line[i-2:i] == "${":
			default:
				return true
			}
		}
	}
	return false
}

// show quotes s for a reason: control and invisible characters escaped,
// cut to maxShown bytes.
func show(s string) string {
	cut := len(s) > maxShown
	if cut {
		s = strings.ToValidUTF8(s[:maxShown], "")
	}
	var b strings.Builder
	b.WriteByte('`')
	for _, r := range s {
		switch {
		case r == '`':
			b.WriteString(`\x60`)
		case unicode.IsGraphic(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	b.WriteByte('`')
	if cut {
		b.WriteString("…")
	}
	return b.String()
}
