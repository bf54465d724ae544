package bastion

import (
	"errors"
	"strconv"
	"strings"
)

// The rsync command line: what a client may ask the server to run.

// rsyncShellChars are the characters rsync's safe_arg escapes with a
// backslash before it hands an argument to the remote shell; unescaped, they
// would let the command line run something besides rsync.
const rsyncShellChars = "!#$&;|<>(){}\"'`\n\r\\"

// rsyncSplit splits a command line the way the remote shell will, accepting
// only what rsync itself produces: words separated by spaces or tabs, shell
// characters escaped with a backslash.
func rsyncSplit(command string) ([]string, error) {
	var args []string
	var w strings.Builder
	in := false
	for i := 0; i < len(command); i++ {
		c := command[i]
		switch {
		case c == '\\':
			if i+1 == len(command) {
				return nil, errors.New("rsync command: ends in a backslash")
			}
			i++
			w.WriteByte(command[i])
			in = true
		case c == ' ' || c == '\t':
			if in {
				args = append(args, w.String())
				w.Reset()
				in = false
			}
		case strings.IndexByte(rsyncShellChars, c) >= 0 || c < 0x20 || c == 0x7f:
			return nil, errors.New("rsync command: unescaped shell character " + strconv.QuoteRune(rune(c)))
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		args = append(args, w.String())
	}
	return args, nil
}

// parse reads options as rsync's option parser would, for the few that shape
// the handshake. rsync's parser takes options anywhere on the line, after
// the "." between options and paths too, so every word is read: a path that
// looks like an option can only make the stream look compressed (refused),
// never hide compression.
func (o *rsyncOpts) parse(args []string) error {
	for _, a := range args {
		if err := o.word(a); err != nil {
			return err
		}
	}
	return nil
}

// word reads one argument.
func (o *rsyncOpts) word(a string) error {
	if o.value != "" {
		// The value of the previous option, given as the next word.
		name := o.value
		o.value = ""
		return o.long(name, a, true)
	}
	if o.skip {
		o.skip = false
		return nil
	}
	if a == "." {
		return nil
	}
	if strings.HasPrefix(a, "--") {
		name, val, hasVal := strings.Cut(a, "=")
		switch name {
		case "--compress-choice", "--zc", "--checksum-choice", "--cc", "--compress-level", "--zl":
			if !hasVal {
				o.value = name
				return nil
			}
		}
		return o.long(name, val, hasVal)
	}
	if len(a) > 1 && a[0] == '-' {
		o.skip = o.short(a[1:])
	}
	return nil
}

// long reads a long option.
func (o *rsyncOpts) long(name, val string, hasVal bool) error {
	switch {
	case strings.HasPrefix(name, "--daemon"):
		return errors.New("rsync command: --daemon (rsync daemon over ssh) is not supported")
	case name == "-e":
		o.caps = val
	case name == "--sender":
		o.sender = true
	case name == "--compress":
		o.z++
	case name == "--no-compress" || name == "--no-z":
		o.z, o.choice, o.choiceSet = 0, "", false
	case name == "--old-compress":
		o.choice, o.choiceSet = "zlib", true
	case name == "--new-compress":
		o.choice, o.choiceSet = "zlibx", true
	case name == "--secluded-args" || name == "--protect-args":
		o.secluded = true
	case name == "--no-secluded-args" || name == "--no-protect-args" || name == "--no-s":
		o.secluded = false
	case name == "--compress-choice" || name == "--zc":
		o.choice, o.choiceSet = val, hasVal
	case name == "--compress-level" || name == "--zl":
		o.levelSet = true
	case name == "--checksum-choice" || name == "--cc":
		o.csumSet = hasVal && !strings.EqualFold(val, "auto") && !strings.EqualFold(val, "auto,auto")
	}
	return nil
}

// short reads a bundle of short options; it reports whether the last one
// takes its value from the next word.
func (o *rsyncOpts) short(b string) bool {
	for j := 0; j < len(b); j++ {
		switch b[j] {
		case 'e':
			// On a server, -e carries the client's capabilities.
			if o.caps = b[j+1:]; o.caps == "" {
				o.value = "-e"
			}
			return false
		case '@', 'f', 'B', 'T', 'M': // options with a value
			return j+1 == len(b)
		case 'z':
			o.z++
		case 's':
			o.secluded = true
		}
	}
	return false
}

// finish works out, as rsync does after parsing options, whether the data is
// compressed and which negotiation strings each side sends.
func (o *rsyncOpts) finish() {
	choice, set := o.choice, o.choiceSet
	if !set && o.z > 1 {
		choice, set = "zlibx", true // -zz
	}
	compress := o.z > 0
	if set && !strings.EqualFold(choice, "auto") {
		compress = !strings.EqualFold(choice, "none")
		set = compress // "none" clears the choice
	} else {
		set = false
	}
	if o.levelSet {
		compress = true
	}
	o.compress = compress
	o.negotiateCpress = compress && !set
	o.negotiateCsum = !o.csumSet
}
