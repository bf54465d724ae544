package certs

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
	"golang.org/x/crypto/ssh"
)

func TestOpenCreatesKeysOnceWithPrivateModes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{UserCAFile, UpstreamCAFile, HostKeyFile} {
		st, err := os.Stat(filepath.Join(dir, "ca", name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %#o, want 0600", name, st.Mode().Perm())
		}
		if _, err := os.Stat(filepath.Join(dir, "ca", name+".pub")); err != nil {
			t.Errorf("%s.pub: %v", name, err)
		}
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.UserCA.PublicKey().Marshal()) != string(b.UserCA.PublicKey().Marshal()) ||
		string(a.UpstreamCA.PublicKey().Marshal()) != string(b.UpstreamCA.PublicKey().Marshal()) ||
		string(a.HostKey.PublicKey().Marshal()) != string(b.HostKey.PublicKey().Marshal()) {
		t.Fatal("second Open generated new keys instead of reusing them")
	}
	if string(a.UserCA.PublicKey().Marshal()) == string(a.UpstreamCA.PublicKey().Marshal()) {
		t.Fatal("user CA and upstream CA are the same key")
	}
}

func TestOpenRefusesReadableKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "ca", UserCAFile)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Open with a 0644 CA key: err = %v, want a chmod 600 hint", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	a, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	user := testenv.NewSigner(t)
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}
	sign := func(ca ssh.Signer, mod func(*ssh.Certificate)) *ssh.Certificate {
		c := &ssh.Certificate{
			Key: user.PublicKey(), Serial: 7, CertType: ssh.UserCert, KeyId: "alice",
			ValidPrincipals: []string{"alice"},
			ValidAfter:      uint64(now.Add(-time.Hour).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()),
			Permissions: ssh.Permissions{CriticalOptions: map[string]string{}, Extensions: map[string]string{}},
		}
		if mod != nil {
			mod(c)
		}
		if err := c.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		return c
	}
	tampered := sign(a.UserCA, nil)
	tampered.ValidPrincipals = []string{"root"} // signature no longer covers this
	// x/crypto refuses to sign a certificate without principals; the
	// principal check comes before the signature check, so an unsigned
	// one that names our CA exercises it.
	unsignedNoPrincipals := sign(a.UserCA, nil)
	unsignedNoPrincipals.ValidPrincipals = nil
	tests := []struct {
		name   string
		key    ssh.PublicKey
		remote net.Addr
		want   string // substring of the user message; "" = accepted
	}{
		{"valid", sign(a.UserCA, nil), local, ""},
		{"plain key", user.PublicKey(), local, "certificate is required"},
		{"other CA", sign(other.UserCA, nil), local, "not signed by this bastion"},
		{"upstream CA is not a user CA", sign(a.UpstreamCA, nil), local, "not signed by this bastion"},
		{"host cert", sign(a.UserCA, func(c *ssh.Certificate) { c.CertType = ssh.HostCert }), local, "not a user certificate"},
		{"expired", sign(a.UserCA, func(c *ssh.Certificate) { c.ValidBefore = uint64(now.Add(-3 * time.Minute).Unix()) }), local, "expired"},
		// No skew at the end: the bastion ends a connection at
		// ValidBefore, so it lets none in from then on.
		{"expired a second ago", sign(a.UserCA, func(c *ssh.Certificate) { c.ValidBefore = uint64(now.Add(-time.Second).Unix()) }), local, "your certificate expired at 2026-11-25T11:59:59Z; log in again"},
		{"expires now", sign(a.UserCA, func(c *ssh.Certificate) { c.ValidBefore = uint64(now.Unix()) }), local, "expired"},
		{"expires in a second", sign(a.UserCA, func(c *ssh.Certificate) { c.ValidBefore = uint64(now.Add(time.Second).Unix()) }), local, ""},
		{"not yet valid", sign(a.UserCA, func(c *ssh.Certificate) { c.ValidAfter = uint64(now.Add(3 * time.Minute).Unix()) }), local, "not yet valid"},
		{"not yet valid within skew", sign(a.UserCA, func(c *ssh.Certificate) { c.ValidAfter = uint64(now.Add(time.Minute).Unix()) }), local, ""},
		{"no principals", unsignedNoPrincipals, local, "no principals"},
		{"unknown critical option", sign(a.UserCA, func(c *ssh.Certificate) { c.CriticalOptions["force-command"] = "id" }), local, "unsupported critical option"},
		{"source-address match", sign(a.UserCA, func(c *ssh.Certificate) { c.CriticalOptions["source-address"] = "10.0.0.0/8,127.0.0.1" }), local, ""},
		{"source-address mismatch", sign(a.UserCA, func(c *ssh.Certificate) { c.CriticalOptions["source-address"] = "10.0.0.0/8" }), local, "from this address"},
		{"source-address garbage", sign(a.UserCA, func(c *ssh.Certificate) { c.CriticalOptions["source-address"] = "nonsense" }), local, "from this address"},
		{"tampered", tampered, local, "not valid"},
		{"groups", sign(a.UserCA, func(c *ssh.Certificate) { c.Extensions[GroupsExtension] = "dba,ops" }), local, ""},
	}
	for _, list := range []string{"dba,,ops", ",dba", "dba,", ",", ""} {
		tests = append(tests, struct {
			name   string
			key    ssh.PublicKey
			remote net.Addr
			want   string
		}{"groups " + strconv.Quote(list), sign(a.UserCA, func(c *ssh.Certificate) { c.Extensions[GroupsExtension] = list }), local, "extension is malformed"})
	}
	checker := Checker{CA: a.UserCA.PublicKey(), Clock: func() time.Time { return now }}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checker.Check(tt.key, tt.remote)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *CheckError", err)
			}
			if !strings.Contains(ce.UserMessage(), tt.want) {
				t.Fatalf("message %q does not contain %q", ce.UserMessage(), tt.want)
			}
		})
	}
}

func TestSignUserAndMintUpstream(t *testing.T) {
	t.Parallel()
	a, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	user := testenv.NewSigner(t)
	cert, err := a.SignUser(user.PublicKey(), UserCertRequest{Principals: []string{"alice"}, Groups: []string{"dba", "ops"}, TTL: time.Hour, KeyID: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Checker{CA: a.UserCA.PublicKey()}).Check(cert, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatalf("freshly signed cert refused: %v", err)
	}
	if g := Groups(cert); len(g) != 2 || g[0] != "dba" || g[1] != "ops" {
		t.Fatalf("groups = %v", g)
	}
	if _, err := a.SignUser(cert, UserCertRequest{Principals: []string{"a"}, TTL: time.Hour}); err == nil {
		t.Fatal("signing a certificate as a key succeeded")
	}
	if _, err := a.SignUser(user.PublicKey(), UserCertRequest{Principals: []string{"a"}, TTL: time.Hour, SourceAddress: "300.1.1.1"}); err == nil {
		t.Fatal("bad source-address accepted")
	}

	signer, up, err := a.MintUpstream(UpstreamRequest{Login: "postgres", KeyID: "postern session=S user=alice", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(up.ValidBefore-up.ValidAfter) * time.Second; got > MaxUpstreamTTL {
		t.Fatalf("upstream validity %s exceeds %s", got, MaxUpstreamTTL)
	}
	if len(up.ValidPrincipals) != 1 || up.ValidPrincipals[0] != "postgres" || up.KeyId != "postern session=S user=alice" {
		t.Fatalf("upstream cert principals %v key id %q", up.ValidPrincipals, up.KeyId)
	}
	for _, ext := range []string{"permit-port-forwarding", "permit-agent-forwarding"} {
		if _, ok := up.Permissions.Extensions[ext]; ok {
			t.Fatalf("%s granted without being asked for", ext)
		}
	}
	if _, ok := cert.Extensions["permit-agent-forwarding"]; ok {
		t.Fatal("user certificate permits agent forwarding without being asked for")
	}
	if agentCert, err := a.SignUser(user.PublicKey(), UserCertRequest{Principals: []string{"alice"}, TTL: time.Hour, AgentForwarding: true}); err != nil {
		t.Fatal(err)
	} else if _, ok := agentCert.Extensions["permit-agent-forwarding"]; !ok {
		t.Fatal("AgentForwarding did not add permit-agent-forwarding")
	}
	if _, agentUp, err := a.MintUpstream(UpstreamRequest{Login: "postgres", AgentForwarding: true}); err != nil {
		t.Fatal(err)
	} else if _, ok := agentUp.Extensions["permit-agent-forwarding"]; !ok {
		t.Fatal("upstream AgentForwarding did not add permit-agent-forwarding")
	}
	checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool {
		return string(k.Marshal()) == string(a.UpstreamCA.PublicKey().Marshal())
	}}
	if err := checker.CheckCert("postgres", up); err != nil {
		t.Fatalf("upstream cert does not verify against the upstream CA: %v", err)
	}
	if string(signer.PublicKey().Marshal()) != string(up.Marshal()) {
		t.Fatal("signer does not present the minted certificate")
	}
	_, up2, _ := a.MintUpstream(UpstreamRequest{Login: "postgres"})
	if string(up2.Key.Marshal()) == string(up.Key.Marshal()) {
		t.Fatal("two sessions got the same upstream key")
	}
}

// TestSignUserRefusesNames: a principal or group name that would be read
// back as another (a comma splits it in two) or that could act on a
// terminal is refused at issue, with an error that says which and why.
func TestSignUserRefusesNames(t *testing.T) {
	t.Parallel()
	a, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	user := testenv.NewSigner(t).PublicKey()
	for _, tt := range []struct {
		principals, groups []string
		want               string
	}{
		{[]string{"dave"}, []string{"contractors,auditors"}, `group "contractors,auditors" contains a comma`},
		{[]string{"dave,root"}, nil, `principal "dave,root" contains a comma`},
		{[]string{"dave"}, []string{"dev", ""}, "group name is empty"},
		{[]string{""}, nil, "principal name is empty"},
		{[]string{"dave"}, []string{"dev ops"}, "white space"},
		{[]string{"dave"}, []string{"dev\u00a0ops"}, "white space"},
		{[]string{"dave\n"}, nil, "white space"},
		{[]string{"dave"}, []string{"dev\x00"}, "control or format character U+0000"},
		{[]string{"dave\u202e"}, nil, "control or format character U+202E"},
		{[]string{"dave"}, []string{"dev\x1b[2J"}, "control or format character U+001B"},
		{[]string{"dave"}, []string{"dev\xff"}, "not UTF-8"},
	} {
		_, err := a.SignUser(user, UserCertRequest{Principals: tt.principals, Groups: tt.groups, TTL: time.Hour, KeyID: "k"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("SignUser(principals %q, groups %q) = %v; want an error with %q", tt.principals, tt.groups, err, tt.want)
		}
	}
	// Names as IdPs and admins write them still pass.
	cert, err := a.SignUser(user, UserCertRequest{Principals: []string{"dave", "d.o'neil@example.com"}, Groups: []string{"auditors", "team-ü_2", "group:x"}, TTL: time.Hour, KeyID: "k"})
	if err != nil || strings.Join(Groups(cert), "|") != "auditors|team-ü_2|group:x" {
		t.Fatalf("plain names: %v, groups %q", err, Groups(cert))
	}
}

func TestAuditPublicKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := AuditPublicKey(dir); err == nil || !strings.Contains(err.Error(), "no audit key") {
		t.Fatalf("empty dir: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("AuditPublicKey created %v", entries)
	}
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := a.AuditKey.Public().(ed25519.PublicKey)
	got, from, err := AuditPublicKey(dir)
	if err != nil || !want.Equal(got) || filepath.Base(from) != AuditKeyFile+".pub" {
		t.Fatalf("from .pub: %v %s %v", got, from, err)
	}
	// Without the .pub file, the private key's public half.
	os.Remove(filepath.Join(dir, "ca", AuditKeyFile+".pub"))
	got, from, err = AuditPublicKey(dir)
	if err != nil || !want.Equal(got) || filepath.Base(from) != AuditKeyFile {
		t.Fatalf("from the private key: %v %s %v", got, from, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca", AuditKeyFile+".pub")); err == nil {
		t.Fatal("AuditPublicKey wrote the .pub file")
	}
	// A .pub file that disagrees with the private key is refused.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _ := ssh.NewPublicKey(other)
	os.WriteFile(filepath.Join(dir, "ca", AuditKeyFile+".pub"), ssh.MarshalAuthorizedKey(otherPub), 0o644)
	if _, _, err := AuditPublicKey(dir); err == nil || !strings.Contains(err.Error(), "does not match the private key") {
		t.Fatalf("mismatched .pub: %v", err)
	}

	pk, _ := ssh.NewPublicKey(want)
	line := ssh.MarshalAuthorizedKey(pk)
	if k, err := ParseAuditPublicKey(append([]byte("# the audit key\n\n"), line...)); err != nil || !want.Equal(k) {
		t.Fatalf("parse with a comment: %v %v", k, err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecPub, _ := ssh.NewPublicKey(&ecKey.PublicKey)
	// A FIDO ed25519 key has the same curve but is not an audit key.
	sk := ssh.Marshal(struct {
		Name string
		Key  []byte
		App  string
	}{"sk-ssh-ed25519@openssh.com", want, "ssh:"})
	skLine := "sk-ssh-ed25519@openssh.com " + base64.StdEncoding.EncodeToString(sk) + "\n"
	if _, err := ssh.ParsePublicKey(sk); err != nil {
		t.Fatalf("test key: %v", err)
	}
	for input, msg := range map[string]string{
		"not a key\n":                           "line 1 is not an OpenSSH public key",
		string(ssh.MarshalAuthorizedKey(ecPub)): "want ssh-ed25519",
		skLine:                                  "want ssh-ed25519",
		string(line) + string(line):             "more than one key",
		string(line) + "garbage\n":              "line 2 is not an OpenSSH public key",
		`from="10.0.0.1" ` + string(line):       "options",
		"# only a comment\n":                    "no key",
	} {
		if _, err := ParseAuditPublicKey([]byte(input)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseAuditPublicKey(%q): %v, want %q", input, err, msg)
		}
	}
}
