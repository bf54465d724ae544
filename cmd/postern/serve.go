package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/adminsock"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/recorder"
)

// demoDir is where `postern demo` keeps its state, relative to the
// directory it was started in; admin commands run there use it by default.
const demoDir = "postern-demo"

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "serve --config FILE", stdout)
	cfgPath := fs.String("config", "", "YAML config `file` (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usagef("serve: --config FILE is required (see examples/postern.yaml)")
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)
	auth, err := certs.Open(cfg.DataDir)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, auth, cfg.DataDir, log)
	if err != nil {
		return err
	}
	defer store.Close()
	stopAdmin, err := adminSocket(ctx, cfg.DataDir, store, log)
	if err != nil {
		return err
	}
	defer stopAdmin()
	srv, err := bastion.New(cfg.Bastion(auth, store, log))
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	log.Info("postern listening", "addr", l.Addr().String(), "data_dir", cfg.DataDir,
		"host_key", ssh.FingerprintSHA256(auth.HostKey.PublicKey()), "targets", len(cfg.Policy.Targets))
	return serveUntilDone(ctx, srv, l, log)
}

// openStore opens the session index for the server's life (the caller
// closes it) and seals sessions a previous run left active: the bastion
// died during them. While it is open, no other process can open the index:
// a second server on the same data directory stops here, having changed
// nothing.
func openStore(ctx context.Context, auth *certs.Authority, dir string, log *slog.Logger) (*recorder.Local, error) {
	store, err := recorder.OpenStore(dir, recorder.Options{Key: auth.AuditKey})
	if err != nil {
		return nil, err
	}
	ids, err := store.MarkInterrupted(ctx)
	if err != nil {
		store.Close()
		return nil, err
	}
	for _, id := range ids {
		log.Warn("audit", "audit", true, "event", "recording_interrupted", "recording", id,
			"reason", "the bastion stopped during the session; its recording holds what was written until then")
	}
	// Each start logs where the chain stands, an anchor for verify even
	// when no session has ended since.
	head, err := store.Head(ctx)
	if err != nil {
		store.Close()
		return nil, err
	}
	if head != nil {
		log.Info("audit", "audit", true, "event", "chain_head", "chain_head", head.String())
	}
	return store, nil
}

// adminSocket serves store on dir's admin socket (see internal/adminsock)
// until ctx is done or stop is called; stop waits for it to end.
func adminSocket(ctx context.Context, dir string, store recorder.Store, log *slog.Logger) (stop func(), err error) {
	l, err := adminsock.Listen(dir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := adminsock.Serve(ctx, l, store); err != nil {
			log.Error("admin socket stopped", "err", err.Error())
		}
	}()
	return func() { cancel(); <-done }, nil
}

// serveUntilDone runs srv on l until ctx is cancelled (SIGINT/SIGTERM),
// then drains sessions for up to 30 seconds.
func serveUntilDone(ctx context.Context, srv *bastion.Server, l net.Listener, log *slog.Logger) error {
	errc := make(chan error, 1)
	// Not ctx itself: a signal drains sessions (Shutdown) rather than cut them.
	go func() { errc <- srv.Serve(context.WithoutCancel(ctx), l) }()
	select {
	case err := <-errc:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; draining sessions", "deadline", "30s")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, bastion.ErrServerClosed) {
		return err
	}
	return nil
}

// dataDir resolves the data directory of an admin command: --data-dir,
// else --config's data_dir, else ./postern-demo if `postern demo` runs here.
func dataDir(dir, cfgPath string) (string, error) {
	switch {
	case dir != "" && cfgPath != "":
		return "", usagef("give --data-dir or --config, not both")
	case dir != "":
		return filepath.Abs(dir)
	case cfgPath != "":
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return "", fmt.Errorf("config: %w", err)
		}
		return cfg.DataDir, nil
	}
	if st, err := os.Stat(demoDir); err == nil && st.IsDir() {
		return filepath.Abs(demoDir)
	}
	return "", usagef("no data directory: pass --data-dir DIR or --config FILE, or run in the directory where 'postern demo' runs")
}

// openExisting opens the CA in data dir d, refusing to create one: a typo in
// --data-dir must not silently mint a new CA.
func openExisting(d string) (*certs.Authority, error) {
	if _, err := os.Stat(filepath.Join(d, "ca", certs.UserCAFile)); errors.Is(err, iofs.ErrNotExist) {
		return nil, fmt.Errorf("no user CA in %s: create it with 'postern ca init' (or start the bastion once)", d)
	}
	return certs.Open(d)
}

func cmdCAInit(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ca init", "ca init [--data-dir DIR | --config FILE]", stdout)
	dir := fs.String("data-dir", "", "bastion data `dir`ectory")
	cfgPath := fs.String("config", "", "bastion config `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	d, err := dataDir(*dir, *cfgPath)
	if err != nil {
		return err
	}
	if _, err := certs.Open(d); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "postern: CA keys ready in %s\n", filepath.Join(d, "ca"))
	return cmdCAShow([]string{"--data-dir", d}, stdout, stderr)
}

func cmdCAShow(args []string, stdout, _ io.Writer) error {
	fs := newFlags("ca show", "ca show [--audit] [--data-dir DIR | --config FILE]", stdout)
	dir := fs.String("data-dir", "", "bastion data `dir`ectory")
	cfgPath := fs.String("config", "", "bastion config `file`")
	auditOnly := fs.Bool("audit", false, "print only the audit public key, for 'postern verify --audit-key'")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	d, err := dataDir(*dir, *cfgPath)
	if err != nil {
		return err
	}
	// Read-only: a missing key is an error here, never replaced by a new
	// one that someone would then trust or pin.
	if _, err := os.Stat(filepath.Join(d, "ca", certs.UserCAFile)); errors.Is(err, iofs.ErrNotExist) && !*auditOnly {
		return fmt.Errorf("no user CA in %s: create it with 'postern ca init' (or start the bastion once)", d)
	}
	keys := []struct{ file, what, comment string }{
		{certs.UserCAFile, "user CA", "user CA (users' certificates are signed by it)"},
		{certs.UpstreamCAFile, "upstream CA", "upstream CA: put in targets' TrustedUserCAKeys file"},
		{certs.HostKeyFile, "host key", "bastion host key: users' known_hosts"},
		{certs.AuditKeyFile, "audit key", "audit key: keep a copy off the bastion for 'postern verify --audit-key' (ca show --audit prints it alone)"},
	}
	if *auditOnly {
		keys = keys[3:]
	}
	var out bytes.Buffer
	for _, k := range keys {
		pk, _, err := certs.ReadPublicKey(d, k.file, k.what)
		if err != nil {
			return err
		}
		if !*auditOnly {
			fmt.Fprintf(&out, "# %s\n", k.comment)
		}
		out.Write(ssh.MarshalAuthorizedKey(pk))
	}
	_, err = stdout.Write(out.Bytes())
	return err
}

func cmdConfigCheck(args []string, stdout, _ io.Writer) error {
	fs := newFlags("config check", "config check --config FILE", stdout)
	cfgPath := fs.String("config", "", "YAML config `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usagef("config check: --config FILE is required")
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	fmt.Fprintf(stdout, "%s: ok: %d targets, %d rules, data_dir %s\n", *cfgPath, len(cfg.Policy.Targets), len(cfg.Policy.Rules), cfg.DataDir)
	return nil
}

// listFlag is a repeatable string flag; commas also separate values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
