package bastion

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// duplicateKey returns the first key that appears twice in one JSON object
// of line, at any depth, or "" if none does. encoding/json keeps the last
// of two equal keys without a word, so a token walk is the only way to see
// a second "target" overwrite the first.
func duplicateKey(line []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	var walk func() (string, error)
	walk = func() (string, error) {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return "", err
				}
				key := k.(string)
				if seen[key] {
					return key, nil
				}
				seen[key] = true
				if dup, err := walk(); dup != "" || err != nil {
					return dup, err
				}
			}
			_, err = dec.Token()
			return "", err
		case json.Delim('['):
			for dec.More() {
				if dup, err := walk(); dup != "" || err != nil {
					return dup, err
				}
			}
			_, err = dec.Token()
			return "", err
		}
		return "", nil
	}
	return walk()
}

// checkLogKeys reports every log line of logs, audit records included,
// that holds a duplicate key or is not JSON.
func checkLogKeys(logs string) error {
	var errs []error
	for line := range strings.Lines(logs) {
		if dup, err := duplicateKey([]byte(line)); err != nil || dup != "" {
			errs = append(errs, fmt.Errorf("key %q twice (err %v) in %s", dup, err, line))
		}
	}
	return errors.Join(errs...)
}

func TestDuplicateKeyDetector(t *testing.T) {
	for line, want := range map[string]string{
		`{"target":"t1","path":"/a"}`:                   "",
		`{"target":"t1","op":"x","target":"/a"}`:        "target",
		`{"a":{"b":1,"b":2}}`:                           "b",
		`{"a":[{"c":1},{"c":2,"d":[1,{"e":1,"e":2}]}]}`: "e",
	} {
		if got, err := duplicateKey([]byte(line)); err != nil || got != want {
			t.Errorf("duplicateKey(%s) = %q, %v; want %q", line, got, err, want)
		}
	}
}

// Every kind of audit record the bastion writes for a proxied or admin
// connection is produced here, and no log line, audit or not, carries a
// key twice: a file record's path is "path", never a second "target".
// TestMain checks the whole suite's log the same way.
func TestAuditRecordsHaveUniqueKeys(t *testing.T) {
	t.Parallel()
	h := env(t)
	mark := len(h.logs.String())
	sftp, scp := testenv.Require(t, "sftp"), testenv.Require(t, "scp")

	// connect, recording_*, session_end, disconnect.
	if r := h.ssh(t, h.alice, "root@t1", nil, "echo keys-ok"); r.ExitCode != 0 {
		t.Fatalf("exec: %d %s", r.ExitCode, r.Stderr)
	}
	// connect refused (key exchange), upstream.
	h.sshWith(t, []string{"-c", "aes256-ctr"}, h.alice, "root@t1", nil, "true")
	h.ssh(t, h.alice, "root@badkey", nil, "true")
	// admin_command.
	h.ssh(t, h.alice, AdminUser, nil, "whoami")
	// scp_file, sftp_file, sftp_op, transfer_start.
	dir := t.TempDir()
	src := filepath.Join(dir, "up.txt")
	if err := os.WriteFile(src, []byte("plain text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	remote := "/tmp/" + uniqueMarker("auditkeys-")
	t.Cleanup(func() { os.RemoveAll(remote) })
	port := strconv.Itoa(h.port)
	if r := testenv.Cmd(t, time.Minute, nil, scp, append(h.opts(h.fileAllow), "-O", "-P", port, src, "root@t1@127.0.0.1:"+remote+".scp")...); r.ExitCode != 0 {
		t.Fatalf("scp: %s", r.Stderr)
	}
	batch := fmt.Sprintf("mkdir %s\nput %s %s/up.txt\nrename %s/up.txt %s/moved.txt\n", remote, src, remote, remote, remote)
	if r := testenv.Cmd(t, time.Minute, strings.NewReader(batch), sftp, append(h.opts(h.fileAllow), "-P", port, "-b", "-", "root@t1@127.0.0.1")...); r.ExitCode != 0 {
		t.Fatalf("sftp: %s", r.Stderr)
	}
	t.Cleanup(func() { os.Remove(remote + ".scp") })
	// program_refused: a transfer the rule does not grant.
	noXfer := h.userKey(t, "auditkeys-notransfer", certsReq("notransfer"))
	testenv.Cmd(t, time.Minute, strings.NewReader("ls\n"), sftp, append(h.opts(noXfer), "-P", port, "-b", "-", "root@t1@127.0.0.1")...)
	// session_request, forward (refused: alice's rule grants none) and
	// channel_refused (a channel type no route serves).
	c := h.dialGo(t, h.alice, "root@t1")
	if s, err := c.NewSession(); err == nil {
		s.SendRequest("auth-agent-req@openssh.com", true, nil)
		s.Close()
	}
	if fc, err := c.Dial("tcp", "127.0.0.1:5432"); err == nil {
		fc.Close()
	}
	if ch, _, err := c.OpenChannel("auditkeys@example.com", nil); err == nil {
		ch.Close()
	}
	c.Close()
	ac := h.dialGo(t, h.alice, AdminUser)
	if ch, _, err := ac.OpenChannel("auditkeys@example.com", nil); err == nil {
		ch.Close()
	}
	ac.Close()

	want := []string{"connect", "disconnect", "upstream", "forward", "session_request", "program_refused",
		"recording_start", "recording_end", "transfer_start", "scp_file", "sftp_file", "sftp_op",
		"session_end", "admin_command", "channel_refused"}
	var missing []string
	t.Cleanup(func() {
		if len(missing) > 0 {
			t.Logf("audit events never seen: %v", missing)
		}
	})
	testenv.WaitFor(t, 20*time.Second, func() bool {
		seen := map[string]bool{}
		for _, m := range auditRecords(h.logs.String()[mark:]) {
			seen[fmt.Sprint(m["event"])] = true
		}
		missing = missing[:0]
		for _, e := range want {
			if !seen[e] {
				missing = append(missing, e)
			}
		}
		return len(missing) == 0
	})
	if err := checkLogKeys(h.logs.String()[mark:]); err != nil {
		t.Error(err)
	}
}
