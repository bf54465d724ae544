package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// dialParallelism bounds how many connections are being set up at once,
// so that the setup storm stays inside sshd's MaxStartups and the
// handshake timeouts.
const dialParallelism = 16

// statsInterval is how often a bastion's goroutines and RSS are sampled
// during a command-loop window.
const statsInterval = 500 * time.Millisecond

// concurrency measures n concurrent sessions on each of concPaths. Each of
// n in-process x/crypto clients opens a connection with one idle
// interactive session (a pty running cat); then, in each of reps windows,
// every connection runs `exec true` sessions back to back. Through the
// bastion it also reads the bastion child's RSS and goroutines before,
// with the idle sessions open, during the windows, and after closing.
func (e *env) concurrency(ctx context.Context, n, reps int, window time.Duration) ([]Figure, error) {
	var figs []Figure
	for _, path := range concPaths {
		f, err := e.concurrencyPath(ctx, path, n, reps, window)
		if err != nil {
			return nil, fmt.Errorf("%d concurrent sessions on %s: %w", n, path, err)
		}
		figs = append(figs, f...)
	}
	return figs, nil
}

// concTarget is where concurrency clients connect and as whom.
type concTarget struct {
	addr    string
	cfg     *ssh.ClientConfig
	bastion *bastionProc // nil for the direct path
}

func (e *env) concTarget(path string) concTarget {
	cfg := &ssh.ClientConfig{
		Timeout: 30 * time.Second,
		Config:  ssh.Config{Ciphers: []string{cipherAES}},
	}
	if slices.Contains(ssh.SupportedAlgorithms().KeyExchanges, e.o.kex) {
		cfg.KeyExchanges = []string{e.o.kex}
	}
	if path == pathDirect {
		cfg.User = e.o.login
		cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(e.direct)}
		cfg.HostKeyCallback = ssh.FixedHostKey(e.target.HostKey)
		return concTarget{addr: e.target.Addr, cfg: cfg}
	}
	name := e.bastionOf(e.aes, path)
	b := e.bastions[name]
	cfg.User = e.o.login + "@" + targetName
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(e.users[name])}
	cfg.HostKeyCallback = ssh.FixedHostKey(b.hostKey)
	return concTarget{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)), cfg: cfg, bastion: b}
}

// errorLog counts errors and keeps the first few messages.
type errorLog struct {
	mu    sync.Mutex // guards n and first
	n     int
	first []string
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.first) < 3 {
		l.first = append(l.first, err.Error())
	}
}

func (l *errorLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (e *env) concurrencyPath(ctx context.Context, path string, n, reps int, window time.Duration) ([]Figure, error) {
	t := e.concTarget(path)
	b := t.bastion
	// The baseline is taken after a garbage collection, so that what
	// earlier phases left behind does not count.
	var base childStats
	if b != nil {
		var err error
		if base, err = b.stats(ctx, true); err != nil {
			return nil, err
		}
	}

	e.progress("concurrency %s: opening %d connections with an idle session each", path, n)
	start := time.Now()
	var setupErrs errorLog
	clients := openClients(ctx, t, n, &setupErrs)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	if len(clients) == 0 {
		return nil, fmt.Errorf("no connection could be opened: %s", strings.Join(setupErrs.first, "; "))
	}
	e.progress("concurrency %s: %d connections open in %s (%d errors)", path, len(clients), time.Since(start).Round(time.Millisecond), setupErrs.count())

	var figs []Figure
	if b != nil {
		f, err := e.idleFigures(ctx, b, path, n, base, len(clients))
		if err != nil {
			return nil, err
		}
		figs = f
	}

	wfigs, peaks, err := e.windowFigures(ctx, clients, b, path, n, reps, window, &setupErrs)
	if err != nil {
		return nil, err
	}
	figs = append(figs, wfigs...)

	for _, c := range clients {
		c.Close()
	}
	clients = nil
	if b != nil {
		left, err := waitGoroutines(ctx, b, base.goroutines)
		if err != nil {
			return nil, err
		}
		figs = append(figs,
			newFigure(figConcPeakGor, path, cipherAES, n, "goroutines", "lower", peaks, 0),
			newFigure(figConcLeftoverGor, path, cipherAES, n, "goroutines", "lower", []float64{float64(left)}, 0))
	}
	return figs, nil
}

// windowFigures runs reps command-loop windows of length window on clients
// and returns their figures and each window's peak bastion goroutines;
// setupErrs (the connections that failed to open) count in the first.
func (e *env) windowFigures(ctx context.Context, clients []*ssh.Client, b *bastionProc, path string, n, reps int, window time.Duration, setupErrs *errorLog) (figs []Figure, peaks []float64, err error) {
	var rates, p50s, p99s, errCounts, peakRSS []float64
	total := 0
	for rep := range reps {
		w, err := runWindow(ctx, clients, window, b)
		if err != nil {
			return nil, nil, err
		}
		if rep == 0 {
			w.errors.n += setupErrs.n
			w.errors.first = append(setupErrs.first, w.errors.first...)
		}
		if w.errors.n > 0 {
			e.notes = append(e.notes, fmt.Sprintf("%d concurrent sessions on %s, window %d: %d errors, first: %s",
				n, path, rep+1, w.errors.n, strings.Join(w.errors.first, "; ")))
		}
		rate, p50, p99 := w.summary()
		total += len(w.latencies)
		rates, p50s, p99s = append(rates, rate), append(p50s, p50), append(p99s, p99)
		errCounts = append(errCounts, float64(w.errors.n))
		peaks = append(peaks, float64(w.peakGoroutines))
		peakRSS = append(peakRSS, mib(w.peakRSS))
		e.progress("concurrency %s N=%d window %d/%d: %.0f commands/s, p50 %.1f ms, p99 %.1f ms, %d errors",
			path, n, rep+1, reps, rate, p50, p99, w.errors.n)
	}
	figs = []Figure{
		newFigure(figConcRate, path, cipherAES, n, "commands/s", "higher", rates, total),
		newFigure(figConcP50, path, cipherAES, n, "ms", "lower", p50s, 0),
		newFigure(figConcP99, path, cipherAES, n, "ms", "lower", p99s, 0),
		newFigure(figConcErrors, path, cipherAES, n, "errors", "lower", errCounts, 0),
	}
	if b != nil {
		// Against the bastion's memory limit (a goal).
		figs = append(figs, newFigure(figConcPeakRSS, path, cipherAES, n, "MiB", "lower", peakRSS, 0))
	}
	return figs, peaks, nil
}

// idleFigures measures bastion b's memory and goroutines per idle session
// with k sessions open, against base (taken before they opened).
func (e *env) idleFigures(ctx context.Context, b *bastionProc, path string, n int, base childStats, k int) ([]Figure, error) {
	idle, err := b.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	idleGC, err := b.stats(ctx, true)
	if err != nil {
		return nil, err
	}
	// Raw: what the process holds with the sessions open, garbage of
	// their setup included. After GC: what they keep.
	kf := float64(k)
	e.progress("concurrency %s: bastion RSS %.1f MiB idle -> %.1f MiB with %d sessions (%.1f MiB after GC), goroutines %d -> %d",
		path, mib(base.rss), mib(idle.rss), k, mib(idleGC.rss), base.goroutines, idleGC.goroutines)
	return []Figure{
		newFigure(figConcRSS, path, cipherAES, n, "KiB", "lower", []float64{float64(idle.rss-base.rss) / kf / 1024}, 0),
		newFigure(figConcRSSGC, path, cipherAES, n, "KiB", "lower", []float64{float64(idleGC.rss-base.rss) / kf / 1024}, 0),
		newFigure(figConcGoroutines, path, cipherAES, n, "goroutines", "lower", []float64{float64(idleGC.goroutines-base.goroutines) / kf}, 0),
	}, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// openClients dials n connections to t, dialParallelism at a time, each
// with an idle pty session whose remote side has started. It returns the
// ones that worked; failures go to errs. Everything is bounded by a
// deadline after which unfinished connections are closed.
func openClients(ctx context.Context, t concTarget, n int, errs *errorLog) []*ssh.Client {
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(n)*200*time.Millisecond)
	defer cancel()
	var (
		mu      sync.Mutex // guards clients
		clients []*ssh.Client
		wg      sync.WaitGroup
		sem     = make(chan struct{}, dialParallelism)
	)
	for range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs.add(ctx.Err())
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := openClient(ctx, t)
			if err != nil {
				errs.add(err)
				return
			}
			mu.Lock()
			clients = append(clients, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	return clients
}

// openClient dials t and starts an idle interactive session on it.
func openClient(ctx context.Context, t concTarget) (*ssh.Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	// Until the session runs, ctx's end closes the connection, which
	// ends any handshake or read below.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	cc, chans, reqs, err := ssh.NewClientConn(nc, t.addr, t.cfg)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	c := ssh.NewClient(cc, chans, reqs)
	if err := startIdleSession(c); err != nil {
		c.Close()
		return nil, err
	}
	if ctx.Err() != nil {
		c.Close()
		return nil, ctx.Err()
	}
	return c, nil
}

// startIdleSession opens a pty session running cat, as an idle user's
// shell, and waits until it has started. The session lives as long as c.
func startIdleSession(c *ssh.Client) error {
	s, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("open idle session: %w", err)
	}
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		return fmt.Errorf("request pty: %w", err)
	}
	out, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	if err := s.Start("echo " + marker + "; exec cat"); err != nil {
		return fmt.Errorf("start idle session: %w", err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.Contains(sc.Text(), marker) {
			// Nothing more is printed; the pipe's buffer stays empty.
			return nil
		}
	}
	return fmt.Errorf("idle session ended before it started: %v", sc.Err())
}

// window is what one command-loop window measured.
type window struct {
	latencies      []float64 // ms per successful command
	errors         errorLog
	elapsed        time.Duration
	peakGoroutines int
	peakRSS        int64 // bytes
}

// summary returns the window's commands per second and the median and
// 99th percentile of its latencies (sorting them).
func (w *window) summary() (rate, p50, p99 float64) {
	slices.Sort(w.latencies)
	if len(w.latencies) > 0 {
		p50, p99 = percentile(w.latencies, 50), percentile(w.latencies, 99)
	}
	return float64(len(w.latencies)) / w.elapsed.Seconds(), p50, p99
}

// runWindow has every client run `exec true` sessions back to back for
// length, sampling bastion b (if not nil) meanwhile. Commands still running
// at the end finish and count; a minute after the end, connections still
// busy are closed.
func runWindow(ctx context.Context, clients []*ssh.Client, length time.Duration, b *bastionProc) (*window, error) {
	w := &window{}
	wctx, cancel := context.WithTimeout(ctx, length+time.Minute)
	defer cancel()
	stop := context.AfterFunc(wctx, func() {
		for _, c := range clients {
			c.Close()
		}
	})
	var (
		mu        sync.Mutex // guards w.latencies
		wg        sync.WaitGroup
		finished  atomic.Bool
		statsErr  error
		statsDone = make(chan struct{})
	)
	start := time.Now()
	end := start.Add(length)
	for _, c := range clients {
		wg.Go(func() {
			var lat []float64
			for time.Now().Before(end) && wctx.Err() == nil {
				t0 := time.Now()
				if err := runTrue(c); err != nil {
					w.errors.add(err)
					// A dead connection fails at once: back off
					// rather than spin and starve the others.
					time.Sleep(50 * time.Millisecond)
					continue
				}
				lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
			}
			mu.Lock()
			w.latencies = append(w.latencies, lat...)
			mu.Unlock()
		})
	}
	go func() {
		defer close(statsDone)
		if b == nil {
			return
		}
		tick := time.NewTicker(statsInterval)
		defer tick.Stop()
		for !finished.Load() {
			s, err := b.stats(wctx, false)
			if err != nil {
				statsErr = err
				return
			}
			w.peakGoroutines = max(w.peakGoroutines, s.goroutines)
			w.peakRSS = max(w.peakRSS, s.rss)
			select {
			case <-tick.C:
			case <-wctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	w.elapsed = time.Since(start)
	finished.Store(true)
	<-statsDone
	stopped := stop()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if !stopped {
		return nil, errors.New("command loop did not end within a minute of its window; connections closed")
	}
	return w, statsErr
}

// runTrue runs `true` in a new session of c.
func runTrue(c *ssh.Client) error {
	s, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("open session: %w", err)
	}
	defer s.Close()
	if err := s.Run("true"); err != nil {
		return fmt.Errorf("run true: %w", err)
	}
	return nil
}

// waitGoroutines waits up to 10 s for bastion b's goroutine count to
// return to base after every client closed, and returns how many it has
// above base then.
func waitGoroutines(ctx context.Context, b *bastionProc, base int) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := b.stats(ctx, true)
		if err != nil {
			return 0, err
		}
		if s.goroutines <= base || time.Now().After(deadline) {
			return s.goroutines - base, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
