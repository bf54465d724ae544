package approval

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// This file holds the wrappers that run shell code given as a string
// (sh -c, eval, su -c, watch, trap, alias) or run other commands from
// their arguments (find -exec, flock).

// shell analyses a shell's command line. With -c its first argument is
// shell code, analysed here. Without it the shell runs a script file or
// reads commands from stdin, which cannot be judged: the shell itself is
// the command (already recorded), and a here-document or here-string on
// its stdin is analysed as the code it is.
func (a *analyser) shell(name string, args []word, st *syntax.Stmt, depth int) {
	opts, rest := a.options(name, args, optSpec{short: "oO", long: []string{"--rcfile", "--init-file"}, plus: true})
	if hasAny(opts, "-c", "--command") {
		if len(rest) > 0 {
			a.codeWord(rest[0], name+" -c", depth)
		}
		return
	}
	a.stdin(name, st, depth)
}

// stdin analyses a here-document or here-string on the standard input of
// a shell, or of source and . (source /dev/stdin <<< CODE), as shell code.
func (a *analyser) stdin(name string, st *syntax.Stmt, depth int) {
	if st == nil {
		return
	}
	for _, r := range st.Redirs {
		if r.N != nil && r.N.Value != "0" {
			continue
		}
		switch {
		case (r.Op == syntax.Hdoc || r.Op == syntax.DashHdoc) && r.Hdoc != nil:
			a.code[r.Hdoc] = true
			w := a.word(r.Hdoc)
			w.pattern = false // a here-document is not globbed
			a.codeWord(w, name+" <<", depth)
		case r.Op == syntax.WordHdoc && r.Word != nil:
			a.code[r.Word] = true
			a.codeWord(a.word(r.Word), name+" <<<", depth)
		}
	}
}

// find records the commands of -exec, -execdir, -ok and -okdir. A
// non-literal argument could be -exec when it runs, so it is unjudged.
func (a *analyser) find(args []word, st *syntax.Stmt, depth int) {
	for i := 0; i < len(args); i++ {
		if !args[i].known() {
			a.unjudged("non-literal find argument %s", show(args[i].text))
			return
		}
		switch args[i].text {
		case "-exec", "-execdir", "-ok", "-okdir":
		default:
			continue
		}
		j := i + 1
		for j < len(args) && args[j].text != ";" && args[j].text != "+" {
			j++
		}
		a.call(args[i+1:j], st, depth, true)
		i = j
	}
}

// watch runs its arguments joined by spaces as shell code, or with -x
// (--exec) as a command.
func (a *analyser) watch(args []word, depth int) ([]word, bool) {
	opts, rest := a.options("watch", args, optSpec{short: "nqs", long: []string{"--interval"}})
	if hasAny(opts, "-x", "--exec") || len(rest) == 0 {
		return rest, false
	}
	if !allKnown(rest) {
		a.unjudged("non-literal command for watch")
		return nil, false
	}
	a.source(strings.Join(texts(rest), " "), depth+1, true)
	return nil, false
}

// su analyses the -c (--command) code of su, runuser and script, wherever
// it stands (GNU getopt permutes their arguments). runuser -u USER without
// -c runs the command after its options. Without either they start a
// shell; the command recorded is su, runuser or script itself.
func (a *analyser) su(name string, args []word, depth int) ([]word, bool) {
	for i := 0; i < len(args); i++ {
		s := args[i].text
		var code *word
		switch {
		case !args[i].known():
			// Could be -c when it runs.
			a.unjudged("non-literal word %s after %s", show(s), name)
			return nil, false
		case s == "-c" || s == "--command" || s == "--session-command":
			if i+1 < len(args) {
				code = &args[i+1]
			}
		case strings.HasPrefix(s, "--command=") || strings.HasPrefix(s, "--session-command="):
			_, v, _ := strings.Cut(s, "=")
			code = &word{text: v, lit: true}
		case len(s) > 2 && s[0] == '-' && s[1] != '-':
			code = clusterC(s, args, i)
		}
		if code != nil {
			a.codeWord(*code, name+" -c", depth)
			return nil, false
		}
	}
	if name == "runuser" {
		if opts, rest := a.options(name, args, optSpec{short: "ugGsw", long: []string{"--user", "--group", "--supp-group", "--shell"}}); hasAny(opts, "-u", "--user") {
			return rest, false
		}
	}
	return nil, false
}

// clusterC returns the value of -c in the short option cluster args[i]
// (su -lc 'cmd'), or nil. Options that take a value end the cluster.
func clusterC(s string, args []word, i int) *word {
	for j := 1; j < len(s); j++ {
		switch {
		case strings.IndexByte("gGsuwEIOBTm", s[j]) >= 0:
			return nil
		case s[j] == 'c' && j+1 < len(s):
			return &word{text: s[j+1:], lit: true}
		case s[j] == 'c' && i+1 < len(args):
			return &args[i+1]
		}
	}
	return nil
}

// flock FILE -c CODE runs CODE as shell code; flock FILE CMD runs CMD.
func (a *analyser) flock(args []word, depth int) ([]word, bool) {
	opts, rest := a.options("flock", args, optSpec{short: "wEc", long: []string{"--timeout", "--conflict-exit-code", "--command"}})
	if code, ok := has(opts, "-c", "--command"); ok {
		a.source(code, depth+1, true)
		return nil, false
	}
	if len(rest) >= 3 && (rest[1].text == "-c" || rest[1].text == "--command") {
		a.codeWord(rest[2], "flock -c", depth)
		return nil, false
	}
	return a.skip("flock", rest, 1), false
}

// eval runs its arguments joined by spaces as shell code.
func (a *analyser) eval(args []word, depth int) {
	if len(args) > 0 && args[0].text == "--" {
		args = args[1:]
	}
	if !allKnown(args) {
		a.unjudged("non-literal eval argument")
		return
	}
	a.source(strings.Join(texts(args), " "), depth+1, true)
}

// trap CODE SIGNAL… runs CODE later.
func (a *analyser) trap(args []word, depth int) {
	opts, rest := a.options("trap", args, optSpec{})
	if hasAny(opts, "-p", "-l") || len(rest) < 2 || rest[0].known() && (rest[0].text == "-" || rest[0].text == "") {
		return
	}
	a.codeWord(rest[0], "trap", depth)
}

// alias NAME=VALUE makes NAME run VALUE as shell code.
func (a *analyser) alias(args []word, depth int) {
	for _, w := range args {
		if !w.known() {
			a.unjudged("non-literal alias %s", show(w.text))
			continue
		}
		if _, v, ok := strings.Cut(w.text, "="); ok {
			a.source(v, depth+1, true)
		}
	}
}

// sg GROUP [-c] CODE runs CODE as shell code.
func (a *analyser) sg(args []word, depth int) {
	if len(args) > 1 && args[1].text == "-c" {
		args = args[1:]
	}
	if len(args) > 1 {
		a.codeWord(args[1], "sg", depth)
	}
}

// hash -p PATH NAME makes NAME run PATH: PATH's base name is recorded as a
// command (its arguments come later).
func (a *analyser) hash(args []word) {
	opts, _ := a.options("hash", args, optSpec{short: "pt"})
	if path, ok := has(opts, "-p"); ok {
		if base := baseName(path); base != "" && !strings.ContainsAny(path, "$`*?[{~") {
			a.add(Command{Name: base})
		} else {
			a.unjudged("hash -p %s", show(path))
		}
	}
}

// callbacks are builtins with an option whose value is shell code run
// later: mapfile -C CODE, complete -C CODE, bind -x 'KEYS: CODE'.
var callbacks = map[string]struct {
	spec   optSpec
	option string
}{
	"mapfile":   {optSpec{short: "dnOsuCc"}, "-C"},
	"readarray": {optSpec{short: "dnOsuCc"}, "-C"},
	"complete":  {optSpec{short: "oAGWFCXPS"}, "-C"},
	"compgen":   {optSpec{short: "oAGWFCXPS"}, "-C"},
	"bind":      {optSpec{short: "mfqurx"}, "-x"},
}

// callback analyses the shell code of a callbacks option.
func (a *analyser) callback(name string, args []word, depth int) {
	cb := callbacks[name]
	opts, _, _ := options(args, cb.spec)
	for _, o := range opts {
		if o.name != cb.option {
			continue
		}
		code := o.val
		if name == "bind" {
			_, code, _ = strings.Cut(code, ":")
		}
		if strings.ContainsAny(code, "$`") {
			a.unjudged("%s %s with expansions: %s", name, cb.option, show(code))
			continue
		}
		a.source(code, depth+1, true)
	}
}
