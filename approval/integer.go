package approval

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// A variable with bash's integer attribute (declare, typeset or local -i)
// evaluates every value assigned to it as an arithmetic expression, and
// a[$(cmd)] in that expression runs cmd; so do some of bash's own
// variables. The value may be assembled where the line shows no $( at
// all (printf 'a[\x24(cmd)]'), so a value that is not a literal number
// cannot be judged.

// arithVars are bash's variables that evaluate what is assigned to them
// as arithmetic (checked with bash 5.2.15 by assignment, +=, [0]=, (…),
// declare, export, read, printf -v, mapfile and for): OPTIND, RANDOM,
// SRANDOM and HISTCMD always, SECONDS and BASHPID in some of these forms,
// MAILCHECK in an interactive shell.
var arithVars = map[string]bool{
	"OPTIND": true, "RANDOM": true, "SRANDOM": true, "HISTCMD": true, "SECONDS": true, "BASHPID": true, "MAILCHECK": true,
}

// integers is what the line does with integer variables: collected from
// all its code, nested strings included, and checked at the end, since the
// order of the text is not the order things run in (functions, loops).
type integers struct {
	names map[string]bool     // declared with the integer attribute
	refs  map[string][]string // declare -n NAME=TARGET, and values assigned to a nameref
	nrefs map[string]bool     // declared as namerefs
	sets  []intSet
}

// intSet is a value assigned to a variable; known is false when the value
// is not a literal (an expansion, or input: read, mapfile).
type intSet struct {
	name, value string
	known       bool
}

// setVar records that name (a subscript cut off) is assigned value.
func (a *analyser) setVar(name string, value word) {
	if a.quiet > 0 {
		return
	}
	name, _, _ = strings.Cut(name, "[")
	a.ints.sets = append(a.ints.sets, intSet{name: name, value: value.text, known: value.known()})
}

// input is the value of a variable set from input or formatted output.
var input = word{text: "?"}

// declared records the attributes a declaration gives a name: flags are
// the declaration's options joined (-ia -g gives "-ia-g").
func (a *analyser) declared(flags, name string, value *word) {
	if a.quiet > 0 || name == "" {
		return
	}
	if a.ints.names == nil {
		a.ints.names, a.ints.refs, a.ints.nrefs = map[string]bool{}, map[string][]string{}, map[string]bool{}
	}
	if strings.Contains(flags, "i") {
		a.ints.names[name] = true
	}
	if strings.Contains(flags, "n") {
		a.ints.nrefs[name] = true
		if value != nil && value.known() {
			a.ints.refs[name] = append(a.ints.refs[name], value.text)
		}
	}
}

// declFlags returns the options of a declaration (words starting with '-'
// after quote removal), joined.
func (a *analyser) declFlags(args []*syntax.Assign) string {
	var b strings.Builder
	for _, as := range args {
		if as.Naked && as.Name == nil && as.Value != nil {
			if w := a.word(as.Value); w.known() && strings.HasPrefix(w.text, "-") {
				b.WriteString(w.text)
			}
		}
	}
	return b.String()
}

// declArgs records the names a declaration declares and the values it
// assigns. A quoted or escaped word is a name too ("x", 'x=1', x\=1:
// declare splits at the = itself); a non-literal one is held by decl.
func (a *analyser) declArgs(args []*syntax.Assign) {
	flags := a.declFlags(args)
	for _, as := range args {
		switch {
		case as.Name != nil:
			var v *word
			if as.Value != nil {
				w := a.value(as.Value)
				v = &w
			}
			a.declared(flags, as.Name.Value, v)
		case as.Naked && as.Value != nil:
			w := a.word(as.Value)
			if !w.known() || strings.HasPrefix(w.text, "-") || strings.HasPrefix(w.text, "+") {
				continue
			}
			name, val, ok := strings.Cut(w.text, "=")
			name = strings.TrimSuffix(name, "+")
			if !ok {
				a.declared(flags, name, nil)
				continue
			}
			v := word{text: val, lit: true}
			a.declared(flags, name, &v)
			a.setVar(name, v)
		}
	}
}

// declWords handles declare, typeset, local, export and readonly run as
// words (builtin declare -i x=…, command export OPTIND=…).
func (a *analyser) declWords(args []word) {
	flags := ""
	for _, w := range args {
		switch {
		case w.known() && (strings.HasPrefix(w.text, "-") || strings.HasPrefix(w.text, "+")):
			if w.text[0] == '-' {
				flags += w.text
			}
		case w.known():
			name, val, ok := strings.Cut(w.text, "=")
			value := &word{text: val, lit: true}
			if !ok {
				value = nil
			}
			a.declared(flags, strings.TrimSuffix(name, "+"), value)
			if ok {
				a.setVar(strings.TrimSuffix(name, "+"), *value)
			}
		case w.single && isAssignment(strings.Replace(w.text, "+=", "=", 1)):
			name, _, _ := strings.Cut(w.text, "=")
			a.declared(flags, strings.TrimSuffix(name, "+"), nil)
			a.setVar(strings.TrimSuffix(name, "+"), input)
		default:
			a.unjudged("non-literal word %s in a declaration", show(w.text))
		}
	}
}

// integer reports whether assigning to name evaluates the value as
// arithmetic: name is integer, one of arithVars, or a nameref that may
// lead to one.
func (a *analyser) integer(name string) bool {
	todo, seen := []string{name}, map[string]bool{}
	for len(todo) > 0 && len(seen) < 64 {
		n := todo[0]
		todo = todo[1:]
		if seen[n] {
			continue
		}
		seen[n] = true
		if arithVars[n] || a.ints.names[n] {
			return true
		}
		todo = append(todo, a.ints.refs[n]...)
	}
	return len(todo) > 0
}

// checkIntegers holds each value assigned to an integer variable that is
// not a literal number.
func (a *analyser) checkIntegers() {
	for _, s := range a.ints.sets {
		if s.known && a.ints.nrefs[s.name] {
			a.ints.refs[s.name] = append(a.ints.refs[s.name], s.value)
		}
	}
	held := map[string]bool{}
	for _, s := range a.ints.sets {
		if held[s.name] || s.known && arithConst(s.value) || !a.integer(s.name) {
			continue
		}
		held[s.name] = true
		a.unjudged("a value assigned to %s, which bash evaluates as arithmetic (a[$(cmd)] in it runs cmd)", show(s.name))
	}
}

// arithConst reports whether s, as an arithmetic expression, reads no
// variable: every run of letters, digits, _, @ and # starts with a digit
// (a number, 0x1f or 16#ff), and there is no $, ` or [.
func arithConst(s string) bool {
	if strings.ContainsAny(s, "$`[\\'\"") {
		return false
	}
	start := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		w := c == '_' || c == '@' || c == '#' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if w && start && !(c >= '0' && c <= '9') {
			return false
		}
		start = !w
	}
	return true
}

// assigned records the values of an assignment: x=v, x+=v, x[i]=v and
// each element of x=(…).
func (a *analyser) assigned(as *syntax.Assign) {
	if as.Name == nil {
		return
	}
	if as.Value != nil {
		a.setVar(as.Name.Value, a.value(as.Value))
	}
	if as.Array != nil {
		for _, e := range as.Array.Elems {
			if e.Value != nil {
				a.setVar(as.Name.Value, a.value(e.Value))
			}
		}
	}
}

// value returns w after quote removal; a word that is only $((…)) is a
// number whatever it computes (the arithmetic in it is judged as such).
func (a *analyser) value(w *syntax.Word) word {
	p := w.Parts
	if len(p) == 1 {
		if q, ok := p[0].(*syntax.DblQuoted); ok && !q.Dollar {
			p = q.Parts
		}
	}
	if len(p) == 1 {
		if _, ok := p[0].(*syntax.ArithmExp); ok {
			return word{text: "0", lit: true}
		}
	}
	return a.word(w)
}

// loopVar records the values a for or select loop assigns to its variable:
// each word, or the positional parameters.
func (a *analyser) loopVar(f *syntax.ForClause) {
	wi, ok := f.Loop.(*syntax.WordIter)
	if !ok || wi.Name == nil {
		return
	}
	if !wi.InPos.IsValid() {
		a.setVar(wi.Name.Value, input)
	}
	if f.Select {
		a.setVar("REPLY", input) // the line typed
	}
	for _, w := range wi.Items {
		a.setVar(wi.Name.Value, a.value(w))
	}
}

// inputVars records the variables that read, printf -v, mapfile,
// readarray and getopts set from input or output: their values are not
// known.
func (a *analyser) inputVars(name string, args []word) {
	var names []string
	switch name {
	case "read":
		opts, rest, _ := options(args, optSpec{short: "adinNptu"})
		names = append(texts(rest), "REPLY")
		if o := last(opts, "-a"); o != nil {
			names = append(names, o.val)
		}
	case "printf":
		if opts, _, _ := options(args, optSpec{short: "v"}); last(opts, "-v") != nil {
			names = append(names, last(opts, "-v").val)
		}
	case "mapfile", "readarray":
		_, rest, _ := options(args, optSpec{short: "dnOsuCc"})
		names = append(texts(rest), "MAPFILE")
	case "getopts":
		names = append(texts(skip(args, 1)), "OPTARG")
	}
	for _, n := range names {
		a.setVar(n, input)
	}
}
