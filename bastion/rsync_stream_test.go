package bastion

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

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
