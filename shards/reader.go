package shards

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/regfile"
)

// Reader gives random access to a shard's records through its index.
type Reader struct {
	name    string
	ra      io.ReaderAt
	closer  io.Closer
	size    int64
	t       trailer
	offsets []uint64
}

// Open opens a shard file for random access. It checks the header, the
// trailer and the index checksum; record checksums are checked as records
// are read.
func Open(path string) (*Reader, error) {
	f, st, err := openFile(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(filepath.Base(path), f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// openFile opens a shard file for reading. Anything but a regular file in
// a shard's place is refused (regfile), naming what it is: a named pipe
// would block the open until a writer came, and a folder would fail later
// as an unexplained read error.
func openFile(path string) (*os.File, os.FileInfo, error) {
	f, st, err := regfile.Open(path)
	if nr, ok := errors.AsType[*regfile.NotRegularError](err); ok {
		return nil, nil, &RecordError{Shard: filepath.Base(path), Index: -1, Offset: -1, Err: fmt.Errorf("%s, not a shard file", cli.FileKind(nr.Mode))}
	}
	return f, st, err
}

// IsShardFile says whether path is a regular file that begins as a shard
// does (its header's magic): what ingest may take for one of its own.
func IsShardFile(path string) bool {
	f, _, err := openFile(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [8]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && b == headerMagic
}

// NewReader reads a shard of the given size from ra; name appears in errors.
// The seam for shards that live elsewhere than a local file.
func NewReader(name string, ra io.ReaderAt, size int64) (*Reader, error) {
	fail := func(err error) (*Reader, error) {
		return nil, &RecordError{Shard: name, Index: -1, Offset: -1, Err: err}
	}
	if size < headerSize+4+trailerSize {
		return fail(fmt.Errorf("%w: %d bytes is too short for a shard", ErrFormat, size))
	}
	var hb [headerSize]byte
	if _, err := ra.ReadAt(hb[:], 0); err != nil {
		return fail(err)
	}
	if _, err := checkHeader(hb[:]); err != nil {
		return fail(err)
	}
	var tb [trailerSize]byte
	if _, err := ra.ReadAt(tb[:], size-trailerSize); err != nil {
		return fail(err)
	}
	// Whatever makes the end not a trailer, bytes appended after a whole
	// shard are the likelier story when a real trailer sits just before.
	noTrailer := func(err error) (*Reader, error) {
		if n := bytesAfterTrailer(ra, size); n > 0 {
			err = fmt.Errorf("%w: %d bytes after the trailer", ErrFormat, n)
		}
		return fail(err)
	}
	t, err := parseTrailer(tb[:])
	if err != nil {
		return noTrailer(err)
	}
	idxLen := size - trailerSize - int64(t.indexOffset)
	if t.indexOffset < headerSize+4 || idxLen < 0 || t.count > uint64(idxLen)/8 || uint64(idxLen) != 8*t.count {
		return noTrailer(fmt.Errorf("%w: trailer says %d records with index at %d in a %d-byte file", ErrFormat, t.count, t.indexOffset, size))
	}
	// The end-of-records marker comes with the index in one read: no
	// CRC covers it, and a bit flipped there would otherwise pass every
	// read a training run makes.
	buf := make([]byte, 4+idxLen)
	if _, err := ra.ReadAt(buf, int64(t.indexOffset)-4); err != nil {
		return fail(err)
	}
	idx := buf[4:]
	if crc(idx) != t.indexCRC {
		return fail(fmt.Errorf("index: %w", ErrChecksum))
	}
	if m := binary.LittleEndian.Uint32(buf); m != endOfRecords {
		return fail(&markerError{offset: int64(t.indexOffset) - 4, got: m})
	}
	offs := make([]uint64, t.count)
	end := t.indexOffset - 4 // the end-of-records marker precedes the index
	prev := uint64(headerSize)
	for i := range offs {
		o := binary.LittleEndian.Uint64(idx[8*i:])
		if o != prev && i == 0 || o < prev || o+8 > end {
			return fail(fmt.Errorf("%w: index entry %d points to offset %d outside the records", ErrFormat, i, o))
		}
		offs[i] = o
		prev = o + 8
	}
	return &Reader{name: name, ra: ra, size: size, t: t, offsets: offs}, nil
}

// trailerSearch is how far from the end bytesAfterTrailer looks.
const trailerSearch = 1 << 20

// bytesAfterTrailer finds a trailer near the end of a shard that does not
// end in one, and says how many bytes follow it: 0 when there is none.
// "No trailer (incomplete)" would send whoever reads it after a truncation
// when the shard is whole and something was appended to it. Only trailers
// whose index ends where they begin count, so stray magic bytes in a
// payload are not taken for one.
func bytesAfterTrailer(ra io.ReaderAt, size int64) int64 {
	n := min(size, trailerSearch)
	b := make([]byte, n)
	if k, _ := ra.ReadAt(b, size-n); int64(k) != n {
		return 0
	}
	base := size - n
	for end := len(b); ; {
		i := bytes.LastIndex(b[:end], trailerMagic[:])
		if i < 0 {
			return 0
		}
		end = i
		start := i + 8 - trailerSize
		if start < 0 {
			continue
		}
		t, err := parseTrailer(b[start : i+8])
		tEnd := uint64(base) + uint64(i) + 8
		if err == nil && t.indexOffset < tEnd && t.count <= tEnd/8 && t.indexOffset+8*t.count+trailerSize == tEnd {
			return size - int64(tEnd)
		}
	}
}

// Name is the shard's name as used in errors.
func (r *Reader) Name() string { return r.name }

// Len is the number of records.
func (r *Reader) Len() int { return len(r.offsets) }

// Size is the file size in bytes.
func (r *Reader) Size() int64 { return r.size }

// FileCRC is the whole-file checksum stored in the trailer.
func (r *Reader) FileCRC() uint32 { return r.t.fileCRC }

func (r *Reader) span(i int) (off, n int64) {
	start := r.offsets[i]
	var end uint64
	if i+1 < len(r.offsets) {
		end = r.offsets[i+1]
	} else {
		end = r.t.indexOffset - 4
	}
	return int64(start), int64(end - start)
}

// ReadRecord reads record i, checking its CRC. buf is reused for the bytes
// (rec.Payload aliases it) and returned for the next call. Safe for
// concurrent use with distinct buffers.
func (r *Reader) ReadRecord(i int, rec *Record, buf []byte) ([]byte, error) {
	if i < 0 || i >= len(r.offsets) {
		return buf, &RecordError{Shard: r.name, Index: i, Offset: -1, Err: fmt.Errorf("no such record (shard has %d)", len(r.offsets))}
	}
	off, n := r.span(i)
	fail := func(err error) ([]byte, error) {
		return buf, &RecordError{Shard: r.name, Index: i, Offset: off, Err: err}
	}
	if n < 4+recordFixed+4 || n > maxBody {
		return fail(fmt.Errorf("%w: record spans %d bytes", ErrFormat, n))
	}
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := r.ra.ReadAt(buf, off); err != nil {
		return fail(err)
	}
	bodyLen := int64(binary.LittleEndian.Uint32(buf))
	if bodyLen != n-8 {
		return fail(fmt.Errorf("%w: length field says %d bytes, index says %d", ErrFormat, bodyLen, n-8))
	}
	body := buf[4 : n-4]
	if crc(body) != binary.LittleEndian.Uint32(buf[n-4:]) {
		return fail(ErrChecksum)
	}
	if err := parseBody(body, rec); err != nil {
		return fail(err)
	}
	return buf, nil
}

// Close closes the underlying file when Open opened it.
func (r *Reader) Close() error {
	if r.closer != nil {
		return r.closer.Close()
	}
	return nil
}

// Scanner reads a shard sequentially, for streaming and verification. It
// checks every record's CRC as it goes and, at the end, the index against
// the offsets it saw and the whole-file CRC.
type Scanner struct {
	name    string
	br      *bufio.Reader
	version int // the header's
	fileCRC uint32
	off     int64
	index   int
	offsets []uint64
	buf     []byte
	rec     Record
	err     error
	done    bool
}

// NewScanner reads a shard from r; name appears in errors.
func NewScanner(name string, r io.Reader) *Scanner {
	return &Scanner{name: name, br: bufio.NewReaderSize(r, 1<<20)}
}

func (s *Scanner) read(b []byte) error {
	if _, err := io.ReadFull(s.br, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: truncated (%w)", ErrFormat, err)
	}
	s.fileCRC = crc32.Update(s.fileCRC, castagnoli, b)
	s.off += int64(len(b))
	return nil
}

// readBody reads a record body of n bytes into s.buf, returned with room
// for its 4-byte CRC after it. The buffer grows as the bytes arrive, at
// most doubling what was read: a damaged length field (up to maxBody, 1
// GiB) must not allocate that much before the read finds the file short.
func (s *Scanner) readBody(n int) ([]byte, error) {
	if cap(s.buf) >= n+4 {
		b := s.buf[:n+4]
		return b, s.read(b[:n])
	}
	b := s.buf[:0]
	for len(b) < n {
		step := min(n-len(b), max(len(b), 1<<20))
		b = slices.Grow(b, step+4)
		if err := s.read(b[len(b) : len(b)+step]); err != nil {
			s.buf = b
			return nil, err
		}
		b = b[:len(b)+step]
	}
	s.buf = b
	return b[:n+4], nil
}

// readCRC reads a record's CRC field, into the file CRC only when inFile.
func (s *Scanner) readCRC(b []byte, inFile bool) error {
	if inFile {
		return s.read(b)
	}
	saved := s.fileCRC
	err := s.read(b)
	s.fileCRC = saved
	return err
}

// Next returns the next record, or io.EOF after the last one once the
// trailer has been verified. The record's Payload is valid until the next
// call. A record whose CRC does not match returns an error, and since the
// length field framed it, Next can go on to the following record; any other
// error is final.
func (s *Scanner) Next() (*Record, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.done {
		return nil, io.EOF
	}
	fail := func(idx int, off int64, err error) (*Record, error) {
		s.err = &RecordError{Shard: s.name, Index: idx, Offset: off, Err: err}
		return nil, s.err
	}
	if s.off == 0 {
		var hb [headerSize]byte
		if err := s.read(hb[:]); err != nil {
			return fail(-1, -1, err)
		}
		v, err := checkHeader(hb[:])
		if err != nil {
			return fail(-1, -1, err)
		}
		s.version = v
	}
	start := s.off
	var lb [4]byte
	if err := s.read(lb[:]); err != nil {
		return fail(s.index, start, err)
	}
	n := binary.LittleEndian.Uint32(lb[:])
	if n == endOfRecords {
		return nil, s.finish()
	}
	if n < recordFixed || n > maxBody {
		what := ""
		if bits.OnesCount32(n^endOfRecords) <= 2 {
			// A bit or two off 0xFFFFFFFF: more likely the end of the
			// records, damaged, than a record.
			what = fmt.Sprintf(", or the end-of-records marker %#08x damaged", uint32(endOfRecords))
		}
		return fail(s.index, start, fmt.Errorf("%w: record length %d%s", ErrFormat, n, what))
	}
	b, err := s.readBody(int(n))
	if err == nil {
		// From version 2 on, the file CRC leaves the record's own out.
		err = s.readCRC(b[n:], s.version < 2)
	}
	if err != nil {
		return fail(s.index, start, err)
	}
	i := s.index
	s.index++
	s.offsets = append(s.offsets, uint64(start))
	body := b[:n]
	if crc(body) != binary.LittleEndian.Uint32(b[n:]) {
		return nil, &RecordError{Shard: s.name, Index: i, Offset: start, Err: ErrChecksum}
	}
	if err := parseBody(body, &s.rec); err != nil {
		return fail(i, start, err)
	}
	return &s.rec, nil
}

// markerError is an end-of-records marker that reads otherwise, at offset.
type markerError struct {
	offset int64
	got    uint32
}

func (e *markerError) Error() string {
	return fmt.Sprintf("%v: the end-of-records marker before the index reads %#08x, not %#08x", ErrFormat, e.got, uint32(endOfRecords))
}

func (e *markerError) Unwrap() error { return ErrFormat }

// errFileChecksum is the whole-file CRC's mismatch: a record whose bytes
// changed fails it as well as its own CRC.
var errFileChecksum = fmt.Errorf("file: %w", ErrChecksum)

func (s *Scanner) finish() error {
	fail := func(err error) error {
		s.err = &RecordError{Shard: s.name, Index: -1, Offset: -1, Err: err}
		return s.err
	}
	indexOff := s.off
	idx := make([]byte, 8*len(s.offsets))
	if err := s.read(idx); err != nil {
		return fail(fmt.Errorf("index: %w", err))
	}
	var tb [trailerSize]byte
	crcBefore := s.fileCRC
	if _, err := io.ReadFull(s.br, tb[:]); err != nil {
		return fail(fmt.Errorf("%w: truncated trailer", ErrFormat))
	}
	t, err := parseTrailer(tb[:])
	if err != nil {
		return fail(err)
	}
	if t.indexOffset != uint64(indexOff) || t.count != uint64(len(s.offsets)) {
		return fail(fmt.Errorf("%w: trailer says %d records, index at %d; found %d, index at %d", ErrFormat, t.count, t.indexOffset, len(s.offsets), indexOff))
	}
	if crc(idx) != t.indexCRC {
		return fail(fmt.Errorf("index: %w", ErrChecksum))
	}
	for i, o := range s.offsets {
		if binary.LittleEndian.Uint64(idx[8*i:]) != o {
			return fail(fmt.Errorf("%w: index entry %d is %d, record is at %d", ErrFormat, i, binary.LittleEndian.Uint64(idx[8*i:]), o))
		}
	}
	if crc32.Update(crcBefore, castagnoli, tb[:20]) != t.fileCRC {
		return fail(errFileChecksum)
	}
	if n, _ := io.Copy(io.Discard, s.br); n != 0 {
		return fail(fmt.Errorf("%w: %d bytes after the trailer", ErrFormat, n))
	}
	s.done = true
	return io.EOF
}
