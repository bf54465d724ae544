package clients

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
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
	inventory := ansibleInventory(t, e, tmp, "ansible_ssh_common_args='-o User="+login+"@"+target+" ")
	vars := ansibleVars(t, tmp, filepath.Join(remote, "ansible-tmp"))

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
		return "env", slices.Concat(vars, []string{ansible, "all", "-i", inventory}, jobs[i].args)
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

// The login in ansible_user instead: Ansible asks the target's shell for
// its remote temporary directory as ~LOGIN@TARGET/.ansible/tmp, which no
// shell expands, so it makes a directory literally named ~LOGIN@TARGET in
// the login's home and works there (or fails where it cannot write).
func TestAnsibleUserWithAt(t *testing.T) {
	t.Parallel()
	e := start(t, "")
	ansible := testenv.Require(t, "ansible")
	u, err := user.Lookup(login)
	if err != nil {
		t.Fatal(err)
	}
	literal := filepath.Join(u.HomeDir, "~"+login+"@"+target)
	os.RemoveAll(literal)
	t.Cleanup(func() { os.RemoveAll(literal) })
	tmp := t.TempDir()
	inventory := ansibleInventory(t, e, tmp, "ansible_user="+login+"@"+target+" ansible_ssh_common_args='")
	// Whether the run then succeeds depends on masking (TestAnsible);
	// the directory is made by its first command.
	r := run(t, 2*time.Minute, ansibleVars(t, tmp, ""), ansible, "all", "-i", inventory, "-m", "ping")
	if fi, err := os.Stat(filepath.Join(literal, ".ansible", "tmp")); err != nil || !fi.IsDir() {
		t.Fatalf("ansible_user=%s@%s: no directory %s/.ansible/tmp (%v); ansible exit %d stdout %s stderr %s",
			login, target, literal, err, r.ExitCode, r.Stdout, r.Stderr)
	}
}

// ansibleInventory writes an inventory in dir for target t1 behind e's
// bastion and returns its path. who is the part that names the login:
// it ends inside ansible_ssh_common_args' opening quote, which
// the other ssh options follow.
func ansibleInventory(t testing.TB, e *env, dir, who string) string {
	t.Helper()
	return writeFile(t, dir, "inventory", fmt.Sprintf(
		"%s ansible_host=127.0.0.1 ansible_port=%d ansible_ssh_private_key_file=%s ansible_python_interpreter=/usr/bin/python3 "+
			"%s-F /dev/null -o CertificateFile=%s-cert.pub -o IdentitiesOnly=yes "+
			"-o UserKnownHostsFile=%s -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes'\n",
		target, e.port, e.key, who, e.key, e.knownHosts))
}

// ansibleVars is the environment that keeps Ansible's files in the test's
// directories, not this machine's home directories: config, local
// temporary files and ssh control sockets in tmp, remote temporary files
// in remoteTemp ("" leaves Ansible's default, ~/.ansible/tmp). Ansible's
// ssh keeps a master connection for 60 s (ControlPersist); it is ended
// with the test.
func ansibleVars(t testing.TB, tmp, remoteTemp string) []string {
	t.Helper()
	cpDir := filepath.Join(tmp, "cp")
	t.Cleanup(func() { stopMasters(t, cpDir) })
	vars := []string{
		"HOME=" + tmp,
		"ANSIBLE_CONFIG=" + writeFile(t, tmp, "ansible.cfg", ""),
		"ANSIBLE_LOCAL_TEMP=" + filepath.Join(tmp, "local"),
		"ANSIBLE_SSH_CONTROL_PATH_DIR=" + cpDir,
		"ANSIBLE_HOST_KEY_CHECKING=True",
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_RETRY_FILES_ENABLED=False",
	}
	if remoteTemp != "" {
		vars = append(vars, "ANSIBLE_REMOTE_TEMP="+remoteTemp)
	}
	return vars
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
