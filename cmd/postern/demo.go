package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/demotarget"
)

// The demo's names: the user's principal, the target and the login.
const (
	demoPrincipal = "demo"
	demoTarget    = "demo"
	demoLogin     = "demo"
)

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "demo [--listen 127.0.0.1:2222]", stdout)
	listen := fs.String("listen", "127.0.0.1:2222", "bastion listen `address` (loopback)")
	dirFlag := fs.String("data-dir", demoDir, "state `dir`ectory")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("demo: unexpected argument %q", fs.Arg(0))
	}
	dir, err := filepath.Abs(*dirFlag)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	log := newLogger(stderr, slog.LevelInfo)
	auth, err := certs.Open(dir)
	if err != nil {
		return err
	}

	// The demo target: an SSH server in this process that trusts the
	// upstream CA, on loopback only.
	targetKey, err := certs.LoadOrCreateKey(filepath.Join(dir, "demo_target_ed25519"), "postern demo target")
	if err != nil {
		return err
	}
	target, err := demotarget.New(demotarget.Config{
		Addr:      "127.0.0.1:0",
		HostKey:   targetKey,
		TrustedCA: auth.UpstreamCA.PublicKey(),
		Logins:    []string{demoLogin},
		Log:       log.With("component", "demo-target"),
	})
	if err != nil {
		return fmt.Errorf("start demo target: %w", err)
	}
	defer target.Close()
	go target.Serve()

	store, err := openStore(ctx, auth, dir, log)
	if err != nil {
		return err
	}
	defer store.Close()
	stopAdmin, err := adminSocket(ctx, dir, store, log)
	if err != nil {
		return err
	}
	defer stopAdmin()
	srv, err := bastion.New(bastion.Config{
		Recording: &bastion.Recording{Store: store},
		Policy: bastion.Policy{
			Targets: []bastion.Target{{
				Name: demoTarget, Address: target.Addr(), HostKey: targetKey.PublicKey(),
				Labels: map[string]string{"env": "demo"}, Logins: []string{demoLogin}, DefaultLogin: demoLogin,
			}},
			Rules: []bastion.Rule{{
				Name: "demo", Principals: []string{demoPrincipal}, Targets: []string{demoTarget},
				Logins: []string{demoLogin},
			}},
		},
		Authority:         auth,
		IdleTimeout:       time.Hour,
		KeepAliveInterval: 30 * time.Second,
		Log:               log,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%s is in use (another postern demo?); pick another with --listen 127.0.0.1:2223", *listen)
		}
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	addr := l.Addr().(*net.TCPAddr)

	// The user's key and a fresh certificate for it, and a known_hosts
	// file that pins the bastion's host key: the printed commands verify
	// the bastion like any production user would.
	keyPath := filepath.Join(dir, "id_ed25519")
	userKey, err := certs.LoadOrCreateKey(keyPath, "postern demo user")
	if err != nil {
		l.Close()
		return err
	}
	cert, err := auth.SignUser(userKey.PublicKey(), certs.UserCertRequest{
		Principals: []string{demoPrincipal}, TTL: 12 * time.Hour, KeyID: "postern demo user",
	})
	if err != nil {
		l.Close()
		return err
	}
	if err := os.WriteFile(keyPath+"-cert.pub", ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
		l.Close()
		return err
	}
	khPath := filepath.Join(dir, "known_hosts")
	host := addr.IP.String()
	kh := "[" + host + "]:" + strconv.Itoa(addr.Port) + " " + string(ssh.MarshalAuthorizedKey(auth.HostKey.PublicKey()))
	if err := os.WriteFile(khPath, []byte(kh), 0o644); err != nil {
		l.Close()
		return err
	}

	base := fmt.Sprintf("ssh -p %d -i %s -o IdentitiesOnly=yes -o UserKnownHostsFile=%s %s@%s@%s",
		addr.Port, shellQuote(keyPath), shellQuote(khPath), demoLogin, demoTarget, host)
	fmt.Fprintf(stdout, `Postern demo is running (state in %s).
The bastion listens on %s; the demo target is an SSH server in this process on %s.

Open a shell through the bastion:
%s

Run one command:
%s 'echo hello from $(hostname); exit 3'

Ask the bastion itself who you are (the admin connection, user postern):
%s

Every session is recorded. In this directory (%s):
  postern sessions       list them
  postern play ID        replay one
  postern verify         check nothing was tampered with

Ctrl-C stops the demo.
`, dir, addr, target.Addr(), base, base,
		strings.Replace(base, demoLogin+"@"+demoTarget+"@", bastion.AdminUser+"@", 1)+" whoami", filepath.Dir(dir))

	return serveUntilDone(ctx, srv, l, log)
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,@=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
