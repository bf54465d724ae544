package recorder

// LocalBlobs is the recordings of data directory dataDir as a Local store
// keeps them, without its index: the same checks on names (see
// RecordingFile), nothing opened but the files themselves. Admin commands
// use it to read recordings from the data directory itself, whoever serves
// the index, and without holding the index's lock while they read. It is
// safe for concurrent use.
func LocalBlobs(dataDir string) Blobs { return localBlobs{&Local{dir: dataDir}} }

// localBlobs exposes only the Blobs methods of a Local that has no index.
type localBlobs struct{ Blobs }
