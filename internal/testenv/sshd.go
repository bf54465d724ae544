package testenv

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/postern/postern/internal/sshdproc"
)

// SSHDOptions configures an sshd; see sshdproc.Options.
type SSHDOptions = sshdproc.Options

// SSHDInstance is a running sshd; see sshdproc.Instance.
type SSHDInstance = sshdproc.Instance

// StartSSHD starts an sshd the caller must Close; see sshdproc.Start.
// Tests use SSHD or SharedSSHD, which register the cleanup.
func StartSSHD(opts SSHDOptions) (*SSHDInstance, error) { return sshdproc.Start(opts) }

// SSHD starts an sshd for the test (see sshdproc.Start), stops it in t.Cleanup,
// and logs its output there if the test failed. A missing sshd or ssh-keygen
// skips the test (fails it in CI).
func SSHD(t testing.TB, opts SSHDOptions) *SSHDInstance {
	t.Helper()
	Require(t, "sshd")
	Require(t, "ssh-keygen")
	s, err := sshdproc.Start(opts)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			t.Logf("sshd %s log:\n%s", s.Addr, s.Logs())
		}
	})
	return s
}

// shared holds the sshds started by SharedSSHD for the whole test binary.
var shared struct {
	mu      sync.Mutex // guards running and byKey
	running bool       // Run is inside m.Run
	byKey   map[string]*sharedSSHD
}

type sharedSSHD struct {
	once sync.Once
	s    *SSHDInstance
	err  error
}

// SharedSSHD returns the sshd shared by all tests of the binary under key,
// starting it on first use with opts (later calls' opts are ignored). Run
// stops it after all tests, so the package's TestMain must call
// os.Exit(testenv.Run(m)). If the test fails, the cleanup logs what sshd
// wrote during the test (interleaved with parallel tests' lines).
func SharedSSHD(t testing.TB, key string, opts SSHDOptions) *SSHDInstance {
	t.Helper()
	Require(t, "sshd")
	Require(t, "ssh-keygen")
	shared.mu.Lock()
	if !shared.running {
		shared.mu.Unlock()
		t.Fatal("testenv: SharedSSHD needs TestMain to call os.Exit(testenv.Run(m))")
	}
	e := shared.byKey[key]
	if e == nil {
		e = &sharedSSHD{}
		shared.byKey[key] = e
	}
	shared.mu.Unlock()
	e.once.Do(func() { e.s, e.err = sshdproc.Start(opts) })
	if e.err != nil {
		t.Fatalf("testenv: shared sshd %q: %v", key, e.err)
	}
	off := e.s.LogOffset()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shared sshd %q (%s) log during this test:\n%s", key, e.s.Addr, e.s.LogsSince(off))
		}
	})
	return e.s
}

// Run runs the tests and then stops the processes started by Shared*
// functions. Use it as TestMain's body: os.Exit(testenv.Run(m)).
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.running = true
	shared.byKey = make(map[string]*sharedSSHD)
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.running = false
	var errs []error
	for key, e := range shared.byKey {
		if e.s != nil {
			if err := e.s.Close(); err != nil {
				errs = append(errs, fmt.Errorf("stop shared sshd %q: %w", key, err))
			}
		}
	}
	shared.byKey = nil
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
