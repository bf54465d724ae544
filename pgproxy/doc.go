// Package pgproxy relays one PostgreSQL connection (protocol 3.0) between a
// client and a server, parsing both directions with pgproto3, so that the
// bastion can record what a forwarded psql or driver runs and mask the card
// numbers in what the server returns.
//
// A [Relay] sits where a plain TCP forward would copy bytes:
//
//   - SSLRequest and GSSENCRequest are answered 'N' by the relay itself (the
//     SSH tunnel already encrypts); the client then starts in the clear.
//   - The startup message's user and database, every simple Query and every
//     extended-protocol Execute (the text of its prepared statement and its
//     parameters), and how each ended (command tag, rows, error, duration)
//     are reported to the [Observer], with card numbers masked.
//   - Card numbers are masked, keeping their length so that every length
//     field stays true, in DataRow values (text and binary format alike:
//     binary text types carry the same bytes), COPY … TO STDOUT data (text,
//     CSV and binary), ErrorResponse and NoticeResponse fields, notification
//     payloads, parameter status values, column names and function call
//     results. Messages from the client reach the server unchanged.
//     Values that are not UTF-8, or all values once the client asked for
//     another encoding, are judged in encoding views too (encoding.go).
//   - Anything that does not parse as the protocol (an unknown message, a
//     length out of bounds, a reply that does not follow the requests, a
//     replication stream) ends the connection with a *ProtocolError: never
//     passed on unseen. So does what the relay will not carry or cannot
//     record: a replication connection (ErrReplication), a statement over
//     MaxText (ErrTooLong), more prepared statements or portals than it
//     keeps (ErrTooMany), a message its Memory has no room for (ErrMemory).
//
// The relay keeps the server's replies in step with the client's requests
// (a queue of what each request awaits, as the protocol orders replies) to
// attribute rows, tags and errors to statements. Masking does not depend on
// it: every value is judged.
//
// What it does not mask: a card number kept as a number (bigint, numeric)
// and fetched in binary format, which is eight or more bytes of binary, not
// digits; one kept as bytea and shown as hex in text format; what SQL
// computes from a card number (reversed, encoded, split); and, of course,
// anything the client sends.
package pgproxy
