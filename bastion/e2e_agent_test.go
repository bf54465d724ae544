package bastion

// End-to-end tests of agent forwarding (ssh -A): the real OpenSSH client
// with a real ssh-agent, through the bastion, to the real sshd target; from
// there ssh-add and git over ssh to a second real sshd that trusts only the
// user's key.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// agentSSH runs `ssh -A` through the bastion as user with key, the agent
// at sock forwarded, and returns stdout, stderr and the exit code.
func (h *harness) agentSSH(t *testing.T, sock, key, user, command string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	args := append(append([]string{"-A"}, h.opts(key)...), "-p", strconv.Itoa(h.port), user+"@127.0.0.1", command)
	cmd := exec.CommandContext(ctx, h.sshBin, args...)
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("ssh -A: %v; stderr %s", err, stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

// bareRepo makes a git repository with one commit of README holding text,
// and a bare clone of it, and returns the bare clone's path.
func bareRepo(t *testing.T, git, text string) string {
	t.Helper()
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	run := func(args ...string) {
		t.Helper()
		if r := testenv.Cmd(t, time.Minute, nil, git, args...); r.ExitCode != 0 {
			t.Fatalf("git %v: exit %d: %s", args, r.ExitCode, r.Stderr)
		}
	}
	run("init", "-q", work)
	if err := os.WriteFile(filepath.Join(work, "README"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	run("-C", work, "add", "README")
	run("-C", work, "-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "first")
	bare := filepath.Join(dir, "repo.git")
	run("clone", "-q", "--bare", work, bare)
	return bare
}

// With the certificate's permit-agent-forwarding and the rule's
// agent_forwarding, ssh -A reaches the target: ssh-add -l there lists the
// user's key, git clones over ssh from a second sshd that trusts only that
// key, and ssh-add can neither remove the user's keys nor add one. Every
// request is an audit record and a line in a sealed recording.
func TestAgentForwarding(t *testing.T) {
	t.Parallel()
	h := env(t)
	git := testenv.Require(t, "git")
	sshAdd := testenv.Require(t, "ssh-add")
	keygen := testenv.Require(t, "ssh-keygen")
	sock := testenv.SSHAgent(t)
	keyID := uniqueMarker("agent-fwd-")
	key := h.keygenCert(t, keyID, "agentfwd", "permit-pty", "permit-agent-forwarding")
	add := exec.Command(sshAdd, key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add %s: %v: %s", key, err, out)
	}
	r := testenv.Cmd(t, time.Minute, nil, keygen, "-l", "-f", key+".pub")
	fp := strings.Fields(string(r.Stdout))
	if r.ExitCode != 0 || len(fp) < 2 || !strings.HasPrefix(fp[1], "SHA256:") {
		t.Fatalf("ssh-keygen -l: exit %d: %s %s", r.ExitCode, r.Stdout, r.Stderr)
	}
	fingerprint := fp[1]

	// ssh-add -l on the target lists the key in the client's agent.
	out, errs, code := h.agentSSH(t, sock, key, "root@t1", "ssh-add -l")
	if code != 0 || !strings.Contains(out, fingerprint) {
		t.Fatalf("ssh-add -l on the target: exit %d, stdout %q, stderr %q; want %s listed", code, out, errs, fingerprint)
	}

	// git clone over ssh from the target to a second sshd that trusts
	// only the user's key (root has no key of its own there).
	authorized := filepath.Join(t.TempDir(), "authorized_keys")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authorized, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	second := testenv.SSHD(t, testenv.SSHDOptions{Extra: []string{"AuthorizedKeysFile " + authorized}})
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(second.KnownHostsLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const text = "cloned through a forwarded agent\n"
	repo := bareRepo(t, git, text)
	dest := filepath.Join(t.TempDir(), "clone")
	gitSSH := "ssh -F /dev/null -p " + strconv.Itoa(second.Port) + " -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" +
		knownHosts + " -o GlobalKnownHostsFile=/dev/null -o IdentityFile=none"
	clone := "GIT_SSH_COMMAND='" + gitSSH + "' " + git + " clone -q root@127.0.0.1:" + repo + " " + dest + " && cat " + dest + "/README"
	out, errs, code = h.agentSSH(t, sock, key, "root@t1", clone)
	if code != 0 || out != text {
		t.Fatalf("git clone from the target: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if logs := second.Logs(); !strings.Contains(logs, "Accepted publickey for root") || !strings.Contains(logs, fingerprint) {
		t.Fatalf("second sshd did not accept the user's key %s:\n%s", fingerprint, logs)
	}

	// The target may not change the agent: remove all, add a key.
	newKey := filepath.Join(t.TempDir(), "new")
	out, errs, code = h.agentSSH(t, sock, key, "root@t1",
		"ssh-add -D; echo removed=$?; "+keygen+" -q -t ed25519 -N '' -C new -f "+newKey+" && ssh-add "+newKey+"; echo added=$?")
	if code != 0 || !strings.Contains(out, "removed=1") || !strings.Contains(out, "added=1") {
		t.Fatalf("ssh-add -D and ssh-add KEY on the target: exit %d, stdout %q, stderr %q; want both refused", code, out, errs)
	}
	listed := strings.Join(testenv.AgentList(t, sock), "\n")
	r = testenv.Cmd(t, time.Minute, nil, keygen, "-l", "-f", newKey+".pub")
	newFP := strings.Fields(string(r.Stdout))
	if !strings.Contains(listed, fingerprint) || len(newFP) < 2 || strings.Contains(listed, newFP[1]) {
		t.Fatalf("the client's agent after the target's attempts lists:\n%s\nwant %s only", listed, fingerprint)
	}

	h.checkAgentAudit(t, keyID, fingerprint, ssh.FingerprintSHA256(second.HostKey))
}

// checkAgentAudit checks TestAgentForwarding's audit trail: the requests
// allowed, the four agent channels (ssh-add -l, git's ssh, ssh-add -D,
// ssh-add KEY), the operations with the key's fingerprint, what was signed
// and on which host, the refusals, and sealed index entries that list
// them.
func (h *harness) checkAgentAudit(t *testing.T, keyID, fingerprint, hostKey string) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, func() bool { return len(h.audits(keyID, "agent_end")) == 4 })
	var allowed int
	for _, m := range h.audits(keyID, "session_request") {
		if m["request"] == "auth-agent-req@openssh.com" && m["allowed"] == true && m["rule"] == "agentfwd" {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("allowed agent requests audited: %d, want 3", allowed)
	}
	if got := h.audits(keyID, "agent"); len(got) != 4 {
		t.Errorf("agent channel records: %v, want 4 allowed", got)
	}
	ops := map[string]bool{}
	var signed, bound bool
	for _, m := range h.audits(keyID, "agent_op") {
		op, _ := m["op"].(string)
		key, _ := m["key"].(string)
		detail, _ := m["detail"].(string)
		ops[op] = true
		switch op {
		case "sign":
			signed = signed || strings.HasPrefix(key, fingerprint) && detail == `ssh login as root (ssh-connection)` && m["ok"] == true
		case "session-bind":
			bound = bound || strings.Contains(detail, hostKey)
		case "remove all keys", "add key":
			if m["allowed"] != false || m["reason"] != "only listing keys and signing are relayed" {
				t.Errorf("%v: want refused", m)
			}
		}
	}
	if !ops["list"] || !ops["remove all keys"] || !ops["add key"] || !signed || !bound {
		t.Errorf("agent operations audited %v: want list, a signature by %s for root's login on the second sshd (%s), remove all keys and add key refused",
			h.audits(keyID, "agent_op"), fingerprint, hostKey)
	}
	for _, m := range h.audits(keyID, "agent_end") {
		if m["close_reason"] != "target closed" || m["bytes_to_target"].(float64) <= 0 || m["requests"].(float64) > 0 && m["bytes_to_agent"].(float64) <= 0 {
			t.Errorf("agent_end %v: want closed by the target, bytes to the target, and to the agent for requests relayed", m)
		}
	}
	// Each channel is a sealed index entry whose recording lists its
	// requests.
	var texts []string
	testenv.WaitFor(t, 20*time.Second, func() bool {
		list, err := h.store.List(t.Context(), recorder.Filter{})
		if err != nil {
			return false
		}
		texts = texts[:0]
		for _, s := range list {
			if s.KeyID != keyID || s.Kind != "agent" {
				continue
			}
			if s.Status != recorder.StatusClosed || s.Target != "t1" || s.Identity != "agentfwd" || s.BytesIn <= 0 {
				return false
			}
			texts = append(texts, s.Command+"\n"+recordingText(t, filepath.Join(h.store.Dir(), s.Path)))
		}
		return len(texts) == 4
	})
	all := strings.Join(texts, "\n")
	for _, want := range []string{"ssh-agent: list 1", "ssh-agent: list 1, sign 1, session-bind 1", "ssh-agent: refused 1",
		"sign with " + fingerprint, "session-bind: host key " + hostKey, "refused: remove all keys", "refused: add key", "closed (target closed)"} {
		if !strings.Contains(all, want) {
			t.Errorf("agent recordings lack %q:\n%s", want, all)
		}
	}
}
