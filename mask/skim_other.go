//go:build !amd64

package mask

// hasSkimAVX2 is false off amd64: skimRun runs skimRun8 alone.
const hasSkimAVX2 = false

func skimAVX2(b []byte, j, hs, cnt int) (int, int, int) {
	panic("mask: skimAVX2 off amd64")
}
