package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/config"
)

// caKey is one public key ca show prints, and what it is for.
type caKey struct{ file, what, comment string }

var (
	userCAKey     = caKey{certs.UserCAFile, "user CA", "user CA (users' certificates are signed by it)"}
	upstreamCAKey = caKey{certs.UpstreamCAFile, "upstream CA", "upstream CA: put in targets' TrustedUserCAKeys file (ca show --upstream prints it alone)"}
	hostKey       = caKey{certs.HostKeyFile, "host key", "bastion host key: a line for users' known_hosts"}
	auditKey      = caKey{certs.AuditKeyFile, "audit key", "audit key: keep a copy off the bastion for 'postern verify --audit-key' (ca show --audit prints it alone)"}
)

func cmdCAShow(args []string, stdout, _ io.Writer) error {
	fs := newFlags("ca show", "ca show [--audit | --upstream] [--data-dir DIR | --config FILE]", stdout)
	dir := fs.String("data-dir", "", "bastion data `dir`ectory")
	cfgPath := fs.String("config", "", "bastion config `file` (its listen address goes in the known_hosts line)")
	auditOnly := fs.Bool("audit", false, "print only the audit public key, for 'postern verify --audit-key'")
	upstreamOnly := fs.Bool("upstream", false, "print only the upstream CA public key: the content of targets' TrustedUserCAKeys file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *auditOnly && *upstreamOnly {
		return usagef("ca show: give --audit or --upstream, not both")
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
	switch {
	case *auditOnly:
		return printKey(stdout, d, auditKey)
	case *upstreamOnly:
		return printKey(stdout, d, upstreamCAKey)
	}
	listen := ""
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		listen = cfg.Listen
	}
	var out bytes.Buffer
	for _, k := range []caKey{userCAKey, upstreamCAKey, hostKey, auditKey} {
		pk, _, err := certs.ReadPublicKey(d, k.file, k.what)
		if err != nil {
			return err
		}
		fmt.Fprintf(&out, "# %s\n", k.comment)
		if k == hostKey {
			line, note := knownHostsLine(listen, pk)
			if note != "" {
				fmt.Fprintf(&out, "# %s\n", note)
			}
			fmt.Fprintln(&out, line)
			if err := hostCALine(&out, d, listen); err != nil {
				return err
			}
			continue
		}
		out.Write(ssh.MarshalAuthorizedKey(pk))
	}
	_, err = stdout.Write(out.Bytes())
	return err
}

// printKey prints one key, bare: the content of the file it goes in.
func printKey(stdout io.Writer, d string, k caKey) error {
	pk, _, err := certs.ReadPublicKey(d, k.file, k.what)
	if err != nil {
		return err
	}
	_, err = stdout.Write(ssh.MarshalAuthorizedKey(pk))
	return err
}

// knownHostsLine is the known_hosts line for the bastion's host key pk
// when it listens on listen (host:port; "" when unknown), and a note when
// the host in it is a wildcard the operator should replace.
func knownHostsLine(listen string, pk ssh.PublicKey) (line, note string) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return knownhosts.Line([]string{"*"}, pk),
			"* matches every host: replace it with the name users connect to ([HOST]:PORT for a port other than 22), or pass --config"
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "*"
		note = "the bastion listens on every address: replace * with the name users connect to"
	}
	return knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(host, port))}, pk), note
}

// hostCALine prints the @cert-authority known_hosts line for d's host CA,
// or how to create one.
func hostCALine(out *bytes.Buffer, d, listen string) error {
	pk, _, err := certs.ReadPublicKey(d, certs.HostCAFile, "host CA")
	if err != nil {
		if _, statErr := os.Stat(filepath.Join(d, "ca", certs.HostCAFile)); errors.Is(statErr, iofs.ErrNotExist) {
			fmt.Fprintln(out, "# no host CA: 'postern ca init --host-ca' creates one, so that users trust the bastion with an @cert-authority line")
			return nil
		}
		return err
	}
	// Never a wildcard: the host certificate names no host, so the
	// line's pattern is all that limits what the CA vouches for.
	pattern := "HOST"
	if host, port, err := net.SplitHostPort(listen); err == nil && port != "" {
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
			pattern = knownhosts.Normalize(net.JoinHostPort(host, port))
		} else {
			pattern = knownhosts.Normalize(net.JoinHostPort("HOST", port))
		}
	}
	fmt.Fprintln(out, "# host CA: or trust the bastion's host certificate with this line instead of the key")
	if strings.Contains(pattern, "HOST") {
		fmt.Fprintln(out, "# replace HOST with the name users connect to (never *: the CA would vouch for every host)")
	}
	fmt.Fprintf(out, "@cert-authority %s %s", pattern, ssh.MarshalAuthorizedKey(pk))
	return nil
}
