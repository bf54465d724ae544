package recorder

import "golang.org/x/sys/cpu"

// hasAVX2 says whether escapeAVX2 may run on this processor.
var hasAVX2 = cpu.X86.HasAVX2

// escapeAVX2 copies src to dst as JSON string text, 32 bytes at a time,
// escaping line feeds, carriage returns, tabs, quotes and backslashes on
// the way. It stops at the first byte it leaves to the caller (any other
// control character, and 0x80 and above: UTF-8 to check), when fewer than
// 32 bytes of src are left, or when dst has fewer than 64 bytes of room
// left. It returns how many bytes it wrote to dst and consumed of src. It
// needs len(src) >= 32 and len(dst) >= 64; it writes past what it reports
// (each block is stored before it is tested), never past len(dst).
//
//go:noescape
func escapeAVX2(dst, src []byte) (nd, ns int)
