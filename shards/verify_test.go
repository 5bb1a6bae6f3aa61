package shards

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/dirlock"
)

func TestCheckRecord(t *testing.T) {
	m := &Meta{Width: 8, Height: 8, Channels: 3, Classes: []Class{{0, "a", ""}, {1, "b", ""}, {2, "c", ""}},
		Splits: map[string]Split{"train": {Records: 5, Skipped: 1}, "val": {Records: 3}}}
	ok := Record{ID: 2, W: 8, H: 8, Channels: 3, Label: 2, Codec: CodecGradHuff}
	for _, c := range []struct {
		name, split string
		edit        func(*Record)
		want        string // "" when the record is fine
	}{
		{"good train record", "train", func(*Record) {}, ""},
		{"unlabelled val record", "val", func(r *Record) { r.Label = -1 }, ""},
		{"label past the classes", "train", func(r *Record) { r.Label = 999 }, "label 999 outside the 3 classes"},
		{"label just past the classes", "val", func(r *Record) { r.Label = 3 }, "label 3 outside the 3 classes"},
		{"unlabelled train record", "train", func(r *Record) { r.Label = -1 }, "train record without a label (-1)"},
		{"negative label in val", "val", func(r *Record) { r.Label = -5 }, "label -5 outside"},
		{"huge image", "train", func(r *Record) { r.W, r.H = 65535, 65535 }, "65535×65535×3 image, meta.json says the shards hold 8×8×3"},
		{"smaller image", "val", func(r *Record) { r.H = 4 }, "8×4×3 image"},
		{"unknown codec", "train", func(r *Record) { r.Codec = 9 }, "codec 9"},
		{"two faults", "train", func(r *Record) { r.W, r.Label = 7, 5 }, "7×8×3 image, meta.json says the shards hold 8×8×3; label 5 outside"},
		// IDs count the split's listing, its skipped files included.
		{"last ID, a skipped file's place counted", "train", func(r *Record) { r.ID = 5 }, ""},
		{"ID past the split", "train", func(r *Record) { r.ID = 6 }, "ID 6, past the split's 6 IDs (5 records, 1 skipped)"},
		{"ID past a smaller split", "val", func(r *Record) { r.ID = 3 }, "ID 3, past the split's 3 IDs (3 records, 0 skipped)"},
		{"huge ID", "val", func(r *Record) { r.ID = 4000000000 }, "ID 4000000000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := ok
			c.edit(&r)
			err := m.CheckRecord(c.split, &r)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

// A record whose header contradicts meta.json is damage that names it, and
// is not decoded: a 65535² header would have the decoder allocate 12 GB.
func TestVerifyWithChecksHeaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "train-00000.shard")
	recs, _ := writeTestShardSized(t, path, 6, CodecGradHuff, 8, 1)
	m := &Meta{Width: 8, Height: 8, Channels: 3, Classes: make([]Class, 7), Splits: map[string]Split{"val": {Records: 2000}}}
	for _, decode := range []bool{false, true} {
		if v := VerifyWith(path, decode, func(r *Record) error { return m.CheckRecord("val", r) }); len(v.Damage) != 0 || v.Records != 6 {
			t.Fatalf("clean shard, decode %v: %+v", decode, v)
		}
	}
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	recs[1].Label = 999
	recs[4].W, recs[4].H = 65535, 65535
	for i := range recs {
		if err := w.Append(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, decode := range []bool{false, true} {
		v := VerifyWith(path, decode, func(r *Record) error { return m.CheckRecord("val", r) })
		if len(v.Damage) != 2 || v.Records != 4 ||
			v.Damage[0].Error() != "shard train-00000.shard record 1: label 999 outside the 7 classes in meta.json" ||
			v.Damage[1].Error() != "shard train-00000.shard record 4: 65535×65535×3 image, meta.json says the shards hold 8×8×3" {
			t.Fatalf("decode %v: %d records ok, damage %v", decode, v.Records, v.Damage)
		}
	}
}

// A fault in the file's framing is one fault: Verify names it once, and
// the reader that training opens shards with gives the same reason.
func TestVerifyNamesFramingFaultOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.shard")
	writeTestShard(t, path, 3, CodecGradHuff)
	orig, _ := os.ReadFile(path)
	for _, c := range []struct {
		name   string
		mutate func([]byte) []byte
		verify string // Verify's one damage
		reader string // NewReader's error
	}{
		{"bytes appended", func(b []byte) []byte { return append(b, "15 stray bytes!"...) },
			"15 bytes after the trailer", "15 bytes after the trailer"},
		{"appended bytes holding trailer magic", func(b []byte) []byte {
			return append(b, append(make([]byte, 40), trailerMagic[:]...)...)
		}, "48 bytes after the trailer", "48 bytes after the trailer"},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b },
			"bad magic", "bad magic"},
		{"trailer cut short", func(b []byte) []byte { return b[:len(b)-10] },
			"truncated trailer", "no trailer (incomplete or not a shard)"},
		// The cut ends the file inside the records: the missing trailer
		// is the same fault, not a second one.
		{"cut inside record 1", func(b []byte) []byte { return b[:len(b)/2] },
			"record 1 (offset", "no trailer (incomplete or not a shard)"},
		{"cut inside record 0", func(b []byte) []byte { return b[:20] },
			"record 0 (offset 16): malformed shard: truncated", "too short"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := c.mutate(bytes.Clone(orig))
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			v := Verify(path, false)
			if len(v.Damage) != 1 || !strings.Contains(v.Damage[0].Error(), c.verify) {
				t.Errorf("Verify: %v, want one damage saying %q", v.Damage, c.verify)
			}
			if _, err := NewReader("s.shard", bytes.NewReader(b), int64(len(b))); err == nil || !strings.Contains(err.Error(), c.reader) {
				t.Errorf("NewReader: %v, want %q", err, c.reader)
			}
		})
	}
}

func TestReadMetaNamesDamage(t *testing.T) {
	dir := t.TempDir()
	good := &Meta{FormatVersion: Version, Width: 4, Height: 4, Channels: 3, Classes: []Class{{0, "n0", "zero"}}}
	if err := WriteMeta(dir, good); err != nil {
		t.Fatal(err)
	}
	whole, _ := os.ReadFile(filepath.Join(dir, MetaFile))
	for _, c := range []struct {
		name, content, want string
	}{
		{"empty", "", "meta.json: empty (no JSON in it)"},
		{"only whitespace", " \n", "empty"},
		{"truncated", string(whole[:len(whole)/2]), "truncated: the JSON ends mid-document"},
		{"invalid", `{"format_version": ?}`, "invalid JSON at byte 20: invalid character '?'"},
		{"data after the document", string(whole) + "}garbage", "data after the JSON document"},
		{"an editor's byte-order mark", "\xef\xbb\xbf" + string(whole), "meta.json: begins with a UTF-8 byte-order mark"},
		{"wrong shape", `{"format_version":1,"width":4,"height":4,"channels":1}`, "bad image shape"},
		{"absurd side", `{"format_version":2,"width":4611686018427387904,"height":4,"channels":3}`, "bad image shape"},
		// Above ingest's --size limit: 60000 px would size a 10.8 GB buffer in predict.
		{"side ingest never writes", `{"format_version":2,"width":60000,"height":60000,"channels":3}`, "sides 1 to 4096"},
		{"train records without classes", `{"format_version":2,"width":4,"height":4,"channels":3,"splits":{"train":{"records":1,"shards":[{"file":"train-00000.shard","records":1,"bytes":9}]}}}`,
			"no classes, but train records"},
		{"negative bytes", `{"format_version":2,"width":4,"height":4,"channels":3,"splits":{"val":{"records":0,"shards":[{"file":"val-00000.shard","records":0,"bytes":-5}]}}}`,
			"bad shard entry: file val-00000.shard, 0 records, -5 bytes"},
		{"a shard in both splits", `{"format_version":2,"width":4,"height":4,"channels":3,"classes":[{"index":0,"wnid":"n1"}],"splits":{"train":{"records":1,"shards":[{"file":"s.shard","records":1,"bytes":9}]},"val":{"records":1,"shards":[{"file":"s.shard","records":1,"bytes":9}]}}}`,
			"shard s.shard is listed twice (in train and val)"},
		{"no version", `{}`, "no format_version"},
		{"null", `null`, "no format_version"},
		{"classes out of order", `{"format_version":2,"width":4,"height":4,"channels":3,"classes":[{"index":0,"wnid":"n2"},{"index":1,"wnid":"n1"}]}`,
			`class 1's WNID "n1" does not sort after class 0's "n2"`},
		{"a WNID twice", `{"format_version":2,"width":4,"height":4,"channels":3,"classes":[{"index":0,"wnid":"n1"},{"index":1,"wnid":"n1"}]}`,
			"not in sorted order"},
		{"no WNID", `{"format_version":2,"width":4,"height":4,"channels":3,"classes":[{"index":0,"wnid":""}]}`, "class 0 has no WNID"},
		{"a split ingest does not write", `{"format_version":2,"width":4,"height":4,"channels":3,"splits":{"foo":{"records":0,"shards":[]}}}`, `split "foo"`},
		{"a listed split called unfinished", `{"format_version":2,"width":4,"height":4,"channels":3,"splits":{"val":{"records":0,"shards":[]}},"unfinished":{"val":"x"}}`, `unfinished split "val"`},
		{"an unfinished split ingest does not write", `{"format_version":2,"width":4,"height":4,"channels":3,"unfinished":{"test":"x"}}`, `unfinished split "test"`},
		{"negative skipped", `{"format_version":2,"width":4,"height":4,"channels":3,"splits":{"val":{"records":0,"skipped":-4,"shards":[]}}}`, "-4 skipped"},
		{"mean outside 0-255", `{"format_version":2,"width":4,"height":4,"channels":3,"stats":{"mean":[300,1,1],"std":[1,1,1]}}`, "channel 0 has mean 300"},
		// Statistics no pixels of 0–255 give: 1e300 is +Inf as a float32, and
		// lighting would add it to every training image.
		{"eigenvalue past any pixels'", `{"format_version":2,"width":4,"height":4,"channels":3,"stats":{"mean":[1,1,1],"std":[1,1,1],"pca_eigval":[1e300,0,0]}}`, "PCA eigenvalue 0 is 1e+300"},
		{"eigenvalues ascending", `{"format_version":2,"width":4,"height":4,"channels":3,"stats":{"mean":[1,1,1],"std":[1,1,1],"pca_eigval":[1,2,0]}}`, "PCA eigenvalue 1 is 2"},
		{"variance past 127.5²", `{"format_version":2,"width":4,"height":4,"channels":3,"stats":{"mean":[1,1,1],"std":[1,1,1],"cov":[[20000,0,0],[0,1,0],[0,0,1]]}}`, "covariance [0][0] is 20000"},
		{"covariance not symmetric", `{"format_version":2,"width":4,"height":4,"channels":3,"stats":{"mean":[1,1,1],"std":[1,1,1],"cov":[[1,5,0],[0,1,0],[0,0,1]]}}`, "covariance [0][1] is 5"},
		{"eigenvector not unit", `{"format_version":2,"width":4,"height":4,"channels":3,"stats":{"mean":[1,1,1],"std":[1,1,1],"pca_eigvec":[[10,0,0],[0,0,0],[0,0,0]]}}`, "PCA eigenvector 0 has length 10"},
		{"eigenvalues not the covariance's", `{"format_version":2,"width":4,"height":4,"channels":3,"stats":{"mean":[1,1,1],"std":[10,10,10],"cov":[[100,0,0],[0,100,0],[0,0,100]],"pca_eigval":[1000,0,0]}}`, "the PCA eigenvalues sum to 1000, the covariance's variances to 300"},
		{"negative std", `{"format_version":2,"width":4,"height":4,"channels":3,"stats":{"mean":[1,1,1],"std":[1,-1,1]}}`, "channel 1 has mean 1 and std -1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, MetaFile), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadMeta(dir)
			var me *MetaError
			if !errors.As(err, &me) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v (%T), want a *MetaError saying %q", err, err, c.want)
			}
		})
	}
	// An oversized file is refused by its size, unread (sparse here).
	if err := os.Truncate(filepath.Join(dir, MetaFile), maxMetaBytes+1); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMeta(dir); !errors.As(err, new(*MetaError)) || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes, larger than 256 MiB", maxMetaBytes+1)) {
		t.Fatalf("an oversized meta.json: %v", err)
	}
	// Not there at all is a wrong directory, not a damaged dataset; a
	// whole file of another format version is another build's.
	if _, err := ReadMeta(t.TempDir()); err == nil || errors.As(err, new(*MetaError)) {
		t.Fatalf("missing meta.json: %v", err)
	}
	// A file given for the directory (a checkpoint, say) is named as such.
	file := filepath.Join(t.TempDir(), "checkpoint.ckpt")
	os.WriteFile(file, []byte("ALXCKPT1"), 0o644)
	if _, err := ReadMeta(file); err == nil || !strings.Contains(err.Error(), "is a file, not a shard directory") {
		t.Fatalf("a file for the directory: %v", err)
	}
	// Another build's file has its own valid checksum: written, not edited.
	m, err := ParseMeta(bytes.NewReader(whole))
	if err != nil {
		t.Fatal(err)
	}
	m.FormatVersion = 99
	if err := WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMeta(dir); !errors.Is(err, ErrMetaVersion) || errors.As(err, new(*MetaError)) || !strings.Contains(err.Error(), "format version 99") {
		t.Fatalf("another format version: %v", err)
	}
	// The same number reached by a flipped bit in ingest's own file is
	// damage: the checksum no longer matches.
	for _, flip := range []string{`"format_version": 3`, `"format_version": 0`, `"format_version": 9`} {
		if flip == fmt.Sprintf(`"format_version": %d`, Version) || flip == fmt.Sprintf(`"format_version": %d`, MinVersion) {
			continue
		}
		flipped := strings.Replace(string(whole), fmt.Sprintf(`"format_version": %d`, Version), flip, 1)
		if flipped == string(whole) {
			t.Fatal("the test could not change the format version")
		}
		os.WriteFile(filepath.Join(dir, MetaFile), []byte(flipped), 0o644)
		var me *MetaError
		if _, err := ReadMeta(dir); !errors.As(err, &me) || errors.Is(err, ErrMetaVersion) {
			t.Errorf("%s by a flipped bit: %v, want a *MetaError (damage)", flip, err)
		}
	}
}

// A flip in a record's length field breaks that record only: the records
// after it are found through the index, not at the offset the damaged
// length points to, and are not blamed.
func TestVerifyLengthFlipBlamesOnlyItsRecord(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.shard")
	writeTestShard(t, path, 3, CodecGradHuff)
	b, _ := os.ReadFile(path)
	for _, bit := range []byte{0x01, 0x04, 0x80} {
		c := bytes.Clone(b)
		c[16] ^= bit // record 0's length field starts at byte 16
		if err := os.WriteFile(path, c, 0o644); err != nil {
			t.Fatal(err)
		}
		v := Verify(path, true)
		if len(v.Damage) != 1 || !strings.Contains(v.Damage[0].Error(), "record 0 ") || v.Records != 2 {
			t.Errorf("bit %#x: %d intact, damage %v; want record 0 alone named, 2 intact", bit, v.Records, v.Damage)
		}
	}
}

// meta.json's checksum catches what its consistency checks cannot: a
// WNID or a statistic changed to another plausible value. Every single
// bit flipped anywhere in the file is refused; removing the field (after
// a deliberate edit) is accepted.
func TestMetaChecksum(t *testing.T) {
	dir := t.TempDir()
	m := &Meta{FormatVersion: Version, Width: 4, Height: 4, Channels: 3,
		Classes: []Class{{0, "n01440764", "tench"}, {1, "n01443537", "goldfish"}},
		Splits:  map[string]Split{"val": {Records: 3, Shards: []ShardInfo{{File: "val-00000.shard", Records: 3, Bytes: 99, CRC32C: "0badf00d"}}}},
		Stats:   &Stats{Pixels: 48, Mean: [3]float64{120.5, 110.25, 100}, Std: [3]float64{60, 58, 57}}}
	if err := WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, MetaFile)
	good, _ := os.ReadFile(path)
	got, err := ReadMeta(dir)
	if err != nil || len(got.Checksum) != 8 || got.Checksum == zeroChecksum {
		t.Fatalf("a written meta.json: checksum %q, %v", got.Checksum, err)
	}
	accepted := 0
	for i := range good {
		for _, bit := range []byte{0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80} {
			b := bytes.Clone(good)
			b[i] ^= bit
			if _, err := ParseMeta(bytes.NewReader(b)); err == nil {
				accepted++
				if accepted <= 5 {
					t.Errorf("byte %d ^ %#x accepted: %q", i, bit, b[max(0, i-20):min(len(b), i+20)])
				}
			}
		}
	}
	if accepted > 0 {
		t.Errorf("%d of %d single-bit flips accepted", accepted, 8*len(good))
	}
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"a WNID still in order", "n01443537", "n01443538", "changed since ingest wrote it"},
		{"a mean still in range", "120.5", "121.5", "changed since ingest wrote it"},
		{"reformatted", `"checksum": "`, `"checksum":"`, "not as ingest writes it"},
	} {
		b := bytes.Replace(good, []byte(tc.from), []byte(tc.to), 1)
		if _, err := ParseMeta(bytes.NewReader(b)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// An edit made on purpose, with the checksum line removed, is read.
	var lines []string
	for _, l := range strings.Split(string(good), "\n") {
		if !strings.Contains(l, `"checksum"`) {
			lines = append(lines, l)
		}
	}
	edited := strings.Replace(strings.Join(lines, "\n"), `"goldfish"`, `"goldfish (Carassius auratus)"`, 1)
	if m, err := ParseMeta(strings.NewReader(edited)); err != nil || m.Classes[1].Name != "goldfish (Carassius auratus)" {
		t.Errorf("an edit without the checksum: %v", err)
	}
}

// No meta.json: a folder ingest has begun (its state folder there) is a
// run to resume, not a wrong folder.
func TestReadMetaMissing(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "gone"), link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, want string }{
		{filepath.Join(dir, "absent"), "shard directory " + filepath.Join(dir, "absent") + " does not exist"},
		{link, "shard directory " + link + " is a dangling symbolic link to " + filepath.Join(dir, "gone")},
		{"", "no shard directory given (an empty name)"},
	} {
		_, err := ReadMeta(tc.dir)
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrNoDir) || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ReadMeta(%q): %v", tc.dir, err)
		}
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMeta(dir); err == nil || !strings.Contains(err.Error(), "is "+dir+" a shard directory written by ingest?") {
		t.Errorf("an empty folder: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, IngestStateDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadMeta(dir); err == nil || !strings.Contains(err.Error(), "an ingest into "+dir+" did not finish, or its meta.json was removed since (its state is in .ingest-state/, and "+filepath.Join(dir, "ingest-report.json")+" says how it ended); the same ingest command resumes it") {
		t.Errorf("a first ingest stopped part-way: %v", err)
	}
	// One still running is said to be, and nothing to run again.
	l, err := dirlock.Acquire(dir, "ingest")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if _, err := ReadMeta(dir); err == nil || !strings.Contains(err.Error(), "not found yet: an ingest is writing "+dir) ||
		!strings.Contains(err.Error(), "ingest, pid") || strings.Contains(err.Error(), "resumes") {
		t.Errorf("a first ingest still running: %v", err)
	}
}
