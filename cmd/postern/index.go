package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/recorder"
)

// indexTimeout bounds the wait for another reader's or writer's lock on
// the index file.
const indexTimeout = 2 * time.Second

func cmdIndex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "check":
			return cmdIndexCheck(args[1:], stdout)
		case "rebuild":
			return cmdIndexRebuild(ctx, args[1:], stdout, stderr)
		case "-h", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		}
	}
	return usagef("index: use 'postern index check' or 'postern index rebuild'")
}

// runningServer refuses to touch data directory d's index while a postern
// holds the directory: it has the index open.
func runningServer(d, what string) error {
	if pid, ok := app.LockHolder(d); ok {
		return fmt.Errorf("postern (pid %d) is running with data directory %s: %s", pid, d, what)
	}
	return nil
}

func cmdIndexCheck(args []string, stdout io.Writer) error {
	fs := newFlags("index check", "index check [--data-dir DIR | --config FILE] [--json]", stdout)
	af := addAdminFlags(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	d, err := dataDir(*af.dir, *af.cfg)
	if err != nil {
		return err
	}
	if err := runningServer(d, "it checked the index when it started (its log says \"session index checked\"); stop it to check the index now"); err != nil {
		return err
	}
	rep, err := recorder.CheckIndex(d, indexTimeout)
	if err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			recorder.IndexReport
			OK bool `json:"ok"`
		}{rep, len(rep.Problems) == 0}
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
	} else {
		printIndexCheck(stdout, rep)
	}
	if len(rep.Problems) > 0 {
		return fmt.Errorf("index check: %s is damaged (%s): with postern stopped, 'postern index rebuild' rebuilds it from the recordings and what survives of the audit chain, keeping the damaged file", rep.Path, count(len(rep.Problems), "problem"))
	}
	return nil
}

// printIndexCheck prints index check's report: a line per problem, or
// what the index holds.
func printIndexCheck(w io.Writer, rep recorder.IndexReport) {
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "FAIL %s\n", visible(p))
	}
	fmt.Fprintf(w, "%s: %d bytes", visible(rep.Path), rep.Size)
	if rep.Pages > 0 {
		fmt.Fprintf(w, ", %d pages of %d bytes", rep.Pages, rep.PageSize)
	}
	fmt.Fprintf(w, ", checked in %s: ", rep.Took.Round(time.Millisecond))
	if len(rep.Problems) > 0 {
		fmt.Fprintln(w, count(len(rep.Problems), "problem"))
		return
	}
	var counts []string
	for _, name := range slices.Sorted(maps.Keys(rep.Entries)) {
		counts = append(counts, fmt.Sprintf("%s %d", visible(name), rep.Entries[name]))
	}
	fmt.Fprintf(w, "ok (%s)\n", strings.Join(counts, ", "))
}

func cmdIndexRebuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("index rebuild", "index rebuild [--data-dir DIR | --config FILE] [--force] [--json]", stdout)
	af := addAdminFlags(fs)
	force := fs.Bool("force", false, "rebuild even when 'postern index check' finds nothing wrong")
	asJSON := fs.Bool("json", false, "print what was rebuilt, and verify's report, as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	d, err := dataDir(*af.dir, *af.cfg)
	if err != nil {
		return err
	}
	if _, err := os.Stat(d); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	auth, err := openExisting(d)
	if err != nil {
		return err
	}
	// Held to the end: no bastion may start on a half-made index.
	lock, err := app.Lock(d)
	var inUse *app.InUseError
	if errors.As(err, &inUse) {
		return fmt.Errorf("%s is running with data directory %s: stop it first, since the rebuild replaces the index it has open; nothing was changed", runningName(inUse.PID), d)
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := needsRebuild(d, *force); err != nil {
		return err
	}
	rep, err := recorder.RebuildIndex(ctx, d, recorder.RebuildOptions{Key: auth.AuditKey})
	if err != nil {
		return err
	}
	pub := auth.AuditKey.Public().(ed25519.PublicKey)
	ver, err := verifyRebuilt(ctx, d, pub)
	if err != nil {
		return fmt.Errorf("index rebuilt, but verify could not run: %w", err)
	}
	if *asJSON {
		err = writeJSON(stdout, struct {
			Rebuild recorder.RebuildReport `json:"rebuild"`
			Verify  recorder.Report        `json:"verify"`
		}{rep, ver})
	} else {
		printRebuild(stdout, d, rep)
		err = printVerify(stdout, stderr, ver, recorder.VerifyOptions{Key: pub}, filepath.Join(d, "ca", certs.AuditKeyFile), false, false)
	}
	if err != nil {
		return err
	}
	if len(ver.Problems) > 0 {
		return fmt.Errorf("index rebuilt, but verify found %d problems in %s (listed above): the rebuild restores the index, not recordings changed or deleted", len(ver.Problems), d)
	}
	return nil
}

// runningName names the process holding a data directory.
func runningName(pid int) string {
	if pid > 0 {
		return fmt.Sprintf("postern (pid %d)", pid)
	}
	return "another postern"
}

// needsRebuild refuses to rebuild a sound index without force.
func needsRebuild(d string, force bool) error {
	rep, err := recorder.CheckIndex(d, indexTimeout)
	if err != nil || len(rep.Problems) > 0 || force {
		return nil // a missing or unreadable index is rebuilt too
	}
	return fmt.Errorf("index rebuild: 'postern index check' finds nothing wrong with %s: nothing to rebuild (--force rebuilds it anyway)", rep.Path)
}

// verifyRebuilt verifies data directory d's rebuilt index and recordings.
func verifyRebuilt(ctx context.Context, d string, pub ed25519.PublicKey) (recorder.Report, error) {
	st, err := recorder.OpenStore(d, recorder.Options{ReadOnly: true, AuditPublicKey: pub})
	if err != nil {
		return recorder.Report{}, err
	}
	defer st.Close()
	return recorder.VerifyStore(ctx, localFiles(st, d), recorder.VerifyOptions{Key: pub})
}

// printRebuild says what the rebuild kept, restored and lost.
func printRebuild(w io.Writer, d string, rep recorder.RebuildReport) {
	if rep.File != "" {
		fmt.Fprintf(w, "the damaged index is kept as %s (%d bytes, sha256 %s)\n", visible(filepath.Join(d, rep.File)), rep.Size, rep.SHA256)
	} else {
		fmt.Fprintf(w, "there was no index file: rebuilt from the recordings alone\n")
	}
	fmt.Fprintf(w, "audit chain: %d entries found whole and signed; %d kept as they were, %d carried over", rep.Kept+uint64(rep.Carried), rep.Kept, rep.Carried)
	if len(rep.Missing) > 0 {
		fmt.Fprintf(w, "; not found: %s", strings.Join(rep.Missing, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "restored: %d sessions, %d certificates, %d approval requests, %d refusals\n",
		rep.Restored["sessions"], rep.Restored["certs"], rep.Restored["approvals"], rep.Restored["cert_refusals"])
	for _, l := range rep.RecordsLost {
		fmt.Fprintf(w, "lost: %s\n", visible(l))
	}
	for _, id := range rep.Sealed {
		fmt.Fprintf(w, "sealed as found: %s\n", visible(id))
	}
	fmt.Fprintf(w, "new chain head: %s\n", rep.Head)
}

// count says n things: "1 problem", "2 problems".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
