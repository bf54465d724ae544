// Package mask finds primary account numbers (PANs) in byte streams and
// replaces their digits with '*' before any byte leaves the bastion (PCI DSS
// 3.3 and 3.4). It is pure: it imports only the standard library and does no
// I/O of its own. Writer masks a stream; Mask masks a whole buffer; Handler
// masks the records of a log/slog logger.
//
// # Detection
//
// The stream is judged as the terminal shows it. Every byte is one of:
//
//   - part of an escape sequence (see below), which shows nothing;
//   - an ignored control, which shows nothing either: NUL, SOH, STX, ETX,
//     EOT, ENQ, ACK, BEL, SO, SI, DLE, DC1 to DC4, NAK, SYN, ETB, EM, FS,
//     GS, RS and US (0x00-0x07, 0x0E-0x17, 0x19, 0x1C-0x1F), and DEL
//     (0x7F) in terminal output. Not ignored: BS (an erase), HT, LF, VT, FF
//     and CR, which move the cursor, and CAN and SUB, which abort escape
//     sequences (outside one they are visible);
//   - an erase: BS (0x08), and in typed input (Config.Input) DEL too,
//     the key that erases;
//   - in typed input, ETX (^C) and NAK (^U), which drop the line being
//     typed: a break (see Escape sequences), not an ignored control, so
//     digits typed before them never join those typed after;
//   - visible: every other byte.
//
// Escape sequences and ignored controls are transparent: a number may run
// through them ("4\x001\x001\x00..." is UTF-16LE text, "4111\x1b[31m 1111"
// is coloured), they are never changed, and they are neither word bytes
// nor separators.
//
//   - A group is a maximal string of visible ASCII digits. A run is a
//     sequence of groups joined by exactly one separator each, a space or a
//     '-' ("4111 1111", "4111-1111"; two spaces or any other byte end the
//     run).
//   - A candidate is any sequence of consecutive groups of one run,
//     joined by the same separator throughout, with 13 to 19 digits in
//     all, whose first digit does not follow a word byte and whose last
//     digit does not precede one. Word bytes are ASCII letters, digits and
//     '_'. So a PAN is never part of a longer digit string (a group of 20
//     digits holds none), of a hex string or identifier ("id=4111...1111x",
//     "deadbeef4111..."), and a plain run of 12 digits or fewer is never
//     looked at. Two exceptions for card data: the 'B' of a track 1 format
//     code "%B" does not count as a word byte before a candidate
//     ("%B4111...^"), and a 'D' or 'd' after a candidate that is followed
//     by an expiry date, four digits YYMM with MM 01 to 12, does not count
//     as one after it: EMV track 2 equivalent data, "4111...1111D2512101...".
//     Magnetic track 2 (";4111...=2512...?") needs no exception.
//   - A candidate is a PAN if it passes the Luhn check and, with
//     DetectBrands (the default), if it is a card number a payment brand
//     issues, written as cards print them. Its first six digits fall in
//     an issuer (IIN) range of a brand that issues numbers of its length
//     (Visa 4, 13–19 digits; Mastercard 51–55 and 2221–2720, 16; American
//     Express 34 and 37, 15; Discover, Diners Club, JCB, UnionPay,
//     Maestro, Mir, RuPay, Troy and the others listed, with their
//     sources, in brands.go; not UATP, an airline network whose prefix 1
//     any 15-digit number starting with 1 has). If it has more than one
//     group, its group lengths (of visible digits: "4111\x1b[K1111 1111 1111" and
//     "4111\x001111 1111 1111" are 8-4-4) are a grouping cards are printed
//     with: 4-4-4-N (N from 1 to 7), 4-4-4-4-N (N from 1 to 3), 4-4-5,
//     4-6-N (N from 4 to 9) or 6-13. If it has one group, that group does
//     not follow two digit groups each followed by a '-' ("D-D-"): a single
//     group of 13 to 19 digits after digits, a dash, digits and a dash is
//     the tail of a dash-joined ID, not a card number. Ansible names its
//     temporary directories ansible-tmp-<time>-<pid>-<random>, the random
//     part up to 15 digits, and now and then that part has a brand's
//     prefix and passes the Luhn check (in "ansible-tmp-1796508318.0950022-
//     32551-36123456789013" a Diners Club number follows "0950022-32551-").
//     The groups before may be any digits, even ones that cannot be part
//     of a PAN ("x1-2-", a group of 20). The dashes and those digits are
//     the visible bytes before the group as erases leave them, transparent
//     bytes around them not counted; a break among them ends the run, so
//     the group is judged afresh. One group and a dash before are not
//     enough: grep -n writes "13-" before a context line, so
//     "13-4111111111111111" is masked, and so is "txt-41-4111111111111111"
//     (the '41' follows a letter). Only what comes before matters: a PAN
//     followed by a dash or a space and more digits
//     ("4111111111111111-123", "4111111111111111 123", a card number then a
//     CVV) is masked, and a candidate of several groups after a
//     dash-joined number keeps the grouping rule
//     ("1-32551-4111-1111-1111-1111" masks its last four groups). So
//     epoch milliseconds ("1796149455125": no brand issues numbers under
//     17), order numbers under prefixes no brand uses,
//     and dash-joined IDs ("ansible-tmp-1796149455.1285965-32464-
//     540584239609", groups 5-12) pass unchanged, while "4111 1111 1111
//     1111", "3782-822463-10005" and "4111111111111111" are masked. The
//     price: a real PAN written in a grouping no card is printed with
//     ("4111-111111111111"), or as the tail of a dash-joined number
//     ("12-1234-4111111111111111"), passes. With DetectLuhn the candidate
//     only has to pass the Luhn check: any number of 13 to 19 digits, in
//     any groups and after anything, including about one in ten timestamps
//     and long IDs, which fails closed at the cost of rewriting them.
//   - Every PAN found is masked: in ModeFirst6Last4 all its digits but the
//     first six and last four become '*', in ModeLast4 all but the last
//     four, in ModeFull all. Overlapping PANs in one run are all masked.
//     Nothing else changes: separators, escape sequences, controls, UTF-8
//     and all other bytes keep their place, and the output has the input's
//     length.
//
// The scanner reads the stream once, front to back, and keeps only the run
// being read: its candidate, the last groups that may still be part of a
// PAN (at most 19 digits; a group leaves it when a digit after it would
// make 20, and the groups before a change of separator leave it when the
// first digit after the new separator comes), and nothing before. A group
// that has had more than 19 digits is never part of a PAN, and neither are
// the groups before it. The candidate is judged when its last group ends on
// a non-word byte, a break or the end of the stream, and before an erase
// takes back one of its digits.
//
// Outside a run, the scanner first skims the text eight bytes at a time
// (on amd64 with AVX2, 32 bytes a step, in assembly that decides
// exactly as the eight-byte loop does).
// Between two visible bytes that no run passes (letters, most
// punctuation, line ends), digits, separators and complete escape
// sequences of at most 64 bytes can join; a stretch of them with fewer
// than 13 digits, shorter than 1 KiB, holds no candidate and is passed
// over without bookkeeping. Whatever the skim does not model (other
// controls, erases, string sequences, broken or longer sequences, a
// stretch that may hold 13 digits, the end of the buffer) is read byte by
// byte from the start of its stretch, so the output is the same as
// without the skim.
//
// # Erases
//
// A line editor echoes a correction as BS and a blank or an erase-line
// sequence ("41111111111111112\b \b", "...2\b\x1b[K"); typed input holds
// the erase key itself ("41111111111111112\x7f"). An erase takes back the
// last visible byte before anything after it is judged:
//
//   - a digit of the group being read: the candidate is judged first, as
//     if it ended on a non-word byte (the digit may well stay on the
//     screen), then the digit leaves the group; when none is left, the
//     run goes back to the separator before the group, if it joins a live
//     group, or else the erase is a break;
//   - the separator after the last group, if that group is in the
//     candidate: the run goes on in that group ("4111 \b1111...");
//   - anything else (a letter, a separator after a dead group, the digits
//     after a track 2 'D'): the scanner does not know what the erase
//     uncovers, and the erase is a break.
//
// The erased byte is left as it is (in "...2\b \b" the '2' stays), unless
// an earlier judgement masked it. So "41111111111111112" corrected to
// "4111111111111111" is masked, in the echo and in the recorded keys; a
// typo of two bytes or a letter erased between groups ends the run.
//
// # Escape sequences
//
// CSI (ESC [ ... final byte), other ESC sequences (ESC, intermediates 0x20-
// 0x2F, final 0x30-0x7E) and string sequences (OSC, DCS, SOS, PM, APC: ESC
// and one of ] P X ^ _, ended by BEL or ST) are transparent, whatever their
// length: "\x1b[31m4111\x1b[0m 1111 1111 1111" is one PAN, and so is a
// number whose first group is an OSC 8 hyperlink with a long URL. The text
// of a string sequence (an OSC window title holding a typed command, say)
// is itself judged as a separate stream and masked in place.
//
// Inside a sequence, as in the DEC parser of xterm, VTE and tmux, CAN or
// SUB aborts it and is part of it: the sequence ends there and shows
// nothing, so "41111111\x1b\x1811111111" is one PAN. An ESC aborts the
// sequence before it and starts the next ("\x1b\x1b[m", "\x1b[\x1b[m");
// in a string, an ESC not followed by '\' ends the string there (its text
// is judged) and starts the next sequence. An ignored control after the
// ESC or inside an nF or CSI sequence is executed and the sequence goes
// on ("\x1b[31\am").
//
//   - A sequence of at most 64 bytes is held whole until it ends. One
//     broken by any other byte its grammar does not allow (BS, HT, LF, VT,
//     FF, CR, or a byte of 0x80 or more, inside an ESC, nF or CSI
//     sequence), or unterminated at the end of the stream, is not a
//     sequence: its ESC is a break and the bytes after it are visible text
//     (so a PAN in a malformed title is still masked). Terminals execute
//     the controls among these and go on with the sequence; the masker
//     does not, so digits on either side of "\x1b[\b" or "\x1b[\r" are
//     judged apart (as with cursor movement, it does not model the
//     screen).
//   - A sequence still unfinished at its 64th byte is committed: it is a
//     sequence to its end, a string's text is judged as it passes, and a
//     byte its grammar does not allow ends it before that byte (which is
//     then read as usual), as does the end of the stream.
//
// A break ends any run, and counts as neither word byte nor separator: the
// digits before it are judged as if the stream ended there, and a group
// after it starts afresh.
//
// # The hold bound
//
// Transparent bytes let a candidate wait without end, and a Writer cannot
// hold it without end. So before any byte is taken that lies 4032
// (MaxHold-64) bytes or more after the candidate's first digit not yet
// masked (for an escape sequence of at most 64 bytes: before its last
// byte), every digit of the candidate is masked whole, whatever the mode:
// each could still become part of a PAN, and none can be held longer. The
// candidate stays as it was: if it turns out to be part of a PAN, the
// PAN's other digits are masked as the mode says, and those masked early
// stay masked; if not, they stay masked anyway, a false positive that
// needs 4 KiB of invisible bytes inside a number. No PAN's digits are ever
// released in clear for lack of room.
//
// # Holding back and the deadline
//
// A Writer writes everything that is final before Write returns. It holds
// back only the live candidate, from its first digit not yet masked, and an
// escape sequence of at most 64 bytes that may still turn out broken, so
// never more than MaxHold (4096) bytes. A line of text that ends in a
// newline is never held.
//
// A held tail is released when the stream goes quiet: when no Write has
// come for Config.Deadline (20 ms by default), a timer calls Flush, so the
// echo of a typed digit appears without waiting for the next key. Flush (and
// Close) judge the held tail as if the stream ended there, then start over:
// a held candidate that is a PAN is masked (the digits that may follow are
// not waited for), anything else is written unchanged, and what comes after
// is judged as a new stream. The trade-off:
// a PAN whose digits arrive more than a deadline apart (typed by hand, or
// split by a stalled upstream) is judged in pieces, and pieces shorter than
// 13 digits pass unmasked. With Deadline < 0 there is no timer and the
// caller decides: Pending reports a held tail, Flush releases it.
//
// With Config.Preview, a release (at the deadline, or at once for the
// echo of typed keys, Config.Echo) goes to the early copy only and does
// not start over: what follows is judged together with the released tail,
// so only the released bytes themselves can be less masked than in the
// strict result. Config.Echo without a Preview works the same way, the
// underlying writer being the early copy.
//
// Chunking never matters otherwise: however a stream is split into writes,
// without a deadline release in between, the output is the same as Mask of
// the whole stream.
package mask
