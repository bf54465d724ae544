package bastion

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// framed is an agent message: its length, then its type and fields.
func framed(typ byte, fields ...any) []byte {
	msg := []byte{typ}
	for _, f := range fields {
		switch v := f.(type) {
		case string:
			msg = append(msg, ssh.Marshal(struct{ S string }{v})...)
		case []byte:
			msg = append(msg, ssh.Marshal(struct{ B []byte }{v})...)
		case uint32:
			msg = binary.BigEndian.AppendUint32(msg, v)
		case bool:
			msg = append(msg, map[bool]byte{false: 0, true: 1}[v])
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
}

// What each request is called and whether it passes.
func TestJudgeAgentRequest(t *testing.T) {
	t.Parallel()
	blob := ssh.Marshal(struct{ Type, Key string }{"ssh-ed25519", "0123456789abcdef0123456789abcdef"})
	userauth := ssh.Marshal(struct {
		Session               string
		Type                  byte
		User, Service, Method string
		HasSig                bool
		Algo                  string
		Key                   []byte
	}{"sid", 50, "git", "ssh-connection", "publickey", true, "ssh-ed25519", blob})
	sshsig := append([]byte("SSHSIG"), ssh.Marshal(struct{ NS, Reserved, Hash, H string }{"git", "", "sha512", "h"})...)
	tests := []struct {
		name    string
		msg     []byte
		allowed bool
		op      string // name, then key and detail
	}{
		{"list", framed(11), true, "list"},
		{"list with junk", framed(11, uint32(1)), false, "malformed request"},
		{"sign a login", framed(13, blob, userauth, uint32(0)), true, "sign " + keyName(blob) + ` ssh login as git (ssh-connection)`},
		{"sign sshsig", framed(13, blob, sshsig, uint32(0)), true, "sign " + keyName(blob) + " sshsig namespace git"},
		{"sign other", framed(13, blob, "hello", uint32(2)), true, "sign " + keyName(blob) + " 5 bytes of other data"},
		{"sign truncated", framed(13, blob, "hello"), false, "malformed request"},
		{"session-bind", framed(27, sessionBind, blob, "sid", "sig", true), true, "session-bind host key " + keyName(blob) + ", forwarding"},
		{"session-bind short", framed(27, sessionBind, blob), false, "malformed request"},
		{"query", framed(27, "query"), false, "extension query"},
		{"odd extension", framed(27, "a\x1bb"), false, `extension "a\x1bb"`},
		{"add", framed(17, "ssh-ed25519"), false, "add key"},
		{"remove", framed(18, blob), false, "remove key"},
		{"remove all", framed(19), false, "remove all keys"},
		{"lock", framed(22, "pw"), false, "lock"},
		{"unlock", framed(23, "pw"), false, "unlock"},
		{"constrained", framed(25), false, "add key with constraints"},
		{"smartcard", framed(20, "id", "pin"), false, "add smartcard key"},
		{"v1", framed(1), false, "list v1 keys"},
		{"unknown", framed(200), false, "request type 200"},
	}
	for _, tt := range tests {
		msg, err := readAgentMessage(bytes.NewReader(tt.msg))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		op := judgeAgentRequest(msg)
		got := strings.Join(slices.DeleteFunc([]string{op.name, op.key, op.detail}, func(s string) bool { return s == "" }), " ")
		if op.allowed != tt.allowed || got != tt.op {
			t.Errorf("%s: %q allowed %v, want %q allowed %v", tt.name, got, op.allowed, tt.op, tt.allowed)
		}
	}
}

// The agent's answers are checked against what was asked.
func TestCheckAgentAnswer(t *testing.T) {
	t.Parallel()
	blob := ssh.Marshal(struct{ Type, Key string }{"ssh-ed25519", "k"})
	tests := []struct {
		op, name string
		answer   []byte
		result   string // "" for an error
	}{
		{"list", "two keys", framed(12, uint32(2), blob, "c1", blob, "c2"), "2 keys: " + keyName(blob) + ", " + keyName(blob)},
		{"list", "none", framed(12, uint32(0)), "0 keys"},
		{"list", "count too high", framed(12, uint32(3), blob, "c1"), ""},
		{"list", "trailing bytes", framed(12, uint32(0), "x"), ""},
		{"list", "failure", framed(5), "failed"},
		{"list", "a signature", framed(14, "sig"), ""},
		{"sign", "signature", framed(14, "sig"), "signed"},
		{"sign", "signature and junk", framed(14, "sig", uint32(1)), ""},
		{"sign", "success", framed(6), ""},
		{"session-bind", "success", framed(6), "bound"},
		{"session-bind", "extension failure", framed(28), "failed"},
	}
	for _, tt := range tests {
		msg, err := readAgentMessage(bytes.NewReader(tt.answer))
		if err != nil {
			// A length that lies: the framing itself is refused.
			if tt.result != "" {
				t.Errorf("%s %s: %v", tt.op, tt.name, err)
			}
			continue
		}
		op := agentOp{name: tt.op, allowed: true}
		err = op.checkAnswer(msg)
		if (err == nil) != (tt.result != "") || err == nil && op.result != tt.result {
			t.Errorf("%s %s: result %q err %v, want %q", tt.op, tt.name, op.result, err, tt.result)
		}
	}
}

// rw is one side of a relay in memory: what it sends, and what it got.
type rw struct {
	io.Reader
	got bytes.Buffer
}

func (s *rw) Write(p []byte) (int, error) { return s.got.Write(p) }

// Whatever the target and the agent send, the relay never panics, and
// nothing it refuses reaches the agent: every message the agent receives
// is one judgeAgentRequest allows, whole.
func FuzzAgentRelay(f *testing.F) {
	blob := ssh.Marshal(struct{ Type, Key string }{"ssh-ed25519", "k"})
	f.Add(framed(11), framed(12, uint32(1), blob, "c"))
	f.Add(append(framed(11), framed(13, blob, "data", uint32(0))...), append(framed(12, uint32(0)), framed(14, "sig")...))
	f.Add(append(framed(19), framed(22, "pw")...), framed(6))
	f.Add(framed(27, sessionBind, blob, "s", "sig", false), framed(6))
	f.Add([]byte{0, 0, 0, 0}, []byte{})
	f.Add(binary.BigEndian.AppendUint32(nil, maxAgentMessage+1), []byte{})
	f.Fuzz(func(t *testing.T, fromTarget, fromAgent []byte) {
		target, client := &rw{Reader: bytes.NewReader(fromTarget)}, &rw{Reader: bytes.NewReader(fromAgent)}
		a := &agentRelay{log: slog.New(slog.DiscardHandler), ops: map[string]int{}}
		if reason := a.relay(client, target); reason == "" {
			t.Fatal("relay ended without a reason")
		}
		sent := bytes.NewReader(client.got.Bytes())
		for sent.Len() > 0 {
			msg, err := readAgentMessage(sent)
			if err != nil {
				t.Fatalf("the agent got a broken message: %v", err)
			}
			if op := judgeAgentRequest(msg); !op.allowed {
				t.Fatalf("the agent got a refused request: %s", op.name)
			}
		}
		if a.toClient != int64(client.got.Len()) || a.toTarget != int64(target.got.Len()) {
			t.Fatalf("counted %d to the agent, %d to the target; sent %d, %d", a.toClient, a.toTarget, client.got.Len(), target.got.Len())
		}
	})
}
