package clients

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

// python is Debian's interpreter, which sees the python3-* packages (a
// python3 earlier in PATH may be a pyenv shim that does not).
const python = "/usr/bin/python3"

// requirePython returns the interpreter after checking that it can
// import module; like testenv.Require, a missing one skips the test
// locally and fails it in CI.
func requirePython(t testing.TB, module string) string {
	t.Helper()
	p := testenv.Require(t, python)
	if r := testenv.Cmd(t, time.Minute, nil, p, "-c", "import "+module); r.ExitCode != 0 {
		if testenv.InCI() {
			t.Fatalf("python module %s: %s (required in CI)", module, r.Stderr)
		}
		t.Skipf("python module %s: %s", module, r.Stderr)
	}
	return p
}

// script returns the absolute path of testdata/name.
func script(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// asyncsshResult is what testdata/asyncssh_client.py prints.
type asyncsshResult struct {
	Fatal             string   `json:"fatal"`
	Cipher            string   `json:"cipher"`
	ParallelOK        int      `json:"parallel_ok"`
	ParallelSeconds   float64  `json:"parallel_seconds"`
	SequentialOK      int      `json:"sequential_ok"`
	SequentialSeconds float64  `json:"sequential_seconds"`
	SFTP              string   `json:"sftp"`
	ErrorCount        int      `json:"error_count"`
	Errors            []string `json:"errors"`
}

// AsyncSSH (python3-asyncssh 2.10) on one connection: 8 tasks × 25 execs
// at once, then 1000 execs in a row (issue 13: zero failures), then an
// SFTP put and get of 1 MiB. The 1000 take about 30 s alone and two
// minutes beside the rest of the suite on the 2-core CI machine, where
// the package runs alongside the longer bastion package.
func TestAsyncSSH(t *testing.T) {
	t.Parallel()
	e := start(t, "")
	py := requirePython(t, "asyncssh")
	const workers, per, sequential = 8, 25, 1000
	r := testenv.Cmd(t, 8*time.Minute, nil, py, script(t, "asyncssh_client.py"),
		"--port", strconv.Itoa(e.port), "--user", login+"@"+target,
		"--key", e.key, "--cert", e.key+"-cert.pub", "--known-hosts", e.knownHosts,
		"--local-dir", t.TempDir(), "--remote-dir", remoteDir(t),
		"--workers", strconv.Itoa(workers), "--per", strconv.Itoa(per),
		"--sequential", strconv.Itoa(sequential), "--timeout", "420")
	var res asyncsshResult
	if err := json.Unmarshal(r.Stdout, &res); err != nil || r.ExitCode != 0 || res.Fatal != "" {
		t.Fatalf("asyncssh_client.py: exit %d, %v; stdout %s stderr %s", r.ExitCode, err, r.Stdout, r.Stderr)
	}
	t.Logf("asyncssh: cipher %s; %d×%d parallel execs in %.1f s, %d sequential in %.1f s",
		res.Cipher, workers, per, res.ParallelSeconds, sequential, res.SequentialSeconds)
	if res.ParallelOK != workers*per || res.SequentialOK != sequential || res.ErrorCount != 0 {
		t.Errorf("parallel %d/%d, sequential %d/%d ok; %d failures, first: %q",
			res.ParallelOK, workers*per, res.SequentialOK, sequential, res.ErrorCount, res.Errors)
	}
	if res.SFTP != "ok" {
		t.Errorf("sftp round trip: %s", res.SFTP)
	}
}
