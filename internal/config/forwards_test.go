package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/postern/postern/bastion"
	"github.com/postern/postern/internal/config"
)

const forwardsConfig = `data_dir: /var/lib/postern
targets:
  - name: db01
    address: 10.0.0.5
    host_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnigi76UqoOA+UfXN6ZK07Ul0lF7mlmM95oYIUnJ84i"
    forward:
      - {port: 5432, protocol: postgres}
      - {port: 8080, protocol: tcp}
rules:
  - name: dba
    principals: [dba]
    targets: [db01]
    logins: [postgres]
    forwards: [5432, 9999]
  - name: sre
    principals: [sre]
    targets: [db01]
    logins: [root]
    forwards: ["*"]
    remote_forwards: [9000, 5432]
    agent_forwarding: true
  - name: old
    principals: [old]
    targets: [db01]
    logins: [root]
    port_forwarding: false
`

// Targets declare ports and protocols; rules grant ports or "*"; a port no
// target of the rule declares, and the obsolete port_forwarding: false,
// are warnings; the grant forwards only declared, granted ports.
func TestForwardsParsedAndGranted(t *testing.T) {
	t.Parallel()
	c, err := config.Parse("p.yaml", []byte(forwardsConfig))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Policy.Targets[0].Forwards; len(got) != 2 || got[0] != (bastion.Forward{Port: 5432, Protocol: "postgres"}) || got[1] != (bastion.Forward{Port: 8080, Protocol: "tcp"}) {
		t.Fatalf("target forwards %+v", got)
	}
	warnings := strings.Join(c.Warnings, "\n")
	for _, want := range []string{`rules[0].forwards[1]: rule "dba": none of its targets declares port 9999`, "rules[2].port_forwarding: port_forwarding is obsolete",
		`rules[1].remote_forwards[1]: rule "sre": a target of the rule declares port 5432 under forward: ssh -R is never granted on it`} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings %q lack %q", warnings, want)
		}
	}
	tests := []struct {
		principal, user string
		port            uint32
		want            string // protocol, or the refusal's reason
	}{
		{"dba", "postgres@db01", 5432, "postgres"},
		{"dba", "postgres@db01", 8080, "port not granted by rule dba"},
		{"dba", "postgres@db01", 9999, "port not declared for forwarding"},
		{"sre", "root@db01", 8080, "tcp"},
		{"sre", "root@db01", 5432, "postgres"},
		{"sre", "root@db01", 5433, "port not declared for forwarding"},
		{"old", "root@db01", 5432, "port forwarding not granted"},
	}
	sre, err := c.Policy.Decide(bastion.Identity{Principals: []string{"sre"}}, "root@db01")
	if err != nil {
		t.Fatal(err)
	}
	if sre.RemoteForward(9000) != nil || sre.RemoteForward(9001) == nil || sre.RemoteForward(0) == nil {
		t.Errorf("remote forwards %v: want 9000 and 5432 only", sre.RemoteForwards)
	}
	// agent_forwarding is off unless a rule turns it on.
	dba, err := c.Policy.Decide(bastion.Identity{Principals: []string{"dba"}}, "postgres@db01")
	if err != nil {
		t.Fatal(err)
	}
	if !sre.AgentForwarding || dba.AgentForwarding {
		t.Errorf("agent forwarding: sre %v, dba %v; want true, false", sre.AgentForwarding, dba.AgentForwarding)
	}
	for _, tt := range tests {
		g, err := c.Policy.Decide(bastion.Identity{Principals: []string{tt.principal}}, tt.user)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if decl, deny := g.Forward(tt.port); deny != nil {
			got = deny.Reason
		} else {
			got = decl.Protocol
		}
		if got != tt.want {
			t.Errorf("%s port %d: %q, want %q", tt.principal, tt.port, got, tt.want)
		}
	}
}

// README.md's agent forwarding example is a valid rules section whose
// rule allows agent forwarding to the targets it names.
func TestAgentForwardingREADME(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Agent forwarding\n")
	_, rest, ok2 := strings.Cut(section, "```yaml\nrules:\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no rules example under Agent forwarding")
	}
	data := strings.Replace(forwardsConfig, "  - name: db01\n", "  - name: app01\n    address: 10.0.1.5\n    host_key: \""+db01Key+"\"\n  - name: db01\n", 1)
	data = strings.Replace(data, "rules:\n", "rules:\n"+block, 1)
	c, err := config.Parse("readme.yaml", []byte(data))
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	g, err := c.Policy.Decide(bastion.Identity{Principals: []string{"carol"}, Groups: []string{"deployers"}}, "deploy@app01")
	if err != nil || g.Rule != "deploy" || !g.AgentForwarding {
		t.Fatalf("README rule: grant %+v, %v; want rule deploy with agent forwarding", g, err)
	}
}
