package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/internal/listing"
	"github.com/postern/postern/recorder"
)

// maxReason caps a revocation's reason: it is shown to the holder on one
// line.
const maxReason = 200

// revokeRequest is what ca revoke was asked: serials, or a key ID.
type revokeRequest struct {
	serials  []uint64
	keyID    string
	reason   string
	force    bool
	dataDir  string
	stdout   io.Writer
	stderr   io.Writer
	register []recorder.IssuedCert
}

func cmdCARevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ca revoke", "ca revoke --reason TEXT [--force] [--data-dir DIR | --config FILE] SERIAL [SERIAL...]\n"+
		"       postern ca revoke --identity KEY_ID --reason TEXT [--force] [--data-dir DIR | --config FILE]\n\n"+
		"Revokes user certificates, as an OpenSSH key revocation list (KRL) does: by serial,\n"+
		"or every certificate whose key ID is KEY_ID, those issued later included. A revoked\n"+
		"certificate is refused from then on, and a running bastion ends the connections\n"+
		"made with it at once, telling their users why. Revocations are kept in the data\n"+
		"directory, sealed in the audit chain (postern verify checks them), and are never\n"+
		"undone. Revoking again what is revoked changes nothing. List them with\n"+
		"'postern ca revoked', the serials issued with 'postern ca issued'.", stdout)
	var q revokeRequest
	keyID := fs.String("identity", "", "revoke every certificate whose key ID is `id` (the identity, for certificates\nfrom postern login; ca sign's --key-id); give no serials with it")
	reason := fs.String("reason", "", "why, one line of `text` (required): kept in the audit chain and shown to the holder")
	fs.BoolVar(&q.force, "force", false, "revoke a serial or key ID that the register of issued certificates does not know\n(a certificate signed with the CA key outside postern)")
	af := addAdminFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	q.keyID, q.reason, q.stdout, q.stderr = *keyID, strings.TrimSpace(*reason), stdout, stderr
	if err := q.parse(pos); err != nil {
		return err
	}
	if q.dataDir, err = dataDir(*af.dir, *af.cfg); err != nil {
		return err
	}
	store, closeStore, err := openData(ctx, q.dataDir, true)
	if err != nil {
		return err
	}
	defer closeStore()
	ri, ok := store.(recorder.RevocationIndex)
	if !ok {
		return errors.New("this data directory's index keeps no revocations")
	}
	if q.register, err = store.Issued(ctx); err != nil {
		return err
	}
	if err := q.known(); err != nil {
		return err
	}
	for _, r := range q.revocations() {
		if err := q.revoke(ctx, store, ri, r); err != nil {
			return err
		}
	}
	return nil
}

// parse checks the arguments and flags; a bad one is a usage error.
func (q *revokeRequest) parse(pos []string) error {
	switch {
	case q.keyID == "" && len(pos) == 0:
		return usagef("ca revoke: give the serials to revoke, or --identity KEY_ID (see 'postern ca revoke --help')")
	case q.keyID != "" && len(pos) > 0:
		return usagef("ca revoke: give serials or --identity, not both")
	case q.reason == "":
		return usagef("ca revoke: say why with --reason; it is kept in the audit chain and shown to the holder")
	case len(q.reason) > maxReason || !printable(q.reason):
		return usagef("ca revoke: --reason must be one line of at most %d bytes, without control characters", maxReason)
	case q.keyID != "" && (len(q.keyID) > recorder.MaxRevokedKeyID || !printable(q.keyID)):
		return usagef("ca revoke: --identity must be UTF-8 of at most %d bytes, without control characters", recorder.MaxRevokedKeyID)
	}
	for _, s := range pos {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			return usagef("ca revoke: %q is not a certificate serial: a positive decimal number, as 'postern ca issued' lists them", visible(s))
		}
		if !slices.Contains(q.serials, n) {
			q.serials = append(q.serials, n)
		}
	}
	return nil
}

// printable reports whether s is UTF-8 without control or format
// characters.
func printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) })
}

// known refuses, unless --force, serials and a key ID that the register
// of issued certificates does not know: most likely a typo, and a
// revocation cannot be undone. Nothing is revoked then.
func (q *revokeRequest) known() error {
	if q.force {
		return nil
	}
	var unknown []string
	for _, n := range q.serials {
		if !slices.ContainsFunc(q.register, func(c recorder.IssuedCert) bool { return c.Serial == n }) {
			unknown = append(unknown, "serial "+strconv.FormatUint(n, 10))
		}
	}
	if q.keyID != "" && !slices.ContainsFunc(q.register, func(c recorder.IssuedCert) bool { return c.KeyID == q.keyID }) {
		unknown = append(unknown, "key ID "+strconv.Quote(q.keyID))
	}
	if len(unknown) == 0 {
		return nil
	}
	return fmt.Errorf("%s: not in the register of issued certificates of %s (a typo? list them with 'postern ca issued'); nothing was revoked. A certificate signed outside postern is revoked with --force",
		visible(strings.Join(unknown, ", ")), q.dataDir)
}

// revocations are the revocations asked for, in order.
func (q *revokeRequest) revocations() []recorder.Revocation {
	if q.keyID != "" {
		return []recorder.Revocation{{KeyID: q.keyID, Reason: q.reason, RevokedBy: osUser()}}
	}
	out := make([]recorder.Revocation, 0, len(q.serials))
	for _, n := range q.serials {
		out = append(out, recorder.Revocation{Serial: n, Reason: q.reason, RevokedBy: osUser()})
	}
	return out
}

// revoke records r, through the running server (which ends the live
// connections) when there is one, says what it did on stdout, and writes
// the audit record with the chain head after it to stderr (a server logs
// the same record).
func (q *revokeRequest) revoke(ctx context.Context, store recorder.Store, ri recorder.RevocationIndex, r recorder.Revocation) error {
	var ans adminsock.RevokeAnswer
	var err error
	via := "data directory"
	if c, ok := ri.(*adminsock.Client); ok {
		ans, err = c.RevokeLive(ctx, r)
		via = "admin socket"
	} else {
		ans.Revocation, ans.New, err = ri.Revoke(ctx, r)
	}
	if err != nil {
		return err
	}
	rec := ans.Revocation
	what := q.describe(rec)
	if !ans.New {
		fmt.Fprintf(q.stdout, "%s was already revoked at %s by %s: %s\n", what, rec.RevokedAt.UTC().Format("2006-01-02T15:04:05Z"), visible(rec.RevokedBy), visible(rec.Reason))
	} else {
		line := fmt.Sprintf("revoked %s: %s", what, visible(rec.Reason))
		if via == "admin socket" {
			line += fmt.Sprintf("; the bastion ended %d live connection(s) made with it", ans.Ended)
		} else {
			line += "; no bastion runs on this data directory: it refuses it when it starts"
		}
		fmt.Fprintln(q.stdout, line)
	}
	attrs := []any{"revoked", rec.Key(), "reason", rec.Reason, "revoked_by", rec.RevokedBy, "revoked_at", rec.RevokedAt,
		"new", ans.New, "connections_ended", ans.Ended, "via", via, "data_dir", q.dataDir}
	if head, err := store.Head(ctx); err == nil && head != nil {
		attrs = append(attrs, "chain_head", head.String())
	}
	audit.Record(app.NewLogger(q.stderr, slog.LevelInfo), audit.CertRevoked, attrs...)
	return nil
}

// describe names what r revokes for a person, with what the register says
// of it.
func (q *revokeRequest) describe(r recorder.Revocation) string {
	return describeRevocation(r, q.register)
}

// describeRevocation names what r revokes, with the principals and key ID
// the register of issued certificates has for a serial, or how many
// certificates it has with a key ID.
func describeRevocation(r recorder.Revocation, register []recorder.IssuedCert) string {
	if r.KeyID != "" {
		n := 0
		for _, c := range register {
			if c.KeyID == r.KeyID {
				n++
			}
		}
		return fmt.Sprintf("key ID %s (%d certificate(s) in the register, and any issued with it later)", visible(strconv.Quote(r.KeyID)), n)
	}
	s := "serial " + strconv.FormatUint(r.Serial, 10)
	for _, c := range register {
		if c.Serial == r.Serial {
			return fmt.Sprintf("%s (%s, key ID %s)", s, visible(strings.Join(c.Principals, ",")), listing.Clip(strconv.Quote(c.KeyID), 60))
		}
	}
	return s + " (not in the register)"
}

func cmdCARevoked(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("ca revoked", "ca revoked [--json] [--data-dir DIR | --config FILE]\n\n"+
		"Lists the certificate revocations in force, oldest first. A revocation whose record\n"+
		"in the index is not as the audit chain sealed it is listed with a note (and in\n"+
		"force all the same); postern verify reports it.", stdout)
	af := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	store, _, closeStore, err := af.open(ctx, false)
	if err != nil {
		return err
	}
	defer closeStore()
	ri, ok := store.(recorder.RevocationIndex)
	if !ok {
		return errors.New("this data directory's index keeps no revocations")
	}
	list, err := ri.Revocations(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []recorder.Revocation{}
		}
		return writeJSON(stdout, list)
	}
	register, err := store.Issued(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVOKED AT\tBY\tREVOKED\tREASON")
	for _, r := range list {
		reason := listing.Clip(r.Reason, 60)
		if r.Note != "" {
			reason += " [" + visible(r.Note) + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.RevokedAt.Local().Format("2006-01-02 15:04:05"), visible(r.RevokedBy), describeRevocation(r, register), reason)
	}
	return tw.Flush()
}
