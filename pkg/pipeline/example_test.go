package pipeline_test

import (
	"fmt"

	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// An epoch's order comes from the shards' record counts alone. Without
// shuffling it is the canonical order; with it, a fresh shard permutation
// and a shuffle buffer each epoch, the same for the same seed and epoch.
// The output also pins math/rand/v2's algorithms, which the order depends
// on: a Go release that changed them would show here.
func ExampleOrder_Epoch() {
	counts := []int{3, 2, 3}
	canonical := pipeline.Order{Counts: counts}
	_, seq := canonical.Epoch(0, nil)
	fmt.Println("canonical:", seq)

	shuffled := pipeline.Order{Counts: counts, Seed: 42, Shuffle: true, Buffer: 4}
	order, seq := shuffled.Epoch(0, nil)
	fmt.Println("epoch 0 shards:", order, "records:", seq)
	_, again := shuffled.Epoch(0, nil)
	fmt.Println("same again:", fmt.Sprint(again) == fmt.Sprint(seq))
	// Output:
	// canonical: [{0 0} {0 1} {0 2} {1 0} {1 1} {2 0} {2 1} {2 2}]
	// epoch 0 shards: [2 1 0] records: [{1 0} {2 1} {1 1} {2 2} {2 0} {0 0} {0 2} {0 1}]
	// same again: true
}

// Ranks take contiguous, equal shares of each epoch in training; the last
// N mod world records of the epoch are left out.
func ExampleShare() {
	for rank := range 3 {
		lo, hi := pipeline.Share(10, rank, 3, true)
		fmt.Printf("rank %d: [%d, %d)\n", rank, lo, hi)
	}
	// Output:
	// rank 0: [0, 3)
	// rank 1: [3, 6)
	// rank 2: [6, 9)
}
