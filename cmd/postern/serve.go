package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
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
	log := app.NewLogger(stderr, cfg.LogLevel)
	gc := app.TuneGC(cfg.Performance)
	log.Info("garbage collector", "gc_percent", gc.GCPercent, "gc_percent_from", gc.GCPercentFrom,
		"memory_limit_mib", gc.MemoryLimit>>20, "memory_limit_from", gc.MemoryLimitFrom)
	a, err := app.New(app.Config{Settings: cfg, Log: log, Drain: cfg.Shutdown.Drain})
	if err != nil {
		return err
	}
	return runServer(ctx, a, *cfgPath, log)
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
	fs := newFlags("ca init", "ca init [--host-ca] [--data-dir DIR | --config FILE]", stdout)
	dir := fs.String("data-dir", "", "bastion data `dir`ectory")
	cfgPath := fs.String("config", "", "bastion config `file`")
	hostCA := fs.Bool("host-ca", false, "also create a host CA: the bastion then presents a host certificate, and\nusers may trust it with an @cert-authority line (ca show prints it)")
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
	if *hostCA {
		if _, err := certs.InitHostCA(d); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "postern: CA keys ready in %s\n", filepath.Join(d, "ca"))
	// With --config, ca show knows the listen address for the
	// known_hosts lines.
	show := []string{"--data-dir", d}
	if *cfgPath != "" {
		show = []string{"--config", *cfgPath}
	}
	return cmdCAShow(show, stdout, stderr)
}

func cmdConfigCheck(args []string, stdout, stderr io.Writer) error {
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
	if all, ok := err.(interface{ Unwrap() []error }); ok {
		// Every problem, one a line, so that one run finds them all.
		for _, e := range all.Unwrap() {
			fmt.Fprintf(stderr, "postern: config: %s\n", visibleText(e.Error()))
		}
		return fmt.Errorf("config: %s: %d problems", *cfgPath, len(all.Unwrap()))
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stderr, "postern: warning: %s\n", visibleText(w))
	}
	login := ""
	if l := cfg.Login; l != nil {
		login = fmt.Sprintf(", login API on %s (issuer %s)", l.Listen, visibleText(l.Issuer))
	}
	if m := cfg.Metrics; m != nil {
		login += ", metrics on http://" + m.Listen + "/metrics"
	}
	fmt.Fprintf(stdout, "%s: ok: %d targets, %d rules, data_dir %s%s\n", *cfgPath, len(cfg.Policy.Targets), len(cfg.Policy.Rules), cfg.DataDir, login)
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
