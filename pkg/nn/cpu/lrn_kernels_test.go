package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// sameBits fails unless got and want hold the same float32s bit for bit.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d of %d is %v (%#x), want %v (%#x)", what, i, len(want), got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// The LRN row kernels give the Go loops' results bit for bit (with AVX2
// where the machine has it, and so the assembly against the Go), at every
// length around the 8-wide steps, with zeros of both signs, NaN,
// infinities and values whose squares overflow among the inputs, and
// leave the elements past the row alone.
func TestLRNRowKernels(t *testing.T) {
	if !useAVX2 {
		t.Log("no AVX2 here: the dispatchers run the Go loops, which this compares with themselves")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	specials := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 3e38, -2e20, 1e-40}
	row := func(n int, scale float64) []float32 {
		v := make([]float32, n+3) // 3 past the row, to see them untouched
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
			if rng.IntN(9) == 0 {
				v[i] = specials[rng.IntN(len(specials))]
			}
		}
		return v
	}
	clone := func(v []float32) []float32 { return append([]float32(nil), v...) }
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 225, 512} {
		for _, scale := range []float64{1, 40, 1e4} {
			a, x := row(n, scale*scale), row(n, scale)
			for _, k := range []struct {
				name    string
				kernel  func(a, x []float32)
				generic func(a, x []float32)
			}{{"sqAdd", sqAddRow, sqAddGo}, {"sqSub", sqSubRow, sqSubGo}, {"sub", subRow, subGo}, {"add", addTo, func(a, x []float32) {
				for i := range x {
					a[i] += x[i]
				}
			}}} {
				got, want := clone(a), clone(a)
				k.kernel(got[:n], x[:n])
				k.generic(want[:n], x[:n])
				sameBits(t, k.name, got, want)
			}

			sum, xs := row(n, scale*scale), row(n, scale)
			outs := func() [][]float32 { return [][]float32{row(n, 1), row(n, 1), row(n, 1)} }
			g, w := outs(), outs()
			for i := range g {
				copy(w[i], g[i])
			}
			lrnFwdRow(sum[:n], xs, g[0], g[1], g[2], 2, 5e-4)
			lrnFwdGo(sum[:n], xs, w[0], w[1], w[2], 2, 5e-4)
			for i, name := range []string{"forward y", "forward 1/s", "forward s^-0.75"} {
				sameBits(t, name, g[i], w[i])
			}

			d, y, inv := row(n, 1), row(n, scale), row(n, 1e-3)
			tg, tw := row(n, 1), []float32(nil)
			tw = clone(tg)
			mul3Row(tg[:n], d, y, inv)
			mul3Go(tw[:n], d, y, inv)
			sameBits(t, "backward d·y/s", tg, tw)

			gg := row(n, 1)
			gw := clone(gg)
			lrnBwdRow(gg[:n], d, inv, xs, sum, -7.5e-4)
			lrnBwdGo(gw[:n], d, inv, xs, sum, -7.5e-4)
			sameBits(t, "backward dx", gg, gw)
		}
	}
}

// The layer gives the same outputs and gradients with and without the
// AVX2 kernels, on every LRN shape the tests know.
func TestLRNLayerSameWithoutAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this machine: nothing to compare")
	}
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range lrnCases {
		n, h, w := 3, 13, 17 // 221 positions: not a multiple of 8
		x := randn(rng, n*tc.c*h*w, tc.xStd)
		dy := randn(rng, len(x), 1)
		run := func(avx bool) (y, dx []float32) {
			was := useAVX2
			useAVX2 = avx
			defer func() { useAVX2 = was }()
			l := newLRNLayer(n, tc.c, h, w, tc.p.Size, tc.p.Alpha, tc.p.Beta, tc.p.K)
			l.forward(x)
			l.backward(x, dy)
			return append([]float32(nil), l.y.data...), append([]float32(nil), l.dx.data...)
		}
		y1, dx1 := run(true)
		y0, dx0 := run(false)
		sameBits(t, tc.name+" y", y1, y0)
		sameBits(t, tc.name+" dx", dx1, dx0)
	}
}

// BenchmarkLRN is forward and backward over small's norm1 (batch 128 ×
// 32 channels × 15×15, size 3), with the AVX2 kernels and with the Go
// loops alone.
func BenchmarkLRN(b *testing.B) {
	const n, c, h, w = 128, 32, 15, 15
	l := newLRNLayer(n, c, h, w, 3, 5e-5, 0.75, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	x, dy := randn(rng, n*c*h*w, 40), randn(rng, n*c*h*w, 1)
	for _, avx := range []bool{true, false} {
		name := "go"
		if avx {
			name = "avx2"
		}
		b.Run(name, func(b *testing.B) {
			if avx && !useAVX2 {
				b.Skip("no AVX2")
			}
			was := useAVX2
			useAVX2 = avx
			defer func() { useAVX2 = was }()
			b.SetBytes(int64(len(x) * 4))
			b.ReportAllocs()
			for b.Loop() {
				l.forward(x)
				l.backward(x, dy)
			}
		})
	}
}
