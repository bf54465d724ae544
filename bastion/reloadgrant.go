package bastion

import (
	"bytes"
	"maps"
	"slices"

	"golang.org/x/crypto/ssh"
)

// A connection's channels are judged under the Grant of its handshake:
// which ports it may forward to and how each is parsed, remote forwards,
// agent forwarding, transfers, file_pans, and the target it reached. A
// reload that narrows any of that must not leave the connection able to
// open, under the old grant, a channel the new policy refuses, nor keep
// open what it no longer grants: SetRules ends such a connection
// (narrowed). A reload that only widens a grant keeps it; what it adds
// applies from the user's next connection.

// narrowed says what in now the connection's grant was has lost, or ""
// if now grants all of it.
func narrowed(was, now *Grant) string {
	wt, nt := was.Target, now.Target
	switch {
	case wt.Address != nt.Address:
		return "the target's address changed"
	case !sameHostKeys(wt, nt):
		return "the target's host key changed"
	case !maps.Equal(wt.Labels, nt.Labels):
		return "the target's labels changed (approval rules select by them)"
	case !forwardsCovered(was, now):
		return "port forwarding narrowed"
	case !remoteCovered(was, now):
		return "remote forwarding narrowed"
	case was.AgentForwarding && !now.AgentForwarding:
		return "agent forwarding no longer granted"
	}
	for _, k := range TransferKinds {
		if was.allowsTransfer(k) && !now.allowsTransfer(k) {
			return k + " no longer granted"
		}
	}
	if filePANsStrictness(now.FilePANs) > filePANsStrictness(was.FilePANs) {
		return "file_pans is stricter"
	}
	return ""
}

// sameHostKeys reports whether a and b verify the target's host key the
// same way.
func sameHostKeys(a, b *Target) bool {
	same := func(x, y ssh.PublicKey) bool {
		if x == nil || y == nil {
			return x == nil && y == nil
		}
		return bytes.Equal(x.Marshal(), y.Marshal())
	}
	return a.KnownHostsFile == b.KnownHostsFile && same(a.HostKey, b.HostKey) && same(a.HostCA, b.HostCA)
}

// forwardsCovered reports whether every port was lets the user forward to
// is granted by now with the same protocol.
func forwardsCovered(was, now *Grant) bool {
	for _, f := range was.Target.Forwards {
		if _, deny := was.Forward(uint32(f.Port)); deny != nil {
			continue
		}
		d, deny := now.Forward(uint32(f.Port))
		if deny != nil || d.Protocol != f.Protocol {
			return false
		}
	}
	return true
}

// remoteCovered reports whether now lets the user listen on every port
// was does, and on no port it declares (a declared port is refused to
// ssh -R) that was did not declare.
func remoteCovered(was, now *Grant) bool {
	if len(was.RemoteForwards) == 0 {
		return true
	}
	if slices.Contains(was.RemoteForwards, AnyDeclaredPort) {
		if !slices.Contains(now.RemoteForwards, AnyDeclaredPort) {
			return false
		}
	} else {
		for _, p := range was.RemoteForwards {
			if now.RemoteForward(uint32(p)) != nil {
				return false
			}
		}
	}
	for _, f := range now.Target.Forwards {
		if !declares(was.Target, uint32(f.Port)) {
			return false
		}
	}
	return true
}

// filePANsStrictness orders FilePANs values: allow, mask, block.
func filePANsStrictness(v string) int {
	switch v {
	case FilePANsAllow:
		return 0
	case FilePANsMask:
		return 1
	}
	return 2 // block, also ""
}
