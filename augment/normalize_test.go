package augment

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// refNormalize is the contract written out pixel by pixel, with no table.
func refNormalize(src []uint8, w, h int, mean, std, offset [3]float32) []float32 {
	dst := make([]float32, 3*w*h)
	for y := range h {
		for x := range w {
			for c := range 3 {
				v := float32(src[(y*w+x)*3+c])
				bias := offset[c] - mean[c]
				scale := float32(1 / float64(std[c]))
				dst[(c*h+y)*w+x] = float32(v+bias) * scale
			}
		}
	}
	return dst
}

func TestNormalizeKnownValues(t *testing.T) {
	for i, kv := range KnownValues {
		// Put the case in each channel in turn, with the other two
		// channels' constants chosen to give different results, so a
		// kernel that mixes up channels fails too.
		for c := range 3 {
			t.Run(fmt.Sprintf("%d %s/channel %d", i, kv.Note, c), func(t *testing.T) {
				src := []uint8{99, 99, 99}
				mean := [3]float32{1, 2, 3}
				std := [3]float32{4, 5, 6}
				off := [3]float32{7, 8, 9}
				src[c], mean[c], std[c], off[c] = kv.V, kv.Mean, kv.Std, kv.Offset
				dst := make([]float32, 3)
				Normalize(dst, src, 1, 1, mean, std, off)
				if got := math.Float32bits(dst[c]); got != kv.Out {
					t.Errorf("got %#08x (%v), want %#08x (%v)", got, dst[c], kv.Out, math.Float32frombits(kv.Out))
				}
				for o := range 3 {
					want := (float32(99) + (off[o] - mean[o])) * float32(1/float64(std[o]))
					if o != c && dst[o] != want {
						t.Errorf("channel %d disturbed: got %v, want %v", o, dst[o], want)
					}
				}
			})
		}
	}
}

// TestKnownValuesDiscriminate makes sure the table can fail: each wrong
// evaluation it claims to catch must disagree with it somewhere.
func TestKnownValuesDiscriminate(t *testing.T) {
	wrong := []struct {
		name string
		f    func(v, mean, std, off float32) float32
	}{
		{"divide by std", func(v, mean, std, off float32) float32 {
			return float32(v+(off-mean)) / std
		}},
		{"subtract mean first", func(v, mean, std, off float32) float32 {
			return float32(float32(v-mean)+off) * float32(1/float64(std))
		}},
		{"fused multiply-add", func(v, mean, std, off float32) float32 {
			s := float32(1 / float64(std))
			return float32(math.FMA(float64(v), float64(s), float64(float32((off-mean)*s))))
		}},
	}
	for _, w := range wrong {
		caught := false
		for _, kv := range KnownValues {
			if math.Float32bits(w.f(float32(kv.V), kv.Mean, kv.Std, kv.Offset)) != kv.Out {
				caught = true
			}
		}
		if !caught {
			t.Errorf("KnownValues cannot tell %q from the contract", w.name)
		}
	}
}

func TestNormalizeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for range 200 {
		w, h := 1+rng.IntN(30), 1+rng.IntN(30)
		src := randomImage(rng, w, h)
		var mean, std, off [3]float32
		for c := range 3 {
			mean[c] = float32(rng.Float64() * 255)
			std[c] = float32(1 + rng.Float64()*100)
			off[c] = float32(rng.NormFloat64() * 20)
		}
		dst := make([]float32, 3*w*h+1)
		dst[3*w*h] = 12345 // guard
		Normalize(dst[:3*w*h], src, w, h, mean, std, off)
		want := refNormalize(src, w, h, mean, std, off)
		for i := range want {
			if math.Float32bits(dst[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%dx%d value %d: got %v, want %v", w, h, i, dst[i], want[i])
			}
		}
		if dst[3*w*h] != 12345 {
			t.Fatal("wrote past the image")
		}
	}
}

func TestNormalizeBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const n, w, h = 5, 7, 3
	size := 3 * w * h
	src := randomImage(rng, w, h*n)
	mean := [3]float32{127.3, 119.72, 104.91}
	std := [3]float32{58.4, 57.1, 57.4}
	offsets := make([][3]float32, n)
	for k := range offsets {
		offsets[k] = [3]float32{float32(k), -float32(k) * 2, 0.5}
	}
	tests := []struct {
		name    string
		offsets [][3]float32
	}{
		{"with lighting", offsets},
		{"nil offsets", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, n*size)
			NormalizeBatch(dst, src, n, w, h, mean, std, tc.offsets)
			for k := range n {
				var off [3]float32
				if tc.offsets != nil {
					off = tc.offsets[k]
				}
				want := refNormalize(src[k*size:(k+1)*size], w, h, mean, std, off)
				for i, v := range want {
					if dst[k*size+i] != v {
						t.Fatalf("image %d value %d: got %v, want %v", k, i, dst[k*size+i], v)
					}
				}
			}
		})
	}
}

func TestNormalizePanics(t *testing.T) {
	var m, s, o [3]float32
	tests := []struct {
		name string
		f    func()
	}{
		{"short source", func() { Normalize(make([]float32, 12), make([]uint8, 11), 2, 2, m, s, o) }},
		{"short destination", func() { Normalize(make([]float32, 11), make([]uint8, 12), 2, 2, m, s, o) }},
		{"zero width", func() { Normalize(make([]float32, 12), make([]uint8, 12), 0, 2, m, s, o) }},
		{"batch short source", func() { NormalizeBatch(make([]float32, 24), make([]uint8, 23), 2, 2, 2, m, s, nil) }},
		{"batch few offsets", func() { NormalizeBatch(make([]float32, 24), make([]uint8, 24), 2, 2, 2, m, s, make([][3]float32, 1)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tc.f()
		})
	}
}
