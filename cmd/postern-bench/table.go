package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// printTable writes the human-readable tables.
func printTable(w io.Writer, r *Report) {
	printHeader(w, r.Machine)
	if r.Params.GC != nil {
		fmt.Fprintf(w, "Bastion garbage collector: %s.\n", r.Params.GC)
	}
	kex := r.Params.Kex
	if kex == "" {
		kex = "client default"
	}
	for _, cipher := range []string{r.Params.PrimaryCipher, r.Params.SecondaryCipher} {
		printBulk(w, r, cipher, kex)
	}
	printSFTP(w, r)
	if hasFigure(r.Figures, figConnect, "") {
		printConnect(w, r, kex)
	}
	if hasFigure(r.Figures, figEchoP50, "") {
		printEcho(w, r)
	}
	if hasFigure(r.Figures, figShellCat, "") {
		printShell(w, r)
	}
	if hasFigure(r.Figures, figConcRate, "") {
		printConcurrency(w, r)
	}
	printComparisons(w, r)
	printGoals(w, r.Goals)
	if len(r.Goals) > 0 && r.Params.GC != nil {
		fmt.Fprintf(w, "(bastions ran with %s)\n", r.Params.GC)
	}
	printNegotiated(w, r)
}

// printHeader writes the machine and how to read the tables.
func printHeader(w io.Writer, m Machine) {
	fmt.Fprintf(w, "postern-bench %s: %s, %d cores, %d MiB, Linux %s, %s, %s", m.Date, m.CPU, m.Cores, m.MemMiB, m.Kernel, m.OpenSSH, m.Go)
	if m.Commit != "" {
		fmt.Fprintf(w, ", commit %s", m.Commit)
	}
	fmt.Fprintf(w, "\nload average at start %s; run took %s. Shared machine: compare ratios within this run.\n", m.LoadAvg, m.Duration)
	fmt.Fprintln(w, "Each cell: median [min-max] over reps; ×d = median / direct median.")
}

// printBulk writes the bulk tables of cipher, if that phase ran with it.
func printBulk(w io.Writer, r *Report, cipher, kex string) {
	p, m := r.Params, r.Machine
	if !hasFigure(r.Figures, figDownload, cipher) {
		return
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
		return
	}
	fmt.Fprintf(w, "\nCPU per payload byte over the same transfers, ns/B (machine: every process and the kernel, from /proc/stat; proxy: the Postern process, or for jump the relay sshd's processes), and how busy the %d cores were\n", m.Cores)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "path\tdownload machine\tproxy\tbusy %\tupload machine\tproxy\tbusy %\t")
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

// printConnect writes the connection setup table.
func printConnect(w io.Writer, r *Report, kex string) {
	p := r.Params
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

// printEcho writes the keystroke echo tables.
func printEcho(w io.Writer, r *Report) {
	p := r.Params
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
	fmt.Fprintln(w, "\nKeystroke echo of a digit, µs (after a space, so it may begin a card number; Postern shows the echo of typed keys at once, other output may be held up to 20 ms)")
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

// printShell writes the shell phase's table: each path's figures and, on
// postern-rules, the difference from postern.
func printShell(w io.Writer, r *Report) {
	p := r.Params
	fmt.Fprintf(w, "\nShell with an approval rule in scope (bash on the target; %d lines of %d letters × %d sessions per path; cat of %s)\n",
		p.ShellLines, shellLetters, p.ShellReps, sizeString(p.ShellCatBytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "path\techo p50 µs\techo p99 µs\tEnter p50 µs\tEnter p99 µs\tcat MB/s\t")
	for _, path := range shellPaths {
		var cells []string
		for _, fig := range []string{figShellEchoP50, figShellEchoP99, figShellEnterP50, figShellEnterP99, figShellCat} {
			f, ok := find(r.Figures, fig, path, p.PrimaryCipher, 0)
			cells = append(cells, cell(f, ok, 1))
		}
		fmt.Fprintf(tw, "%s\t%s\t\n", path, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// printConcurrency writes the concurrency table.
func printConcurrency(w io.Writer, r *Report) {
	p := r.Params
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

// printNegotiated writes what each path negotiated, the notes and the
// profiles.
func printNegotiated(w io.Writer, r *Report) {
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
