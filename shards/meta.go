package shards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/dirlock"
	"github.com/alexnet-repro/alexnet/internal/errs"
	"github.com/alexnet-repro/alexnet/internal/regfile"
)

// MetaFile is the name of the dataset description beside the shards.
const MetaFile = "meta.json"

// Class is one class: its index (the position of its WNID in sorted order),
// WNID and human-readable name.
type Class struct {
	Index int    `json:"index"`
	WNID  string `json:"wnid"`
	Name  string `json:"name"`
}

// Split describes the shards of one split.
type Split struct {
	Records int         `json:"records"`
	Skipped int         `json:"skipped"`
	Shards  []ShardInfo `json:"shards"`
}

// Stats are computed over every train pixel after resizing, in 0–255 units.
// PCAEigvec is [row][col]: column j is the unit eigenvector of PCAEigval[j],
// and the eigenvalues (variances of the covariance) are in descending order.
type Stats struct {
	Pixels    uint64        `json:"pixels"`
	Mean      [3]float64    `json:"mean"`
	Std       [3]float64    `json:"std"`
	Cov       [3][3]float64 `json:"cov"`
	PCAEigval [3]float64    `json:"pca_eigval"`
	PCAEigvec [3][3]float64 `json:"pca_eigvec"`
}

// IngestParams are the settings that shaped the shards. Nothing here may
// depend on the machine or the moment, since meta.json must come out
// byte-identical from identical inputs.
type IngestParams struct {
	Size        int    `json:"size"`
	Resize      string `json:"resize"`
	Codec       string `json:"codec"`
	ShardSize   int    `json:"shard_size"`
	Seed        uint64 `json:"seed"`
	TrainOrder  string `json:"train_order"`
	ValOrder    string `json:"val_order"`
	ColourSpace string `json:"colour_space"`
}

// Meta is meta.json.
type Meta struct {
	FormatVersion int `json:"format_version"`
	// Checksum is the CRC-32C of the file as written with this value's 8
	// hex digits as zeros (FORMAT.md): a digit flipped in a WNID, a count
	// or a statistic that leaves the file consistent is still caught.
	// WriteMeta sets it in the file; meta.json from earlier builds, or
	// with the field removed after a deliberate edit, has none.
	Checksum string           `json:"checksum,omitempty"`
	Ingest   IngestParams     `json:"ingest"`
	Width    int              `json:"width"`
	Height   int              `json:"height"`
	Channels int              `json:"channels"`
	Classes  []Class          `json:"classes"`
	Splits   map[string]Split `json:"splits"`
	Stats    *Stats           `json:"stats,omitempty"`
	// Unfinished names, by split, the splits an ingest run unlisted when
	// it began replacing their shards and has not listed again: a run
	// stopped midway leaves them part old, part new. Each note says how
	// to finish; readers give it where they find the split missing. A
	// run that writes such a split drops its note; one that writes only
	// the other split keeps it.
	Unfinished map[string]string `json:"unfinished,omitempty"`
}

// Missing explains why split has no records in m: the unfinished run's
// note when there is one, else that the split was not ingested.
func (m *Meta) Missing(split string) string {
	if note := m.Unfinished[split]; note != "" {
		return fmt.Sprintf("meta.json lists no %s split: %s", split, note)
	}
	return fmt.Sprintf("meta.json lists no %s records: was the %s split ingested?", split, split)
}

// WriteMeta writes meta.json atomically, with its checksum.
func WriteMeta(dir string, m *Meta) error {
	c := *m
	c.Checksum = zeroChecksum
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	i := bytes.Index(b, checksumKey) + len(checksumKey)
	copy(b[i:], fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli)))
	return WriteFileAtomic(filepath.Join(dir, MetaFile), b)
}

// The checksum field as MarshalIndent writes it, and its value while the
// checksum is taken.
var (
	checksumKey  = []byte(`"checksum": "`)
	zeroChecksum = "00000000"
)

// checkChecksum compares m.Checksum, read from the file b, with the
// CRC-32C of b with that value zeroed.
func checkChecksum(b []byte, m *Meta) error {
	if m.Checksum == "" {
		return nil
	}
	i := bytes.Index(b, checksumKey)
	if i < 0 || len(m.Checksum) != len(zeroChecksum) || !bytes.HasPrefix(b[i+len(checksumKey):], []byte(m.Checksum+`"`)) {
		return errors.New(`the checksum field is not as ingest writes it: the file was reformatted since; remove "checksum" if that was deliberate`)
	}
	z := bytes.Clone(b)
	copy(z[i+len(checksumKey):], zeroChecksum)
	if got := fmt.Sprintf("%08x", crc32.Checksum(z, castagnoli)); got != m.Checksum {
		return fmt.Errorf(`checksum %s, the file's bytes give %s: changed since ingest wrote it (a flipped bit: run the same ingest command again, which rewrites it from the shards; or an edit: remove "checksum" if the edit was deliberate)`, m.Checksum, got)
	}
	return nil
}

// maxMetaBytes bounds what is read of meta.json: ImageNet's is a few
// hundred kilobytes, and a damaged or foreign file must not fill memory.
const maxMetaBytes = 256 << 20

// ErrMetaVersion marks a whole meta.json of a format version this build
// does not read: another build's, not a damaged one.
var ErrMetaVersion = errors.New("meta.json of another format")

// MetaError is a meta.json that exists and was read but cannot be used:
// damaged. It is kept apart from a missing or unreadable file, and from one
// of another format version (ErrMetaVersion), because only this kind says
// the dataset itself is damaged.
type MetaError struct {
	Path string
	Err  error
}

func (e *MetaError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *MetaError) Unwrap() error { return e.Err }

// ErrNoDir marks ReadMeta's error for a path that names no folder: one
// that does not exist, or a file.
var ErrNoDir = errors.New("not a folder")

// IngestStateDir is the folder, inside the shard directory, where ingest
// keeps what it needs to resume (it writes it before any shard, and
// meta.json after the last).
const IngestStateDir = ".ingest-state"

// ReadMeta reads dir/meta.json and checks that it is one this build reads.
// A file that is there but unusable gives a *MetaError.
func ReadMeta(dir string) (*Meta, error) {
	fi, err := os.Stat(dir)
	// Neither is a folder of the wrong kind but a mistake in the command:
	// a usage error to the tools, as ingest's missing dataset is.
	if err == nil && !fi.IsDir() {
		// A checkpoint or a shard file given for the folder, say.
		return nil, errs.Mark(fmt.Errorf("%s is a file, not a shard directory (the folder ingest wrote, holding meta.json)", dir), ErrNoDir)
	}
	if errors.Is(err, os.ErrNotExist) {
		msg := fmt.Sprintf("shard directory %s does not exist", dir)
		if d := cli.DanglingLink(dir); d != "" {
			msg = fmt.Sprintf("shard directory %s is a %s", dir, d)
		} else if dir == "" {
			msg = "no shard directory given (an empty name)"
		}
		// Still a not-exist to errors.Is, as the stat's error was.
		return nil, errs.Mark(errs.Mark(errors.New(msg), ErrNoDir), os.ErrNotExist)
	}
	p := filepath.Join(dir, MetaFile)
	f, fi, err := regfile.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// ingest writes meta.json last: its state folder without it is
			// a first run stopped part-way, not a wrong folder.
			if fi, err := os.Lstat(filepath.Join(dir, IngestStateDir)); err == nil && fi.IsDir() {
				// One still running is not to be run again, which its
				// lock would refuse.
				if busy := dirlock.Probe(dir); busy != nil {
					return nil, fmt.Errorf("%s not found yet: an ingest is writing %s (%v)", p, dir, busy)
				}
				return nil, fmt.Errorf("%s not found: an ingest into %s did not finish, or its meta.json was removed since (its state is in %s/, and %s says how it ended); the same ingest command resumes it", p, dir, IngestStateDir, filepath.Join(dir, "ingest-report.json"))
			}
			return nil, fmt.Errorf("%s not found: is %s a shard directory written by ingest?", p, dir)
		}
		return nil, err
	}
	defer f.Close()
	// Refused by its size before it is read (a 256 MiB file took 7 s and
	// 600 MB to refuse).
	if fi.Size() > maxMetaBytes {
		return nil, &MetaError{Path: p, Err: fmt.Errorf("%d bytes, larger than %d MiB", fi.Size(), maxMetaBytes>>20)}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxMetaBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(b) > maxMetaBytes {
		return nil, &MetaError{Path: p, Err: fmt.Errorf("larger than %d MiB", maxMetaBytes>>20)}
	}
	m, err := ParseMeta(bytes.NewReader(b))
	if errors.Is(err, ErrMetaVersion) {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if err != nil {
		return nil, &MetaError{Path: p, Err: err}
	}
	return m, nil
}

// ParseMeta decodes and validates a meta.json stream.
func ParseMeta(r io.Reader) (*Meta, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMetaBytes))
	if err != nil {
		return nil, err
	}
	// What an editor's "save" adds: the decoder's "invalid character 'ï'"
	// would not say so.
	if bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		return nil, errors.New("begins with a UTF-8 byte-order mark, which an editor adds on saving: ingest writes meta.json, never an editor (run ingest again to rewrite it)")
	}
	var m Meta
	dec := json.NewDecoder(bytes.NewReader(b))
	// No field has ever been dropped from meta.json, so an unknown one is
	// damage: a bit flipped in "checksum" would otherwise hide the
	// checksum itself.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, jsonProblem(err)
	}
	// Decode stops after the first value, so bytes appended to a good
	// file would otherwise pass unnoticed.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON document, from byte %d", dec.InputOffset())
	}
	// meta.json itself is the same in every version so far; its number is
	// that of the shards the ingest wrote beside it.
	if m.FormatVersion == 0 {
		// ingest always writes one: this is no meta.json of any build.
		return nil, errors.New("no format_version: not a meta.json that ingest wrote")
	}
	if m.FormatVersion < MinVersion || m.FormatVersion > Version {
		// A flipped bit in the version digit reads as another build's
		// file; the checksum, the same in every version so far, tells
		// the two apart.
		if err := checkChecksum(b, &m); err != nil {
			return nil, fmt.Errorf("format version %d, which this build (%d to %d) does not read, and %w", m.FormatVersion, MinVersion, Version, err)
		}
		return nil, fmt.Errorf("%w: format version %d, this build reads %d to %d", ErrMetaVersion, m.FormatVersion, MinVersion, Version)
	}
	if err := checkChecksum(b, &m); err != nil {
		return nil, err
	}
	if m.Width <= 0 || m.Height <= 0 || m.Channels != 3 || m.Width > MaxWrittenSide || m.Height > MaxWrittenSide {
		return nil, fmt.Errorf("bad image shape %d×%d×%d (ingest writes 3 channels, sides 1 to %d)", m.Width, m.Height, m.Channels, MaxWrittenSide)
	}
	if len(m.Classes) == 0 && m.Splits["train"].Records > 0 {
		return nil, errors.New("no classes, but train records: ingest lists the classes its train records are labelled with")
	}
	// An index is the WNID's position in sorted order: WNIDs out of order
	// or repeated would put scores under other classes' names.
	for i, c := range m.Classes {
		switch {
		case c.Index != i:
			return nil, fmt.Errorf("class %d has index %d", i, c.Index)
		case c.WNID == "":
			return nil, fmt.Errorf("class %d has no WNID", i)
		case i > 0 && c.WNID <= m.Classes[i-1].WNID:
			return nil, fmt.Errorf("class %d's WNID %q does not sort after class %d's %q: the classes are not in sorted order", i, c.WNID, i-1, m.Classes[i-1].WNID)
		}
	}
	if err := m.Stats.check(); err != nil {
		return nil, err
	}
	listed := map[string]string{} // shard file → its split, for files listed twice
	for _, name := range []string{"train", "val"} {
		for _, sh := range m.Splits[name].Shards {
			if other, ok := listed[sh.File]; ok {
				return nil, fmt.Errorf("shard %s is listed twice (in %s and %s): each file holds one shard of one split", cli.Name(sh.File), other, name)
			}
			listed[sh.File] = name
		}
	}
	for name := range m.Unfinished {
		if _, listed := m.Splits[name]; listed || name != "train" && name != "val" {
			return nil, fmt.Errorf("unfinished split %q: ingest unlists only train or val, and lists no split it calls unfinished", name)
		}
	}
	for name, s := range m.Splits {
		if name != "train" && name != "val" {
			return nil, fmt.Errorf("split %q: ingest writes only train and val", name)
		}
		if s.Skipped < 0 {
			return nil, fmt.Errorf("split %s: %d skipped", name, s.Skipped)
		}
		n := 0
		for _, sh := range s.Shards {
			if sh.Records < 0 || sh.Bytes < 0 || filepath.Base(sh.File) != sh.File || sh.File == "" || sh.File == "." || sh.File == ".." {
				return nil, fmt.Errorf("split %s: bad shard entry: file %s, %d records, %d bytes", name, cli.Name(sh.File), sh.Records, sh.Bytes)
			}
			n += sh.Records
		}
		if n != s.Records {
			return nil, fmt.Errorf("split %s: shards hold %d records, split says %d", name, n, s.Records)
		}
	}
	return &m, nil
}

// MaxWrittenSide is the largest image side ingest writes (its --size
// limit): one 4096² image is 48 MiB of pixels per worker, and nothing
// trains at more. meta.json's and a checkpoint's sides are bounded by it,
// so that an edited or damaged number cannot size a buffer.
const MaxWrittenSide = 4096

// check rejects statistics no pixels could have: not finite, a mean
// outside 0–255, a negative spread. The pipeline normalises and lights
// every image with them.
func (st *Stats) check() error {
	if st == nil {
		return nil
	}
	var all []float64
	all = append(all, st.Mean[:]...)
	all = append(all, st.Std[:]...)
	all = append(all, st.PCAEigval[:]...)
	for i := range 3 {
		all = append(all, st.Cov[i][:]...)
		all = append(all, st.PCAEigvec[i][:]...)
	}
	for _, v := range all {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("stats: a value that is not a finite number")
		}
	}
	for c := range 3 {
		if st.Mean[c] < 0 || st.Mean[c] > 255 || st.Std[c] < 0 || st.Std[c] > 255 {
			return fmt.Errorf("stats: channel %d has mean %g and std %g, outside 0–255", c, st.Mean[c], st.Std[c])
		}
	}
	// What pixels of 0–255 can give: a variance of at most 127.5², PCA
	// eigenvalues that sum to the variances (each at most their most),
	// unit eigenvectors (or none: all zero, no lighting). Finite as
	// float64 is not enough: 1e300 is +Inf as the float32 the lighting
	// uses, and every training image would get +Inf added. (The std is
	// not held to the covariance: tests and tools write stats with a mean
	// and std alone, and the trainer refuses a std of 0 by name.)
	const maxVar = 127.5 * 127.5
	tol := func(x float64) float64 { return 1e-6 * (1 + math.Abs(x)) }
	trace := 0.0
	for i := range 3 {
		for j := range 3 {
			if c := st.Cov[i][j]; math.Abs(c) > maxVar || c != st.Cov[j][i] || i == j && c < 0 {
				return fmt.Errorf("stats: covariance [%d][%d] is %g, which no pixels of 0–255 give", i, j, c)
			}
		}
		trace += st.Cov[i][i]
	}
	sum := 0.0
	for j, v := range st.PCAEigval {
		if v < -tol(trace) || v > 3*maxVar || j > 0 && v > st.PCAEigval[j-1]+tol(v) {
			return fmt.Errorf("stats: PCA eigenvalue %d is %g (of %v): they are the covariance's, at least 0, in descending order", j, v, st.PCAEigval)
		}
		sum += v
		norm := st.PCAEigvec[0][j]*st.PCAEigvec[0][j] + st.PCAEigvec[1][j]*st.PCAEigvec[1][j] + st.PCAEigvec[2][j]*st.PCAEigvec[2][j]
		// Published eigenvectors come rounded to 3 decimals (norm 0.99999).
		if math.Abs(norm-1) > 1e-2 && norm != 0 {
			return fmt.Errorf("stats: PCA eigenvector %d has length %g, not 1", j, math.Sqrt(norm))
		}
	}
	// Checked where the covariance is given: stats written with published
	// constants (cuda-convnet's) may hold the eigenvalues alone.
	if trace > 0 && math.Abs(sum-trace) > tol(trace) {
		return fmt.Errorf("stats: the PCA eigenvalues sum to %g, the covariance's variances to %g", sum, trace)
	}
	return nil
}

// jsonProblem words encoding/json's errors for a damaged file: its bare
// "EOF" for an empty one tells nobody what is wrong.
func jsonProblem(err error) error {
	var se *json.SyntaxError
	switch {
	case err == io.EOF:
		return errors.New("empty (no JSON in it)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("truncated: the JSON ends mid-document (%w)", err)
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
	}
	return err
}

// CheckRecord reports what in a record's header contradicts meta.json. The
// CRCs only say the bytes are as written; a writer's bug or a crafted
// record can carry a label or shape that training would reject only when it
// reaches it, and a shape that would make a decoder allocate gigabytes.
// Train records need a label; other splits may carry -1, which ingest
// writes for a validation image it has no label for.
func (m *Meta) CheckRecord(split string, rec *Record) error {
	var bad []string
	if rec.W != m.Width || rec.H != m.Height || rec.Channels != m.Channels {
		bad = append(bad, fmt.Sprintf("%d×%d×%d image, meta.json says the shards hold %d×%d×%d",
			rec.W, rec.H, rec.Channels, m.Width, m.Height, m.Channels))
	}
	switch {
	case rec.Label == -1 && split == "train":
		bad = append(bad, "train record without a label (-1)")
	case rec.Label < -1 || int64(rec.Label) >= int64(len(m.Classes)):
		bad = append(bad, fmt.Sprintf("label %d outside the %d classes in meta.json", rec.Label, len(m.Classes)))
	}
	if rec.Codec > CodecGradHuff {
		bad = append(bad, fmt.Sprintf("codec %d, which this build cannot decode", rec.Codec))
	}
	// IDs are positions in the split's listing, skipped files included:
	// the pipeline refuses any other, so verify must too.
	if sp := m.Splits[split]; rec.ID >= uint64(sp.Records+sp.Skipped) {
		bad = append(bad, fmt.Sprintf("ID %d, past the split's %d IDs (%d records, %d skipped)", rec.ID, sp.Records+sp.Skipped, sp.Records, sp.Skipped))
	}
	if len(bad) == 0 {
		return nil
	}
	return errors.New(strings.Join(bad, "; "))
}

// ShardPaths lists a split's shard files under dir, in order.
func (m *Meta) ShardPaths(dir, split string) []string {
	s := m.Splits[split]
	out := make([]string, len(s.Shards))
	for i, sh := range s.Shards {
		out[i] = filepath.Join(dir, sh.File)
	}
	return out
}

// ShardName is the file name of a split's i-th shard.
func ShardName(split string, i int) string { return fmt.Sprintf("%s-%05d.shard", split, i) }
