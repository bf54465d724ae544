package bastion

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/creack/pty"
)

// BenchmarkShellEnter measures what judging lines adds to Enter: the time
// from an unflagged line's Enter to its output, through a bastion with
// approval rules (each line judged) and through one without (nothing
// read). Compare the two in one run: loopback figures are noisy.
func BenchmarkShellEnter(b *testing.B) {
	ensureBashUser(b)
	h := env(b)
	for _, c := range []struct {
		name string
		h    *harness
	}{
		{"rules", newShellEnv(b).harness},
		{"norules", h.extraServer(b, Config{Policy: shellPolicy(h)})},
	} {
		b.Run(c.name, func(b *testing.B) { benchEnter(b, c.h) })
	}
}

func benchEnter(b *testing.B, h *harness) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	args := append(h.opts(h.alice), "-tt", "-p", strconv.Itoa(h.port), bashUser+"@t1@127.0.0.1")
	cmd := exec.CommandContext(ctx, h.sshBin, args...)
	cmd.Env = append(os.Environ(), "TERM=xterm")
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 100})
	if err != nil {
		b.Fatal(err)
	}
	defer tty.Close()
	chunks := make(chan []byte, 64)
	go func() { // ends when the terminal closes
		defer close(chunks)
		for {
			buf := make([]byte, 4096)
			n, err := tty.Read(buf)
			if err != nil {
				return
			}
			chunks <- buf[:n]
		}
	}()
	var seen []byte
	// until reads the terminal until it shows s; what follows s stays.
	until := func(s string) {
		timeout := time.NewTimer(20 * time.Second)
		defer timeout.Stop()
		for {
			if i := bytes.Index(seen, []byte(s)); i >= 0 {
				seen = seen[i+len(s):]
				return
			}
			select {
			case p, ok := <-chunks:
				if !ok {
					b.Fatalf("terminal closed waiting for %q: %q", s, seen)
				}
				seen = append(seen, p...)
			case <-timeout.C:
				b.Fatalf("waiting for %q; terminal:\n%q", s, seen)
			}
		}
	}
	until(shellPrompt)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		line := "echo $((" + strconv.Itoa(1000000+i) + "+1))"
		b.StopTimer()
		tty.Write([]byte(line)) // typed, echoed: then Enter
		until(line)
		b.StartTimer()
		start := time.Now()
		tty.Write([]byte("\r"))
		until(strconv.Itoa(1000001+i) + "\r\n")
		lat = append(lat, time.Since(start))
		until(shellPrompt)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	tty.Write([]byte("exit\r"))
	cmd.Wait()
}
