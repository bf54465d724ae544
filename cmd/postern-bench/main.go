// Command postern-bench measures Postern against plain OpenSSH, side by side
// in one run, on loopback only (issue 6): bulk throughput both ways,
// connection setup, keystroke echo latency, and many concurrent sessions.
//
// It starts a real OpenSSH sshd as the target, a second sshd used as a
// plain ProxyJump relay, and Postern bastions in child processes (so their
// memory and goroutines can be read), then drives the OpenSSH client (and,
// for concurrency, in-process x/crypto clients) over four paths:
//
//	direct         ssh straight to the target
//	jump           ssh -J through the relay sshd
//	postern-plain  through Postern with recording and masking off
//	postern-norec  through Postern with masking on, recording off (bulk and sftp only)
//	postern        through Postern with recording and masking on
//
// The sftp phase downloads a file of random bytes with the OpenSSH sftp
// client (and with legacy scp -O) on direct, postern-norec and postern.
//
// Every figure is reported as min/median/max over repetitions with the
// median's ratio to the direct path of the same run, as a table on stdout
// and as JSON (bench/results/latest.json by default). Progress goes to
// stderr. `make bench` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the program at once;
	// children die with it (Pdeathsig).
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Paths, in the order tables list them.
const (
	pathDirect  = "direct"
	pathJump    = "jump"
	pathPlain   = "postern-plain"
	pathNoRec   = "postern-norec"
	pathPostern = "postern"
)

// Which paths each measurement covers.
var (
	bulkPaths    = []string{pathDirect, pathJump, pathPlain, pathNoRec, pathPostern}
	connectPaths = []string{pathDirect, pathJump, pathPlain, pathPostern}
	echoPaths    = []string{pathDirect, pathJump, pathPlain, pathPostern}
	concPaths    = []string{pathDirect, pathPlain, pathPostern}
)

// The ciphers compared. The primary one is forced on every path and leg;
// the secondary set uses a bastion that offers only chacha20-poly1305.
const (
	cipherAES    = "aes128-gcm@openssh.com"
	cipherChacha = "chacha20-poly1305@openssh.com"
)

// Phases, in the order they run.
var allPhases = []string{"bulk", "sftp", "chacha", "connect", "echo", "shell", "concurrency", "soak"}

// options are the command-line settings.
type options struct {
	out          string
	size         int64
	reps         int
	chachaReps   int
	connects     int
	echoSamples  int
	echoReps     int
	conc         []int
	concDuration time.Duration
	soakSessions int
	soakDuration time.Duration
	soakRounds   int
	concReps     int
	shellLines   int
	shellReps    int
	shellCatSize int64
	phases       map[string]bool
	kex          string
	login        string
	profileDir   string
	baseline     string
	keep         bool
}

const usageText = `Usage: postern-bench [flags]

Measures Postern against plain OpenSSH on loopback, in one run: bulk
throughput (download and upload), connection setup, keystroke echo latency,
and N concurrent sessions. It starts a target sshd, a relay sshd for ssh -J,
and Postern bastions as child processes, and compares five paths:

  direct         ssh straight to the target sshd
  jump           ssh -J (ProxyJump) through the relay sshd
  postern-plain  through Postern, recording and masking off
  postern-norec  through Postern, masking on, recording off (bulk, sftp)
  postern        through Postern, recording and masking (first6last4) on
  postern-rules  as postern, with an approval rule in scope (shell phase)

The client forces aes128-gcm@openssh.com on every connection, the relay hop
and both of Postern's legs included. The chacha phase repeats the bulk
figures with chacha20-poly1305@openssh.com, through a bastion whose config
says ciphers: [chacha20-poly1305@openssh.com]. The sftp phase downloads a
file of -size random bytes, made in a temporary directory on the target,
with the OpenSSH sftp client in batch mode (sftp -b, get) and with legacy
scp (scp -O, scp -f on the target) on direct, postern-norec and postern;
each download's size, and once per path its SHA-256, is checked. The shell
phase types into bash on the target through postern and postern-rules in
turns (keystroke echo; Enter on an unflagged line until the next prompt) and
times cat of a -shell-cat-size text file: what judging each line at Enter
costs an interactive session.
The soak phase (not run by default) keeps -soak-sessions interactive
sessions (x/crypto clients, a pty and the login's shell) through postern for
-soak-duration, each running echo once a second and timing its answer; it
reports errors, p50/p99 command latency, and the bastion's goroutines and
RSS before, at peak and after the sessions end (settled, at most 30s).

Every figure is min/median/max over repetitions plus the median's ratio to
the direct path of the same run. With -baseline FILE, the sftp and scp
downloads through postern-norec and postern are set beside those of an
earlier run (its -out file), comparing their ratios to direct: each run's
direct path measures how fast the shared machine was at the time. Issue 11's
goal, sftp through postern at 0.9× the baseline or better, joins the goals. The table goes to stdout, progress to
stderr, the figures to a JSON file (-out). Needs ssh, sshd and ssh-keygen
(scripts/deps.sh installs them) and root, to start sshd and to create the
target login.

A tiny run (about 20 s):
  postern-bench -size 1MiB -reps 1 -chacha-reps 1 -connects 3 \
    -echo-samples 10 -echo-reps 1 -concurrency 5 \
    -concurrency-duration 1s -concurrency-reps 1 \
    -shell-lines 5 -shell-reps 1 -shell-cat-size 1MiB

Flags:
`

// parseOptions parses args. It returns flag.ErrHelp after printing the
// help to stdout for -h/--help.
func parseOptions(args []string, stdout, stderr io.Writer) (*options, error) {
	o := &options{size: 256 << 20}
	fs := flag.NewFlagSet("postern-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "out", "bench/results/latest.json", "write the figures as JSON to `file` (\"\" for none)")
	fs.Func("size", "bulk transfer `size` per run, e.g. 256MiB, 1MiB, 1000000 (default 256MiB)", func(s string) error {
		n, err := parseSize(s)
		o.size = n
		return err
	})
	fs.IntVar(&o.reps, "reps", 3, "repetitions of each bulk transfer with the primary cipher, and of each sftp and scp download")
	fs.IntVar(&o.chachaReps, "chacha-reps", 3, "repetitions of each bulk transfer with chacha20-poly1305")
	fs.IntVar(&o.connects, "connects", 50, "runs of 'ssh HOST true' per path")
	fs.IntVar(&o.echoSamples, "echo-samples", 300, "keystrokes per echo session")
	fs.IntVar(&o.echoReps, "echo-reps", 3, "echo sessions per path (each gives a p50 and a p99)")
	concList := "50,200"
	fs.StringVar(&concList, "concurrency", concList, "comma-separated `counts` of concurrent sessions")
	fs.DurationVar(&o.concDuration, "concurrency-duration", 5*time.Second, "length of each command-loop window")
	fs.IntVar(&o.soakSessions, "soak-sessions", 20, "interactive sessions the soak phase keeps open")
	fs.DurationVar(&o.soakDuration, "soak-duration", 30*time.Second, "how long the soak phase's sessions run commands")
	fs.IntVar(&o.soakRounds, "soak-rounds", 1, "rounds of the soak phase on the same bastion (each reports goroutines and RSS after it)")
	fs.IntVar(&o.concReps, "concurrency-reps", 3, "command-loop windows per concurrency count")
	fs.IntVar(&o.shellLines, "shell-lines", 100, "lines typed per shell session (each gives 10 echo samples and one Enter)")
	fs.IntVar(&o.shellReps, "shell-reps", 3, "shell sessions per path (each gives a p50 and a p99, and one cat)")
	o.shellCatSize = 256 << 20
	fs.Func("shell-cat-size", "`size` of the file the shell phase cats (default 256MiB)", func(s string) error {
		n, err := parseSize(s)
		o.shellCatSize = n
		return err
	})
	phases := strings.Join(defaultPhases, ",")
	fs.StringVar(&phases, "phases", phases, "comma-separated `phases` to run: "+strings.Join(allPhases, ", "))
	fs.StringVar(&o.kex, "kex", "curve25519-sha256", "key exchange the OpenSSH client must use on every connection (\"\" for its default: sntrup761x25519 with sshd, curve25519 with Postern, which lacks sntrup761)")
	fs.StringVar(&o.login, "login", defaultLogin, "account on the target sshd; created (useradd) if it is the default and missing")
	fs.StringVar(&o.profileDir, "cpuprofile-dir", "", "write each bastion's CPU profile to `dir`/BASTION.pprof")
	fs.StringVar(&o.baseline, "baseline", "", "set the sftp and scp downloads beside those of an earlier run's results `file` (-out), as ratios to direct")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, configs, recordings) and print its path")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil, flag.ErrHelp
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := o.check(concList, phases); err != nil {
		return nil, err
	}
	return o, nil
}

// check validates o's flags and reads the concurrency counts and phases.
func (o *options) check(concList, phases string) error {
	if o.size <= 0 || o.shellCatSize <= 0 {
		return errors.New("-size and -shell-cat-size must be positive")
	}
	for name, v := range map[string]int{"-reps": o.reps, "-chacha-reps": o.chachaReps, "-connects": o.connects,
		"-echo-samples": o.echoSamples, "-echo-reps": o.echoReps, "-concurrency-reps": o.concReps,
		"-shell-lines": o.shellLines, "-shell-reps": o.shellReps} {
		if v < 1 || v > 100000 {
			return fmt.Errorf("%s must be from 1 to 100000", name)
		}
	}
	if o.concDuration <= 0 || o.concDuration > time.Hour {
		return errors.New("-concurrency-duration must be positive and at most 1h")
	}
	if o.soakSessions < 1 || o.soakSessions > maxConcurrency || o.soakDuration <= 0 || o.soakDuration > time.Hour || o.soakRounds < 1 || o.soakRounds > 10 {
		return fmt.Errorf("-soak-sessions must be from 1 to %d, -soak-duration positive and at most 1h, -soak-rounds from 1 to 10", maxConcurrency)
	}
	for _, s := range strings.Split(concList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > maxConcurrency {
			return fmt.Errorf("-concurrency: %q is not a count from 1 to %d", s, maxConcurrency)
		}
		o.conc = append(o.conc, n)
	}
	o.phases = make(map[string]bool)
	for _, s := range strings.Split(phases, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		known := false
		for _, p := range allPhases {
			known = known || p == s
		}
		if !known {
			return fmt.Errorf("-phases: unknown phase %q (have %s)", s, strings.Join(allPhases, ", "))
		}
		o.phases[s] = true
	}
	return nil
}

// run is the program: `postern-bench [flags]`, or the hidden
// `postern-bench bastion-child ...` that runs one bastion for it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == childCommand {
		if err := runChild(ctx, args[1:], stdin, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "postern-bench bastion-child:", err)
			return 1
		}
		return 0
	}
	o, err := parseOptions(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "postern-bench:", err)
		return 2
	}
	var base *Report
	if o.baseline != "" {
		// Before the run, not after minutes of it.
		if base, err = readBaseline(o.baseline); err != nil {
			fmt.Fprintln(stderr, "postern-bench:", err)
			return 2
		}
	}
	r, err := bench(ctx, o, stderr)
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted; stopped everything it started")
		}
		fmt.Fprintln(stderr, "postern-bench:", err)
		return 1
	}
	if base != nil {
		var notes []string
		r.Comparisons, notes = compareBaseline(r, base, o.baseline)
		r.Notes = append(r.Notes, notes...)
	}
	r.Goals = goals(r)
	printTable(stdout, r)
	if o.out != "" {
		if err := writeJSON(o.out, r); err != nil {
			fmt.Fprintln(stderr, "postern-bench:", err)
			return 1
		}
		fmt.Fprintln(stderr, "postern-bench: wrote", o.out)
	}
	for _, f := range r.Figures {
		if f.Name == figConcErrors && f.Max > 0 {
			fmt.Fprintf(stderr, "postern-bench: %d concurrent sessions on %s had errors\n", f.Sessions, f.Path)
			return 1
		}
	}
	return 0
}

// bench sets up the environment, runs the phases o asks for, and returns
// the report. Progress goes to log.
func bench(ctx context.Context, o *options, log io.Writer) (*Report, error) {
	start := time.Now()
	e, err := newEnv(ctx, o, log)
	if err != nil {
		return nil, err
	}
	defer e.Close()
	r := &Report{
		Machine: describeMachine(ctx, e.sshBin),
		Params: Params{
			BulkBytes: o.size, BulkReps: o.reps, ChachaReps: o.chachaReps, Connects: o.connects,
			EchoSamples: o.echoSamples, EchoReps: o.echoReps, Concurrency: o.conc,
			ConcDuration: o.concDuration.String(), ConcReps: o.concReps, Kex: o.kex, Login: o.login,
			ShellLines: o.shellLines, ShellReps: o.shellReps, ShellCatBytes: o.shellCatSize,
			PrimaryCipher: cipherAES, SecondaryCipher: cipherChacha,
		},
	}
	for _, p := range allPhases {
		if o.phases[p] {
			r.Params.Phases = append(r.Params.Phases, p)
		}
	}
	if b := e.bastions[bastionFull]; b != nil {
		r.Params.GC = &b.gc
	}
	if r.Negotiated, err = e.checkPaths(ctx); err != nil {
		return nil, err
	}
	figs, err := e.runPhases(ctx, o)
	if err != nil {
		return nil, err
	}
	r.Figures = figs
	addRatios(r.Figures)
	r.Notes = e.notes
	if err := e.stopBastions(); err != nil {
		return nil, err
	}
	r.Profiles = e.profiles
	r.Machine.Duration = time.Since(start).Round(time.Second).String()
	return r, nil
}

// runPhases runs the phases o asks for, in order, and returns their
// figures.
func (e *env) runPhases(ctx context.Context, o *options) ([]Figure, error) {
	var all []Figure
	if o.phases["bulk"] {
		figs, err := e.bulk(ctx, e.aes, o.reps)
		if err != nil {
			return nil, err
		}
		all = append(all, figs...)
		all = append(all, e.masker(max(o.reps, 3))...)
	}
	if o.phases["sftp"] {
		figs, err := e.sftp(ctx, o.reps)
		if err != nil {
			return nil, err
		}
		all = append(all, figs...)
	}
	if o.phases["chacha"] {
		figs, err := e.bulk(ctx, e.chacha, o.chachaReps)
		if err != nil {
			return nil, err
		}
		all = append(all, figs...)
	}
	if o.phases["connect"] {
		figs, err := e.connect(ctx, o.connects)
		if err != nil {
			return nil, err
		}
		all = append(all, figs...)
	}
	if o.phases["echo"] {
		figs, err := e.echo(ctx, o.echoReps, o.echoSamples)
		if err != nil {
			return nil, err
		}
		all = append(all, figs...)
	}
	if o.phases["shell"] {
		figs, err := e.shell(ctx, o.shellReps, o.shellLines, o.shellCatSize)
		if err != nil {
			return nil, err
		}
		all = append(all, figs...)
	}
	if o.phases["soak"] {
		figs, err := e.soak(ctx, o.soakSessions, o.soakDuration, o.soakRounds)
		if err != nil {
			return nil, err
		}
		all = append(all, figs...)
	}
	if o.phases["concurrency"] {
		for _, n := range o.conc {
			figs, err := e.concurrency(ctx, n, o.concReps, o.concDuration)
			if err != nil {
				return nil, err
			}
			all = append(all, figs...)
		}
	}
	return all, nil
}
