package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
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
				pid, relay := 0, 0
				if b := e.bastions[e.bastionOf(c, path)]; b != nil {
					pid = b.cmd.Process.Pid
				}
				if path == pathJump {
					relay = e.relay.Pid()
				}
				t, err := e.transfer(ctx, c.file, path, fig == figUpload, pid, relay)
				if err != nil {
					return nil, fmt.Errorf("%s %s with %s: %w", fig, path, c.cipher, err)
				}
				results[fig+" "+path] = append(results[fig+" "+path], t.mbps)
				results[fig+cpuSuffix+" "+path] = append(results[fig+cpuSuffix+" "+path], t.machineNsPerByte)
				results[fig+busySuffix+" "+path] = append(results[fig+busySuffix+" "+path], t.busyPercent)
				if pid != 0 || relay != 0 {
					results[fig+bastionCPUSuffix+" "+path] = append(results[fig+bastionCPUSuffix+" "+path], t.bastionNsPerByte)
				}
				e.progress("%s %-13s %-9s rep %d/%d: %4.0f MB/s, machine %.0f%% busy, %.1f ns/B", strings.SplitN(c.cipher, "-", 2)[0], path, strings.TrimPrefix(fig, "bulk_"), rep+1, reps, t.mbps, t.busyPercent, t.machineNsPerByte)
			}
		}
	}
	var figs []Figure
	for _, fig := range []string{figDownload, figUpload} {
		for _, path := range paths {
			figs = append(figs, newFigure(fig, path, c.cipher, 0, "MB/s", "higher", results[fig+" "+path], 0))
			figs = append(figs, newFigure(fig+cpuSuffix, path, c.cipher, 0, "ns/B", "lower", results[fig+cpuSuffix+" "+path], 0))
			figs = append(figs, newFigure(fig+busySuffix, path, c.cipher, 0, "%", "", results[fig+busySuffix+" "+path], 0))
			if xs := results[fig+bastionCPUSuffix+" "+path]; len(xs) > 0 {
				figs = append(figs, newFigure(fig+bastionCPUSuffix, path, c.cipher, 0, "ns/B", "lower", xs, 0))
			}
		}
	}
	return figs, nil
}

// bastionOf names the bastion that serves path under client config c, ""
// for the paths without one.
func (e *env) bastionOf(c *clientConfig, path string) string {
	switch path {
	case pathPlain:
		return bastionPlain
	case pathNoRec:
		return bastionNoRec
	case pathPostern:
		return c.bastion
	}
	return ""
}

// transferResult is one bulk transfer: payload throughput, and the CPU
// time it took per payload byte, of the whole machine (every process and
// the kernel: ssh, both sshds, the bastion) and of the bastion process.
type transferResult struct {
	mbps             float64
	machineNsPerByte float64
	busyPercent      float64 // of all cores, over the transfer
	bastionNsPerByte float64 // the proxy's: the bastion's, or the relay sshd's (jump); 0 without either
}

// cpuTicks is CPU time so far in clock ticks: the machine's busy and idle
// time over all cores (/proc/stat) and one process's user plus system time
// (/proc/PID/stat).
type cpuTicks struct{ busy, idle, proc float64 }

// clockTick is the unit of /proc's CPU times: USER_HZ, 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

func readCPUTicks(pid int) cpuTicks {
	var t cpuTicks
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		// cpu user nice system idle iowait irq softirq steal ...
		for i, f := range strings.Fields(line) {
			v, _ := strconv.ParseFloat(f, 64)
			switch i {
			case 1, 2, 3, 6, 7, 8:
				t.busy += v
			case 4, 5:
				t.idle += v
			}
		}
	}
	if pid != 0 {
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			// Fields after the command name, which may hold spaces:
			// utime and stime are the 12th and 13th.
			if i := strings.LastIndexByte(string(data), ')'); i >= 0 {
				f := strings.Fields(string(data[i+1:]))
				if len(f) > 12 {
					u, _ := strconv.ParseFloat(f[11], 64)
					s, _ := strconv.ParseFloat(f[12], 64)
					t.proc = u + s
				}
			}
		}
	}
	return t
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
//
// The CPU figures cover the same interval, from /proc (clock ticks of
// 10 ms), for the bastion process pid if it is not 0, or else for the
// process tree of the relay sshd relay if that is not 0 (see treeSampler).
func (e *env) transfer(ctx context.Context, cfg, path string, upload bool, pid, relay int) (transferResult, error) {
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
			return transferResult{}, err
		}
		defer f.Close()
		cmd.Stdin = f
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return transferResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return transferResult{}, err
	}
	defer reap(cmd)
	var start time.Time
	var cpu0 cpuTicks
	var tree *treeSampler
	defer func() {
		if tree != nil {
			tree.Stop()
		}
	}()
	var msgs cappedBuffer
	br := bufio.NewReader(stderr)
	for start.IsZero() {
		line, err := br.ReadString('\n')
		if strings.TrimSpace(line) == marker {
			start = time.Now()
			cpu0 = readCPUTicks(pid)
			if relay != 0 {
				tree = startTreeSampler(relay)
			}
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
	cpu1 := readCPUTicks(pid)
	if tree != nil {
		cpu1.proc = tree.Stop() // cpu0.proc is 0: Stop returns the difference
		tree = nil
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return transferResult{}, fmt.Errorf("timed out\n%s", msgs.Bytes())
	}
	if ctx.Err() != nil {
		return transferResult{}, ctx.Err()
	}
	if err != nil || start.IsZero() {
		return transferResult{}, fmt.Errorf("ssh: %v\n%s", err, msgs.Bytes())
	}
	return newTransferResult(size, end.Sub(start), cpu0, cpu1, pid != 0 || relay != 0), nil
}

// newTransferResult computes the figures of a transfer of size bytes that
// took d, from the CPU times read at its start and end; bastion says
// whether the ticks include a bastion process.
func newTransferResult(size int64, d time.Duration, cpu0, cpu1 cpuTicks, bastion bool) transferResult {
	t := transferResult{mbps: float64(size) / d.Seconds() / 1e6}
	busy, idle := cpu1.busy-cpu0.busy, cpu1.idle-cpu0.idle
	t.machineNsPerByte = busy * float64(clockTick) / float64(size)
	if busy+idle > 0 {
		t.busyPercent = 100 * busy / (busy + idle)
	}
	if bastion {
		t.bastionNsPerByte = (cpu1.proc - cpu0.proc) * float64(clockTick) / float64(size)
	}
	return t
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
