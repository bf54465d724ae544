package approval

import (
	"strings"
)

// A small lexer for PostgreSQL's SQL, enough to split a simple Query's
// text into statements and find their commands without being misled by
// what hides a word from a naive reader: comments (-- and nested /* */),
// string literals ('…', E'…' with backslash escapes, $tag$…$tag$), quoted
// identifiers ("…") and mixed case. It does not parse SQL's grammar.

// sqlToken is one token: a word (keyword or unquoted identifier, upper
// case), a quoted identifier (its name), a literal (kept as written), or
// one character of punctuation or an operator.
type sqlToken struct {
	kind byte   // 'w' word, 'i' quoted identifier, 'l' literal, 'p' punctuation
	text string // the normal form
	orig string // a word as written
}

// sqlLexer lexes one text. sloppy lexes '…' as PostgreSQL does with
// standard_conforming_strings off (a backslash escapes a quote).
type sqlLexer struct {
	s        string
	i        int
	sloppy   bool
	backslas bool   // a '…' literal held a backslash: its end depends on the setting
	bad      string // why the text cannot be lexed, "" if it can
}

// lexSQL returns the statements of s (split at ;), each as its tokens,
// and why s cannot be lexed ("" if it can).
func lexSQL(s string, sloppy bool) (stmts [][]sqlToken, backslash bool, bad string) {
	l := &sqlLexer{s: s, sloppy: sloppy}
	var cur []sqlToken
	for {
		t, ok := l.next()
		if l.bad != "" {
			return nil, l.backslas, l.bad
		}
		if !ok {
			break
		}
		if t.kind == 'p' && t.text == ";" {
			if len(cur) > 0 {
				stmts = append(stmts, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, t)
	}
	if len(cur) > 0 {
		stmts = append(stmts, cur)
	}
	return stmts, l.backslas, ""
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isIdentChar(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

// next returns the next token, ok false at the end or when the text
// cannot be lexed (then l.bad says why).
func (l *sqlLexer) next() (sqlToken, bool) {
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.i++
		case strings.HasPrefix(l.s[l.i:], "--"):
			// PostgreSQL ends it at a line feed or a carriage return.
			if j := strings.IndexAny(l.s[l.i:], "\n\r"); j >= 0 {
				l.i += j + 1
			} else {
				l.i = len(l.s)
			}
		case strings.HasPrefix(l.s[l.i:], "/*"):
			l.comment()
			if l.bad != "" {
				return sqlToken{}, false
			}
		case c == '\'':
			return l.str(l.sloppy), l.bad == ""
		case c == '"':
			return l.quotedIdent(), l.bad == ""
		case (c == 'u' || c == 'U') && strings.HasPrefix(l.s[l.i+1:], "&\""):
			l.i += 2
			return l.unicodeIdent(), l.bad == ""
		case c == '$' && l.dollarStart():
			return l.dollar(), l.bad == ""
		case (c == 'e' || c == 'E') && l.i+1 < len(l.s) && l.s[l.i+1] == '\'':
			l.i++
			return l.str(true), l.bad == ""
		case isIdentStart(c):
			j := l.i + 1
			for j < len(l.s) && isIdentChar(l.s[j]) {
				j++
			}
			orig := l.s[l.i:j]
			l.i = j
			return sqlToken{kind: 'w', text: strings.ToUpper(orig), orig: orig}, true
		case c >= '0' && c <= '9' || c == '$':
			j := l.i + 1
			for j < len(l.s) && (isIdentChar(l.s[j]) || l.s[j] == '.') {
				j++
			}
			t := sqlToken{kind: 'l', text: l.s[l.i:j]}
			l.i = j
			return t, true
		default:
			l.i++
			return sqlToken{kind: 'p', text: string(c)}, true
		}
	}
	return sqlToken{}, false
}

// comment skips a /* */ comment, which nests in PostgreSQL.
func (l *sqlLexer) comment() {
	depth := 0
	for l.i < len(l.s) {
		switch {
		case strings.HasPrefix(l.s[l.i:], "/*"):
			depth++
			l.i += 2
		case strings.HasPrefix(l.s[l.i:], "*/"):
			depth--
			l.i += 2
			if depth == 0 {
				return
			}
		default:
			l.i++
		}
	}
	l.bad = "an unterminated /* comment"
}

// str lexes a '…' literal from its quote; escapes says a backslash
// escapes the next character.
func (l *sqlLexer) str(escapes bool) sqlToken {
	start := l.i
	l.i++
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == '\\':
			if !escapes {
				l.backslas = true
				l.i++
				continue
			}
			l.i += 2
		case c == '\'' && l.i+1 < len(l.s) && l.s[l.i+1] == '\'':
			l.i += 2
		case c == '\'':
			l.i++
			return sqlToken{kind: 'l', text: l.s[start:l.i]}
		default:
			l.i++
		}
	}
	l.bad = "an unterminated string literal"
	return sqlToken{}
}

// quotedIdent lexes a "…" identifier; its token is the name.
func (l *sqlLexer) quotedIdent() sqlToken {
	l.i++
	var b strings.Builder
	for l.i < len(l.s) {
		c := l.s[l.i]
		if c == '"' {
			if l.i+1 < len(l.s) && l.s[l.i+1] == '"' {
				b.WriteByte('"')
				l.i += 2
				continue
			}
			l.i++
			return sqlToken{kind: 'i', text: b.String()}
		}
		b.WriteByte(c)
		l.i++
	}
	l.bad = "an unterminated quoted identifier"
	return sqlToken{}
}

// dollarStart reports whether a $ at l.i opens a dollar-quoted literal:
// $$ or $tag$ (a tag is an identifier without $). A $ right after an
// identifier's characters belongs to it and is lexed there.
func (l *sqlLexer) dollarStart() bool {
	j := l.i + 1
	if j < len(l.s) && l.s[j] == '$' {
		return true
	}
	if j >= len(l.s) || !isIdentStart(l.s[j]) {
		return false
	}
	for j < len(l.s) && isIdentChar(l.s[j]) && l.s[j] != '$' {
		j++
	}
	return j < len(l.s) && l.s[j] == '$'
}

// dollar lexes a dollar-quoted literal.
func (l *sqlLexer) dollar() sqlToken {
	start := l.i
	end := strings.IndexByte(l.s[l.i+1:], '$') + l.i + 2
	tag := l.s[l.i:end]
	k := strings.Index(l.s[end:], tag)
	if k < 0 {
		l.bad = "an unterminated dollar-quoted string"
		return sqlToken{}
	}
	l.i = end + k + len(tag)
	return sqlToken{kind: 'l', text: l.s[start:l.i]}
}
