// Package regfile owns opening the files a command is handed (images,
// label files, meta.json, checkpoints, state files) for reading: only a
// regular file is opened, and the open never blocks. A named pipe where a
// file was expected (put there by mistake, or swapped in after a listing
// looked) would otherwise hold a plain open until something wrote to it,
// and a device such as /dev/zero would be read without end: the run would
// hang with no message, past Ctrl-C.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"github.com/alexnet-repro/alexnet/internal/cli"
)

// ErrNotRegular marks a path that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// Open opens path for reading if it is a regular file (following symbolic
// links, as os.Open does), and returns its FileInfo. Anything else is a
// *fs.PathError wrapping ErrNotRegular that says what it is: "a named
// pipe, not a regular file".
func Open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &fs.PathError{Op: "open", Path: path, Err: &NotRegularError{Mode: fi.Mode()}}
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// NotRegularError names what a path is instead of a regular file; callers
// that word it their own way ("not a shard file") take its Mode.
type NotRegularError struct{ Mode fs.FileMode }

func (e *NotRegularError) Error() string        { return cli.FileKind(e.Mode) + ", not a regular file" }
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

// ReadFile is os.ReadFile through Open, refusing a file larger than limit
// bytes (limit ≤ 0: no limit).
func ReadFile(path string, limit int64) ([]byte, error) {
	f, fi, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if limit > 0 && fi.Size() > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%d bytes, more than the %d this file may hold", fi.Size(), limit)}
	}
	r := io.Reader(f)
	if limit > 0 {
		r = io.LimitReader(f, limit+1) // a file that grows while read
	}
	// Sized from the file, with a byte to spare for one that grew:
	// io.ReadAll's doubling would copy it over and over and hold up to
	// twice its size at the end (2 GB and 19 s for a 900 MB file).
	b := make([]byte, 0, max(fi.Size(), 0)+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if len(b) == cap(b) {
			b = slices.Grow(b, len(b)) // it grows while read
		}
	}
	if limit > 0 && int64(len(b)) > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("more than the %d bytes this file may hold (grown while read?)", limit)}
	}
	return b, nil
}
