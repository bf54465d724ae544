package approval

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// maxWrappers bounds how many wrappers one command may be wrapped in.
const maxWrappers = 32

// call records the simple command ws (with the redirections of st), then
// what each wrapper in it runs: sudo rm x is the commands sudo and rm.
// partial says that arguments are added when it runs.
func (a *analyser) call(ws []word, st *syntax.Stmt, depth int, partial bool) {
	for range maxWrappers {
		if len(ws) == 0 || a.full {
			return
		}
		if !ws[0].known() {
			a.unjudged("non-literal command name %s", show(ws[0].text))
			return
		}
		name := baseName(ws[0].text)
		if name == "" {
			a.unjudged("command name %s is a directory", show(ws[0].text))
			return
		}
		a.add(Command{Name: name, Args: texts(ws[1:]), ArgsKnown: !partial && allKnown(ws[1:])})
		inner, more := a.inner(name, ws[1:], st, depth)
		ws, partial = inner, partial || more
	}
	if len(ws) > 0 {
		a.unjudged("more than %d wrappers", maxWrappers)
	}
}

// shells run their -c string, a script file, or commands read on stdin.
var shells = map[string]bool{
	"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true,
	"rbash": true, "yash": true, "posh": true, "fish": true, "csh": true, "tcsh": true,
}

// plain are wrappers that run the command after their options and a fixed
// number of other words. stop lists options with which they run no
// command.
var plain = map[string]struct {
	spec optSpec
	skip int
	stop []string
}{
	"command":   {stop: []string{"-v", "-V"}}, // -v and -V only say what a name is
	"--":        {},                           // time -- CMD: the keyword takes -- too
	"builtin":   {},
	"busybox":   {},
	"nohup":     {},
	"setsid":    {},
	"unbuffer":  {},
	"catchsegv": {},
	"exec":      {spec: optSpec{short: "a"}},
	"nice":      {spec: optSpec{short: "n", long: []string{"--adjustment"}, digits: true}},
	"timeout":   {spec: optSpec{short: "sk", long: []string{"--signal", "--kill-after"}}, skip: 1},
	"time":      {spec: optSpec{short: "fo", long: []string{"--format", "--output"}}},
	"stdbuf":    {spec: optSpec{short: "ioe", long: []string{"--input", "--output", "--error"}}},
	"ionice": {spec: optSpec{short: "cnpPu", long: []string{"--class", "--classdata", "--pid", "--pgid", "--uid"}},
		stop: []string{"-p", "-P", "-u", "--pid", "--pgid", "--uid"}},
	"taskset": {spec: optSpec{}, skip: 1, stop: []string{"-p", "--pid"}},
	"chrt":    {spec: optSpec{short: "TPD", long: []string{"--sched-runtime", "--sched-period", "--sched-deadline"}}, skip: 1, stop: []string{"-p", "--pid"}},
	"pkexec":  {spec: optSpec{long: []string{"--user"}}},
}

// inner returns the command that the command name (with args) runs in
// turn, if it is a wrapper, and whether arguments are added to it when it
// runs. Wrappers that run a string as shell code analyse it here and
// return nothing.
func (a *analyser) inner(name string, args []word, st *syntax.Stmt, depth int) ([]word, bool) {
	if shells[name] {
		a.shell(name, args, st, depth)
		return nil, false
	}
	if w, ok := plain[name]; ok {
		opts, rest := a.options(name, args, w.spec)
		if hasOpt(opts, w.stop...) {
			return nil, false
		}
		return a.skip(name, rest, w.skip), false
	}
	switch name {
	case "sudo", "doas":
		return a.sudo(name, args, depth)
	case "env":
		return a.env(args, depth)
	case "chroot":
		_, rest := a.options(name, args, optSpec{long: []string{"--userspec", "--groups"}})
		return orShell(a.skip(name, rest, 0), 1), false
	case "xargs":
		return a.xargs(args)
	case "find":
		a.find(args, st, depth)
	case "watch":
		return a.watch(args, depth)
	case "su", "runuser", "script":
		return a.su(name, args, depth)
	case "sg":
		a.sg(args, depth)
	case "flock":
		return a.flock(args, depth)
	case "eval":
		a.eval(args, depth)
	case "trap":
		a.trap(args, depth)
	case "alias":
		a.alias(args, depth)
	case "hash":
		a.hash(args)
	case "mapfile", "readarray", "complete", "compgen", "bind":
		a.callback(name, args, depth)
		a.inputVars(name, args)
	case "read", "printf", "unset", "test", "[":
		a.varNames(name, args)
		a.inputVars(name, args)
	case "getopts":
		a.inputVars(name, args)
	case "declare", "typeset", "local", "export", "readonly":
		a.declWords(args)
	case "source", ".":
		a.stdin(name, st, depth)
	case "fc":
		if opts, _ := a.options(name, args, optSpec{short: "e"}); !hasOpt(opts, "-l") {
			a.unjudged("fc reruns earlier lines, which cannot be judged here")
		}
	}
	return nil, false
}

// options is the package function options; a word that cannot be judged
// where an option or the command stands makes the rest unjudged.
func (a *analyser) options(name string, args []word, spec optSpec) ([]opt, []word) {
	opts, rest, bad := options(args, spec)
	if bad != nil {
		a.unjudged("non-literal word %s after %s", show(bad.text), name)
		return opts, nil
	}
	return opts, rest
}

func hasOpt(opts []opt, names ...string) bool {
	_, ok := has(opts, names...)
	return ok
}

// skip returns ws without its first n words (timeout's duration). The
// words after them keep their places only if each stays one word, so
// otherwise the command is unjudged and skip returns nil.
func (a *analyser) skip(name string, ws []word, n int) []word {
	for _, w := range ws[:min(n+1, len(ws))] {
		if !w.one() {
			a.unjudged("non-literal word %s after %s", show(w.text), name)
			return nil
		}
	}
	return skip(ws, n)
}

// skip returns ws without its first n words.
func skip(ws []word, n int) []word {
	if len(ws) < n {
		return nil
	}
	return ws[n:]
}

// orShell returns ws after its first n words, or the command sh when
// nothing follows them (chroot DIR starts a shell).
func orShell(ws []word, n int) []word {
	if len(ws) > n {
		return ws[n:]
	}
	if len(ws) == n {
		return []word{{text: "sh", lit: true}}
	}
	return nil
}

// sudo unwraps sudo and doas. sudo -h takes an attached host (-hHOST) or
// the next word as the host unless it starts with '-' (parse_args in
// sudo's source); -h alone is help. -s and -i (doas -s) with no command
// start a shell: the command sh. -e (sudoedit) edits files: the command sudoedit.
// Other option-only forms (-l, -v, -k) run nothing.
func (a *analyser) sudo(name string, args []word, depth int) ([]word, bool) {
	spec := optSpec{short: "CDgpRrtTUuc", long: []string{"--close-from", "--chdir", "--group", "--prompt",
		"--chroot", "--role", "--type", "--command-timeout", "--other-user", "--user", "--login-class", "--host"},
		unlessDash: "h"}
	if name == "doas" {
		spec = optSpec{short: "auC"}
	}
	opts, rest := a.options(name, args, spec)
	rest = a.vars(rest, depth) // sudo VAR=value cmd
	switch {
	case hasOpt(opts, "-e", "--edit"):
		return []word{{text: "sudoedit", lit: true}}, false
	case len(rest) > 0:
		return rest, false
	case hasOpt(opts, "-s", "-i", "--shell", "--login"):
		return []word{{text: "sh", lit: true}}, false
	}
	return nil, false
}

// vars returns ws after the variables that env or sudo set before their
// command. A variable that bash imports as a function (BASH_FUNC_ls%%=,
// or a value starting with "()") is analysed as that function's code.
func (a *analyser) vars(ws []word, depth int) []word {
	for len(ws) > 0 && setsVar(ws[0]) {
		name, val, _ := strings.Cut(ws[0].text, "=")
		if strings.HasPrefix(name, "BASH_FUNC_") || strings.HasPrefix(strings.TrimLeft(val, " \t"), "(") {
			if ws[0].known() {
				a.source("f"+val, depth+1, true)
			} else {
				a.unjudged("non-literal exported function %s", show(ws[0].text))
			}
		}
		ws = ws[1:]
	}
	return ws
}

// setsVar reports whether env or sudo take w, before their command, as a
// variable to set: any word with a '=' after its first character (GNU env
// sets even -x=1), or a non-literal word that starts with a literal NAME=
// that stays one word (A="$x"), whatever it expands to.
func setsVar(w word) bool {
	if w.known() {
		return strings.IndexByte(w.text, '=') > 0
	}
	return w.single && isAssignment(w.text)
}

// isAssignment reports whether s is NAME=value.
func isAssignment(s string) bool {
	name, _, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return false
	}
	for i, c := range name {
		if c != '_' && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// env unwraps env: options, NAME=value words, then the command. The value
// of -S (--split-string) is split into words that take its place, options
// included, as GNU env does.
func (a *analyser) env(args []word, depth int) ([]word, bool) {
	spec := optSpec{short: "uCSP", long: []string{"--unset", "--chdir", "--split-string"}, split: []string{"-S", "--split-string"}}
	for range maxSplits {
		opts, rest := a.options("env", args, spec)
		s, split := has(opts, spec.split...)
		if !split {
			return a.vars(rest, depth), false
		}
		words, ok := splitString(s)
		if !ok {
			a.unjudged("env -S string %s with a $ or an open quote", show(s))
			return nil, false
		}
		args = append(words, rest...)
	}
	a.unjudged("env -S more than %d times", maxSplits)
	return nil, false
}

// maxSplits bounds the env -S strings split for one command.
const maxSplits = 8

// splitString splits an env -S string into words as GNU env does: at
// unquoted blanks, with '…' and "…" quoting; \_ is a blank (a space
// inside quotes), \c ends the string. It refuses what it does not model: a
// $ (env expands ${VAR}), a # starting a word (a comment), an unknown
// escape, an open quote.
func splitString(s string) ([]word, bool) {
	var words []word
	var b strings.Builder
	in, quote := false, byte(0)
	end := func() {
		if in {
			words = append(words, word{text: b.String(), lit: true})
			b.Reset()
		}
		in = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '$' && quote != '\'', c == '#' && !in:
			return nil, false
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '\'' || c == '"'):
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; {
			case e == 'c' && quote == 0:
				end()
				return words, true
			case e == '_' && quote == 0:
				end()
			case e == '_':
				b.WriteByte(' ')
			case strings.IndexByte(`\'"$# `, e) >= 0:
				b.WriteByte(e)
				in = true
			default:
				return nil, false
			}
		case c == '\\':
			return nil, false
		case quote == 0 && strings.IndexByte(" \t\n\v\f\r", c) >= 0:
			end()
		default:
			b.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, false
	}
	end()
	return words, true
}

// xargs unwraps xargs; its command gets arguments from its input, echo by
// default.
func (a *analyser) xargs(args []word) ([]word, bool) {
	_, rest := a.options("xargs", args, optSpec{short: "adEILnPs", optional: "eil",
		long: []string{"--arg-file", "--delimiter", "--max-args", "--max-procs", "--max-chars", "--process-slot-var"}})
	if len(rest) == 0 && allKnown(args) {
		return []word{{text: "echo", lit: true}}, true
	}
	return rest, true
}
