package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/alexnet-repro/alexnet/shards"
)

// fixture describes a synthetic shard directory. Record i of the split
// (ID i) has label i*classes/records, like ImageNet's sorted names, and
// pixels that pixelsOf(i) regenerates, so tests can check every crop
// against augment applied to the source image.
type fixture struct {
	counts  []int // records per train shard
	w, h    int
	classes int
	sorted  bool // train shards hold IDs in order (class-sorted), else permuted as ingest does
	val     []int
	codec   string // the records' codec; "" is ingest's default, grad-huff
}

// small is the layout most tests use: 12 train shards of 40 and one of 27
// (507 records: partial batches and uneven rank shares), 32×32 images.
var small = fixture{
	counts:  []int{40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40, 27},
	w:       32,
	h:       28,
	classes: 10,
	val:     []int{30, 30, 13},
}

func (f fixture) total(counts []int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

func (f fixture) label(id uint64, n int) int32 { return int32(id * uint64(f.classes) / uint64(n)) }

// pixelsOf is record id's image: smooth gradients (so the codec's
// predictor has work to do) plus noise from the ID (so every image and
// every crop window differs).
func pixelsOf(id uint64, w, h int) []byte {
	rng := rand.New(rand.NewPCG(id, 77))
	p := make([]byte, w*h*3)
	for y := range h {
		for x := range w {
			for c := range 3 {
				p[(y*w+x)*3+c] = byte(x*(c+1) + y*3 + int(id) + rng.IntN(16))
			}
		}
	}
	return p
}

// writeTo writes the shards and meta.json into dir.
func (f fixture) writeTo(t testing.TB, dir string) {
	t.Helper()
	codec := shards.CodecGradHuff
	if f.codec != "" {
		var err error
		if codec, err = shards.ParseCodec(f.codec); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := shards.NewEncoder(codec)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	m := &shards.Meta{FormatVersion: shards.Version, Width: f.w, Height: f.h, Channels: 3, Splits: map[string]shards.Split{},
		Stats: &shards.Stats{Pixels: 1, Mean: [3]float64{120, 115, 100}, Std: [3]float64{60, 58, 57},
			PCAEigval: [3]float64{14830, 1376, 389},
			PCAEigvec: [3][3]float64{{-0.5675, 0.7192, 0.4009}, {-0.5808, -0.0045, -0.8140}, {-0.5836, -0.6948, 0.4203}}}}
	for c := range f.classes {
		m.Classes = append(m.Classes, shards.Class{Index: c, WNID: fmt.Sprintf("n%08d", c), Name: fmt.Sprint("class ", c)})
	}
	for _, sp := range []struct {
		name   string
		counts []int
		perm   bool
	}{{"train", f.counts, !f.sorted}, {"val", f.val, false}} {
		n := f.total(sp.counts)
		if n == 0 {
			continue
		}
		ids := make([]uint64, n)
		for i := range ids {
			ids[i] = uint64(i)
		}
		if sp.perm {
			rand.New(rand.NewPCG(5, 6)).Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		}
		split := shards.Split{Records: n}
		for s, c := range sp.counts {
			w, err := shards.Create(filepath.Join(dir, shards.ShardName(sp.name, s)))
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids[:c] {
				payload, err := enc.Encode(nil, pixelsOf(id, f.w, f.h), f.w, f.h)
				if err != nil {
					t.Fatal(err)
				}
				rec := shards.Record{ID: id, Label: f.label(id, n), Name: fmt.Sprintf("img_%06d.JPEG", id),
					Codec: codec, W: f.w, H: f.h, Channels: 3, Payload: payload}
				if err := w.Append(&rec); err != nil {
					t.Fatal(err)
				}
			}
			ids = ids[c:]
			info, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			split.Shards = append(split.Shards, info)
		}
		m.Splits[sp.name] = split
	}
	if err := shards.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
}

var (
	smallOnce sync.Once
	smallDir  string
)

// smallShards writes the small fixture once per test binary, into a
// directory TestMain removes; tests only read it (the ones that damage
// shards copy it first).
func smallShards(t testing.TB) string {
	t.Helper()
	smallOnce.Do(func() {
		d, err := os.MkdirTemp("", "pipeline-test")
		if err != nil {
			t.Fatal(err)
		}
		small.writeTo(t, d)
		smallDir = d
	})
	if smallDir == "" {
		t.Fatal("the shared fixture could not be written")
	}
	return smallDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if smallDir != "" {
		os.RemoveAll(smallDir)
	}
	os.Exit(code)
}

// copyShards copies a shard directory into a fresh temporary one.
func copyShards(t testing.TB, dir string) string {
	t.Helper()
	out := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// readShard returns every record of a train shard.
func readShard(t testing.TB, dir string, shard int) []shards.Record {
	t.Helper()
	r, err := shards.Open(filepath.Join(dir, shards.ShardName("train", shard)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	recs := make([]shards.Record, r.Len())
	for i := range recs {
		if _, err := r.ReadRecord(i, &recs[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	return recs
}

func recordID(t testing.TB, dir string, shard, rec int) uint64 {
	return readShard(t, dir, shard)[rec].ID
}

// rewrite rewrites a train shard with record rec changed by mutate (its
// CRC stays valid) and returns the record's original ID.
func rewrite(t testing.TB, dir string, shard, rec int, mutate func(*shards.Record)) uint64 {
	t.Helper()
	recs := readShard(t, dir, shard)
	id := recs[rec].ID
	mutate(&recs[rec])
	writeShard(t, dir, shard, recs)
	return id
}

// truncateShard rewrites a train shard with only its first keep records.
func truncateShard(t testing.TB, dir string, shard, keep int) {
	t.Helper()
	writeShard(t, dir, shard, readShard(t, dir, shard)[:keep])
}

// writeShard rewrites a train shard and gives meta.json its new size and
// file CRC (not its record count): the records are what is wrong, as a
// writer's bug or a crafted file would make them, not which file is there.
func writeShard(t testing.TB, dir string, shard int, recs []shards.Record) {
	t.Helper()
	w, err := shards.Create(filepath.Join(dir, shards.ShardName("train", shard)))
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if err := w.Append(&recs[i]); err != nil {
			t.Fatal(err)
		}
	}
	info, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	m, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	sh := m.Splits["train"].Shards[shard]
	sh.Bytes, sh.CRC32C = info.Bytes, info.CRC32C
	m.Splits["train"].Shards[shard] = sh
	if err := shards.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
}

// corrupt flips the last byte of record rec's body in shard file path,
// which lies in its pixel payload, walking the length-prefixed records
// as FORMAT.md lays them out.
func corrupt(t testing.TB, path string, rec int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 16 // header
	for range rec {
		off += 4 + int(binary.LittleEndian.Uint32(b[off:])) + 4
	}
	n := int(binary.LittleEndian.Uint32(b[off:]))
	b[off+4+n-1] ^= 0x40
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// batchRecord is what a test keeps of a delivered batch.
type batchRecord struct {
	pos, resume Position
	ids         []uint64
	sum         string // digest of this batch alone
}

// collect runs a pipeline over dir until it ends or max batches have come,
// releasing every slot, and returns the batches and the run's digest.
func collect(t testing.TB, dir string, opt Options, max int) ([]batchRecord, string, error) {
	t.Helper()
	p, err := New(context.Background(), dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var out []batchRecord
	all := NewDigest()
	for max <= 0 || len(out) < max {
		s, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, all.Sum(), err
		}
		one := NewDigest()
		one.Add(s)
		all.Add(s)
		out = append(out, batchRecord{pos: s.Pos, resume: s.Resume, ids: append([]uint64(nil), s.IDs[:s.N]...), sum: one.Sum()})
		s.Release()
	}
	return out, all.Sum(), p.Close()
}
