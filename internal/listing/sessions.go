package listing

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/postern/postern/recorder"
)

// Row is one entry of a sessions listing: a session and, when the listing
// was a search, its hits. Its JSON is the session's fields plus "hits".
type Row struct {
	recorder.Session
	Hits []recorder.Hit `json:"hits,omitempty"`
}

// Rows wraps sessions as rows without hits.
func Rows(list []recorder.Session) []Row {
	rows := make([]Row, len(list))
	for i, s := range list {
		rows[i] = Row{Session: s}
	}
	return rows
}

// Sessions writes rows as the table `postern sessions` prints: one line per
// session, its search hits and transferred files indented below it. Every
// cell from the index or a recording is made visible first.
//
// The session lines are laid out as one table, so their columns line up
// however many lines sit between them; the lines under a session are laid
// out among themselves. (One tabwriter for both would end every column at
// each indented line, and rows would lose their alignment.)
func Sessions(w io.Writer, rows []Row) error {
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
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
		// A control character must neither act on the terminal nor
		// break the table's rows.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", Visible(r.ID), r.Start.Local().Format("2006-01-02 15:04:05"),
			Visible(r.Identity), Visible(r.Target), Visible(r.Login), Visible(r.Kind), Visible(r.Status), Visible(exit), dur, Clip(r.Command, 40))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	lines := bytes.SplitAfter(table.Bytes(), []byte("\n"))
	if _, err := w.Write(lines[0]); err != nil {
		return err
	}
	for i, r := range rows {
		if _, err := w.Write(lines[i+1]); err != nil {
			return err
		}
		under := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, h := range r.Hits {
			fmt.Fprintf(under, "  %s\t%s\t%s\n", offset(h.Time), Visible(h.Kind), Clip(h.Text, 100))
		}
		transferLines(under, r.Session)
		forwardLine(under, r.Session)
		if err := under.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// SessionsJSON writes rows as the JSON document `postern sessions --json`
// prints: an array, escaped as WriteJSON does.
func SessionsJSON(w io.Writer, rows []Row) error { return WriteJSON(w, rows) }

func offset(sec float64) string {
	return "+" + (time.Duration(sec * float64(time.Second))).Round(time.Millisecond).String()
}

// forwardLine describes a forwarded connection under its row: where it
// went, from where, what it carried and why it ended.
func forwardLine(w io.Writer, s recorder.Session) {
	f := s.Forward
	if f == nil {
		return
	}
	line := fmt.Sprintf("  forward\t%s:%d %s from %s\t%d bytes to target, %d to client", Visible(f.Host), f.Port, Visible(f.Protocol),
		Visible(f.Originator), s.BytesIn, s.BytesOut)
	if f.Protocol == "postgres" && (f.Database != "" || f.Statements > 0) {
		line += fmt.Sprintf("\tdatabase %s, user %s: %d statements, %d errors, %d card numbers masked",
			Visible(f.Database), Visible(f.DBUser), f.Statements, f.Errors, s.MaskedPANs)
	}
	if f.CloseReason != "" {
		line += "\t" + Clip(f.CloseReason, 100)
	}
	fmt.Fprintln(w, line)
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
		fmt.Fprintf(w, "  %s\t%s\t%d bytes\t%s\n", Visible(t.Op), Clip(p, 80), t.Bytes, Clip(outcome, 100))
	}
	if s.TransfersOmitted > 0 && len(s.Transfers) <= shownTransfers {
		fmt.Fprintf(w, "  … %d more\t(not kept in the index; the recording lists them)\n", s.TransfersOmitted)
	}
}
