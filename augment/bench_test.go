package augment

import (
	"math/rand/v2"
	"testing"
)

const benchSrc, benchCrop = 256, 224

func benchImage() []uint8 {
	return randomImage(rand.New(rand.NewPCG(1, 1)), benchSrc, benchSrc)
}

func benchmarkCrop(b *testing.B, flip bool) {
	src := benchImage()
	dst := make([]uint8, benchCrop*benchCrop*3)
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Crop(dst, src, benchSrc, benchSrc, i%33, (i/33)%33, benchCrop, benchCrop, flip)
	}
}

func BenchmarkCrop(b *testing.B)     { benchmarkCrop(b, false) }
func BenchmarkCropFlip(b *testing.B) { benchmarkCrop(b, true) }

// BenchmarkCropFlipReference measures the per-byte reference, to show what
// flipRow's wide moves buy.
func BenchmarkCropFlipReference(b *testing.B) {
	src := benchImage()
	b.SetBytes(benchCrop * benchCrop * 3)
	b.ReportAllocs()
	for b.Loop() {
		refCrop(src, benchSrc, 16, 16, benchCrop, benchCrop, true)
	}
}

// BenchmarkDrawCrop is one training record's CPU work in this package:
// seed, draw, crop and mirror, lighting offset.
func BenchmarkDrawCrop(b *testing.B) {
	src := benchImage()
	dst := make([]uint8, benchCrop*benchCrop*3)
	pcg := rand.NewPCG(0, 0)
	rng := rand.New(pcg)
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		pcg.Seed(RecordSeed(1, 0, i))
		p := Draw(rng, benchSrc, benchSrc, benchCrop, DefaultSigma)
		RandomCrop(dst, src, benchSrc, benchSrc, benchCrop, p)
		_ = LightingOffset(cudaConvnet2.eigval, cudaConvnet2.eigvec, p.Alpha)
	}
}

func BenchmarkDraw(b *testing.B) {
	pcg := rand.NewPCG(0, 0)
	rng := rand.New(pcg)
	b.SetBytes(1) // one record per byte: MB/s reads as millions of records/s
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		pcg.Seed(RecordSeed(1, 0, i))
		Draw(rng, benchSrc, benchSrc, benchCrop, DefaultSigma)
	}
}

func BenchmarkLightingOffset(b *testing.B) {
	alpha := [3]float32{0.05, -0.1, 0.02}
	b.SetBytes(3 * 4)
	b.ReportAllocs()
	var sink [3]float32
	for b.Loop() {
		sink = LightingOffset(cudaConvnet2.eigval, cudaConvnet2.eigvec, alpha)
	}
	_ = sink
}

func BenchmarkNormalize(b *testing.B) {
	src := randomImage(rand.New(rand.NewPCG(2, 2)), benchCrop, benchCrop)
	dst := make([]float32, 3*benchCrop*benchCrop)
	mean := [3]float32{127.3, 119.72, 104.91}
	std := [3]float32{58.4, 57.1, 57.4}
	off := [3]float32{7.4, -3.1, 0.5}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		Normalize(dst, src, benchCrop, benchCrop, mean, std, off)
	}
}

func BenchmarkNormalizeReference(b *testing.B) {
	src := randomImage(rand.New(rand.NewPCG(2, 2)), benchCrop, benchCrop)
	mean := [3]float32{127.3, 119.72, 104.91}
	std := [3]float32{58.4, 57.1, 57.4}
	var off [3]float32
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		refNormalize(src, benchCrop, benchCrop, mean, std, off)
	}
}

func BenchmarkNormalizeBatch(b *testing.B) {
	const n = 8
	src := randomImage(rand.New(rand.NewPCG(3, 3)), benchCrop, benchCrop*n)
	dst := make([]float32, n*3*benchCrop*benchCrop)
	mean := [3]float32{127.3, 119.72, 104.91}
	std := [3]float32{58.4, 57.1, 57.4}
	offsets := make([][3]float32, n)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		NormalizeBatch(dst, src, n, benchCrop, benchCrop, mean, std, offsets)
	}
}

func BenchmarkCenterCrop(b *testing.B) {
	src := benchImage()
	dst := make([]uint8, benchCrop*benchCrop*3)
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for b.Loop() {
		CenterCrop(dst, src, benchSrc, benchSrc, benchCrop)
	}
}

func BenchmarkTenCrop(b *testing.B) {
	src := benchImage()
	var dsts [10][]uint8
	for i := range dsts {
		dsts[i] = make([]uint8, benchCrop*benchCrop*3)
	}
	b.SetBytes(10 * benchCrop * benchCrop * 3)
	b.ReportAllocs()
	for b.Loop() {
		TenCrop(dsts, src, benchSrc, benchSrc, benchCrop)
	}
}
