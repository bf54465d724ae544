//go:build !amd64

package recorder

// hasAVX2 is false off amd64: appendJSONString escapes in Go alone.
const hasAVX2 = false

func escapeAVX2(dst, src []byte) (nd, ns int) { panic("recorder: escapeAVX2 off amd64") }
