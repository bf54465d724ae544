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

// rsyncTestCmd and rsyncTestServerHello are a real download's command line
// and the start of its server stream: version 32, compat flags 0x1ff, the
// checksum list and a seed.
const rsyncTestCmd = "rsync --server --sender -logDtpre.iLsfxCIvu . /src/"

var rsyncTestServerHello = []byte("\x20\x00\x00\x00\x81\xff\x23xxh128 xxh3 xxh64 md5 md4 sha1 none\x70\x8d\x12\x6b")

var rsyncTestClientHello = []byte("\x20\x00\x00\x00\x1exxh128 xxh3 xxh64 md5 md4 sha1")

func rsyncFrame(tag int, payload string) []byte {
	n := len(payload)
	h := []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(tag + rsyncMplexBase)}
	return append(h, payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRsyncStreamBroken(t *testing.T) {
	t.Parallel()
	mask := func(p []byte) []byte {
		return bytes.ReplaceAll(p, []byte("4111111111111111"), []byte("411111******1111"))
	}
	// refusePAN scans everything Data saw so far, as a scanner with
	// carry-over would.
	refusePAN := func() func(p []byte) ([]byte, error) {
		var seen []byte
		return func(p []byte) ([]byte, error) {
			if seen = append(seen, p...); bytes.Contains(seen, []byte("4111111111111111")) {
				return nil, errors.New("card number in download")
			}
			return p, nil
		}
	}
	hello := rsyncTestServerHello
	tests := []struct {
		name   string
		server []byte
		valid  int    // how many leading bytes are valid; -1: a prefix without the card number
		data   bool   // the Data hook refuses "4111"
		want   string // in the user message
	}{
		{name: "bash", server: []byte("bash: cannot set terminal process group (1): Inappropriate ioctl for device\nbash: no job control in this shell\n$ "), want: "protocol version"},
		{name: "version then text", server: cat(hello[:4], []byte("$ id\nuid=0(root)\n")), valid: 4, want: "compat flags"},
		{name: "bogus tag", server: cat(hello, rsyncFrame(0, "ok"), []byte{1, 0, 0, 50 + rsyncMplexBase, 'x'}), valid: len(hello) + 6, want: "unknown message type 50"},
		{name: "local-only tag", server: cat(hello, rsyncFrame(rsyncMsgStatsTest, "12345678")), valid: len(hello), want: "unknown message type 10"},
		{name: "tag below base", server: cat(hello, []byte{0, 0, 0, 3}), valid: len(hello), want: "not a multiplexed frame"},
		{name: "oversize text", server: cat(hello, rsyncFrame(rsyncMsgInfo, strings.Repeat("a", rsyncMaxText+1))), valid: len(hello), want: "of 5120 bytes"},
		{name: "oversize fixed", server: cat(hello, rsyncFrame(rsyncMsgIOError, "12345")), valid: len(hello), want: "of 5 bytes"},
		{name: "plain PAN after hello", server: cat(hello, []byte(rsyncTestPAN+"\n")), valid: len(hello), want: "unknown message type"},
		{name: "PAN in data", server: cat(hello, rsyncFrame(0, "abc"), rsyncFrame(0, rsyncTestPAN)), valid: -1, data: true, want: ""},
		{name: "bad strings", server: cat(hello[:6], []byte("\x05x;y z")), valid: 6, want: "negotiation string"},
		{name: "flags without caps", server: cat(hello[:4], []byte{0x81, 0x7f}), valid: 4, want: "compat flags"},
		{name: "old protocol", server: []byte{29, 0, 0, 0}, want: "older than 30"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for seed := range uint64(20) {
				rng := rand.New(rand.NewPCG(seed, 7))
				h := rsyncHooks{Text: mask}
				if tt.data {
					h.Data = refusePAN()
				}
				r, err := newRsyncStream(rsyncTestCmd, h)
				if err != nil {
					t.Fatal(err)
				}
				if out, err := r.fromClient(rsyncTestClientHello[:4]); err != nil || !bytes.Equal(out, rsyncTestClientHello[:4]) {
					t.Fatalf("client version: %q, %v", out, err)
				}
				var got []byte
				var ferr error
				for i := 0; i < len(tt.server) && ferr == nil; {
					n := min(1+rng.IntN(40), len(tt.server)-i)
					var out []byte
					out, ferr = r.fromServer(tt.server[i : i+n])
					got = append(got, out...)
					i += n
				}
				if ferr == nil {
					t.Fatalf("seed %d: no error; released %q", seed, got)
				}
				if tt.valid < 0 && !bytes.HasPrefix(tt.server, got) {
					t.Fatalf("seed %d: released %q, not a prefix of the input", seed, got)
				}
				if tt.valid >= 0 && !bytes.Equal(got, tt.server[:tt.valid]) {
					t.Fatalf("seed %d: released %q, want %q", seed, got, tt.server[:tt.valid])
				}
				if bytes.Contains(got, []byte("4111111111111111")) {
					t.Fatalf("seed %d: card number released", seed)
				}
				var ue interface{ UserMessage() string }
				if tt.want != "" {
					if !errors.As(ferr, &ue) || !strings.Contains(ue.UserMessage(), tt.want) || !strings.HasPrefix(ue.UserMessage(), "postern: the rsync stream broke protocol (") {
						t.Fatalf("seed %d: error %v, want a user message with %q", seed, ferr, tt.want)
					}
				}
				if out, err := r.fromServer(hello); err == nil || len(out) > 0 {
					t.Fatalf("after an error: %q, %v", out, err)
				}
			}
		})
	}
}

const rsyncMsgStatsTest = 10 // MSG_STATS: only between a receiver and its generator

func TestRsyncStreamText(t *testing.T) {
	t.Parallel()
	var seen rsyncSeen
	h := seen.hooks()
	h.Text = func(p []byte) []byte {
		seen.texts++
		return bytes.ReplaceAll(p, []byte("4111111111111111"), []byte("411111******1111"))
	}
	r, err := newRsyncStream(rsyncTestCmd, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.fromClient(rsyncTestClientHello[:4]); err != nil {
		t.Fatal(err)
	}
	msg := rsyncFrame(rsyncMsgError, "rsync: open \"/src/"+rsyncTestPAN+"\" failed\n")
	in := cat(rsyncTestServerHello, msg, rsyncFrame(rsyncMsgErrorExit, ""), rsyncFrame(rsyncMsgNoop, ""))
	var got []byte
	for i := range in {
		out, err := r.fromServer(in[i : i+1])
		if err != nil {
			t.Fatalf("at %d: %v", i, err)
		}
		got = append(got, out...)
	}
	if len(got) != len(in) || bytes.Contains(got, []byte("4111111111111111")) || !bytes.Contains(got, []byte("411111******1111")) {
		t.Fatalf("released %q", got)
	}
	// One call per string of the handshake and one for the message.
	if seen.texts != 2 {
		t.Fatalf("Text called %d times, want 2", seen.texts)
	}
}

func TestRsyncStreamClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		client []byte
		valid  int
		want   string
	}{
		{name: "typing", client: cat(rsyncTestClientHello[:4], []byte("ls -la\n")), valid: 4, want: "compat flags"},
		{name: "typing after strings", client: cat(rsyncTestClientHello, []byte("ls -la\n")), valid: len(rsyncTestClientHello), want: "unknown message type"},
		{name: "timeout from client", client: cat(rsyncTestClientHello, rsyncFrame(rsyncMsgIOTimeout, "abcd")), valid: len(rsyncTestClientHello), want: "type 33"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := newRsyncStream(rsyncTestCmd, rsyncHooks{})
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			out, err := r.fromClient(tt.client[:4])
			got = append(got, out...)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "compat flags" {
				if _, err := r.fromServer(rsyncTestServerHello); err != nil {
					t.Fatal(err)
				}
			}
			out, err = r.fromClient(tt.client[4:])
			got = append(got, out...)
			var ue interface{ UserMessage() string }
			if !errors.As(err, &ue) || !strings.Contains(ue.UserMessage(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if !bytes.Equal(got, tt.client[:tt.valid]) {
				t.Fatalf("released %q, want %q", got, tt.client[:tt.valid])
			}
		})
	}
}

func TestRsyncCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmd      string
		ok       bool
		compress bool
	}{
		{"rsync --server -logDtpre.iLsfxCIvu . /tmp/x/", true, false},
		{"rsync --server --sender -vlogDtpre.iLsfxCIvu . /path", true, false},
		{"/usr/bin/rsync --server --sender -logDtprze.iLsfxCIvu . /p", true, true},
		{"rsync --server --sender -logDtpre.iLsfxCIvu --new-compress . /p", true, true},
		{"rsync --server -logDtpre.iLsfxCIvu --compress-choice=zstd . /p", true, true},
		{"rsync --server -logDtpre.iLsfxCIvu --zc=none . /p", true, false},
		{"rsync --server -logDtpre.iLsfxCIvu --compress-level=3 . /p", true, true},
		{"rsync --server -logDtpre.iLsfxCIvu . /a\\ b/c\\;d", true, false},
		{"rsync --server -e.LsfxCIvu . /x -z", true, true}, // rsync reads options after the paths too
		{"rsync --server . x; cat cards", false, false},
		{"rsync --server . x && bash -i", false, false},
		{"rsync --server . $(bash)", false, false},
		{"rsync --server . `id`", false, false},
		{"rsync --server . x\nbash", false, false},
		{"rsync --server . x\\", false, false},
		{"rsync --server --daemon .", false, false},
		{"rsync -av a b", false, false},
		{"bash -i", false, false},
		{"echo rsync --server", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		r, err := newRsyncStream(tt.cmd, rsyncHooks{})
		if (err == nil) != tt.ok {
			t.Errorf("newRsyncStream(%q): %v, want ok=%v", tt.cmd, err, tt.ok)
			continue
		}
		if err == nil && r.compressed() != tt.compress {
			t.Errorf("newRsyncStream(%q).compressed() = %v, want %v", tt.cmd, r.compressed(), tt.compress)
		}
	}
}

func FuzzRsyncStream(f *testing.F) {
	f.Add(uint8(0), rsyncTestClientHello, cat(rsyncTestServerHello, rsyncFrame(0, "abc"), rsyncFrame(rsyncMsgInfo, "hi\n")), uint64(1))
	f.Add(uint8(1), cat(rsyncTestClientHello, rsyncFrame(0, "\x00\x00")), cat(rsyncTestServerHello, rsyncFrame(rsyncMsgErrorExit, "")), uint64(2))
	f.Add(uint8(2), []byte("rsync\x00--zc=zstd\x00.\x00/x\x00\x00\x20\x00\x00\x00"), []byte("bash: no job control\n$ "), uint64(3))
	f.Add(uint8(0), rsyncTestClientHello, cat(rsyncTestServerHello, []byte{0xff, 0xff, 0xff, 7}), uint64(4))
	cmds := []string{
		rsyncTestCmd,
		"rsync --server -logDtprze.iLsfxCIvu . /dst/",
		"rsync --server -slogDtpre.iLsfxCIvu",
		"rsync --server --sender -logDtpr . /src/",
	}
	f.Fuzz(func(t *testing.T, which uint8, client, server []byte, seed uint64) {
		r, err := newRsyncStream(cmds[int(which)%len(cmds)], rsyncHooks{
			Text: func(p []byte) []byte { return p },
			Data: func(p []byte) ([]byte, error) { return p, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, 0))
		var ci, si int
		var cout, sout []byte
		var cerr, serr error
		for (ci < len(client) && cerr == nil) || (si < len(server) && serr == nil) {
			n := 1 + rng.IntN(64)
			if ci < len(client) && cerr == nil && (si >= len(server) || serr != nil || rng.IntN(2) == 0) {
				n = min(n, len(client)-ci)
				var out []byte
				out, cerr = r.fromClient(client[ci : ci+n])
				cout = append(cout, out...)
				ci += n
			} else {
				n = min(n, len(server)-si)
				var out []byte
				out, serr = r.fromServer(server[si : si+n])
				sout = append(sout, out...)
				si += n
			}
			if cerr != nil || serr != nil {
				break // the stream is over
			}
			if ci-len(cout) > rsyncMaxHold || si-len(sout) > rsyncMaxHold {
				t.Fatalf("holding %d and %d bytes", ci-len(cout), si-len(sout))
			}
		}
		if !bytes.HasPrefix(client, cout) || !bytes.HasPrefix(server, sout) {
			t.Fatalf("output is not a prefix of the input")
		}
		if cerr != nil || serr != nil {
			if out, err := r.fromServer([]byte{0}); err == nil || len(out) > 0 {
				t.Fatalf("stream goes on after an error")
			}
		}
	})
}
