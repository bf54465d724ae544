package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/certs"
)

// reuseAbove is how much validity a certificate must have left for login
// to reuse it without signing in again.
const reuseAbove = time.Hour

type loginFlags struct {
	noBrowser, device, agentOnly, force *bool
	key, dir                            *string
	ttl, timeout                        *time.Duration
}

func cmdLogin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("login", "login [flags] [URL]\n\n"+
		"Signs in with the bastion's OpenID provider and gets a short-lived SSH certificate.\n"+
		"URL is the bastion's API (https://bastion.example.com:8443); it is remembered in\n"+
		"the directory, and POSTERN_URL also gives it. Afterwards:\n"+
		"  ssh -F ~/.postern/ssh_config LOGIN@TARGET@BASTION-HOST", stdout)
	var f loginFlags
	f.noBrowser = fs.Bool("no-browser", false, "print the sign-in URL instead of opening a browser")
	f.device = fs.Bool("device", false, "sign in on another device: print a URL and a code (device grant, RFC 8628)")
	f.key = fs.String("key", "", "certify this private key `file` instead of generating one (never removed by logout)")
	f.agentOnly = fs.Bool("agent-only", false, "keep the generated private key only in ssh-agent, never on disk")
	f.ttl = fs.Duration("ttl", 0, "certificate validity to ask for, e.g. 4h (default: the bastion's; at most its max_ttl)")
	f.dir = fs.String("dir", "", "`directory` for key, certificate, ssh_config and known_hosts (default ~/.postern)")
	f.force = fs.Bool("force", false, "sign in even if the certificate has more than an hour left")
	f.timeout = fs.Duration("timeout", certs.DefaultLoginTimeout, "give up if the sign-in is not finished within this `duration`")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("login: give at most one URL (see 'postern login --help')")
	}
	if *f.agentOnly && *f.key != "" {
		return usagef("login: --agent-only keeps a generated key off disk; it does not go with --key")
	}
	if *f.ttl < 0 || *f.timeout <= 0 {
		return usagef("login: --ttl and --timeout must be positive")
	}
	d, err := openLoginDir(*f.dir)
	if err != nil {
		return err
	}
	old, err := d.State()
	if err != nil {
		return err
	}
	url, err := loginURL(pos, old)
	if err != nil {
		return err
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if *f.agentOnly {
		if err := checkAgent(sock); err != nil {
			return fmt.Errorf("--agent-only needs a running ssh-agent: %w", err)
		}
	}
	if !*f.force && reuse(d, old, url, f, sock, stdout) {
		return nil
	}
	key, err := loginKey(*f.key)
	if err != nil {
		return err
	}
	opts := certs.LoginOptions{Key: key, TTL: *f.ttl, Device: *f.device, Prompt: stderr, Timeout: *f.timeout}
	if !*f.noBrowser && !*f.device {
		opts.OpenBrowser = openBrowser
	}
	res, err := certs.LoginAndIssue(ctx, url, opts)
	if err != nil {
		return err
	}
	return finishLogin(d, old, res, key, *f.agentOnly, sock, stdout)
}

// finishLogin puts the certificate where ssh finds it: the agent first
// when the key lives only there, then the files.
func finishLogin(d *certs.LoginDir, old *certs.LoginState, res *certs.LoginResult, key *certs.LoginKey, agentOnly bool, sock string, stdout io.Writer) error {
	cert := res.Issued.Cert
	oldCert, _ := d.Certificate(old)
	if oldCert != nil && !bytes.Equal(oldCert.Key.Marshal(), key.Public.Marshal()) {
		forgetLogin(sock, d, old) // the earlier login's key is of no more use
	}
	agentMsg, agentErr := addToAgent(sock, key, cert, res.URL)
	if agentOnly && agentErr != nil {
		return fmt.Errorf("--agent-only: %w", agentErr)
	}
	st, err := d.SaveLogin(certs.Saved{URL: res.URL, Info: res.Info, Cert: cert, Key: key, AgentOnly: agentOnly})
	if err != nil {
		return err
	}
	if err := d.RemoveStale(old, st); err != nil {
		return err
	}
	left := certs.TimeLeft(cert, time.Now()).Round(time.Second)
	fmt.Fprintf(stdout, "Logged in to %s as %s (principals %s; serial %d), valid until %s (%s).\n",
		res.URL, visible(cert.KeyId), visible(strings.Join(cert.ValidPrincipals, ", ")), cert.Serial,
		certs.CertValidBefore(cert).Format(time.DateTime+" MST"), left)
	fmt.Fprintln(stdout, agentMsg)
	if oldCert != nil && oldCert.KeyId != cert.KeyId && old.URL == res.URL {
		// On a machine others use, the URL given to the browser is in
		// its command line: another user can finish the sign-in as
		// themselves, and the provider redirects to this login's port.
		fmt.Fprintf(stdout, "Warning: this certificate is for %s, but the last login here was %s. If you did not sign in as %s, run 'postern logout': "+
			"on a shared machine another user can finish a sign-in a browser was given (postern login --device avoids that).\n",
			visible(cert.KeyId), visible(oldCert.KeyId), visible(cert.KeyId))
	}
	printConnectHint(stdout, d, st)
	return nil
}

func printConnectHint(w io.Writer, d *certs.LoginDir, st *certs.LoginState) {
	cfg := filepath.Join(d.Path, certs.SSHConfigFile)
	fmt.Fprintf(w, "Connect: ssh -F %s LOGIN@TARGET@%s\n", cfg, st.SSHHost)
	fmt.Fprintf(w, "For plain ssh, add 'Include %s' at the top of ~/.ssh/config.\n", cfg)
}

// addToAgent adds key and certificate to the agent at sock, if any, and
// says what happened in one line.
func addToAgent(sock string, key *certs.LoginKey, cert *ssh.Certificate, url string) (string, error) {
	ag, err := certs.DialAgent(sock)
	if err != nil {
		return fmt.Sprintf("Not added to ssh-agent (%v); ssh uses the key file.", err), err
	}
	defer ag.Close()
	life, err := ag.Add(key, cert, "postern login "+url, time.Now())
	if err != nil {
		return fmt.Sprintf("Not added to ssh-agent: %v.", err), err
	}
	return fmt.Sprintf("Key and certificate added to ssh-agent for %s.", life), nil
}

// forgetLogin removes what the login st added to the agent, if one is
// reachable: for a generated key, the key and its certificates; for a
// --key of the user's own, only the certificates the bastion's CA signed
// for it (the user's plain key and other CAs' certificates stay). An
// agent's failure does not stop a login or logout.
func forgetLogin(sock string, d *certs.LoginDir, st *certs.LoginState) int {
	cert, _ := d.Certificate(st)
	var pub ssh.PublicKey
	switch {
	case cert != nil && !st.Generated:
	case cert != nil:
		pub = cert.Key
	case st.Generated:
		key, err := savedKey(st)
		if err != nil {
			return 0
		}
		pub = key.Public
	default:
		return 0 // a --key login whose certificate is gone: its CA is unknown
	}
	ag, err := certs.DialAgent(sock)
	if err != nil {
		return 0
	}
	defer ag.Close()
	var n int
	if pub != nil {
		n, _ = ag.Remove(pub)
	} else {
		n, _ = ag.RemoveLogin(cert, false)
	}
	return n
}

func checkAgent(sock string) error {
	ag, err := certs.DialAgent(sock)
	if err != nil {
		return err
	}
	return ag.Close()
}

// openLoginDir opens --dir, or ~/.postern.
func openLoginDir(dir string) (*certs.LoginDir, error) {
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("find the home directory for ~/.postern (%v): give --dir", err)
		}
		dir = filepath.Join(home, ".postern")
	}
	return certs.OpenLoginDir(dir)
}

// loginURL picks the bastion URL: the argument, POSTERN_URL, or the one
// remembered from the last login.
func loginURL(pos []string, st *certs.LoginState) (string, error) {
	u := os.Getenv("POSTERN_URL")
	if len(pos) == 1 {
		u = pos[0]
	}
	if u == "" {
		u = st.URL
	}
	if u == "" {
		return "", usagef("login: no bastion URL: give it once, as in 'postern login https://bastion.example.com:8443' (it is remembered), or set POSTERN_URL")
	}
	parsed, err := certs.ParseAPIURL(u)
	if err != nil {
		return "", usagef("login: %v", err)
	}
	return parsed, nil
}

func loginKey(path string) (*certs.LoginKey, error) {
	if path != "" {
		return certs.LoadLoginKey(path)
	}
	return certs.GenerateLoginKey()
}

// reuse reports whether the saved login is still good for this request
// (same URL and key choice, key matching the certificate, more than an
// hour left) and, if so, says so, making sure the agent has it.
func reuse(d *certs.LoginDir, st *certs.LoginState, url string, f loginFlags, sock string, stdout io.Writer) bool {
	if st.URL != url || st.CertFile == "" || st.AgentOnly != *f.agentOnly {
		return false
	}
	if !sameKeyChoice(st, *f.key) {
		return false
	}
	cert, err := d.Certificate(st)
	if err != nil || cert == nil || certs.TimeLeft(cert, time.Now()) <= reuseAbove {
		return false
	}
	key, err := savedKey(st)
	if err != nil || !bytes.Equal(key.Public.Marshal(), cert.Key.Marshal()) {
		return false
	}
	agentMsg := ""
	if ag, err := certs.DialAgent(sock); err == nil {
		held, _ := ag.Holds(cert)
		if !held && key.Private != nil {
			if _, err := ag.Add(key, cert, "postern login "+url, time.Now()); err == nil {
				held, agentMsg = true, " Added it to ssh-agent again."
			}
		}
		ag.Close()
		if st.AgentOnly && !held {
			return false // the key is gone with the agent: sign in again
		}
	} else if st.AgentOnly {
		return false
	}
	left := certs.TimeLeft(cert, time.Now()).Round(time.Second)
	fmt.Fprintf(stdout, "Still logged in to %s as %s until %s (%s left): reusing the certificate, no sign-in needed (--force signs in anyway).%s\n",
		url, visible(cert.KeyId), certs.CertValidBefore(cert).Format(time.DateTime+" MST"), left, agentMsg)
	printConnectHint(stdout, d, st)
	return true
}

// sameKeyChoice reports whether the saved login used the key --key names
// now (or, without --key, a generated one).
func sameKeyChoice(st *certs.LoginState, keyFlag string) bool {
	if keyFlag == "" {
		return st.Generated
	}
	want, err := filepath.Abs(keyFlag)
	return err == nil && !st.Generated && st.KeyFile == want
}

// savedKey loads the key of a saved login: the private key file, or for
// an agent-only login its public half.
func savedKey(st *certs.LoginState) (*certs.LoginKey, error) {
	if st.AgentOnly {
		data, err := os.ReadFile(st.KeyFile)
		if err != nil {
			return nil, err
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
		if err != nil {
			return nil, err
		}
		return &certs.LoginKey{Public: pub}, nil
	}
	key, err := certs.LoadLoginKey(st.KeyFile)
	if err == nil && st.Generated {
		key.Path = "" // the login's own key, not one of the user's
	}
	return key, err
}

// openBrowser opens u with the desktop's opener. It returns once the
// opener has handed the URL on; ctx ending stops a hung opener.
func openBrowser(ctx context.Context, u string) error {
	name := "xdg-open"
	if runtime.GOOS == "darwin" {
		name = "open"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return errors.New(name + " not found")
	}
	return exec.CommandContext(ctx, path, u).Run()
}
