package mask

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Attack 8: the echo release (Config.Echo) as a user who types keys the
// target does not echo (after stty -echo, at a read -s or password
// prompt) and then has it print a card number they do not know.

// echoOf is an Echo that takes the tail for the echo of typed, once: the
// first tail that is a prefix of what is left of it.
func echoOf(typed string) func([]byte) bool {
	return func(tail []byte) bool {
		if !strings.HasPrefix(typed, string(tail)) {
			return false
		}
		typed = typed[len(tail):]
		return true
	}
}

// The user types a card's first six digits (its BIN, which is public)
// with echo off; the target prints the card, those six digits and then
// the ten others, at once (no deadline here). Releasing the six early
// must not start the judgement over: the ten after them are ten digits
// of the same number, not a new stream too short to be a card. A flush
// would start over, so without a Preview (a session that is neither
// recorded nor judged by approval rules) the whole number was shown.
func TestAttack8EchoReleaseKeepsJudgingTheNumber(t *testing.T) {
	t.Parallel()
	const pan, bin = "4539148803436467", "453914"
	for _, preview := range []bool{false, true} {
		var main, prev bytes.Buffer
		cfg := Config{Deadline: time.Hour, Echo: echoOf(bin)}
		client := &main
		if preview {
			cfg.Preview, client = &prev, &prev
		}
		w := NewWriter(&main, cfg)
		w.Write([]byte("card: " + bin))
		if client.String() != "card: "+bin {
			t.Fatalf("preview %v: the typed digits are not shown at once: %q", preview, client.String())
		}
		w.Write([]byte(pan[len(bin):]))
		w.Write([]byte("\r\n"))
		w.Close()
		if want := "card: 453914******6467\r\n"; client.String() != want {
			t.Errorf("preview %v: the client got %q, want %q", preview, client.String(), want)
		}
	}
}

// What the echo release cannot avoid (README, PAN masking): digits the
// user typed are shown as typed, so a user who types a guess of the
// digits the target is about to print, with echo off, sees their guess
// on the screen where it was right and the mask where it was not: one
// guess a print. The digits shown are the user's own; every digit after
// the first wrong guess is masked, and the recording's copy masks them
// all.
func TestAttack8EchoGuessIsShownAsTyped(t *testing.T) {
	t.Parallel()
	const pan = "4539148803436467"
	for _, c := range []struct{ guess, want string }{
		{"4539148", "4539148*****6467"}, // right: the guess is shown
		{"4539140", "************6467"}, // wrong: all masked as usual
	} {
		var main, prev bytes.Buffer
		w := NewWriter(&main, Config{Mode: ModeLast4, Deadline: time.Hour, Preview: &prev, Echo: echoOf(c.guess)})
		w.Write([]byte(pan[:len(c.guess)]))
		w.Write([]byte(pan[len(c.guess):] + "\n"))
		w.Close()
		if prev.String() != c.want+"\n" || main.String() != "************6467\n" {
			t.Errorf("guess %s: the client got %q, want %q; the recording %q", c.guess, prev.String(), c.want+"\n", main.String())
		}
	}
}
