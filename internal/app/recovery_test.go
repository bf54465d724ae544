package app_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern/postern/internal/app"
	"github.com/postern/postern/internal/config"
	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// TestNewChecksIndex: a start logs that it checked the index; a start on
// a damaged index fails with a *recorder.CorruptError that names the file
// and the way out, changes nothing, and releases the lock.
func TestNewChecksIndex(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	logs := &testenv.Buffer{}
	settings := &config.Config{Listen: "127.0.0.1:0", DataDir: dir}
	a, err := app.New(app.Config{Settings: settings, Log: app.NewLogger(logs, 0)})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if !strings.Contains(logs.String(), `"msg":"session index checked"`) {
		t.Fatalf("no index check in the log:\n%s", logs.String())
	}
	path := filepath.Join(dir, recorder.IndexFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	damaged, _ := os.ReadFile(path)
	_, err = app.New(app.Config{Settings: settings})
	var ce *recorder.CorruptError
	if !errors.As(err, &ce) || ce.Path != path || !strings.Contains(err.Error(), "postern index rebuild") {
		t.Fatalf("New on a truncated index: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(damaged) {
		t.Fatal("a failed start changed the damaged index")
	}
	l, err := app.Lock(dir)
	if err != nil {
		t.Fatalf("lock after New failed: %v", err)
	}
	l.Close()
}
