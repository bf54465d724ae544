package approval

import (
	"crypto/rand"
	"fmt"
	"slices"
	"time"
)

// A request is what a held command or an access request becomes: it waits
// in a Broker until enough authorised approvers say yes, one says no, it
// expires, or its requester goes away.

// Request kinds.
const (
	KindCommand = "command" // a command line held before it runs
	KindAccess  = "access"  // just-in-time access to a target for a while
	KindSQL     = "sql"     // a SQL statement of a postgres forward, held before it reaches the server
)

// Request states. Pending is the only state that changes.
const (
	StatePending   = "pending"
	StateApproved  = "approved"
	StateDenied    = "denied"
	StateExpired   = "expired"   // no decision before its deadline
	StateCancelled = "cancelled" // the requester left while it was pending
	StateAbandoned = "abandoned" // pending when the bastion stopped
)

// Request is one approval request. Its fields are set when it is submitted,
// except State, Decisions, Decided and GrantUntil, which the Broker keeps.
// The zero value is not a valid request; Submit fills ID, State and
// Created.
type Request struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`

	// Requester is the requester's display name; RequesterPrincipals are
	// all the principals of the certificate it connected with: an
	// approver who holds any of them is the requester.
	Requester           string   `json:"requester"`
	RequesterPrincipals []string `json:"requester_principals"`
	Target              string   `json:"target"`
	Login               string   `json:"login"`
	// Session is the session the held command belongs to ("" for an
	// access request).
	Session string `json:"session,omitempty"`
	// Line is the command line, as masked as everything else the bastion
	// stores.
	Line string `json:"line,omitempty"`
	// Database and DBUser are the database and the PostgreSQL user a
	// held SQL statement runs as (KindSQL only; from the client's startup
	// message, masked).
	Database string `json:"database,omitempty"`
	DBUser   string `json:"db_user,omitempty"`
	// Reason is the requester's, and Why the bastion's: the rule's notice
	// (why the line could not be judged, say).
	Reason string `json:"reason,omitempty"`
	Why    string `json:"why,omitempty"`

	// Rule names the rule that asked for approval; Approvers are its
	// approver groups and Required how many distinct approvers it needs.
	Rule      string   `json:"rule"`
	Approvers []string `json:"approvers"`
	Required  int      `json:"required"`

	// For is how long access lasts once approved (KindAccess only).
	For time.Duration `json:"for_ns,omitempty"`

	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`

	State     string     `json:"state"`
	Decisions []Decision `json:"decisions,omitempty"`
	// Decided is when the request left StatePending.
	Decided *time.Time `json:"decided,omitempty"`
	// GrantUntil is when an approved access request stops granting access.
	GrantUntil *time.Time `json:"grant_until,omitempty"`
}

// Decision is one approver's yes or no.
type Decision struct {
	By string `json:"by"`
	// Principals are all the principals of the approver's certificate:
	// one person with two certificates is still one approver.
	Principals []string  `json:"principals,omitempty"`
	Approve    bool      `json:"approve"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"`
}

// Approver is who decides: the display name, every principal of the
// certificate, and its groups.
type Approver struct {
	Name       string
	Principals []string
	Groups     []string
}

// clone returns a copy of r that shares no slices with it.
func (r Request) clone() Request {
	r.RequesterPrincipals = slices.Clone(r.RequesterPrincipals)
	r.Approvers = slices.Clone(r.Approvers)
	r.Decisions = slices.Clone(r.Decisions)
	if r.Decided != nil {
		t := *r.Decided
		r.Decided = &t
	}
	if r.GrantUntil != nil {
		t := *r.GrantUntil
		r.GrantUntil = &t
	}
	return r
}

// approvals counts the distinct approvers who said yes.
func (r *Request) approvals() int {
	n := 0
	for _, d := range r.Decisions {
		if d.Approve {
			n++
		}
	}
	return n
}

// idAlphabet is lower-case Crockford base32: no i, l, o or u, so an ID read
// aloud or retyped is not mistaken.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// newID returns a random request ID of 10 characters (50 bits).
func newID() string {
	var b [10]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = idAlphabet[b[i]&31]
	}
	return string(b[:])
}

// ValidID reports whether s has the form of a request ID, so that what a
// user typed is checked before it is looked up or echoed.
func ValidID(s string) bool {
	if len(s) != 10 {
		return false
	}
	for i := range len(s) {
		if !containsByte(idAlphabet, s[i]) {
			return false
		}
	}
	return true
}

func containsByte(s string, c byte) bool {
	for i := range len(s) {
		if s[i] == c {
			return true
		}
	}
	return false
}

// RefusedError is a decision the Broker refused: self-approval, an
// approver outside the rule's groups, a second yes from the same person, a
// request no longer pending. Its message is for the approver.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// UserMessage is the line the approver sees.
func (e *RefusedError) UserMessage() string { return e.Msg }

func refused(format string, args ...any) error {
	return &RefusedError{Msg: fmt.Sprintf(format, args...)}
}
