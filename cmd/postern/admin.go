package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/recorder"
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

// open returns the store of the command's data directory: the running
// server's, through its admin socket, or else the data directory itself
// (read-only unless write). Either way the command runs the same code on
// the same data, so its output and exit code are the same. close releases
// it.
func (a adminFlags) open(ctx context.Context, write bool) (st recorder.Store, dir string, close func(), err error) {
	d, err := dataDir(*a.dir, *a.cfg)
	if err != nil {
		return nil, "", nil, err
	}
	st, close, err = openData(ctx, d, write)
	return st, d, close, err
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

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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
	store, closeStore, err := openData(ctx, d, false)
	if err != nil {
		return err
	}
	defer closeStore()
	// Only the index comes from the server: the recordings are read
	// from the data directory itself, so that what is checked is what is
	// on disk, whoever answers on the socket.
	rep, err := recorder.VerifyStore(ctx, localFiles(store, d), opts)
	if err != nil {
		return err
	}
	if err := printVerify(stdout, stderr, rep, opts, keySource, *keyFile != "", *asJSON); err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("verify: %d problems in %s", len(rep.Problems), d)
	}
	return nil
}

// printVerify prints verify's report: JSON, or one line per problem and
// a summary, with notes on stderr.
func printVerify(stdout, stderr io.Writer, rep recorder.Report, opts recorder.VerifyOptions, keySource string, pinned, asJSON bool) error {
	if asJSON {
		out := struct {
			recorder.Report
			// HeadVerified says whether head is fit to keep as an
			// anchor: false when anything failed.
			HeadVerified bool   `json:"head_verified"`
			AuditKey     string `json:"audit_key"`
			KeyFile      string `json:"audit_key_file"`
			Pinned       bool   `json:"audit_key_pinned"`
		}{rep, rep.Head != nil && len(rep.Problems) == 0, auditKeyFingerprint(opts.Key), keySource, pinned}
		return writeJSON(stdout, out)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "FAIL %s\n", visible(p.String()))
	}
	fmt.Fprintf(stdout, "%d recordings, %d audit chain entries checked: %d problems\n", rep.Recordings, rep.ChainEntries, len(rep.Problems))
	for _, r := range rep.Rebuilds {
		// Not problems: gaps the rebuild stated, signed, when it
		// made the index; evidence that is gone is not hidden.
		fmt.Fprintf(stdout, "GAP %s\n", visible(r.String()))
	}
	if n := len(rep.Active); n > 0 {
		// Not problems, and not checked: no seal to check them
		// against until the session ends.
		noun := "recordings"
		if n == 1 {
			noun = "recording"
		}
		fmt.Fprintf(stdout, "%d %s still being written (active), checked once sealed:", n, noun)
		for _, a := range rep.Active {
			fmt.Fprintf(stdout, " %s", visible(a.ID))
		}
		fmt.Fprintln(stdout)
	}
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
	if !pinned {
		fmt.Fprintf(stderr, "postern: note: signatures were checked with the key in the data directory itself; save 'postern ca show --audit' off the bastion and pass it with --audit-key\n")
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

// prune deletes (or with dry, lists) what retention removes at cutoff,
// reporting on stderr the sessions left alone and the chain's new head. On
// an error deleting files, what the chain already records as pruned is
// still returned with the error; so are sessions left alone because of
// their index path.
func prune(ctx context.Context, store recorder.Store, cutoff time.Time, dry bool, stderr io.Writer) ([]recorder.Session, error) {
	var refused *recorder.RefusedError
	if dry {
		list, err := recorder.PruneCandidates(ctx, store, cutoff)
		if !errors.As(err, &refused) {
			return list, err
		}
		for _, p := range refused.Refused {
			fmt.Fprintf(stderr, "postern: would not prune %s: %s\n", visible(p.ID), visible(p.String()))
		}
		if list == nil {
			list = []recorder.Session{}
		}
		return list, fmt.Errorf("%d recordings would not be pruned: their index path is refused", len(refused.Refused))
	}
	list, head, err := recorder.Prune(ctx, store, cutoff)
	if errors.As(err, &refused) {
		for _, p := range refused.Refused {
			fmt.Fprintf(stderr, "postern: not pruned %s: %s\n", visible(p.ID), visible(p.String()))
		}
		if list == nil {
			list = []recorder.Session{}
		}
	}
	if head != nil {
		// The prune is itself a chain entry: a new anchor for the
		// admin to keep (the bastion logs the head at its next start).
		fmt.Fprintf(stderr, "postern: chain head: %s\n", head)
	}
	return list, err
}

func cmdRecordings(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "prune" {
		return usagef("recordings: use 'postern recordings prune [--older-than-days N] [--dry-run]'")
	}
	fs := newFlags("recordings prune", "recordings prune [--older-than-days N] [--dry-run]", stdout)
	af := addAdminFlags(fs)
	days := fs.Int("older-than-days", 0, "delete recordings of sessions that ended more than `N` days ago (default and minimum: the config's\nrecording.retention_days, else 365)")
	dry := fs.Bool("dry-run", false, "list what would be deleted, delete nothing.\nEither way a session whose index path leads outside DATA_DIR/recordings is\nreported and left alone, file and index entry, and the exit code is 1")
	asJSON := fs.Bool("json", false, "print what was deleted as JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	// The configured retention is a floor: the server applies its own
	// to prunes through the socket, and this command, run without one,
	// must not go below it either.
	retention := int(adminsock.DefaultRetention / (24 * time.Hour))
	if *af.cfg != "" {
		cfg, err := config.Load(*af.cfg)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		retention = cfg.Recording.RetentionDays
	}
	n := *days
	if n == 0 {
		n = retention
	}
	if n < 1 {
		return usagef("recordings prune: --older-than-days must be at least 1")
	}
	if n < retention {
		return usagef("recordings prune: --older-than-days %d is below the configured retention (recording.retention_days %d): recordings are kept at least that long; lower retention_days in the config to prune earlier", n, retention)
	}
	store, _, closeStore, err := af.open(ctx, true)
	if err != nil {
		return err
	}
	defer closeStore()
	cutoff := time.Now().Add(-time.Duration(n) * 24 * time.Hour)
	list, pruneErr := prune(ctx, store, cutoff, *dry, stderr)
	if pruneErr != nil && list == nil {
		return pruneErr
	}
	if *asJSON {
		if list == nil {
			list = []recorder.Session{}
		}
		if err := writeJSON(stdout, list); err != nil {
			return err
		}
		return pruneErr
	}
	verb := "deleted"
	if *dry {
		verb = "would delete"
	}
	for _, s := range list {
		fmt.Fprintf(stdout, "%s %s (%s, %s on %s)\n", verb, visible(s.Path), visible(s.ID), visible(s.Identity), visible(s.Target))
	}
	fmt.Fprintf(stderr, "postern: %s %d recordings older than %d days\n", verb, len(list), n)
	return pruneErr
}
