package approval

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// word is a shell word after quote removal.
type word struct {
	// text is the word after quote removal when lit, else as written.
	text string
	// lit is true when the word has no expansion: no parameter,
	// command, arithmetic or process substitution, no $'…' escape, no
	// $"…" translation, no extended glob.
	lit bool
	// pattern is true when an unquoted part would still change: a glob
	// (* ? [), a brace expansion ({a,b}) or a leading tilde.
	pattern bool
	// single is true when the word surely stays one word: no pattern, no
	// expansion outside double quotes (word splitting), no "$@".
	single bool
}

// known reports whether the word is exactly its text when the shell runs.
func (w word) known() bool { return w.lit && !w.pattern }

// one reports whether the word surely stays one word when the shell runs;
// only then do the words after it keep their places.
func (w word) one() bool { return w.known() || w.single }

// words returns ws after quote removal.
func (a *analyser) words(ws []*syntax.Word) []word {
	out := make([]word, len(ws))
	for i, w := range ws {
		out[i] = a.word(w)
	}
	return out
}

// word returns w after quote removal, or as written when it has an
// expansion.
func (a *analyser) word(w *syntax.Word) word {
	var b, shape strings.Builder // shape: unquoted characters, others as 0
	out := word{lit: true}
	split := false // an expansion outside double quotes, or "$@"
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			unescape(p.Value, &b, &shape)
		case *syntax.SglQuoted:
			// $'…' decodes escapes (\x72 is r); without one it
			// is plain text.
			if p.Dollar && strings.Contains(p.Value, `\`) {
				out.lit = false
			}
			b.WriteString(p.Value)
			shape.WriteByte(0)
		case *syntax.DblQuoted:
			if p.Dollar { // $"…" may be translated
				out.lit = false
			}
			for _, q := range p.Parts {
				if l, ok := q.(*syntax.Lit); ok {
					b.WriteString(unescapeDouble(l.Value))
				} else {
					out.lit = false
					split = split || a.print(q, "@") // "$@", "${a[@]}"
				}
			}
			shape.WriteByte(0)
		default:
			out.lit, split = false, true
		}
	}
	if !out.lit {
		var s strings.Builder
		if a.printer.Print(&s, w) != nil {
			return word{text: "?"}
		}
		return word{text: s.String(), single: !split && !pattern(shape.String(), "")}
	}
	out.text = b.String()
	out.pattern = pattern(shape.String(), out.text)
	return out
}

// print reports whether node, as written, holds sub.
func (a *analyser) print(node syntax.Node, sub string) bool {
	var s strings.Builder
	return a.printer.Print(&s, node) != nil || strings.Contains(s.String(), sub)
}

// pattern reports whether a word with these unquoted characters (shape)
// and this text would still change: a glob (* ? or [ with a later ]), a
// brace expansion ({a,b} or {1..3}), a leading tilde, or a leading = (zsh).
func pattern(shape, text string) bool {
	// zsh expands =cmd to the path of cmd: =rm runs rm.
	if strings.ContainsAny(shape, "*?") || strings.HasPrefix(shape, "~") || strings.HasPrefix(shape, "=") {
		return true
	}
	if i := strings.IndexByte(shape, '['); i >= 0 && (strings.IndexByte(shape[i:], ']') > 0 || strings.IndexByte(text, ']') > 0) {
		return true
	}
	if i := strings.IndexByte(shape, '{'); i >= 0 {
		rest := shape[i:]
		return strings.Contains(rest, "}") && (strings.Contains(rest, ",") || strings.Contains(rest, ".."))
	}
	return false
}

// unescape writes an unquoted literal to b after quote removal (\x is x, a
// backslash-newline is nothing) and its unquoted characters to shape,
// escaped ones as 0.
func unescape(s string, b, shape *strings.Builder) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			if s[i] != '\n' {
				b.WriteByte(s[i])
				shape.WriteByte(0)
			}
		case c == '\\':
			// A trailing backslash: the line goes on (see continued).
		default:
			b.WriteByte(c)
			shape.WriteByte(c)
		}
	}
}

// unescapeDouble removes the backslashes that double quotes remove: before
// $ ` " \ and newline.
func unescapeDouble(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
			i++
			if s[i] != '\n' {
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// texts returns the text of each word.
func texts(ws []word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.text
	}
	return out
}

// allKnown reports whether every word is known.
func allKnown(ws []word) bool {
	for _, w := range ws {
		if !w.known() {
			return false
		}
	}
	return true
}

// baseName returns the part of a command name after the last slash.
func baseName(s string) string {
	return s[strings.LastIndexByte(s, '/')+1:]
}

// opt is one option of a wrapper's command line: "-u" or "--user", and
// its value if it takes one; known is false when the value was a word that
// is not known.
type opt struct {
	name, val string
	known     bool
}

// optSpec describes a wrapper's options, getopt style: options end at "--"
// or at the first word that does not start with '-'.
type optSpec struct {
	short    string   // short options that take a value (attached or next word)
	optional string   // short options whose value can only be attached (xargs -i)
	long     []string // long options that take a value (after = or as next word)
	digits   bool     // -N is an option (nice -5)
	plus     bool     // +o is an option too (shells)
	dashEnds bool     // a lone - ends the options, like -- (shells)
	split    []string // options after which parsing stops (env -S: its value is parsed first)
	// nextWord: a value of short is always the next word, and the
	// cluster goes on (bash -oc pipefail CODE: -o, then -c).
	nextWord bool
	// unlessDash are short options whose value is attached, or the next
	// word unless that starts with '-' (sudo -h HOST, -hHOST; -h alone
	// is help).
	unlessDash string
}

// options splits args into the wrapper's options and the rest. bad is set
// when a word where an option or the command may stand is not known, or
// an option's value may become several words: then the command cannot be
// found.
func options(args []word, spec optSpec) (opts []opt, rest []word, bad *word) {
	i := 0
	for ; i < len(args); i++ {
		w := args[i]
		if !w.known() && w.single && isAssignment(w.text) {
			break // env A="$x": an assignment whatever $x holds
		}
		if !w.known() {
			return opts, args[i:], &args[i]
		}
		s := w.text
		if s == "--" || spec.dashEnds && s == "-" {
			i++
			break
		}
		if len(s) < 2 || s[0] != '-' && !(spec.plus && s[0] == '+') {
			break
		}
		if i, bad = option(args, i, spec, &opts); bad != nil {
			return opts, args[i:], bad
		}
		if contains(spec.split, opts[len(opts)-1].name) {
			return opts, args[i+1:], nil
		}
	}
	return opts, args[i:], nil
}

// option reads the option word args[i] (a long option, or a cluster of
// short ones) and its value into opts, and returns the index of the last
// word it used; bad is a value that may become several words.
func option(args []word, i int, spec optSpec, opts *[]opt) (int, *word) {
	s := args[i].text
	switch {
	case strings.HasPrefix(s, "--"):
		name, val, eq := strings.Cut(s, "=")
		o := opt{name: name, val: val, known: true}
		if !eq && contains(spec.long, name) && i+1 < len(args) {
			i++
			o.val, o.known = args[i].text, args[i].known()
		}
		*opts = append(*opts, o)
	case spec.digits && strings.Trim(s[1:], "0123456789") == "":
		*opts = append(*opts, opt{name: s, known: true})
	default:
		i = shortOptions(args, i, spec, opts)
	}
	if !args[i].one() {
		return i, &args[i]
	}
	return i, nil
}

// shortOptions reads the cluster of short options at args[i] (like -lc or
// -n5) into opts and returns the index of the last word it used.
func shortOptions(args []word, i int, spec optSpec, opts *[]opt) int {
	s := args[i].text
	for j := 1; j < len(s); j++ {
		name := string(s[0]) + string(s[j])
		switch {
		case spec.nextWord && strings.IndexByte(spec.short, s[j]) >= 0:
			o := opt{name: name, known: true}
			if i+1 < len(args) {
				i++
				o.val, o.known = args[i].text, args[i].known()
			}
			*opts = append(*opts, o)
			if !args[i].one() {
				return i // option reports it
			}
			continue
		case strings.IndexByte(spec.unlessDash, s[j]) >= 0:
			o := opt{name: name, val: s[j+1:], known: true}
			if o.val == "" && i+1 < len(args) && !strings.HasPrefix(args[i+1].text, "-") {
				i++
				o.val, o.known = args[i].text, args[i].known()
			}
			*opts = append(*opts, o)
			return i
		case strings.IndexByte(spec.short, s[j]) >= 0:
			o := opt{name: name, val: s[j+1:], known: true}
			if o.val == "" && i+1 < len(args) {
				i++
				o.val, o.known = args[i].text, args[i].known()
			}
			*opts = append(*opts, o)
			return i
		case strings.IndexByte(spec.optional, s[j]) >= 0:
			*opts = append(*opts, opt{name: name, val: s[j+1:], known: true})
			return i
		}
		*opts = append(*opts, opt{name: name, known: true})
	}
	return i
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// last returns the last of opts named one of names (getopt: the last one
// given wins), or nil.
func last(opts []opt, names ...string) *opt {
	for i := len(opts) - 1; i >= 0; i-- {
		if contains(names, opts[i].name) {
			return &opts[i]
		}
	}
	return nil
}

// has reports whether opts has one of names, and the value of the last.
func has(opts []opt, names ...string) (string, bool) {
	if o := last(opts, names...); o != nil {
		return o.val, true
	}
	return "", false
}
