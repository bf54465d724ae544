package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// mapping is a YAML mapping whose keys have been checked against the keys
// its place in the schema allows.
type mapping struct {
	node *yaml.Node
	path string
	keys map[string]*yaml.Node // key name → key node
	vals map[string]*yaml.Node // key name → value node, aliases resolved
}

// field is one key of a mapping. key and val are nil when the key is
// absent.
type field struct {
	path   string     // like "targets[0].name"
	parent *yaml.Node // the mapping, for the line of an absent key
	key    *yaml.Node
	val    *yaml.Node
}

// get returns the field name of m, present or not.
func (m mapping) get(name string) field {
	return field{path: join(m.path, name), parent: m.node, key: m.keys[name], val: m.vals[name]}
}

// set reports whether the field is present with a non-null value.
func (f field) set() bool { return f.val != nil && !isNull(f.val) }

// line is where an error about f points: its value, else its key, else the
// mapping that lacks it.
func (f field) line() int {
	switch {
	case f.val != nil && !isNull(f.val):
		return f.val.Line
	case f.key != nil:
		return f.key.Line
	}
	return f.parent.Line
}

// mapping checks that n is a mapping whose keys are all in allowed, each
// at most once.
func (p *parser) mapping(n *yaml.Node, path string, allowed ...string) (mapping, error) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		what := "a mapping of keys"
		if path == "" {
			what = "a mapping of keys, like \"listen: ...\" and \"targets: ...\""
		}
		return mapping{}, p.typeError(n, path, what)
	}
	m := mapping{node: n, path: path, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return mapping{}, p.errorf(k.Line, path, "keys must be plain names, got %s", describe(k))
		}
		name := k.Value
		if k.ShortTag() == "!!merge" {
			return mapping{}, p.errorf(k.Line, join(path, name), "merge keys are not supported; write the keys out")
		}
		if !slices.Contains(allowed, name) {
			msg := "unknown key"
			if s := suggest(name, allowed); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += "; known keys are " + strings.Join(allowed, ", ")
			}
			return mapping{}, p.errorf(k.Line, join(path, name), "%s", msg)
		}
		if prev, dup := m.keys[name]; dup {
			return mapping{}, p.errorf(k.Line, join(path, name), "duplicate key (first on line %d)", prev.Line)
		}
		m.keys[name], m.vals[name] = k, v
	}
	return m, nil
}

// items returns the items of a list field, aliases resolved.
func (p *parser) items(f field, what string) ([]*yaml.Node, error) {
	if f.val.Kind != yaml.SequenceNode {
		return nil, p.typeError(f.val, f.path, what)
	}
	items := make([]*yaml.Node, len(f.val.Content))
	for i, n := range f.val.Content {
		items[i] = deref(n)
	}
	return items, nil
}

// str returns a set field's value as a string, checked by check if it is
// not nil. Any scalar counts as a string, so "name: 01" is "01".
func (p *parser) str(f field, check func(string) error) (string, error) {
	return p.scalarString(f.val, f.path, check)
}

func (p *parser) scalarString(n *yaml.Node, path string, check func(string) error) (string, error) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return "", p.typeError(n, path, "a string")
	}
	if check != nil {
		if err := check(n.Value); err != nil {
			return "", p.errorf(n.Line, path, "%v", err)
		}
	}
	return n.Value, nil
}

// strList returns a set field's value as a list of strings, each checked
// by check if it is not nil. An empty list gives an empty, non-nil slice.
func (p *parser) strList(f field, check func(string) error) ([]string, error) {
	items, err := p.items(f, "a list of strings, like [a, b]")
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items))
	for i, n := range items {
		s, err := p.scalarString(n, index(f.path, i), check)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// strMap returns a set field's value as a map of non-empty strings to
// strings.
func (p *parser) strMap(f field) (map[string]string, error) {
	n := f.val
	if n.Kind != yaml.MappingNode {
		return nil, p.typeError(n, f.path, "a mapping of names to values, like {env: prod}")
	}
	out := make(map[string]string, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		name, err := p.scalarString(k, f.path, nil)
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, p.errorf(k.Line, f.path, "names must not be empty")
		}
		if prev, dup := lines[name]; dup {
			return nil, p.errorf(k.Line, join(f.path, name), "duplicate key (first on line %d)", prev)
		}
		if out[name], err = p.scalarString(v, join(f.path, name), nil); err != nil {
			return nil, err
		}
		lines[name] = k.Line
	}
	return out, nil
}

// boolean returns a set field's value as a bool; only true and false are
// booleans in YAML 1.2.
func (p *parser) boolean(f field) (bool, error) {
	var b bool
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!bool" || f.val.Decode(&b) != nil {
		return false, p.typeError(f.val, f.path, "true or false")
	}
	return b, nil
}

// integer returns a set field's value as an int.
func (p *parser) integer(f field) (int, error) {
	var n int
	if f.val.Kind != yaml.ScalarNode || f.val.ShortTag() != "!!int" || f.val.Decode(&n) != nil {
		return 0, p.typeError(f.val, f.path, "a whole number")
	}
	return n, nil
}

// duration returns the field as a non-negative time.Duration, or def if
// it is not set. "0" and "0s" are zero.
func (p *parser) duration(f field, def time.Duration) (time.Duration, error) {
	if !f.set() {
		return def, nil
	}
	s, err := p.scalarString(f.val, f.path, nil)
	if err != nil {
		return 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, p.errorf(f.line(), f.path, `invalid duration %q: use a number with a unit, like "30s", "5m" or "1h30m"; "0" disables`, s)
	}
	if d < 0 {
		return 0, p.errorf(f.line(), f.path, `duration %q is negative; use "0" to disable`, s)
	}
	return d, nil
}

// typeError says that n at path is not what it should be.
func (p *parser) typeError(n *yaml.Node, path, want string) error {
	return p.errorf(n.Line, path, "must be %s, got %s", want, describe(n))
}

// describe names the YAML type of n for errors.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing (null)"
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	case "!!int", "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	}
	return fmt.Sprintf("%q", n.Value)
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// join appends key name to path.
func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// index appends list index i to path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// suggest returns the key in known closest to the unknown key name, if it
// is close enough to be a typo.
func suggest(name string, known []string) string {
	norm := strings.ReplaceAll(strings.ToLower(name), "-", "_")
	best, bestDist := "", 3
	for _, k := range known {
		if d := distance(norm, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b, in bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// yamlLine matches the line yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line ([0-9]+): `)

// yamlAnchor matches yaml.v3's error for an alias without an anchor.
var yamlAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// parserProblems are the errors of the yaml.v3 parser, as opposed to its
// scanner. For these yaml.v3 reports a 0-based line, of the start of the
// enclosing list or mapping.
var parserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found undefined tag handle",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

// document parses data as exactly one YAML document and returns its root.
func (p *parser) document(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, p.errorf(1, "", "config is empty")
		}
		return nil, p.syntaxError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.syntaxError(data, err)
		}
		return nil, p.errorf(extra.Line, "", "more than one YAML document: the config must be a single document")
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, p.errorf(1, "", "config is empty")
	}
	return doc.Content[0], nil
}

// syntaxError turns a yaml.v3 parse error into an *Error, correcting or
// finding the line where yaml.v3 gets it wrong or leaves it out.
func (p *parser) syntaxError(data []byte, err error) error {
	msg := err.Error()
	line := 0
	switch m := yamlLine.FindStringSubmatch(msg); {
	case m != nil:
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
		if slices.Contains(parserProblems, msg) {
			line++
		}
	case yamlAnchor.MatchString(msg):
		anchor := yamlAnchor.FindStringSubmatch(msg)[1]
		if i := bytes.Index(data, []byte("*"+anchor)); i >= 0 {
			line = 1 + bytes.Count(data[:i], []byte("\n"))
		}
	default:
		// Reader errors carry no line; scanner and parser errors carry
		// none when the problem is on line 1.
		if line = badByteLine(data); line == 0 {
			line = 1
		}
	}
	return p.errorf(line, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

// badByteLine returns the line of the first byte YAML does not allow:
// invalid UTF-8 or a control character other than tab, CR and LF. It
// returns 0 if there is none.
func badByteLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1,
			r < 0x20 && r != '\t' && r != '\n' && r != '\r',
			r == 0x7f:
			return line
		case r == '\n':
			line++
		}
		i += size
	}
	return 0
}
