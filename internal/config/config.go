// Package config loads and validates the bastion's YAML configuration file.
//
// A bad config must fail at start, not at the first connection, so Parse
// checks everything it can without touching the network: unknown keys,
// types, durations, addresses, host keys, known_hosts files, and that every
// rule can grant something. Every problem is reported as an *Error naming
// the file, line and key.
//
// A key with a null value ("key:" with nothing after it, or "key: ~") is
// treated as if it were absent.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postern/postern/approval"
	"github.com/postern/postern/bastion"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/mask"
	"github.com/postern/postern/recorder"
)

// Defaults for keys the file leaves out.
const (
	defaultListen            = ":2222"
	defaultIdleTimeout       = 30 * time.Minute
	defaultKeepAliveInterval = 30 * time.Second
	defaultKeepAliveMax      = 3
)

// defaultEnvAllow is returned in a fresh slice for each Config.
var defaultEnvAllow = []string{"LANG", "LC_*"}

// Config is a loaded, validated configuration. Load and Parse fill every
// field: keys the file leaves out hold the defaults documented below. The
// zero value is not a usable configuration. Each call returns a new Config
// that this package neither keeps nor changes.
type Config struct {
	// Path is the file the config came from, as given to Load or Parse.
	Path string
	// Listen is the host:port the bastion listens on. Default ":2222".
	Listen string
	// DataDir is the absolute directory the bastion keeps its state in.
	// Required; a relative data_dir is resolved against the directory of
	// the config file.
	DataDir string
	// IdleTimeout ends a connection that carried no data for this long.
	// Default 30m; zero disables it.
	IdleTimeout time.Duration
	// KeepAliveInterval is how often the bastion probes a quiet client.
	// Default 30s; zero disables keepalives.
	KeepAliveInterval time.Duration
	// KeepAliveMax is how many unanswered keepalives end the connection.
	// Default 3; at least 1.
	KeepAliveMax int
	// Recording controls session recording; it is always on.
	Recording Recording
	// SessionLimits are session_limits: (defaults in sessionlimits.go).
	SessionLimits bastion.SessionLimits
	// Detect says which numbers masking treats as card numbers
	// (masking.detect). Default mask.DetectBrands.
	Detect mask.Detect
	// EnvAllow lists the environment variables a client may pass to a
	// target; an entry ending in '*' matches names with that prefix.
	// Default ["LANG", "LC_*"]; an explicit empty list allows none.
	EnvAllow []string
	// LogLevel is the lowest level logged. Default slog.LevelInfo.
	LogLevel slog.Level
	// Ciphers are the SSH ciphers offered to clients and asked of
	// targets. Nil means bastion.DefaultCiphers (AES-GCM only).
	Ciphers []string
	// Policy holds the targets and rules in file order; rules are tried in
	// that order.
	Policy bastion.Policy
	// Admins may run the admin connection's admin-only commands
	// (ssh postern@bastion sessions): each entry is a certificate
	// principal, or group:NAME for a group of the certificate's
	// groups@postern extension. Default none.
	Admins []string
	// Approvals are the approval rules (approvals:) in file order: they
	// decide exec commands and just-in-time access. Default none.
	Approvals approval.Policy
	// HostNames are the names users connect to the bastion by
	// (host_names:), the principals of its host certificate when it has
	// a host CA. Default: the listen address's host, if it names one.
	HostNames []string
	// ApprovalWebhook, if set, is an http(s) URL each new approval
	// request is posted to (approval_webhook:).
	ApprovalWebhook string
	// Login, if set, is the login API (login:). Nil: none.
	Login *Login
	// Limits are the connection limits (limits:, limits.go).
	Limits Limits
	// Metrics, if set, is the metrics listener (metrics:). Nil: none.
	Metrics *Metrics
	// Shutdown is the shutdown section (serve.go).
	Shutdown Shutdown
	// Digest is the SHA-256 (hex) of the file's bytes as parsed.
	Digest string
	// Performance tunes the Go runtime (performance:). Zero values
	// mean the defaults.
	Performance Performance
	// Warnings are problems that do not stop the bastion but are likely
	// mistakes, like a rule that matches no target; each reads
	// "FILE:LINE: KEY: MSG", like an Error. Nil when there are none.
	Warnings []string
}

// Load reads and parses the config file at path. A file that cannot be read
// is reported with its path and matches fs.ErrNotExist etc. with
// errors.Is; problems in the file's content are *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates config data. name is the file the data came
// from: it is used in errors, and relative data_dir and known_hosts paths
// are resolved against its directory. Every problem in the data is
// reported as an *Error; when there are several, the error joins them
// all (errors.Join: errors.As finds the first, and its Unwrap() []error
// lists each *Error in the order checked).
func Parse(name string, data []byte) (*Config, error) {
	dir, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		return nil, fmt.Errorf("resolve directory of config %s: %w", name, err)
	}
	p := &parser{file: name, dir: dir}
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	c, err := p.config(root)
	if c != nil {
		c.Digest = digest(data)
	}
	return c, err
}

// parser turns a YAML node tree into a Config. It holds no state besides
// where the file is and the warnings found, so its methods can be read in
// any order.
type parser struct {
	file     string // for errors
	dir      string // absolute; relative paths in the file are resolved against it
	warnings []string
}

// config checks the top-level mapping and everything below it. It goes
// on past a bad section, so that one run reports every problem: the
// errors, in the order checked, are joined (see Parse).
func (p *parser) config(root *yaml.Node) (*Config, error) {
	m, err := p.mapping(root, "",
		"listen", "data_dir", "idle_timeout", "keepalive", "env_allow", "log_level", "ciphers", "recording", "masking", "targets", "rules", "admins", "approvals", "approval_webhook", "host_names", "login", "session_limits", "limits", "metrics", "shutdown", "performance")
	if err != nil {
		return nil, err
	}
	c := &Config{
		Path:              p.file,
		Listen:            defaultListen,
		IdleTimeout:       defaultIdleTimeout,
		KeepAliveInterval: defaultKeepAliveInterval,
		KeepAliveMax:      defaultKeepAliveMax,
		EnvAllow:          append([]string(nil), defaultEnvAllow...),
		LogLevel:          slog.LevelInfo,
		Recording:         Recording{RetentionDays: defaultRetentionDays},
		Limits:            defaultLimits(),
	}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if f := m.get("listen"); f.set() {
		c.Listen, err = p.str(f, checkListen)
		check(err)
	}
	c.DataDir, err = p.dataDir(m.get("data_dir"))
	check(err)
	c.IdleTimeout, err = p.duration(m.get("idle_timeout"), c.IdleTimeout)
	check(err)
	check(p.keepAlive(m.get("keepalive"), c))
	if f := m.get("env_allow"); f.set() {
		c.EnvAllow, err = p.strList(f, checkEnvPattern)
		check(err)
	}
	if f := m.get("log_level"); f.set() {
		c.LogLevel, err = p.logLevel(f)
		check(err)
	}
	check(p.ciphers(m.get("ciphers"), c))
	check(p.recording(m.get("recording"), &c.Recording))
	check(p.sessionLimits(m.get("session_limits"), &c.SessionLimits))
	check(p.masking(m.get("masking"), &c.Detect))
	c.Policy.Targets, err = p.targets(m.get("targets"))
	check(err)
	c.Policy.Rules, err = p.rules(m.get("rules"), c.Policy.Targets)
	check(err)
	if f := m.get("admins"); f.set() {
		c.Admins, err = p.strList(f, bastion.CheckAdmin)
		check(err)
	}
	c.Approvals, err = p.approvals(m.get("approvals"), c.Policy.Targets)
	check(err)
	if f := m.get("host_names"); f.set() {
		c.HostNames, err = p.strList(f, checkHostName)
		check(err)
	}
	if f := m.get("approval_webhook"); f.set() {
		c.ApprovalWebhook, err = p.str(f, checkWebhook)
		check(err)
	}
	c.Login, err = p.login(m.get("login"))
	check(err)
	check(p.limits(m.get("limits"), &c.Limits))
	check(p.metrics(m.get("metrics"), c))
	check(p.shutdown(m.get("shutdown"), &c.Shutdown))
	check(p.performance(m.get("performance"), &c.Performance))
	c.Performance.MaxConnections = connectionCap(m.get("limits"), c.Limits)
	if c.Login != nil && len(c.hostNames()) == 0 {
		f := m.get("login")
		p.warnf(f.key.Line, f.path, "neither host_names nor listen names the bastion's host: GET /v1/login announces the host each request was sent to; set host_names to the name users reach the bastion by")
	}
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	c.Warnings = p.warnings
	return c, nil
}

// checkListen accepts host:port with an optional host and a numeric port;
// port 0 picks a free port.
func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf(`%q is not host:port, like ":2222" or "127.0.0.1:2222"`, s)
	}
	if host != "" && !validHost(host) {
		return fmt.Errorf("invalid host %q", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

// dataDir returns the required data_dir as an absolute path.
func (p *parser) dataDir(f field) (string, error) {
	if !f.set() {
		return "", p.errorf(f.line(), f.path, "required: the directory where the bastion keeps its state, like ./postern-data")
	}
	dir, err := p.str(f, nil)
	if err != nil {
		return "", err
	}
	if dir == "" {
		return "", p.errorf(f.line(), f.path, "must not be empty")
	}
	return p.resolve(dir), nil
}

// resolve makes a path from the file absolute, relative to the config
// file's directory.
func (p *parser) resolve(name string) string {
	if filepath.IsAbs(name) {
		return filepath.Clean(name)
	}
	return filepath.Join(p.dir, name)
}

// keepAlive reads the keepalive mapping into c.
func (p *parser) keepAlive(f field, c *Config) error {
	if !f.set() {
		return nil
	}
	m, err := p.mapping(f.val, f.path, "interval", "max_missed")
	if err != nil {
		return err
	}
	if c.KeepAliveInterval, err = p.duration(m.get("interval"), c.KeepAliveInterval); err != nil {
		return err
	}
	if f := m.get("max_missed"); f.set() {
		n, err := p.integer(f)
		if err != nil {
			return err
		}
		if n < 1 {
			return p.errorf(f.line(), f.path, "must be at least 1, got %d", n)
		}
		c.KeepAliveMax = n
	}
	return nil
}

// defaultRetentionDays keeps recordings a year (PCI DSS 10.5.1).
const defaultRetentionDays = 365

// Recording is the recording section.
type Recording struct {
	// Input also records what users type. Default false: typed
	// passwords at no-echo prompts would be stored.
	Input bool
	// ContinueOnFailure keeps sessions going unrecorded when recording
	// fails (on_failure: continue). Default false: end them.
	ContinueOnFailure bool
	// RetentionDays is how long `postern recordings prune` keeps
	// recordings. Default 365.
	RetentionDays int
}

// recording reads the recording mapping into r.
func (p *parser) recording(f field, r *Recording) error {
	if !f.set() {
		return nil
	}
	m, err := p.mapping(f.val, f.path, "input", "on_failure", "retention_days")
	if err != nil {
		return err
	}
	if f := m.get("input"); f.set() {
		if r.Input, err = p.boolean(f); err != nil {
			return err
		}
	}
	if f := m.get("on_failure"); f.set() {
		s, err := p.str(f, nil)
		if err != nil {
			return err
		}
		switch s {
		case "close":
		case "continue":
			r.ContinueOnFailure = true
		default:
			return p.errorf(f.line(), f.path, "must be close (end the session, the default) or continue (keep it going unrecorded), got %q", s)
		}
	}
	if f := m.get("retention_days"); f.set() {
		n, err := p.integer(f)
		if err != nil {
			return err
		}
		if n < 1 {
			return p.errorf(f.line(), f.path, "must be at least 1 day, got %d", n)
		}
		r.RetentionDays = n
	}
	return nil
}

// masking reads the masking mapping: how card numbers are detected. (How
// they are masked is each target's masking key.)
func (p *parser) masking(f field, d *mask.Detect) error {
	if !f.set() {
		return nil
	}
	m, err := p.mapping(f.val, f.path, "detect")
	if err != nil {
		return err
	}
	if f := m.get("detect"); f.set() {
		s, err := p.str(f, nil)
		if err != nil {
			return err
		}
		switch s {
		case "brands":
			*d = mask.DetectBrands
		case "luhn":
			*d = mask.DetectLuhn
		default:
			return p.errorf(f.line(), f.path, "must be brands (numbers payment brands issue, written as cards print them; the default) or luhn (any 13 to 19 digits that pass the Luhn check), got %q", s)
		}
	}
	return nil
}

// checkEnvPattern accepts an environment variable name, optionally ending
// in '*'.
func checkEnvPattern(s string) error {
	name := strings.TrimSuffix(s, "*")
	ok := name != ""
	for i := 0; i < len(name) && ok; i++ {
		c := name[i]
		ok = c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9'
	}
	if !ok {
		return fmt.Errorf("%q is not an environment variable name (letters, digits and '_', not starting with a digit), optionally ending in '*'", s)
	}
	return nil
}

// Bastion returns the bastion settings this config describes, with the
// keys, session index and logger the caller opened. A nil store turns
// recording off (benchmarks only: serve always records).
func (c *Config) Bastion(auth *certs.Authority, store recorder.Store, log *slog.Logger) bastion.Config {
	var rec *bastion.Recording
	if store != nil {
		rec = &bastion.Recording{Store: store, Input: c.Recording.Input, ContinueOnFailure: c.Recording.ContinueOnFailure}
	}
	return bastion.Config{
		Policy:            c.Policy,
		Authority:         auth,
		Recording:         rec,
		SessionLimits:     c.SessionLimits,
		IdleTimeout:       c.IdleTimeout,
		KeepAliveInterval: c.KeepAliveInterval,
		KeepAliveMax:      c.KeepAliveMax,
		EnvAllow:          c.EnvAllow,
		Ciphers:           c.Ciphers,
		Admins:            c.Admins,
		ApprovalRules:     &c.Approvals,
		HostNames:         c.hostNames(),
		Detect:            c.Detect,
		HandshakeTimeout:  c.Limits.HandshakeTimeout,
		Limits:            c.Limits.Limits,
		Log:               log,
	}
}
