package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrUnsafePath is the error RecordingFile's refusals match (errors.Is).
var ErrUnsafePath = errors.New("path outside recordings")

// PathError is RecordingFile's refusal of an index path.
type PathError struct {
	Path   string // as the index entry has it
	Reason string // why it is refused
}

func (e *PathError) Error() string {
	return fmt.Sprintf("index path %q refused, as outside DATA_DIR/recordings: %s", e.Path, e.Reason)
}

// Unwrap makes a PathError match ErrUnsafePath.
func (e *PathError) Unwrap() error { return ErrUnsafePath }

// RecordingFile returns the file that rel, a path from an index entry or a
// chain entry, names in the data directory, after checking that it stays in
// DATA_DIR/recordings: relative, clean, under recordings/, no "..", and,
// with the symbolic links of its existing part resolved, still inside
// recordings. The index is data that whoever can write the data directory
// can edit; without the check, play, verify, prune and grep would read or
// delete any file the admin can. A refusal is a *PathError; other errors
// are I/O errors met while resolving links.
//
// The path returned is the unresolved one: a recording that is a link to
// another file in recordings is removed as the link. The check and the use
// that follows are not atomic: someone who can replace a directory in
// recordings between the two is not stopped by it.
func (s *Local) RecordingFile(rel string) (string, error) {
	refuse := func(reason string) (string, error) { return "", &PathError{Path: rel, Reason: reason} }
	sep := string(filepath.Separator)
	switch {
	case rel == "":
		return refuse("empty")
	case filepath.IsAbs(rel):
		return refuse("absolute")
	case rel == ".." || strings.HasPrefix(rel, ".."+sep) || strings.Contains(rel, sep+".."+sep) || strings.HasSuffix(rel, sep+".."):
		return refuse("leaves the directory with ..")
	case filepath.Clean(rel) != rel:
		return refuse("not a clean path")
	case !strings.HasPrefix(rel, "recordings"+sep):
		return refuse("not under recordings/")
	}
	full := filepath.Join(s.dir, rel)
	// The recordings directory itself must be a directory, not a link:
	// a link there would make every check below relative to wherever it
	// points (mount the storage there instead).
	rdir := filepath.Join(s.dir, "recordings")
	if fi, err := os.Lstat(rdir); errors.Is(err, fs.ErrNotExist) {
		return full, nil // no recordings directory: nothing to reach through it
	} else if err != nil {
		return "", fmt.Errorf("resolve %s: %w", rdir, err)
	} else if !fi.IsDir() {
		return refuse("DATA_DIR/recordings is a symbolic link or not a directory")
	}
	root, err := filepath.EvalSymlinks(rdir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", rdir, err)
	}
	// Resolve the longest part of the path that exists.
	p, rest := full, ""
	var resolved string
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			resolved = filepath.Join(r, rest)
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("resolve %s: %w", full, err)
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return refuse("a symbolic link to nothing, which could be made to point anywhere")
		}
		parent := filepath.Dir(p)
		if parent == p {
			return refuse("no part of it exists")
		}
		p, rest = parent, filepath.Join(filepath.Base(p), rest)
	}
	if in, err := filepath.Rel(root, resolved); err != nil || in == "." || in == ".." || strings.HasPrefix(in, ".."+sep) {
		return refuse("resolves to " + resolved + ", outside " + root)
	}
	// Only a regular file is a recording: opening a FIFO or a device
	// would hang or act on hardware.
	if fi, err := os.Stat(resolved); err == nil && !fi.Mode().IsRegular() {
		return refuse("not a regular file")
	}
	return full, nil
}

// RefusedError is Prune's report on the sessions it left alone, and why:
// RecordingFile refused their index path, or the index entry is not what
// the audit chain seals.
type RefusedError struct {
	Refused []Problem
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%d recordings left alone: index path refused, or index entry not as sealed in the audit chain", len(e.Refused))
}

// pathProblem is the Problem for an index path RecordingFile did not
// accept: "path outside recordings", or "unreadable" when resolving it
// failed.
func pathProblem(id, path string, err error) Problem {
	var pe *PathError
	if errors.As(err, &pe) {
		return Problem{Path: path, ID: id, Reason: ErrUnsafePath.Error(), Detail: pe.Reason}
	}
	return Problem{Path: path, ID: id, Reason: "unreadable", Detail: err.Error()}
}
