package bastion

import (
	"bytes"
	"sync"
	"time"
)

// typedEcho follows the echo of what the user types, for the output
// stage's masker (mask.Config.Echo): a held tail made only of the echo of
// the user's keys is shown at once rather than after the masker's
// deadline, so a digit typed after a space echoes as fast as a letter.
// The user knows what they typed; output they did not type keeps the
// deadline, and the recording's copy is judged whole either way.
//
// The output is walked against the keys in the order typed: an output
// byte equal to the oldest key not yet echoed is its echo; a key that is
// not a digit and did not come back as itself (Enter, an arrow, Ctrl-U)
// is dropped; a digit waits for its echo, so digits typed with echo off
// keep everything after them from counting as echo until they expire.
// Each key is echoed once. So a number is shown at once only as the user
// typed it, digit by digit in that order; the target printing the same
// digits later is output, not echo.
//
// Keys the terminal sends as escape sequences (arrows, Delete, Home, End,
// function keys, Alt with a key, the markers around a paste) are left
// out: a line editor acts on them and never echoes them as themselves,
// and the digits in them ("\x1b[3~" is Delete) would otherwise wait for
// an echo that never comes and hold up every key typed after them. Leaving
// keys out never lets through a byte the user did not type.
type typedEcho struct {
	mu   sync.Mutex
	keys []byte    // typed and not yet echoed, at most maxTyped bytes
	at   time.Time // when the last keys were typed
	run  int       // how many of the last output bytes were echo
	seq  keySeq    // where the keys typed so far left an escape sequence
}

// keySeq is where typed keys are in an escape sequence.
type keySeq uint8

const (
	keyText keySeq = iota // not in a sequence
	keyESC                // after ESC
	keyCSI                // in ESC [ ..., until its final byte
	keySS3                // after ESC O: one more byte
)

const (
	// maxTyped bounds what typedEcho keeps: a line's worth of keys.
	maxTyped = 256
	// echoWindow is how long typed keys may wait for their echo.
	echoWindow = time.Second
)

// typed adds keys the client sent on to the target. A nil typedEcho
// keeps nothing. Outside escape sequences every key is kept, so it passes
// over such runs a slice at a time (keep): a bulk upload through a
// terminal costs a memchr per ESC, not a step per byte.
func (e *typedEcho) typed(p []byte) {
	if e == nil || len(p) == 0 {
		return
	}
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if now.Sub(e.at) > echoWindow {
		e.keys, e.seq = e.keys[:0], keyText
	}
	for len(p) > 0 {
		if e.seq == keyText {
			i := bytes.IndexByte(p, 0x1b)
			if i < 0 {
				i = len(p)
			}
			e.keep(p[:i])
			if p = p[i:]; len(p) == 0 {
				break
			}
		}
		if !e.inSeq(p[0]) {
			e.keep(p[:1])
		}
		p = p[1:]
	}
	e.at = now
}

// keep appends keys s, keeping the last maxTyped.
func (e *typedEcho) keep(s []byte) {
	if len(s) >= maxTyped {
		e.keys = append(e.keys[:0], s[len(s)-maxTyped:]...)
		return
	}
	if over := len(e.keys) + len(s) - maxTyped; over > 0 {
		e.keys = e.keys[:copy(e.keys, e.keys[over:])]
	}
	e.keys = append(e.keys, s...)
}

// inSeq reports whether key b is part of an escape sequence (ESC, ESC and
// one key, CSI as ECMA-48 has it, SS3), and follows the sequence.
func (e *typedEcho) inSeq(b byte) bool {
	switch e.seq {
	case keyESC:
		switch b {
		case '[':
			e.seq = keyCSI
		case 'O':
			e.seq = keySS3
		case 0x1b:
		default:
			e.seq = keyText
		}
		return true
	case keyCSI:
		switch {
		case b >= 0x20 && b <= 0x3f: // parameters, intermediates
			return true
		case b == 0x1b: // the next sequence
			e.seq = keyESC
			return true
		}
		e.seq = keyText
		return b >= 0x40 && b <= 0x7e // the final byte; anything else ends it
	case keySS3:
		e.seq = keyText
		return true
	}
	if b == 0x1b {
		e.seq = keyESC
		return true
	}
	return false
}

// saw follows output p, which the output stage is about to mask.
func (e *typedEcho) saw(p []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.keys) > 0 && time.Since(e.at) > echoWindow {
		e.keys = e.keys[:0]
	}
	k := 0 // keys used
	for _, b := range p {
		if k == len(e.keys) {
			// No key left to echo: this byte and every one after it
			// are output.
			e.run = 0
			break
		}
		for k < len(e.keys) && e.keys[k] != b && !isDigit(e.keys[k]) {
			k++
		}
		if k < len(e.keys) && e.keys[k] == b {
			k++
			e.run++
		} else {
			e.run = 0
		}
	}
	e.keys = e.keys[:copy(e.keys, e.keys[k:])]
}

// echoed reports whether the tail of the output seen so far is all echo.
func (e *typedEcho) echoed(tail []byte) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(tail) > 0 && len(tail) <= e.run
}
