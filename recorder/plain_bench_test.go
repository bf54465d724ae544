package recorder

import (
	"bytes"
	"testing"
)

func BenchmarkPlainLenAVX2(b *testing.B) {
	long := bytes.Repeat([]byte("abcdefgh"), 4096)
	short := []byte("some terminal text 0123456789 abcdef\nsome terminal text")
	b.Run("long", func(b *testing.B) {
		b.SetBytes(int64(len(long)))
		for b.Loop() {
			plainLenAVX2(long)
		}
	})
	b.Run("short", func(b *testing.B) {
		for b.Loop() {
			plainLenAVX2(short)
		}
	})
}
