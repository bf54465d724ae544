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
//
// A damaged index file never takes the process down: OpenStore walks its
// pages before bbolt maps it, every transaction runs with memory faults
// turned into errors, and damage is a [*CorruptError]. [CheckIndex] checks
// a file in depth; [RebuildIndex] rebuilds one from what survives of it
// and the recordings, and [Verify] reports what a rebuild could not
// restore ([Report].Rebuilds).
package recorder
