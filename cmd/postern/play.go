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

	"golang.org/x/term"

	"github.com/postern/postern/recorder"
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
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("play: give one session ID or .cast file (see 'postern sessions')")
	}
	if *speed <= 0 {
		return usagef("play: --speed must be positive")
	}
	if *cat && (*from != 0 || *fromMatch != "") {
		// --cat prints the whole recording; ignoring a start the
		// operator asked for would show more than they expect.
		return usagef("play: --from and --from-match go with a replay, not --cat, which prints the whole recording")
	}
	if *raw && !*cat {
		return usagef("play: --raw goes with --cat only: a replay is for a terminal, and the recording must not reach one unfiltered")
	}
	open, closeStore, err := recordingSource(ctx, af, pos[0])
	if err != nil {
		return err
	}
	defer closeStore()
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
		if start, err = matchStart(r, *fromMatch, pos[0]); err != nil {
			return err
		}
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

// matchStart is where --from-match expr starts the replay of r (arg): just
// before the first output it matches, so the frames up to it are drawn at
// once.
func matchStart(r *recorder.Reader, expr, arg string) (time.Duration, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return 0, usagef("play: --from-match: %v", err)
	}
	hits, err := recorder.Grep(r, re, 1)
	if err != nil {
		return 0, err
	}
	if len(hits) == 0 {
		return 0, fmt.Errorf("no output in %s matches %q", arg, expr)
	}
	return max(time.Duration(hits[0].Time*float64(time.Second))-time.Millisecond, 0), nil
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

// recordingSource resolves a file path, or a session ID from the index:
// it returns a function that opens the recording for reading (the store
// checks that the index's name stays in the recordings; done closes it),
// and one that releases the store.
func recordingSource(ctx context.Context, af adminFlags, arg string) (open func() (r *recorder.Reader, done func(), err error), closeStore func(), err error) {
	name, openFile := arg, func() (io.ReadCloser, error) { return os.Open(arg) }
	closeStore = func() {}
	if strings.HasSuffix(arg, ".cast") || strings.ContainsRune(arg, os.PathSeparator) {
		if _, err := os.Stat(arg); err != nil {
			return nil, nil, err
		}
	} else if name, openFile, closeStore, err = indexRecording(ctx, af, arg); err != nil {
		return nil, nil, err
	}
	open = func() (*recorder.Reader, func(), error) {
		f, err := openFile()
		if err != nil {
			return nil, nil, err
		}
		r, err := recorder.NewReader(f)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		return r, func() { f.Close() }, nil
	}
	return open, closeStore, nil
}

// indexRecording looks session id up in the index and returns its
// recording's name and opener, and a function that releases the store.
func indexRecording(ctx context.Context, af adminFlags, id string) (string, func() (io.ReadCloser, error), func(), error) {
	store, _, closeStore, err := af.open(ctx, false)
	if err != nil {
		return "", nil, nil, err
	}
	s, err := store.Get(ctx, id)
	if errors.Is(err, recorder.ErrNotFound) {
		err = fmt.Errorf("no session %q in the index (see 'postern sessions')", id)
	}
	if err == nil {
		// The index names the recording; it must not lead out of the
		// recordings.
		if err = store.Check(ctx, s.Path); err != nil {
			err = fmt.Errorf("session %s not played: %w", visible(id), err)
		}
	}
	if err != nil {
		closeStore()
		return "", nil, nil, err
	}
	open := func() (io.ReadCloser, error) {
		r, err := store.Open(ctx, s.Path)
		var pe *recorder.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("session %s not played: %w", visible(id), err)
		}
		return r, err
	}
	return s.Path, open, closeStore, nil
}
