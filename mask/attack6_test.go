package mask

import (
	"strings"
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

// Characters a terminal draws as nothing, like the C0 controls the doc
// calls ignored, end a run in the terminal view: zero-width characters
// and joiners, the BOM, the combining grapheme joiner, variation
// selectors, and C1 controls written in UTF-8 (U+0080, which tmux and VTE
// ignore). MaskText already leaves them out of its plain view (attack 4),
// but the Writer that masks terminal output and recordings does not, so
// "sed 's/[0-9]/&\xe2\x80\x8b/g'" on the target shows every card number
// whole, on the client's screen and in the recording's replay.
func TestAttack6InvisibleCharactersBetweenDigits(t *testing.T) {
	t.Parallel()
	var cases []attack6Case
	for _, sep := range []string{"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u034f", "\ufe0e", "\u0080", "\u0081"} {
		cases = append(cases,
			attack6Case{"contiguous " + sep, strings.Join([]string{"4111", "1111", "1111", "1111"}, sep), "4111111111111111"},
			attack6Case{"each digit " + sep, strings.Join(strings.Split("5555555555554444", ""), sep), "5555555555554444"})
	}
	attack6Expect(t, false, cases)
}

// Spaces a terminal draws as one blank cell are not separators: a number
// printed with no-break spaces (what a web page or a locale-aware
// formatter puts between card groups so they do not wrap), figure spaces
// or narrow no-break spaces, or non-breaking hyphens, reads as a card
// number and passes.
func TestAttack6UnicodeSpacesBetweenGroups(t *testing.T) {
	t.Parallel()
	var cases []attack6Case
	for _, sep := range []string{"\u00a0", "\u2007", "\u202f", "\u2009", "\u2011"} {
		cases = append(cases, attack6Case{"separator " + sep, strings.Join([]string{"4111", "1111", "1111", "1111"}, sep), "4111 1111 1111 1111"})
	}
	attack6Expect(t, false, cases)
}

// Escape sequences are transparent, so one between two digits joins them
// into one group; under DetectBrands that makes the grouping unprinted
// (8-4-4, 4-4-8) and the number passes. But a cursor-forward (CUF, CSI C)
// or a character-position (CHA) sequence there draws a blank: the screen
// shows 4-4-4-4. DetectLuhn masks these; the brands rule regressed them.
func TestAttack6CursorForwardMakesAGap(t *testing.T) {
	t.Parallel()
	cases := []attack6Case{
		{"CUF in the first group", "4111\x1b[C1111 1111 1111", "4111 1111 1111 1111"},
		{"CUF in the third group", "4111 1111\x1b[C1111 1111", "4111 1111 1111 1111"},
		{"CHA", "4111\x1b[6G1111 1111 1111", "4111 1111 1111 1111"},
		{"amex CUF", "3782\x1b[C822463 10005", "3782 822463 10005"},
	}
	attack6Expect(t, false, cases)
	for _, c := range cases {
		if out, _ := DetectLuhn.Mask(nil, []byte(c.in), ModeFull); string(out) == c.in {
			t.Errorf("%s: DetectLuhn leaves %q too", c.name, c.in)
		}
	}
}

// Cursor movement: with no screen model, digits drawn over others (CR,
// CUB, save and restore cursor, delete character) are judged as written,
// not as shown. Each input here draws a clean card number.
func TestAttack6CursorMovementOverwrites(t *testing.T) {
	t.Parallel()
	attack6Expect(t, false, []attack6Case{
		{"CR", "XXXX 1111 1111 1111\r4111", "4111 1111 1111 1111"},
		{"CUB", "     1111 1111 1111\x1b[19D4111", "4111 1111 1111 1111"},
		{"DECSC/DECRC", "\x1b7     1111 1111 1111\x1b84111", "4111 1111 1111 1111"},
		{"DCH", "4111 X1111 1111 1111\x1b[15D\x1b[P", "4111 1111 1111 1111"},
		{"CUB over a dash tail", "1-\x1b[2D4111111111111111", "4111111111111111"},
		{"conceal a dash tail's head", "\x1b[8m1-\x1b[0m4111111111111111", "  4111111111111111"},
	})
}

// An erase that takes back a letter is a break (documented), but the
// letter ended the number's group on a word byte, so the number was never
// judged: "4111111111111111x" then an erase shows (or, typed, enters) the
// card number, and so does a letter typed in the last group and erased.
func TestAttack6EraseOfALetterAfterTheNumber(t *testing.T) {
	t.Parallel()
	attack6Expect(t, false, []attack6Case{
		{"letter erased", "4111111111111111x\b \b", "4111111111111111"},
		{"letter in the last group", "4111 1111 1111 111x\b1", "4111 1111 1111 1111"},
		{"readline echo", "5555555555554444q\b\x1b[K", "5555555555554444"},
	})
	attack6Expect(t, true, []attack6Case{
		{"typed letter, DEL", "4111111111111111x\x7f\r", "4111111111111111 (entered)"},
		{"typed letter in the last group", "5555 5555 5555 444r\x7f4\r", "5555 5555 5555 4444 (entered)"},
	})
}

// A group that has had 20 digits is dead for good, also after an erase
// takes it back to 19 or fewer: a 19-digit card number typed with one
// digit too many and corrected is neither masked in the echo nor in the
// recorded keys, unlike "41111111111111112\x7f" (the doc's example). A
// 16-digit number needs four extra digits.
func TestAttack6OverlongGroupErased(t *testing.T) {
	t.Parallel()
	const visa19, up19 = "4111111111111111110", "6212345678901234569"
	attack6Expect(t, false, []attack6Case{
		{"visa 19 echo", visa19 + "7\b \b", visa19},
		{"unionpay 19 echo", up19 + "1\b\x1b[K", up19},
		{"16 plus four", "41111111111111110000\b\b\b\b\x1b[K", "4111111111111111"},
	})
	attack6Expect(t, true, []attack6Case{
		{"visa 19 typed", visa19 + "7\x7f\r", visa19 + " (entered)"},
		{"unionpay 19 typed", up19 + "1\x7f\r", up19 + " (entered)"},
	})
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

// Fullwidth and other non-ASCII decimal digits show as a card number too.
func TestAttack6NonASCIIDigits(t *testing.T) {
	t.Parallel()
	attack6Expect(t, false, []attack6Case{
		{"fullwidth", "４１１１ １１１１ １１１１ １１１１", "４１１１ １１１１ １１１１ １１１１"},
		{"mathematical bold", "𝟒𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏", "𝟒𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏𝟏"},
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

func TestAttack6TypedCursorKeys(t *testing.T) {
	t.Parallel()
	attack6Expect(t, true, []attack6Case{
		{"^A then the first digit", "111111111111111\x014\r", "4111111111111111 (entered)"},
		{"Home then the first digit", "111111111111111\x1b[H4\r", "4111111111111111 (entered)"},
	})
}
