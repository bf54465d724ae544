package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/postern/postern/recorder"
	"golang.org/x/term"
)

func cmdPlay(ctx context.Context, args []string, stdin io.Reader, stdout, _ io.Writer) error {
	fs := newFlags("play", "play [flags] ID|FILE", stdout)
	af := addAdminFlags(fs)
	speed := fs.Float64("speed", 1, "playback speed factor")
	idle := fs.Duration("idle-limit", 0, "cap pauses between frames at this `duration` (e.g. 2s)")
	from := fs.Duration("from", 0, "start at this offset (`duration` into the session)")
	fromMatch := fs.String("from-match", "", "start just before the first output matching `regex`")
	cat := fs.Bool("cat", false, "print the output without timing, like asciinema cat, less what would act on\na terminal (see --raw)")
	raw := fs.Bool("raw", false, "with --cat: print the output exactly as recorded, including the terminal\nqueries, clipboard writes (OSC 52), DCS and other strings that are cut\notherwise. For a file or a pipe to a program, never for a terminal: those\nsequences would make it answer, or change its clipboard")
	// Flags may follow the ID: `postern play ID --cat`.
	var pos []string
	for rest := args; ; {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return usagef("play: give one session ID or .cast file (see 'postern sessions')")
	}
	if *speed <= 0 {
		return usagef("play: --speed must be positive")
	}
	if *raw && !*cat {
		return usagef("play: --raw goes with --cat only: a replay is for a terminal, and the recording must not reach one unfiltered")
	}
	path, err := recordingPath(af, pos[0])
	if err != nil {
		return err
	}
	open := func() (*recorder.Reader, func(), error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, err
		}
		r, err := recorder.NewReader(f)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return r, func() { f.Close() }, nil
	}
	r, done, err := open()
	if err != nil {
		return err
	}
	defer func() { done() }() // done is replaced when --from-match reopens the file
	if *cat && *raw {
		return recorder.Cat(r, stdout)
	}
	// The recording was sent to someone else's terminal: it must not
	// query or change this one (design invariant 7).
	screen := recorder.NewTerminalFilter(stdout)
	if *cat {
		return recorder.Cat(r, screen)
	}
	start := *from
	if *fromMatch != "" {
		re, err := regexp.Compile(*fromMatch)
		if err != nil {
			return usagef("play: --from-match: %v", err)
		}
		hits, err := recorder.Grep(r, re, 1)
		if err != nil {
			return err
		}
		if len(hits) == 0 {
			return fmt.Errorf("no output in %s matches %q", pos[0], *fromMatch)
		}
		// Just before the hit: the frames up to it are drawn at once.
		start = max(time.Duration(hits[0].Time*float64(time.Second))-time.Millisecond, 0)
		done()
		if r, done, err = open(); err != nil {
			return err
		}
	}
	keys, restore := terminalKeys(stdin)
	defer restore()
	if keys != nil {
		// The recording may have hidden the cursor or left colours
		// set: undo that too.
		// Leave the terminal as the replay found it, whatever the
		// recording set: colours, cursor, main screen, no bracketed
		// paste.
		defer io.WriteString(stdout, "\x1b[0m\x1b[?25h\x1b[?2004l\x1b[?1049l")
	}
	err = recorder.Play(ctx, r, screen, recorder.PlayOptions{Speed: *speed, IdleLimit: *idle, From: start}, keys)
	if errors.Is(err, context.Canceled) {
		return nil // SIGINT or SIGTERM: a normal way to stop watching
	}
	return err
}

// terminalKeys puts a terminal stdin into raw mode and delivers key presses;
// restore puts the terminal back (deferred, so it runs on q, Ctrl-C, the
// end of the recording and errors alike). A non-terminal stdin gives no
// keys.
func terminalKeys(stdin io.Reader) (<-chan byte, func()) {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, func() {}
	}
	old, err := term.MakeRaw(int(f.Fd()))
	if err != nil {
		return nil, func() {}
	}
	keys := make(chan byte, 16)
	// The reader goroutine blocks in Read and ends when the process
	// does: a terminal read cannot be cancelled portably.
	go func() {
		var b [1]byte
		for {
			if n, err := f.Read(b[:]); err != nil || n == 0 {
				close(keys)
				return
			}
			select {
			case keys <- b[0]:
			default: // a key pressed faster than playback handles is dropped
			}
		}
	}()
	return keys, func() { term.Restore(int(f.Fd()), old) }
}

// recordingPath resolves a session ID (from the index) or a file path.
func recordingPath(af adminFlags, arg string) (string, error) {
	if strings.HasSuffix(arg, ".cast") || strings.ContainsRune(arg, os.PathSeparator) {
		if _, err := os.Stat(arg); err != nil {
			return "", err
		}
		return arg, nil
	}
	store, err := af.store(false)
	if err != nil {
		return "", err
	}
	s, err := store.Get(arg)
	if errors.Is(err, recorder.ErrNotFound) {
		return "", fmt.Errorf("no session %q in the index (see 'postern sessions')", arg)
	}
	if err != nil {
		return "", err
	}
	// The index names the file; it must not lead out of the recordings.
	path, err := store.RecordingFile(s.Path)
	if err != nil {
		return "", fmt.Errorf("session %s not played: %w", visible(arg), err)
	}
	return path, nil
}
