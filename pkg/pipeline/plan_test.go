package pipeline

import (
	"slices"
	"testing"
)

// checkPermutation fails unless seq holds every record of counts exactly once.
func checkPermutation(t *testing.T, counts []int, seq []Ref) {
	t.Helper()
	seen := make([][]bool, len(counts))
	n := 0
	for s, c := range counts {
		seen[s] = make([]bool, c)
		n += c
	}
	if len(seq) != n {
		t.Fatalf("sequence has %d records, want %d", len(seq), n)
	}
	for i, r := range seq {
		if seen[r.Shard][r.Record] {
			t.Fatalf("position %d: %+v appears twice", i, r)
		}
		seen[r.Shard][r.Record] = true
	}
}

func TestOrderEpoch(t *testing.T) {
	uneven := []int{7, 1, 0, 12, 5, 9}
	tests := []struct {
		name      string
		o         Order
		canonical bool // the sequence must be shard by shard, record by record
	}{
		{"no shuffle", Order{Counts: uneven}, true},
		{"no shuffle ignores buffer", Order{Counts: uneven, Buffer: 100}, true},
		{"shard permutation only", Order{Counts: uneven, Seed: 1, Shuffle: true, Buffer: 1}, false},
		{"buffer of 4", Order{Counts: uneven, Seed: 1, Shuffle: true, Buffer: 4}, false},
		{"buffer of one shard", Order{Counts: uneven, Seed: 2, Shuffle: true, Buffer: 12}, false},
		{"global", Order{Counts: uneven, Seed: 3, Shuffle: true, Buffer: 1000}, false},
		{"one shard", Order{Counts: []int{33}, Seed: 3, Shuffle: true, Buffer: 5}, false},
		{"empty", Order{Counts: []int{0, 0}, Seed: 3, Shuffle: true}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for epoch := range 3 {
				order, seq := tc.o.Epoch(epoch, nil)
				checkPermutation(t, tc.o.Counts, seq)
				if len(order) != len(tc.o.Counts) {
					t.Fatalf("shard order %v", order)
				}
				_, again := tc.o.Epoch(epoch, make([]Ref, 3))
				if !slices.Equal(seq, again) {
					t.Fatal("the same epoch gave two sequences")
				}
				if tc.canonical {
					_, want := Order{Counts: tc.o.Counts}.epochNoShuffle()
					if !slices.Equal(seq, want) {
						t.Fatalf("epoch %d is not the canonical order", epoch)
					}
				}
			}
		})
	}
}

// epochNoShuffle is the canonical order written out plainly.
func (o Order) epochNoShuffle() ([]int, []Ref) {
	var seq []Ref
	var order []int
	for s, c := range o.Counts {
		order = append(order, s)
		for r := range c {
			seq = append(seq, Ref{int32(s), int32(r)})
		}
	}
	return order, seq
}

func TestOrderEpochsDiffer(t *testing.T) {
	o := Order{Counts: []int{50, 50, 50, 50, 50, 50, 50, 50}, Seed: 9, Shuffle: true, Buffer: 100}
	o2 := o
	o2.Seed = 10
	seen := map[string]bool{}
	for _, c := range []struct {
		o     Order
		epoch int
	}{{o, 0}, {o, 1}, {o, 2}, {o2, 0}, {o2, 1}} {
		order, seq := c.o.Epoch(c.epoch, nil)
		key := fmtRefs(seq)
		if seen[key] {
			t.Fatalf("seed %d epoch %d repeats an earlier sequence (shard order %v)", c.o.Seed, c.epoch, order)
		}
		seen[key] = true
	}
}

func fmtRefs(seq []Ref) string {
	b := make([]byte, 0, 8*len(seq))
	for _, r := range seq {
		b = append(b, byte(r.Shard), byte(r.Shard>>8), byte(r.Record), byte(r.Record>>8))
	}
	return string(b)
}

// TestOrderBufferBoundsDisplacement pins what the buffer promises: a
// record cannot come out before it has been read, so no record moves
// earlier than its place in the read stream minus the buffer size.
func TestOrderBufferBoundsDisplacement(t *testing.T) {
	counts := []int{30, 30, 30, 30, 30, 30, 30, 30, 30, 30}
	for _, buf := range []int{1, 7, 45} {
		o := Order{Counts: counts, Seed: 4, Shuffle: true, Buffer: buf}
		order, seq := o.Epoch(0, nil)
		stream := map[Ref]int{}
		i := 0
		for _, s := range order {
			for r := range counts[s] {
				stream[Ref{int32(s), int32(r)}] = i
				i++
			}
		}
		for pos, r := range seq {
			if early := stream[r] - pos; early > buf-1 {
				t.Fatalf("buffer %d: %+v read at %d came out at %d", buf, r, stream[r], pos)
			}
		}
		if buf == 1 {
			for pos, r := range seq {
				if stream[r] != pos {
					t.Fatalf("buffer 1 changed the read order at %d", pos)
				}
			}
		}
	}
}

func TestShare(t *testing.T) {
	tests := []struct {
		n, world int
		even     bool
	}{
		{10, 1, true}, {10, 3, true}, {10, 3, false}, {507, 4, true}, {507, 4, false},
		{3, 4, true}, {3, 4, false}, {0, 2, false}, {1000, 8, true},
	}
	for _, tc := range tests {
		covered := make([]int, tc.n)
		size := -1
		prevHi := 0
		for rank := range tc.world {
			lo, hi := Share(tc.n, rank, tc.world, tc.even)
			if lo != prevHi {
				t.Errorf("n=%d world=%d rank %d starts at %d, previous ended at %d", tc.n, tc.world, rank, lo, prevHi)
			}
			prevHi = hi
			if tc.even {
				if size >= 0 && hi-lo != size {
					t.Errorf("n=%d world=%d: rank %d has %d records, rank 0 %d", tc.n, tc.world, rank, hi-lo, size)
				}
				size = hi - lo
			} else if d := hi - lo - tc.n/tc.world; d < 0 || d > 1 {
				t.Errorf("n=%d world=%d: rank %d has %d records", tc.n, tc.world, rank, hi-lo)
			}
			for i := lo; i < hi; i++ {
				covered[i]++
			}
		}
		missing := 0
		for i, c := range covered {
			if c > 1 {
				t.Errorf("n=%d world=%d: record %d in %d shares", tc.n, tc.world, i, c)
			}
			if c == 0 {
				missing++
			}
		}
		if tc.even && missing > tc.world-1 || !tc.even && missing > 0 {
			t.Errorf("n=%d world=%d even=%v: %d records in no share", tc.n, tc.world, tc.even, missing)
		}
	}
}

func TestBatchCount(t *testing.T) {
	tests := []struct{ n, b, drop, keep int }{
		{0, 4, 0, 0}, {3, 4, 0, 1}, {4, 4, 1, 1}, {9, 4, 2, 3}, {507, 128, 3, 4},
	}
	for _, tc := range tests {
		if got := batchCount(tc.n, tc.b, false); got != tc.drop {
			t.Errorf("%d records in %d: %d batches dropping the last, want %d", tc.n, tc.b, got, tc.drop)
		}
		if got := batchCount(tc.n, tc.b, true); got != tc.keep {
			t.Errorf("%d records in %d: %d batches keeping the last, want %d", tc.n, tc.b, got, tc.keep)
		}
	}
}

// Positions print as train's log lines count: epochs from 0, batches from 1.
func TestPositionString(t *testing.T) {
	if got := (Position{Epoch: 0, Batch: 7}).String(); got != "epoch 0 batch 8" {
		t.Errorf("Position{0, 7} = %q", got)
	}
}
