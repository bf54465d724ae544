package clients

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// ansibleRuns is how many times each module runs; issue 13 asks for zero
// failures in 20 runs each with masking on.
const ansibleRuns = 20

// Ansible (ansible-core 2.14) through the bastion with masking on (the
// target's default): ping, shell and copy, ansibleRuns times each, with
// zero failures. The login goes in ansible_ssh_common_args as -o
// User=LOGIN@TARGET; ansible_user would carry the '@' into Ansible's
// remote temporary paths.
func TestAnsible(t *testing.T) {
	t.Parallel()
	e := start(t, "")
	ansible := testenv.Require(t, "ansible")
	tmp := t.TempDir()
	remote := remoteDir(t)
	src := writeFile(t, tmp, "copied.txt", "copied by ansible through postern\n")
	inventory := writeFile(t, tmp, "inventory", fmt.Sprintf(
		"%s ansible_host=127.0.0.1 ansible_port=%d ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3 "+
			"ansible_ssh_common_args='-F /dev/null -o User=%s@%s -o CertificateFile=%s-cert.pub -o IdentitiesOnly=yes "+
			"-o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes'\n",
		target, e.port, e.key, login, target, e.key, e.knownHosts))
	// Nothing of Ansible's lands in this machine's home directories: its
	// config, local and remote temporary files, and ssh control sockets
	// are all in the test's directories.
	cpDir := filepath.Join(tmp, "cp")
	vars := []string{
		"HOME=" + tmp,
		"ANSIBLE_CONFIG=" + writeFile(t, tmp, "ansible.cfg", ""),
		"ANSIBLE_LOCAL_TEMP=" + filepath.Join(tmp, "local"),
		"ANSIBLE_REMOTE_TEMP=" + filepath.Join(remote, "ansible-tmp"),
		"ANSIBLE_SSH_CONTROL_PATH_DIR=" + cpDir,
		"ANSIBLE_HOST_KEY_CHECKING=True",
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_RETRY_FILES_ENABLED=False",
	}
	// Ansible's ssh keeps a master connection for 60 s (ControlPersist);
	// end it with the test.
	t.Cleanup(func() { stopMasters(t, cpDir) })

	type job struct {
		args []string
		want string // in stdout
	}
	var jobs []job
	for i := range ansibleRuns {
		jobs = append(jobs,
			job{[]string{"-m", "ping"}, `"ping": "pong"`},
			job{[]string{"-m", "shell", "-a", "echo shell-" + strconv.Itoa(i)}, "shell-" + strconv.Itoa(i)},
			job{[]string{"-m", "copy", "-a", fmt.Sprintf("src=%s dest=%s/copy-%d.txt", src, remote, i)}, `"changed": true`})
	}
	start := time.Now()
	results := runParallel(t, 4, 5*time.Minute, len(jobs), func(i int) (string, []string) {
		return "env", append(append([]string{}, vars...), append([]string{ansible, "all", "-i", inventory}, jobs[i].args...)...)
	})
	failed := 0
	for i, r := range results {
		if r.ExitCode != 0 || !strings.Contains(string(r.Stdout), jobs[i].want) {
			failed++
			if failed <= 5 {
				t.Errorf("ansible %q: exit %d\nstdout %s\nstderr %s", jobs[i].args, r.ExitCode, r.Stdout, r.Stderr)
			}
		}
	}
	t.Logf("ansible: %d of %d runs failed, in %v", failed, len(jobs), time.Since(start).Round(time.Second))
	if failed > 0 {
		t.Errorf("%d of %d Ansible runs failed with masking on", failed, len(jobs))
	}
}

// runParallel runs n commands, at most workers at once, each bounded by
// timeout; command(i) gives the i-th program and arguments. It returns
// their results in order.
func runParallel(t testing.TB, workers int, timeout time.Duration, n int, command func(i int) (string, []string)) []testenv.Result {
	t.Helper()
	results := make([]testenv.Result, n)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				name, args := command(i)
				results[i] = runOne(timeout, name, args)
			}
		})
	}
	wg.Wait()
	return results
}

// runOne runs name with args, killing it after timeout; a failure to run
// is reported as exit code -1 with the error in Stderr.
func runOne(timeout time.Duration, name string, args []string) testenv.Result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	code := -1
	if cmd.ProcessState != nil && ctx.Err() == nil {
		code = cmd.ProcessState.ExitCode()
	} else {
		fmt.Fprintf(&stderr, "\nrun %s: %v (%v)", name, err, ctx.Err())
	}
	return testenv.Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code}
}

// stopMasters asks each OpenSSH control master with a socket in dir to
// exit.
func stopMasters(t testing.TB, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, de := range entries {
		r := runOne(time.Minute, "ssh", []string{"-F", "/dev/null", "-S", filepath.Join(dir, de.Name()), "-O", "exit", "master"})
		if r.ExitCode != 0 {
			t.Logf("stop ssh master %s: %s", de.Name(), r.Stderr)
		}
	}
}
