package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure names, as they appear in the JSON document.
const (
	figDownload        = "bulk_download"
	figUpload          = "bulk_upload"
	figConnect         = "connect"
	figEchoP50         = "echo_p50"
	figEchoP99         = "echo_p99"
	figEchoDigitP50    = "echo_digit_p50"
	figEchoDigitP99    = "echo_digit_p99"
	figConcRate        = "concurrency_commands"
	figConcP50         = "concurrency_latency_p50"
	figConcP99         = "concurrency_latency_p99"
	figConcErrors      = "concurrency_errors"
	figConcRSS         = "concurrency_rss_per_idle_session"
	figConcRSSGC       = "concurrency_rss_per_idle_session_after_gc"
	figConcGoroutines  = "concurrency_goroutines_per_idle_session"
	figConcPeakGor     = "concurrency_goroutines_peak"
	figConcLeftoverGor = "concurrency_goroutines_left_after_close"
	// figSFTP and figSCP are in sftp.go.

	// Suffixes of the bulk figures' CPU companions: machine CPU (all
	// processes) and bastion process CPU per payload byte, and how busy
	// the machine's cores were.
	cpuSuffix        = "_cpu"
	bastionCPUSuffix = "_bastion_cpu"
	busySuffix       = "_busy"
)

// Figure is one measured quantity on one path: the minimum, median and
// maximum over its repetitions, and the median's ratio to the direct path
// measured in the same run with the same cipher and session count.
type Figure struct {
	Name     string `json:"figure"`
	Path     string `json:"path"`
	Cipher   string `json:"cipher,omitempty"`
	Sessions int    `json:"sessions,omitempty"` // concurrency figures: N
	Unit     string `json:"unit"`
	// Better is "higher" or "lower".
	Better string  `json:"better,omitempty"`
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
	Reps   int     `json:"reps"`
	// Samples is how many measurements each rep summarises (keystrokes
	// per echo session) or, for concurrency_commands, how many commands
	// completed in all windows together.
	Samples int `json:"samples,omitempty"`
	// RatioToDirect is Median divided by the direct path's Median of the
	// same figure, cipher and sessions; absent where the direct path has
	// no such figure (the bastion's memory and goroutines).
	RatioToDirect *float64 `json:"ratio_to_direct,omitempty"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemMiB   int    `json:"mem_mib"`
	Kernel   string `json:"kernel"`
	OpenSSH  string `json:"openssh"`
	Go       string `json:"go"`
	Commit   string `json:"commit,omitempty"`
	Date     string `json:"date"`
	LoadAvg  string `json:"loadavg_at_start"`
	Duration string `json:"duration"`
}

// Negotiated is what `ssh -v` reported for one path and client cipher
// setting: one entry per SSH connection the client made (two for jump).
type Negotiated struct {
	Path   string `json:"path"`
	Cipher string `json:"cipher_asked"`
	Hops   []Hop  `json:"hops"`
}

// Hop is one client connection's key exchange and ciphers.
type Hop struct {
	Kex           string `json:"kex"`
	ClientServer  string `json:"cipher_client_to_server"`
	ServerClient  string `json:"cipher_server_to_client"`
	HostKeyMethod string `json:"host_key_algorithm"`
}

// Report is the JSON document the program writes.
type Report struct {
	Machine    Machine      `json:"machine"`
	Params     Params       `json:"params"`
	Negotiated []Negotiated `json:"negotiated"`
	Figures    []Figure     `json:"figures"`
	Goals      []Goal       `json:"goals"`
	// Baseline and Comparisons are set with -baseline.
	Baseline    *Baseline    `json:"baseline,omitempty"`
	Comparisons []Comparison `json:"baseline_comparisons,omitempty"`
	Notes       []string     `json:"notes,omitempty"`
	Profiles    []string     `json:"cpu_profiles,omitempty"`
}

// Params are the settings of the run.
type Params struct {
	BulkBytes       int64    `json:"bulk_bytes"`
	BulkReps        int      `json:"bulk_reps"`
	ChachaReps      int      `json:"chacha_reps"`
	Connects        int      `json:"connects"`
	EchoSamples     int      `json:"echo_samples"`
	EchoReps        int      `json:"echo_reps"`
	Concurrency     []int    `json:"concurrency"`
	ConcDuration    string   `json:"concurrency_duration"`
	ConcReps        int      `json:"concurrency_reps"`
	Kex             string   `json:"kex,omitempty"`
	Login           string   `json:"target_login"`
	Phases          []string `json:"phases"`
	PrimaryCipher   string   `json:"primary_cipher"`
	SecondaryCipher string   `json:"secondary_cipher"`
}

// newFigure summarises the repetitions xs of a figure.
func newFigure(name, path, cipher string, sessions int, unit, better string, xs []float64, samples int) Figure {
	lo, med, hi := summarize(xs)
	return Figure{
		Name: name, Path: path, Cipher: cipher, Sessions: sessions, Unit: unit, Better: better,
		Min: round(lo), Median: round(med), Max: round(hi), Reps: len(xs), Samples: samples,
	}
}

// summarize returns the minimum, median and maximum of xs (zeros if xs is
// empty). The median of an even count is the mean of the middle two.
func summarize(xs []float64) (lo, med, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return s[0], med, s[n-1]
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must not be empty.
func percentile(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// round keeps three significant decimals so the JSON stays readable.
func round(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	digits := 3 - int(math.Floor(math.Log10(math.Abs(x)))) - 1
	digits = max(digits, 0)
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// addRatios sets RatioToDirect on every figure that has a direct
// counterpart with a non-zero median.
func addRatios(figs []Figure) {
	type key struct {
		name, cipher string
		sessions     int
	}
	direct := make(map[key]float64)
	for _, f := range figs {
		if f.Path == pathDirect {
			direct[key{f.Name, f.Cipher, f.Sessions}] = f.Median
		}
	}
	for i := range figs {
		d, ok := direct[key{figs[i].Name, figs[i].Cipher, figs[i].Sessions}]
		if !ok || d == 0 {
			continue
		}
		// Three significant digits, not two decimals: a ratio under
		// 0.005 (a smoke run's 1 MiB upload on a loaded machine) must
		// not read as zero.
		r := round(figs[i].Median / d)
		figs[i].RatioToDirect = &r
	}
}

// find returns the figure with the given name, path, cipher and sessions.
func find(figs []Figure, name, path, cipher string, sessions int) (Figure, bool) {
	for _, f := range figs {
		if f.Name == name && f.Path == path && f.Cipher == cipher && f.Sessions == sessions {
			return f, true
		}
	}
	return Figure{}, false
}

// writeJSON writes the report to path, creating its directory.
func writeJSON(path string, r *Report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create results directory: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// printTable writes the human-readable tables.
func printTable(w io.Writer, r *Report) {
	m := r.Machine
	fmt.Fprintf(w, "postern-bench %s: %s, %d cores, %d MiB, Linux %s, %s, %s", m.Date, m.CPU, m.Cores, m.MemMiB, m.Kernel, m.OpenSSH, m.Go)
	if m.Commit != "" {
		fmt.Fprintf(w, ", commit %s", m.Commit)
	}
	fmt.Fprintf(w, "\nload average at start %s; run took %s. Shared machine: compare ratios within this run.\n", m.LoadAvg, m.Duration)
	fmt.Fprintln(w, "Each cell: median [min-max] over reps; ×d = median / direct median.")
	p := r.Params
	kex := p.Kex
	if kex == "" {
		kex = "client default"
	}
	for _, cipher := range []string{p.PrimaryCipher, p.SecondaryCipher} {
		if !hasFigure(r.Figures, figDownload, cipher) {
			continue
		}
		reps := p.BulkReps
		if cipher == p.SecondaryCipher {
			reps = p.ChachaReps
		}
		fmt.Fprintf(w, "\nBulk throughput, MB/s of payload (%s through `ssh … cat`, %d reps, timed from the remote command's start; cipher %s on every leg, kex %s)\n",
			sizeString(p.BulkBytes), reps, cipher, kex)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "path\tdownload\t×d\tupload\t×d\t")
		for _, path := range bulkPaths {
			d, ok1 := find(r.Figures, figDownload, path, cipher, 0)
			u, ok2 := find(r.Figures, figUpload, path, cipher, 0)
			if !ok1 && !ok2 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", path, cell(d, ok1, 0), ratio(d, ok1), cell(u, ok2, 0), ratio(u, ok2))
		}
		tw.Flush()
		if !hasFigure(r.Figures, figDownload+cpuSuffix, cipher) {
			continue
		}
		fmt.Fprintf(w, "\nCPU per payload byte over the same transfers, ns/B (machine: every process and the kernel, from /proc/stat; bastion: the Postern process), and how busy the %d cores were\n", m.Cores)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "path\tdownload machine\tbastion\tbusy %\tupload machine\tbastion\tbusy %\t")
		for _, path := range bulkPaths {
			var cells []string
			for _, fig := range []string{figDownload, figUpload} {
				mc, ok1 := find(r.Figures, fig+cpuSuffix, path, cipher, 0)
				bc, ok2 := find(r.Figures, fig+bastionCPUSuffix, path, cipher, 0)
				bu, ok3 := find(r.Figures, fig+busySuffix, path, cipher, 0)
				cells = append(cells, cell(mc, ok1, 1), cell(bc, ok2, 1), cell(bu, ok3, 0))
			}
			if cells[0] == "-" && cells[3] == "-" {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t\n", path, strings.Join(cells, "\t"))
		}
		tw.Flush()
		on, ok1 := find(r.Figures, figDownload+bastionCPUSuffix, pathPostern, cipher, 0)
		off, ok2 := find(r.Figures, figDownload+bastionCPUSuffix, pathNoRec, cipher, 0)
		if ok1 && ok2 {
			fmt.Fprintf(w, "Recording costs the bastion %.1f ns of CPU per byte of output (download, postern − postern-norec medians).\n", on.Median-off.Median)
		}
	}
	printSFTP(w, r)
	if hasFigure(r.Figures, figConnect, "") {
		fmt.Fprintf(w, "\nConnection setup, ms (`ssh HOST true`, %d runs per path, round robin; kex %s)\n", p.Connects, kex)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "path\tsetup\t×d\t")
		for _, path := range connectPaths {
			if f, ok := find(r.Figures, figConnect, path, p.PrimaryCipher, 0); ok {
				fmt.Fprintf(tw, "%s\t%s\t%s\t\n", path, cell(f, ok, 0), ratio(f, ok))
			}
		}
		tw.Flush()
	}
	if hasFigure(r.Figures, figEchoP50, "") {
		fmt.Fprintf(w, "\nKeystroke echo, µs (`ssh -tt`, one byte, %d samples × %d sessions per path; p50/p99 per session)\n", p.EchoSamples, p.EchoReps)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "path\tp50\t×d\tp99\t×d\tp99 - direct p99\t")
		d99, _ := find(r.Figures, figEchoP99, pathDirect, p.PrimaryCipher, 0)
		for _, path := range echoPaths {
			f50, ok50 := find(r.Figures, figEchoP50, path, p.PrimaryCipher, 0)
			f99, ok99 := find(r.Figures, figEchoP99, path, p.PrimaryCipher, 0)
			if !ok50 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%+.0f µs\t\n", path, cell(f50, ok50, 0), ratio(f50, ok50),
				cell(f99, ok99, 0), ratio(f99, ok99), f99.Median-d99.Median)
		}
		tw.Flush()
		fmt.Fprintln(w, "\nKeystroke echo of a digit, µs (after a space, so it may begin a card number: Postern's masker holds it up to 20 ms)")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "path\tp50\t×d\tp99\t×d\t")
		for _, path := range echoPaths {
			f50, ok50 := find(r.Figures, figEchoDigitP50, path, p.PrimaryCipher, 0)
			f99, ok99 := find(r.Figures, figEchoDigitP99, path, p.PrimaryCipher, 0)
			if ok50 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", path, cell(f50, ok50, 0), ratio(f50, ok50), cell(f99, ok99, 0), ratio(f99, ok99))
			}
		}
		tw.Flush()
	}
	if hasFigure(r.Figures, figConcRate, "") {
		fmt.Fprintf(w, "\nConcurrency: N connections, each with one idle pty session open and a loop of `exec true` sessions (%d windows of %s; in-process x/crypto clients)\n",
			p.ConcReps, p.ConcDuration)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "N\tpath\tcommands/s\t×d\tp50 ms\tp99 ms\terrors\tRSS/idle session KiB (after GC)\tgoroutines/idle session\tpeak goroutines\tleft after close\t")
		for _, n := range p.Concurrency {
			for _, path := range concPaths {
				rate, ok := find(r.Figures, figConcRate, path, p.PrimaryCipher, n)
				if !ok {
					continue
				}
				p50, _ := find(r.Figures, figConcP50, path, p.PrimaryCipher, n)
				p99, _ := find(r.Figures, figConcP99, path, p.PrimaryCipher, n)
				errs, _ := find(r.Figures, figConcErrors, path, p.PrimaryCipher, n)
				mem := "-"
				gor, peak, left := "-", "-", "-"
				if f, ok := find(r.Figures, figConcRSS, path, p.PrimaryCipher, n); ok {
					g, _ := find(r.Figures, figConcRSSGC, path, p.PrimaryCipher, n)
					mem = fmt.Sprintf("%.0f (%.0f)", f.Median, g.Median)
				}
				if f, ok := find(r.Figures, figConcGoroutines, path, p.PrimaryCipher, n); ok {
					gor = fmt.Sprintf("%.1f", f.Median)
				}
				if f, ok := find(r.Figures, figConcPeakGor, path, p.PrimaryCipher, n); ok {
					peak = fmt.Sprintf("%.0f", f.Max)
				}
				if f, ok := find(r.Figures, figConcLeftoverGor, path, p.PrimaryCipher, n); ok {
					left = fmt.Sprintf("%.0f", f.Max)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t\n", n, path, cell(rate, true, 0), ratio(rate, true),
					cell(p50, true, 1), cell(p99, true, 1), errs.Max, mem, gor, peak, left)
			}
		}
		tw.Flush()
	}
	printComparisons(w, r)
	printGoals(w, r.Goals)
	if len(r.Negotiated) > 0 {
		fmt.Fprintln(w, "\nNegotiated (ssh -v; jump lists the relay hop first):")
		for _, n := range r.Negotiated {
			var hops []string
			for _, h := range n.Hops {
				hops = append(hops, fmt.Sprintf("%s %s/%s", h.Kex, h.ClientServer, h.ServerClient))
			}
			fmt.Fprintf(w, "  %-14s asked %-30s got %s\n", n.Path, n.Cipher, strings.Join(hops, "; "))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	for _, p := range r.Profiles {
		fmt.Fprintln(w, "bastion CPU profile:", p)
	}
}

// printSFTP writes the sftp phase's table, if it ran.
func printSFTP(w io.Writer, r *Report) {
	p := r.Params
	if !hasFigure(r.Figures, figSFTP, p.PrimaryCipher) {
		return
	}
	fmt.Fprintf(w, "\nsftp and scp downloads, MB/s (%s of random bytes made on the target; `sftp -b` get and `scp -O`, %d reps, timed from the transfer's start; cipher %s, checked on every connection) and the bastion's CPU per byte, ns/B\n",
		sizeString(p.BulkBytes), p.BulkReps, p.PrimaryCipher)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tsftp\t×d\tbastion\tscp -O\t×d\tbastion\t")
	for _, path := range sftpPaths {
		var cells []string
		for _, fig := range sftpFigures {
			f, ok := find(r.Figures, fig, path, p.PrimaryCipher, 0)
			c, okc := find(r.Figures, fig+bastionCPUSuffix, path, p.PrimaryCipher, 0)
			cells = append(cells, cell(f, ok, 0), ratio(f, ok), cell(c, okc, 1))
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", path, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func hasFigure(figs []Figure, name, cipher string) bool {
	for _, f := range figs {
		if f.Name == name && (cipher == "" || f.Cipher == cipher) {
			return true
		}
	}
	return false
}

// cell formats "median [min-max]" with prec decimals.
func cell(f Figure, ok bool, prec int) string {
	if !ok {
		return "-"
	}
	if f.Reps <= 1 {
		return strconv.FormatFloat(f.Median, 'f', prec, 64)
	}
	return fmt.Sprintf("%.*f [%.*f-%.*f]", prec, f.Median, prec, f.Min, prec, f.Max)
}

func ratio(f Figure, ok bool) string {
	if !ok || f.RatioToDirect == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *f.RatioToDirect)
}

// describeMachine reads the CPU model, memory, kernel, OpenSSH and Go
// versions and the load average.
func describeMachine(ctx context.Context, sshBin string) Machine {
	m := Machine{
		Cores:   runtime.NumCPU(),
		Go:      runtime.Version(),
		Date:    time.Now().UTC().Format(time.RFC3339),
		CPU:     "unknown",
		Kernel:  strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		LoadAvg: loadAvg(),
	}
	sc := bufio.NewScanner(strings.NewReader(readFile("/proc/cpuinfo")))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			m.CPU = strings.TrimSpace(v)
			break
		}
	}
	sc = bufio.NewScanner(strings.NewReader(readFile("/proc/meminfo")))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.Atoi(f[1])
			m.MemMiB = kb / 1024
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, sshBin, "-V").CombinedOutput(); err == nil {
		m.OpenSSH = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = string(bytes.TrimSpace(out))
	}
	return m
}

// loadAvg returns the 1, 5 and 15 minute load averages.
func loadAvg() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}
