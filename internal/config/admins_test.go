package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/postern/postern/internal/config"
)

// TestReservedName: the admin connection's user name cannot name a target
// or a login anywhere, in any case; the error names the key and line.
func TestReservedName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		line int
		key  string
	}{
		{"target", strings.Replace(minimal, "name: db01", "name: postern", 1), 3, "targets[0].name"},
		{"target in capitals", strings.Replace(minimal, "name: db01", "name: Postern", 1), 3, "targets[0].name"},
		{"target login", strings.Replace(minimal, "    host_key:", "    logins: [root, postern]\n    host_key:", 1), 5, "targets[0].logins[1]"},
		{"target default login", strings.Replace(minimal, "    host_key:", "    default_login: postern\n    host_key:", 1), 5, "targets[0].default_login"},
		{"rule login", strings.Replace(minimal, `logins: ["*"]`, `logins: [postern]`, 1), 10, "rules[0].logins[0]"},
		{"rule default login", strings.Replace(minimal, `logins: ["*"]`, "logins: [\"*\"]\n    default_login: postern", 1), 11, "rules[0].default_login"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Parse("postern.yaml", []byte(tt.data))
			if err == nil {
				t.Fatalf("Parse = %+v, want error", c)
			}
			checkError(t, err, "postern.yaml", tt.line, tt.key, "is reserved for the admin connection")
		})
	}
}

func TestAdmins(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("postern.yaml", []byte(minimal+"admins: [alice, \"group:security\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alice", "group:security"}; !reflect.DeepEqual(c.Admins, want) {
		t.Fatalf("Admins = %q, want %q", c.Admins, want)
	}
	if got := c.Bastion(nil, nil, nil).Admins; !reflect.DeepEqual(got, c.Admins) {
		t.Fatalf("bastion Admins = %q, want %q", got, c.Admins)
	}
	if c, err = config.Parse("postern.yaml", []byte(minimal)); err != nil || c.Admins != nil {
		t.Fatalf("default: Admins %q, err %v; want none", c.Admins, err)
	}
	for _, tt := range []struct{ data, key, msg string }{
		{`admins: ["*"]`, "admins[0]", "wildcards are not allowed"},
		{`admins: [alice, "group:*"]`, "admins[1]", "wildcards are not allowed"},
		{`admins: ["group:"]`, "admins[0]", "names no group"},
		{`admins: [""]`, "admins[0]", "must not be empty"},
		{`admins: alice`, "admins", "must be a list"},
	} {
		_, err := config.Parse("postern.yaml", []byte(minimal+tt.data+"\n"))
		if err == nil {
			t.Fatalf("%s: no error", tt.data)
		}
		checkError(t, err, "postern.yaml", 11, tt.key, tt.msg)
	}
}
