package bastion

import "testing"

// typedEcho counts as echo only the keys as typed, in order, each once:
// the target printing digits the user typed earlier is output; digits
// typed with echo off keep what follows from counting; keys that do not
// come back as themselves (Enter) are passed over.
func TestTypedEcho(t *testing.T) {
	t.Parallel()
	var e typedEcho
	step := func(out, tail string, want bool) {
		t.Helper()
		e.saw([]byte(out))
		if got := e.echoed([]byte(tail)); got != want {
			t.Fatalf("after output %q: echoed(%q) = %v, want %v (keys %q, run %d)", out, tail, got, want, e.keys, e.run)
		}
	}
	step("4", "4", false) // nothing typed
	e.typed([]byte(": 41"))
	step(": 4", "4", true)
	step("1", "41", true)
	step("1", "1", false) // typed once, echoed once
	// A command line typed and echoed whole, then the same digits as
	// the command's output: output, not echo.
	e.typed([]byte("printf 4111111111111111\r"))
	step("printf 4111111111111111", "4111111111111111", true)
	step("\r\n4111", "4111", false)
	// Digits typed with echo off: what the target prints after them,
	// the same digits included, is not echo.
	e.typed([]byte("0123456789"))
	step("4", "4", false)
	// The keys kept are the last maxTyped.
	e.typed(make([]byte, 2*maxTyped))
	if len(e.keys) != maxTyped {
		t.Fatalf("kept %d keys", len(e.keys))
	}
}
