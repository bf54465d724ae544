// Package recorder writes sessions as asciicast v2 typescripts, reads and
// plays them back, keeps the session index, and seals finished recordings
// in a signed, hash-chained audit log so that tampering is detectable.
//
// It receives bytes that were already masked: it never sees a raw PAN.
//
// Storage is behind two interfaces, together a [Store]: the [Index]
// (sessions, the audit chain, the register of issued certificates) and
// [Blobs] (the recordings, by name). [OpenStore] returns the default,
// [Local]: a bbolt database opened once for the store's life, and files
// under the data directory; nothing outside this package may assume either.
// A [Writer] writes a recording to the [Sink] that Blobs.Create returns.
// Appending to the chain and [Verify] are functions of the data they are
// given (a [Snapshot] and a list of recordings), whatever stores it.
package recorder
