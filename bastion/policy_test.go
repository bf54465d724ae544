package bastion

import (
	"errors"
	"strings"
	"testing"
)

func TestParseUser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, login, target string
		bad               bool
	}{
		{in: "root@db01", login: "root", target: "db01"},
		{in: "db01", target: "db01"},
		{in: "a@b@db01", bad: true}, // '@' is not a login character
		{in: "@db01", bad: true},
		{in: "root@", bad: true},
		{in: "", bad: true},
		{in: "root@db01;rm", bad: true},
		{in: "../etc@db01", login: "../etc", target: "db01", bad: true},
	}
	for _, tt := range tests {
		login, target, err := ParseUser(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("ParseUser(%q) = %q, %q; want error", tt.in, login, target)
			}
			continue
		}
		if err != nil || login != tt.login || target != tt.target {
			t.Errorf("ParseUser(%q) = %q, %q, %v; want %q, %q", tt.in, login, target, err, tt.login, tt.target)
		}
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	p := Policy{
		Targets: []Target{
			{Name: "db01", Labels: map[string]string{"env": "prod"}, Logins: []string{"postgres", "root"}, DefaultLogin: "postgres"},
			{Name: "web01", Labels: map[string]string{"env": "dev"}},
		},
		Rules: []Rule{
			{Name: "dba", Groups: []string{"dba"}, TargetLabels: map[string]string{"env": "prod"}, Logins: []string{"postgres"}, Forwards: []int{5432}},
			{Name: "alice-web", Principals: []string{"alice"}, Targets: []string{"web*"}, Logins: []string{"*"}, DefaultLogin: "deploy"},
			{Name: "root-db", Principals: []string{"ops"}, Targets: []string{"db01"}, Logins: []string{"root"}},
		},
	}
	alice := Identity{Principals: []string{"alice"}, Groups: []string{"dba"}}
	tests := []struct {
		id         Identity
		user       string
		login      string // "" = denied
		rule       string
		denyPhrase string
	}{
		{alice, "postgres@db01", "postgres", "dba", ""},
		{alice, "db01", "postgres", "dba", ""}, // target default login
		{alice, "root@db01", "", "", "may not log in as"},
		{alice, "web01", "deploy", "alice-web", ""},
		{alice, "anything@web01", "anything", "alice-web", ""},
		{alice, "x@nope", "", "", "unknown target"},
		{Identity{Principals: []string{"bob"}}, "postgres@db01", "", "", "may not connect"},
		{Identity{Principals: []string{"ops"}}, "root@db01", "root", "root-db", ""},
		{Identity{Principals: []string{"ops"}}, "db01", "", "", "no default login"}, // rule's logins exclude the target default
		{alice, "bad name@db01", "", "", "bad user name"},
	}
	for _, tt := range tests {
		g, err := p.Decide(tt.id, tt.user)
		if tt.login == "" {
			var de *DenyError
			if !errors.As(err, &de) {
				t.Errorf("Decide(%v, %q) = %+v, %v; want DenyError", tt.id.Principals, tt.user, g, err)
				continue
			}
			if !strings.Contains(de.UserMessage(), tt.denyPhrase) {
				t.Errorf("Decide(%v, %q) message %q, want %q", tt.id.Principals, tt.user, de.UserMessage(), tt.denyPhrase)
			}
			continue
		}
		if err != nil {
			t.Errorf("Decide(%v, %q): %v", tt.id.Principals, tt.user, err)
			continue
		}
		if g.Login != tt.login || g.Rule != tt.rule {
			t.Errorf("Decide(%v, %q) = login %q rule %q; want %q %q", tt.id.Principals, tt.user, g.Login, g.Rule, tt.login, tt.rule)
		}
	}
	var zero Policy
	if _, err := zero.Decide(alice, "postgres@db01"); err == nil {
		t.Error("the zero Policy allowed a connection")
	}
}

// FuzzParseUser: any user name either parses into names that are safe to
// log and to use as file name parts, or is refused; never both empty.
func FuzzParseUser(f *testing.F) {
	for _, s := range []string{"root@db01", "db01", "a@b@c", "@", "", "x@", "é@db", "root@db01\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		login, target, err := ParseUser(user)
		if err != nil {
			return
		}
		if !validName(target) || (login != "" && !validName(login)) {
			t.Fatalf("ParseUser(%q) accepted login %q target %q", user, login, target)
		}
		if strings.ContainsAny(login+target, "/\x00 \n@") {
			t.Fatalf("unsafe characters accepted in %q", user)
		}
		if login != "" {
			if login+"@"+target != user {
				t.Fatalf("ParseUser(%q) = %q@%q does not rebuild the input", user, login, target)
			}
		} else if target != user {
			t.Fatalf("ParseUser(%q) target %q", user, target)
		}
	})
}
