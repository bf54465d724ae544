package bastion

import (
	"errors"

	"golang.org/x/crypto/ssh"
)

// request forwards one client request on a session channel to the target
// and relays the answer (RFC 4254 §6). Requests that start a program go to
// startProgram.
func (st *channel) request(r *ssh.Request) {
	c := st.c
	if c.refuseRequest(r, st) { // what the certificate does not permit: permit.go
		return
	}
	switch r.Type {
	case "shell", "exec", "subsystem":
		st.startProgram(r)
		return
	}
	payload, forward := st.filterRequest(r)
	if !forward {
		st.reply(r, false)
		return
	}
	ok, err := st.uch.SendRequest(r.Type, r.WantReply, payload)
	st.reply(r, ok && err == nil)
}

// filterRequest decides a request that does not start a program: what is
// forwarded is re-marshalled from what was parsed, nothing unread.
func (st *channel) filterRequest(r *ssh.Request) ([]byte, bool) {
	c := st.c
	switch r.Type {
	case "pty-req":
		// RFC 4254 §6.2: TERM, columns, rows, pixel sizes, modes.
		var pty struct {
			Term       string
			Cols, Rows uint32
			W, H       uint32
			Modes      string
		}
		if ssh.Unmarshal(r.Payload, &pty) != nil {
			return nil, false
		}
		pty.Cols, pty.Rows = st.judgedSize(pty.Cols, pty.Rows)
		st.setPty(pty.Term, int(pty.Cols), int(pty.Rows))
		return ssh.Marshal(&pty), true
	case "window-change":
		// RFC 4254 §6.7: columns, rows, pixel sizes.
		var wc struct{ Cols, Rows, W, H uint32 }
		if ssh.Unmarshal(r.Payload, &wc) != nil {
			return nil, false
		}
		wc.Cols, wc.Rows = st.judgedSize(wc.Cols, wc.Rows)
		st.resize(int(wc.Cols), int(wc.Rows))
		return ssh.Marshal(&wc), true
	case "signal":
		// RFC 4254 §6.9: signal name.
		var sig struct{ Name string }
		if ssh.Unmarshal(r.Payload, &sig) != nil {
			return nil, false
		}
		return ssh.Marshal(&sig), true
	case "break":
		// RFC 4335: break length in milliseconds.
		var b struct{ Ms uint32 }
		if ssh.Unmarshal(r.Payload, &b) != nil {
			return nil, false
		}
		return ssh.Marshal(&b), true
	case agentRequestType:
		// Allowed by refuseRequest: agentfwd.go.
		return st.agentRequest(r)
	case "env":
		// RFC 4254 §6.4: string name, string value.
		var env struct{ Name, Value string }
		if ssh.Unmarshal(r.Payload, &env) == nil && env.Name == ReasonEnv {
			st.setReason(env.Value) // for the bastion, not the target
			return nil, false
		}
		if ssh.Unmarshal(r.Payload, &env) == nil && c.envAllowed(env.Name) {
			return ssh.Marshal(&env), true
		}
		c.log.Debug("env refused", "name", logSafe(env.Name))
		return nil, false
	}
	// Anything unknown (x11-req was refused by refuseRequest, and so was
	// auth-agent-req@openssh.com unless the user may forward an agent).
	c.log.Info("session request refused", "request", logSafe(r.Type))
	return nil, false
}

// program is what a start request asks to run, as parsed.
type program struct {
	kind    string // shell, exec, sftp, scp, rsync
	command string // exec's command line, as sent
	payload []byte // what goes to the target: re-marshalled from the parse
}

// errMalformedExec refuses an exec request whose payload is not one string
// (RFC 4254 §6.5): forwarding it raw would pass bytes nobody read.
var errMalformedExec = errors.New("malformed exec request: its command is not an SSH string")

// parseProgram parses a shell, exec or subsystem request. An error refuses
// the program.
func parseProgram(r *ssh.Request) (program, error) {
	switch r.Type {
	case "exec":
		var cmd struct{ Command string }
		if ssh.Unmarshal(r.Payload, &cmd) != nil {
			return program{}, errMalformedExec
		}
		p := program{kind: "exec", command: cmd.Command, payload: ssh.Marshal(&cmd)}
		if _, ok := scpDirection(cmd.Command); ok {
			p.kind = "scp"
		} else if isRsyncServer(cmd.Command) {
			p.kind = "rsync"
		}
		return p, nil
	case "subsystem":
		// Only sftp gets here (sftpSubsystem).
		return program{kind: "sftp", payload: ssh.Marshal(&struct{ Name string }{"sftp"})}, nil
	}
	return program{kind: "shell"}, nil
}

// sftpSubsystem reports whether r names the sftp subsystem, the only one
// the bastion knows how to parse.
func (st *channel) sftpSubsystem(r *ssh.Request) bool {
	var sub struct{ Name string }
	if ssh.Unmarshal(r.Payload, &sub) == nil && sub.Name == "sftp" {
		return true
	}
	st.c.log.Info("subsystem refused", "subsystem", logSafe(sub.Name))
	return false
}

// startProgram is the one gate where a shell, exec or subsystem starts
// (RFC 4254 §6.5): it parses the request, chooses the channel's pipeline
// (terminal or transfer) and opens its recording, and only then sends the
// request to the target. A program that is held (approvals) waits here.
func (st *channel) startProgram(r *ssh.Request) {
	if r.Type == "subsystem" && !st.sftpSubsystem(r) {
		st.reply(r, false)
		return
	}
	// One program per session channel: a second start could run
	// unmasked under the first one's transfer state, or unrecorded.
	if !st.started.CompareAndSwap(false, true) {
		st.reply(r, false)
		return
	}
	held := false
	defer func() {
		if !held {
			st.setReady() // after the reply: input and output may flow
		}
	}()
	p, err := parseProgram(r)
	if err == nil {
		// The command goes into the recording and the index, not
		// the log: it may hold secrets, and logs never hold PANs.
		st.c.log.Info(r.Type, "channel", st.n, "command_bytes", len(p.command))
		err = st.choosePipeline(p)
	} else {
		err = st.refuse(err.Error())
	}
	if err != nil {
		st.refuseProgram(r)
		return
	}
	if st.gate(r, p) {
		held = true // the gate closes ready when the channel may go on
		return
	}
	// A start request always asks the target for a reply, whatever the
	// client asked: if the target refuses, the channel ends rather than
	// keep a transfer or recording state for a program that never ran.
	ok, err := st.uch.SendRequest(r.Type, true, p.payload)
	st.reply(r, ok && err == nil)
	if !ok || err != nil {
		st.c.log.Info("target refused the session's program", "request", r.Type, "channel", st.n)
		st.uch.Close()
	}
}

// refuseProgram ends a channel whose program was refused: the request
// never reaches the target. It is answered "success" so that the client
// reads the notice: OpenSSH exits on a failed exec without printing data it
// already received. The channel then closes without an exit status (ssh
// exits 255). Nothing else writes to the channel yet, as the target has not
// started anything.
func (st *channel) refuseProgram(r *ssh.Request) {
	st.reply(r, true)
	st.ch.Stderr().Write([]byte(userMessage(st.failure(), "postern: the program was refused") + "\r\n"))
	st.noticeSent.Store(true)
	st.uch.Close()
}

// replier is a client channel that sends request replies itself: a test's
// wrapper that sees every frame in wire order (Server.wrapChannel).
type replier interface {
	reply(r *ssh.Request, ok bool) error
}

// reply answers a client request on this channel, if it wants an answer.
func (st *channel) reply(r *ssh.Request, ok bool) {
	if !r.WantReply {
		return
	}
	if rp, isReplier := st.ch.(replier); isReplier {
		rp.reply(r, ok)
		return
	}
	r.Reply(ok, nil)
}

func (st *channel) setPty(term string, cols, rows int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.pty = ptyState{requested: true, term: term, cols: cols, rows: rows}
}

// resize notes a window change and records it once the program runs. It
// runs on the request goroutine, as startProgram does, so st.rec is set or
// not for good.
func (st *channel) resize(cols, rows int) {
	st.mu.Lock()
	st.pty.cols, st.pty.rows = cols, rows
	st.mu.Unlock()
	if st.lines != nil && st.lines.t != nil {
		st.lines.t.Resize(cols, rows)
	}
	if err := st.rec.resize(cols, rows); err != nil {
		st.fail(err)
	}
}

func (st *channel) ptyState() ptyState {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pty
}

// choosePipeline sets the channel's pipeline for program p, once: a file
// transfer is not recorded byte by byte (masking would corrupt it), so
// the channel must then speak the protocol the command claims, checked
// both ways (transfer.go); anything else is a terminal (stream.go).
func (st *channel) choosePipeline(p program) error {
	st.kind = p.kind
	// What is stored of the command line is masked like output.
	shown := p.command
	if mode, ok := st.c.maskMode(); ok {
		shown = maskText(shown, mode, st.c.maskDetect())
	}
	switch p.kind {
	case "scp":
		op, _ := scpDirection(p.command)
		return st.startTransfer("scp", shown, func(env *transferEnv) (transfer, error) {
			return newSCPStream(env, op, p.command), nil
		})
	case "rsync":
		return st.startTransfer("rsync", shown, func(env *transferEnv) (transfer, error) {
			return newRsyncTransfer(env, p.command)
		})
	case "sftp":
		return st.startTransfer("sftp", "", func(env *transferEnv) (transfer, error) {
			return newSFTPStream(env), nil
		})
	}
	return st.startTerminal(p.kind, shown)
}
