// Package mask finds primary account numbers (PANs) in byte streams and
// replaces their digits with '*' before any byte leaves the bastion (PCI DSS
// 3.3 and 3.4). It is pure: it imports only the standard library and does no
// I/O of its own. Writer masks a stream; Mask masks a whole buffer; Handler
// masks the records of a log/slog logger.
//
// # Detection
//
// The stream is judged as the terminal shows it: escape sequences are
// transparent, and the remaining bytes are "visible".
//
//   - A group is a maximal string of visible ASCII digits. A run is a
//     sequence of groups joined by exactly one separator each, a space or a
//     '-' ("4111 1111", "4111-1111"; two spaces or any other byte end the
//     run).
//   - A candidate is any sequence of consecutive groups of one run, joined
//     by the same separator throughout, with 13 to 19 digits in all, whose
//     first digit does not follow a word byte and whose last digit does not
//     precede one. Word bytes are ASCII letters, digits and '_'. So a PAN
//     is never part of a longer digit string (a group of 20 digits holds
//     none), of a hex string or identifier ("id=4111...1111x",
//     "deadbeef4111..."), and a plain run of 12 digits or fewer is never
//     looked at. The one exception: the 'B' of a track 1 format code "%B"
//     does not count as a word byte, so "%B4111...^" is masked; track 2
//     (";4111...=") needs no exception.
//   - A candidate is a PAN if it passes the Luhn check and, with
//     DetectBrands (the default), if it is a card number a payment brand
//     issues, written as cards print them. Its first six digits fall in
//     an issuer (IIN) range of a brand that issues numbers of its length
//     (Visa 4, 13–19 digits; Mastercard 51–55 and 2221–2720, 16; American
//     Express 34 and 37, 15; Discover, Diners Club, JCB, UnionPay,
//     Maestro, Mir, RuPay, Troy, UATP and the others listed, with their
//     sources, in brands.go). And if it has more than one group, its group
//     lengths (of visible digits: "4111\x1b[K1111 1111 1111" is 8-4-4) are
//     a grouping cards are printed with: 4-4-4-N (N from 1 to 7),
//     4-4-4-4-N (N from 1 to 3), 4-4-5, 4-6-N (N from 4 to 9) or 6-13. A
//     candidate in one group needs no grouping. So epoch milliseconds
//     ("1796149455125": under 17 brands issue only 15 digits), order
//     numbers under prefixes no brand uses, and dash-joined IDs
//     ("ansible-tmp-1796149455.1285965-32464-540584239609", groups 5-12)
//     pass unchanged, while "4111 1111 1111 1111", "3782-822463-10005" and
//     "4111111111111111" are masked. The price: a real PAN written in a
//     grouping no card is printed with ("4111-111111111111") passes.
//     With DetectLuhn the candidate only has to pass the Luhn check: any
//     number of 13 to 19 digits, in any groups, including about one in
//     ten timestamps and long IDs, which fails closed at the cost of
//     rewriting them.
//   - Every PAN found is masked: in ModeFirst6Last4 all its digits but the
//     first six and last four become '*', in ModeLast4 all but the last
//     four, in ModeFull all. Overlapping PANs in one run are all masked.
//     Nothing else changes: separators, escape sequences, UTF-8 and all
//     other bytes keep their place, and the output has the input's length.
//
// # Escape sequences
//
// CSI (ESC [ ... final byte), other ESC sequences (ESC, intermediates 0x20-
// 0x2F, final 0x30-0x7E) and string sequences (OSC, DCS, SOS, PM, APC: ESC
// and one of ] P X ^ _, ended by BEL or ST) of at most 64 bytes are
// transparent: "\x1b[31m4111\x1b[0m 1111 1111 1111" is one PAN, and the
// sequences pass unchanged. The text of a transparent string sequence (an
// OSC window title holding a typed command, say) is itself judged as a
// separate stream and masked in place. Limits keep the held tail bounded:
//
//   - A sequence longer than 64 bytes, or one broken by a byte its grammar
//     does not allow, or unterminated at the end of the stream, is not a
//     sequence: its ESC is a break and the bytes after it are visible text
//     (so a PAN inside a long title is still masked).
//   - Escape bytes between two visible bytes count against a budget of 64;
//     past it, the gap is a break.
//
// A break ends any run, and counts as neither word byte nor separator: the
// digits before it are judged as if the stream ended there, and a group
// after it starts afresh.
//
// # Holding back and the deadline
//
// A Writer writes everything that is final before Write returns. It holds
// back only the live candidate: the digit groups that, with bytes still to
// come, may yet be (part of) a PAN — at most 19 digits and 18 separators,
// each followed by at most 64 bytes of escape sequences, so never more than
// MaxHold (2405) bytes — and an unfinished escape sequence (at most 64
// bytes). A line of text that ends in a newline is never held.
//
// A held tail is released when the stream goes quiet: when no Write has
// come for Config.Deadline (20 ms by default), a timer calls Flush, so the
// echo of a typed digit appears without waiting for the next key. Flush (and
// Close) judge the held tail as if the stream ended there, then start over:
// a held candidate that is a PAN is masked (the digits that may follow are
// not waited for), anything else is written unchanged, and what comes after is judged as a new stream. The trade-off:
// a PAN whose digits arrive more than a deadline apart (typed by hand, or
// split by a stalled upstream) is judged in pieces, and pieces shorter than
// 13 digits pass unmasked. With Deadline < 0 there is no timer and the
// caller decides: Pending reports a held tail, Flush releases it.
//
// Chunking never matters otherwise: however a stream is split into writes,
// without a deadline release in between, the output is the same as Mask of
// the whole stream.
package mask
