package bastion

import (
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
	"github.com/postern/postern/recorder"
)

// sentToClient is how many bytes of target output the channels of s's
// connections have taken so far.
func sentToClient(s *Server) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for c := range s.conns {
		for _, st := range c.live.all() {
			n += st.bytesOut.Load()
		}
	}
	return n
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A client that stops reading while the target writes without end holds
// the target back (SSH windows, RFC 4254 §5.2): the bastion takes about
// two windows of output and its heap does not grow with what the target
// would send. Not parallel: the heap is the whole test binary's.
func TestClientThatStopsReadingHoldsTargetBack(t *testing.T) {
	h := env(t)
	store := openStore(t, t.TempDir(), h.auth.AuditKey)
	b := h.extraServer(t, Config{Policy: h.policy, Recording: &Recording{Store: store}})
	client := b.dialGo(t, h.alice, "root@t1")
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	before := heapInUse()
	const total = 64 << 20
	if err := sess.Start("echo backpressure-test; head -c 67108864 /dev/zero | tr '\\0' x"); err != nil {
		t.Fatal(err)
	}
	// The pipeline fills: the client's window (2 MiB in x/crypto) and
	// what the bastion holds.
	testenv.WaitFor(t, 20*time.Second, func() bool { return sentToClient(b.srv) >= 2<<20 })
	// Then it stays full for a while: sampled 20 times over a second, the
	// bastion takes no more than windows' worth and the heap stays flat.
	var peakSent int64
	var peakHeap uint64
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range 20 {
		<-tick.C
		peakSent = max(peakSent, sentToClient(b.srv))
		peakHeap = max(peakHeap, heapInUse())
	}
	grew := int64(peakHeap) - int64(before)
	t.Logf("client not reading: bastion took %d bytes of output; heap %d -> peak %d (%+d bytes)", peakSent, before, peakHeap, grew)
	if peakSent > 8<<20 {
		t.Fatalf("the bastion took %d bytes for a client that does not read: want at most 8 MiB (windows and the recording queue)", peakSent)
	}
	if grew > 24<<20 {
		t.Fatalf("heap grew by %d bytes while the client did not read: want bounded (under 24 MiB)", grew)
	}
	// Reading again, everything arrives.
	n, err := io.Copy(io.Discard, stdout)
	if err != nil || n != int64(len("backpressure-test\n"))+total {
		t.Fatalf("read %d bytes (%v), want %d", n, err, len("backpressure-test\n")+total)
	}
	if err := sess.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	h.findRecording(t, store, func(s recorder.Session) bool { return s.Kind == "exec" && s.Size > total })
}
