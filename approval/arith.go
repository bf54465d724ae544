package approval

import (
	"reflect"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// Bash evaluates the value of a variable used in arithmetic as an
// arithmetic expression in turn, and a subscript in it runs command
// substitutions: after c='a[$(rm x)]' (or pieces of it put together),
// (( c )) runs rm. So arithmetic on a variable the line has not just set
// to a number cannot be judged.

// arithSafe are variables that always hold a number.
var arithSafe = map[string]bool{
	"#": true, "?": true, "$": true, "!": true, "RANDOM": true, "SRANDOM": true, "LINENO": true,
	"SECONDS": true, "EPOCHSECONDS": true, "BASHPID": true, "PPID": true, "UID": true, "EUID": true,
}

// arithUse is a variable read by arithmetic, at an offset in the source.
type arithUse struct {
	name string
	at   uint
}

// arithmetic records as unjudged each variable that arithmetic in f reads
// before the line sets it to a literal number, or that the line also sets
// to anything else.
func (a *analyser) arithmetic(f *syntax.File) {
	numeric := map[string]uint{} // name → offset of its first literal number
	tainted := map[string]bool{} // names set to anything else
	set := func(name string, at uint, number bool) {
		if !number {
			tainted[name] = true
		} else if _, ok := numeric[name]; !ok {
			numeric[name] = at
		}
	}
	var uses []arithUse
	assoc := map[*syntax.Assign]bool{} // in a declare -A: [key]= is a string
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.DeclClause:
			for _, as := range n.Args {
				assoc[as] = strings.Contains(a.declFlags(n.Args), "A")
			}
		case *syntax.Assign:
			if n.Name != nil {
				set(n.Name.Value, n.Pos().Offset(), n.Index == nil && n.Array == nil && n.Value != nil && isDigits(n.Value.Lit()))
			}
			uses = arithUses(uses, n.Index)
			if n.Array != nil && !assoc[n] {
				for _, e := range n.Array.Elems {
					uses = arithUses(uses, e.Index) // a=([i]=v)
				}
			}
		case *syntax.BinaryArithm:
			if name := ident(n.X); name != "" && isAssignOp(n.Op) {
				set(name, n.Pos().Offset(), n.Op == syntax.Assgn && isNumber(n.Y))
			}
		case *syntax.ArithmExp:
			uses = arithUses(uses, n.X)
		case *syntax.ArithmCmd:
			uses = arithUses(uses, n.X)
		case *syntax.LetClause:
			for _, x := range n.Exprs {
				uses = arithUses(uses, x)
			}
		case *syntax.CStyleLoop:
			uses = arithUses(uses, n.Init, n.Cond, n.Post)
		case *syntax.ParamExp:
			uses = arithUses(uses, n.Index)
			if n.Slice != nil {
				uses = arithUses(uses, n.Slice.Offset, n.Slice.Length)
			}
		case *syntax.BinaryTest:
			if isArithTest(n.Op) {
				uses = arithUses(uses, n.X, n.Y)
			}
		}
		return true
	})
	seen := map[string]bool{}
	for _, u := range uses {
		first, ok := numeric[u.name]
		if arithSafe[u.name] || ok && first <= u.at && !tainted[u.name] || seen[u.name] {
			continue
		}
		seen[u.name] = true
		a.unjudged("arithmetic on %s, whose value bash evaluates as an expression (a[$(cmd)] in it runs cmd)", show(u.name))
	}
}

// arithUses appends the variables that the arithmetic nodes read.
func arithUses(uses []arithUse, nodes ...syntax.Node) []arithUse {
	for _, n := range nodes {
		if n == nil || reflect.ValueOf(n).IsNil() {
			continue
		}
		syntax.Walk(n, func(n syntax.Node) bool {
			switch n := n.(type) {
			case *syntax.Word:
				if name := ident(n); name != "" {
					uses = append(uses, arithUse{name, n.Pos().Offset()})
				}
			case *syntax.ParamExp:
				if n.Param != nil {
					uses = append(uses, arithUse{n.Param.Value, n.Pos().Offset()})
				}
			case *syntax.CmdSubst:
				// Its output is evaluated in turn; the commands
				// in it are found elsewhere.
				uses = append(uses, arithUse{"$(…)", n.Pos().Offset()})
				return false
			}
			return true
		})
	}
	return uses
}

// ident returns the variable name that the arithmetic operand n is, or "".
func ident(n syntax.Node) string {
	w, ok := n.(*syntax.Word)
	if !ok || w == nil {
		return ""
	}
	s := w.Lit()
	if s == "" || isDigits(s[:1]) || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
		return ""
	}
	return s
}

// isNumber reports whether the arithmetic operand n is a literal number,
// with an optional sign.
func isNumber(n syntax.ArithmExpr) bool {
	if u, ok := n.(*syntax.UnaryArithm); ok && (u.Op == syntax.Plus || u.Op == syntax.Minus) && !u.Post {
		n = u.X
	}
	w, ok := n.(*syntax.Word)
	return ok && isDigits(w.Lit())
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// isAssignOp reports whether op assigns (=, +=, …).
func isAssignOp(op syntax.BinAritOperator) bool {
	switch op {
	case syntax.Assgn, syntax.AddAssgn, syntax.SubAssgn, syntax.MulAssgn, syntax.QuoAssgn, syntax.RemAssgn,
		syntax.AndAssgn, syntax.OrAssgn, syntax.XorAssgn, syntax.ShlAssgn, syntax.ShrAssgn,
		syntax.AndBoolAssgn, syntax.OrBoolAssgn, syntax.XorBoolAssgn, syntax.PowAssgn:
		return true
	}
	return false
}

// isArithTest reports whether op compares numbers ([[ a -eq b ]]): bash
// evaluates both sides as arithmetic.
func isArithTest(op syntax.BinTestOperator) bool {
	switch op {
	case syntax.TsEql, syntax.TsNeq, syntax.TsLeq, syntax.TsGeq, syntax.TsLss, syntax.TsGtr:
		return true
	}
	return false
}

// varNames holds a command that takes a variable name from a word that is
// not known (read "$n", printf -v "$n", unset "$n", test -v "$n"): bash
// evaluates a subscript in the name as arithmetic.
func (a *analyser) varNames(name string, args []word) {
	bad := func(w string) { a.unjudged("%s with a non-literal variable name %s", name, show(w)) }
	if name == "read" {
		opts, names, b := options(args, optSpec{short: "adinNptu"})
		if o := last(opts, "-a"); b != nil || o != nil && !o.known || !allKnown(names) {
			bad(strings.Join(texts(args), " "))
		}
		return
	}
	for i, w := range args {
		if !w.known() && (name == "unset" || i > 0 && args[i-1].text == "-v") {
			bad(w.text)
			return
		}
	}
}
