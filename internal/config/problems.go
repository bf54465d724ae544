package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Error is a problem with a config file: a YAML syntax error, or a key that
// is unknown, missing, of the wrong type or with an invalid value.
type Error struct {
	// File is the config file name as given to Load or Parse.
	File string
	// Line is the 1-based line of the offending key or value, or of the
	// enclosing mapping when a required key is missing. Parse always sets
	// it; for syntax errors it is yaml.v3's line, corrected where yaml.v3
	// is known to be off by one.
	Line int
	// Key is the path of the offending key, like "targets[1].host_key"
	// (list indexes count from 0). It is empty for syntax errors and for
	// problems with the file as a whole.
	Key string
	// Msg says what is wrong.
	Msg string
}

// Error returns "FILE:LINE: KEY: MSG", leaving out ":LINE" when Line is 0
// and "KEY: " when Key is empty.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// errorf returns an *Error at line for key.
func (p *parser) errorf(line int, key, format string, args ...any) error {
	return &Error{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

// warnf records a warning at line for key.
func (p *parser) warnf(line int, key, format string, args ...any) {
	p.warnings = append(p.warnings, p.errorf(line, key, format, args...).Error())
}

// joinErrors returns the one error in errs, or all of them joined, with
// every *Error in them flattened to one level: errors.Unwrap() []error
// gives each problem.
func joinErrors(errs []error) error {
	var flat []error
	for _, err := range errs {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			flat = append(flat, j.Unwrap()...)
		} else {
			flat = append(flat, err)
		}
	}
	if len(flat) == 1 {
		return flat[0]
	}
	return errors.Join(flat...)
}
