package recorder

import (
	"crypto/ed25519"
	"crypto/rand"
	"strconv"
	"testing"
	"time"
)

func BenchmarkBeginFinish(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s, err := OpenStore(b.TempDir(), Options{Key: key})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := Session{ID: "bench-" + strconv.Itoa(i), Start: time.Now(), Path: "recordings/x/" + strconv.Itoa(i) + ".cast"}
		if err := s.Begin(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Finish(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
	}
}
