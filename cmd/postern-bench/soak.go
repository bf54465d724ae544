package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Soak phase settings that are not flags.
const (
	// soakInterval is how often each session runs a command.
	soakInterval = time.Second
	// soakCommandTimeout bounds one command's round trip.
	soakCommandTimeout = 10 * time.Second
	// soakSettle bounds the wait, after the sessions end, for the
	// bastion's goroutines to come back down.
	soakSettle = 30 * time.Second
	// soakSlack is how many goroutines above the baseline still count as
	// settled (the runtime's and the child's own).
	soakSlack = 5
)

// defaultPhases are those run without -phases: the soak phase (last in
// allPhases) runs only when asked for.
var defaultPhases = allPhases[:len(allPhases)-1]

// Soak figures.
const (
	figSoakErrors  = "soak_errors"
	figSoakP50     = "soak_latency_p50"
	figSoakP99     = "soak_latency_p99"
	figSoakCmds    = "soak_commands"
	figSoakGorBase = "soak_goroutines_before"
	figSoakGorPeak = "soak_goroutines_peak"
	figSoakGorEnd  = "soak_goroutines_after"
	figSoakRSSBase = "soak_rss_before"
	figSoakRSSPeak = "soak_rss_peak"
	figSoakRSSEnd  = "soak_rss_after"
)

// soak opens n interactive sessions (a pty and the login's shell) through
// the recording bastion, and for d has each run `echo $((1+K))` once per
// soakInterval, timing each until its result shows; it does so rounds
// times on the same bastion. It reports the errors, the p50 and p99
// command latency, and the bastion child's goroutines and RSS before
// (after a GC), at their peak during the runs, and after each round's
// sessions ended and the bastion settled (after a GC, waiting at most
// soakSettle): the figures' "after" is the last round's, and growth from
// one round to the next is what a leak would show.
func (e *env) soak(ctx context.Context, n int, d time.Duration, rounds int) ([]Figure, error) {
	b := e.concTarget(pathPostern).bastion
	base, err := b.stats(ctx, true)
	if err != nil {
		return nil, err
	}
	var (
		errs    errorLog
		samples []float64 // milliseconds
		peak    = base
		after   childStats
		afters  []string
	)
	for r := range rounds {
		e.progress("soak: round %d/%d: %d interactive sessions for %s", r+1, rounds, n, d)
		lat, p, err := e.soakRound(ctx, n, d, &errs)
		if err != nil {
			return nil, err
		}
		samples = append(samples, lat...)
		peak.goroutines, peak.rss = max(peak.goroutines, p.goroutines), max(peak.rss, p.rss)
		if after, err = settle(ctx, b, base.goroutines+soakSlack); err != nil {
			return nil, err
		}
		afters = append(afters, fmt.Sprintf("%d/%.1f MiB", after.goroutines, mib(after.rss)))
	}
	slices.Sort(samples)
	figs := []Figure{
		newFigure(figSoakErrors, pathPostern, "", n, "errors", "lower", []float64{float64(errs.count())}, 0),
		newFigure(figSoakCmds, pathPostern, "", n, "commands", "higher", []float64{float64(len(samples))}, 0),
		newFigure(figSoakP50, pathPostern, "", n, "ms", "lower", []float64{quantile(samples, 0.5)}, len(samples)),
		newFigure(figSoakP99, pathPostern, "", n, "ms", "lower", []float64{quantile(samples, 0.99)}, len(samples)),
	}
	for _, g := range []struct {
		name string
		s    childStats
	}{{figSoakGorBase, base}, {figSoakGorPeak, peak}, {figSoakGorEnd, after}} {
		figs = append(figs, newFigure(g.name, pathPostern, "", n, "goroutines", "lower", []float64{float64(g.s.goroutines)}, 0))
	}
	for _, g := range []struct {
		name string
		s    childStats
	}{{figSoakRSSBase, base}, {figSoakRSSPeak, peak}, {figSoakRSSEnd, after}} {
		figs = append(figs, newFigure(g.name, pathPostern, "", n, "MiB", "lower", []float64{float64(g.s.rss) / (1 << 20)}, 0))
	}
	e.progress("soak: %d commands, %d errors %v; p50 %.1f ms, p99 %.1f ms; goroutines %d/%d/%d, RSS %.1f/%.1f/%.1f MiB (before/peak/after); after each round (goroutines/RSS): %s",
		len(samples), errs.count(), errs.first, quantile(samples, 0.5), quantile(samples, 0.99),
		base.goroutines, peak.goroutines, after.goroutines, mib(base.rss), mib(peak.rss), mib(after.rss), strings.Join(afters, ", "))
	return figs, nil
}

// soakRound runs one round of soak: n sessions for d. It returns the
// latencies of the commands that completed and the bastion's peak
// goroutines and RSS, sampled every 2 s; session errors go to errs.
func (e *env) soakRound(ctx context.Context, n int, d time.Duration, errs *errorLog) ([]float64, childStats, error) {
	t := e.concTarget(pathPostern)
	var (
		mu      sync.Mutex // guards samples
		samples []float64
		wg      sync.WaitGroup
		sem     = make(chan struct{}, dialParallelism)
		peak    childStats
	)
	runCtx, cancel := context.WithTimeout(ctx, d+time.Minute+time.Duration(n)*200*time.Millisecond)
	defer cancel()
	end := time.Now().Add(d)
	for i := range n {
		wg.Go(func() {
			lat, err := soakSession(runCtx, t, sem, end)
			mu.Lock()
			samples = append(samples, lat...)
			mu.Unlock()
			if err != nil {
				errs.add(fmt.Errorf("session %d: %w", i, err))
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return samples, peak, ctx.Err()
		case <-tick.C:
			if s, err := t.bastion.stats(ctx, false); err == nil {
				peak.goroutines, peak.rss = max(peak.goroutines, s.goroutines), max(peak.rss, s.rss)
			}
		}
	}
}

// quantile is the q-quantile of sorted xs (nearest rank), 0 for none.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[min(len(xs)-1, int(q*float64(len(xs))))]
}

// settle waits, for at most soakSettle, until the bastion's goroutines
// after a GC are at most want, and returns the last stats read.
func settle(ctx context.Context, b *bastionProc, want int) (childStats, error) {
	deadline := time.Now().Add(soakSettle)
	for {
		s, err := b.stats(ctx, true)
		if err != nil || s.goroutines <= want || time.Now().After(deadline) {
			return s, err
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return s, ctx.Err()
		}
	}
}

// soakSession runs one session's command loop until end, and returns the
// latencies in milliseconds of the commands that completed. sem bounds
// the connections being set up at once.
func soakSession(ctx context.Context, t concTarget, sem chan struct{}, end time.Time) ([]float64, error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	sh, err := openShell(ctx, t)
	<-sem
	if err != nil {
		return nil, err
	}
	defer sh.Close()
	in, out := sh.in, sh.out
	var lat []float64
	var buf []byte
	for k := 0; time.Now().Before(end); k++ {
		start := time.Now()
		if _, err := fmt.Fprintf(in, "echo $((1+%d))\n", k); err != nil {
			return lat, err
		}
		// The answer on a line of its own: after the echoed command's
		// CRLF, or after bash's bracketed-paste sequence and a CR.
		want := []byte(strconv.Itoa(k+1) + "\r\n")
		timeout := time.NewTimer(soakCommandTimeout)
		var at int
		for at = answer(buf, want); at < 0; at = answer(buf, want) {
			select {
			case p, ok := <-out:
				if !ok {
					timeout.Stop()
					return lat, errors.New("the session ended")
				}
				buf = append(buf, p...)
			case <-timeout.C:
				return lat, fmt.Errorf("command %d: no answer in %s; last output %q", k, soakCommandTimeout, buf[max(0, len(buf)-80):])
			case <-ctx.Done():
				timeout.Stop()
				return lat, ctx.Err()
			}
		}
		timeout.Stop()
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
		buf = buf[at:]
		wait := time.NewTimer(time.Until(start.Add(soakInterval)))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return lat, ctx.Err()
		}
	}
	in.Write([]byte("exit\n"))
	return lat, nil
}

// soakShell is an interactive session: the login's shell on a pty. out
// delivers what it prints, in chunks, until Close, which waits for its
// reader.
type soakShell struct {
	c    *ssh.Client
	in   io.Writer
	out  chan []byte // closed when the shell's output ends
	done chan struct{}
	wg   sync.WaitGroup
}

// openShell dials t and starts the login's shell on a pty.
func openShell(ctx context.Context, t concTarget) (*soakShell, error) {
	var d net.Dialer
	dialCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	nc, err := d.DialContext(dialCtx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	// Until the shell runs, dialCtx's end closes the connection, which
	// ends any handshake or request below.
	stop := context.AfterFunc(dialCtx, func() { nc.Close() })
	defer stop()
	cc, chans, reqs, err := ssh.NewClientConn(nc, t.addr, t.cfg)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	sh := &soakShell{c: ssh.NewClient(cc, chans, reqs), out: make(chan []byte, 16), done: make(chan struct{})}
	sess, err := sh.c.NewSession()
	if err != nil {
		sh.c.Close()
		return nil, err
	}
	in, err1 := sess.StdinPipe()
	r, err2 := sess.StdoutPipe()
	if err := errors.Join(err1, err2, sess.RequestPty("xterm", 40, 120, ssh.TerminalModes{}), sess.Shell()); err != nil {
		sh.c.Close()
		return nil, fmt.Errorf("start shell: %w", err)
	}
	sh.in = in
	sh.wg.Go(func() { sh.read(r) })
	return sh, nil
}

// read passes r's chunks to out until r ends or Close.
func (sh *soakShell) read(r io.Reader) {
	defer close(sh.out)
	for {
		p := make([]byte, 4096)
		n, err := r.Read(p)
		if n > 0 {
			select {
			case sh.out <- p[:n]:
			case <-sh.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Close ends the connection and waits for the reader.
func (sh *soakShell) Close() {
	close(sh.done)
	sh.c.Close()
	sh.wg.Wait()
}

// answer returns where the line want (a number and CRLF) ends in buf, -1
// if it is not there yet.
func answer(buf, want []byte) int {
	for off := 0; ; {
		i := bytes.Index(buf[off:], want)
		if i < 0 {
			return -1
		}
		if i += off; i > 0 && (buf[i-1] == '\n' || buf[i-1] == '\r') {
			return i + len(want)
		}
		off = i + 1
	}
}
