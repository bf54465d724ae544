package main

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// Goal is one target the issues set, judged on this run's figures. The
// benchmark reports goals; nothing fails on them.
type Goal struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Unit string  `json:"unit"`
	Met  bool    `json:"met"`
}

// goals judges the figures of r against the goals of the benchmark,
// recording and sftp-scanning issues (the last needs r.Comparisons). A goal whose figures the run did not measure is left
// out.
func goals(r *Report) []Goal {
	var out []Goal
	aes := r.Params.PrimaryCipher
	quot := func(fig, num, den string, sessions int) (float64, bool) {
		a, ok1 := find(r.Figures, fig, num, aes, sessions)
		b, ok2 := find(r.Figures, fig, den, aes, sessions)
		if !ok1 || !ok2 || b.Median == 0 {
			return 0, false
		}
		return a.Median / b.Median, true
	}
	for _, fig := range []string{figDownload, figUpload} {
		if q, ok := quot(fig, pathPostern, pathJump, 0); ok {
			out = append(out, Goal{Name: fig + ": postern / jump (recording and masking on)", Want: ">= 1.00", Got: q, Unit: "×", Met: q >= 1})
		}
	}
	out = append(out, cpuGoals(r)...)
	if q, ok := quot(figConnect, pathPostern, pathJump, 0); ok {
		out = append(out, Goal{Name: "connect: postern / jump", Want: "<= 0.85", Got: q, Unit: "×", Met: q <= 0.85})
	}
	// Issue 18: setup close to a direct connection's.
	if q, ok := quot(figConnect, pathPostern, pathDirect, 0); ok {
		out = append(out, Goal{Name: "connect: postern / direct", Want: "<= 1.10", Got: q, Unit: "×", Met: q <= 1.1})
	}
	if a, ok := find(r.Figures, figEchoP99, pathPostern, aes, 0); ok {
		if d, ok := find(r.Figures, figEchoP99, pathDirect, aes, 0); ok {
			diff := a.Median - d.Median
			out = append(out, Goal{Name: "echo p99: postern - direct", Want: "<= 1000", Got: diff, Unit: "µs", Met: diff <= 1000})
		}
	}
	// Issue 18: a typed digit's echo is not held by the masker.
	if a, ok := find(r.Figures, figEchoDigitP99, pathPostern, aes, 0); ok {
		if d, ok := find(r.Figures, figEchoDigitP99, pathDirect, aes, 0); ok {
			diff := a.Median - d.Median
			out = append(out, Goal{Name: "digit echo p99: postern - direct", Want: "<= 2000", Got: diff, Unit: "µs", Met: diff <= 2000})
		}
	}
	// Issue 11 scans sftp downloads for card numbers; the baseline is a
	// run from before.
	for _, c := range r.Comparisons {
		if c.Name == figSFTP && c.Path == pathPostern {
			out = append(out, Goal{Name: "sftp_download: postern now / baseline (ratios to direct)", Want: ">= 0.90", Got: c.Change, Unit: "×", Met: c.Change >= 0.9})
		}
	}
	for _, n := range r.Params.Concurrency {
		if e, ok := find(r.Figures, figConcErrors, pathPostern, aes, n); ok {
			out = append(out, Goal{Name: fmt.Sprintf("concurrency N=%d: errors", n), Want: "0", Got: e.Max, Met: e.Max == 0})
		}
		// Issue 12: the index's writes no longer hold session starts back.
		if c, ok := find(r.Figures, figConcRate, pathPostern, aes, n); ok && c.RatioToDirect != nil && n >= 200 {
			out = append(out, Goal{Name: fmt.Sprintf("concurrency N=%d: commands/s postern / direct", n), Want: ">= 0.95", Got: *c.RatioToDirect, Unit: "×", Met: *c.RatioToDirect >= 0.95})
		}
		if m, ok := find(r.Figures, figConcRSS, pathPostern, aes, n); ok {
			out = append(out, Goal{Name: fmt.Sprintf("concurrency N=%d: bastion RSS per idle session", n), Want: "<= 256", Got: m.Median, Unit: "KiB", Met: m.Median <= 256})
		}
		// Issue 18: a higher GC percent, with the memory limit keeping
		// the heap bounded.
		if m, ok := find(r.Figures, figConcPeakRSS, pathPostern, aes, n); ok && r.Params.GC != nil && r.Params.GC.MemoryLimit != math.MaxInt64 {
			lim := float64(r.Params.GC.MemoryLimit >> 20)
			out = append(out, Goal{Name: fmt.Sprintf("concurrency N=%d: bastion peak RSS within its memory limit", n), Want: fmt.Sprintf("<= %.0f", lim), Got: m.Max, Unit: "MiB", Met: m.Max <= lim})
		}
	}
	return append(out, shellGoals(r)...)
}

// printGoals writes the goals as a table.
func printGoals(w io.Writer, gs []Goal) {
	if len(gs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nGoals (medians of this run):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "goal\twant\tgot\tmet\t")
	for _, g := range gs {
		met := "no"
		if g.Met {
			met = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%.2f %s\t%s\t\n", g.Name, g.Want, g.Unit, g.Got, g.Unit, met)
	}
	tw.Flush()
}

// cpuGoals are issue 18's CPU goals: the bastion's CPU per byte of a
// download with recording and masking on against what the ProxyJump
// relay costs (as the issue defines it, the machine's CPU on the jump
// path minus the direct path's; and the relay sshd's own processes), and
// the masker's throughput on terminal text.
func cpuGoals(r *Report) []Goal {
	var out []Goal
	aes := r.Params.PrimaryCipher
	b, ok := find(r.Figures, figDownload+bastionCPUSuffix, pathPostern, aes, 0)
	if ok {
		j, ok1 := find(r.Figures, figDownload+cpuSuffix, pathJump, aes, 0)
		d, ok2 := find(r.Figures, figDownload+cpuSuffix, pathDirect, aes, 0)
		if ok1 && ok2 && j.Median > d.Median {
			q := b.Median / (j.Median - d.Median)
			out = append(out, Goal{Name: "bulk_download CPU/B: bastion / (machine jump - direct)", Want: "<= 1.50", Got: q, Unit: "×", Met: q <= 1.5})
		}
		// The relay's own processes carry one layer of encryption
		// fewer than a terminating proxy (the client's inner connection
		// passes through them), and none of the client's second one.
		if relay, ok := find(r.Figures, figDownload+bastionCPUSuffix, pathJump, aes, 0); ok && relay.Median > 0 {
			q := b.Median / relay.Median
			out = append(out, Goal{Name: "bulk_download CPU/B: bastion / relay sshd's processes", Want: "<= 1.50", Got: q, Unit: "×", Met: q <= 1.5})
		}
	}
	// The recording's cost: what the bastion spends per byte with it on,
	// beyond the same path with it off (replacing "recording on ≥ 0.95×
	// off", which measured the neighbours as much as the recording).
	if rec, ok := find(r.Figures, figDownload+bastionCPUSuffix, pathNoRec, aes, 0); ok && b.Median > 0 {
		d := b.Median - rec.Median
		out = append(out, Goal{Name: "bulk_download CPU/B: recording's cost (postern - postern-norec)", Want: "<= 1.00", Got: d, Unit: "ns/B", Met: d <= 1})
	}
	if m, ok := find(r.Figures, figMasker, pathPostern, "", 0); ok {
		out = append(out, Goal{Name: "masker on terminal text (CPU time)", Want: ">= 3000", Got: m.Median, Unit: "MB/s", Met: m.Median >= 3000})
	}
	return out
}
