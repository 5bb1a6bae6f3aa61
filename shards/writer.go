package shards

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
)

// Writer writes one shard. Records go to a temporary file beside the
// destination; Close seals it and renames it into place, so a reader never
// sees a partial shard and a killed run leaves only a ".tmp" to discard
// (TempName's).
type Writer struct {
	path, tmp string
	f         *os.File
	bw        *bufio.Writer
	fileCRC   uint32
	off       int64
	offsets   []uint64
	scratch   []byte
	err       error
}

// Create starts a shard that will appear at path when Close succeeds.
func Create(path string) (*Writer, error) {
	// The rename at Close cannot replace a folder: say so now, before the
	// shard's images are decoded, rather than "file exists" after.
	if fi, err := os.Lstat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("shard %s is a directory, not a shard: remove it and run again", path)
	}
	f, tmp, err := createTemp(path)
	if err != nil {
		return nil, err
	}
	w := &Writer{path: path, tmp: tmp, f: f, bw: bufio.NewWriterSize(f, 1<<20)}
	w.write(appendHeader(nil))
	return w, w.err
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("shard %s: %w", w.path, err)
		return
	}
	w.fileCRC = crc32.Update(w.fileCRC, castagnoli, b)
	w.off += int64(len(b))
}

// Append adds a record.
func (w *Writer) Append(r *Record) error {
	if w.err != nil {
		return w.err
	}
	if len(r.Name) > MaxNameLen {
		return fmt.Errorf("shard %s: record name of %d bytes exceeds %d", w.path, len(r.Name), MaxNameLen)
	}
	if r.W <= 0 || r.H <= 0 || r.W > 0xFFFF || r.H > 0xFFFF || r.Channels != 3 {
		return fmt.Errorf("shard %s: record %q has unsupported shape %d×%d×%d", w.path, r.Name, r.W, r.H, r.Channels)
	}
	// Length, body and CRC go out as one slice so the CRC covers exactly
	// the bytes a reader will check.
	b := w.scratch[:0]
	b = append(b, 0, 0, 0, 0)
	b = appendBody(b, r)
	bodyLen := len(b) - 4
	if bodyLen >= maxBody {
		return fmt.Errorf("shard %s: record %q body of %d bytes exceeds %d", w.path, r.Name, bodyLen, maxBody)
	}
	binary.LittleEndian.PutUint32(b, uint32(bodyLen))
	b = binary.LittleEndian.AppendUint32(b, crc(b[4:]))
	w.offsets = append(w.offsets, uint64(w.off))
	// The record's CRC field stays out of the file CRC (format version 2):
	// in it, it would cancel the body it follows.
	w.write(b[:len(b)-4])
	saved := w.fileCRC
	w.write(b[len(b)-4:])
	w.fileCRC = saved
	w.scratch = b
	return w.err
}

// Count is the number of records appended so far.
func (w *Writer) Count() int { return len(w.offsets) }

// ShardInfo describes a sealed shard for meta.json.
type ShardInfo struct {
	File    string `json:"file"`
	Records int    `json:"records"`
	Bytes   int64  `json:"bytes"`
	CRC32C  string `json:"crc32c"` // whole-file checksum, as stored in the trailer
}

// LargerOnDisk gives the size of dir's file for s when it is a regular file
// larger than s lists: not that shard, and not one to open, since its
// trailer could claim an index as large as the file (a crafted or foreign
// file), which reading it would allocate.
func (s ShardInfo) LargerOnDisk(dir string) (int64, bool) {
	fi, err := os.Stat(filepath.Join(dir, s.File))
	if err != nil || !fi.Mode().IsRegular() || s.Bytes <= 0 || fi.Size() <= s.Bytes {
		return 0, false
	}
	return fi.Size(), true
}

// Close writes the index and trailer, fsyncs, and renames the shard into
// place (then fsyncs the directory so the rename survives a crash).
func (w *Writer) Close() (ShardInfo, error) {
	if w.err != nil {
		w.Abort()
		return ShardInfo{}, w.err
	}
	var marker [4]byte
	binary.LittleEndian.PutUint32(marker[:], endOfRecords)
	w.write(marker[:])
	indexOff := w.off
	idx := make([]byte, 0, 8*len(w.offsets))
	for _, o := range w.offsets {
		idx = binary.LittleEndian.AppendUint64(idx, o)
	}
	w.write(idx)
	t := trailer{indexOffset: uint64(indexOff), count: uint64(len(w.offsets)), indexCRC: crc(idx)}
	// The file CRC covers everything before its own field.
	tb := t.append(nil)
	w.fileCRC = crc32.Update(w.fileCRC, castagnoli, tb[:20])
	t.fileCRC = w.fileCRC
	tb = t.append(nil)
	if w.err == nil {
		if _, err := w.bw.Write(tb); err != nil {
			w.err = err
		}
		w.off += trailerSize
	}
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err == nil {
		w.err = w.f.Sync()
	}
	if cerr := w.f.Close(); w.err == nil {
		w.err = cerr
	}
	if w.err == nil {
		w.err = os.Rename(w.tmp, w.path)
	}
	if w.err == nil {
		w.err = SyncDir(filepath.Dir(w.path))
	}
	if w.err != nil {
		os.Remove(w.tmp)
		return ShardInfo{}, fmt.Errorf("shard %s: %w", w.path, w.err)
	}
	return ShardInfo{File: filepath.Base(w.path), Records: len(w.offsets), Bytes: w.off, CRC32C: fmt.Sprintf("%08x", t.fileCRC)}, nil
}

// Abort discards the temporary file.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.tmp)
}

// TempPattern is the glob of the temporary files that Create and
// WriteFileAtomic write beside path, for tests and a person's shell; code
// that removes files matches names with IsTempOf, as path's own folder
// may hold pattern characters.
func TempPattern(path string) string { return path + ".*.tmp" }

// IsTempOf says whether name (a base name) is a temporary file Create or
// WriteFileAtomic made for base, or one of the fixed name earlier builds
// used (base.tmp): what a killed run leaves, for a caller holding the
// folder's lock to clear by exact name, never by a pattern a folder's own
// name could widen.
func IsTempOf(name, base string) bool {
	if name == base+".tmp" {
		return true
	}
	mid, ok := strings.CutPrefix(name, base+".")
	if !ok {
		return false
	}
	mid, ok = strings.CutSuffix(mid, ".tmp")
	return ok && len(mid) == 8 && strings.Trim(mid, "0123456789abcdef") == ""
}

// TempBase is IsTempOf the other way round: the base a temporary file
// name was made for, and whether name is one.
func TempBase(name string) (base string, ok bool) {
	rest, ok := strings.CutSuffix(name, ".tmp")
	if !ok || rest == "" {
		return "", false
	}
	if i := len(rest) - 9; i > 0 && rest[i] == '.' && IsTempOf(name, rest[:i]) {
		return rest[:i], true
	}
	return rest, true
}

// RemoveTemps removes the regular files in dir that are temporary files
// made for a base ours claims: what a killed run of the folder's owner
// left (ingest's --out, under its lock). Other files ending in .tmp are
// the user's, and stay.
func RemoveTemps(dir string, ours func(base string) bool) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if base, ok := TempBase(e.Name()); ok && e.Type().IsRegular() && ours(base) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// MakeTemp makes a new file beside path under an unused temporary name
// (path.XXXXXXXX.tmp, which IsTempOf matches) and returns the name. create
// must create the file there and fail with fs.ErrExist if the name is
// taken, as O_EXCL and link(2) do: then another name is tried.
func MakeTemp(path string, create func(tmp string) error) (string, error) {
	for range 100 {
		tmp := fmt.Sprintf("%s.%08x.tmp", path, rand.Uint32())
		err := create(tmp)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		return tmp, nil
	}
	return "", fmt.Errorf("%s: no unused temporary name beside it", path)
}

// createTemp creates a new, empty temporary file beside path, under a name
// no one else uses: O_EXCL never opens what is already there, so neither
// a symbolic link planted at the name (its target would get the bytes,
// and the link be renamed into place) nor another writer's file can be.
func createTemp(path string) (*os.File, string, error) {
	var f *os.File
	tmp, err := MakeTemp(path, func(tmp string) (err error) {
		f, err = os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		return err
	})
	return f, tmp, err
}

// SyncDir fsyncs a directory so that renames into it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// AtomicTarget returns the file WriteFileAtomic(path) would replace, or
// why it would refuse: a caller about to remove other files first (train's
// --overwrite) asks before it removes anything.
//
// The rename replaces whatever the name is. A symbolic link is written
// through, so the link stays and its target gets the bytes; anything else
// that is not a regular file (/dev/full, a pipe, a folder) is refused
// rather than silently replaced by a file.
func AtomicTarget(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return path, nil
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		real, err := filepath.EvalSymlinks(path)
		if err != nil {
			return "", fmt.Errorf("%s: a symbolic link that does not resolve: %w", path, err)
		}
		path = real
		if fi, err = os.Stat(path); err != nil {
			return "", err
		}
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is %s, not a regular file: not replacing it", path, cli.FileKind(fi.Mode()))
	}
	return path, nil
}

// WriteFileAtomic writes data to path through a synced temporary file and a
// rename, for meta.json and reports.
func WriteFileAtomic(path string, data []byte) error {
	path, err := AtomicTarget(path)
	if err != nil {
		return err
	}
	f, tmp, err := createTemp(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}
