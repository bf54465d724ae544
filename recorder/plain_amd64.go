package recorder

import "golang.org/x/sys/cpu"

// hasAVX2 says whether plainLenAVX2 may run on this processor.
var hasAVX2 = cpu.X86.HasAVX2

// plainLenAVX2 returns the index of the first byte of s that needs
// escaping or UTF-8 decoding in a JSON string (below 0x20, '"', '\\', or
// 0x80 and above), looking at whole 32-byte blocks only: with none in
// them, it returns len(s) rounded down to a multiple of 32.
//
//go:noescape
func plainLenAVX2(s []byte) int
