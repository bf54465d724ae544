package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/internal/listing"
	"github.com/postern/postern/recorder"
)

// signFlags are ca sign's flags.
type signFlags struct {
	principals, groups  listFlag
	ttl                 *time.Duration
	keyID, source, out  *string
	noPTY, noFwd, agent *bool
	dir, cfg            *string
}

func cmdCASign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ca sign", "ca sign --principal NAME [--ttl 8h] [flags] KEY.pub", stdout)
	var f signFlags
	fs.Var(&f.principals, "principal", "principal `name` to certify (repeatable; the first is the identity)")
	fs.Var(&f.groups, "group", "group `name` carried in the certificate (repeatable)")
	f.ttl = fs.Duration("ttl", 8*time.Hour, "validity `duration`, e.g. 1h")
	f.keyID = fs.String("key-id", "", "key ID recorded in audit logs (default: principal and key fingerprint)")
	f.source = fs.String("source-address", "", "restrict use to these comma-separated `addresses or CIDRs`")
	f.noPTY = fs.Bool("no-pty", false, "leave out permit-pty (granted by default): the bastion refuses the holder a terminal")
	f.noFwd = fs.Bool("no-port-forwarding", false, "leave out permit-port-forwarding (granted by default): the bastion refuses every forward, whatever the policy grants")
	f.agent = fs.Bool("agent-forwarding", false, "add permit-agent-forwarding (off by default): ssh -A then reaches targets whose rule sets\nagent_forwarding: true. Risky: whoever is root on the target can use the forwarded agent\nwhile the session lasts. X11 forwarding is never granted")
	f.out = fs.String("out", "", "write the certificate to `file` (default: KEY-cert.pub beside KEY.pub; - for stdout).\nThe serial comes from the data directory's register of issued certificates\n(see 'postern ca issued'); an audit record of the issue goes to stderr")
	f.dir = fs.String("data-dir", "", "bastion data `dir`ectory")
	f.cfg = fs.String("config", "", "bastion config `file` (its data_dir is used)")
	// Flags may follow the key: `ca sign KEY.pub --principal bob`.
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(f.principals) == 0 {
		return usagef("ca sign: --principal is required")
	}
	if len(pos) != 1 {
		return usagef("ca sign: give exactly one public key file (KEY.pub)")
	}
	if *f.ttl <= 0 {
		return usagef("ca sign: --ttl must be positive")
	}
	if *f.ttl > 7*24*time.Hour {
		return usagef("ca sign: --ttl %s is longer than 7 days; certificates should be short-lived", *f.ttl)
	}
	d, err := dataDir(*f.dir, *f.cfg)
	if err != nil {
		return err
	}
	keyPath := pos[0]
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("read public key: %w", err)
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return fmt.Errorf("%s is not an OpenSSH public key: %w", keyPath, err)
	}
	cert, err := issue(ctx, d, pub, comment, f, stderr)
	if err != nil {
		return err
	}
	line := ssh.MarshalAuthorizedKey(cert)
	dest := *f.out
	if dest == "" {
		dest = strings.TrimSuffix(keyPath, ".pub") + "-cert.pub"
	}
	if dest == "-" {
		_, err = stdout.Write(line)
		return err
	}
	if err := os.WriteFile(dest, line, 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	fmt.Fprintf(stderr, "postern: wrote %s: principals %v, serial %d, valid until %s\n",
		dest, cert.ValidPrincipals, cert.Serial, time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339))
	return nil
}

// issue signs pub as f asks, with a serial from data directory d's
// register of issued certificates (through the running server when there
// is one, which then names who issued it from the socket's peer), and
// writes the issue's audit record, with the chain head after it, to
// stderr.
func issue(ctx context.Context, d string, pub ssh.PublicKey, comment string, f signFlags, stderr io.Writer) (*ssh.Certificate, error) {
	auth, err := openExisting(d)
	if err != nil {
		return nil, err
	}
	id := *f.keyID
	if id == "" {
		id = fmt.Sprintf("%s %s", f.principals[0], ssh.FingerprintSHA256(pub))
		if comment != "" {
			id += " " + comment
		}
	}
	now := time.Now()
	req := certs.UserCertRequest{
		Principals: f.principals, Groups: f.groups, TTL: *f.ttl, KeyID: id, SourceAddress: *f.source,
		NoPTY: *f.noPTY, NoPortForwarding: *f.noFwd, AgentForwarding: *f.agent, Now: now,
	}
	// A request the CA refuses must not take a serial: try it first.
	if _, err := auth.SignUser(pub, req); err != nil {
		return nil, err
	}
	store, closeStore, err := openData(ctx, d, true)
	if err != nil {
		return nil, err
	}
	defer closeStore()
	if err := notRevoked(ctx, store, id); err != nil {
		return nil, err
	}
	rec, err := store.IssueCert(ctx, recorder.IssuedCert{
		KeyID: id, Principals: f.principals, Groups: f.groups, Key: ssh.FingerprintSHA256(pub),
		ValidAfter: time.Unix(now.Add(-certs.Backdate).Unix(), 0).UTC(), ValidBefore: time.Unix(now.Add(*f.ttl).Unix(), 0).UTC(),
		IssuedAt: now.UTC(), IssuedBy: osUser(),
	})
	if err != nil {
		return nil, err
	}
	req.Serial = rec.Serial
	cert, err := auth.SignUser(pub, req)
	if err != nil {
		return nil, err
	}
	attrs := []any{"identity", f.principals[0], "key_id", id, "principals", []string(f.principals), "groups", []string(f.groups),
		"serial", cert.Serial, "key", rec.Key, "valid_after", rec.ValidAfter, "valid_before", rec.ValidBefore,
		"issued_by", rec.IssuedBy, "data_dir", d}
	// The head after the issue covers it: an anchor for verify, so the
	// issue cannot be cut from the end of the chain unnoticed. (A server
	// logs the same record with it.)
	head, err := store.Head(ctx)
	if err == nil && head != nil {
		attrs = append(attrs, "chain_head", head.String())
	}
	audit.Record(app.NewLogger(stderr, slog.LevelInfo), audit.CertIssued, attrs...)
	if err != nil {
		fmt.Fprintf(stderr, "postern: warning: certificate %d issued, but the chain head after it is unknown: %s\n", cert.Serial, visible(err.Error()))
	}
	return cert, nil
}

// notRevoked refuses key ID id when a revocation covers every certificate
// with it: the bastion would refuse the certificate.
func notRevoked(ctx context.Context, store recorder.Store, id string) error {
	ri, ok := store.(recorder.RevocationIndex)
	if !ok {
		return nil
	}
	list, err := ri.Revocations(ctx)
	if err != nil {
		return err
	}
	for _, r := range list {
		if r.KeyID == id {
			return fmt.Errorf("key ID %q was revoked at %s (%s): the bastion would refuse the certificate; nothing was issued",
				id, r.RevokedAt.UTC().Format(time.RFC3339), r.Reason)
		}
	}
	return nil
}

// osUser names who runs the command: the OS user, and the user sudo was
// run by, if any.
func osUser() string {
	who := strconv.Itoa(os.Getuid())
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	if su := os.Getenv("SUDO_USER"); su != "" && su != who {
		who += " (sudo by " + su + ")"
	}
	return who
}

func cmdCAIssued(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("ca issued", "ca issued [--json] [--data-dir DIR | --config FILE]", stdout)
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
	list, err := store.Issued(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []recorder.IssuedCert{}
		}
		return writeJSON(stdout, list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tISSUED\tBY\tPRINCIPALS\tVALID UNTIL\tKEY ID")
	for _, c := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", c.Serial, c.IssuedAt.Local().Format("2006-01-02 15:04:05"), visible(c.IssuedBy),
			visible(strings.Join(c.Principals, ",")), c.ValidBefore.Local().Format("2006-01-02 15:04:05"), listing.Clip(c.KeyID, 60))
	}
	return tw.Flush()
}
