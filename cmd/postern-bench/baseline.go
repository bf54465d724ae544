package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Baseline names the earlier run (-baseline FILE) this run's figures are
// set beside.
type Baseline struct {
	File    string `json:"file"`
	Date    string `json:"date"`
	Commit  string `json:"commit,omitempty"`
	LoadAvg string `json:"loadavg_at_start"`
}

// Comparison is one figure of this run beside the same figure (name,
// path, cipher) of the baseline run. Both runs' medians are given with
// their ratios to the direct path of their own run.
type Comparison struct {
	Name        string  `json:"figure"`
	Path        string  `json:"path"`
	Cipher      string  `json:"cipher"`
	Unit        string  `json:"unit"`
	Now         float64 `json:"median_now"`
	NowRatio    float64 `json:"ratio_to_direct_now"`
	Before      float64 `json:"median_baseline"`
	BeforeRatio float64 `json:"ratio_to_direct_baseline"`
	// Change is NowRatio / BeforeRatio: what the goals judge. Each run's
	// direct path measures how fast the shared machine was at the time,
	// so this quotient moves less with other load than the medians'
	// quotient, ChangeMedian.
	Change       float64 `json:"now_over_baseline"`
	ChangeMedian float64 `json:"now_over_baseline_medians"`
}

// comparedFigures are the figures -baseline compares, on the paths in
// comparedPaths: the sftp and scp downloads issue 11 must keep at 0.9× or
// better while it scans them.
var (
	comparedFigures = sftpFigures
	comparedPaths   = []string{pathNoRec, pathPostern}
)

// saturated is the machine's busy percentage over direct sftp downloads
// above which a run counts as disturbed by other work.
const saturated = 95

// readBaseline reads a report that an earlier run wrote with -out.
func readBaseline(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	defer f.Close()
	var r Report
	// A results file is a few tens of KiB; 16 MiB is plenty.
	if err := json.NewDecoder(io.LimitReader(f, 16<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("read baseline %s: %w", path, err)
	}
	if r.Params.PrimaryCipher == "" || len(r.Figures) == 0 {
		return nil, fmt.Errorf("read baseline %s: not a postern-bench results file (no cipher or no figures)", path)
	}
	return &r, nil
}

// compareBaseline sets the compared figures of r beside those of base,
// read from file, and returns notes on what could not be compared or
// makes the comparison weaker.
func compareBaseline(r, base *Report, file string) ([]Comparison, []string) {
	r.Baseline = &Baseline{File: file, Date: base.Machine.Date, Commit: base.Machine.Commit, LoadAvg: base.Machine.LoadAvg}
	var notes []string
	if base.Params.PrimaryCipher != r.Params.PrimaryCipher {
		return nil, []string{fmt.Sprintf("baseline %s used cipher %s, this run %s: not compared", file, base.Params.PrimaryCipher, r.Params.PrimaryCipher)}
	}
	if base.Params.BulkBytes != r.Params.BulkBytes {
		notes = append(notes, fmt.Sprintf("baseline %s transferred %s per run, this run %s", file, sizeString(base.Params.BulkBytes), sizeString(r.Params.BulkBytes)))
	}
	if base.Params.Kex != r.Params.Kex {
		notes = append(notes, fmt.Sprintf("baseline %s used key exchange %q, this run %q", file, base.Params.Kex, r.Params.Kex))
	}
	cipher := r.Params.PrimaryCipher
	// Saturated cores mean other work competed with the transfers: the
	// direct path then swings more than the others, and so do ratios.
	for _, run := range []struct {
		name string
		r    *Report
	}{{"this run", r}, {"baseline " + file, base}} {
		if b, ok := find(run.r.Figures, figSFTP+busySuffix, pathDirect, cipher, 0); ok && b.Median >= saturated {
			notes = append(notes, fmt.Sprintf("%s: the cores were %.0f%% busy during direct sftp downloads (about 80%% when nothing else runs): other work competed, so its ratios are less reliable", run.name, b.Median))
		}
	}
	var out []Comparison
	for _, name := range comparedFigures {
		for _, path := range comparedPaths {
			now, ok1 := find(r.Figures, name, path, cipher, 0)
			before, ok2 := find(base.Figures, name, path, cipher, 0)
			if !ok1 {
				continue // not measured in this run: nothing to say
			}
			if !ok2 || before.RatioToDirect == nil || *before.RatioToDirect == 0 || before.Median == 0 {
				notes = append(notes, fmt.Sprintf("baseline %s has no %s figure with a ratio to direct for %s", file, name, path))
				continue
			}
			if now.RatioToDirect == nil {
				continue
			}
			out = append(out, Comparison{
				Name: name, Path: path, Cipher: cipher, Unit: now.Unit,
				Now: now.Median, NowRatio: *now.RatioToDirect,
				Before: before.Median, BeforeRatio: *before.RatioToDirect,
				Change:       round(*now.RatioToDirect / *before.RatioToDirect),
				ChangeMedian: round(now.Median / before.Median),
			})
		}
	}
	return out, notes
}

// printComparisons writes r's comparisons with its baseline.
func printComparisons(w io.Writer, r *Report) {
	if r.Baseline == nil || len(r.Comparisons) == 0 {
		return
	}
	b := r.Baseline
	fmt.Fprintf(w, "\nAgainst the baseline %s (%s, commit %s, load average at start %s). now/baseline divides the ratios to direct: each run's direct path measures how fast the shared machine was then.\n",
		b.File, b.Date, b.Commit, b.LoadAvg)
	for _, c := range r.Comparisons {
		fmt.Fprintf(w, "  %s %s %s: now %.0f (ratio to direct %.2f), baseline %.0f (ratio %.2f), now/baseline = %.2f (medians alone: %.2f)\n",
			c.Name, c.Path, c.Unit, c.Now, c.NowRatio, c.Before, c.BeforeRatio, c.Change, c.ChangeMedian)
	}
}
