package clients

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// git over ssh through the bastion: clone a bare repository on the
// target, commit, push, and pull the commit into a second clone.
func TestGit(t *testing.T) {
	t.Parallel()
	e := start(t, "")
	gitBin := testenv.Require(t, "git")
	sshBin := testenv.Require(t, "ssh")
	// GIT_SSH_COMMAND is run by a shell; the paths have no spaces.
	sshCmd := strings.Join(append([]string{sshBin}, testenv.ClientOpts{Identity: e.key, KnownHosts: e.knownHosts}.Options()...), " ")
	port := strconv.Itoa(e.port)
	for _, tt := range []struct{ name, sshCmd, url string }{
		// The port in the URL, or in the ssh command for scp-like
		// syntax; git finds the host after the last '@' in both.
		{"ssh URL", sshCmd, "ssh://" + dest + ":" + port + "%s"},
		{"scp-like", sshCmd + " -p " + port, dest + ":%s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The bare repository belongs to the target login, who
			// runs git-upload-pack and git-receive-pack there.
			bare := filepath.Join(remoteDir(t), "repo.git")
			if r := run(t, time.Minute, nil, "runuser", "-u", login, "--", gitBin, "init", "-q", "--bare", bare); r.ExitCode != 0 {
				t.Fatalf("git init --bare: %s", r.Stderr)
			}
			gitRoundTrip(t, gitBin, tt.sshCmd, fmt.Sprintf(tt.url, bare))
		})
	}
}

// gitRoundTrip clones url twice, commits and pushes in the first clone
// and pulls in the second, checking the second gets the commit.
func gitRoundTrip(t *testing.T, gitBin, sshCmd, url string) {
	dir := t.TempDir()
	vars := []string{"HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_SSH_COMMAND=" + sshCmd,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"}
	git := func(args ...string) testenv.Result {
		t.Helper()
		r := run(t, 2*time.Minute, vars, gitBin, append([]string{"-C", dir}, args...)...)
		if r.ExitCode != 0 {
			t.Fatalf("git %q: exit %d stdout %s stderr %s", args, r.ExitCode, r.Stdout, r.Stderr)
		}
		return r
	}
	git("clone", "-q", url, "a")
	git("clone", "-q", url, "b")
	content := "pushed through postern to " + url + "\n"
	writeFile(t, filepath.Join(dir, "a"), "file.txt", content)
	git("-C", "a", "add", "file.txt")
	git("-C", "a", "commit", "-q", "-m", "through postern")
	git("-C", "a", "push", "-q", "origin", "HEAD")
	git("-C", "b", "pull", "-q", "origin", "HEAD")
	if got, err := os.ReadFile(filepath.Join(dir, "b", "file.txt")); err != nil || string(got) != content {
		t.Fatalf("second clone after pull: %q (%v), want %q", got, err, content)
	}
}
