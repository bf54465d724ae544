package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// Flags may come before, between and after positional arguments; "--"
// ends them.
func TestParseArgsInterleaved(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		pos      []string
		name     string
		verbose  bool
		wantCode bool // a usage error
	}{
		{[]string{"a", "--name", "x", "b"}, []string{"a", "b"}, "x", false, false},
		{[]string{"--name", "x", "a"}, []string{"a"}, "x", false, false},
		{[]string{"a", "b", "-v"}, []string{"a", "b"}, "", true, false},
		{[]string{"a", "--", "--name", "x"}, []string{"a", "--name", "x"}, "", false, false},
		{[]string{"--", "-v"}, []string{"-v"}, "", false, false},
		{[]string{"a", "--bogus"}, nil, "", false, true},
	}
	for _, tt := range tests {
		fs := newFlags("t", "t", io.Discard)
		name := fs.String("name", "", "")
		verbose := fs.Bool("v", false, "")
		pos, err := parseArgs(fs, tt.args)
		if tt.wantCode {
			if err == nil {
				t.Errorf("%q: no error", tt.args)
			}
			continue
		}
		if err != nil || !slices.Equal(pos, tt.pos) || *name != tt.name || *verbose != tt.verbose {
			t.Errorf("%q: positional %q, name %q, v %v, err %v; want %q, %q, %v", tt.args, pos, *name, *verbose, err, tt.pos, tt.name, tt.verbose)
		}
	}
}

// `ca sign --config f KEY.pub --principal bob` signs for bob, as it reads;
// it used to say "--principal is required".
func TestCASignFlagsAfterKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if code, _, errs := runCLI(t, "ca", "init", "--data-dir", data); code != 0 {
		t.Fatalf("ca init: exit %d: %s", code, errs)
	}
	_, keyPath := testenv.NewKey(t, dir, "bob")
	code, _, errs := runCLI(t, "ca", "sign", "--data-dir", data, keyPath+".pub", "--principal", "bob", "--ttl", "1h")
	if code != 0 {
		t.Fatalf("ca sign KEY.pub --principal bob: exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(keyPath + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if cert, ok := pub.(*ssh.Certificate); !ok || !slices.Equal(cert.ValidPrincipals, []string{"bob"}) {
		t.Fatalf("certificate %+v, want principal bob", pub)
	}
	code, _, errs = runCLI(t, "ca", "sign", "--data-dir", data, keyPath+".pub", "--principal", "bob", "other.pub")
	if code != 2 || !strings.Contains(errs, "exactly one public key") {
		t.Fatalf("two keys: exit %d: %s", code, errs)
	}
}

// play --cat prints the whole recording: a start given with --from or
// --from-match is refused, not silently ignored.
func TestPlayCatRefusesFrom(t *testing.T) {
	t.Parallel()
	path := writeHostileCast(t, t.TempDir())
	for _, args := range [][]string{
		{"play", "--cat", "--from", "2s", path},
		{"play", path, "--cat", "--from-match", "red"},
		{"play", "--cat", "--raw", "--from", "1s", path},
	} {
		code, out, errs := runCLI(t, args...)
		if code != 2 || out != "" || !strings.Contains(errs, "not --cat") {
			t.Errorf("postern %q: exit %d, stdout %q, stderr %q; want exit 2 and the refusal", args, code, out, errs)
		}
	}
	if code, out, errs := runCLI(t, "play", "--cat", path); code != 0 || !strings.Contains(out, "the-end") {
		t.Fatalf("play --cat: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
