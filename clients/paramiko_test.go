package clients

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/postern/postern/internal/testenv"
)

// ctrCiphers is the config line README.md gives for clients without
// AES-GCM (paramiko 2.12, Dropbear): AES-GCM stays, AES-CTR is added.
const ctrCiphers = "ciphers: [aes128-gcm@openssh.com, aes256-gcm@openssh.com, aes128-ctr, aes256-ctr]"

// paramikoRefused is what paramiko says when the bastion offers none of
// its ciphers (README.md quotes it).
const paramikoRefused = "Incompatible ssh server (no acceptable ciphers)"

// paramikoResult is what testdata/paramiko_client.py prints.
type paramikoResult struct {
	Fatal     string   `json:"fatal"`
	Connected bool     `json:"connected"`
	Error     string   `json:"error"`
	Cipher    string   `json:"cipher"`
	ExecsOK   int      `json:"execs_ok"`
	Errors    []string `json:"errors"`
	SFTP      string   `json:"sftp"`
}

// paramiko (python3-paramiko 2.12) has no AES-GCM: a default bastion
// refuses it at key exchange and tells the operator so in the connect
// audit record, with the client's ciphers; with AES-CTR added to the
// config it connects, runs execs and does SFTP.
func TestParamiko(t *testing.T) {
	t.Parallel()
	e := start(t, "")
	py := requirePython(t, "paramiko")
	const execs = 10
	connect := func(b *env) paramikoResult {
		t.Helper()
		r := testenv.Cmd(t, 2*time.Minute, nil, py, script(t, "paramiko_client.py"),
			"--port", strconv.Itoa(b.port), "--user", login+"@"+target,
			"--key", e.key, "--cert", e.key+"-cert.pub",
			"--host-key", strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.auth.HostKey.PublicKey()))),
			"--local-dir", t.TempDir(), "--remote-dir", remoteDir(t), "--execs", strconv.Itoa(execs))
		var res paramikoResult
		if err := json.Unmarshal(r.Stdout, &res); err != nil || r.ExitCode != 0 || res.Fatal != "" {
			t.Fatalf("paramiko_client.py: exit %d, %v; stdout %s stderr %s", r.ExitCode, err, r.Stdout, r.Stderr)
		}
		return res
	}

	res := connect(e)
	if res.Connected || res.Error != paramikoRefused {
		t.Fatalf("default bastion: %+v; want refused for lack of a common cipher", res)
	}
	var rec map[string]any
	testenv.WaitFor(t, 10*time.Second, func() bool {
		for _, m := range e.audits("connect") {
			if algs, _ := m["client_algorithms"].([]any); slices.Contains(algs, any("aes128-ctr")) {
				rec = m
				return true
			}
		}
		return false
	})
	if reason, _ := rec["reason"].(string); rec["allowed"] != false || !strings.HasPrefix(reason, "key exchange failed: ") {
		t.Errorf("connect record %v: want allowed false, reason key exchange failed", rec)
	}

	ctr := e.serve(t, ctrCiphers)
	res = connect(ctr)
	if !res.Connected || res.Error != "" || res.ExecsOK != execs || res.SFTP != "ok" {
		t.Fatalf("bastion with %q: %+v; want %d execs and SFTP", ctrCiphers, res, execs)
	}
	if res.Cipher != "aes128-ctr" {
		t.Errorf("paramiko negotiated %q, want aes128-ctr", res.Cipher)
	}

	// OpenSSH's client lists aes*-ctr before AES-GCM, and the client's
	// order decides: on this bastion it leaves AES-GCM too (README.md).
	sshBin := testenv.Require(t, "ssh")
	r := testenv.Cmd(t, time.Minute, nil, sshBin, slices.Concat([]string{"-v"}, ctr.sshArgs(e.key), []string{dest, "echo openssh-ctr"})...)
	m := regexp.MustCompile(`kex: server->client cipher: (\S+)`).FindSubmatch(r.Stderr)
	if r.ExitCode != 0 || m == nil || string(m[1]) != "aes128-ctr" {
		t.Errorf("OpenSSH on the AES-CTR bastion: exit %d, cipher %q; stderr %s", r.ExitCode, m, r.Stderr)
	}
}
