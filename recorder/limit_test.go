package recorder

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// An event that would pass the limit is refused whole, a marker too; final
// markers still go in, and the file is exactly what Size said plus them.
func TestWriterLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.cast")
	w, err := Create(path, Header{})
	if err != nil {
		t.Fatal(err)
	}
	w.SetLimit(w.Size() + 1000)
	var refused bool
	for range 100 {
		if err := w.Output(bytes.Repeat([]byte{0}, 50)); errors.Is(err, ErrLimit) {
			refused = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	at := w.Size()
	if !refused || at > w.limit {
		t.Fatalf("refused %v at size %d, limit %d", refused, at, w.limit)
	}
	if err := w.Marker("a marker past the limit"); !errors.Is(err, ErrLimit) {
		t.Fatalf("marker past the limit: %v, want ErrLimit", err)
	}
	if err := w.FinalMarker("limit reached"); err != nil {
		t.Fatalf("marker past the limit: %v", err)
	}
	_, size, err := w.Close()
	data, _ := os.ReadFile(path)
	if err != nil || size != int64(len(data)) || size <= at || !bytes.HasSuffix(data, []byte("\"m\", \"limit reached\"]\n")) {
		t.Fatalf("closed: size %d, file %d bytes, err %v; tail %q", size, len(data), err, data[max(0, len(data)-60):])
	}
}
