package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/testenv"
)

// TestMain lets the test binary stand in for postern-bench when the
// program under test starts its bastion children (os.Executable is the
// test binary then).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole program with tiny parameters and checks that the
// JSON holds every figure of every path, with sensible values.
func TestSmoke(t *testing.T) {
	for _, p := range []string{"ssh", "sshd", "ssh-keygen"} {
		testenv.Require(t, p)
	}
	if os.Geteuid() != 0 {
		if testenv.InCI() {
			t.Fatal("postern-bench needs root (sshd, useradd); CI runs as root")
		}
		t.Skip("postern-bench needs root (sshd, useradd)")
	}
	out := filepath.Join(t.TempDir(), "results", "latest.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{
		"-out", out, "-size", "1MiB", "-reps", "1", "-chacha-reps", "1", "-connects", "3",
		"-echo-samples", "5", "-echo-reps", "1", "-concurrency", "5",
		"-concurrency-duration", "1s", "-concurrency-reps", "1",
		"-shell-lines", "3", "-shell-reps", "2", "-shell-cat-size", "1MiB",
	}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.Bytes(), stderr.Bytes())
	}
	for _, s := range []string{"Bulk throughput", "sftp and scp downloads", "Connection setup", "Keystroke echo", "Shell with an approval rule", "Concurrency", "Negotiated"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, stdout.Bytes())
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("parse %s: %v", out, err)
	}
	if r.Machine.Cores < 1 || r.Machine.OpenSSH == "" || r.Machine.Kernel == "" || r.Machine.Date == "" {
		t.Errorf("machine description incomplete: %+v", r.Machine)
	}
	if len(r.Negotiated) != 8 {
		t.Errorf("negotiated: %d entries, want 8 (5 paths with AES-GCM, 3 with chacha20)", len(r.Negotiated))
	}
	// Every goal of the issues is judged: bulk both ways, recording's
	// cost, connection setup, echo of letters and digits, the shell's
	// three, and errors and
	// RSS for each N.
	// Issue 18's: the masker, and each N's peak RSS against the memory
	// limit; the CPU-per-byte ratios when the relay's CPU was measurable
	// (1 MiB may take less than a clock tick).
	goalCount := 0
	for _, g := range r.Goals {
		if !strings.HasPrefix(g.Name, "bulk_download CPU/B:") {
			goalCount++
		}
	}
	if want := 10 + 3*len(r.Params.Concurrency); goalCount != want {
		t.Errorf("goals: %+v, want %d besides the CPU ratios", r.Goals, want)
	}
	if r.Params.GC == nil || r.Params.GC.GCPercent == 0 || r.Params.GC.MemoryLimit <= 0 {
		t.Errorf("no garbage collector settings in the report: %+v", r.Params.GC)
	}
	if !strings.Contains(stdout.String(), "Bastion garbage collector: GOGC=") {
		t.Errorf("table lacks the garbage collector settings:\n%s", stdout.Bytes())
	}

	type want struct {
		name, cipher string
		paths        []string
		sessions     int
		check        func(Figure) bool
	}
	positive := func(f Figure) bool { return f.Min > 0 && f.Median >= f.Min && f.Max >= f.Median }
	present := func(Figure) bool { return true }
	zero := func(f Figure) bool { return f.Max == 0 }
	four := []string{pathDirect, pathJump, pathPlain, pathPostern}
	conc := []string{pathDirect, pathPlain, pathPostern}
	bulk := []string{pathDirect, pathJump, pathPlain, pathNoRec, pathPostern}
	wants := []want{
		{figDownload, cipherAES, bulk, 0, positive},
		{figUpload, cipherAES, bulk, 0, positive},
		{figDownload, cipherChacha, []string{pathDirect, pathJump, pathPostern}, 0, positive},
		{figUpload, cipherChacha, []string{pathDirect, pathJump, pathPostern}, 0, positive},
		{figConnect, cipherAES, four, 0, positive},
		{figEchoP50, cipherAES, four, 0, positive},
		{figEchoP99, cipherAES, four, 0, positive},
		{figEchoDigitP50, cipherAES, four, 0, positive},
		{figEchoDigitP99, cipherAES, four, 0, positive},
		{figConcRate, cipherAES, conc, 5, positive},
		{figConcP50, cipherAES, conc, 5, positive},
		{figConcP99, cipherAES, conc, 5, positive},
		{figConcErrors, cipherAES, conc, 5, zero},
		// RSS differences of a small N are within the noise and may
		// be negative; they only have to be there.
		{figConcRSS, cipherAES, []string{pathPlain, pathPostern}, 5, present},
		{figConcRSSGC, cipherAES, []string{pathPlain, pathPostern}, 5, present},
		{figConcGoroutines, cipherAES, []string{pathPlain, pathPostern}, 5, positive},
		{figConcPeakGor, cipherAES, []string{pathPlain, pathPostern}, 5, positive},
		{figConcLeftoverGor, cipherAES, []string{pathPlain, pathPostern}, 5, present},
		{figConcPeakRSS, cipherAES, []string{pathPlain, pathPostern}, 5, positive},
		{figMasker, "", []string{pathPostern}, 0, positive},
		{figShellEchoP50, cipherAES, shellPaths, 0, positive},
		{figShellEchoP99, cipherAES, shellPaths, 0, positive},
		{figShellEnterP50, cipherAES, shellPaths, 0, positive},
		{figShellEnterP99, cipherAES, shellPaths, 0, positive},
		{figShellCat, cipherAES, shellPaths, 0, positive},
	}
	// CPU figures: a 1 MiB transfer may take less than one clock tick, so
	// they only have to be in range.
	nonNegative := func(f Figure) bool { return f.Min >= 0 && f.Median >= f.Min && f.Max >= f.Median }
	percent := func(f Figure) bool { return nonNegative(f) && f.Max <= 100 }
	// The proxy's CPU: the bastion's, or the relay sshd's for jump.
	proxies := []string{pathJump, pathPlain, pathNoRec, pathPostern}
	chachaPaths := []string{pathDirect, pathJump, pathPostern}
	for _, fig := range []string{figDownload, figUpload} {
		wants = append(wants,
			want{fig + cpuSuffix, cipherAES, bulk, 0, nonNegative},
			want{fig + busySuffix, cipherAES, bulk, 0, percent},
			want{fig + bastionCPUSuffix, cipherAES, proxies, 0, nonNegative},
			want{fig + cpuSuffix, cipherChacha, chachaPaths, 0, nonNegative},
			want{fig + busySuffix, cipherChacha, chachaPaths, 0, percent},
			want{fig + bastionCPUSuffix, cipherChacha, []string{pathJump, pathPostern}, 0, nonNegative})
	}
	for _, fig := range sftpFigures {
		wants = append(wants,
			want{fig, cipherAES, sftpPaths, 0, positive},
			want{fig + cpuSuffix, cipherAES, sftpPaths, 0, nonNegative},
			want{fig + busySuffix, cipherAES, sftpPaths, 0, percent},
			want{fig + bastionCPUSuffix, cipherAES, []string{pathNoRec, pathPostern}, 0, nonNegative})
	}
	n := 0
	for _, w := range wants {
		for _, path := range w.paths {
			n++
			f, ok := find(r.Figures, w.name, path, w.cipher, w.sessions)
			if !ok {
				t.Errorf("no figure %s for %s (cipher %s, N=%d)", w.name, path, w.cipher, w.sessions)
				continue
			}
			if !w.check(f) {
				t.Errorf("figure %s for %s (cipher %s): implausible %+v", w.name, path, w.cipher, f)
			}
			if f.Reps < 1 || f.Unit == "" {
				t.Errorf("figure %s for %s: no reps or unit: %+v", w.name, path, f)
			}
			hasDirect := path != pathDirect && len(w.paths) > 1 && slices.Contains(w.paths, pathDirect)
			cpu := strings.HasSuffix(w.name, cpuSuffix) || strings.HasSuffix(w.name, busySuffix)
			if hasDirect && !cpu && w.name != figConcErrors && (f.RatioToDirect == nil || *f.RatioToDirect <= 0) {
				t.Errorf("figure %s for %s: no ratio to direct: %+v", w.name, path, f)
			}
		}
	}
	if len(r.Figures) != n {
		t.Errorf("%d figures, want %d", len(r.Figures), n)
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr.Bytes())
	}
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, nil, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Usage: postern-bench") {
		t.Errorf("--help: exit %d, stdout %q", code, stdout.String())
	}
	notJSON := filepath.Join(t.TempDir(), "results.json")
	if err := os.WriteFile(notJSON, []byte("figures: none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-reps", "0"}, {"-size", "1XB"}, {"-phases", "bulk,nope"}, {"-concurrency", "5,x"}, {"extra"},
		{"-baseline", filepath.Join(t.TempDir(), "missing.json")}, {"-baseline", notJSON}} {
		stdout.Reset()
		stderr.Reset()
		if code := run(context.Background(), args, nil, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, stderr.String())
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"256MiB", 256 << 20}, {"1MiB", 1 << 20}, {"64KiB", 64 << 10}, {"1GiB", 1 << 30}, {"1000", 1000}} {
		if got, err := parseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "0", "-1MiB", "MiB", "1.5MiB", "100GiB"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in          []float64
		lo, med, hi float64
	}{
		{in: []float64{3, 1, 2}, lo: 1, med: 2, hi: 3},
		{in: []float64{4, 1, 3, 2}, lo: 1, med: 2.5, hi: 4},
		{in: []float64{7}, lo: 7, med: 7, hi: 7},
	} {
		lo, med, hi := summarize(tc.in)
		if lo != tc.lo || med != tc.med || hi != tc.hi {
			t.Errorf("summarize(%v) = %v %v %v, want %v %v %v", tc.in, lo, med, hi, tc.lo, tc.med, tc.hi)
		}
	}
	s := make([]float64, 100)
	for i := range s {
		s[i] = float64(i + 1)
	}
	if p50, p99, p100 := percentile(s, 50), percentile(s, 99), percentile(s, 100); p50 != 50 || p99 != 99 || p100 != 100 {
		t.Errorf("percentiles of 1..100: p50 %v p99 %v p100 %v", p50, p99, p100)
	}
	if p := percentile([]float64{5}, 99); p != 5 {
		t.Errorf("p99 of one sample = %v", p)
	}
}

func TestParseHops(t *testing.T) {
	log := `debug1: kex: algorithm: curve25519-sha256
debug1: kex: host key algorithm: ssh-ed25519
debug1: kex: server->client cipher: aes128-gcm@openssh.com MAC: <implicit> compression: none
debug1: kex: client->server cipher: aes128-gcm@openssh.com MAC: <implicit> compression: none
debug1: Authenticated to 127.0.0.1
debug1: kex: algorithm: sntrup761x25519-sha512@openssh.com
debug1: kex: host key algorithm: ssh-ed25519
debug1: kex: server->client cipher: chacha20-poly1305@openssh.com MAC: <implicit> compression: none
debug1: kex: client->server cipher: chacha20-poly1305@openssh.com MAC: <implicit> compression: none
`
	got := parseHops(log)
	want := []Hop{
		{Kex: "curve25519-sha256", HostKeyMethod: "ssh-ed25519", ServerClient: cipherAES, ClientServer: cipherAES},
		{Kex: "sntrup761x25519-sha512@openssh.com", HostKeyMethod: "ssh-ed25519", ServerClient: cipherChacha, ClientServer: cipherChacha},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("parseHops = %+v, want %+v", got, want)
	}
}

func TestAddRatios(t *testing.T) {
	figs := []Figure{
		{Name: figDownload, Path: pathDirect, Cipher: cipherAES, Median: 200},
		{Name: figDownload, Path: pathPostern, Cipher: cipherAES, Median: 150},
		{Name: figDownload, Path: pathPostern, Cipher: cipherChacha, Median: 100}, // no direct with chacha
		{Name: figConcRSS, Path: pathPostern, Cipher: cipherAES, Sessions: 5, Median: 100},
	}
	addRatios(figs)
	if r := figs[0].RatioToDirect; r == nil || *r != 1 {
		t.Errorf("direct ratio %v, want 1", r)
	}
	if r := figs[1].RatioToDirect; r == nil || *r != 0.75 {
		t.Errorf("postern ratio %v, want 0.75", r)
	}
	if figs[2].RatioToDirect != nil || figs[3].RatioToDirect != nil {
		t.Error("ratio without a direct counterpart")
	}
}

func TestGoals(t *testing.T) {
	r := &Report{Params: Params{PrimaryCipher: cipherAES, Concurrency: []int{200}}, Figures: []Figure{
		{Name: figDownload, Path: pathJump, Cipher: cipherAES, Median: 100},
		{Name: figDownload, Path: pathNoRec, Cipher: cipherAES, Median: 200},
		{Name: figDownload, Path: pathPostern, Cipher: cipherAES, Median: 180},
		{Name: figConnect, Path: pathJump, Cipher: cipherAES, Median: 300},
		{Name: figConnect, Path: pathPostern, Cipher: cipherAES, Median: 240},
		{Name: figConnect, Path: pathDirect, Cipher: cipherAES, Median: 200},
		{Name: figConcErrors, Path: pathPostern, Cipher: cipherAES, Sessions: 200, Max: 1},
		{Name: figConcRSS, Path: pathPostern, Cipher: cipherAES, Sessions: 200, Median: 170},
		{Name: figConcRate, Path: pathDirect, Cipher: cipherAES, Sessions: 200, Median: 800},
		{Name: figConcRate, Path: pathPostern, Cipher: cipherAES, Sessions: 200, Median: 780},
		{Name: figShellEchoP99, Path: pathPostern, Cipher: cipherAES, Median: 400},
		{Name: figShellEchoP99, Path: pathRules, Cipher: cipherAES, Median: 1500},
		{Name: figShellEnterP99, Path: pathPostern, Cipher: cipherAES, Median: 500},
		{Name: figShellEnterP99, Path: pathRules, Cipher: cipherAES, Median: 2400},
		{Name: figShellCat, Path: pathPostern, Cipher: cipherAES, Median: 100},
		{Name: figShellCat, Path: pathRules, Cipher: cipherAES, Median: 79},
		{Name: figDownload + bastionCPUSuffix, Path: pathPostern, Cipher: cipherAES, Median: 3},
		{Name: figDownload + bastionCPUSuffix, Path: pathNoRec, Cipher: cipherAES, Median: 1.75},
		{Name: figDownload + bastionCPUSuffix, Path: pathJump, Cipher: cipherAES, Median: 1.5},
		{Name: figDownload + cpuSuffix, Path: pathJump, Cipher: cipherAES, Median: 5},
		{Name: figDownload + cpuSuffix, Path: pathDirect, Cipher: cipherAES, Median: 3},
		{Name: figMasker, Path: pathPostern, Median: 3100},
		{Name: figConcPeakRSS, Path: pathPostern, Cipher: cipherAES, Sessions: 200, Max: 900},
	}}
	r.Params.GC = &app.GCSettings{GCPercent: 400, MemoryLimit: 800 << 20}
	addRatios(r.Figures)
	got := map[string]Goal{}
	for _, g := range goals(r) {
		got[g.Name] = g
	}
	want := map[string]struct {
		got float64
		met bool
	}{
		"bulk_download: postern / jump (recording and masking on)":        {1.8, true},
		"bulk_download CPU/B: recording's cost (postern - postern-norec)": {1.25, false},
		"connect: postern / jump":                                         {0.8, true},
		"connect: postern / direct":                                       {1.2, false},
		"concurrency N=200: errors":                                       {1, false},
		"concurrency N=200: bastion RSS per idle session":                 {170, true},
		"concurrency N=200: commands/s postern / direct":                  {0.975, true},
		"shell echo p99: rule in scope - none":                            {1100, false},
		"shell Enter p99 (unflagged line): rule in scope - none":          {1900, true},
		"shell cat: rule in scope / none":                                 {0.79, false},
		"bulk_download CPU/B: bastion / relay sshd's processes":           {2, false},
		"bulk_download CPU/B: bastion / (machine jump - direct)":          {1.5, true},
		"masker on terminal text (CPU time)":                              {3100, true},
		"concurrency N=200: bastion peak RSS within its memory limit":     {900, false},
	}
	if len(got) != len(want) {
		t.Errorf("goals %+v, want %d (no upload or echo figures, so no such goals)", got, len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok || g.Met != w.met || g.Got < w.got-1e-9 || g.Got > w.got+1e-9 {
			t.Errorf("goal %q = %+v (present %v), want got %v met %v", name, g, ok, w.got, w.met)
		}
	}
}

// TestBaseline sets a run's sftp figures beside a baseline file's: ratios
// to direct are compared, and the issue 11 goal judges postern's.
func TestBaseline(t *testing.T) {
	ratio := func(x float64) *float64 { return &x }
	params := Params{PrimaryCipher: cipherAES, BulkBytes: 256 << 20, Kex: "curve25519-sha256"}
	base := &Report{Machine: Machine{Date: "2026-12-05T17:00:00Z", Commit: "abc1234"}, Params: params, Figures: []Figure{
		{Name: figSFTP, Path: pathDirect, Cipher: cipherAES, Unit: "MB/s", Median: 400, RatioToDirect: ratio(1)},
		{Name: figSFTP, Path: pathNoRec, Cipher: cipherAES, Unit: "MB/s", Median: 240, RatioToDirect: ratio(0.6)},
		{Name: figSFTP, Path: pathPostern, Cipher: cipherAES, Unit: "MB/s", Median: 200, RatioToDirect: ratio(0.5)},
		// No scp figures: the baseline predates them.
	}}
	file := filepath.Join(t.TempDir(), "baseline.json")
	if err := writeJSON(file, base); err != nil {
		t.Fatal(err)
	}
	read, err := readBaseline(file)
	if err != nil {
		t.Fatal(err)
	}
	// A busier machine now: direct is slower, and so is postern, but
	// its ratio to direct fell less than its MB/s.
	now := &Report{Params: params, Figures: []Figure{
		{Name: figSFTP, Path: pathDirect, Cipher: cipherAES, Unit: "MB/s", Median: 300, RatioToDirect: ratio(1)},
		{Name: figSFTP, Path: pathNoRec, Cipher: cipherAES, Unit: "MB/s", Median: 150, RatioToDirect: ratio(0.5)},
		{Name: figSFTP, Path: pathPostern, Cipher: cipherAES, Unit: "MB/s", Median: 138, RatioToDirect: ratio(0.46)},
		{Name: figSCP, Path: pathPostern, Cipher: cipherAES, Unit: "MB/s", Median: 150, RatioToDirect: ratio(0.5)},
	}}
	cs, notes := compareBaseline(now, read, file)
	if now.Baseline == nil || now.Baseline.Commit != "abc1234" || now.Baseline.File != file {
		t.Errorf("baseline reference %+v", now.Baseline)
	}
	if len(cs) != 2 {
		t.Fatalf("comparisons %+v, want sftp for postern-norec and postern", cs)
	}
	if c := cs[1]; c.Path != pathPostern || c.Now != 138 || c.Before != 200 || c.Change != 0.92 || c.ChangeMedian != 0.69 {
		t.Errorf("postern comparison %+v, want now/baseline 0.92 (ratios), 0.69 (medians)", c)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], figSCP) {
		t.Errorf("notes %q, want one saying the baseline lacks scp_download", notes)
	}
	busy := *now
	busy.Figures = append(slices.Clone(now.Figures), Figure{Name: figSFTP + busySuffix, Path: pathDirect, Cipher: cipherAES, Median: 99})
	if _, notes := compareBaseline(&busy, read, file); len(notes) != 2 || !strings.Contains(notes[0], "this run: the cores were 99% busy") {
		t.Errorf("notes %q, want one saying this run's cores were saturated", notes)
	}
	now.Comparisons = cs
	var goal *Goal
	for _, g := range goals(now) {
		if strings.HasPrefix(g.Name, figSFTP) {
			goal = &g
		}
	}
	if goal == nil || !goal.Met || goal.Got != 0.92 {
		t.Errorf("sftp goal %+v, want met at 0.92", goal)
	}
	var out bytes.Buffer
	printComparisons(&out, now)
	if want := "sftp_download postern MB/s: now 138 (ratio to direct 0.46), baseline 200 (ratio 0.50), now/baseline = 0.92"; !strings.Contains(out.String(), want) {
		t.Errorf("printed\n%s\nwant a line with %q", out.Bytes(), want)
	}

	// Scanning that costs too much misses the goal.
	slow := *now
	slow.Figures = slices.Clone(now.Figures)
	slow.Figures[2].RatioToDirect = ratio(0.44)
	slow.Comparisons, _ = compareBaseline(&slow, read, file)
	judged := false
	for _, g := range goals(&slow) {
		if strings.HasPrefix(g.Name, figSFTP) {
			judged = true
			if g.Met || g.Got != 0.88 {
				t.Errorf("sftp goal %+v, want not met at 0.88", g)
			}
		}
	}
	if !judged {
		t.Error("no sftp goal for the slower run")
	}

	// Another cipher is not compared at all.
	other := *read
	other.Params.PrimaryCipher = cipherChacha
	if cs, notes := compareBaseline(now, &other, file); len(cs) != 0 || len(notes) != 1 {
		t.Errorf("baseline with another cipher: comparisons %+v, notes %q", cs, notes)
	}
}
