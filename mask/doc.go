// Package mask will find primary account numbers (PANs) in byte streams and
// replace their middle digits before any byte leaves the bastion. It is pure
// and imports only the standard library. Not implemented yet: see the
// "Streaming PAN masking" issue.
package mask
