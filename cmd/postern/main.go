// Command postern is the Postern SSH bastion and its admin tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `postern: an SSH bastion that records, masks and approves

Usage:
  postern login [URL]              sign in with the bastion's OpenID provider and get a
                                   short-lived SSH certificate (--device, --no-browser,
                                   --key FILE, --agent-only, --ttl); then
                                   ssh -F ~/.postern/ssh_config LOGIN@TARGET@HOST
  postern status [--json]          the certificate login obtained and its time left
  postern logout                   remove the certificate, key and ssh-agent entries
  postern serve --config FILE      run the bastion (SIGTERM: drain and stop, twice: stop
                                   now; SIGHUP: reload targets, rules and approvals)
  postern demo [--listen ADDR]     run a bastion and a demo target on loopback,
                                   state in ./postern-demo, and print ssh commands
  postern ca init [flags]          create the CA keys in the data directory
  postern ca show [flags]          print the CA public keys and the host key's known_hosts
                                   line (--upstream: targets' TrustedUserCAKeys line alone)
  postern ca sign [flags] KEY.pub  issue a user certificate (bootstrap, break-glass);
                                   its serial and an audit record are kept
  postern ca issued [--json]       list the certificates issued, by serial
  postern ca revoke --reason TEXT SERIAL... | --identity KEY_ID
                                   revoke certificates (as an OpenSSH KRL: by serial, or
                                   every one with a key ID); a running bastion ends their
                                   connections at once; never undone
  postern ca revoked [--json]      list the revocations in force
  postern sessions [flags]         list recorded sessions (--user, --target, --since,
                                   --until, --active, --grep REGEX, --json)
  postern play [flags] ID|FILE     replay a session (--speed, --idle-limit, --from,
                                   --from-match REGEX, --cat, --cat --raw); keys: space
                                   pause, . step, + faster, - slower, q quit
  postern approvals [--all]        list approval requests waiting (--all: the history, --json)
  postern approve ID [--reason R]  decide a request as yourself, over ssh to the bastion
  postern deny ID --reason R       (--bastion HOST[:PORT]; ssh postern@BASTION approve ID)
  postern verify                   check recordings, index and audit chain for tampering
  postern recordings prune         delete recordings past retention (--dry-run)
  postern index check [--json]     check the session index (postern.db) for damage
  postern index rebuild            rebuild a damaged index from the recordings and what
                                   survives of the audit chain, keep the damaged file,
                                   then verify (postern must be stopped; --force, --json)
  postern config check --config FILE
                                   validate a config file and exit

Admin commands find the data with --data-dir DIR or --config FILE; run in the
directory where 'postern demo' runs, they use ./postern-demo. While a server
runs they talk to it through DATA_DIR/admin.sock, otherwise they open the
data directory: same output either way.
  postern version

Run 'postern COMMAND --help' for a command's flags.
Exit codes: 0 success, 1 failure, 2 bad usage.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is bad usage: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run is main without the process: testable.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdin, stdout, stderr)
	var code exitCode
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &code): // its message is shown already
		return int(code)
	case errors.As(err, new(*usageError)):
		fmt.Fprintf(stderr, "postern: %s\n", visibleText(err.Error()))
		return 2
	default:
		// Errors can quote the index (paths, keys): escaped, like
		// every other line built from it.
		fmt.Fprintf(stderr, "postern: %s\n", visibleText(err.Error()))
		return 1
	}
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no command given; see 'postern --help'")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	case "version", "--version":
		fmt.Fprintf(stdout, "postern %s\n", version)
		return nil
	case "login":
		return cmdLogin(ctx, rest, stdout, stderr)
	case "status":
		return cmdStatus(ctx, rest, stdout, stderr)
	case "logout":
		return cmdLogout(ctx, rest, stdout, stderr)
	case "serve":
		return cmdServe(ctx, rest, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, stdout, stderr)
	case "ca":
		if len(rest) == 0 {
			return usagef("ca: missing subcommand: init, sign, show, issued, revoke or revoked")
		}
		switch rest[0] {
		case "sign":
			return cmdCASign(ctx, rest[1:], stdout, stderr)
		case "issued":
			return cmdCAIssued(ctx, rest[1:], stdout, stderr)
		case "revoke":
			return cmdCARevoke(ctx, rest[1:], stdout, stderr)
		case "revoked":
			return cmdCARevoked(ctx, rest[1:], stdout, stderr)
		case "init":
			return cmdCAInit(rest[1:], stdout, stderr)
		case "show":
			return cmdCAShow(rest[1:], stdout, stderr)
		case "-h", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		}
		return usagef("ca: unknown subcommand %q: use init, sign, show, issued, revoke or revoked", rest[0])
	case "sessions":
		return cmdSessions(ctx, rest, stdout, stderr)
	case "approvals":
		return cmdApprovals(ctx, rest, stdout, stderr)
	case "approve", "deny":
		return cmdDecide(cmd == "approve")(ctx, rest, stdin, stdout, stderr)
	case "play":
		return cmdPlay(ctx, rest, stdin, stdout, stderr)
	case "verify":
		return cmdVerify(ctx, rest, stdout, stderr)
	case "recordings":
		return cmdRecordings(ctx, rest, stdout, stderr)
	case "index":
		return cmdIndex(ctx, rest, stdout, stderr)
	case "config":
		if len(rest) == 0 || rest[0] != "check" {
			return usagef("config: use 'postern config check --config FILE'")
		}
		return cmdConfigCheck(rest[1:], stdout, stderr)
	}
	return usagef("unknown command %q; see 'postern --help'", cmd)
}

// newFlags makes a FlagSet whose errors and help go where the CLI contract
// says: --help to stdout (exit 0), bad flags to stderr (exit 2). The flag
// package calls Usage for both, so Usage prints nothing; parseFlags prints
// the usage for --help only, and run reports a bad flag on stderr.
func newFlags(name, synopsis string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(helpOutput{stdout: stdout, synopsis: synopsis})
	fs.Usage = func() {}
	return fs
}

// helpOutput is a FlagSet's output: it discards what the flag package
// writes (parseFlags reports errors itself) and keeps where --help goes.
type helpOutput struct {
	stdout   io.Writer
	synopsis string
}

func (helpOutput) Write(p []byte) (int, error) { return len(p), nil }

// printHelp prints fs's usage and flags on the stdout newFlags was given.
func printHelp(fs *flag.FlagSet) {
	h, ok := fs.Output().(helpOutput)
	if !ok {
		return
	}
	fmt.Fprintf(h.stdout, "Usage: postern %s\n\nFlags:\n", h.synopsis)
	fs.SetOutput(h.stdout)
	fs.PrintDefaults()
	fs.SetOutput(h)
}

// parseFlags parses args, mapping flag errors to usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(fs)
		return err
	}
	if err != nil {
		return usagef("%s: %v (see 'postern %s --help')", fs.Name(), err, fs.Name())
	}
	return nil
}

// parseArgs parses args with flags anywhere among the positional
// arguments (`ca sign KEY.pub --principal bob`), as the flag package does
// not: it stops at the first positional argument, so it is parsed again
// after each one. "--" ends the flags: everything after it is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return nil, err
		}
		left := fs.Args()
		if used := len(rest) - len(left); used > 0 && rest[used-1] == "--" {
			return append(pos, left...), nil
		}
		if len(left) == 0 {
			return pos, nil
		}
		pos = append(pos, left[0])
		rest = left[1:]
	}
}

// noArgs refuses positional arguments for a command that takes none: flag
// parsing stops at the first one, so any flags after it would be ignored.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q: flags go before it, and the command takes no others (see 'postern %s --help')", fs.Name(), fs.Arg(0), fs.Name())
	}
	return nil
}
