package bastion

// A hostile target and the forwarded agent: the target is played by an
// x/crypto server (OpenSSH's sshd would never misbehave this way), the
// client's agent by x/crypto's keyring behind x/crypto's client.

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/postern/postern/certs"
	"github.com/postern/postern/recorder"
)

// agentTarget is a target that, for an exec request, runs the command
// as a scenario against the agent channels it opens back to the bastion,
// writes what happened to the session's stdout and exits 0.
func agentTarget(t *testing.T) (string, ssh.PublicKey) {
	return inProcessTarget(t, func(wg *sync.WaitGroup, sc *ssh.ServerConn, nch ssh.NewChannel) {
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.Prohibited, "no")
			return
		}
		ch, reqs, err := nch.Accept()
		if err != nil {
			return
		}
		wg.Go(func() {
			defer ch.Close()
			for r := range reqs {
				r.Reply(true, nil)
				var exec struct{ Command string }
				if r.Type != "exec" || ssh.Unmarshal(r.Payload, &exec) != nil {
					continue
				}
				agentScenario(sc, ch, exec.Command)
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Code uint32 }{0}))
				return
			}
		})
	})
}

// agentScenario plays one scenario, writing a line per step to out.
func agentScenario(sc *ssh.ServerConn, out io.Writer, scenario string) {
	open := func() (ssh.Channel, error) {
		ch, reqs, err := sc.OpenChannel(agentChannelType, nil)
		if err != nil {
			return nil, err
		}
		go ssh.DiscardRequests(reqs)
		return ch, nil
	}
	switch scenario {
	case "unasked":
		_, err := open()
		fmt.Fprintf(out, "open: %v\n", err)
	case "abuse":
		ch, err := open()
		if err != nil {
			fmt.Fprintf(out, "open: %v\n", err)
			return
		}
		defer ch.Close()
		abuseAgent(ch, out)
	case "flood":
		var chans []ssh.Channel
		defer func() {
			for _, ch := range chans {
				ch.Close()
			}
		}()
		for range maxAgentChannels + 1 {
			ch, err := open()
			if err != nil {
				fmt.Fprintf(out, "opened %d, then: %v\n", len(chans), err)
				return
			}
			chans = append(chans, ch)
		}
		fmt.Fprintf(out, "opened %d\n", len(chans))
	}
}

// abuseAgent uses the agent as a target that wants more than it should:
// what it may (list, sign), what it may not (lock, unlock, remove, add,
// an extension), then a message too long to be one.
func abuseAgent(ch ssh.Channel, out io.Writer) {
	a := agent.NewClient(ch)
	keys, err := a.List()
	fmt.Fprintf(out, "list %d %v\n", len(keys), err)
	if len(keys) == 0 {
		return
	}
	sig, err := a.Sign(keys[0], []byte("data to sign"))
	fmt.Fprintf(out, "sign %v\n", err == nil && keys[0].Verify([]byte("data to sign"), sig) == nil)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	for name, err := range map[string]error{
		"lock": a.Lock([]byte("pw")), "unlock": a.Unlock([]byte("pw")), "remove": a.Remove(keys[0]),
		"remove all": a.RemoveAll(), "add": a.Add(agent.AddedKey{PrivateKey: priv}),
	} {
		fmt.Fprintf(out, "%s refused %v\n", name, err != nil)
	}
	_, err = a.Extension("query", nil)
	fmt.Fprintf(out, "extension refused %v\n", err != nil)
	keys, err = a.List()
	fmt.Fprintf(out, "list after %d %v\n", len(keys), err)
	// A length past 256 KiB: the bastion ends the channel.
	ch.Write(binary.BigEndian.AppendUint32(nil, maxAgentMessage+1))
	_, err = ch.Read(make([]byte, 1))
	fmt.Fprintf(out, "oversize ends the channel %v\n", errors.Is(err, io.EOF))
}

// agentRig is a bastion in front of agentTarget whose rule allows agent
// forwarding, and a client key whose certificate permits it.
func agentRig(t *testing.T) (*harness, string) {
	h := env(t)
	addr, hostKey := agentTarget(t)
	b := h.extraServer(t, Config{
		Policy: Policy{
			Targets: []Target{{Name: "hostile", Address: addr, HostKey: hostKey}},
			Rules:   []Rule{{Name: "agent", Principals: []string{"agentgo"}, Targets: []string{"hostile"}, Logins: []string{"root"}, AgentForwarding: true}},
		},
		Recording: &Recording{Store: openStore(t, t.TempDir(), h.auth.AuditKey)},
	})
	key := h.userKey(t, uniqueMarker("agentgo-"), certs.UserCertRequest{Principals: []string{"agentgo"}, TTL: time.Hour, AgentForwarding: true})
	return b, key
}

// runAgentScenario connects as the rig's user, forwarding keyring as the
// agent if it is not nil, runs scenario on the target and returns its
// output.
func runAgentScenario(t *testing.T, b *harness, key string, keyring agent.Agent, scenario string) string {
	t.Helper()
	client := b.dialGo(t, key, "root@hostile")
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if keyring != nil {
		if err := agent.ForwardToAgent(client, keyring); err != nil {
			t.Fatal(err)
		}
		if err := agent.RequestAgentForwarding(s); err != nil {
			t.Fatal(err)
		}
	}
	out, err := s.Output(scenario)
	if err != nil {
		t.Fatalf("%s: %v; output %q", scenario, err, out)
	}
	return string(out)
}

// A target that opens agent channels the client never asked for, asks
// the agent for more than listing and signing, sends a message too long to
// be one, or opens too many channels, gets refusals; the client's agent
// keeps its keys and stays unlocked, and every refusal is audited.
func TestAgentHostileTarget(t *testing.T) {
	t.Parallel()
	b, key := agentRig(t)
	keyring := agent.NewKeyring()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv, Comment: "user key"}); err != nil {
		t.Fatal(err)
	}

	out := runAgentScenario(t, b, key, nil, "unasked")
	if !strings.Contains(out, "the client did not ask for agent forwarding") {
		t.Errorf("unasked agent channel: %q, want refused", out)
	}

	out = runAgentScenario(t, b, key, keyring, "abuse")
	for _, want := range []string{"list 1 <nil>", "sign true", "lock refused true", "unlock refused true", "remove refused true",
		"remove all refused true", "add refused true", "extension refused true", "list after 1 <nil>", "oversize ends the channel true"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("abuse: output %q lacks %q", out, want)
		}
	}
	if keys, err := keyring.List(); err != nil || len(keys) != 1 {
		t.Errorf("the client's agent holds %d keys (%v) after the target's abuse, want its one", len(keys), err)
	}

	out = runAgentScenario(t, b, key, keyring, "flood")
	if !strings.Contains(out, fmt.Sprintf("opened %d, then:", maxAgentChannels)) || !strings.Contains(out, "more than 16 agent channels open") {
		t.Errorf("flood: %q, want %d channels and then a refusal", out, maxAgentChannels)
	}

	logs := b.logs.String()
	for _, want := range []string{
		`"event":"agent","allowed":false,"reason":"the client did not ask for agent forwarding"`,
		`"event":"agent","allowed":false,"reason":"more than 16 agent channels open"`,
		`"op":"lock","allowed":false`, `"op":"unlock","allowed":false`, `"op":"remove key","allowed":false`,
		`"op":"remove all keys","allowed":false`, `"op":"add key","allowed":false`, `"op":"extension query","allowed":false`,
		`"detail":"12 bytes of other data","ok":true,"result":"signed"`,
		`"close_reason":"target sent a malformed agent message: length 262145"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if err := checkLogKeys(logs); err != nil {
		t.Error(err)
	}
}

// The index entry of an agent channel is sealed in the audit chain, and
// verify finds the chain intact.
func TestAgentChannelSealed(t *testing.T) {
	t.Parallel()
	b, key := agentRig(t)
	keyring := agent.NewKeyring()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keyring.Add(agent.AddedKey{PrivateKey: priv})
	runAgentScenario(t, b, key, keyring, "abuse")
	store := b.srv.cfg.Recording.Store.(*recorder.Local)
	s := b.findRecording(t, store, func(s recorder.Session) bool { return s.Kind == agentKind })
	if s.Status != recorder.StatusClosed || !strings.HasPrefix(s.Command, "ssh-agent: list 2, sign 1, refused 6") || s.SHA256 == "" {
		t.Errorf("agent index entry %+v", s)
	}
	rep, err := recorder.VerifyStore(t.Context(), store, recorder.VerifyOptions{Key: store.PublicKey()})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
