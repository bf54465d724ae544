package recorder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// Create implements Blobs: the file (and its directory, 0700) is created
// exclusively, mode 0600.
func (s *Local) Create(ctx context.Context, name string) (Sink, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := s.RecordingFile(name)
	if err != nil {
		return nil, fmt.Errorf("create recording: %w", err)
	}
	return createFile(path)
}

// Open implements Blobs. Only a regular file inside DATA_DIR/recordings is
// opened (see RecordingFile), so a FIFO or a device in its place is
// reported, never read.
func (s *Local) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path, err := s.RecordingFile(name)
	if err != nil {
		return nil, err
	}
	// O_NONBLOCK: should a FIFO appear after the check, opening it must
	// not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, &PathError{Path: name, Reason: "not a regular file"}
	}
	return f, nil
}

// Remove implements Blobs: a link in recordings is removed as the link.
func (s *Local) Remove(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.RecordingFile(name)
	if err != nil {
		return err
	}
	return os.Remove(path)
}

// Check implements Blobs.
func (s *Local) Check(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.RecordingFile(name)
	return err
}

// Files implements Blobs: every entry under DATA_DIR/recordings that is not
// a directory (links and other odd files included: verify reports them),
// named relative to the data directory.
func (s *Local) Files(ctx context.Context) ([]string, error) {
	var names []string
	root := filepath.Join(s.dir, "recordings")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // unreadable parts are verify's to report, via the index
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.dir, p)
		if err == nil {
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}

// fileSink is a recording file: writes are paced out of the page cache
// (see pacer), and Close syncs before it closes.
type fileSink struct {
	f       *os.File
	written int64
	pace    pacer
}

func createFile(path string) (*fileSink, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create recording directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create recording: %w", err)
	}
	return &fileSink{f: f, pace: newPacer(f)}, nil
}

// Write writes p; a write-back error the pacer meets is returned here,
// since fsync would not report it again.
func (s *fileSink) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.written += int64(n)
	if err == nil {
		err = s.pace.wrote(s.written)
	}
	return n, err
}

// Close syncs and closes the file.
func (s *fileSink) Close() error {
	err := s.f.Sync()
	if err != nil {
		err = fmt.Errorf("sync recording: %w", err)
	}
	if cerr := s.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close recording: %w", cerr)
	}
	return err
}

// Digest returns the hex SHA-256 and size of recording name in b.
func Digest(ctx context.Context, b Blobs, name string) (string, int64, error) {
	r, err := b.Open(ctx, name)
	if err != nil {
		return "", 0, err
	}
	defer r.Close()
	return readDigest(r)
}

func readDigest(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// FileDigest returns the hex SHA-256 and size of the file at path.
func FileDigest(path string) (string, int64, error) { return fileDigest(path) }

func fileDigest(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	return readDigest(f)
}
