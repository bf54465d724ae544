package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/postern/postern/recorder"
)

func cmdSessions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sessions", "sessions [--user U] [--target T] [--since T] [--until T] [--active] [--grep RE] [--json]", stdout)
	af := addAdminFlags(fs)
	user := fs.String("user", "", "only sessions of this identity (principal)")
	target := fs.String("target", "", "only sessions to this target")
	since := fs.String("since", "", "only sessions started at or after `time` (2026-11-25, RFC 3339, or 24h ago)")
	until := fs.String("until", "", "only sessions started before `time`")
	active := fs.Bool("active", false, "only sessions still running")
	grep := fs.String("grep", "", "only sessions whose output, input or markers match `regex`, with each hit's offset.\nA recording that cannot be searched (missing, unreadable, or an index path\noutside DATA_DIR/recordings) is reported on stderr and the search goes on;\nthe exit code is then 1, after every hit is printed")
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
	store, _, closeStore, err := af.open(ctx, false)
	if err != nil {
		return err
	}
	defer closeStore()
	list, err := store.List(ctx, f)
	if err != nil {
		return err
	}
	rows := make([]sessionRow, 0, len(list))
	problems := 0
	for _, s := range list {
		r := sessionRow{Session: s}
		if re != nil {
			// One recording that cannot be searched must not hide the
			// hits in the others: it is reported, and the exit code
			// says the search was incomplete.
			hits, err := grepRecording(ctx, store, s, re)
			if err != nil {
				fmt.Fprintf(stderr, "postern: search %s: %s\n", visible(s.ID), visible(err.Error()))
				problems++
			}
			if len(hits) == 0 {
				continue
			}
			r.Hits = hits
		}
		rows = append(rows, r)
	}
	var incomplete error
	if problems > 0 {
		incomplete = fmt.Errorf("sessions --grep: %d of %d recordings could not be searched", problems, len(list))
	}
	if *asJSON {
		if err := writeJSON(stdout, rows); err != nil {
			return err
		}
		return incomplete
	}
	if err := printSessions(stdout, rows); err != nil {
		return err
	}
	return incomplete
}

// sessionRow is one session as sessions lists it, with its --grep hits.
type sessionRow struct {
	recorder.Session
	Hits []recorder.Hit `json:"hits,omitempty"`
}

// printSessions prints rows as a table, each session's hits and transfers
// under it.
func printSessions(stdout io.Writer, rows []sessionRow) error {
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
		// Every cell from the index or a recording is made visible:
		// a control character must neither act on the terminal nor
		// break the table's rows.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", visible(r.ID), r.Start.Local().Format("2006-01-02 15:04:05"),
			visible(r.Identity), visible(r.Target), visible(r.Login), visible(r.Kind), visible(r.Status), visible(exit), dur, clip(r.Command, 40))
		for _, h := range r.Hits {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", offset(h.Time), visible(h.Kind), clip(h.Text, 100))
		}
		transferLines(tw, r.Session)
	}
	return tw.Flush()
}

// grepRecording searches the recording of s; a missing file is an error
// unless the session was sealed without one.
func grepRecording(ctx context.Context, store recorder.Blobs, s recorder.Session, re *regexp.Regexp) ([]recorder.Hit, error) {
	f, err := store.Open(ctx, s.Path)
	if errors.Is(err, fs.ErrNotExist) && s.SHA256 == "" && s.Status != recorder.StatusActive {
		return nil, nil // sealed without a file: nothing was recorded
	}
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

// shownTransfers is how many file records a session's row lists; --json
// has them all.
const shownTransfers = 20

// transferLines lists a transfer channel's files under its row: the
// operation, the path, bytes, card numbers found and the outcome.
func transferLines(w io.Writer, s recorder.Session) {
	for i, t := range s.Transfers {
		if i == shownTransfers {
			fmt.Fprintf(w, "  … %d more\t(sessions --json lists every file)\n", len(s.Transfers)-i+int(s.TransfersOmitted))
			return
		}
		p := t.Path
		if t.To != "" {
			p += " -> " + t.To
		}
		outcome := t.Outcome
		if t.PANs > 0 {
			outcome += fmt.Sprintf(" (%d card numbers)", t.PANs)
		}
		if t.Detail != "" {
			outcome += ": " + t.Detail
		}
		fmt.Fprintf(w, "  %s\t%s\t%d bytes\t%s\n", visible(t.Op), clip(p, 80), t.Bytes, clip(outcome, 100))
	}
	if s.TransfersOmitted > 0 && len(s.Transfers) <= shownTransfers {
		fmt.Fprintf(w, "  … %d more\t(not kept in the index; the recording lists them)\n", s.TransfersOmitted)
	}
}
