package bastion

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/internal/listing"
	"github.com/postern/postern/recorder"
)

// adminCommand is one built-in command of the admin connection. To add
// one, add it to adminCommands in init.
type adminCommand struct {
	// usage is the synopsis help prints, like "sessions [--json]".
	usage string
	// summary says in a few words what it does.
	summary string
	// adminOnly commands are refused to identities not in Config.Admins.
	adminOnly bool
	// run runs the command with the arguments after its name. Its error
	// is shown on stderr as one line and sets the exit status: 2 for a
	// *usageError, 1 for anything else. Text in its output or error that
	// came from the client or a certificate goes through shown.
	run func(x *adminExec, args []string) error
}

// adminExec is what a running admin command sees.
type adminExec struct {
	ctx    context.Context // ends when the client closes the channel or leaves
	c      *conn
	stdout io.Writer // no terminal, so lines end in "\n"
	stderr io.Writer
	admin  bool   // the identity is in Config.Admins
	name   string // the command's name, for messages
}

// adminCommands maps a command's name to it; the approval commands are in
// adminapprove.go.
var adminCommands map[string]adminCommand

func init() {
	// Filled in init because help lists the table it is part of.
	adminCommands = map[string]adminCommand{
		"help":     {usage: "help", summary: "list the commands", run: runHelp},
		"whoami":   {usage: "whoami [--json]", summary: "show your identity, principals, groups and certificate", run: runWhoami},
		"sessions": {usage: "sessions [--json] [--active] [--user U] [--target T]", summary: "list recorded sessions, as postern sessions does on the bastion", adminOnly: true, run: runSessions},
	}
	addApprovalCommands()
}

// usageError is a command line the command cannot run: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// refusedError is a command the identity may not run, or one that does
// not exist: exit status 1, and allowed=false in the audit record.
type refusedError struct{ msg, reason string }

func (e *refusedError) Error() string { return e.msg }

// maxCommandLine caps an admin command line: no command needs more, and
// the line goes into an audit record.
const maxCommandLine = 1024

// shown returns text from a certificate or the client fit to show the
// user: card numbers masked (DESIGN invariant 1), controls escaped
// (invariant 7).
func shown(s string) string { return listing.Visible(logSafe(s)) }

// command returns the program an exec request for line runs: the built-in
// command it names, with its audit record. The command and the identity's
// right to it are checked first, then the line; allowed=true in the record
// means the command ran.
func (a *adminChannel) command(line string) adminProgram {
	return func(ctx context.Context, stdout, stderr io.Writer) int {
		c := a.c
		x := &adminExec{ctx: ctx, c: c, stdout: stdout, stderr: stderr, admin: c.s.isAdmin(c.identity), name: firstField(line)}
		ran, err := x.dispatch(line)
		status, reason := 0, ""
		var ue *usageError
		var re *refusedError
		switch {
		case err == nil:
		case errors.As(err, &ue):
			status, reason = 2, "usage: "+err.Error()
		case errors.As(err, &re):
			status, reason = 1, re.reason
		default:
			status, reason = 1, err.Error()
		}
		// The line is masked whole, then cut: a card number typed in
		// groups spans several words, and one across the cut loses
		// only its check digit. Messages quote words of the line one
		// at a time, so the digits masking hid are hidden there too.
		masked := logSafe(line)
		secret := maskedRuns(line, masked)
		if err != nil {
			fmt.Fprintf(stderr, "postern: %s\n", hideRuns(err.Error(), secret))
		}
		recorded := cutMasked(masked, maxCommandLine)
		attrs := []any{"channel", a.n, "command", firstField(recorded), "command_line", recorded,
			"allowed", ran, "reason", logSafe(hideRuns(reason, secret)), "exit_status", status}
		if len(line) > maxCommandLine {
			attrs = append(attrs, "command_line_bytes", len(line))
		}
		audit.Record(c.log, audit.Admin, attrs...)
		return status
	}
}

// dispatch finds x's command and runs it with the arguments in line, if
// the identity may and line is not too long. It reports whether the
// command ran: a refusal or a usage error means it did not.
func (x *adminExec) dispatch(line string) (ran bool, err error) {
	if x.name == "" {
		return false, usagef("no command given; run: ssh %s@bastion help", AdminUser)
	}
	cmd, ok := adminCommands[x.name]
	if !ok {
		name := shown(cutMasked(logSafe(x.name), maxCommandLine))
		return false, &refusedError{msg: fmt.Sprintf("unknown command %q; run: ssh %s@bastion help", name, AdminUser), reason: "unknown command"}
	}
	if cmd.adminOnly && !x.admin {
		return false, &refusedError{
			msg:    fmt.Sprintf("%s is for the bastion's admins, and %s is not one", x.name, shown(x.c.identity.Name())),
			reason: "not an admin",
		}
	}
	if len(line) > maxCommandLine {
		// The message stays one short line.
		return false, usagef("the command line is longer than %d bytes", maxCommandLine)
	}
	err = cmd.run(x, strings.Fields(line)[1:])
	var ue *usageError
	return !errors.As(err, &ue), err
}

// firstField is the first word of s, as strings.Fields splits it.
func firstField(s string) string {
	s = strings.TrimLeftFunc(s, unicode.IsSpace)
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		return s[:i]
	}
	return s
}

// cutMasked cuts masked, a logSafe result, to at most n bytes at a UTF-8
// boundary, and masks the cut text again: a prefix can hold a card number
// the whole did not (17 digits cut after the 16th).
func cutMasked(masked string, n int) string {
	if len(masked) <= n {
		return masked
	}
	for n > 0 && !utf8.RuneStart(masked[n]) {
		n--
	}
	return logSafe(masked[:n])
}

// maskedRuns returns the runs of ASCII digits in line that masking (masked
// is logSafe(line), of the same length) starred any digit of, each once,
// longest first; nil if none.
func maskedRuns(line, masked string) []string {
	if line == masked {
		return nil
	}
	seen := map[string]bool{}
	var runs []string
	for i := 0; i < len(line); {
		if !isDigit(line[i]) {
			i++
			continue
		}
		j, hit := i, false
		for ; j < len(line) && isDigit(line[j]); j++ {
			hit = hit || masked[j] == '*'
		}
		if r := line[i:j]; hit && !seen[r] {
			seen[r] = true
			runs = append(runs, r)
		}
		i = j
	}
	slices.SortStableFunc(runs, func(a, b string) int { return len(b) - len(a) })
	return runs
}

// hideRuns stars every occurrence of runs in msg: a message that quotes
// one word of a command line would otherwise show the digits of a card
// number that the whole line masks.
func hideRuns(msg string, runs []string) string {
	for _, r := range runs {
		if strings.Contains(msg, r) {
			msg = strings.ReplaceAll(msg, r, strings.Repeat("*", len(r)))
		}
	}
	return msg
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// flags returns a flag set for x's command that reports errors as usage
// errors instead of printing them.
func (x *adminExec) flags() *flag.FlagSet {
	fs := flag.NewFlagSet(x.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse parses args into fs; --help prints the usage line and returns
// errHelp, which the caller turns into success.
func (x *adminExec) parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(x.stdout, "usage: ssh %s@bastion %s\n", AdminUser, adminCommands[x.name].usage)
		return errHelp
	case err != nil:
		return usagef("%s: %s", x.name, shown(err.Error()))
	case fs.NArg() > 0:
		return usagef("%s: unexpected argument %q; usage: %s", x.name, shown(fs.Arg(0)), adminCommands[x.name].usage)
	}
	return nil
}

// errHelp ends a command that printed its usage because it was asked to.
var errHelp = errors.New("help shown")

func runHelp(x *adminExec, args []string) error {
	if err := x.parse(x.flags(), args); err != nil {
		return ignoreHelp(err)
	}
	names := make([]string, 0, len(adminCommands))
	for n := range adminCommands {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintf(x.stdout, "Commands of the admin connection (ssh %s@bastion COMMAND):\n", AdminUser)
	for _, n := range names {
		cmd := adminCommands[n]
		note := ""
		if cmd.adminOnly {
			note = " (admins only)"
		}
		fmt.Fprintf(x.stdout, "  %-52s %s%s\n", cmd.usage, cmd.summary, note)
	}
	return nil
}

func ignoreHelp(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// whoami is the document whoami --json prints. Times are UTC; ValidBefore
// is absent for a certificate that never expires.
type whoami struct {
	Identity    string     `json:"identity"`
	Principals  []string   `json:"principals"`
	Groups      []string   `json:"groups"`
	KeyID       string     `json:"key_id"`
	Serial      uint64     `json:"serial"`
	ValidAfter  *time.Time `json:"valid_after,omitempty"`
	ValidBefore *time.Time `json:"valid_before,omitempty"`
	Admin       bool       `json:"admin"`
}

func runWhoami(x *adminExec, args []string) error {
	fs := x.flags()
	asJSON := fs.Bool("json", false, "")
	if err := x.parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	id, cert := x.c.identity, x.c.cert
	w := whoami{
		Identity: logSafe(id.Name()), Principals: append([]string{}, logSafeAll(id.Principals)...),
		Groups: append([]string{}, logSafeAll(id.Groups)...), KeyID: logSafe(id.KeyID), Serial: id.Serial, Admin: x.admin,
	}
	if cert != nil {
		w.ValidAfter = certTime(cert.ValidAfter, 0)
		w.ValidBefore = certTime(cert.ValidBefore, ssh.CertTimeInfinity)
	}
	if *asJSON {
		return listing.WriteJSON(x.stdout, w)
	}
	list := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		return listing.Visible(strings.Join(l, ", "))
	}
	valid := "forever"
	if w.ValidBefore != nil {
		valid = "until " + w.ValidBefore.Format(time.RFC3339) + " (in " + time.Until(*w.ValidBefore).Round(time.Second).String() + ")"
	}
	admin := "no"
	if w.Admin {
		admin = "yes"
	}
	fmt.Fprintf(x.stdout, "identity:    %s\nprincipals:  %s\ngroups:      %s\nkey id:      %s\nserial:      %s\nvalid:       %s\nadmin:       %s\n",
		listing.Visible(w.Identity), list(w.Principals), list(w.Groups), listing.Visible(w.KeyID), strconv.FormatUint(w.Serial, 10), valid, admin)
	return nil
}

// certTime converts a certificate time in seconds; none (0 or infinity)
// is nil.
func certTime(sec, none uint64) *time.Time {
	if sec == none || sec > 1<<62 {
		return nil
	}
	t := time.Unix(int64(sec), 0).UTC()
	return &t
}

// runSessions lists the index as `postern sessions` on the bastion host
// does, through the same rendering (internal/listing).
func runSessions(x *adminExec, args []string) error {
	fs := x.flags()
	asJSON := fs.Bool("json", false, "")
	active := fs.Bool("active", false, "")
	user := fs.String("user", "", "")
	target := fs.String("target", "", "")
	if err := x.parse(fs, args); err != nil {
		return ignoreHelp(err)
	}
	rec := x.c.s.cfg.Recording
	if rec == nil {
		return errors.New("this bastion keeps no session index")
	}
	list, err := rec.Store.List(x.ctx, recorder.Filter{User: *user, Target: *target, Active: *active})
	if err != nil {
		// The index's error names paths on the bastion: logged, not shown.
		x.c.log.Warn("admin sessions: list index", "err", err)
		return errors.New("the session index cannot be read; see the bastion's log")
	}
	rows := listing.Rows(list)
	if *asJSON {
		return listing.SessionsJSON(x.stdout, rows)
	}
	return listing.Sessions(x.stdout, rows)
}
