package mask

import (
	"testing"
)

// Attack 6: ways a card number reaches a terminal (tmux 3.x was used to
// check what each input shows) without a digit masked. Each case names
// what the terminal draws.

type attack6Case struct {
	name, in, screen string
}

// attack6Expect fails for every case whose input the masker (terminal
// output, or typed input with input set) leaves unchanged.
func attack6Expect(t *testing.T, input bool, cases []attack6Case) {
	t.Helper()
	for _, c := range cases {
		out, n := maskStream(nil, []byte(c.in), ModeFull, input)
		if n == 0 || string(out) == c.in {
			t.Errorf("%s: %q passes unmasked; a terminal shows %q", c.name, c.in, c.screen)
		}
	}
}

// The dash-tail exception (documented) also lets through the context lines
// of grep -n (-A, -B, -C): grep writes "LINE-" before a context line and
// "LINE:" before a match, so a card number alone on a line next to a match
// shows in clear. Ordinary, not hostile: "grep -n -A1 '^Card:' orders.txt".
func TestAttack6GrepNumberedLines(t *testing.T) {
	t.Parallel()
	attack6Expect(t, false, []attack6Case{
		{"grep -n -A1", "12:Card:\n13-4111111111111111\n", "13-4111111111111111"},
		{"grep -rn -B1", "orders/2026.txt-41-5555555555554444\norders/2026.txt-42:Total\n", "orders/2026.txt-41-5555555555554444"},
		{"grep -c context, amex", "7-378282246310005\n", "7-378282246310005"},
	})
}

// Terminals (the DEC/ECMA-48 parser of xterm, VTE, tmux) do not read a
// sequence broken by a byte it does not allow the way the doc does: a C0
// control inside a CSI is executed and the sequence goes on, CAN and SUB
// abort it silently, and an ESC aborts it and starts the next. The bytes of
// the broken sequence show nothing; the doc makes its ESC a break and the
// rest visible text, so digits on both sides are judged apart. Two bytes,
// ESC CAN, between two halves of a number are enough.
func TestAttack6BrokenEscapeShowsNothing(t *testing.T) {
	t.Parallel()
	attack6Expect(t, false, []attack6Case{
		{"ESC CAN", "41111111\x1b\x1811111111", "4111111111111111"},
		{"ESC CAN in a grouping", "4111 1111 \x1b\x181111 1111", "4111 1111 1111 1111"},
		{"ESC ESC", "4111 1111 \x1b\x1b[m1111 1111", "4111 1111 1111 1111"},
		{"CSI CAN", "4111 1111 \x1b[\x181111 1111", "4111 1111 1111 1111"},
		{"CSI aborted by CSI", "41111111\x1b[\x1b[m11111111", "4111111111111111"},
		{"NUL inside CSI", "4111 1111 \x1b[\x00m1111 1111", "4111 1111 1111 1111"},
		{"BEL inside CSI", "4111 1111 \x1b[31\x07m1111 1111", "4111 1111 1111 1111"},
		{"OSC aborted by CSI", "4111 1111 \x1b]0;x\x1b[m1111 1111", "4111 1111 1111 1111"},
		{"OSC aborted by CAN", "4111 1111 \x1b]0;x\x181111 1111", "4111 1111 1111 1111"},
		{"nF aborted by CAN", "4111 1111 \x1b#\x181111 1111", "4111 1111 1111 1111"},
	})
}

// Typed input (Config.Input): the line editor's kill keys are ignored
// controls, so transparent, and join the digits typed before them to
// those typed after, though the line entered holds only the latter.
// ^U (kill line, the tty's VKILL) and ^C (interrupt: the line is dropped)
// before a card number leave it unmasked in the recorded keys; so does
// moving the cursor (^A, Home) and inserting.
func TestAttack6TypedKillKeys(t *testing.T) {
	t.Parallel()
	attack6Expect(t, true, []attack6Case{
		{"^U", "12\x154111111111111111\r", "4111111111111111 (entered)"},
		{"^U after a word", "card\x155555555555554444\r", "5555555555554444 (entered)"},
		{"^C", "echo 9\x034111111111111111\r", "4111111111111111 (entered)"},
	})
}
