package recorder

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func writeCast(t *testing.T, path string, outputs ...string) ([32]byte, int64) {
	t.Helper()
	w, err := Create(path, Header{Width: 100, Height: 30, Title: "alice → db01", Postern: &Meta{ID: "X-1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outputs {
		if err := w.Output([]byte(o)); err != nil {
			t.Fatal(err)
		}
	}
	w.Resize(120, 40)
	w.Marker("exit status 0")
	d, n, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return d, n
}

func TestWriterRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.cast")
	// A euro sign split across writes, control characters, quotes,
	// backslashes and an escape sequence.
	euro := "€"
	outputs := []string{"hello \"world\"\\\r\n", euro[:1], euro[1:] + "\x1b[31mred\x1b[0m\t\x00end"}
	digest, size := writeCast(t, path, outputs...)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != size {
		t.Fatalf("size %d, file %d", size, len(data))
	}
	if sum := sha256Hex(data); sum != hex.EncodeToString(digest[:]) {
		t.Fatal("digest does not match the file")
	}
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if r.Header.Version != 2 || r.Header.Width != 100 || r.Header.Postern.ID != "X-1" {
		t.Fatalf("header %+v", r.Header)
	}
	var out strings.Builder
	var kinds []string
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, ev.Kind)
		if ev.Kind == "o" {
			out.WriteString(ev.Data)
		}
		if ev.Kind == "r" && ev.Data != "120x40" {
			t.Fatalf("resize event %q", ev.Data)
		}
	}
	if got, want := out.String(), strings.Join(outputs, ""); got != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	if strings.Join(kinds, "") != "oorm" {
		t.Fatalf("event kinds %v: the split character must be held, not written as two events", kinds)
	}
	// Every line is valid JSON, as asciinema requires.
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("line %d is not JSON: %q", i+1, line)
		}
	}
}

func TestReaderTornLastLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.cast")
	writeCast(t, path, "one\r\n", "two\r\n")
	data, _ := os.ReadFile(path)
	torn := data[:len(data)-7] // inside the last event
	r, err := NewReader(bytes.NewReader(torn))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Cat(r, &buf); err != nil {
		t.Fatalf("cat of a torn file: %v", err)
	}
	if buf.String() != "one\r\ntwo\r\n" || !r.Torn() {
		t.Fatalf("got %q torn=%v", buf.String(), r.Torn())
	}
	// A bad line in the middle is an error, not silently skipped.
	bad := bytes.Replace(data, []byte(`"one\r\n"`), []byte(`"one`), 1)
	r, _ = NewReader(bytes.NewReader(bad))
	if err := Cat(r, io.Discard); err == nil {
		t.Fatal("corrupt middle line accepted")
	}
}

func TestFlushedWithinInterval(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.cast")
	w, err := Create(path, Header{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Output([]byte("visible-before-close"))
	deadline := time.Now().Add(5 * FlushInterval)
	for {
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte("visible-before-close")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("output not on disk within the flush interval")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPlayAndGrep(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.cast")
	w, _ := Create(path, Header{})
	clock := time.Unix(0, 0)
	w.now = func() time.Time { return clock }
	w.start = clock
	for i, s := range []string{"first line\r\n", "\x1b[1mneedle\x1b[0m here\r\n", "last\r\n"} {
		clock = clock.Add(time.Duration(i*10) * time.Second)
		w.Output([]byte(s))
	}
	w.Close()

	f, _ := os.Open(path)
	r, _ := NewReader(f)
	hits, err := Grep(r, regexp.MustCompile(`needle here`), 0)
	f.Close()
	if err != nil || len(hits) != 1 || hits[0].Time != 10 {
		t.Fatalf("hits %+v err %v; want one at 10s", hits, err)
	}
	// An idle limit caps the 20 s pause; speed makes it shorter still.
	f, _ = os.Open(path)
	r, _ = NewReader(f)
	var out bytes.Buffer
	start := time.Now()
	err = Play(context.Background(), r, &out, PlayOptions{Speed: 100, IdleLimit: time.Second}, nil)
	f.Close()
	if err != nil || !strings.HasSuffix(out.String(), "last\r\n") {
		t.Fatalf("play: %v %q", err, out.String())
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("play took %v with idle limit 1s at 100x", el)
	}
	// Quit key ends playback early; pause holds it.
	f, _ = os.Open(path)
	r, _ = NewReader(f)
	keys := make(chan byte, 2)
	keys <- KeyPause
	done := make(chan error, 1)
	out.Reset()
	go func() { done <- Play(context.Background(), r, &out, PlayOptions{}, keys) }()
	keys <- KeyQuit
	select {
	case err := <-done:
		if err != nil || strings.Contains(out.String(), "last") {
			t.Fatalf("quit: %v, output %q", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("q did not stop a paused playback")
	}
	f.Close()
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func newStore(t *testing.T) (*Local, string) {
	t.Helper()
	dir := t.TempDir()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir, Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// record makes one sealed recording in the store.
func record(t *testing.T, s *Local, id, text string) Session {
	t.Helper()
	rel := filepath.Join("recordings", "2026", "11", "25", id+".cast")
	rec := Session{ID: id, Session: id, Identity: "alice", Target: "db01", Login: "root", Kind: "shell", Start: time.Now(), Path: rel}
	if err := s.Begin(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	d, n := writeCast(t, filepath.Join(s.Dir(), rel), text)
	end := time.Now()
	rec.End, rec.SHA256, rec.Size = &end, hex.EncodeToString(d[:]), n
	if _, err := s.Finish(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	tamper := []struct {
		name   string
		do     func(t *testing.T, s *Local, rec Session)
		reason string
	}{
		{"byte flipped", func(t *testing.T, s *Local, rec Session) {
			p := filepath.Join(s.Dir(), rec.Path)
			data, _ := os.ReadFile(p)
			i := bytes.Index(data, []byte("secret"))
			data[i] ^= 1
			os.WriteFile(p, data, 0o600)
		}, "modified"},
		{"truncated", func(t *testing.T, s *Local, rec Session) {
			p := filepath.Join(s.Dir(), rec.Path)
			st, _ := os.Stat(p)
			os.Truncate(p, st.Size()-10)
		}, "truncated"},
		{"deleted", func(t *testing.T, s *Local, rec Session) {
			os.Remove(filepath.Join(s.Dir(), rec.Path))
		}, "deleted"},
		{"added", func(t *testing.T, s *Local, rec Session) {
			writeCast(t, filepath.Join(s.Dir(), "recordings", "2026", "11", "25", "ZZZ-1.cast"), "forged")
		}, "added"},
		{"index entry edited", func(t *testing.T, s *Local, rec Session) {
			rec.Identity = "mallory"
			if err := s.update(t.Context(), func(tx *bolt.Tx) error { return putJSON(tx, rec.ID, rec) }); err != nil {
				t.Fatal(err)
			}
		}, "index entry edited"},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t)
			record(t, s, "01A-1", "nothing to see\r\n")
			rec := record(t, s, "01B-1", "the secret output\r\n")
			rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil || len(rep.Problems) != 0 || rep.Recordings != 2 || rep.ChainEntries != 4 { // each: begin and seal
				t.Fatalf("untouched store: %+v %v", rep, err)
			}
			tt.do(t, s, rec)
			rep, err = VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != 1 || rep.Problems[0].Reason != tt.reason {
				t.Fatalf("problems %v, want exactly one %q", rep.Problems, tt.reason)
			}
			if tt.reason != "added" && rep.Problems[0].Path != rec.Path {
				t.Fatalf("problem names %q, want %q", rep.Problems[0].Path, rec.Path)
			}
		})
	}
}

func TestInterruptedAndPrune(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	old := record(t, s, "01A-1", "old\r\n")
	// A session the bastion was killed in: Begin, a partial file, no Finish.
	rel := filepath.Join("recordings", "x", "01C-1.cast")
	s.Begin(t.Context(), Session{ID: "01C-1", Start: time.Now(), Path: rel})
	w, _ := Create(filepath.Join(dir, rel), Header{})
	w.Output([]byte("partial"))
	w.Close()
	ids, err := s.MarkInterrupted(t.Context())
	if err != nil || len(ids) != 1 || ids[0] != "01C-1" {
		t.Fatalf("interrupted %v %v", ids, err)
	}
	got, _ := s.Get(t.Context(), "01C-1")
	if got.Status != StatusInterrupted || got.SHA256 == "" {
		t.Fatalf("interrupted record %+v", got)
	}
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()}); len(rep.Problems) != 0 {
		t.Fatalf("verify after interruption: %v", rep.Problems)
	}
	// Prune what ended before now+1s: both go, the chain says so, and
	// verify stays clean.
	pruned, head, err := Prune(t.Context(), s, time.Now().Add(time.Second))
	if err != nil || len(pruned) != 2 {
		t.Fatalf("pruned %v %v", pruned, err)
	}
	if h, _ := s.Head(t.Context()); head == nil || h == nil || *head != *h {
		t.Fatalf("prune returned head %v, the chain's is %v", head, h)
	}
	if _, err := os.Stat(filepath.Join(dir, old.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pruned file still there: %v", err)
	}
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify after prune: %v %v", rep.Problems, err)
	}
	// Nothing newer is pruned.
	record(t, s, "01D-1", "new\r\n")
	if pruned, head, _ := Prune(t.Context(), s, time.Now().Add(-time.Hour)); len(pruned) != 0 || head != nil {
		t.Fatalf("pruned a recent session: %v (head %v)", pruned, head)
	}
}

// TestVerifyAnchorsAndKey: anchors catch a chain cut short or rewritten,
// and signatures are checked with the key given, not the store's own.
func TestVerifyAnchorsAndKey(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	record(t, s, "01A-1", "one\r\n")
	record(t, s, "01B-1", "two\r\n")
	key := VerifyOptions{Key: s.PublicKey()}
	rep, err := VerifyStore(t.Context(), s, key)
	if err != nil || len(rep.Problems) != 0 || rep.Head == nil || rep.Head.Seq != 3 {
		t.Fatalf("clean: %+v %v", rep, err)
	}
	head := *rep.Head
	if h, err := ParseChainHead(head.String()); err != nil || h != head {
		t.Fatalf("ParseChainHead(%q) = %v, %v", head.String(), h, err)
	}
	if _, err := VerifyStore(t.Context(), s, VerifyOptions{}); err == nil {
		t.Fatal("verify without a key succeeded")
	}
	// A read-only store verifies with the public key alone.
	if rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey(), Anchors: []ChainHead{head, {Seq: 0, SHA256: rep.Head.SHA256}}}); err != nil ||
		len(rep.Problems) != 1 || rep.Problems[0].Reason != "chain rewritten" || rep.Problems[0].ID != "chain entry 0" {
		t.Fatalf("anchor on the wrong entry: %+v %v", rep, err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	// Every entry's signature is bad, and then no begin entry vouches
	// for either session: both are named too.
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: other}); len(rep.Problems) != 6 || rep.Problems[0].Reason != "bad signature" || rep.Problems[3].Reason != "bad signature" ||
		rep.Problems[4].Reason != "sealed without a begin entry" || rep.Problems[5].Reason != "sealed without a begin entry" {
		t.Fatalf("another key: %v", rep.Problems)
	}
	// The chain grows: the old head still anchors it.
	record(t, s, "01C-1", "three\r\n")
	if rep, _ := VerifyStore(t.Context(), s, VerifyOptions{Key: key.Key, Anchors: []ChainHead{head}}); len(rep.Problems) != 0 || rep.Head.Seq != 5 {
		t.Fatalf("grown chain: %+v", rep)
	}
	// The last entry moved to another key, its value untouched.
	move := func(from, to uint64) {
		t.Helper()
		err := s.update(t.Context(), func(tx *bolt.Tx) error {
			var kf, kt [8]byte
			binary.BigEndian.PutUint64(kf[:], from)
			binary.BigEndian.PutUint64(kt[:], to)
			b := tx.Bucket(bucketChain)
			v := bytes.Clone(b.Get(kf[:]))
			if err := b.Delete(kf[:]); err != nil {
				return err
			}
			return b.Put(kt[:], v)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	move(5, 1000)
	if rep, _ := VerifyStore(t.Context(), s, key); len(rep.Problems) != 1 || rep.Problems[0].Reason != "chain out of sequence" {
		t.Fatalf("entry under the wrong key: %v", rep.Problems)
	}
	move(1000, 5)
	// Cut back to one session (its begin and seal), index and file included.
	err = s.update(t.Context(), func(tx *bolt.Tx) error {
		for _, id := range []string{"01B-1", "01C-1"} {
			tx.Bucket(bucketSessions).Delete([]byte(id))
			os.Remove(filepath.Join(dir, "recordings", "2026", "11", "25", id+".cast"))
		}
		c := tx.Bucket(bucketChain).Cursor()
		for k, _ := c.Last(); len(k) == 8 && k[7] > 1; k, _ = c.Last() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep, _ := VerifyStore(t.Context(), s, key); len(rep.Problems) != 0 {
		t.Fatalf("a consistent cut passes without an anchor, by design: %v", rep.Problems)
	}
	rep, _ = VerifyStore(t.Context(), s, VerifyOptions{Key: key.Key, Anchors: []ChainHead{head}})
	if len(rep.Problems) != 1 || rep.Problems[0].Reason != "chain truncated" || rep.Problems[0].ID != "chain entry 3" {
		t.Fatalf("cut chain with its anchor: %v", rep.Problems)
	}
	for _, bad := range []string{"", "1", "x:" + head.SHA256, "1:abc", "-1:" + head.SHA256} {
		if _, err := ParseChainHead(bad); err == nil {
			t.Errorf("ParseChainHead(%q) accepted", bad)
		}
	}
}

// TestVerifyFlagsSecondSeal: an old recording edited and sealed anew with
// the audit key passes its anchor (the chain only grew) but not verify: a
// session is sealed once.
func TestVerifyFlagsSecondSeal(t *testing.T) {
	t.Parallel()
	s, dir := newStore(t)
	rec := record(t, s, "01A-1", "genuine\r\n")
	record(t, s, "01B-1", "later\r\n")
	rep, err := VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey()})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("clean: %v %v", rep.Problems, err)
	}
	anchor := *rep.Head
	path := filepath.Join(dir, rec.Path)
	os.Remove(path)
	d, n := writeCast(t, path, "forged\r\n")
	rec.SHA256, rec.Size = hex.EncodeToString(d[:]), n
	if _, err := s.Finish(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	rep, _ = VerifyStore(t.Context(), s, VerifyOptions{Key: s.PublicKey(), Anchors: []ChainHead{anchor}})
	if len(rep.Problems) != 1 || rep.Problems[0].Reason != "sealed twice" || rep.Problems[0].Path != rec.Path {
		t.Fatalf("re-sealed recording: %v", rep.Problems)
	}
}
