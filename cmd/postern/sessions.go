package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/postern/postern/recorder"
)

func cmdSessions(args []string, stdout, _ io.Writer) error {
	fs := newFlags("sessions", "sessions [--user U] [--target T] [--since T] [--until T] [--active] [--grep RE] [--json]", stdout)
	af := addAdminFlags(fs)
	user := fs.String("user", "", "only sessions of this identity (principal)")
	target := fs.String("target", "", "only sessions to this target")
	since := fs.String("since", "", "only sessions started at or after `time` (2026-11-25, RFC 3339, or 24h ago)")
	until := fs.String("until", "", "only sessions started before `time`")
	active := fs.Bool("active", false, "only sessions still running")
	grep := fs.String("grep", "", "only sessions whose output, input or markers match `regex`, with each hit's offset")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("sessions: unexpected argument %q", fs.Arg(0))
	}
	now := time.Now()
	f := recorder.Filter{User: *user, Target: *target, Active: *active}
	var err error
	if f.Since, err = parseTime(*since, now); err != nil {
		return usagef("sessions: --since: %v", err)
	}
	if f.Until, err = parseTime(*until, now); err != nil {
		return usagef("sessions: --until: %v", err)
	}
	var re *regexp.Regexp
	if *grep != "" {
		if re, err = regexp.Compile(*grep); err != nil {
			return usagef("sessions: --grep: %v", err)
		}
	}
	store, err := af.store(false)
	if err != nil {
		return err
	}
	list, err := store.List(f)
	if err != nil {
		return err
	}
	type row struct {
		recorder.Session
		Hits []recorder.Hit `json:"hits,omitempty"`
	}
	rows := make([]row, 0, len(list))
	for _, s := range list {
		r := row{Session: s}
		if re != nil {
			hits, err := grepRecording(filepath.Join(store.Dir(), s.Path), re)
			if err != nil {
				return fmt.Errorf("search %s: %w", s.ID, err)
			}
			if len(hits) == 0 {
				continue
			}
			r.Hits = hits
		}
		rows = append(rows, r)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTART\tUSER\tTARGET\tLOGIN\tKIND\tSTATUS\tEXIT\tDURATION\tCOMMAND")
	for _, r := range rows {
		exit := "-"
		switch {
		case r.ExitStatus != nil:
			exit = strconv.Itoa(*r.ExitStatus)
		case r.ExitSignal != "":
			exit = "SIG" + r.ExitSignal
		}
		dur := "-"
		if r.End != nil {
			dur = r.End.Sub(r.Start).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Start.Local().Format("2006-01-02 15:04:05"),
			r.Identity, r.Target, r.Login, r.Kind, r.Status, exit, dur, clip(r.Command, 40))
		for _, h := range r.Hits {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", offset(h.Time), h.Kind, clip(h.Text, 100))
		}
	}
	return tw.Flush()
}

func grepRecording(path string, re *regexp.Regexp) ([]recorder.Hit, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := recorder.NewReader(f)
	if err != nil {
		return nil, err
	}
	return recorder.Grep(r, re, 1000)
}

func offset(sec float64) string {
	return "+" + (time.Duration(sec * float64(time.Second))).Round(time.Millisecond).String()
}

// clip shortens s for a table cell and makes control characters visible.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '·'
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
