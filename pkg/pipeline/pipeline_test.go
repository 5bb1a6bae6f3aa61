package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/augment"
	"github.com/alexnet-repro/alexnet/shards"
)

func TestExactEpochs(t *testing.T) {
	dir := smallShards(t)
	const n, nVal = 507, 73
	tests := []struct {
		name     string
		opt      Options
		records  int // per epoch
		perEpoch int
		exact    bool // every record, else a batch multiple of distinct records
	}{
		{"train keep", Options{Batch: 32, Partial: PartialKeep}, n, 16, true},
		{"train drop (default)", Options{Batch: 32}, n, 15, false},
		{"train batch 1", Options{Batch: 1}, n, n, true},
		{"train one batch of all", Options{Batch: n}, n, 1, true},
		{"train global shuffle", Options{Batch: 50, ShuffleBuffer: 1 << 20, Partial: PartialKeep}, n, 11, true},
		{"train no buffer", Options{Batch: 50, ShuffleBuffer: 1, Partial: PartialKeep}, n, 11, true},
		{"center keeps the last (default)", Options{Mode: Center, Batch: 16}, nVal, 5, true},
		{"center drop", Options{Mode: Center, Batch: 16, Partial: PartialDrop}, nVal, 4, false},
		{"ten-crop", Options{Mode: TenCrop, Batch: 8}, nVal, 10, true},
		{"center on train", Options{Mode: Center, Split: "train", Batch: 100}, n, 6, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opt := tc.opt
			opt.Epochs, opt.Seed, opt.Sigma = 2, 3, -1
			batches, _, err := collect(t, dir, opt, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(batches) != 2*tc.perEpoch {
				t.Fatalf("%d batches in 2 epochs, want %d", len(batches), 2*tc.perEpoch)
			}
			views := 1
			if opt.Mode == TenCrop {
				views = 10
			}
			for epoch := range 2 {
				var ids []uint64
				for b, br := range batches[epoch*tc.perEpoch : (epoch+1)*tc.perEpoch] {
					if br.pos != (Position{epoch, b}) {
						t.Fatalf("batch %d of epoch %d says it is %v", b, epoch, br.pos)
					}
					for j := 0; j < len(br.ids); j += views {
						ids = append(ids, br.ids[j])
					}
				}
				sorted := slices.Clone(ids)
				slices.Sort(sorted)
				if len(slices.Compact(slices.Clone(sorted))) != len(ids) {
					t.Fatalf("epoch %d repeats records", epoch)
				}
				if tc.exact && (len(ids) != tc.records || sorted[len(sorted)-1] != uint64(tc.records-1)) {
					t.Fatalf("epoch %d delivered %d records, want all %d", epoch, len(ids), tc.records)
				}
				if !tc.exact && len(ids) != tc.perEpoch*opt.Batch {
					t.Fatalf("epoch %d delivered %d records, want %d full batches", epoch, len(ids), tc.perEpoch)
				}
				// Val shards are written in ID order; train shards, as
				// ingest writes them, are not.
				if opt.Mode != Train && opt.Split == "" && !slices.IsSorted(ids) {
					t.Fatalf("validation epoch %d is not in canonical (ID) order", epoch)
				}
			}
			if opt.Mode == Train && slices.Equal(batches[0].ids, batches[tc.perEpoch].ids) && tc.perEpoch > 1 {
				t.Fatal("epoch 1 began like epoch 0: no fresh permutation")
			}
		})
	}
}

// TestCrops checks every delivered crop against augment applied to the
// record's source image, independently regenerated, for every codec (the
// decoder mirrors flipped grad-huff and grad-zstd rows itself, and leaves
// plain zstd rows to be flipped while copying).
func TestCrops(t *testing.T) {
	t.Run("grad-huff", func(t *testing.T) { testCrops(t, smallShards(t)) })
	for _, codec := range []string{"grad-zstd", "zstd"} {
		t.Run(codec, func(t *testing.T) {
			f := small
			f.codec = codec
			dir := t.TempDir()
			f.writeTo(t, dir)
			testCrops(t, dir)
		})
	}
}

func testCrops(t *testing.T, dir string) {
	meta, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	var eigval [3]float32
	var eigvec [3][3]float32
	for c := range 3 {
		eigval[c] = float32(meta.Stats.PCAEigval[c])
		for i := range 3 {
			eigvec[c][i] = float32(meta.Stats.PCAEigvec[c][i])
		}
	}
	tests := []struct {
		name  string
		opt   Options
		sigma float32
	}{
		{"train", Options{Batch: 20, Crop: 24, Seed: 11, Epochs: 2}, augment.DefaultSigma},
		{"train, other sigma", Options{Batch: 20, Crop: 24, Seed: 11, Epochs: 1, Sigma: 0.3}, 0.3},
		{"train, no lighting", Options{Batch: 20, Crop: 24, Seed: 11, Epochs: 1, Sigma: -1}, 0},
		{"train, default crop", Options{Batch: 64, Seed: 2, Epochs: 1}, augment.DefaultSigma},
		{"center", Options{Mode: Center, Batch: 16, Crop: 20, Epochs: 1}, 0},
		{"ten-crop", Options{Mode: TenCrop, Batch: 4, Crop: 20, Epochs: 1}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(context.Background(), dir, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			crop := p.Crop()
			if tc.opt.Crop == 0 && crop != 28*7/8 {
				t.Fatalf("default crop %d, want 7/8 of the 28-pixel side", crop)
			}
			want := make([]byte, crop*crop*3)
			var views [10][]uint8
			for v := range views {
				views[v] = make([]uint8, crop*crop*3)
			}
			n := p.meta.Splits[p.opt.Split].Records
			for {
				s, err := p.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if s.Crop != crop {
					t.Fatalf("slot says crop %d", s.Crop)
				}
				for j := range s.N {
					id := s.IDs[j]
					src := pixelsOf(id, small.w, small.h)
					var off [3]float32
					switch tc.opt.Mode {
					case Train:
						par := augment.Draw(augment.RecordRNG(tc.opt.Seed, s.Pos.Epoch, id), small.w, small.h, crop, tc.sigma)
						augment.RandomCrop(want, src, small.w, small.h, crop, par)
						if tc.sigma > 0 {
							off = augment.LightingOffset(eigval, eigvec, par.Alpha)
							if off == ([3]float32{}) {
								t.Fatal("lighting offset is zero")
							}
						}
					case Center:
						augment.CenterCrop(want, src, small.w, small.h, crop)
					case TenCrop:
						if s.N%10 != 0 || j%10 == 0 && slices.ContainsFunc(s.IDs[j:j+10], func(x uint64) bool { return x != id }) {
							t.Fatalf("crops %d..%d are not ten views of one image", j, j+9)
						}
						augment.TenCrop(views, src, small.w, small.h, crop)
						copy(want, views[j%10])
					}
					if !bytes.Equal(s.Image(j), want) {
						t.Fatalf("%v crop %d (record %d) differs from augment's", s.Pos, j, id)
					}
					if s.Offsets[j] != off {
						t.Fatalf("%v crop %d: offset %v, want %v", s.Pos, j, s.Offsets[j], off)
					}
					if s.Labels[j] != small.label(id, n) {
						t.Fatalf("%v crop %d: label %d, want %d", s.Pos, j, s.Labels[j], small.label(id, n))
					}
				}
				s.Release()
			}
		})
	}
}

func TestDeterministicAcrossWorkers(t *testing.T) {
	dir := smallShards(t)
	base := Options{Batch: 24, Crop: 24, Seed: 5, Epochs: 2, ShuffleBuffer: 60}
	_, want, err := collect(t, dir, base, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		readers, decoders, readAhead, slots int
	}{
		{1, 1, 1, 1}, {2, 1, 2, 2}, {1, 3, 4, 3}, {3, 5, 1, 2}, {4, 8, 16, 6},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("r%d-d%d-q%d-s%d", tc.readers, tc.decoders, tc.readAhead, tc.slots), func(t *testing.T) {
			opt := base
			opt.Readers, opt.Decoders, opt.ReadAhead = tc.readers, tc.decoders, tc.readAhead
			opt.Slots = NewSlots(tc.slots, opt.Batch, 1, opt.Crop)
			if _, got, err := collect(t, dir, opt, 0); err != nil || got != want {
				t.Fatalf("digest %s (err %v), want %s", got, err, want)
			}
		})
	}
	// The digest must see the difference the seed makes.
	other := base
	other.Seed++
	if _, got, _ := collect(t, dir, other, 0); got == want {
		t.Fatal("another seed gave the same digest")
	}
}

func TestResume(t *testing.T) {
	dir := smallShards(t)
	base := Options{Batch: 40, Crop: 24, Seed: 8, Epochs: 3, Partial: PartialKeep}
	full, _, err := collect(t, dir, base, 0)
	if err != nil {
		t.Fatal(err)
	}
	const per = 13 // ⌈507/40⌉
	if len(full) != 3*per {
		t.Fatalf("%d batches, want %d", len(full), 3*per)
	}
	for i := 0; i+1 < len(full); i++ {
		if full[i].resume != full[i+1].pos {
			t.Fatalf("batch %v says resume at %v, next batch is %v", full[i].pos, full[i].resume, full[i+1].pos)
		}
	}
	tests := []struct {
		start Position
		skip  int // batches of the full run before start
	}{
		{Position{0, 0}, 0}, {Position{0, 1}, 1}, {Position{0, 12}, 12}, {Position{0, 13}, 13},
		{Position{1, 0}, 13}, {Position{1, 5}, 18}, {Position{2, 12}, 38},
	}
	for _, tc := range tests {
		t.Run(tc.start.String(), func(t *testing.T) {
			opt := base
			opt.Start = tc.start
			opt.Decoders = 3
			got, _, err := collect(t, dir, opt, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := full[tc.skip:]
			if len(got) != len(want) {
				t.Fatalf("%d batches, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i].pos != want[i].pos || got[i].sum != want[i].sum {
					t.Fatalf("batch %d is %v %s, want %v %s", i, got[i].pos, got[i].sum[:8], want[i].pos, want[i].sum[:8])
				}
			}
		})
	}
	for _, bad := range []Position{{0, 14}, {-1, 0}, {0, -1}} {
		if _, err := New(context.Background(), dir, Options{Batch: 40, Crop: 24, Partial: PartialKeep, Start: bad}); err == nil {
			t.Errorf("start %v accepted", bad)
		}
	}
}

func TestDistributed(t *testing.T) {
	dir := smallShards(t)
	tests := []struct {
		name  string
		opt   Options
		world int
		n     int
		even  bool
	}{
		{"train, 3 ranks", Options{Batch: 16, Partial: PartialKeep}, 3, 507, true},
		{"train, 4 ranks", Options{Batch: 16, Partial: PartialKeep}, 4, 507, true},
		{"train, 2 ranks, drop", Options{Batch: 16}, 2, 507, true},
		{"center, 4 ranks", Options{Mode: Center, Batch: 5}, 4, 73, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opt := tc.opt
			opt.Crop, opt.Seed, opt.Epochs, opt.Sigma = 20, 4, 2, -1
			whole := opt
			whole.Batch = 1 // the world-1 sequence, record by record
			single, _, err := collect(t, dir, whole, 0)
			if err != nil {
				t.Fatal(err)
			}
			for epoch := range 2 {
				var seq []uint64
				for _, b := range single[epoch*tc.n : (epoch+1)*tc.n] {
					seq = append(seq, b.ids...)
				}
				var union []uint64
				size := -1
				for rank := range tc.world {
					o := opt
					o.Rank, o.World = rank, tc.world
					bs, _, err := collect(t, dir, o, 0)
					if err != nil {
						t.Fatal(err)
					}
					var ids []uint64
					for _, b := range bs {
						if b.pos.Epoch == epoch {
							ids = append(ids, b.ids...)
						}
					}
					if tc.even {
						if size >= 0 && len(ids) != size {
							t.Fatalf("rank %d got %d records, rank 0 %d", rank, len(ids), size)
						}
						size = len(ids)
					}
					// Each rank's part is a contiguous run of the world-1 sequence.
					lo, _ := Share(tc.n, rank, tc.world, tc.even)
					if !slices.Equal(ids, seq[lo:lo+len(ids)]) {
						t.Fatalf("rank %d's records are not its share of the epoch", rank)
					}
					union = append(union, ids...)
				}
				slices.Sort(union)
				if len(slices.Compact(slices.Clone(union))) != len(union) {
					t.Fatal("ranks share records")
				}
				missing := tc.n - len(union)
				if tc.opt.Partial == PartialKeep && missing > tc.world-1 || !tc.even && missing != 0 {
					t.Fatalf("%d records in no rank's share", missing)
				}
			}
		})
	}
	if _, err := New(context.Background(), dir, Options{Rank: 2, World: 2}); err == nil {
		t.Error("rank 2 of 2 accepted")
	}
}

// TestCancel checks that every goroutine ends, however the run stops:
// the caller's context, Close in mid-stream with every slot held, or an
// error.
func TestCancel(t *testing.T) {
	dir := smallShards(t)
	bad := copyShards(t, dir)
	corrupt(t, filepath.Join(bad, "train-00002.shard"), 3)
	held := Options{Batch: 50, Crop: 24, Readers: 3, Decoders: 4, Slots: NewSlots(2, 50, 1, 24)}
	// One decoder behind a one-deep queue keeps the readers blocked on
	// handing records on.
	slowDecode := Options{Batch: 50, Crop: 24, Readers: 4, Decoders: 1, ReadAhead: 1, Slots: NewSlots(4, 50, 1, 24)}
	tests := []struct {
		name string
		dir  string
		opt  Options
		stop func(cancel context.CancelFunc, p *Pipeline) error // returns what Next then says
	}{
		{"cancel", dir, held, func(cancel context.CancelFunc, p *Pipeline) error {
			cancel()
			_, err := p.Next()
			return err
		}},
		{"cancel with readers blocked", dir, slowDecode, func(cancel context.CancelFunc, p *Pipeline) error {
			if _, err := p.Next(); err != nil {
				return err
			}
			time.Sleep(2 * time.Millisecond)
			cancel()
			_, err := p.Next()
			return err
		}},
		{"close with slots held", dir, held, func(cancel context.CancelFunc, p *Pipeline) error {
			for range 2 { // hold every slot, so the plan stage blocks
				if _, err := p.Next(); err != nil {
					return err
				}
			}
			time.Sleep(20 * time.Millisecond)
			p.Close()
			_, err := p.Next()
			return err
		}},
		{"corrupt record", bad, held, func(cancel context.CancelFunc, p *Pipeline) error {
			for {
				s, err := p.Next()
				if err != nil {
					return err
				}
				s.Release()
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			p, err := New(ctx, tc.dir, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.stop(cancel, p); err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("Next after the stop said %v", err)
			}
			closed := make(chan struct{})
			go func() { p.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				buf := make([]byte, 1<<16)
				t.Fatalf("Close did not return; a stage ignores cancellation:\n%s", buf[:runtime.Stack(buf, true)])
			}
			// The goroutine that ran Close may still be on its way out.
			after := runtime.NumGoroutine()
			for i := 0; i < 100 && after > before; i++ {
				time.Sleep(time.Millisecond)
				after = runtime.NumGoroutine()
			}
			if after > before {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines before, %d after Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}

// TestErrors damages one record in several ways: each must stop the run
// with an error naming the shard and record, and no batch holding the
// record may be delivered.
func TestErrors(t *testing.T) {
	dir := smallShards(t)
	const shard, rec = 4, 7
	shardFile := shards.ShardName("train", shard)
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string) uint64 // returns the damaged record's ID
		is     error
		says   string
	}{
		{"crc mismatch", func(t *testing.T, dir string) uint64 {
			id := recordID(t, dir, shard, rec)
			corrupt(t, filepath.Join(dir, shardFile), rec)
			return id
		}, shards.ErrChecksum, "checksum mismatch"},
		{"payload that does not decode", func(t *testing.T, dir string) uint64 {
			return rewrite(t, dir, shard, rec, func(r *shards.Record) { r.Payload = []byte("not a payload at all") })
		}, shards.ErrCorrupt, "corrupt pixel payload"},
		{"label out of range", func(t *testing.T, dir string) uint64 {
			return rewrite(t, dir, shard, rec, func(r *shards.Record) { r.Label = 10 })
		}, nil, "label 10 outside the 10 classes"},
		{"training record without label", func(t *testing.T, dir string) uint64 {
			return rewrite(t, dir, shard, rec, func(r *shards.Record) { r.Label = -1 })
		}, nil, "no label"},
		{"ID out of range", func(t *testing.T, dir string) uint64 {
			rewrite(t, dir, shard, rec, func(r *shards.Record) { r.ID = 507 })
			return 507
		}, nil, "ID 507"},
		{"image smaller than meta.json's size", func(t *testing.T, dir string) uint64 {
			return rewrite(t, dir, shard, rec, resized(16))
		}, nil, "16×16×3 image, meta.json says the shards hold 32×28×3"},
		{"image larger than meta.json's size", func(t *testing.T, dir string) uint64 {
			return rewrite(t, dir, shard, rec, resized(64))
		}, nil, "64×64×3 image, meta.json says the shards hold 32×28×3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := copyShards(t, dir)
			id := tc.damage(t, d)
			batches, _, err := collect(t, d, Options{Batch: 16, Crop: 24, Epochs: 1, Decoders: 3}, 0)
			if err == nil {
				t.Fatalf("no error after %d batches", len(batches))
			}
			var re *shards.RecordError
			if !errors.As(err, &re) || re.Shard != shardFile || re.Index != rec {
				t.Fatalf("error %q does not name %s record %d", err, shardFile, rec)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %q is not %v", err, tc.is)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.says) || !strings.Contains(msg, "epoch 0 batch") {
				t.Fatalf("error %q does not say %q and where in the run", msg, tc.says)
			}
			for _, b := range batches {
				if slices.Contains(b.ids, id) {
					t.Fatalf("batch %v holding the damaged record was delivered", b.pos)
				}
			}
		})
	}
	// A shard that cannot be opened is named, and no record of it blamed.
	gone := copyShards(t, dir)
	if err := os.Remove(filepath.Join(gone, shardFile)); err != nil {
		t.Fatal(err)
	}
	_, _, err := collect(t, gone, Options{Batch: 16, Crop: 24, Epochs: 1, Decoders: 3}, 0)
	var re *shards.RecordError
	if !errors.As(err, &re) || re.Shard != shardFile || re.Index != -1 || !errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), " record ") {
		t.Errorf("a missing shard: %v, want it named without a record", err)
	}
	// Batches and images count from 1: with one image a batch, the
	// damaged one is image 1 of its batch.
	one := copyShards(t, dir)
	corrupt(t, filepath.Join(one, shardFile), rec)
	if _, _, err := collect(t, one, Options{Batch: 1, Crop: 24, Epochs: 1, Decoders: 3}, 0); err == nil || !strings.Contains(err.Error(), " image 1 (rank position") {
		t.Errorf("batch of 1: %v, want the damaged record named as image 1 of its batch", err)
	}
	// A shard file that is whole but not the one meta.json lists: every
	// record CRC holds, so only its size and file CRC can tell.
	for _, tc := range []struct {
		name    string
		replace func(t *testing.T, d string)
		says    string
	}{
		{"shard from another ingest, same record count", func(t *testing.T, d string) {
			other := t.TempDir()
			f := small
			f.sorted = !f.sorted // other record order: other bytes, same counts and shape
			f.writeTo(t, other)
			b, err := os.ReadFile(filepath.Join(other, shardFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, shardFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "file CRC"},
		{"meta.json from another ingest", func(t *testing.T, d string) {
			other := t.TempDir()
			f := small
			f.sorted = !f.sorted
			f.writeTo(t, other)
			b, err := os.ReadFile(filepath.Join(other, shards.MetaFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, shards.MetaFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "not the shard meta.json lists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := copyShards(t, dir)
			tc.replace(t, d)
			batches, _, err := collect(t, d, Options{Batch: 16, Crop: 24, Epochs: 1}, 0)
			if err == nil {
				t.Fatalf("trained %d batches on a shard meta.json does not list", len(batches))
			}
			var re *shards.RecordError
			if !errors.As(err, &re) || !strings.HasPrefix(re.Shard, "train-") || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not name the shard and say %q", err, tc.says)
			}
		})
	}
	t.Run("record count differs from meta.json", func(t *testing.T) {
		d := copyShards(t, dir)
		truncateShard(t, d, shard, rec)
		_, _, err := collect(t, d, Options{Batch: 16, Crop: 24, Epochs: 1}, 0)
		if err == nil || !strings.Contains(err.Error(), shardFile) || !strings.Contains(err.Error(), "meta.json says 40") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestBackpressure holds every slot: the pipeline must stop after filling
// them, with no more records read than its queues and buffers hold.
func TestBackpressure(t *testing.T) {
	dir := smallShards(t)
	const batch, nslots, readers, decoders, ahead = 10, 2, 2, 3, 4
	p, err := New(context.Background(), dir, Options{Batch: batch, Crop: 24, Readers: readers, Decoders: decoders, ReadAhead: ahead,
		Slots: NewSlots(nslots, batch, 1, 24)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var held []*Slot
	for range nslots {
		s, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	got := make(chan *Slot)
	go func() {
		s, _ := p.Next()
		got <- s
	}()
	select {
	case <-got:
		t.Fatal("a batch came with every slot held")
	case <-time.After(100 * time.Millisecond):
	}
	m := p.Metrics()
	if d := m.Stage("decode").Items; d != nslots*batch {
		t.Errorf("decoded %d records with %d slots of %d", d, nslots, batch)
	}
	// Read but not decoded: at most what the read queue and the readers hold.
	if r := m.Stage("read").Items; r > nslots*batch+ahead+readers {
		t.Errorf("read %d records; the bound is %d", r, nslots*batch+ahead+readers)
	}
	if m.FreeSlots != 0 {
		t.Errorf("%d free slots", m.FreeSlots)
	}
	held[0].Release()
	select {
	case s := <-got:
		if s == nil || s.Pos != (Position{0, nslots}) {
			t.Fatalf("after a release got %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no batch after a release")
	}
}

func TestSlots(t *testing.T) {
	dir := smallShards(t)
	tests := []struct {
		name  string
		slots []*Slot
		ok    bool
	}{
		{"exact size", NewSlots(2, 10, 1, 24), true},
		{"bigger", NewSlots(1, 12, 1, 25), true},
		{"too few pixels", NewSlots(1, 10, 1, 23), false},
		{"too few labels", []*Slot{{Pixels: make([]uint8, 10*24*24*3), Labels: make([]int32, 9), Offsets: make([][3]float32, 10), IDs: make([]uint64, 10)}}, false},
		{"same slot twice", func() []*Slot { s := NewSlot(10, 1, 24); return []*Slot{s, s} }(), false},
		{"empty pool", []*Slot{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(context.Background(), dir, Options{Batch: 10, Crop: 24, Slots: tc.slots})
			if (err == nil) != tc.ok {
				t.Fatalf("New said %v", err)
			}
			if p != nil {
				p.Close()
			}
		})
	}
	// Slots a live pipeline holds are refused to a second one (both would
	// fill them), and taken once it is closed; a refused New takes none.
	shared := NewSlots(2, 10, 1, 24)
	first, err := New(context.Background(), dir, Options{Batch: 10, Crop: 24, Slots: shared})
	if err != nil {
		t.Fatal(err)
	}
	mixed := []*Slot{NewSlot(10, 1, 24), shared[1]}
	if _, err := New(context.Background(), dir, Options{Batch: 10, Crop: 24, Slots: mixed}); err == nil || !strings.Contains(err.Error(), "slot 1 belongs to a pipeline not yet closed") {
		t.Fatalf("slots of a live pipeline: %v", err)
	}
	first.Close()
	for _, slots := range [][]*Slot{shared, mixed} { // mixed[0] was given back by the refusal
		second, err := New(context.Background(), dir, Options{Batch: 10, Crop: 24, Slots: slots})
		if err != nil {
			t.Fatalf("slots of a closed pipeline: %v", err)
		}
		if s, err := second.Next(); err != nil {
			t.Fatal(err)
		} else {
			s.Release()
		}
		second.Close()
	}
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	p, err := New(context.Background(), dir, Options{Batch: 10, Crop: 24})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	mustPanic("releasing a slot never delivered", func() { p.slots[0].Release() })
	s, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	mustPanic("releasing twice", s.Release)
}

func TestNormalize(t *testing.T) {
	dir := smallShards(t)
	p, err := New(context.Background(), dir, Options{Batch: 3, Crop: 8, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := p.Next()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	out := p.Normalize(nil, s)
	if len(out) != 3*3*8*8 {
		t.Fatalf("%d values", len(out))
	}
	st := p.Meta().Stats
	for _, tc := range []struct{ img, c, y, x int }{{0, 0, 0, 0}, {1, 2, 7, 3}, {2, 1, 4, 7}} {
		v := s.Image(tc.img)[(tc.y*8+tc.x)*3+tc.c]
		bias := s.Offsets[tc.img][tc.c] - float32(st.Mean[tc.c])
		want := (float32(v) + bias) * float32(1/float64(float32(st.Std[tc.c])))
		if got := out[((tc.img*3+tc.c)*8+tc.y)*8+tc.x]; got != want {
			t.Errorf("image %d channel %d (%d,%d): %v, want %v", tc.img, tc.c, tc.x, tc.y, got, want)
		}
	}
	if again := p.Normalize(out, s); &again[0] != &out[0] {
		t.Error("Normalize did not reuse a big enough buffer")
	}
	// A range is that stretch of the whole, lighting offsets included.
	mean, std := [3]float32{}, [3]float32{}
	for c := range 3 {
		mean[c], std[c] = float32(st.Mean[c]), float32(st.Std[c])
	}
	whole := s.Normalize(nil, mean, std)
	per := 3 * 8 * 8
	for _, r := range [][2]int{{0, 3}, {1, 2}, {2, 1}, {0, 0}} {
		got := s.NormalizeRange(nil, r[0], r[1], mean, std)
		if !slices.Equal(got, whole[r[0]*per:(r[0]+r[1])*per]) {
			t.Errorf("NormalizeRange(%d, %d) differs from Normalize's stretch", r[0], r[1])
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("NormalizeRange past the slot's crops did not panic")
			}
		}()
		s.NormalizeRange(nil, 2, 2, mean, std)
	}()
}

func TestMetrics(t *testing.T) {
	dir := smallShards(t)
	p, err := New(context.Background(), dir, Options{Batch: 32, Crop: 24, Epochs: 2, Readers: 2, Decoders: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	done := make(chan struct{})
	go func() { // snapshots while the pipeline runs
		defer close(done)
		for range 20 {
			_ = p.Metrics()
			time.Sleep(time.Millisecond)
		}
	}()
	batches := 0
	for {
		s, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // a consumer that takes time
		s.Release()
		batches++
	}
	<-done
	m := p.Metrics()
	want := map[string]struct {
		workers int
		items   int64
	}{"plan": {1, 30}, "read": {2, 30 * 32}, "decode": {3, 30 * 32}, "deliver": {1, 30}}
	if batches != 30 || len(m.Stages) != 4 {
		t.Fatalf("%d batches, %d stages", batches, len(m.Stages))
	}
	for _, s := range m.Stages {
		w := want[s.Name]
		if s.Workers != w.workers || s.Items != w.items {
			t.Errorf("%s: %d workers, %d items; want %d, %d", s.Name, s.Workers, s.Items, w.workers, w.items)
		}
		if tot := s.Busy + s.WaitIn + s.WaitOut; tot <= 0 || tot > time.Duration(s.Workers)*m.Elapsed {
			t.Errorf("%s: busy+waits %v over %v elapsed", s.Name, tot, m.Elapsed)
		}
	}
	if m.Stage("decode").Busy <= 0 || m.Stage("deliver").WaitOut < 29*time.Millisecond {
		t.Errorf("decode busy %v, consumer time %v", m.Stage("decode").Busy, m.Stage("deliver").WaitOut)
	}
	if m.OpenShards == 0 || m.OpenShards > 13 {
		t.Errorf("%d shards open", m.OpenShards)
	}
	var b bytes.Buffer
	m.Print(&b)
	if !strings.Contains(b.String(), "decode") {
		t.Errorf("table:\n%s", b.String())
	}
}

// TestReaderCacheBound runs with room for two open shards: the cache must
// evict, and the run must still deliver the same batches.
func TestReaderCacheBound(t *testing.T) {
	dir := smallShards(t)
	opt := Options{Batch: 32, Crop: 24, Epochs: 1, Seed: 3}
	_, want, err := collect(t, dir, opt, 0)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxOpenShards = 2
	opt.Readers = 1
	_, got, err := collect(t, dir, opt, 0)
	if err != nil || got != want {
		t.Fatalf("with 2 open shards: digest %s, err %v; want %s", got, err, want)
	}
	// The bound holds throughout, and is met by closing shards, not by
	// reading fewer of them.
	p, err := New(context.Background(), dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	for {
		s, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
	}
	p.cache.mu.Lock()
	opens, peak, shardCount := p.cache.opens, p.cache.peak, len(p.cache.ents)
	p.cache.mu.Unlock()
	p.Close()
	if peak > 2 || opens <= 2 || opens < shardCount {
		t.Fatalf("%d opens of %d shards, at most %d open at once: want every shard opened, never more than 2 at once", opens, shardCount, peak)
	}
}

// TestSteadyStateAllocs counts heap allocations per record over a long
// run, after a warm-up: only the record name string that
// shards.ReadRecord makes should remain.
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("counts allocations over 20 epochs")
	}
	dir := smallShards(t)
	p, err := New(context.Background(), dir, Options{Batch: 32, Crop: 24, Readers: 1, Decoders: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	next := func() {
		s, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		s.Release()
	}
	for range 40 {
		next()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const batches = 300
	for range batches {
		next()
	}
	runtime.ReadMemStats(&after)
	// Each epoch also allocates its plan (a few slices).
	perRecord := float64(after.Mallocs-before.Mallocs) / (batches * 32)
	t.Logf("%.2f allocations per record", perRecord)
	if perRecord > 1.2 {
		t.Errorf("%.2f allocations per record in steady state, want at most the name's 1", perRecord)
	}
}

// resized makes a record a side×side black image in its own codec.
func resized(side int) func(*shards.Record) {
	return func(r *shards.Record) {
		enc, _ := shards.NewEncoder(r.Codec)
		defer enc.Close()
		r.W, r.H = side, side
		r.Payload, _ = enc.Encode(nil, make([]byte, side*side*3), side, side)
	}
}

// TestOptionLimits: a validation batch larger than the split is one batch
// of the whole split, in slots sized for it, not for the request (an
// --eval-batch of 1e9 ran out of memory); a negative epoch count and a
// start past the epoch are errors that name the fields as set.
func TestOptionLimits(t *testing.T) {
	dir := smallShards(t)
	// The digest of a whole run, and the capacity of the slots it gets.
	digest := func(opt Options) (string, int) {
		_, sum, err := collect(t, dir, opt, 0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := New(context.Background(), dir, opt)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		return sum, cap(p.slots[0].Labels)
	}
	for _, mode := range []Mode{Center, TenCrop} {
		want, _ := digest(Options{Mode: mode, Batch: 73, Crop: 24, Epochs: 1})
		got, capacity := digest(Options{Mode: mode, Batch: 1 << 30, Crop: 24, Epochs: 1})
		views := map[Mode]int{Center: 1, TenCrop: 10}[mode]
		if got != want || capacity != 73*views {
			t.Errorf("mode %d: batch 1<<30 gave digest %s in slots of %d labels; batch 73 gave %s", mode, got, capacity, want)
		}
	}
	for _, tc := range []struct {
		opt  Options
		says string
	}{
		{Options{Batch: 10, Crop: 24, Epochs: -1}, "epochs -1"},
		{Options{Batch: 10, Crop: 24, Sigma: float32(math.NaN())}, "sigma NaN: want a finite number"},
		{Options{Batch: 10, Crop: 24, Sigma: float32(math.Inf(1))}, "sigma +Inf: want a finite number"},
		{Options{Batch: 10, Crop: 24, Sigma: float32(math.Inf(-1))}, "sigma -Inf: want a finite number"},
		{Options{Batch: 10, Crop: 24, Start: Position{0, 51}}, "start {Epoch: 0, Batch: 51}: an epoch has 50 batches, numbered from 0"},
		{Options{Batch: 10, Crop: 24, Epochs: 2, Start: Position{5, 0}}, "start {Epoch: 5, Batch: 0} is past the end of 2 epochs"},
		{Options{Batch: 10, Crop: 24, Epochs: 2, Start: Position{2, 1}}, "start {Epoch: 2, Batch: 1} is past the end of 2 epochs"},
	} {
		if _, err := New(context.Background(), dir, tc.opt); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v: got %v, want %q", tc.opt, err, tc.says)
		}
	}
}

// Default slots are mapped at once, so a run with fewer batches than the
// default four gets only as many: a ten-crop evaluation of one batch must
// not map four 190 MB slots.
func TestDefaultSlotsFitTheRun(t *testing.T) {
	dir := t.TempDir()
	fixture{counts: []int{20}, w: 16, h: 16, classes: 2}.writeTo(t, dir)
	for _, tc := range []struct {
		epochs int
		start  Position
		want   int
	}{
		{1, Position{}, 2},                   // 20 records, batches of 10: 2 batches
		{3, Position{}, 4},                   // 6 batches: the default
		{0, Position{}, 4},                   // until cancelled
		{2, Position{Epoch: 1, Batch: 1}, 1}, // resumed at the last batch
	} {
		p, err := New(context.Background(), dir, Options{Batch: 10, Crop: 12, Epochs: tc.epochs, Start: tc.start})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Metrics().Slots; got != tc.want {
			t.Errorf("%d epochs from %v: %d slots, want %d", tc.epochs, tc.start, got, tc.want)
		}
		p.Close()
	}
}

// CheckShards refuses a shard file larger than its meta.json entry from
// its size alone: opened, a trailer claiming an index as large as the file
// (a crafted or foreign file) would have it allocated. Here a sparse
// gigabyte: the check must not read it.
func TestCheckShardsLargerThanListed(t *testing.T) {
	dir := copyShards(t, smallShards(t))
	meta, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	sh := meta.Splits["train"].Shards[0]
	if err := CheckShards(dir, meta, "train"); err != nil {
		t.Fatalf("intact shards: %v", err)
	}
	if err := os.Truncate(filepath.Join(dir, sh.File), 1<<30); err != nil {
		t.Skipf("sparse file: %v", err)
	}
	err = CheckShards(dir, meta, "train")
	var re *shards.RecordError
	if !errors.As(err, &re) || re.Shard != sh.File || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes, meta.json says %d", 1<<30, sh.Bytes)) {
		t.Fatalf("a shard grown to 1 GiB: %v", err)
	}
}
