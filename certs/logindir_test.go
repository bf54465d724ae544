package certs

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// shortLife is the validity of the certificates that tests watch the
// agent drop.
const shortLife = 10 * time.Second

// loginFixture is a login as the bastion would answer it, the certificate
// signed by a real Authority standing in for POST /v1/certificates.
func loginFixture(t *testing.T, key *LoginKey, ttl time.Duration) Saved {
	t.Helper()
	a, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.SignUser(key.Public, UserCertRequest{Principals: []string{"alice"}, Groups: []string{"dev"},
		TTL: ttl, KeyID: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := serve(t, 200, nil, validInfo(a.HostKey.PublicKey())).LoginInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return Saved{URL: "https://bastion.example.com:8443", Info: info, Cert: cert, Key: key}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestSaveLoginWritesPrivateFiles(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	d, err := OpenLoginDir(filepath.Join(base, "my dir %h"))
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, d.Path); m != 0o700 {
		t.Fatalf("directory mode %#o", m)
	}
	key, err := GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	s := loginFixture(t, key, time.Hour)
	st, err := d.SaveLogin(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{LoginKeyFile, LoginKeyFile + ".pub", LoginKeyFile + "-cert.pub", KnownHostsFile, SSHConfigFile, LoginStateFile} {
		if m := mode(t, filepath.Join(d.Path, f)); m != 0o600 {
			t.Errorf("%s mode %#o, want 0600", f, m)
		}
	}
	if entries, _ := os.ReadDir(d.Path); len(entries) != 6 {
		t.Errorf("%d files in the directory (a temporary file left?): %v", len(entries), entries)
	}
	signer, err := ssh.ParsePrivateKey(readFile(t, st.KeyFile))
	if err != nil || !bytes.Equal(signer.PublicKey().Marshal(), key.Public.Marshal()) {
		t.Fatalf("key file: %v", err)
	}
	got, err := d.Certificate(st)
	if err != nil || !bytes.Equal(got.Marshal(), s.Cert.Marshal()) {
		t.Fatalf("certificate: %v", err)
	}
	// Paths are quoted (space) and % doubled (ssh_config tokens).
	q := func(name string) string {
		return `"` + strings.ReplaceAll(filepath.Join(d.Path, name), "%", "%%") + `"`
	}
	want := "# Written by 'postern login' for https://bastion.example.com:8443; 'postern logout' removes it.\n" +
		"Host bastion.example.com\n    HostName bastion.example.com\n    Port 2222\n" +
		"    IdentityFile " + q(LoginKeyFile) + "\n    CertificateFile " + q(LoginKeyFile+"-cert.pub") + "\n" +
		"    UserKnownHostsFile " + q(KnownHostsFile) + "\n    IdentitiesOnly yes\n    StrictHostKeyChecking yes\n"
	if cfg := string(readFile(t, filepath.Join(d.Path, SSHConfigFile))); cfg != want {
		t.Fatalf("ssh_config:\n%s\nwant:\n%s", cfg, want)
	}
	again, err := d.State()
	if err != nil || *again != *st {
		t.Fatalf("state read back %+v, %v; wrote %+v", again, err, st)
	}

	// A login with the user's own key replaces the generated one, and
	// logout never removes the user's key.
	_, own := testenv.NewKey(t, base, "own")
	ownKey, err := LoadLoginKey(own)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := d.SaveLogin(loginFixture(t, ownKey, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveStale(st, st2); err != nil {
		t.Fatal(err)
	}
	if st2.KeyFile != own || st2.CertFile != filepath.Join(d.Path, "own-cert.pub") || st2.Generated {
		t.Fatalf("state with --key: %+v", st2)
	}
	for _, f := range []string{LoginKeyFile, LoginKeyFile + ".pub", LoginKeyFile + "-cert.pub"} {
		if _, err := os.Stat(filepath.Join(d.Path, f)); !os.IsNotExist(err) {
			t.Errorf("%s of the earlier login is still there", f)
		}
	}
	removed, err := d.Logout(st2)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	wantRemoved := []string{filepath.Join(d.Path, KnownHostsFile), filepath.Join(d.Path, "own-cert.pub"), filepath.Join(d.Path, SSHConfigFile)}
	if !slices.Equal(removed, wantRemoved) {
		t.Fatalf("removed %v, want %v", removed, wantRemoved)
	}
	if _, err := os.Stat(own); err != nil {
		t.Fatalf("logout removed the user's key: %v", err)
	}
	if st3, err := d.State(); err != nil || *st3 != (LoginState{URL: st2.URL}) {
		t.Fatalf("state after logout %+v, %v: want the URL alone", st3, err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLoginDirRefusesOpenDirectoryAndBadPaths(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLoginDir(dir); err != nil {
		t.Fatalf("a 0755 directory: %v", err)
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLoginDir(dir); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Fatalf("err %v", err)
	}
	if _, err := configPath("/tmp/a\"b"); err == nil {
		t.Fatal("a quote was written into ssh_config")
	}
	if _, err := configPath("/tmp/a\nHost *"); err == nil {
		t.Fatal("a line break was written into ssh_config")
	}
}

func TestLoadLoginKeyPassphraseProtected(t *testing.T) {
	t.Parallel()
	key, err := GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(key.Private, "c", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "locked")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadLoginKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Private != nil || !bytes.Equal(got.Public.Marshal(), key.Public.Marshal()) || got.Path != path {
		t.Fatalf("loaded %+v", got)
	}
	if _, err := (&Agent{}).Add(got, nil, "", time.Now()); err == nil || !strings.Contains(err.Error(), "ssh-add") {
		t.Fatalf("adding a locked key: %v", err)
	}
	if _, err := LoadLoginKey(path + ".missing"); err == nil {
		t.Fatal("a missing key loaded")
	}
}

// The agent holds key and certificate for the certificate's time left and
// drops them itself at expiry; Remove takes out both.
func TestAgentLifetimeAndRemove(t *testing.T) {
	t.Parallel()
	sock := testenv.SSHAgent(t)
	ag, err := DialAgent(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ag.Close()
	if _, err := DialAgent(""); err != ErrNoAgent {
		t.Fatalf("no socket: %v", err)
	}
	key, err := GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	// Short, but long enough for the checks below while it is held: its
	// end is at whole seconds, the fixture takes time, and each ssh-add
	// is a process; with 3 s a loaded machine could be left with 1 s or
	// less, and the agent dropped it before it was listed.
	short := loginFixture(t, key, shortLife).Cert
	life, err := ag.Add(key, short, "postern test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if life <= 0 || life > shortLife {
		t.Fatalf("lifetime %v, want at most the %v left", life, shortLife)
	}
	if l := testenv.AgentList(t, sock); len(l) != 2 || !strings.Contains(strings.Join(l, "\n"), "ED25519-CERT") {
		t.Fatalf("ssh-add -l: %q", l)
	}
	if ok, err := ag.Holds(short); !ok || err != nil {
		t.Fatalf("holds: %v %v", ok, err)
	}
	t0 := time.Now()
	testenv.WaitFor(t, shortLife+15*time.Second, func() bool { return len(testenv.AgentList(t, sock)) == 0 })
	t.Logf("life %v gone after %v", life, time.Since(t0))

	long := loginFixture(t, key, time.Hour).Cert
	if _, err := ag.Add(key, long, "postern test", time.Now()); err != nil {
		t.Fatal(err)
	}
	other, err := GenerateLoginKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Add(other, loginFixture(t, other, time.Hour).Cert, "not ours", time.Now()); err != nil {
		t.Fatal(err)
	}
	if n, err := ag.Remove(key.Public); n != 2 || err != nil {
		t.Fatalf("removed %d, %v; want 2", n, err)
	}
	if l := testenv.AgentList(t, sock); len(l) != 2 || !strings.Contains(l[0], "not ours") {
		t.Fatalf("after remove: %q; want only the other key's entries", l)
	}
}

// README.md's "Logging in" shows the ssh_config login writes.
func TestREADMEShowsTheSSHConfig(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	d := &LoginDir{Path: "/home/u/.postern"}
	st := &LoginState{URL: "https://bastion.example.com:8443", KeyFile: d.file(LoginKeyFile),
		CertFile: d.file(LoginKeyFile + "-cert.pub"), SSHHost: "bastion.example.com", SSHPort: 2222}
	cfg, err := sshConfig(st, d.file(KnownHostsFile))
	if err != nil {
		t.Fatal(err)
	}
	_, block, _ := strings.Cut(string(cfg), "\n") // without the comment line
	var indented strings.Builder
	for _, line := range strings.SplitAfter(strings.ReplaceAll(block, d.Path, "~/.postern"), "\n") {
		if line != "" {
			indented.WriteString("   " + line)
		}
	}
	if !strings.Contains(string(readme), "```\n"+indented.String()+"   ```\n") {
		t.Fatalf("README.md does not show the ssh_config as written:\n%s", indented.String())
	}
}
