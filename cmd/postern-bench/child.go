package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
)

// childCommand is the hidden subcommand that runs one bastion in its own
// process, so that its memory and goroutines are its own:
//
//	postern-bench bastion-child --config FILE [--no-record] [--cpuprofile FILE]
//
// It builds the bastion with internal/app, as `postern serve` does, serves
// the config's targets on the config's listen address and
// speaks a line protocol with the parent: it prints "ready ADDR GC" (GC:
// its garbage collector settings as JSON) once
// listening, then answers each "stats" line on stdin with "ok GOROUTINES
// RSS_BYTES", and "gc" the same way after a garbage collection that returns
// freed memory to the OS. At the end of stdin it drains the bastion (for
// at most childDrain), closes it and exits.
const childCommand = "bastion-child"

// runChild is the bastion-child subcommand.
func runChild(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(childCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "Postern YAML config `file`")
	noRecord := fs.Bool("no-record", false, "run without session recording")
	profile := fs.String("cpuprofile", "", "write a CPU profile to `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	a, gcJSON, err := newChildApp(*cfgPath, *noRecord, stderr)
	if err != nil {
		return err
	}
	if *profile != "" {
		stopProfile, err := startProfile(*profile)
		if err != nil {
			a.Close()
			return err
		}
		defer stopProfile()
	}

	// Run drains and closes the bastion once runCtx ends: when this
	// function returns, before the profile stops.
	runCtx, stop := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { runErr <- a.Run(runCtx) })

	// The reader ends when the parent closes stdin (or exits); done
	// lets it stop sending if this function returned first.
	requests := make(chan string)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(requests)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case requests <- sc.Text():
			case <-done:
				return
			}
		}
	}()

	if _, err := fmt.Fprintf(stdout, "ready %s %s\n", a.Addr(), gcJSON); err != nil {
		return err
	}
	for {
		select {
		case err := <-runErr:
			return fmt.Errorf("serve: %w", err)
		case <-ctx.Done():
			return nil
		case req, ok := <-requests:
			if !ok {
				return nil
			}
			switch req {
			case "gc":
				runtime.GC()
				debug.FreeOSMemory()
				fallthrough
			case "stats":
				fmt.Fprintf(stdout, "ok %d %d\n", runtime.NumGoroutine(), vmRSS())
			default:
				fmt.Fprintf(stdout, "error unknown request %q\n", req)
			}
		}
	}
}

// newChildApp builds and tunes the bastion of config file path as
// `postern serve` does (a nil store turns recording off), and returns it
// with its garbage collector settings as JSON.
func newChildApp(path string, noRecord bool, stderr io.Writer) (*app.App, []byte, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	gcJSON, err := json.Marshal(app.TuneGC(cfg.Performance))
	if err != nil {
		return nil, nil, err
	}
	a, err := app.New(app.Config{Settings: cfg, Log: app.NewLogger(stderr, cfg.LogLevel), NoRecord: noRecord, Drain: childDrain})
	if err != nil {
		return nil, nil, err
	}
	return a, gcJSON, nil
}

// childDrain bounds how long a child lets sessions end when told to stop
// (within the parent's closeTimeout, so that the profile gets written).
const childDrain = 10 * time.Second

// startProfile starts a CPU profile into path; the function it returns
// stops it and closes the file.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// vmRSS returns this process's resident set size in bytes, from
// /proc/self/status (0 if it cannot be read).
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "1234 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// bastionProc is a bastion child process seen from the parent. Its
// methods are safe for concurrent use; Close stops it.
type bastionProc struct {
	name    string
	port    int
	hostKey ssh.PublicKey // set by the caller
	logPath string
	gc      app.GCSettings // the child's garbage collector settings

	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returned
	waitErr error         // set before exited is closed

	mu     sync.Mutex // guards stdin, out, rd and closed: one request and its reply at a time
	stdin  io.WriteCloser
	out    *os.File // the child's stdout; read with deadlines
	rd     *bufio.Reader
	closed bool
}

// childStats is what a bastion child reports.
type childStats struct {
	goroutines int
	rss        int64 // bytes
}

// startBastion starts `self bastion-child` for config cfg, its stderr (the
// bastion's log) going to logPath, and waits until it listens.
func startBastion(ctx context.Context, self, name, cfg string, record bool, profile, logPath string) (*bastionProc, error) {
	args := []string{childCommand, "--config", cfg}
	if !record {
		args = append(args, "--no-record")
	}
	if profile != "" {
		args = append(args, "--cpuprofile", profile)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	b := &bastionProc{name: name, logPath: logPath, exited: make(chan struct{}), out: r, rd: bufio.NewReader(r)}
	b.cmd = exec.Command(self, args...)
	b.cmd.Stdout = w
	b.cmd.Stderr = logf
	// The child dies with this process, even on a crash.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if b.stdin, err = b.cmd.StdinPipe(); err != nil {
		r.Close()
		return nil, err
	}
	if err := b.cmd.Start(); err != nil {
		r.Close()
		return nil, fmt.Errorf("start bastion %s: %w", name, err)
	}
	go func() {
		b.waitErr = b.cmd.Wait()
		close(b.exited)
	}()
	// Under the race detector on two busy cores a start can take a while.
	line, err := b.readLine(ctx, 60*time.Second)
	if err == nil {
		rest, ok := strings.CutPrefix(line, "ready ")
		addr, gcJSON, _ := strings.Cut(rest, " ")
		var ap *net.TCPAddr
		if ap, err = net.ResolveTCPAddr("tcp", addr); ok && err == nil {
			if err = json.Unmarshal([]byte(gcJSON), &b.gc); err == nil {
				b.port = ap.Port
				return b, nil
			}
		}
		err = fmt.Errorf("unexpected first line %q", line)
	}
	b.Close()
	return nil, fmt.Errorf("start bastion %s: %w\n%s", name, err, b.logTail())
}

// readLine reads one line of the child's stdout within timeout. The
// caller holds mu or has not shared b yet.
func (b *bastionProc) readLine(ctx context.Context, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := b.out.SetReadDeadline(deadline); err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { b.out.SetReadDeadline(time.Now()) })
	defer stop()
	line, err := b.rd.ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("read from bastion child: %w", err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// stats asks the child for its goroutine count and RSS, after a garbage
// collection if gc.
func (b *bastionProc) stats(ctx context.Context, gc bool) (childStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return childStats{}, errors.New("bastion child stopped")
	}
	req := "stats\n"
	if gc {
		req = "gc\n"
	}
	if _, err := io.WriteString(b.stdin, req); err != nil {
		return childStats{}, fmt.Errorf("ask bastion %s for stats: %w", b.name, err)
	}
	line, err := b.readLine(ctx, 30*time.Second)
	if err != nil {
		return childStats{}, err
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "ok" {
		return childStats{}, fmt.Errorf("bastion %s: unexpected stats reply %q", b.name, line)
	}
	var s childStats
	var err1, err2 error
	s.goroutines, err1 = strconv.Atoi(f[1])
	s.rss, err2 = strconv.ParseInt(f[2], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return childStats{}, fmt.Errorf("bastion %s: stats reply %q: %w", b.name, line, err)
	}
	return s, nil
}

// closeTimeout bounds a child's orderly exit (closing sessions, sealing
// recordings, writing its profile) before it is killed.
const closeTimeout = 30 * time.Second

// Close ends the child's stdin, which makes it close the bastion and exit,
// and waits for it (killing it after closeTimeout). It reports an exit
// other than a clean one. It is idempotent.
func (b *bastionProc) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.stdin.Close()
	select {
	case <-b.exited:
	case <-time.After(closeTimeout):
		b.cmd.Process.Kill()
		<-b.exited
	}
	b.out.Close()
	if b.waitErr != nil {
		return fmt.Errorf("bastion child: %w", b.waitErr)
	}
	return nil
}

// logTail returns the end of the child's log, for error messages.
func (b *bastionProc) logTail() string {
	data, err := os.ReadFile(b.logPath)
	if err != nil {
		return ""
	}
	const max = 4 << 10
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return "bastion " + b.name + " log (end):\n" + string(data)
}
