package bastion

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern/postern/internal/testenv"
)

const rsyncTestPAN = "card 4111111111111111 end"

// rsyncCaptureScript stands in for ssh: it runs the server command it is
// given and copies what each side sends into c2s and s2c. Each tee writes its
// file before it passes the bytes on (tee writes its standard output first,
// and that is the file here), so when the client has seen the end, so has
// the file.
const rsyncCaptureScript = `#!/bin/bash
shift # the host
d=$(dirname "$0")
printf '%s' "$*" > "$d/cmd"
mkfifo "$d/in" "$d/out"
exec 3<&0
tee "$d/in" > "$d/c2s" <&3 &
cat "$d/out" &
c=$!
"$@" < "$d/in" | tee "$d/out" > "$d/s2c"
code=${PIPESTATUS[0]}
wait $c
exit $code
`

type rsyncCapture struct {
	cmd      string
	c2s, s2c []byte
	stderr   string
}

// captureRsync runs the real rsync client with args (a remote path is
// written "h:/path") and returns the command and the two streams.
func captureRsync(t *testing.T, rsync string, wantCode int, args ...string) rsyncCapture {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "rsh")
	if err := os.WriteFile(script, []byte(rsyncCaptureScript), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rsync, append([]string{"-e", script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("rsync %v: %v", args, err)
	}
	if code != wantCode {
		t.Fatalf("rsync %v: exit %d, want %d: %s", args, code, wantCode, stderr.String())
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return rsyncCapture{cmd: string(read("cmd")), c2s: read("c2s"), s2c: read("s2c"), stderr: stderr.String()}
}

// rsyncTestTree writes a few files of random bytes, one with a card number
// in it, and returns the directory.
func rsyncTestTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"a.bin":       random(100_000),
		"sub/b.bin":   random(3000),
		"sub/c.bin":   random(1),
		"pan.bin":     append(append(random(4000), rsyncTestPAN...), random(4000)...),
		"empty.bin":   nil,
		"sub/big.bin": random(300_000),
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// rsyncSeen records what the hooks saw.
type rsyncSeen struct {
	data, text bytes.Buffer
	texts      int
}

func (s *rsyncSeen) hooks() rsyncHooks {
	return rsyncHooks{
		Text: func(p []byte) []byte { s.text.Write(p); s.text.WriteByte('\n'); s.texts++; return p },
		Data: func(p []byte) ([]byte, error) { s.data.Write(p); return p, nil },
	}
}

// rsyncHandshakeEnds returns where the client's version ends and where the
// server's compat flags end: the points before which the other side cannot
// go on, so a replay must feed them in that order.
func rsyncHandshakeEnds(t *testing.T, c rsyncCapture) (clientVersion, serverFlags int) {
	t.Helper()
	clientVersion = 4
	if strings.Contains(c.cmd, " -s") {
		i := bytes.Index(c.c2s, []byte{0, 0})
		if i < 0 {
			t.Fatal("no end of secluded arguments")
		}
		clientVersion = i + 2 + 4
	}
	if len(c.s2c) < 5 {
		t.Fatalf("server stream too short: %q", c.s2c)
	}
	return clientVersion, 4 + 1 + rsyncVarintExtra(c.s2c[4])
}

// replayRsync feeds a capture through a validator in random chunks from both
// directions (respecting the handshake's order) and returns what each
// direction released.
func replayRsync(t *testing.T, r *rsyncStream, c rsyncCapture, seed uint64) (client, server []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cv, sf := rsyncHandshakeEnds(t, c)
	var ci, si int
	feed := func(toC, toS int) {
		for ci < toC || si < toS {
			n := 1 + rng.IntN(600)
			if rng.IntN(8) == 0 {
				n = 1 + rng.IntN(70_000)
			}
			if ci < toC && (si >= toS || rng.IntN(2) == 0) {
				n = min(n, toC-ci)
				out, err := r.fromClient(c.c2s[ci : ci+n])
				if err != nil {
					t.Fatalf("fromClient at %d: %v", ci, err)
				}
				client = append(client, out...)
				ci += n
			} else {
				n = min(n, toS-si)
				out, err := r.fromServer(c.s2c[si : si+n])
				if err != nil {
					t.Fatalf("fromServer at %d: %v", si, err)
				}
				server = append(server, out...)
				si += n
			}
		}
	}
	feed(cv, 4)
	feed(cv, sf)
	feed(len(c.c2s), len(c.s2c))
	return client, server
}

func TestRsyncRealTraffic(t *testing.T) {
	rsync := testenv.Require(t, "rsync")
	src := rsyncTestTree(t)
	tests := []struct {
		name     string
		args     []string // "SRC" and "DST" are replaced
		download bool
		compress bool
		code     int
		wantText string // a text message the server must send
	}{
		{name: "upload", args: []string{"-a", "SRC/", "h:DST/"}},
		{name: "upload -z", args: []string{"-az", "SRC/", "h:DST/"}, compress: true},
		{name: "upload secluded zstd", args: []string{"-a", "-s", "--zc=zstd", "SRC/", "h:DST/"}, compress: true},
		{name: "download", args: []string{"-a", "h:SRC/", "DST/"}, download: true},
		{name: "download -v", args: []string{"-av", "--checksum-choice=md5", "h:SRC/", "DST/"}, download: true},
		{name: "download -z", args: []string{"-az", "h:SRC/", "DST/"}, download: true, compress: true},
		{name: "download --new-compress", args: []string{"-a", "--new-compress", "h:SRC/", "DST/"}, download: true, compress: true},
		{name: "download secluded", args: []string{"-a", "-s", "h:SRC/", "DST/"}, download: true},
		// By default a server writes its messages to standard error; this
		// makes it send them in the stream.
		{name: "download missing file", args: []string{"-a", "--no-msgs2stderr", "h:SRC/pan.bin", "h:SRC/missing", "DST/"}, download: true, code: 23, wantText: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := t.TempDir()
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.NewReplacer("SRC", src, "DST", dst).Replace(a)
			}
			c := captureRsync(t, rsync, tt.code, args...)
			if tt.download != strings.Contains(c.cmd, "--sender") {
				t.Fatalf("command %q: download is %v", c.cmd, tt.download)
			}
			for seed := range uint64(4) {
				var seen rsyncSeen
				r, err := newRsyncStream(c.cmd, seen.hooks())
				if err != nil {
					t.Fatalf("newRsyncStream(%q): %v", c.cmd, err)
				}
				client, server := replayRsync(t, r, c, seed)
				if r.compressed() != tt.compress {
					t.Errorf("compressed() = %v, want %v (%q)", r.compressed(), tt.compress, c.cmd)
				}
				if !bytes.Equal(client, c.c2s) {
					t.Fatalf("seed %d: client stream changed: %d bytes in, %d out", seed, len(c.c2s), len(client))
				}
				if !bytes.Equal(server, c.s2c) {
					t.Fatalf("seed %d: server stream changed: %d bytes in, %d out", seed, len(c.s2c), len(server))
				}
				if tt.download && !tt.compress && !bytes.Contains(seen.data.Bytes(), []byte(rsyncTestPAN)) {
					t.Errorf("seed %d: Data did not see the file with the card number (%d bytes seen)", seed, seen.data.Len())
				}
				if tt.wantText != "" && !strings.Contains(seen.text.String(), tt.wantText) {
					t.Errorf("seed %d: Text saw %q, want a message with %q", seed, seen.text.String(), tt.wantText)
				}
			}
		})
	}
}
