package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
)

// writeShowConfig writes a config listening on listen with its data in
// dir/data, and returns its path.
func writeShowConfig(t *testing.T, dir, listen string) string {
	t.Helper()
	key, _ := testenv.NewKey(t, dir, "target_host")
	path := filepath.Join(dir, "postern.yaml")
	err := os.WriteFile(path, fmt.Appendf(nil, `listen: %q
data_dir: %s
targets:
  - name: app01
    address: 127.0.0.1:9
    host_key: %q
    logins: [app]
rules:
  - name: devs
    principals: [alice]
    targets: [app01]
    logins: [app]
`, listen, filepath.Join(dir, "data"), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.PublicKey())))), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// ca init and ca show print the bastion's host key as a known_hosts line
// users can paste: for the listen address when a config gives it, else
// for * with a note; ca show --upstream prints the TrustedUserCAKeys line.
func TestCAShowKnownHostsLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeShowConfig(t, dir, "127.0.0.1:2299")
	code, out, errs := runCLI(t, "ca", "init", "--config", cfg)
	if code != 0 || strings.Count(out, "ssh-ed25519 ") != 4 || !strings.Contains(out, "\n[127.0.0.1]:2299 ssh-ed25519 ") {
		t.Fatalf("ca init --config: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	hostPub, _, err := certs.ReadPublicKey(filepath.Join(dir, "data"), certs.HostKeyFile, "host key")
	if err != nil {
		t.Fatal(err)
	}
	// The line is what OpenSSH and x/crypto's knownhosts accept.
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte(out), 0o644)
	check, err := knownhosts.New(kh)
	if err != nil {
		t.Fatal(err)
	}
	if err := check("127.0.0.1:2299", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2299}, hostPub); err != nil {
		t.Fatalf("the printed line does not verify the host key: %v\n%s", err, out)
	}

	code, out, _ = runCLI(t, "ca", "show", "--data-dir", filepath.Join(dir, "data"))
	if code != 0 || !strings.Contains(out, "\n* ssh-ed25519 ") || !strings.Contains(out, "replace it with the name users connect to") {
		t.Fatalf("ca show --data-dir: exit %d, stdout %q", code, out)
	}
	wild := writeShowConfig(t, t.TempDir(), ":2222")
	code, out, errs = runCLI(t, "ca", "init", "--config", wild)
	if code != 0 || !strings.Contains(out, "\n[*]:2222 ssh-ed25519 ") || !strings.Contains(out, "listens on every address") {
		t.Fatalf("ca init, listen :2222: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	upstream, err := os.ReadFile(filepath.Join(dir, "data", "ca", certs.UpstreamCAFile+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	upPub, _, _, _, err := ssh.ParseAuthorizedKey(upstream)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCLI(t, "ca", "show", "--upstream", "--config", cfg)
	if code != 0 || out != string(ssh.MarshalAuthorizedKey(upPub)) {
		t.Fatalf("ca show --upstream: exit %d, stdout %q, stderr %q; want the upstream CA line alone", code, out, errs)
	}
	if code, _, errs := runCLI(t, "ca", "show", "--upstream", "--audit", "--config", cfg); code != 2 || !strings.Contains(errs, "not both") {
		t.Fatalf("ca show --upstream --audit: exit %d, %s", code, errs)
	}
}

// ca init --host-ca makes a host CA; ca show then prints the
// @cert-authority line for it, for the listen address (never a wildcard:
// HOST to replace when the address is unknown). Without one, ca show says
// how to make one.
func TestCAShowHostCALine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeShowConfig(t, dir, "127.0.0.1:2299")
	code, out, errs := runCLI(t, "ca", "init", "--config", cfg)
	if code != 0 || !strings.Contains(out, "# no host CA: 'postern ca init --host-ca' creates one") || strings.Contains(out, "\n@cert-authority") {
		t.Fatalf("ca init without --host-ca: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runCLI(t, "ca", "init", "--host-ca", "--config", cfg)
	caPub, _, err := certs.ReadPublicKey(filepath.Join(dir, "data"), certs.HostCAFile, "host CA")
	if err != nil || code != 0 || !strings.Contains(out, "\n@cert-authority [127.0.0.1]:2299 "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(caPub)))+"\n") {
		t.Fatalf("ca init --host-ca: %v exit %d, stdout %q, stderr %q", err, code, out, errs)
	}
	code, out, _ = runCLI(t, "ca", "show", "--data-dir", filepath.Join(dir, "data"))
	if code != 0 || !strings.Contains(out, "\n@cert-authority HOST ssh-ed25519 ") || strings.Contains(out, "@cert-authority *") {
		t.Fatalf("ca show without an address: exit %d, stdout %q", code, out)
	}
}
