package config_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/internal/config"
)

func TestLimitsDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("postern.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Limits{HandshakeTimeout: 30 * time.Second, Limits: bastion.DefaultLimits}
	if !reflect.DeepEqual(c.Limits, want) {
		t.Fatalf("limits %+v, want %+v", c.Limits, want)
	}
	b := c.Bastion(nil, nil, nil)
	if b.HandshakeTimeout != 30*time.Second || !reflect.DeepEqual(b.Limits, bastion.DefaultLimits) {
		t.Fatalf("bastion config: handshake %v, limits %+v", b.HandshakeTimeout, b.Limits)
	}
}

func TestLimitsValues(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("postern.yaml", []byte(minimal+`limits:
  handshake_timeout: 10s
  max_startups: "10:50:20"
  max_startups_per_source: 3
  auth_failures: 5
  auth_failure_window: 30s
  auth_block: 10m
  max_connections: 7
  max_connections_per_identity: 2
  max_channels_per_connection: 4
`))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Limits{HandshakeTimeout: 10 * time.Second, Limits: bastion.Limits{
		Startups: bastion.Startups{Start: 10, Rate: 50, Full: 20}, StartupsPerSource: 3,
		AuthFailures: 5, AuthFailureWindow: 30 * time.Second, AuthBlock: 10 * time.Minute,
		FailureSources: bastion.DefaultLimits.FailureSources,
		MaxConns:       7, MaxConnsPerIdentity: 2, MaxChannels: 4,
	}}
	if !reflect.DeepEqual(c.Limits, want) {
		t.Fatalf("limits %+v, want %+v", c.Limits, want)
	}
	// A single number N is OpenSSH's N:100:N.
	c, err = config.Parse("postern.yaml", []byte(minimal+"limits: {max_startups: 50}\n"))
	if err != nil || c.Limits.Startups != (bastion.Startups{Start: 50, Rate: 100, Full: 50}) {
		t.Fatalf("max_startups 50: %+v, %v", c.Limits.Startups, err)
	}
}

func TestLimitsErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ data, key, msg string }{
		{"limits: {handshake_timeout: 0}", "limits.handshake_timeout", "must be more than 0"},
		{"limits: {handshake_timeout: soon}", "limits.handshake_timeout", "invalid duration"},
		{"limits: {auth_block: -1m}", "limits.auth_block", "negative"},
		{`limits: {max_startups: "10:30"}`, "limits.max_startups", "is not start:rate:full"},
		{`limits: {max_startups: "20:30:10"}`, "limits.max_startups", "1 <= start <= full"},
		{`limits: {max_startups: "10:130:20"}`, "limits.max_startups", "rate a percentage"},
		{"limits: {max_connections: 0}", "limits.max_connections", "must be at least 1"},
		{"limits: {max_channels_per_connection: many}", "limits.max_channels_per_connection", "must be a whole number"},
		{"limits: {max_sessions: 3}", "limits.max_sessions", "unknown key"},
	} {
		_, err := config.Parse("postern.yaml", []byte(minimal+tt.data+"\n"))
		if err == nil {
			t.Fatalf("%s: no error", tt.data)
		}
		checkError(t, err, "postern.yaml", 11, tt.key, tt.msg)
	}
}
