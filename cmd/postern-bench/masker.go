package main

import (
	"io"
	"math/rand/v2"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/postern/postern/mask"
)

// figMasker is the masker's throughput on terminal text, in MB/s of CPU
// time: one mask.Writer (first6last4, as the bastion's output stage)
// taking maskerText in 32 KiB writes, timed by the CPU time of its
// thread, so that other load on the machine counts little.
const figMasker = "masker_terminal_text"

// maskerSize is how much text one repetition masks.
const maskerSize = 64 << 20

// masker measures the masker reps times.
func (e *env) masker(reps int) []Figure {
	text := maskerText()
	var xs []float64
	for rep := range reps {
		mbps := maskOnce(text)
		xs = append(xs, mbps)
		e.progress("masker terminal text rep %d/%d: %.0f MB/s of CPU time", rep+1, reps, mbps)
	}
	return []Figure{newFigure(figMasker, pathPostern, "", 0, "MB/s", "higher", xs, 0)}
}

// maskOnce masks text once and returns MB/s of its thread's CPU time.
func maskOnce(text []byte) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	w := mask.NewWriter(io.Discard, mask.Config{Mode: mask.ModeFirst6Last4, Deadline: -1})
	defer w.Close()
	w.Write(text[:32<<10]) // warm up: the Writer grows its buffer once
	t0 := threadCPU()
	for i := 0; i < len(text); i += 32 << 10 {
		w.Write(text[i:min(i+32<<10, len(text))])
	}
	d := threadCPU() - t0
	if d <= 0 {
		return 0
	}
	return float64(len(text)) / d.Seconds() / 1e6
}

// threadCPU is the CPU time of the calling OS thread.
func threadCPU() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maskerText is maskerSize bytes of terminal output: log lines, psql
// tables, colored ls listings, prose and prompts, with a PAN in about one
// line in 2000; the same mix as the text of mask's BenchmarkMask.
func maskerText() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	num := func(n int) string { return strconv.Itoa(rng.IntN(n)) }
	words := []string{"session", "upstream", "approval", "record", "channel", "request", "granted", "closed", "timeout", "user", "db01", "web02"}
	word := func() string { return words[rng.IntN(len(words))] }
	var lines []string
	for range 4096 {
		var l string
		switch rng.IntN(5) {
		case 0:
			l = "2024-06-" + num(30) + "T10:" + num(60) + ":" + num(60) + "." + num(1000) + "Z INFO  http: GET /api/v1/users/" + num(100000) + " 200 " + num(500) + "ms bytes=" + num(1<<20) + " ua=\"Mozilla/5.0 (X11; Linux x86_64)\" " + word() + "\n"
		case 1:
			l = " " + num(100000) + " | " + word() + "_" + word() + "          | " + num(10000) + "." + num(100) + " | 2024-06-11 10:20:30.123456+00 | t\n"
		case 2:
			l = "-rw-r--r-- 1 postgres postgres " + num(1<<30) + " Jun " + num(30) + " 10:" + num(60) + " \x1b[01;34m" + word() + "\x1b[0m\n"
		case 3:
			l = "The " + word() + " was " + word() + " by the bastion after the " + word() + " reached its limit; see the " + word() + " log for details.\n"
		case 4:
			l = "\x1b[32m" + word() + "\x1b[0m@\x1b[34m" + word() + "\x1b[0m:~$ systemctl status " + word() + ".service\r\n"
		}
		lines = append(lines, l)
	}
	b := make([]byte, 0, maskerSize+4096)
	for len(b) < maskerSize {
		b = append(b, lines[rng.IntN(len(lines))]...)
		if rng.IntN(2000) == 0 {
			b = append(b, "payment card=4111111111111111 ok\n"...)
		}
	}
	return b
}
