package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/recorder"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"
)

// adminFlags are the flags every admin command takes to find the data.
type adminFlags struct {
	dir, cfg *string
}

func addAdminFlags(fs interface {
	String(name, value, usage string) *string
}) adminFlags {
	return adminFlags{
		dir: fs.String("data-dir", "", "bastion data `dir`ectory (default: ./postern-demo if present)"),
		cfg: fs.String("config", "", "bastion config `file` (its data_dir is used)"),
	}
}

func (a adminFlags) store(withKey bool) (*recorder.Store, error) {
	d, err := dataDir(*a.dir, *a.cfg)
	if err != nil {
		return nil, err
	}
	if !withKey {
		return recorder.OpenStore(d, nil), nil
	}
	auth, err := openExisting(d)
	if err != nil {
		return nil, err
	}
	return recorder.OpenStore(d, auth.AuditKey), nil
}

// parseTime accepts RFC 3339, a date (YYYY-MM-DD, local time), or a
// duration meaning that long ago ("24h").
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use 2026-11-25, 2026-11-25T14:00:00Z or a duration ago like 24h", s)
}

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

func cmdPlay(ctx context.Context, args []string, stdin io.Reader, stdout, _ io.Writer) error {
	fs := newFlags("play", "play [flags] ID|FILE", stdout)
	af := addAdminFlags(fs)
	speed := fs.Float64("speed", 1, "playback speed factor")
	idle := fs.Duration("idle-limit", 0, "cap pauses between frames at this `duration` (e.g. 2s)")
	from := fs.Duration("from", 0, "start at this offset (`duration` into the session)")
	fromMatch := fs.String("from-match", "", "start just before the first output matching `regex`")
	cat := fs.Bool("cat", false, "print the output without timing, like asciinema cat")
	// Flags may follow the ID: `postern play ID --cat`.
	var pos []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return usagef("play: give one session ID or .cast file (see 'postern sessions')")
	}
	if *speed <= 0 {
		return usagef("play: --speed must be positive")
	}
	path, err := recordingPath(af, pos[0])
	if err != nil {
		return err
	}
	open := func() (*recorder.Reader, func(), error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		r, err := recorder.NewReader(f)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return r, func() { f.Close() }, nil
	}
	r, done, err := open()
	if err != nil {
		return err
	}
	defer func() { done() }() // done is replaced when --from-match reopens the file
	if *cat {
		return recorder.Cat(r, stdout)
	}
	start := *from
	if *fromMatch != "" {
		re, err := regexp.Compile(*fromMatch)
		if err != nil {
			return usagef("play: --from-match: %v", err)
		}
		hits, err := recorder.Grep(r, re, 1)
		if err != nil {
			return err
		}
		if len(hits) == 0 {
			return fmt.Errorf("no output in %s matches %q", pos[0], *fromMatch)
		}
		// Just before the hit: the frames up to it are drawn at once.
		start = max(time.Duration(hits[0].Time*float64(time.Second))-time.Millisecond, 0)
		done()
		if r, done, err = open(); err != nil {
			return err
		}
	}
	keys, restore := terminalKeys(stdin)
	defer restore()
	if keys != nil {
		// The recording may have hidden the cursor or left colours
		// set: undo that too.
		defer io.WriteString(stdout, "\x1b[0m\x1b[?25h")
	}
	err = recorder.Play(ctx, r, stdout, recorder.PlayOptions{Speed: *speed, IdleLimit: *idle, From: start}, keys)
	if errors.Is(err, context.Canceled) {
		return nil // SIGINT or SIGTERM: a normal way to stop watching
	}
	return err
}

// terminalKeys puts a terminal stdin into raw mode and delivers key presses;
// restore puts the terminal back (deferred, so it runs on q, Ctrl-C, the
// end of the recording and errors alike). A non-terminal stdin gives no
// keys.
func terminalKeys(stdin io.Reader) (<-chan byte, func()) {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, func() {}
	}
	old, err := term.MakeRaw(int(f.Fd()))
	if err != nil {
		return nil, func() {}
	}
	keys := make(chan byte, 16)
	// The reader goroutine blocks in Read and ends when the process
	// does: a terminal read cannot be cancelled portably.
	go func() {
		var b [1]byte
		for {
			if n, err := f.Read(b[:]); err != nil || n == 0 {
				close(keys)
				return
			}
			select {
			case keys <- b[0]:
			default: // a key pressed faster than playback handles is dropped
			}
		}
	}()
	return keys, func() { term.Restore(int(f.Fd()), old) }
}

// recordingPath resolves a session ID (from the index) or a file path.
func recordingPath(af adminFlags, arg string) (string, error) {
	if strings.HasSuffix(arg, ".cast") || strings.ContainsRune(arg, os.PathSeparator) {
		if _, err := os.Stat(arg); err != nil {
			return "", err
		}
		return arg, nil
	}
	store, err := af.store(false)
	if err != nil {
		return "", err
	}
	s, err := store.Get(arg)
	if errors.Is(err, recorder.ErrNotFound) {
		return "", fmt.Errorf("no session %q in the index (see 'postern sessions')", arg)
	}
	if err != nil {
		return "", err
	}
	return filepath.Join(store.Dir(), s.Path), nil
}

func cmdVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", "verify [--audit-key FILE] [--anchor SEQ:SHA256]... [--json]", stdout)
	af := addAdminFlags(fs)
	keyFile := fs.String("audit-key", "", "check signatures with the audit public key in `file`, a copy kept off the bastion\n(default: the data directory's own ca/audit_ed25519.pub, which whoever can\nrewrite the data could replace too)")
	var anchors listFlag
	fs.Var(&anchors, "anchor", "`SEQ:SHA256` of a chain head recorded earlier (verify prints it; the bastion\nlogs it with each recording_end): that entry must still be in the chain,\nunchanged. Repeatable")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	opts := recorder.VerifyOptions{}
	for _, a := range anchors {
		h, err := recorder.ParseChainHead(a)
		if err != nil {
			return usagef("verify --anchor: %v", err)
		}
		opts.Anchors = append(opts.Anchors, h)
	}
	d, err := dataDir(*af.dir, *af.cfg)
	if err != nil {
		return err
	}
	keySource := *keyFile
	if *keyFile != "" {
		data, err := os.ReadFile(*keyFile)
		if err != nil {
			return usagef("verify --audit-key: %v (save the key with 'postern ca show --audit > audit.pub' and keep the file off the bastion)", err)
		}
		if opts.Key, err = certs.ParseAuditPublicKey(data); err != nil {
			return usagef("verify --audit-key %s: %v", *keyFile, err)
		}
	} else {
		if opts.Key, keySource, err = certs.AuditPublicKey(d); err != nil {
			return err
		}
	}
	// Read-only: no private key, nothing created or changed.
	store := recorder.OpenStore(d, nil)
	rep, err := store.Verify(opts)
	if err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			recorder.Report
			// HeadVerified says whether head is fit to keep as an
			// anchor: false when anything failed.
			HeadVerified bool   `json:"head_verified"`
			AuditKey     string `json:"audit_key"`
			KeyFile      string `json:"audit_key_file"`
			Pinned       bool   `json:"audit_key_pinned"`
		}{rep, rep.Head != nil && len(rep.Problems) == 0, auditKeyFingerprint(opts.Key), keySource, *keyFile != ""}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintf(stdout, "FAIL %s\n", p)
		}
		fmt.Fprintf(stdout, "%d recordings, %d audit chain entries checked: %d problems\n", rep.Recordings, rep.ChainEntries, len(rep.Problems))
		fmt.Fprintf(stdout, "audit key: %s (%s)\n", auditKeyFingerprint(opts.Key), keySource)
		switch {
		case rep.Head != nil && len(rep.Problems) > 0:
			// Not an anchor to keep: it is part of what failed.
			fmt.Fprintf(stdout, "chain head (not verified): %s\n", rep.Head)
		case rep.Head != nil:
			fmt.Fprintf(stdout, "chain head: %s\n", rep.Head)
			if len(opts.Anchors) == 0 {
				fmt.Fprintf(stderr, "postern: note: record the chain head away from the bastion; a later 'postern verify --anchor %s' shows whether entries were removed from the end or rewritten since\n", rep.Head)
			}
		}
		if *keyFile == "" {
			fmt.Fprintf(stderr, "postern: note: signatures were checked with the key in the data directory itself; save 'postern ca show --audit' off the bastion and pass it with --audit-key\n")
		}
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("verify: %d problems in %s", len(rep.Problems), store.Dir())
	}
	return nil
}

// auditKeyFingerprint is the key's SHA256 fingerprint, as ssh-keygen -l
// prints it.
func auditKeyFingerprint(k ed25519.PublicKey) string {
	pk, err := ssh.NewPublicKey(k)
	if err != nil {
		return "invalid key"
	}
	return ssh.FingerprintSHA256(pk)
}

func cmdRecordings(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "prune" {
		return usagef("recordings: use 'postern recordings prune [--older-than-days N] [--dry-run]'")
	}
	fs := newFlags("recordings prune", "recordings prune [--older-than-days N] [--dry-run]", stdout)
	af := addAdminFlags(fs)
	days := fs.Int("older-than-days", 0, "delete recordings of sessions that ended more than `N` days ago (default: the config's recording.retention_days, else 365)")
	dry := fs.Bool("dry-run", false, "list what would be deleted, delete nothing")
	asJSON := fs.Bool("json", false, "print what was deleted as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	n := *days
	if n == 0 {
		n = 365
		if *af.cfg != "" {
			cfg, err := config.Load(*af.cfg)
			if err != nil {
				return fmt.Errorf("config: %w", err)
			}
			n = cfg.Recording.RetentionDays
		}
	}
	if n < 1 {
		return usagef("recordings prune: --older-than-days must be at least 1")
	}
	store, err := af.store(true)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-time.Duration(n) * 24 * time.Hour)
	var list []recorder.Session
	var pruneErr error
	if *dry {
		all, err := store.List(recorder.Filter{Until: cutoff})
		if err != nil {
			return err
		}
		for _, s := range all {
			if s.Status != recorder.StatusActive && (s.End == nil || s.End.Before(cutoff)) {
				list = append(list, s)
			}
		}
	} else {
		// On an error deleting files, what the chain already records
		// as pruned is still listed below before the error is returned.
		var head *recorder.ChainHead
		list, head, pruneErr = store.Prune(cutoff)
		if pruneErr != nil && list == nil {
			return pruneErr
		}
		if head != nil {
			// The prune is itself a chain entry: a new anchor for the
			// admin to keep (the bastion logs the head at its next start).
			fmt.Fprintf(stderr, "postern: chain head: %s\n", head)
		}
	}
	if *asJSON {
		if list == nil {
			list = []recorder.Session{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(list); err != nil {
			return err
		}
		return pruneErr
	}
	verb := "deleted"
	if *dry {
		verb = "would delete"
	}
	for _, s := range list {
		fmt.Fprintf(stdout, "%s %s (%s, %s on %s)\n", verb, s.Path, s.ID, s.Identity, s.Target)
	}
	fmt.Fprintf(stderr, "postern: %s %d recordings older than %d days\n", verb, len(list), n)
	return pruneErr
}
