package pipeline

import (
	"math"
	"math/rand/v2"
	"testing"
)

// layoutInfo simulates a split of shards×per records in classes equal
// classes, IDs class-sorted like ImageNet's sorted names. With permuted,
// the shards hold the IDs in a random order, as ingest writes train
// shards; otherwise in ID order (the worst case: one class after another).
func layoutInfo(nShards, per, classes int, permuted bool) ([]int, func(Ref) (int32, uint64)) {
	n := nShards * per
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i)
	}
	if permuted {
		rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	}
	counts := make([]int, nShards)
	for i := range counts {
		counts[i] = per
	}
	return counts, func(r Ref) (int32, uint64) {
		id := ids[int(r.Shard)*per+int(r.Record)]
		return int32(id * uint64(classes) / uint64(n)), id
	}
}

func TestShuffleQuality(t *testing.T) {
	const nShards, per, classes, batch = 40, 50, 10, 32 // 200 records a class, 4 shards a class
	sortedCounts, sorted := layoutInfo(nShards, per, classes, false)
	_, permuted := layoutInfo(nShards, per, classes, true)
	q := func(counts []int, info func(Ref) (int32, uint64), shuffle bool, buffer int) Quality {
		return ShuffleQuality(Order{Counts: counts, Seed: 7, Shuffle: shuffle, Buffer: buffer}, 3, batch, info)
	}
	canonical := q(sortedCounts, sorted, false, 0)
	noBuffer := q(sortedCounts, sorted, true, 1)
	buffered := q(sortedCounts, sorted, true, 4*per)
	global := q(sortedCounts, sorted, true, 1<<30)
	preShuffled := q(sortedCounts, permuted, true, 1)
	t.Logf("canonical    %v", canonical)
	t.Logf("no buffer    %v", noBuffer)
	t.Logf("buffer 4     %v", buffered)
	t.Logf("global       %v", global)
	t.Logf("pre-shuffled %v", preShuffled)

	// A uniform permutation of 10 classes of 200: P(next has the same
	// label) = 199/1999, so runs average 1/(1-0.0996) ≈ 1.11, and 32
	// records show 10·(1-0.9³²) ≈ 9.7 classes.
	near := func(name string, got, want, tol float64) {
		t.Helper()
		if math.Abs(got-want) > tol {
			t.Errorf("%s = %.4f, want %.4f ± %.4f", name, got, want, tol)
		}
	}
	tests := []struct {
		name                   string
		q                      Quality
		run, runTol            float64
		classes, classesTol    float64
		idCorr, idTol, shardLo float64
	}{
		// Read in order: a class is 200 records in a row, each batch one
		// or two classes, position and ID the same thing.
		{"canonical", canonical, 200, 0, 1.2, 0.2, 1, 1e-9, 0.99},
		// Whole shards in random order: runs end at shard boundaries
		// (50, or 100 when two shards of a class meet).
		{"no buffer", noBuffer, 55, 10, 1.6, 0.2, 0, 0.5, 0.99},
		// Four shards' worth of buffer holds records of several classes
		// (four shards plus stragglers from older ones), yet keeps the
		// reading order: records move a few shards.
		{"buffer of 4 shards", buffered, 1.25, 0.15, 7, 1.5, 0, 0.5, 0.9},
		{"global", global, 1.11, 0.06, 9.66, 0.15, 0, 0.07, -1},
		// Ingest's permuted shards mix classes without any buffer.
		{"pre-shuffled, no buffer", preShuffled, 1.11, 0.06, 9.66, 0.15, 0, 0.07, 0.99},
	}
	for _, tc := range tests {
		if tc.q.Records != nShards*per {
			t.Errorf("%s: %d records", tc.name, tc.q.Records)
		}
		near(tc.name+" class run", tc.q.MeanClassRun, tc.run, tc.runTol)
		near(tc.name+" classes per batch", tc.q.ClassesPerBatch, tc.classes, tc.classesTol)
		near(tc.name+" corr(position, ID)", tc.q.IDCorr, tc.idCorr, tc.idTol)
		if tc.shardLo >= 0 && tc.q.ShardCorr < tc.shardLo {
			t.Errorf("%s: corr(position, shard) %.4f, want ≥ %.2f", tc.name, tc.q.ShardCorr, tc.shardLo)
		}
	}
	if math.Abs(global.ShardCorr) > 0.07 {
		t.Errorf("global shuffle: corr(position, shard) %.4f, want about 0", global.ShardCorr)
	}
	if !(noBuffer.MeanClassRun > buffered.MeanClassRun && buffered.MeanClassRun > global.MeanClassRun) {
		t.Error("a bigger buffer should shorten class runs")
	}
}

func TestPositionCorr(t *testing.T) {
	tests := []struct {
		x    []float64
		want float64
	}{
		{[]float64{0, 1, 2, 3}, 1},
		{[]float64{30, 20, 10, 0}, -1},
		{[]float64{5, 5, 5}, 0},
		{[]float64{1, 0, 0, 1}, 0},
		{[]float64{0, 2, 1}, 0.5},
	}
	for _, tc := range tests {
		if got := positionCorr(tc.x); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("positionCorr(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
}
