package imagenet

import (
	"archive/tar"
	"fmt"
	"io"
	"strings"
)

// tarMember is one regular file inside a tar: its name and where its bytes
// lie in the underlying file.
type tarMember struct {
	name      string
	off, size int64
}

// walkTar calls fn for each regular file of the tar archive stored in
// r[base:base+n], in archive order, reading only headers. archive/tar skips
// a member's contents with Seek when its reader can seek, and the
// SectionReader can, so contents are never read; the SectionReader's
// position right after Next is where the member's data starts, as tar
// headers are read unbuffered.
//
// Directories, links and other non-regular entries are skipped, as are
// sparse files, whose stored bytes are not the file's contents. It returns
// the number of entries skipped that way.
//
// Errors of its own name where, the archive's path, and the member they
// concern; fn's errors are returned unchanged.
func walkTar(r io.ReaderAt, base, n int64, where string, fn func(tarMember) error) (skipped int, err error) {
	sr := io.NewSectionReader(r, base, n)
	tr := tar.NewReader(sr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return skipped, nil
		}
		if err != nil {
			return skipped, &PathError{Path: where, Err: err}
		}
		if !h.FileInfo().Mode().IsRegular() || isSparse(h) {
			skipped++
			continue
		}
		pos, err := sr.Seek(0, io.SeekCurrent)
		if err != nil {
			return skipped, &PathError{Path: where, Err: err}
		}
		// The last member's size is not checked by Next, since it seeks
		// lazily; a truncated archive must fail here, not on ReadItem.
		if h.Size > n-pos {
			return skipped, &PathError{Path: where + ":" + h.Name, Err: fmt.Errorf("%d bytes at offset %d run past the end of the archive (%d bytes): truncated", h.Size, pos, n)}
		}
		if err := fn(tarMember{name: h.Name, off: base + pos, size: h.Size}); err != nil {
			return skipped, err
		}
	}
}

// isSparse reports whether h describes a GNU sparse file.
func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
