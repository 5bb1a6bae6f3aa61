package main

import (
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// ImageNet's train split as ingest shards it by default.
const (
	imagenetTrain   = 1281167
	imagenetClasses = 1000
	imagenetShard   = 1024
)

type qualityRow struct {
	Layout string           `json:"layout"`
	Buffer string           `json:"buffer"`
	Q      pipeline.Quality `json:"quality"`
}

// simulatedQuality measures epoch 0's order on an ImageNet-sized split,
// simulated from counts and labels alone (IDs class-sorted, as sorted
// names are): with ingest's layout (train records permuted across shards)
// and with class-sorted shards (the worst case), for no buffer, the
// default buffer of four shards, and a global shuffle as the baseline.
func simulatedQuality(seed uint64, batch int) []qualityRow {
	n := imagenetTrain
	var counts []int
	for left := n; left > 0; left -= imagenetShard {
		counts = append(counts, min(left, imagenetShard))
	}
	perm := make([]uint32, n)
	for i := range perm {
		perm[i] = uint32(i)
	}
	rand.New(rand.NewPCG(seed, 99)).Shuffle(n, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	label := func(id uint64) int32 { return int32(id * imagenetClasses / uint64(n)) }
	layouts := []struct {
		name string
		id   func(pos int) uint64
	}{
		{"ingest (permuted)", func(pos int) uint64 { return uint64(perm[pos]) }},
		{"class-sorted", func(pos int) uint64 { return uint64(pos) }},
	}
	buffers := []struct {
		name string
		size int
	}{{"none", 1}, {fmt.Sprintf("%d (4 shards)", 4*imagenetShard), 4 * imagenetShard}, {"global", n}}
	var rows []qualityRow
	for _, l := range layouts {
		info := func(r pipeline.Ref) (int32, uint64) {
			id := l.id(int(r.Shard)*imagenetShard + int(r.Record))
			return label(id), id
		}
		for _, b := range buffers {
			o := pipeline.Order{Counts: counts, Seed: seed, Shuffle: true, Buffer: b.size}
			rows = append(rows, qualityRow{l.name, b.name, pipeline.ShuffleQuality(o, 0, batch, info)})
		}
	}
	return rows
}

func printQuality(w io.Writer, rows []qualityRow) {
	fmt.Fprintf(w, "\nshuffle quality, simulated ImageNet train split (%d records, %d classes, shards of %d), epoch 0:\n",
		imagenetTrain, imagenetClasses, imagenetShard)
	fmt.Fprintf(w, "%-18s %-16s %10s %14s %13s %16s\n", "shard layout", "buffer", "class run", "classes/batch", "corr(pos,ID)", "corr(pos,shard)")
	for _, r := range rows {
		fmt.Fprintf(w, "%-18s %-16s %10.3f %14.1f %+13.4f %+16.4f\n", r.Layout, r.Buffer, r.Q.MeanClassRun, r.Q.ClassesPerBatch, r.Q.IDCorr, r.Q.ShardCorr)
	}
}
