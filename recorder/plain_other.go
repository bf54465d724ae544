//go:build !amd64

package recorder

// hasAVX2 is false off amd64: appendJSONString scans words in Go.
const hasAVX2 = false

func plainLenAVX2(s []byte) int { panic("recorder: plainLenAVX2 off amd64") }
