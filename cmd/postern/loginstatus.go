package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/postern/postern/certs"
)

// loginStatus is `postern status --json`: one document, stable keys.
type loginStatus struct {
	URL         string    `json:"url"`
	Identity    string    `json:"identity"`
	Principals  []string  `json:"principals"`
	Groups      []string  `json:"groups"`
	Serial      uint64    `json:"serial"`
	ValidAfter  time.Time `json:"valid_after"`
	ValidBefore time.Time `json:"valid_before"`
	SecondsLeft int64     `json:"seconds_left"`
	Certificate string    `json:"certificate_file"`
	Key         string    `json:"key_file"`
	AgentOnly   bool      `json:"agent_only"`
	InAgent     *bool     `json:"in_agent"` // null when no agent is reachable
	SSHConfig   string    `json:"ssh_config"`
	SSHHost     string    `json:"ssh_host"`
	SSHPort     int       `json:"ssh_port"`
}

func cmdStatus(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("status", "status [--json] [--dir DIR]\n\n"+
		"Shows the certificate 'postern login' obtained: identity, principals, serial,\n"+
		"validity and time left. Exits 1 when not logged in or the certificate expired.", stdout)
	jsonOut := fs.Bool("json", false, "print one JSON document")
	dir := fs.String("dir", "", "login `directory` (default ~/.postern)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	d, err := openLoginDir(*dir)
	if err != nil {
		return err
	}
	st, err := d.State()
	if err != nil {
		return err
	}
	cert, err := d.Certificate(st)
	if err != nil {
		return fmt.Errorf("%w: run 'postern login' again", err)
	}
	if cert == nil {
		return errors.New("not logged in: run 'postern login URL'")
	}
	now := time.Now()
	s := loginStatus{
		URL: st.URL, Identity: cert.KeyId, Principals: cert.ValidPrincipals, Groups: []string{},
		Serial:     cert.Serial,
		ValidAfter: time.Unix(int64(cert.ValidAfter), 0).UTC(), ValidBefore: certs.CertValidBefore(cert).UTC(),
		SecondsLeft: int64(certs.TimeLeft(cert, now) / time.Second),
		Certificate: st.CertFile, Key: st.KeyFile, AgentOnly: st.AgentOnly,
		SSHConfig: filepath.Join(d.Path, certs.SSHConfigFile), SSHHost: st.SSHHost, SSHPort: st.SSHPort,
	}
	if g := cert.Extensions[certs.GroupsExtension]; g != "" {
		s.Groups = strings.Split(g, ",")
	}
	if ag, err := certs.DialAgent(os.Getenv("SSH_AUTH_SOCK")); err == nil {
		held, err := ag.Holds(cert)
		if err == nil {
			s.InAgent = &held
		}
		ag.Close()
	}
	if s.SecondsLeft <= 0 {
		return fmt.Errorf("the certificate of %s expired at %s: run 'postern login'", visible(s.Identity), s.ValidBefore.Local().Format(time.DateTime+" MST"))
	}
	if *jsonOut {
		return writeJSON(stdout, s)
	}
	return printStatus(stdout, s)
}

func printStatus(w io.Writer, s loginStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	agent := "no agent reachable (SSH_AUTH_SOCK)"
	if s.InAgent != nil && *s.InAgent {
		agent = "holds the certificate"
	} else if s.InAgent != nil {
		agent = "does not hold the certificate"
	}
	left := (time.Duration(s.SecondsLeft) * time.Second).String()
	for _, kv := range [][2]string{
		{"bastion", s.URL},
		{"identity", s.Identity},
		{"principals", strings.Join(s.Principals, ", ")},
		{"groups", strings.Join(s.Groups, ", ")},
		{"serial", fmt.Sprint(s.Serial)},
		{"valid until", s.ValidBefore.Local().Format(time.DateTime+" MST") + " (" + left + " left)"},
		{"certificate", s.Certificate},
		{"ssh-agent", agent},
		{"connect", "ssh -F " + s.SSHConfig + " LOGIN@TARGET@" + s.SSHHost},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], visible(kv[1]))
	}
	return tw.Flush()
}

func cmdLogout(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newFlags("logout", "logout [--dir DIR]\n\n"+
		"Removes what 'postern login' set up: the certificate, the generated key (a --key\n"+
		"file is left alone), ssh_config and known_hosts, and the ssh-agent entries login added\n"+
		"(for a --key file, only the certificates: the key stays in the agent).\n"+
		"The bastion URL stays remembered.", stdout)
	dir := fs.String("dir", "", "login `directory` (default ~/.postern)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	d, err := openLoginDir(*dir)
	if err != nil {
		return err
	}
	st, err := d.State()
	if err != nil {
		return err
	}
	if st.CertFile == "" {
		fmt.Fprintln(stdout, "Not logged in: nothing to remove.")
		return nil
	}
	n := forgetLogin(os.Getenv("SSH_AUTH_SOCK"), d, st)
	removed, err := d.Logout(st)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Logged out: removed %d files and %d ssh-agent entries.\n", len(removed), n)
	return nil
}
