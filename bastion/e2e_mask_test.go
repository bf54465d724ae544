package bastion

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/mask"
	"github.com/postern/postern/recorder"
)

// Standard test card numbers of several brands, contiguous and grouped.
var testPANs = []struct{ pan, masked string }{
	{"4111111111111111", "411111******1111"},
	{"5555555555554444", "555555******4444"},
	{"378282246310005", "378282*****0005"},
	{"6011111111111117", "601111******1117"},
	{"4111 1111 1111 1111", "4111 11** **** 1111"},
	{"5105-1051-0510-5100", "5105-10**-****-5100"},
}

const panFile = `order 1 card 4111111111111111 ok
order 2 card 5555555555554444 ok
amex 378282246310005 discover 6011111111111117
grouped 4111 1111 1111 1111 and 5105-1051-0510-5100
not a card: 4111111111111112 order-id 20261125123456780 uuid 123e4567-e89b-12d3-a456-426614174000
`

func checkMasked(t *testing.T, what, got string) {
	t.Helper()
	for _, p := range testPANs {
		if !strings.Contains(got, p.masked) {
			t.Errorf("%s: %q not masked as %q in:\n%s", what, p.pan, p.masked, got)
		}
	}
	// Precisely: no full PAN in the cleaned text. The non-card numbers
	// (Luhn-invalid, 17-digit id, UUID) pass unchanged.
	clean := regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`).ReplaceAllString(got, "")
	if pans := testenv.PANs(clean); len(pans) > 0 {
		t.Errorf("%s: full PANs left: %v", what, pans)
	}
	for _, keep := range []string{"4111111111111112", "20261125123456780", "123e4567-e89b-12d3-a456-426614174000"} {
		if !strings.Contains(got, keep) {
			t.Errorf("%s: %q should be unchanged", what, keep)
		}
	}
}

// recordingsOf returns the decoded output and raw bytes of the recordings
// whose command contains marker.
func (h *harness) recordingOf(t *testing.T, store *recorder.Local, match func(recorder.Session) bool) (recorder.Session, string, string) {
	t.Helper()
	s := h.findRecording(t, store, match)
	path := filepath.Join(store.Dir(), s.Path)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return s, recordingText(t, path), string(raw)
}

func TestMaskingExecStdoutStderr(t *testing.T) {
	t.Parallel()
	h := env(t)
	file := filepath.Join(t.TempDir(), "cards.txt")
	os.WriteFile(file, []byte(panFile), 0o644)
	for _, tt := range []struct{ name, cmd string }{
		{"stdout", "cat " + file},
		{"stderr", "cat " + file + " >&2"},
	} {
		r := h.ssh(t, h.alice, "root@t1", nil, tt.cmd)
		if r.ExitCode != 0 {
			t.Fatalf("%s: exit %d: %s", tt.name, r.ExitCode, r.Stderr)
		}
		got := string(r.Stdout)
		if tt.name == "stderr" {
			got = string(r.Stderr)
		}
		checkMasked(t, "client "+tt.name, got)
		s, text, raw := h.recordingOf(t, h.store, func(s recorder.Session) bool { return s.Command == tt.cmd })
		checkMasked(t, "recording "+tt.name, text)
		if pans := testenv.PANs(raw); len(pans) > 0 {
			t.Errorf("recording file of %s holds full PANs: %v", tt.name, pans)
		}
		if s.MaskedPANs < int64(len(testPANs)) {
			t.Errorf("index says %d PANs masked, want at least %d", s.MaskedPANs, len(testPANs))
		}
	}
	// A PAN in the command line is masked in the index and the recording.
	cmd := "echo 4111111111111111 >/dev/null"
	h.ssh(t, h.alice, "root@t1", nil, cmd)
	s, _, raw := h.recordingOf(t, h.store, func(s recorder.Session) bool { return strings.HasPrefix(s.Command, "echo 411111") })
	if s.Command != "echo 411111******1111 >/dev/null" || strings.Contains(raw, "4111111111111111") {
		t.Errorf("command stored as %q; recording holds the PAN: %v", s.Command, strings.Contains(raw, "4111111111111111"))
	}
	if strings.Contains(h.logs.String(), "4111111111111111") {
		t.Error("the bastion's log holds a full PAN")
	}
}

func TestMaskingInteractiveShell(t *testing.T) {
	t.Parallel()
	h := env(t)
	file := filepath.Join(t.TempDir(), "cards.txt")
	os.WriteFile(file, []byte(panFile), 0o644)
	tty, out, wait := h.ptySSH(t, h.alice, "root@t1", 40, 200)
	marker := uniqueMarker("mask")
	tty.Write([]byte("echo " + marker + "-start; cat " + file + "; echo " + marker + "-$((1+1))\n"))
	testenv.WaitFor(t, 20*time.Second, func() bool { return strings.Contains(out.String(), marker+"-2") })
	tty.Write([]byte("exit\n"))
	wait()
	seen := out.String()
	checkMasked(t, "terminal", seen[strings.LastIndex(seen, marker+"-start"):])
	_, text, raw := h.recordingOf(t, h.store, func(s recorder.Session) bool {
		return s.Kind == "shell" && strings.Contains(recordingText(t, filepath.Join(h.store.Dir(), s.Path)), marker+"-2")
	})
	checkMasked(t, "shell recording", text[strings.LastIndex(text, marker+"-start"):])
	if strings.Contains(raw, "4111111111111111") || strings.Contains(raw, "5555555555554444") {
		t.Error("shell recording file holds a full PAN")
	}
}

func TestMaskingPsqlTable(t *testing.T) {
	t.Parallel()
	h := env(t)
	psql := testenv.Require(t, "psql")
	pg := testenv.Postgres(t)
	setup := `create table cards (id int, holder text, pan text);
insert into cards values (1, 'Ada', '4111111111111111'), (2, 'Bob', '5555555555554444'), (3, 'Cy', '378282246310005'), (4, 'Di', '4111111111111112');`
	if r := testenv.Cmd(t, time.Minute, nil, psql, pg.PSQL("-c", setup)...); r.ExitCode != 0 {
		t.Fatalf("setup: %s", r.Stderr)
	}
	// psql runs on the target, inside the SSH session through the bastion.
	query := strings.Join(append([]string{"psql"}, pg.PSQL("-c", "'select * from cards order by id'")...), " ")
	r := h.ssh(t, h.alice, "root@t1", nil, query)
	if r.ExitCode != 0 {
		t.Fatalf("psql through the bastion: exit %d: %s", r.ExitCode, r.Stderr)
	}
	got := string(r.Stdout)
	for _, want := range []string{"| 411111******1111", "| 555555******4444", "| 378282*****0005", "| 4111111111111112", "(4 rows)"} {
		if !strings.Contains(got, want) {
			t.Errorf("psql output lacks %q:\n%s", want, got)
		}
	}
	if pans := testenv.PANs(got); len(pans) > 0 {
		t.Errorf("psql output holds full PANs %v", pans)
	}
	_, text, _ := h.recordingOf(t, h.store, func(s recorder.Session) bool { return s.Command == query })
	if pans := testenv.PANs(text); len(pans) > 0 || !strings.Contains(text, "411111******1111") {
		t.Errorf("psql recording: full PANs %v\n%s", pans, text)
	}
}

// masking: off is honoured when an operator writes it, and only then.
func TestMaskingOffTarget(t *testing.T) {
	t.Parallel()
	h := env(t)
	p := h.policy
	p.Targets = append([]Target(nil), p.Targets...)
	p.Targets[0].Masking = "off"
	b := h.extraServer(t, Config{Policy: p})
	r := b.ssh(t, h.alice, "root@t1", nil, "echo 4111111111111111")
	if string(r.Stdout) != "4111111111111111\n" {
		t.Fatalf("masking off: %q", r.Stdout)
	}
	p.Targets[0].Masking = "last4"
	b = h.extraServer(t, Config{Policy: p})
	r = b.ssh(t, h.alice, "root@t1", nil, "echo 4111111111111111")
	if string(r.Stdout) != "************1111\n" {
		t.Fatalf("masking last4: %q", r.Stdout)
	}
}

// Config.Detect reaches the terminal path: by default a Luhn-valid epoch
// millisecond timestamp and an Ansible temp dir pass unchanged while a PAN
// is masked; with mask.DetectLuhn all three are masked.
func TestMaskingDetect(t *testing.T) {
	t.Parallel()
	h := env(t)
	const line = "1796149455125 4111111111111111 ansible-tmp-1796149455.1285965-32464-540584239609"
	r := h.ssh(t, h.alice, "root@t1", nil, "echo "+line)
	if want := "1796149455125 411111******1111 ansible-tmp-1796149455.1285965-32464-540584239609\n"; string(r.Stdout) != want {
		t.Errorf("detect brands: %q, want %q", r.Stdout, want)
	}
	b := h.extraServer(t, Config{Policy: h.policy, Detect: mask.DetectLuhn})
	r = b.ssh(t, h.alice, "root@t1", nil, "echo "+line)
	if want := "179614***5125 411111******1111 ansible-tmp-1796149455.1285965-32464-5*******9609\n"; string(r.Stdout) != want {
		t.Errorf("detect luhn: %q, want %q", r.Stdout, want)
	}
}

// A PAN-shaped principal, login or key ID never reaches a log line, the
// index or a recording whole.
func TestMaskingIdentityFields(t *testing.T) {
	t.Parallel()
	h := env(t)
	const pan = "4111111111111111"
	p := h.policy
	p.Targets = append([]Target(nil), p.Targets...)
	p.Targets[0].Logins = append(append([]string(nil), p.Targets[0].Logins...), pan)
	p.Rules = append([]Rule{{Name: "pan", Principals: []string{pan}, Targets: []string{"t1"}, Logins: []string{"root"}}}, p.Rules...)
	dir := t.TempDir()
	store := openStore(t, dir, h.auth.AuditKey)
	b := h.extraServer(t, Config{Policy: p, Recording: &Recording{Store: store}})
	key := h.userKey(t, "pankey", certs.UserCertRequest{Principals: []string{pan}, TTL: time.Hour, KeyID: "card " + pan})
	r := b.ssh(t, key, "root@t1", nil, "echo ok")
	if r.ExitCode != 0 {
		t.Fatalf("exit %d: %s", r.ExitCode, r.Stderr)
	}
	r = b.ssh(t, key, pan+"@t1", nil, "echo refused") // login not granted: refused and logged
	// (ssh itself echoes the user name it was given; the bastion's line
	// must not.)
	line, _, _ := strings.Cut(string(r.Stderr), "\n")
	if !strings.HasPrefix(line, "postern: ") || !strings.Contains(line, "may not log in as") || strings.Contains(line, pan) {
		t.Errorf("refusal shown to the client: %q", r.Stderr)
	}
	s := h.findRecording(t, store, func(s recorder.Session) bool { return s.Command == "echo ok" })
	raw, _ := os.ReadFile(filepath.Join(dir, s.Path))
	testenv.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(b.logs.String(), `"allowed":false`) })
	for what, text := range map[string]string{"log": b.logs.String(), "recording": string(raw), "index": fmt.Sprintf("%+v", s)} {
		if strings.Contains(text, pan) {
			t.Errorf("%s holds the PAN-shaped identity:\n%s", what, text)
		}
	}
}
