package pipeline

import (
	"fmt"
	"math/rand/v2"
)

// Ref names one record: its shard's index in the split (meta.json order)
// and its index within that shard.
type Ref struct {
	Shard, Record int32
}

// Position is where a run stands: the next batch to deliver is batch Batch
// of epoch Epoch, counting this rank's batches only. Saving a slot's Resume
// in a checkpoint and passing it back as Options.Start continues the run
// exactly where it stopped.
type Position struct {
	Epoch int `json:"epoch"`
	Batch int `json:"batch"`
}

// String counts the batch from 1 and the epoch from 0, as train's log
// lines do ("epoch 0 … batch 8/37"), so an error's position and the log
// line before it name the same batch.
func (p Position) String() string { return fmt.Sprintf("epoch %d batch %d", p.Epoch, p.Batch+1) }

// Order decides every epoch's sequence of records from the shards' record
// counts alone, reading no data, so the sequence is known before the first
// byte is read and does not depend on which worker reads what.
//
// With Shuffle, epoch e reads the shards in a fresh permutation (seeded by
// Seed and e), each shard's records in file order, and passes that stream
// through a simulated shuffle buffer of Buffer entries: once the buffer is
// full, each incoming record replaces a uniformly chosen entry, which is
// emitted; at the end the remaining entries come out in a uniform random
// order. Buffer ≤ 1 leaves the stream as read; Buffer ≥ Total() makes the
// epoch a uniform random permutation, a true global shuffle.
//
// Since the buffer holds only Refs (8 bytes), its size costs no pixel
// memory; what it trades is locality: a bigger buffer keeps more shards
// being read at once. Without Shuffle every epoch is the canonical order,
// shard by shard.
type Order struct {
	Counts  []int // records per shard, in meta.json order
	Seed    uint64
	Shuffle bool
	Buffer  int
}

// Total is the number of records in an epoch.
func (o *Order) Total() int {
	n := 0
	for _, c := range o.Counts {
		n += c
	}
	return n
}

// epochRNG is the generator for one epoch's shard permutation and shuffle
// buffer. The domain constant keeps its stream apart from the per-record
// augmentation streams, which are seeded from the same (seed, epoch).
func epochRNG(seed uint64, epoch int) *rand.Rand {
	h := splitmix(seed ^ 0x70697065_6c696e65) // "pipeline"
	h = splitmix(h ^ uint64(epoch))
	return rand.New(rand.NewPCG(h, splitmix(h^0x9e3779b97f4a7c15)))
}

// splitmix is the SplitMix64 finaliser, a bijective 64-bit mixer.
func splitmix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	return z ^ z>>31
}

// Epoch returns the shard reading order and the full record sequence of
// epoch (all ranks together), appending the sequence to dst[:0] so a
// caller can reuse it from epoch to epoch.
func (o *Order) Epoch(epoch int, dst []Ref) (shardOrder []int, seq []Ref) {
	shardOrder = make([]int, len(o.Counts))
	for i := range shardOrder {
		shardOrder[i] = i
	}
	seq = dst[:0]
	if !o.Shuffle {
		for s, c := range o.Counts {
			for r := range c {
				seq = append(seq, Ref{int32(s), int32(r)})
			}
		}
		return shardOrder, seq
	}
	rng := epochRNG(o.Seed, epoch)
	rng.Shuffle(len(shardOrder), func(i, j int) { shardOrder[i], shardOrder[j] = shardOrder[j], shardOrder[i] })
	size := max(o.Buffer, 1)
	if total := o.Total(); size > total {
		size = max(total, 1)
	}
	buf := make([]Ref, 0, size)
	for _, s := range shardOrder {
		for r := range o.Counts[s] {
			in := Ref{int32(s), int32(r)}
			if len(buf) < size {
				buf = append(buf, in)
				continue
			}
			j := rng.IntN(size)
			seq = append(seq, buf[j])
			buf[j] = in
		}
	}
	rng.Shuffle(len(buf), func(i, j int) { buf[i], buf[j] = buf[j], buf[i] })
	return shardOrder, append(seq, buf...)
}

// Share is the part [lo, hi) of an n-record epoch sequence that rank of
// world takes: contiguous, so that each rank reads mostly its own shards
// (what matters once shards live on object storage). With even set every
// rank gets ⌊n/world⌋ records and the last n mod world of the sequence,
// different records each epoch, are left out; training needs this, since
// ranks step in lockstep. Without it the first n mod world ranks get one
// record more and the shares cover the epoch, as evaluation wants.
func Share(n, rank, world int, even bool) (lo, hi int) {
	q, r := n/world, n%world
	if even {
		return rank * q, (rank + 1) * q
	}
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// batchCount is the number of batches a share of n records makes.
func batchCount(n, batch int, keepPartial bool) int {
	if keepPartial {
		return (n + batch - 1) / batch
	}
	return n / batch
}
