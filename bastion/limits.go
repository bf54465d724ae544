package bastion

import (
	"errors"
	"fmt"
	"time"
)

// A bastion is the most attacked host of a network: anyone who can reach
// its port can make it spend memory, descriptors and CPU before proving
// who they are. Limits bound what a client may hold at each stage:
//
//   - before authentication: a connection past Startups (OpenSSH's
//     MaxStartups, random early drop between Start and Full) or past
//     StartupsPerSource from its address is closed as soon as it is
//     accepted, before any key exchange; HandshakeTimeout (Config) bounds
//     how long one may take to authenticate;
//   - failed logins: AuthFailures from one address within
//     AuthFailureWindow close its further connections at accept for
//     AuthBlock;
//   - after authentication: MaxConns in total and MaxConnsPerIdentity
//     per certificate identity, refused with one line the user's ssh
//     shows; MaxChannels per connection, refused at channel open with
//     the reason.
//
// A source is an IPv4 address or an IPv6 /64 (what one host is usually
// given). Every refusal goes through Server.refused, which names the limit
// and writes aggregated audit records (refusals.go).

// Limit names: the "limit" attribute of a limit_refused audit record, and
// the config keys that set them.
const (
	LimitStartups          = "max_startups"
	LimitStartupsPerSource = "max_startups_per_source"
	LimitAuthFailures      = "auth_failures"
	LimitConns             = "max_connections"
	LimitConnsPerIdentity  = "max_connections_per_identity"
	LimitChannels          = "max_channels_per_connection"
)

// DefaultHandshakeTimeout is Config.HandshakeTimeout's default: time
// enough for a user at a slow link to have their agent sign, far less than
// OpenSSH's two minutes (LoginGraceTime), which let idle connections pile
// up.
const DefaultHandshakeTimeout = 30 * time.Second

// Startups is OpenSSH's MaxStartups "start:rate:full" for unauthenticated
// connections: below Start every connection is accepted; from Start a new
// one is dropped with probability Rate percent, rising linearly to 100
// percent at Full, from which every new one is dropped.
type Startups struct {
	Start, Rate, Full int
}

func (s Startups) String() string { return fmt.Sprintf("%d:%d:%d", s.Start, s.Rate, s.Full) }

// Limits are the connection limits; see the comment above. A zero field
// means its value in DefaultLimits. Negative values are refused by New.
type Limits struct {
	// Startups caps the connections not yet authenticated.
	Startups Startups
	// StartupsPerSource caps the connections not yet authenticated from
	// one source.
	StartupsPerSource int
	// AuthFailures failed logins (connections that ended without
	// authenticating, after offering something that was refused) from
	// one source within AuthFailureWindow block that source for
	// AuthBlock. A certificate the bastion verified but whose holder the
	// policy refused is not a failure: its holder is known.
	AuthFailures      int
	AuthFailureWindow time.Duration
	AuthBlock         time.Duration
	// FailureSources is how many sources the failure table remembers,
	// the least recently failed forgotten first.
	FailureSources int
	// MaxConns caps the authenticated connections (proxy and admin)
	// open at once; MaxConnsPerIdentity those of one identity (the
	// certificate's first principal).
	MaxConns            int
	MaxConnsPerIdentity int
	// MaxChannels caps the channels (sessions and forwards) one
	// connection has open at once.
	MaxChannels int
}

// DefaultLimits are the limits a zero Limits field means. Startups and
// StartupsPerSource leave room for tools that open many connections at
// once from one host (ansible's forks): a handshake takes milliseconds,
// so only a flood holds this many open. MaxChannels leaves room above
// maxForwards, the cap on forwarded connections alone.
var DefaultLimits = Limits{
	Startups:            Startups{Start: 64, Rate: 30, Full: 256},
	StartupsPerSource:   32,
	AuthFailures:        10,
	AuthFailureWindow:   time.Minute,
	AuthBlock:           2 * time.Minute,
	FailureSources:      10000,
	MaxConns:            1000,
	MaxConnsPerIdentity: 64,
	MaxChannels:         128,
}

// withDefaults fills the zero fields of l from DefaultLimits and checks
// the result.
func (l Limits) withDefaults() (Limits, error) {
	d := DefaultLimits
	if l.Startups == (Startups{}) {
		l.Startups = d.Startups
	}
	fill := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fillDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&l.StartupsPerSource, d.StartupsPerSource)
	fill(&l.AuthFailures, d.AuthFailures)
	fillDur(&l.AuthFailureWindow, d.AuthFailureWindow)
	fillDur(&l.AuthBlock, d.AuthBlock)
	fill(&l.FailureSources, d.FailureSources)
	fill(&l.MaxConns, d.MaxConns)
	fill(&l.MaxConnsPerIdentity, d.MaxConnsPerIdentity)
	fill(&l.MaxChannels, d.MaxChannels)
	if err := l.Startups.Check(); err != nil {
		return l, err
	}
	if l.StartupsPerSource < 0 || l.AuthFailures < 0 || l.FailureSources < 0 || l.MaxConns < 0 ||
		l.MaxConnsPerIdentity < 0 || l.MaxChannels < 0 || l.AuthFailureWindow < 0 || l.AuthBlock < 0 {
		return l, errors.New("negative limit")
	}
	return l, nil
}

// Check reports whether s is a usable start:rate:full.
func (s Startups) Check() error {
	if s.Start < 1 || s.Full < s.Start || s.Rate < 0 || s.Rate > 100 {
		return fmt.Errorf("max_startups %s is not start:rate:full with 1 <= start <= full and rate a percentage from 0 to 100", s)
	}
	return nil
}
