package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

var (
	benchOnce sync.Once
	benchDir  string
)

// benchShards is 256 synthetic 256×256 records in 8 shards. Synthetic
// pixels compress differently from photos: cmd benchpipeline measures
// the real ImageNet sample.
func benchShards(b *testing.B) string {
	benchOnce.Do(func() {
		f := fixture{counts: []int{32, 32, 32, 32, 32, 32, 32, 32}, w: 256, h: 256, classes: 16, val: []int{1}}
		benchDir = b.TempDir()
		f.writeTo(b, benchDir)
	})
	return benchDir
}

// BenchmarkPipeline measures steady-state training batches (64 × 224²):
// one op is one batch, and allocs/op counts a whole batch's allocations.
func BenchmarkPipeline(b *testing.B) {
	dir := benchShards(b)
	for _, decoders := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("decoders=%d", decoders), func(b *testing.B) {
			const batch, crop = 64, 224
			p, err := New(context.Background(), dir, Options{Batch: batch, Crop: crop, Decoders: decoders, Readers: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			for range 4 { // fill the queues and grow every buffer
				s, err := p.Next()
				if err != nil {
					b.Fatal(err)
				}
				s.Release()
			}
			b.SetBytes(batch * crop * crop * 3)
			b.ReportAllocs()
			for b.Loop() {
				s, err := p.Next()
				if err != nil {
					b.Fatal(err)
				}
				s.Release()
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "img/s")
		})
	}
}

// BenchmarkOrderEpoch plans an ImageNet-sized epoch (1252 shards of 1024,
// buffer of 4 shards), which the plan stage does once per epoch.
func BenchmarkOrderEpoch(b *testing.B) {
	counts := make([]int, 1252)
	for i := range counts {
		counts[i] = 1024
	}
	o := Order{Counts: counts, Seed: 1, Shuffle: true, Buffer: 4096}
	var seq []Ref
	b.SetBytes(int64(o.Total()) * 8)
	b.ReportAllocs()
	epoch := 0
	for b.Loop() {
		_, seq = o.Epoch(epoch, seq)
		epoch++
	}
}

func BenchmarkDigest(b *testing.B) {
	s := NewSlot(128, 1, 224)
	s.N, s.Crop, s.Views = 128, 224, 1
	d := NewDigest()
	b.SetBytes(int64(len(s.Pixels)))
	b.ReportAllocs()
	for b.Loop() {
		d.Add(s)
	}
}

func BenchmarkNormalizeSlot(b *testing.B) {
	s := NewSlot(16, 1, 224)
	s.N, s.Crop, s.Views = 16, 224, 1
	var dst []float32
	b.SetBytes(int64(len(s.Pixels)))
	b.ReportAllocs()
	for b.Loop() {
		dst = s.Normalize(dst, [3]float32{120, 115, 100}, [3]float32{60, 58, 57})
	}
}
