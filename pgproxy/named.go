package pgproxy

import "errors"

// Caps on what the relay keeps of a connection's prepared statements and
// portals, for the Executes that run them.
const (
	maxNamed      = 4096     // names of each kind
	maxNamedBytes = 64 << 20 // bytes of statement text or parameters, of each kind
)

// ErrTooMany ends a connection that keeps more prepared statements or
// portals open than the relay keeps texts for: forgetting one instead
// would let a later Execute of it run unrecorded.
var ErrTooMany = errors.New("pgproxy: more prepared statements or portals are open than the relay keeps")

// tooManyMessage is what the client is told when ErrTooMany ends its
// connection.
const tooManyMessage = "postern: more than 4096 prepared statements or portals (or 64 MiB of their text) are open on this connection; close some with the protocol's Close (a driver's Deallocate)"

// named is what the relay keeps of prepared statements or portals, by
// name, within maxNamed and maxNamedBytes: a name past them is refused,
// none is forgotten. The zero value is not ready: use newNamed. Used by
// the client's reader only.
type named[V any] struct {
	m     map[string]V
	bytes int
	size  func(V) int
}

func newNamed[V any](size func(V) int) *named[V] {
	return &named[V]{m: map[string]V{}, size: size}
}

// put keeps v under name (replacing what was), or reports ErrTooMany.
func (n *named[V]) put(name string, v V) error {
	old, ok := n.m[name]
	bytes := n.bytes + len(name) + n.size(v)
	if ok {
		bytes -= len(name) + n.size(old)
	}
	if !ok && len(n.m) >= maxNamed || bytes > maxNamedBytes {
		return ErrTooMany
	}
	n.m[name], n.bytes = v, bytes
	return nil
}

// del forgets name (the client closed it).
func (n *named[V]) del(name string) {
	if v, ok := n.m[name]; ok {
		n.bytes -= len(name) + n.size(v)
		delete(n.m, name)
	}
}
