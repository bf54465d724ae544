package approval

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A requester who opens a channel, sends a flagged exec and closes the
// channel at once makes one cancelled request per round trip, each with a
// command line of up to the SSH packet size (256 KiB: nothing caps Line).
// The Broker keeps every decided request in memory for an hour once it
// holds keepMax, and NewBroker loads the whole history: memory grows with
// the rate an authorised user can cycle requests (tens per second over one
// connection), not with anything bounded. Here keepMax+500 cancelled
// requests within a minute all stay in memory, and a restart loads them
// all again.
func TestAttack5BrokerMemoryBoundedUnderRequestCycling(t *testing.T) {
	f := newFixture(t)
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	line := strings.Repeat("x", 1024)
	for range keepMax + 500 {
		r, err := f.b.Submit(t.Context(), Request{Kind: KindCommand, Requester: "mallory", RequesterPrincipals: []string{"mallory"},
			Target: "t1", Login: "root", Line: line, Rule: "r", Approvers: []string{"approvers"}, Expires: f.clock.now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if w, _ := f.b.Wait(cancelled, r.ID); w.State != StateCancelled {
			t.Fatalf("state %s", w.State)
		}
		f.clock.add(10 * time.Millisecond)
	}
	if n := len(f.b.List(t.Context(), true)); n > keepMax {
		t.Errorf("the broker holds %d decided requests of one requester in memory (keepMax %d)", n, keepMax)
	}
	f.open(t) // restart
	if n := len(f.b.List(t.Context(), true)); n > keepMax {
		t.Errorf("after a restart the broker loaded %d requests into memory (keepMax %d)", n, keepMax)
	}
}

// Submit stores a command line of any length: a line longer than MaxLine
// cannot be judged (it is held by the first approve rule), so the request
// a requester makes of it carries up to 256 KiB into memory, the index,
// two audit records (requested, cancelled) and every approver's --json.
func TestAttack5SubmitBoundsLine(t *testing.T) {
	f := newFixture(t)
	_, err := f.b.Submit(t.Context(), Request{Kind: KindCommand, Requester: "mallory", RequesterPrincipals: []string{"mallory"},
		Target: "t1", Login: "root", Line: strings.Repeat("x", 250<<10), Rule: "r", Approvers: []string{"approvers"}, Expires: f.clock.now().Add(time.Hour)})
	if err == nil {
		t.Errorf("a request with a %d-byte line was accepted (MaxLine is %d)", 250<<10, MaxLine)
	}
}

// chrt's SCHED_DEADLINE options -P (--sched-period) and -D
// (--sched-deadline) take a value like -T, but only -T is known to: the
// value is taken for the priority and the command is missed. As root
// (login root is the usual case here) `chrt -P 10000000 -T 1000000 -d 0
// rm x` runs rm unheld; checked against util-linux chrt 2.38.
func TestAttack5ChrtDeadlineOptionsHideTheCommand(t *testing.T) {
	for _, line := range []string{
		"chrt -P 10000000 -T 1000000 -d 0 rm x",
		"chrt -D 10000000 -T 1000000 -d 0 rm x",
		"chrt -T 1000000 -P 10000000 -d 0 rm x",
	} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Approve {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
}

// fish runs code given as --command=CODE, and -C CODE / --init-command
// CODE before anything else; the doc lists fish among the shells whose
// code is parsed, but only -c and --command CODE (separate word) are.
func TestAttack5FishCommandForms(t *testing.T) {
	for _, line := range []string{
		"fish --command='rm x'",
		"fish -C 'rm x' -c ls",
		"fish --init-command='rm x' -c ls",
		"fish --init-command 'rm x'",
	} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Approve {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
}

// watch --equexit takes a value (like -q), and xargs --max-lines takes one
// only attached (--max-lines=N, like -l): read the other way round, the
// value of the first is taken for the code (`2 rm x`, command 2), and the
// command after the second for its value (xargs with no command, echo).
// Both run rm unheld (checked with procps-ng watch 4.0.2 and GNU xargs
// 4.9: echo /tmp/zz | xargs --max-lines touch creates /tmp/zz).
func TestAttack5WatchAndXargsLongOptions(t *testing.T) {
	for _, line := range []string{
		"watch --equexit 2 rm x",
		"watch --equexit 2 -n 1 rm x",
		"echo x | xargs --max-lines rm",
		"xargs --max-lines -0 rm",
	} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Approve {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
}

// The requester is recognised by any principal they share with an
// approver, but the two people of a two-person rule only by display name
// (the first principal). One person holding two certificates whose first
// principals differ (bob, and a cert listing bob@corp first; or an admin
// cert bob-admin that also lists bob) is two approvers. Decision keeps
// only the name, so the Broker cannot tell.
func TestAttack5TwoPersonRuleSamePersonTwoCertificates(t *testing.T) {
	f := newFixture(t)
	r := f.submit(t, KindCommand, 2, time.Hour)
	first := Approver{Name: "bob", Principals: []string{"bob", "bob@corp"}, Groups: []string{"approvers"}}
	second := Approver{Name: "bob@corp", Principals: []string{"bob@corp", "bob"}, Groups: []string{"approvers"}}
	if _, err := f.b.Decide(context.Background(), r.ID, first, true, ""); err != nil {
		t.Fatal(err)
	}
	if d, err := f.b.Decide(context.Background(), r.ID, second, true, ""); err == nil {
		t.Fatalf("one person approved a two-person request twice: %s, decisions %+v", d.State, d.Decisions)
	}
}

// sudo takes the word after a lone -h as the remote host (parse_args:
// "If we see a non-option after the -h flag, treat as remote host"), and
// runs the command after it; the sudoers plugin matches its rules against
// that host. The analyser reads -h as help and the host as the command.
func TestAttack5SudoHostOption(t *testing.T) {
	for _, line := range []string{"sudo -h localhost rm x", "sudo -u root -h localhost rm x"} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Approve {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
}

// A shell option that takes a value but is not known to (only -o, -O,
// --rcfile and --init-file are) ends the options early: its value reads
// as the script, -c is never seen, the shell is the command and rm is not
// found. fish's getopt string is "+hPilNnvc:C:p:d:f:D:o:" (-p profile, -d
// debug categories, -f features, -D stack frames, -o debug output), zsh
// takes --emulate MODE, mksh -T TTY, yash --profile FILE. A fail-closed
// reading would treat a later -c (or a cluster with c) as unjudged.
func TestAttack5ShellValueOptionsHideC(t *testing.T) {
	for _, line := range []string{
		"fish -d proc -c 'rm x'",
		"fish --debug proc -c 'rm x'",
		"fish -f x -c 'rm x'",
		"fish -p /dev/null -c 'rm x'",
		"fish -o /dev/null -c 'rm x'",
		"zsh --emulate sh -c 'rm x'",
		"mksh -T - -c 'rm x'",
		"yash --profile f -c 'rm x'",
	} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Approve {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
}

// A variable with the integer attribute (declare/typeset/local -i)
// evaluates every value assigned to it as an arithmetic expression, and
// a[$(cmd)] in that expression runs cmd. The value can be assembled where
// the line shows no $( at all (printf's \x24 is $), so the command is
// invisible. The doc holds arithmetic on non-literal values as unjudged,
// and only gives up on a declare -i variable assigned "on a later line";
// these are all on one line. Each runs touch in bash 5.2.15:
// bash -c "declare -i x=\$(printf 'a[\\x24(touch /tmp/ai1)]')".
func TestAttack5IntegerAttributeEvaluatesValue(t *testing.T) {
	for _, line := range []string{
		`declare -i x=$(printf 'a[\x24(rm y)]')`,
		`typeset -i x=$(printf 'a[\x24(rm y)]')`,
		`f() { local -i x=$(printf 'a[\x24(rm y)]'); }; f`,
		`declare -i x; x=$(printf 'a[\x24(rm y)]')`,
		`declare -i x; x+=$(printf 'a[\x24(rm y)]')`,
		`declare -i x; read x < <(printf 'a[\x24(rm y)]')`,
		`declare -i x; printf -v x 'a[\x24(rm y)]'`,
	} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Approve {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
}

// The [index]= of a compound array assignment is arithmetic like any
// other subscript: a non-literal one evaluates the command's output as an
// expression, and a[$(cmd)] in it runs cmd. a[$x]=1 and ${a[$x]} are held,
// the compound forms are not. Each ran touch in bash 5.2.15:
// bash -c "a=([\$(printf 'a[\\x24(touch /tmp/q1)]')]=1)".
func TestAttack5CompoundArrayIndex(t *testing.T) {
	for _, line := range []string{
		`a=([$(printf 'a[\x24(rm y)]')]=1)`,
		`a+=([$(printf 'a[\x24(rm y)]')]=1)`,
		`declare -a a=([$(printf 'a[\x24(rm y)]')]=1)`,
		`x=$(cat f); a=([$x]=1)`,
	} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Approve {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
}

// bash evaluates what is assigned to OPTIND, RANDOM, SRANDOM and HISTCMD
// as arithmetic (no declare -i needed), by assignment, read or printf -v:
// a[$(cmd)] in the value runs cmd. Each ran touch in bash 5.2.15, e.g.
// bash -c "OPTIND=\$(printf 'a[\\x24(touch /tmp/o1)]')" and
// bash -c "read OPTIND < <(printf 'a[\\x24(touch /tmp/o2)]')".
func TestAttack5ArithmeticShellVariables(t *testing.T) {
	for _, line := range []string{
		`OPTIND=$(printf 'a[\x24(rm y)]')`,
		`RANDOM=$(printf 'a[\x24(rm y)]')`,
		`SRANDOM=$(cat f)`,
		`HISTCMD=$(cat f)`,
		`read OPTIND < <(printf 'a[\x24(rm y)]')`,
		`printf -v RANDOM %s "$(cat f)"`,
	} {
		if v := rmPolicy.Decide(&Subject{}, line); v.Action != Approve {
			t.Errorf("%q: %s, %s", line, v.Action, v.Reason)
		}
	}
}
