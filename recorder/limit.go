package recorder

import "errors"

// ErrLimit is returned by a Writer's Output, Input, Resize and Marker
// when the event would take the recording past the limit SetLimit set:
// the event is not recorded. FinalMarker is always recorded, so that the
// recording can say why it ends.
var ErrLimit = errors.New("recording size limit reached")

// SetLimit caps the recording at n bytes (header included) for every
// event but FinalMarker's; n <= 0 removes the cap. Final markers written
// after the cap is reached may take the file a few hundred bytes past it.
func (w *Writer) SetLimit(n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.limit = max(n, 0)
}

// Size is how many bytes the recording holds so far, header included:
// the events recorded, whether or not they have reached the sink yet.
func (w *Writer) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size
}
