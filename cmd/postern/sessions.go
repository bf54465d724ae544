package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"time"

	"github.com/postern/postern/internal/listing"
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
	rows := make([]listing.Row, 0, len(list))
	problems := 0
	for _, s := range list {
		r := listing.Row{Session: s}
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
	// The admin connection's sessions command prints with the same
	// functions, so both listings are the same.
	render := listing.Sessions
	if *asJSON {
		render = listing.SessionsJSON
	}
	if err := render(stdout, rows); err != nil {
		return err
	}
	return incomplete
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
