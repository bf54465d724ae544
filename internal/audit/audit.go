// Package audit names the events Postern writes to its audit trail and
// writes them to one sink.
//
// Every decision the bastion makes (a connection allowed or denied, a
// program started or refused, a transfer, a forward, a recording sealed, a
// certificate issued) is one record: an [Event] and its attributes. The sink
// today is the structured log: a record is an Info line with audit=true and
// event=NAME, and it carries the logger's own attributes (the connection
// ID, user and target), so one grep finds a connection's whole trail.
//
// Attribute values that may hold user input must already be masked by the
// caller; the bastion's log handler masks card numbers once more on the way
// out.
package audit

import (
	"context"
	"log/slog"
)

// Event is the name of one kind of audit record. Names are stable: log
// pipelines and auditors match on them.
type Event string

// Connection events.
const (
	// Connect: a client finished (or failed) authentication; allowed says
	// which, reason why not. Failures before anyone was identified are
	// aggregated per stage and source (count, repeated), like
	// LimitRefused.
	Connect Event = "connect"
	// Disconnect: a connection ended, with its duration and cause.
	Disconnect Event = "disconnect"
	// Upstream: the bastion could not reach the target.
	Upstream Event = "upstream"
	// Forward: a direct-tcpip request, allowed or refused.
	Forward Event = "forward"
	// ForwardEnd: a forwarded connection ended: bytes each way,
	// duration, why, and for a postgres forward the database, user and
	// statement counts.
	ForwardEnd Event = "forward_end"
	// Admin: a built-in command run on an admin connection.
	Admin Event = "admin_command"
	// ChannelRefused: a channel the connection's route has no handler
	// for, or one over a limit, refused at open.
	ChannelRefused Event = "channel_refused"
	// Ended: the bastion ended a live connection on its own; cause says
	// why (certificate_expired, certificate_revoked) and notice what the
	// user was told.
	Ended Event = "connection_ended"
	// ConfigReload: SIGHUP reloaded the policy (ok=true: the config's
	// digest, targets added and removed, rule counts, connections ended)
	// or refused a config (ok=false, why; the one in force stays).
	ConfigReload Event = "config_reload"
	// Agent: the target opened a channel to the user's forwarded agent
	// (ssh -A), allowed or refused and why.
	Agent Event = "agent"
	// AgentOp: one request the target made of the forwarded agent: list,
	// sign (the key's fingerprint and what was signed), session-bind, or
	// a refused one (add, remove, lock, ...), and the agent's answer.
	AgentOp Event = "agent_op"
	// AgentEnd: an agent channel ended: requests relayed and refused,
	// bytes each way, duration, why.
	AgentEnd Event = "agent_end"
	// LimitRefused: a connection or channel refused by a limit (limit
	// names which, source the client's address or IPv6 /64). The first
	// refusal of a limit and source in a minute is recorded with
	// count=1; the others are counted and recorded together with
	// repeated=true, count and since.
	LimitRefused Event = "limit_refused"
)

// Session channel events.
const (
	SessionRequest Event = "session_request"
	SessionEnd     Event = "session_end"
	ProgramRefused Event = "program_refused"
	// LineRefused: a line typed into a terminal that a deny rule refused
	// (or an approve rule, when nothing can hold it).
	LineRefused     Event = "line_refused"
	RecordingStart  Event = "recording_start"
	RecordingEnd    Event = "recording_end"
	RecordingSealed Event = "recording_sealed"
	RecordingFailed Event = "recording_failed"
	TransferStart   Event = "transfer_start"
	TransferStopped Event = "transfer_stopped"
	// SessionLimit: a session limit was reached (limit names it:
	// max_session_duration, recording_max_size, min_free_disk) and
	// action says what the bastion did: refused, ended,
	// recording_stopped, or warned (the user, before the end).
	SessionLimit Event = "session_limit"
)

// Index events, written when the bastion starts.
const (
	// RecordingInterrupted: a session the previous run left open was
	// sealed as interrupted.
	RecordingInterrupted Event = "recording_interrupted"
	// ChainHead: where the audit chain stands, an anchor for verify.
	ChainHead Event = "chain_head"
)

// Certificate events.
const (
	// CertIssued: a user certificate was signed (identity, principals,
	// serial, validity, who ran it).
	CertIssued Event = "cert_issued"
	// CertRefused: a certificate request (a login) was refused: the
	// client's address, the identity when the token named one, the
	// HTTP status and why. Each is also sealed in the audit chain.
	CertRefused Event = "cert_refused"
	// CertRevoked: a serial, or a key ID and so every certificate with
	// it, was revoked (reason, who); new=false when it was already.
	CertRevoked Event = "cert_revoked"
)

// Approval events.
const (
	// Approval: an approval request changed: change says how (requested,
	// decision, approved, denied, expired, cancelled, abandoned), with the
	// request's ID, requester, target, rule and, for a decision, who and
	// why. Each is also sealed in the audit chain.
	Approval Event = "approval"
)

// TransferFile is the event for one file a transfer of kind ("sftp",
// "scp", "rsync") moved or listed; TransferOp for any other operation
// (rename, remove, mkdir, ...).
func TransferFile(kind string) Event { return Event(kind + "_file") }

// TransferOp: see [TransferFile].
func TransferOp(kind string) Event { return Event(kind + "_op") }

// Record writes one audit record of event e to log. A nil log discards it.
func Record(log *slog.Logger, e Event, attrs ...any) {
	if log == nil {
		return
	}
	log.Log(context.Background(), slog.LevelInfo, "audit", append([]any{"audit", true, "event", string(e)}, attrs...)...)
}
