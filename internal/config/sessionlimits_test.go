package config_test

import (
	"errors"
	"testing"
	"time"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/internal/config"
)

const limitsRest = `targets:
  - name: db01
    address: 10.0.0.5:22
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnigi76UqoOA+UfXN6ZK07Ul0lF7mlmM95oYIUnJ84i"
rules:
  - name: r
    principals: [alice]
    targets: [db01]
    logins: [root]
`

func TestSessionLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       bastion.SessionLimits
	}{
		{"defaults", "", bastion.SessionLimits{MaxDuration: 12 * time.Hour, RecordingMaxSize: 1 << 30, MinFreeDisk: 1 << 30}},
		{"set", "session_limits:\n  max_duration: 8h\n  recording_max_size: 512MiB\n  on_recording_limit: stop_recording\n  min_free_disk: 2 GiB\n",
			bastion.SessionLimits{MaxDuration: 8 * time.Hour, RecordingMaxSize: 512 << 20, StopRecordingAtLimit: true, MinFreeDisk: 2 << 30}},
		{"off", "session_limits:\n  max_duration: 0\n  recording_max_size: 0\n  on_recording_limit: end\n  min_free_disk: 0\n", bastion.SessionLimits{}},
		{"bytes", "session_limits:\n  recording_max_size: 1048576\n", bastion.SessionLimits{MaxDuration: 12 * time.Hour, RecordingMaxSize: 1 << 20, MinFreeDisk: 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse("postern.yaml", []byte("data_dir: ./data\n"+tt.yaml+limitsRest))
			if err != nil {
				t.Fatal(err)
			}
			if c.SessionLimits != tt.want {
				t.Fatalf("limits %+v, want %+v", c.SessionLimits, tt.want)
			}
			if got := c.Bastion(nil, nil, nil).SessionLimits; got != tt.want {
				t.Fatalf("bastion limits %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSessionLimitsBad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		yaml string
		line int
		key  string
		msg  string
	}{
		{"session_limits:\n  max_duration: 12\n", 3, "session_limits.max_duration", `invalid duration "12"`},
		{"session_limits:\n  max_duration: -1h\n", 3, "session_limits.max_duration", `is negative`},
		{"session_limits:\n  recording_max_size: 1GB\n", 3, "session_limits.recording_max_size", `invalid size "1GB": use a whole number of bytes or one with a unit, like 512MiB`},
		{"session_limits:\n  recording_max_size: 1000\n", 3, "session_limits.recording_max_size", `must be at least 64KiB`},
		{"session_limits:\n  min_free_disk: -5\n", 3, "session_limits.min_free_disk", `invalid size "-5"`},
		{"session_limits:\n  on_recording_limit: continue\n", 3, "session_limits.on_recording_limit", `must be end (end the session, the default) or stop_recording`},
		{"session_limits:\n  max_session: 1h\n", 3, "session_limits.max_session", `unknown key`},
	}
	for _, tt := range tests {
		_, err := config.Parse("postern.yaml", []byte("data_dir: ./data\n# limits\n"+tt.yaml+limitsRest))
		var e *config.Error
		if !errors.As(err, &e) {
			t.Fatalf("%q: error %v, want a *config.Error", tt.yaml, err)
		}
		checkError(t, err, "postern.yaml", tt.line+1, tt.key, tt.msg)
	}
}
