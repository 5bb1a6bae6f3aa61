package imageio

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// refResize is the plain reference for ResizeShortCrop: a line-by-line
// reading of Pillow's ImagingResample for the bilinear filter (float
// coefficients per output, converted to 22-bit integers, horizontal pass
// over every row to a uint8 image, vertical pass over every column), run on
// the whole image, then cropped. No padding, no windows, no shortcuts.
func refResize(src Image, size int) []uint8 {
	rw, rh := ResizedSize(src.W, src.H, size)
	type coeffs struct {
		bounds [][2]int
		k      [][]int32
	}
	pre := func(in, out int) coeffs {
		scale := float64(in) / float64(out)
		fs := math.Max(scale, 1)
		support := fs
		var c coeffs
		for xx := range out {
			center := (float64(xx) + 0.5) * scale
			xmin := int(center - support + 0.5)
			if xmin < 0 {
				xmin = 0
			}
			xmax := int(center + support + 0.5)
			if xmax > in {
				xmax = in
			}
			xmax -= xmin
			ws := make([]float64, xmax)
			ww := 0.0
			for x := range xmax {
				v := math.Abs((float64(x+xmin) - center + 0.5) * (1 / fs))
				w := 0.0
				if v < 1 {
					w = 1 - v
				}
				ws[x] = w
				ww += w
			}
			k := make([]int32, xmax)
			for x := range xmax {
				if ww != 0 {
					ws[x] /= ww
				}
				k[x] = int32(math.Floor(ws[x]*(1<<22) + 0.5))
			}
			c.bounds = append(c.bounds, [2]int{xmin, xmax})
			c.k = append(c.k, k)
		}
		return c
	}
	clamp := func(v int32) uint8 { return uint8(min(max(v>>22, 0), 255)) }
	cur, cw, ch := src.Pix, src.W, src.H
	if rw != cw {
		c := pre(cw, rw)
		next := make([]uint8, rw*ch*3)
		for y := range ch {
			for xx := range rw {
				for ch3 := range 3 {
					acc := int32(1 << 21)
					for i, w := range c.k[xx] {
						acc += int32(cur[(y*cw+c.bounds[xx][0]+i)*3+ch3]) * w
					}
					next[(y*rw+xx)*3+ch3] = clamp(acc)
				}
			}
		}
		cur, cw = next, rw
	}
	if rh != ch {
		c := pre(ch, rh)
		next := make([]uint8, cw*rh*3)
		for yy := range rh {
			for x := range cw * 3 {
				acc := int32(1 << 21)
				for i, w := range c.k[yy] {
					acc += int32(cur[(c.bounds[yy][0]+i)*cw*3+x]) * w
				}
				next[yy*cw*3+x] = clamp(acc)
			}
		}
		cur, ch = next, rh
	}
	left, top := (cw-size)/2, (ch-size)/2
	out := make([]uint8, size*size*3)
	for y := range size {
		copy(out[y*size*3:(y+1)*size*3], cur[((top+y)*cw+left)*3:])
	}
	return out
}

// randomPhoto makes a w x h image with smooth gradients plus noise, so
// both flat areas and edges (where clipping and rounding show) occur.
func randomPhoto(rng *rand.Rand, w, h int) Image {
	img := Image{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for y := range h {
		for x := range w {
			for c := range 3 {
				v := (x*(c+1)*255/max(w, 1) + y*(3-c)*255/max(h, 1)) / 2
				if rng.IntN(8) == 0 {
					v = rng.IntN(256)
				}
				img.Pix[(y*w+x)*3+c] = uint8(v)
			}
		}
	}
	return img
}

func TestResizedSize(t *testing.T) {
	for _, tc := range []struct{ w, h, size, rw, rh int }{
		{500, 375, 256, 341, 256},
		{375, 500, 256, 256, 341},
		{256, 256, 256, 256, 256},
		{50, 40, 256, 320, 256},
		{1, 1000, 256, 256, 256000},
		{333, 500, 224, 224, 336},
		{257, 256, 256, 257, 256},
	} {
		rw, rh := ResizedSize(tc.w, tc.h, tc.size)
		if rw != tc.rw || rh != tc.rh {
			t.Errorf("ResizedSize(%d, %d, %d) = %dx%d, want %dx%d", tc.w, tc.h, tc.size, rw, rh, tc.rw, tc.rh)
		}
	}
}

func TestResizeShortCropMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct{ w, h, size int }{
		{500, 375, 256}, // the typical ImageNet landscape
		{375, 500, 256}, // portrait: rows are cropped
		{500, 333, 256},
		{256, 256, 256}, // identity: no pass at all
		{256, 400, 256}, // width unchanged: vertical pass only
		{400, 256, 256}, // height unchanged: horizontal pass only
		{50, 40, 256},   // upscaling
		{40, 50, 64},
		{1, 1, 8},
		{1, 30, 8}, // extreme aspect ratio, long side far beyond the crop
		{2000, 3, 16},
		{1152, 864, 256}, // downscale by 3.4: wide kernels
		{511, 384, 256},
		{300, 225, 256},
		{257, 256, 256},
		{600, 450, 224},
	}
	for range 20 {
		cases = append(cases, struct{ w, h, size int }{1 + rng.IntN(700), 1 + rng.IntN(700), 1 + rng.IntN(300)})
	}
	for _, impl := range resizeImpls(t) {
		t.Run(impl, func(t *testing.T) {
			testResizeCases(t, rng, cases)
		})
	}
}

// resizeImpls runs a test once per kernel implementation available: the
// AVX2 assembly where the CPU has it, and always the pure-Go loops.
func resizeImpls(t *testing.T) []string {
	saved := useAVX2
	t.Cleanup(func() { setAVX2(saved) })
	impls := []string{"go"}
	if saved {
		impls = append(impls, "avx2")
	} else {
		t.Log("no AVX2 on this CPU: only the pure-Go kernels are tested")
	}
	return impls
}

func testResizeCases(t *testing.T, rng *rand.Rand, cases []struct{ w, h, size int }) {
	setAVX2(strings.HasSuffix(t.Name(), "avx2"))
	r := new(resizer) // one resizer across cases: its kernel cache must not leak between sizes
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dx%d_to_%d", tc.w, tc.h, tc.size), func(t *testing.T) {
			src := randomPhoto(rng, tc.w, tc.h)
			want := refResize(src, tc.size)
			got := make([]uint8, tc.size*tc.size*3)
			r.resizeShortCrop(src, tc.size, got)
			if i := firstDiff(got, want); i >= 0 {
				px := i / 3
				t.Fatalf("pixel (%d,%d) channel %d = %d, reference %d", px%tc.size, px/tc.size, i%3, got[i], want[i])
			}
			pooled := make([]uint8, tc.size*tc.size*3)
			ResizeShortCrop(src, tc.size, pooled)
			if firstDiff(pooled, want) >= 0 {
				t.Fatal("ResizeShortCrop differs from resizer.resizeShortCrop")
			}
		})
	}
}

func TestResizeShortCropUniform(t *testing.T) {
	// A flat image must stay exactly flat at any scale: the weights of
	// every output sum to one within the rounding that 22 bits allow.
	for _, tc := range []struct{ w, h int }{{500, 375}, {50, 40}, {3000, 17}, {7, 7}} {
		src := Image{W: tc.w, H: tc.h, Pix: make([]uint8, tc.w*tc.h*3)}
		for i := range src.Pix {
			src.Pix[i] = []uint8{0, 137, 255}[i%3]
		}
		dst := make([]uint8, 64*64*3)
		ResizeShortCrop(src, 64, dst)
		for i, v := range dst {
			if want := []uint8{0, 137, 255}[i%3]; v != want {
				t.Fatalf("%dx%d: byte %d = %d, want %d", tc.w, tc.h, i, v, want)
			}
		}
	}
}

func TestResizeShortCropPanicsOnMisuse(t *testing.T) {
	src := Image{W: 4, H: 4, Pix: make([]uint8, 48)}
	for name, f := range map[string]func(){
		"short dst":  func() { ResizeShortCrop(src, 4, make([]uint8, 47)) },
		"zero size":  func() { ResizeShortCrop(src, 0, nil) },
		"short src":  func() { ResizeShortCrop(Image{W: 4, H: 4, Pix: make([]uint8, 10)}, 2, make([]uint8, 12)) },
		"empty src":  func() { ResizeShortCrop(Image{}, 2, make([]uint8, 12)) },
		"neg width":  func() { ResizeShortCrop(Image{W: -1, H: 4, Pix: make([]uint8, 48)}, 2, make([]uint8, 12)) },
		"negative n": func() { ResizeShortCrop(src, -3, make([]uint8, 12)) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func firstDiff(a, b []uint8) int {
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

func BenchmarkResizeShortCrop(b *testing.B) {
	for _, tc := range []struct{ w, h int }{{500, 375}, {375, 500}, {1152, 864}, {50, 40}} {
		b.Run(fmt.Sprintf("%dx%d", tc.w, tc.h), func(b *testing.B) {
			src := randomPhoto(rand.New(rand.NewPCG(3, 4)), tc.w, tc.h)
			dst := make([]uint8, 256*256*3)
			r := new(resizer)
			b.SetBytes(int64(len(src.Pix)))
			b.ReportAllocs()
			c := startCPU(b)
			for b.Loop() {
				r.resizeShortCrop(src, 256, dst)
			}
			c.report(b)
		})
	}
}

// FuzzResizeShortCrop checks the optimised resize (assembly where the CPU
// has it) against the reference for arbitrary small geometries, including
// sources sized exactly to the last byte, where the kernels' read-ahead
// must fall back to scalar code.
func FuzzResizeShortCrop(f *testing.F) {
	f.Add(uint16(500), uint16(375), uint16(256), uint64(1))
	f.Add(uint16(1), uint16(1), uint16(1), uint64(2))
	f.Add(uint16(7), uint16(300), uint16(9), uint64(3))
	r := new(resizer)
	f.Fuzz(func(t *testing.T, w, h, size uint16, seed uint64) {
		w, h, size = w%700+1, h%700+1, size%300+1
		src := randomPhoto(rand.New(rand.NewPCG(seed, 0)), int(w), int(h))
		if rw, rh := ResizedSize(int(w), int(h), int(size)); rw*rh > 4<<20 {
			t.Skip("reference would be too slow") // it resizes the whole image
		}
		want := refResize(src, int(size))
		got := make([]uint8, len(want))
		r.resizeShortCrop(src, int(size), got)
		if i := firstDiff(got, want); i >= 0 {
			t.Fatalf("%dx%d to %d: byte %d = %d, reference %d", w, h, size, i, got[i], want[i])
		}
	})
}
