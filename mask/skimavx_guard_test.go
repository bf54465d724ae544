//go:build linux

package mask

import (
	"syscall"
	"testing"
)

// guarded returns a copy of b that ends where an unreadable page starts,
// so that a read past its end faults.
func guarded(t *testing.T, b []byte) []byte {
	t.Helper()
	pg := syscall.Getpagesize()
	n := (len(b) + pg - 1) / pg * pg
	m, err := syscall.Mmap(-1, 0, n+pg, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Munmap(m) })
	if err := syscall.Mprotect(m[n:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	g := m[n-len(b) : n : n]
	copy(g, b)
	return g
}
