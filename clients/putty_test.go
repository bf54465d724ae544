package clients

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// PuTTY's command-line tools (putty-tools 0.78) with an OpenSSH user
// certificate: the key converted to .ppk, the certificate given with
// -cert, the bastion's host key pinned by fingerprint, never a prompt.
func TestPuTTY(t *testing.T) {
	t.Parallel()
	e := start(t, "")
	puttygen := testenv.Require(t, "puttygen")
	plink := testenv.Require(t, "plink")
	pscp := testenv.Require(t, "pscp")
	psftp := testenv.Require(t, "psftp")
	// PuTTY keeps a random seed and host keys under ~/.putty.
	vars := []string{"HOME=" + t.TempDir()}
	ppk := e.key + ".ppk"
	if r := run(t, time.Minute, vars, puttygen, e.key, "-O", "private", "-o", ppk); r.ExitCode != 0 {
		t.Fatalf("puttygen: %s", r.Stderr)
	}
	opts := []string{"-batch", "-P", strconv.Itoa(e.port), "-i", ppk, "-cert", e.key + "-cert.pub", "-hostkey", e.hostKeyFP}
	putty := func(prog string, args ...string) testenv.Result {
		t.Helper()
		return run(t, time.Minute, vars, prog, slices.Concat(opts, args)...)
	}

	r := putty(plink, dest, "echo plink-ok; exit 3")
	if r.ExitCode != 3 || string(r.Stdout) != "plink-ok\n" {
		t.Fatalf("plink: exit %d stdout %q stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}

	local, remote := t.TempDir(), remoteDir(t)
	const content = "through postern with pscp and psftp\n"
	src := writeFile(t, local, "src.txt", content)
	// pscp picks SFTP by itself, or is told -sftp or -scp; both ways each.
	for _, proto := range []string{"", "-sftp", "-scp"} {
		up := filepath.Join(remote, "up"+proto+".txt")
		down := filepath.Join(local, "down"+proto+".txt")
		flags := strings.Fields(proto)
		if r := putty(pscp, append(flags, src, dest+":"+up)...); r.ExitCode != 0 {
			t.Fatalf("pscp %s upload: exit %d stdout %s stderr %s", proto, r.ExitCode, r.Stdout, r.Stderr)
		}
		if r := putty(pscp, append(flags, dest+":"+up, down)...); r.ExitCode != 0 {
			t.Fatalf("pscp %s download: exit %d stdout %s stderr %s", proto, r.ExitCode, r.Stdout, r.Stderr)
		}
		for _, p := range []string{up, down} {
			if got, err := os.ReadFile(p); err != nil || string(got) != content {
				t.Fatalf("pscp %s: %s holds %q (%v), want %q", proto, p, got, err, content)
			}
		}
	}

	// psftp -b runs a batch file and, with -be, stops at the first error.
	up, back := filepath.Join(remote, "psftp.txt"), filepath.Join(local, "psftp-back.txt")
	batch := writeFile(t, local, "batch", "put "+src+" "+up+"\nls "+remote+"\nget "+up+" "+back+"\nrm "+up+"\n")
	r = putty(psftp, "-be", "-b", batch, dest)
	if r.ExitCode != 0 {
		t.Fatalf("psftp: exit %d stdout %s stderr %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	if got, err := os.ReadFile(back); err != nil || string(got) != content {
		t.Fatalf("psftp get: %q (%v), want %q", got, err, content)
	}
	if _, err := os.Stat(up); !os.IsNotExist(err) {
		t.Fatalf("psftp rm: %s still there (%v)", up, err)
	}
}
