package approval

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// unicodeIdent lexes a U&"…" identifier from its opening quote, and the
// UESCAPE clause that may follow it: its token is the name PostgreSQL
// reads, with the escapes (\XXXX, \+XXXXXX, \\, or the UESCAPE
// character's) decoded, so U&"c\0061rds" is cards. A name that cannot be
// decoded cannot be judged.
func (l *sqlLexer) unicodeIdent() sqlToken {
	t := l.quotedIdent()
	if l.bad != "" {
		return t
	}
	esc := byte('\\')
	if e, ok := l.uescape(); ok {
		esc = e
	}
	name, ok := unescapeUnicode(t.text, esc)
	if !ok {
		l.bad = "a U&\"…\" identifier with an escape that cannot be read"
		return sqlToken{}
	}
	return sqlToken{kind: 'i', text: name}
}

// uescape reads a UESCAPE 'c' clause at l.i (after blanks and comments)
// and returns its character; l.i moves past it only if there is one.
func (l *sqlLexer) uescape() (byte, bool) {
	save := l.i
	w, ok := l.next()
	if !ok || w.kind != 'w' || w.text != "UESCAPE" {
		l.i, l.bad = save, ""
		return 0, false
	}
	lit, ok := l.next()
	if !ok || lit.kind != 'l' || len(lit.text) != 3 || lit.text[0] != '\'' {
		// PostgreSQL refuses anything but one character in quotes.
		l.bad = "a UESCAPE clause that cannot be read"
		return 0, false
	}
	return lit.text[1], true
}

// unescapeUnicode decodes the escapes of a U&"…" name with escape
// character esc.
func unescapeUnicode(s string, esc byte) (string, bool) {
	if strings.IndexByte(s, esc) < 0 {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != esc {
			b.WriteByte(s[i])
			i++
			continue
		}
		n := 4
		switch {
		case i+1 < len(s) && s[i+1] == esc:
			b.WriteByte(esc)
			i += 2
			continue
		case i+1 < len(s) && s[i+1] == '+':
			n = 6
			i++
		}
		if i+1+n > len(s) {
			return "", false
		}
		r, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
		if err != nil || !utf8.ValidRune(rune(r)) || r == 0 {
			return "", false
		}
		b.WriteRune(rune(r))
		i += 1 + n
	}
	return b.String(), true
}

// SQLExecutes returns the names of the prepared statements that text's
// EXECUTE statements run (EXECUTE name, also in EXPLAIN ANALYZE EXECUTE
// and CREATE TABLE … AS EXECUTE), as PostgreSQL names them: an unquoted
// name in lower case. Their statements run as part of text: a statement
// prepared with the protocol's Parse was not judged when it was made.
// Every word after an EXECUTE is taken (also EXECUTE FUNCTION's): a name
// no statement has is harmless.
func SQLExecutes(text string) []string {
	var names []string
	for _, sloppy := range []bool{false, true} {
		stmts, backslash, _ := lexSQL(text, sloppy)
		for _, toks := range stmts {
			for i := 0; i+1 < len(toks); i++ {
				if toks[i].kind != 'w' || toks[i].text != "EXECUTE" {
					continue
				}
				switch n := toks[i+1]; n.kind {
				case 'w':
					names = append(names, lowerASCII(n.orig))
				case 'i':
					names = append(names, n.text)
				}
			}
		}
		if !backslash {
			break
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// lowerASCII folds A-Z as PostgreSQL folds an unquoted name in UTF-8.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
