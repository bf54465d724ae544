package approval

import (
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// This file holds the wrappers that run shell code given as a string
// (sh -c, eval, su -c, watch, trap, alias) or run other commands from
// their arguments (find -exec, flock).

// shell analyses a shell's command line. With -c (or +c, in any cluster)
// its first argument is shell code, analysed here. Without it the shell
// runs a script file or reads commands from stdin, which cannot be judged:
// the shell itself is the command (already recorded), and a here-document
// or here-string on its stdin is analysed as the code it is. An option
// that takes a value the analyser does not know ends the options early; so
// when options stood before the end and a later word is a cluster with c,
// the -c may have been missed, and the shell's code is unjudged.
func (a *analyser) shell(name string, args []word, st *syntax.Stmt, depth int) {
	if name == "fish" {
		a.fish(args, st, depth)
		return
	}
	opts, rest := a.options(name, args, shellSpec(name))
	if hasOpt(opts, "-c", "+c") || name == "yash" && slices.ContainsFunc(opts, yashCmdline) {
		if len(rest) > 0 {
			a.codeWord(rest[0], name+" -c", depth)
		}
		return
	}
	if len(rest) < len(args) && slices.ContainsFunc(rest, cCluster) {
		a.unjudged("%s with an option this analyser does not know before a -c", name)
		return
	}
	a.stdin(name, st, depth)
}

// shellSpec returns the options of a shell that take a value: always the
// next word, the cluster going on (bash -oc pipefail CODE).
func shellSpec(name string) optSpec {
	spec := optSpec{short: "o", plus: true, dashEnds: true, nextWord: true}
	switch name {
	case "bash", "rbash", "sh":
		spec.short, spec.long = "oO", []string{"--rcfile", "--init-file"}
	case "ksh", "mksh":
		spec.short = "oT"
	case "zsh":
		spec.long = []string{"--emulate"}
	case "yash":
		spec.long = []string{"--profile", "--rcfile"}
	}
	return spec
}

// yashCmdline reports whether o is yash's --cmdline (-c): its long option
// names may be abbreviated and only their letters and digits count, and
// -o takes them too.
func yashCmdline(o opt) bool {
	s := o.name
	if s == "-o" || s == "+o" {
		s = o.val
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return -1
	}, s)
	return len(s) >= 2 && strings.HasPrefix("cmdline", s)
}

// cCluster reports whether w is a cluster of short options with c in it.
func cCluster(w word) bool {
	s := w.text
	return len(s) > 1 && (s[0] == '-' || s[0] == '+') && s[1] != '-' && strings.Contains(s, "c")
}

// fishLong are fish's long options, and whether each takes a value; any
// unique prefix of one is that option (getopt_long).
var fishLong = map[string]bool{
	"--command": true, "--init-command": true, "--features": true, "--debug": true, "--debug-output": true,
	"--debug-stack-frames": true, "--profile": true, "--profile-startup": true, "--interactive": false,
	"--login": false, "--no-execute": false, "--print-rusage-self": false, "--print-debug-categories": false,
	"--private": false, "--help": false, "--version": false, "--no-config": false,
}

// fish analyses fish's command line (getopt_long "+hPilNnvc:C:p:d:f:D:o:"):
// the value of every -c and -C (--command, --init-command) is code, given
// attached or as the next word. Without -c fish reads a script or stdin.
func (a *analyser) fish(args []word, st *syntax.Stmt, depth int) {
	batch := false
	for i := 0; i < len(args); i++ {
		if !args[i].known() {
			a.unjudged("non-literal word %s after fish", show(args[i].text))
			return
		}
		s := args[i].text
		if s == "--" || len(s) < 2 || s[0] != '-' {
			break
		}
		var code, takes bool
		var val string
		if strings.HasPrefix(s, "--") {
			name, v, eq := strings.Cut(s, "=")
			full, ok := fishOption(name)
			if !ok {
				a.unjudged("fish option %s is unknown or ambiguous", show(name))
				return
			}
			code, val, takes = full == "--command" || full == "--init-command", v, fishLong[full] && !eq
			batch = batch || full == "--command"
		} else {
			j := strings.IndexAny(s[1:], "cCpdfDo") + 1
			if j == 0 {
				continue
			}
			code, val, takes = s[j] == 'c' || s[j] == 'C', s[j+1:], j+1 == len(s)
			batch = batch || s[j] == 'c'
		}
		if takes && i+1 < len(args) {
			i++
			if val = args[i].text; !args[i].known() && code {
				a.unjudged("non-literal shell code for fish: %s", show(val))
				return
			}
		}
		if code {
			a.source(val, depth+1, true)
		}
	}
	if !batch {
		a.stdin("fish", st, depth)
	}
}

// fishOption returns the fish long option that name is, or a unique
// prefix of.
func fishOption(name string) (string, bool) {
	if _, ok := fishLong[name]; ok {
		return name, true
	}
	found := ""
	for full := range fishLong {
		if strings.HasPrefix(full, name) {
			if found != "" {
				return "", false
			}
			found = full
		}
	}
	return found, found != ""
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
	opts, rest := a.options("watch", args, optSpec{short: "nqs", long: []string{"--interval", "--equexit"}})
	if hasOpt(opts, "-x", "--exec") || len(rest) == 0 {
		return rest, false
	}
	if !allKnown(rest) {
		a.unjudged("non-literal command for watch")
		return nil, false
	}
	a.source(strings.Join(texts(rest), " "), depth+1, true)
	return nil, false
}

// suOptions are the options of su, runuser and script; GNU getopt
// permutes them, so they may stand anywhere before --.
var suOptions = map[string]optSpec{
	"su": {short: "cgGsw", long: []string{"--command", "--session-command", "--group", "--supp-group", "--shell",
		"--whitelist-environment"}},
	"runuser": {short: "cgGswu", long: []string{"--command", "--session-command", "--group", "--supp-group", "--shell",
		"--whitelist-environment", "--user"}},
	"script": {short: "cEIOBTm", long: []string{"--command", "--echo", "--log-in", "--log-out", "--log-io",
		"--log-timing", "--logging-format", "--output-limit"}},
}

// su unwraps su and runuser: they run the user's shell with -c CODE (the
// last -c given wins, as in getopt) and the words after the user, so the
// command is sh with those; runuser -u USER without -c runs its words as
// the command. script -c CODE runs CODE.
func (a *analyser) su(name string, args []word, depth int) ([]word, bool) {
	opts, pos, bad := permuted(args, suOptions[name])
	if bad != nil {
		a.unjudged("non-literal word %s after %s", show(bad.text), name)
		return nil, false
	}
	code := last(opts, "-c", "--command", "--session-command")
	switch {
	case name == "script":
		if code != nil {
			a.codeWord(word{text: code.val, lit: code.known}, name+" -c", depth)
		}
		return nil, false
	case name == "runuser" && code == nil && hasOpt(opts, "-u", "--user"):
		return pos, false
	}
	for len(pos) > 0 && pos[0].text == "-" {
		pos = pos[1:] // su - USER: a login shell
	}
	// The user's shell runs as SHELL [-c CODE] WORDS…, so CODE may
	// itself be an option of the shell (su -c - root rm runs rm). -s
	// names the shell: su -s /bin/rm runs rm.
	sh := []word{{text: "sh", lit: true}}
	if o := last(opts, "-s", "--shell"); o != nil {
		sh[0] = word{text: o.val, lit: o.known, single: true}
	}
	if code != nil {
		sh = append(sh, word{text: "-c", lit: true}, word{text: code.val, lit: code.known, single: true})
	}
	if code == nil && len(pos) < 2 && sh[0].text == "sh" {
		return nil, false
	}
	return append(sh, skip(pos, 1)...), false
}

// permuted reads GNU getopt options that may stand anywhere before "--",
// and returns them and the other words. bad is a word that is not known
// where an option may stand, or an option's value that may split.
func permuted(args []word, spec optSpec) (opts []opt, pos []word, bad *word) {
	for i := 0; i < len(args); i++ {
		w := args[i]
		switch {
		case !w.known():
			return nil, nil, &args[i]
		case w.text == "--":
			return opts, append(pos, args[i+1:]...), nil
		case len(w.text) < 2 || w.text[0] != '-':
			pos = append(pos, w)
			continue
		}
		if i, bad = option(args, i, spec, &opts); bad != nil {
			return nil, nil, bad
		}
	}
	return opts, pos, nil
}

// flock FILE -c CODE runs CODE as shell code; flock FILE CMD runs CMD.
func (a *analyser) flock(args []word, depth int) ([]word, bool) {
	opts, rest := a.options("flock", args, optSpec{short: "wEc", long: []string{"--timeout", "--conflict-exit-code", "--command"}})
	if o := last(opts, "-c", "--command"); o != nil {
		a.codeWord(word{text: o.val, lit: o.known}, "flock -c", depth)
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
	if hasOpt(opts, "-p", "-l") || len(rest) < 2 || rest[0].known() && (rest[0].text == "-" || rest[0].text == "") {
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

// sg [-] GROUP [-c] CODE runs CODE as shell code (its words joined by
// spaces).
func (a *analyser) sg(args []word, depth int) {
	if len(args) > 0 && args[0].text == "-" {
		args = args[1:]
	}
	if len(args) < 2 {
		return
	}
	if rest := args[1:]; !args[0].one() || !allKnown(rest) {
		a.unjudged("non-literal word after sg")
	} else {
		if rest[0].text == "-c" {
			rest = rest[1:]
		}
		a.source(strings.Join(texts(rest), " "), depth+1, true)
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
	opts, _, bad := options(args, cb.spec)
	if bad != nil {
		a.unjudged("non-literal word %s after %s", show(bad.text), name)
	}
	for _, o := range opts {
		if o.name == "-W" && !o.known {
			// complete and compgen expand the word list, command
			// substitutions included.
			a.unjudged("%s -W with a non-literal word list", name)
		}
		if o.name != cb.option {
			continue
		}
		code := o.val
		if name == "bind" {
			_, code, _ = strings.Cut(code, ":")
		}
		a.codeWord(word{text: code, lit: o.known}, name+" "+cb.option, depth)
	}
}
