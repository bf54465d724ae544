package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
)

// runServer runs a until ctx is done or a stop signal comes, answering
// the signals `serve` documents: the first SIGTERM or SIGINT drains (as
// ctx ending does), a second one closes the sessions left at once, and
// SIGHUP reloads the policy from cfgPath.
func runServer(ctx context.Context, a *app.App, cfgPath string, log *slog.Logger) error {
	// main's NotifyContext sees SIGINT and SIGTERM too (and cancels ctx
	// on the first): this loop counts them itself, so the first is a
	// drain and the second a hurry whichever of the two sees it first.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stops := 0
	for {
		select {
		case err := <-done:
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload(ctx, a, cfgPath, log)
				continue
			}
			stops++
			if stops == 1 {
				log.Info("stop signal: draining; send it again to close the sessions at once", "signal", sig.String())
				stop()
			} else {
				a.Hurry()
			}
		}
	}
}

// reload loads cfgPath anew and applies its policy to a. A config that
// does not load is refused, each problem logged, and the one in force
// stays.
func reload(ctx context.Context, a *app.App, cfgPath string, log *slog.Logger) {
	log.Info("SIGHUP: reloading the config", "path", cfgPath)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		var problems []string
		if all, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range all.Unwrap() {
				problems = append(problems, e.Error())
			}
		} else {
			problems = append(problems, err.Error())
		}
		log.Error("config reload refused: the file does not load; the config in force stays", "path", cfgPath, "problems", problems)
		return
	}
	a.Reload(context.WithoutCancel(ctx), cfg) // logs its result
}
