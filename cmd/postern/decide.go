package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/postern/postern/bastion"
)

// cmdDecide is `postern approve` (yes) and `postern deny`. A decision is
// the approver's, made with their own certificate: these run the admin
// connection's approve and deny with the system ssh, which brings the
// approver's key, agent, certificate and ssh_config along. The bastion
// host's operator gets no say by running them there.
func cmdDecide(yes bool) func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	name, synopsis := "approve", "approve [--bastion HOST[:PORT]] [-i KEY] ID [--reason TEXT...]"
	if !yes {
		name, synopsis = "deny", "deny [--bastion HOST[:PORT]] [-i KEY] ID --reason TEXT..."
	}
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		fs := newFlags(name, synopsis, stdout)
		// As on the admin connection, the words after --reason are
		// the reason: `postern deny ID --reason not now`.
		args, reasonWords := splitReason(args)
		reason := fs.String("reason", "", "why, in the words after it (deny: required; the requester is shown it)")
		rf := addRemoteFlags(fs)
		pos, err := parseArgs(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("%s: give exactly one request ID (see 'postern approvals')", name)
		}
		id := pos[0]
		if id == "" || strings.IndexFunc(id, func(r rune) bool { return !isIDRune(r) }) >= 0 {
			return usagef("%s: %q is not a request ID (letters and digits, as 'postern approvals' lists them)", name, id)
		}
		words := []string{name, id}
		if r := strings.Join(strings.Fields(*reason+" "+strings.Join(reasonWords, " ")), " "); r != "" {
			words = append(words, "--reason", r)
		} else if !yes {
			return usagef("deny: say why with --reason; the requester is shown it")
		}
		return rf.run(ctx, words, stdin, stdout, stderr)
	}
}

// splitReason cuts args at --reason: what follows it is the reason.
func splitReason(args []string) (flags, reason []string) {
	for i, a := range args {
		if a == "--" {
			break
		}
		if a == "--reason" || a == "-reason" {
			return args[:i], args[i+1:]
		}
		if v, ok := strings.CutPrefix(a, "--reason="); ok {
			return args[:i], append([]string{v}, args[i+1:]...)
		}
	}
	return args, nil
}

func isIDRune(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z'
}

// remoteFlags say how to reach the bastion's admin connection.
type remoteFlags struct {
	bastion, identity *string
}

func addRemoteFlags(fs interface {
	String(name, value, usage string) *string
}) remoteFlags {
	return remoteFlags{
		bastion:  fs.String("bastion", "", "the bastion's SSH `address`, HOST or HOST:PORT (default: $POSTERN_BASTION; in the\ndirectory where 'postern demo' runs, the demo's bastion, as its approver)"),
		identity: fs.String("i", "", "private key `file` for ssh (default: ssh's own choice: agent, ~/.ssh, ssh_config)"),
	}
}

// defaultSSHPort is the bastion's port when an address names none.
const defaultSSHPort = "2222"

// run runs words as one admin command with ssh, passing its streams
// through. ssh's exit code carries the bastion's (0, 1, 2); any other is a
// failure.
func (rf remoteFlags) run(ctx context.Context, words []string, stdin io.Reader, stdout, stderr io.Writer) error {
	args, err := rf.sshArgs()
	if err != nil {
		return err
	}
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		return errors.New("the OpenSSH client (ssh) is not installed; approvers decide over ssh with their own certificate")
	}
	cmd := exec.CommandContext(ctx, sshBin, append(args, words...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.ExitCode() == 2:
		return exitCode(2)
	case errors.As(err, &ee) && ee.ExitCode() == 255:
		return errors.New("ssh could not run the command on the bastion (its message is above)")
	case errors.As(err, &ee):
		return exitCode(1)
	}
	return fmt.Errorf("run ssh: %w", err)
}

// sshArgs are ssh's options and destination for the admin connection.
func (rf remoteFlags) sshArgs() ([]string, error) {
	addr, key, knownHosts := *rf.bastion, *rf.identity, ""
	if addr == "" {
		addr = os.Getenv("POSTERN_BASTION")
	}
	if addr == "" {
		demo, err := demoBastion()
		if err != nil {
			return nil, err
		}
		addr, knownHosts = demo, filepath.Join(demoDir, "known_hosts")
		if key == "" {
			key = filepath.Join(demoDir, "approver_ed25519")
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = strings.Trim(addr, "[]"), defaultSSHPort
	}
	if host == "" || strings.HasPrefix(host, "-") || strings.ContainsAny(host, " @\t\n") {
		return nil, usagef("--bastion %q is not HOST or HOST:PORT", addr)
	}
	args := []string{"-p", port}
	if key != "" {
		args = append(args, "-i", key, "-o", "IdentitiesOnly=yes")
	}
	if knownHosts != "" {
		args = append(args, "-o", "UserKnownHostsFile="+knownHosts)
	}
	return append(args, "--", bastion.AdminUser+"@"+host), nil
}

// demoBastion returns the address of the demo bastion whose state is in
// ./postern-demo: the host its known_hosts file names.
func demoBastion() (string, error) {
	f, err := os.Open(filepath.Join(demoDir, "known_hosts"))
	if err != nil {
		return "", usagef("say which bastion: --bastion HOST[:PORT] or POSTERN_BASTION (or run this where 'postern demo' runs)")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		if h, _, ok := strings.Cut(sc.Text(), " "); ok && strings.HasPrefix(h, "[") {
			return h, nil // [HOST]:PORT
		}
	}
	return "", fmt.Errorf("%s holds no bastion address; run 'postern demo' again or give --bastion", filepath.Join(demoDir, "known_hosts"))
}

// exitCode is an exit code whose message was already shown (by ssh).
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit %d", int(c)) }
