package pipeline

import (
	"fmt"
	"math"
)

// Quality describes how well one epoch's order mixes the records. Compare
// it with the same figures for a true global shuffle (the same Order with
// Buffer ≥ Total); the benchmark prints the two side by side.
type Quality struct {
	Records int
	// MeanClassRun is the mean length of runs of consecutive records with
	// the same label: 1 + about 1/classes for a global shuffle, the class
	// size when classes come out one after another.
	MeanClassRun float64
	// ClassesPerBatch is the mean number of distinct labels in each full
	// batch of consecutive records.
	ClassesPerBatch float64
	// IDCorr is the Pearson correlation between a record's position in the
	// epoch and its ID (its place in the canonical, sorted-name order):
	// about 0 (±1/√Records) for a global shuffle.
	IDCorr float64
	// ShardCorr is the Pearson correlation between a record's position in
	// the epoch and the place of its shard in the epoch's reading order:
	// near 1 when the epoch is read shard after shard, about 0 for a global
	// shuffle. It measures how far the buffer moves records, not class mixing.
	ShardCorr float64
}

func (q Quality) String() string {
	return fmt.Sprintf("class run %.3f, classes/batch %.1f, corr(position, ID) %+.4f, corr(position, shard) %+.4f",
		q.MeanClassRun, q.ClassesPerBatch, q.IDCorr, q.ShardCorr)
}

// ShuffleQuality measures epoch epoch of o with batches of batch records;
// info gives a record's label and ID (read once from the record headers,
// or made up for a simulated layout). It reads no pixels.
func ShuffleQuality(o Order, epoch, batch int, info func(Ref) (label int32, id uint64)) Quality {
	shardOrder, seq := o.Epoch(epoch, nil)
	q := Quality{Records: len(seq)}
	if len(seq) == 0 {
		return q
	}
	rank := make([]float64, len(shardOrder))
	for i, s := range shardOrder {
		rank[s] = float64(i)
	}
	labels := make([]int32, len(seq))
	ids := make([]float64, len(seq))
	shard := make([]float64, len(seq))
	runs := 0
	maxLabel := int32(-1)
	for i, r := range seq {
		l, id := info(r)
		labels[i], ids[i], shard[i] = l, float64(id), rank[r.Shard]
		if i == 0 || l != labels[i-1] {
			runs++
		}
		maxLabel = max(maxLabel, l)
	}
	q.MeanClassRun = float64(len(seq)) / float64(runs)
	q.IDCorr = positionCorr(ids)
	q.ShardCorr = positionCorr(shard)

	if batch > 0 && len(seq) >= batch {
		// stamp[l+1] == k+1 marks label l as seen in batch k (labels
		// start at -1), so the table needs no clearing between batches.
		stamp := make([]int, maxLabel+2)
		distinct := 0
		nb := len(seq) / batch
		for k := range nb {
			for _, l := range labels[k*batch : (k+1)*batch] {
				if l < -1 {
					l = -1
				}
				if stamp[l+1] != k+1 {
					stamp[l+1] = k + 1
					distinct++
				}
			}
		}
		q.ClassesPerBatch = float64(distinct) / float64(nb)
	}
	return q
}

// positionCorr is the Pearson correlation between x[i] and i; 0 when x
// is constant.
func positionCorr(x []float64) float64 {
	n := float64(len(x))
	mp := (n - 1) / 2
	var mx float64
	for _, v := range x {
		mx += v
	}
	mx /= n
	var sxy, sxx, syy float64
	for i, v := range x {
		dp, dx := float64(i)-mp, v-mx
		sxy += dp * dx
		sxx += dx * dx
		syy += dp * dp
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}
