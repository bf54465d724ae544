// Package approval will hold flagged commands until an authorised approver
// decides. Not implemented yet.
package approval
