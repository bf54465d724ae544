package main

import (
	"io"
	"runtime"
	"syscall"
	"time"

	"github.com/postern/postern/internal/benchdata"
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

// maskerText is maskerSize bytes of terminal output, the text of mask's
// BenchmarkMask.
func maskerText() []byte { return benchdata.TerminalText(maskerSize) }
