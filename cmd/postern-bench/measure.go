package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// bulkLine is the text the bulk transfers carry: terminal-like, with a
// digit run the masker has to look at (too short to be a card number).
const bulkLine = "some terminal text 0123456789 abcdef"

// marker is what remote commands print when they start, so that timing
// can leave out connection setup.
const marker = "postern-bench-go"

// bulk measures download and upload throughput on every path of client
// config c, reps times each. The paths take turns, so that a noisy moment
// of the machine does not fall on one path only.
func (e *env) bulk(ctx context.Context, c *clientConfig, reps int) ([]Figure, error) {
	var paths []string
	for _, p := range bulkPaths {
		// The chacha bastion has recording and masking on: it stands
		// for "postern" only.
		if c.cipher == cipherChacha && (p == pathPlain || p == pathNoRec) {
			continue
		}
		paths = append(paths, p)
	}
	results := make(map[string][]float64) // figure + " " + path
	for rep := range reps {
		for _, path := range paths {
			for _, fig := range []string{figDownload, figUpload} {
				mbps, err := e.transfer(ctx, c.file, path, fig == figUpload)
				if err != nil {
					return nil, fmt.Errorf("%s %s with %s: %w", fig, path, c.cipher, err)
				}
				results[fig+" "+path] = append(results[fig+" "+path], mbps)
				e.progress("%s %-13s %-9s rep %d/%d: %4.0f MB/s", strings.SplitN(c.cipher, "-", 2)[0], path, strings.TrimPrefix(fig, "bulk_"), rep+1, reps, mbps)
			}
		}
	}
	var figs []Figure
	for _, fig := range []string{figDownload, figUpload} {
		for _, path := range paths {
			figs = append(figs, newFigure(fig, path, c.cipher, 0, "MB/s", "higher", results[fig+" "+path], 0))
		}
	}
	return figs, nil
}

// transfer runs one bulk transfer of o.size bytes over path and returns
// its payload throughput in MB/s (10^6 bytes per second). The clock starts
// when the remote command reports on stderr that it started, so key
// exchange and authentication are left out; it stops when ssh exits.
//
// Download output goes straight to /dev/null and upload input comes from
// a file: on this VM a pipe into this process is slower than the SSH path.
// An upload may send up to one channel window (2 MiB with OpenSSH and
// x/crypto alike) before the marker arrives, which favours all paths alike.
func (e *env) transfer(ctx context.Context, cfg, path string, upload bool) (float64, error) {
	size := e.o.size
	// Generous: at least 2 MiB/s, plus a minute.
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(size/(2<<20))*time.Second)
	defer cancel()
	remote := fmt.Sprintf("echo %s >&2; yes '%s' | head -c %d", marker, bulkLine, size)
	if upload {
		remote = fmt.Sprintf("echo %s >&2; exec cat >/dev/null", marker)
	}
	cmd := e.sshCmd(ctx, cfg, path, remote)
	cmd.Stdout = e.devNull
	if upload {
		f, err := os.Open(e.upload)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer reap(cmd)
	var start time.Time
	var msgs cappedBuffer
	br := bufio.NewReader(stderr)
	for start.IsZero() {
		line, err := br.ReadString('\n')
		if strings.TrimSpace(line) == marker {
			start = time.Now()
			break
		}
		msgs.WriteString(line)
		if err != nil {
			break
		}
	}
	io.Copy(&msgs, br) // until ssh exits
	err = cmd.Wait()
	end := time.Now()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return 0, fmt.Errorf("timed out\n%s", msgs.Bytes())
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if err != nil || start.IsZero() {
		return 0, fmt.Errorf("ssh: %v\n%s", err, msgs.Bytes())
	}
	return float64(size) / end.Sub(start).Seconds() / 1e6, nil
}

// connect times `ssh HOST true` n times on each path, the paths taking
// turns, and reports each path's min/median/max in milliseconds.
func (e *env) connect(ctx context.Context, n int) ([]Figure, error) {
	times := make(map[string][]float64)
	for i := range n {
		for _, path := range connectPaths {
			d, err := e.connectOnce(ctx, path)
			if err != nil {
				return nil, fmt.Errorf("connect %s: %w", path, err)
			}
			times[path] = append(times[path], float64(d.Microseconds())/1000)
		}
		if (i+1)%10 == 0 || i+1 == n {
			var s []string
			for _, path := range connectPaths {
				_, med, _ := summarize(times[path])
				s = append(s, fmt.Sprintf("%s %.0f ms", path, med))
			}
			e.progress("connect %d/%d, medians so far: %s", i+1, n, strings.Join(s, ", "))
		}
	}
	var figs []Figure
	for _, path := range connectPaths {
		figs = append(figs, newFigure(figConnect, path, cipherAES, 0, "ms", "lower", times[path], 0))
	}
	return figs, nil
}

// connectOnce runs `ssh HOST true` and returns how long it took, from
// starting the client to its exit.
func (e *env) connectOnce(ctx context.Context, path string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stderr cappedBuffer
	cmd := e.sshCmd(ctx, e.aes.file, path, "true")
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	reap(cmd)
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, stderr.Bytes())
	}
	return d, nil
}
