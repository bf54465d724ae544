package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postern/postern/internal/app"
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
	figConcPeakRSS     = "concurrency_rss_peak"
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
	ShellLines      int      `json:"shell_lines,omitempty"`
	ShellReps       int      `json:"shell_reps,omitempty"`
	ShellCatBytes   int64    `json:"shell_cat_bytes,omitempty"`
	Kex             string   `json:"kex,omitempty"`
	Login           string   `json:"target_login"`
	Phases          []string `json:"phases"`
	PrimaryCipher   string   `json:"primary_cipher"`
	SecondaryCipher string   `json:"secondary_cipher"`
	// GC is the garbage collector settings of the bastions (as
	// `postern serve` applies them; GOGC and GOMEMLIMIT in this
	// process's environment reach them).
	GC *app.GCSettings `json:"gc,omitempty"`
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
