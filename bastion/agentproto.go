package bastion

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The SSH agent protocol (draft-ietf-sshm-ssh-agent; OpenSSH's
// PROTOCOL.agent): each message is a uint32 length, a type byte and its
// fields; the client sends a request and the agent answers it, in order.
// The bastion reads each request the target sends before it passes on,
// and each answer from the client's agent before it goes back.
const (
	agentMsgFailure          = 5
	agentMsgSuccess          = 6
	agentMsgRequestIDs       = 11
	agentMsgIdentitiesAnswer = 12
	agentMsgSignRequest      = 13
	agentMsgSignResponse     = 14
	agentMsgExtension        = 27
	agentMsgExtensionFailure = 28
)

// agentRequestNames name the requests the bastion refuses, for the audit
// record (draft-ietf-sshm-ssh-agent §6.1; 1 to 9 are the obsolete
// protocol 1's).
var agentRequestNames = map[byte]string{
	1: "list v1 keys", 3: "v1 challenge", 7: "add v1 key", 8: "remove v1 key", 9: "remove all v1 keys",
	17: "add key", 18: "remove key", 19: "remove all keys", 20: "add smartcard key", 21: "remove smartcard key",
	22: "lock", 23: "unlock", 24: "add v1 key with constraints", 25: "add key with constraints",
	26: "add smartcard key with constraints",
}

// maxAgentMessage caps one message either way, as OpenSSH's agent and
// client do (AGENT_MAX_LEN).
const maxAgentMessage = 256 << 10

// sessionBind is the extension OpenSSH's ssh sends its agent before it
// authenticates with it (PROTOCOL.agent §1): it names the server's host
// key, so that keys added with destination constraints (ssh-add -h) are
// used only on the hosts the user allowed. Relayed: it can only narrow
// what the agent does.
const sessionBind = "session-bind@openssh.com"

// errAgentMessage is a message that does not parse as the agent protocol.
var errAgentMessage = errors.New("malformed agent message")

// readAgentMessage reads one message (its type byte and fields, without
// the length) from r.
func readAgentMessage(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size == 0 || size > maxAgentMessage {
		return nil, fmt.Errorf("%w: length %d", errAgentMessage, size)
	}
	msg := make([]byte, size)
	if _, err := io.ReadFull(r, msg); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return msg, nil
}

// writeAgentMessage writes msg to w behind its length, in one write.
func writeAgentMessage(w io.Writer, msg []byte) error {
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(msg)), uint32(len(msg)))
	_, err := w.Write(append(buf, msg...))
	return err
}

// agentOp is one request from the target as the bastion judged it, and
// then what the client's agent answered.
type agentOp struct {
	name    string // list, sign, session-bind, or the refused request's name
	allowed bool
	key     string // sign: the key's fingerprint and type
	detail  string // sign: what is signed; session-bind: the host
	result  string // the answer, as the audit record says it
	ok      bool   // the agent did what was asked
}

// judgeAgentRequest decides a request from the target: listing keys and
// signing pass (and session-bind, which only narrows the agent); adding,
// removing, locking, other extensions and anything unknown are refused,
// so a target can use the user's keys while the session lasts but never
// change the agent.
func judgeAgentRequest(msg []byte) agentOp {
	switch msg[0] {
	case agentMsgRequestIDs:
		if len(msg) == 1 {
			return agentOp{name: "list", allowed: true}
		}
	case agentMsgSignRequest:
		// string key blob, string data, uint32 flags.
		blob, rest, ok := sshString(msg[1:])
		data, rest, ok2 := sshString(rest)
		if ok && ok2 && len(rest) == 4 {
			return agentOp{name: "sign", allowed: true, key: keyName(blob), detail: signedWhat(data)}
		}
	case agentMsgExtension:
		ext, rest, ok := sshString(msg[1:])
		if !ok {
			break
		}
		if string(ext) != sessionBind {
			return agentOp{name: "extension " + word(ext)}
		}
		// string host key, string session ID, string signature, bool
		// forwarding.
		host, rest, ok := sshString(rest)
		_, rest, ok2 := sshString(rest)
		_, rest, ok3 := sshString(rest)
		if ok && ok2 && ok3 && len(rest) == 1 {
			d := "host key " + keyName(host)
			if rest[0] != 0 {
				d += ", forwarding"
			}
			return agentOp{name: "session-bind", allowed: true, detail: d}
		}
	default:
		if name, ok := agentRequestNames[msg[0]]; ok {
			return agentOp{name: name}
		}
		return agentOp{name: "request type " + strconv.Itoa(int(msg[0]))}
	}
	return agentOp{name: "malformed request"}
}

// checkAnswer reads the agent's answer to op: it must be one the request
// allows (an identities answer to a list, a signature to a sign), else the
// agent speaks something else and the channel ends. It sets op.result and
// op.ok.
func (op *agentOp) checkAnswer(msg []byte) error {
	if msg[0] == agentMsgFailure && len(msg) == 1 {
		op.result = "failed"
		return nil
	}
	switch {
	case op.name == "list" && msg[0] == agentMsgIdentitiesAnswer:
		keys, err := listedKeys(msg[1:])
		if err != nil {
			return err
		}
		op.ok = true
		op.result = strconv.Itoa(len(keys)) + " keys"
		if len(keys) == 1 {
			op.result = "1 key"
		}
		if len(keys) > 0 {
			op.result += ": " + strings.Join(keys[:min(len(keys), 16)], ", ")
		}
		if len(keys) > 16 {
			op.result += fmt.Sprintf(" and %d more", len(keys)-16)
		}
		return nil
	case op.name == "sign" && msg[0] == agentMsgSignResponse:
		if _, rest, ok := sshString(msg[1:]); !ok || len(rest) != 0 {
			return fmt.Errorf("%w: signature", errAgentMessage)
		}
		op.ok, op.result = true, "signed"
		return nil
	case op.name == "session-bind" && (msg[0] == agentMsgSuccess || msg[0] == agentMsgExtensionFailure) && len(msg) == 1:
		op.ok, op.result = msg[0] == agentMsgSuccess, "bound"
		if !op.ok {
			op.result = "failed"
		}
		return nil
	}
	return fmt.Errorf("the client's agent answered %s with message type %d", op.name, msg[0])
}

// listedKeys returns the fingerprints and types of an identities answer's
// keys (uint32 count, then a key blob and a comment each). Comments are
// the user's; they are relayed, not recorded.
func listedKeys(b []byte) ([]string, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: identities answer", errAgentMessage)
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(n) > uint64(len(b)/8) { // each key is two strings at least
		return nil, fmt.Errorf("%w: identities answer of %d keys in %d bytes", errAgentMessage, n, len(b))
	}
	keys := make([]string, 0, n)
	for range n {
		blob, rest, ok := sshString(b)
		_, rest, ok2 := sshString(rest)
		if !ok || !ok2 {
			return nil, fmt.Errorf("%w: identities answer", errAgentMessage)
		}
		keys = append(keys, keyName(blob))
		b = rest
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: identities answer", errAgentMessage)
	}
	return keys, nil
}

// keyName is a public key blob's SHA256 fingerprint, as ssh-add -l and
// ssh-keygen -l print it, and its type: computed from the blob, so that a
// key type x/crypto cannot parse is named too.
func keyName(blob []byte) string {
	sum := sha256.Sum256(blob)
	name := "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
	if typ, _, ok := sshString(blob); ok {
		name += " " + word(typ)
	}
	return name
}

// word is b as it can go into a record: itself if it is a short word of
// printable ASCII (a key type, a service name), else quoted and cut.
func word(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(logSafe(string(b[:64]))) + "..."
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.Quote(logSafe(string(b)))
		}
	}
	return logSafe(string(b))
}

// signedWhat says what a sign request's data is: an SSH user
// authentication (RFC 4252 §7: session ID, SSH_MSG_USERAUTH_REQUEST, user,
// service, method, ...) names the login on the server the target is
// reaching; an SSHSIG signature (git commit signing, ssh-keygen -Y) its
// namespace.
func signedWhat(data []byte) string {
	if rest, ok := bytes.CutPrefix(data, []byte("SSHSIG")); ok {
		if ns, _, ok := sshString(rest); ok {
			return "sshsig namespace " + word(ns)
		}
	}
	if _, rest, ok := sshString(data); ok && len(rest) > 0 && rest[0] == 50 {
		user, rest, ok := sshString(rest[1:])
		service, rest, ok2 := sshString(rest)
		method, _, ok3 := sshString(rest)
		if ok && ok2 && ok3 && strings.HasPrefix(string(method), "publickey") {
			return "ssh login as " + word(user) + " (" + word(service) + ")"
		}
	}
	return strconv.Itoa(len(data)) + " bytes of other data"
}

// sshString splits an SSH string (uint32 length, bytes) off b.
func sshString(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}
