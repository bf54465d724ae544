package app

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/internal/audit"
	"github.com/postern/postern/internal/config"
)

// Reloading (SIGHUP): the targets, rules, admins, approval rules and
// masking of a new config replace those in force without a restart; open
// connections the new policy still grants go on. Everything else (listen
// addresses, data directory, timeouts, keepalive, env_allow, ciphers,
// recording, host names, the approval webhook, login, log level and
// shutdown) is read at start only: a change to it is logged as needing a
// restart, and the value in force stays.

// reloadState is what Reload keeps between reloads.
type reloadState struct {
	mu       sync.Mutex     // serialises reloads; guards settings
	settings *config.Config // in force: the start's, with reloaded policy
	fixed    bool           // Config.Extra built part of the config: no reload
}

// restartOnly names the keys Reload does not apply, each with how to read
// it from a Config.
var restartOnly = []struct {
	key string
	get func(*config.Config) any
}{
	{"listen", func(c *config.Config) any { return c.Listen }},
	{"data_dir", func(c *config.Config) any { return c.DataDir }},
	{"idle_timeout", func(c *config.Config) any { return c.IdleTimeout }},
	{"keepalive", func(c *config.Config) any { return [2]any{c.KeepAliveInterval, c.KeepAliveMax} }},
	{"env_allow", func(c *config.Config) any { return c.EnvAllow }},
	{"log_level", func(c *config.Config) any { return c.LogLevel }},
	{"ciphers", func(c *config.Config) any { return c.Ciphers }},
	{"recording", func(c *config.Config) any { return c.Recording }},
	{"host_names", func(c *config.Config) any { return c.HostNames }},
	{"approval_webhook", func(c *config.Config) any { return c.ApprovalWebhook }},
	{"login", func(c *config.Config) any { return c.Login }},
	{"shutdown", func(c *config.Config) any { return c.Shutdown }},
	{"limits", func(c *config.Config) any { return c.Limits }},
	{"session_limits", func(c *config.Config) any { return c.SessionLimits }},
	{"metrics", func(c *config.Config) any { return c.Metrics }},
	{"performance", func(c *config.Config) any { return c.Performance }},
}

// Reload applies the policy of s (a config loaded anew from the file the
// App started with): it seals the config's digest in the audit chain,
// then makes the new policy the bastion's, which ends the open
// connections it no longer grants, each user told why. Keys that need a
// restart are logged and keep their values. On an error nothing changes.
// The result, either way, is logged and written as an audit record. It is
// safe for concurrent use.
func (a *App) Reload(ctx context.Context, s *config.Config) error {
	err := a.reloadPolicy(ctx, s)
	if err != nil {
		a.log.Error("config reload refused; the config in force stays", "path", s.Path, "err", err)
		audit.Record(a.log, audit.ConfigReload, "ok", false, "path", s.Path, "reason", err.Error())
	}
	return err
}

func (a *App) reloadPolicy(ctx context.Context, s *config.Config) error {
	r := &a.reload
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.fixed:
		return errors.New("this bastion's config is partly built in code (demo): restart it instead")
	case a.stopping.Load():
		return errors.New("the bastion is shutting down")
	}
	old := r.settings
	bc := s.Bastion(a.Auth, nil, nil)
	rules := bastion.Rules{Policy: bc.Policy, ApprovalRules: bc.ApprovalRules, Admins: bc.Admins, Detect: bc.Detect}
	if err := bastion.CheckRules(&rules); err != nil {
		return err
	}
	var restart []string
	for _, k := range restartOnly {
		if !reflect.DeepEqual(k.get(old), k.get(s)) {
			restart = append(restart, k.key)
		}
	}
	if len(restart) > 0 {
		a.log.Warn("config reload: these keys changed but take effect only at a restart; their values in force stay", "keys", restart)
	}
	head := "none (recording off)"
	if a.Store != nil {
		// Sealed first: a policy change the chain does not show is not
		// made (fail closed).
		h, err := a.Store.SealConfig(ctx, s.Digest, "reload")
		if err != nil {
			return fmt.Errorf("seal the reload in the audit chain: %w", err)
		}
		head = h.String()
	}
	ended, err := a.Bastion.SetRules(rules)
	if err != nil {
		return err
	}
	next := *old
	next.Policy, next.Approvals, next.Admins, next.Detect, next.Digest = s.Policy, s.Approvals, s.Admins, s.Detect, s.Digest
	r.settings = &next
	added, removed := targetChanges(old.Policy, s.Policy)
	attrs := []any{"path", s.Path, "sha256", s.Digest, "targets", len(s.Policy.Targets), "targets_added", added, "targets_removed", removed,
		"rules", len(s.Policy.Rules), "approval_rules", len(s.Approvals.Rules), "admins", len(s.Admins), "connections_ended", ended}
	a.log.Info("config reloaded", attrs...)
	audit.Record(a.log, audit.ConfigReload, append([]any{"ok", true, "chain_head", head, "restart_needed", restart}, attrs...)...)
	for _, w := range s.Warnings {
		a.log.Warn("config: " + w)
	}
	return nil
}

// targetChanges names the targets new has that old has not, and the
// reverse.
func targetChanges(old, new bastion.Policy) (added, removed []string) {
	names := func(p bastion.Policy) []string {
		var out []string
		for _, t := range p.Targets {
			out = append(out, t.Name)
		}
		return out
	}
	o, n := names(old), names(new)
	for _, t := range n {
		if !slices.Contains(o, t) {
			added = append(added, t)
		}
	}
	for _, t := range o {
		if !slices.Contains(n, t) {
			removed = append(removed, t)
		}
	}
	return added, removed
}
