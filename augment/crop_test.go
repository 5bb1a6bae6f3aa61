package augment

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// refCrop is the obvious definition: destination pixel (i, j) is source
// pixel (x+i, y+j), or (x+cw-1-i, y+j) when mirrored.
func refCrop(src []uint8, srcW, x, y, cw, ch int, flip bool) []uint8 {
	dst := make([]uint8, cw*ch*3)
	for j := range ch {
		for i := range cw {
			sx := x + i
			if flip {
				sx = x + cw - 1 - i
			}
			for c := range 3 {
				dst[(j*cw+i)*3+c] = src[((y+j)*srcW+sx)*3+c]
			}
		}
	}
	return dst
}

func randomImage(rng *rand.Rand, w, h int) []uint8 {
	img := make([]uint8, w*h*3)
	for i := range img {
		img[i] = uint8(rng.Uint32())
	}
	return img
}

const sentinel = 0xA5

// withGuard returns a destination of n bytes followed by guard bytes set to
// sentinel, so a write past the end shows up.
func withGuard(n int) (dst, all []uint8) {
	all = bytes.Repeat([]uint8{sentinel}, n+16)
	return all[:n], all
}

func checkGuard(t *testing.T, all []uint8, n int) {
	t.Helper()
	for i, b := range all[n:] {
		if b != sentinel {
			t.Fatalf("byte %d past the destination was overwritten", i)
		}
	}
}

func TestCrop(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name                     string
		srcW, srcH, x, y, cw, ch int
	}{
		// Widths 1 to 5 exercise flipRow's pair loop and its one-by-one tail.
		{"1 pixel", 1, 1, 0, 0, 1, 1},
		{"width 2", 5, 3, 3, 1, 2, 2},
		{"width 3", 5, 3, 2, 0, 3, 3},
		{"width 4", 5, 3, 1, 2, 4, 1},
		{"width 5, whole image", 5, 3, 0, 0, 5, 3},
		// Widths 9 to 11 add flipRow's four-pair loop.
		{"width 9", 12, 2, 3, 0, 9, 2},
		{"width 10", 12, 2, 1, 1, 10, 1},
		{"width 11", 12, 2, 0, 0, 11, 2},
		{"top-left", 256, 256, 0, 0, 224, 224},
		{"bottom-right", 256, 256, 32, 32, 224, 224},
		{"inner odd", 256, 256, 7, 19, 224, 224},
		{"non-square", 300, 256, 61, 3, 227, 221},
		{"tall narrow", 17, 40, 16, 0, 1, 40},
	}
	for _, tc := range tests {
		src := randomImage(rng, tc.srcW, tc.srcH)
		for _, flip := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/flip=%v", tc.name, flip), func(t *testing.T) {
				n := tc.cw * tc.ch * 3
				dst, all := withGuard(n)
				Crop(dst, src, tc.srcW, tc.srcH, tc.x, tc.y, tc.cw, tc.ch, flip)
				if want := refCrop(src, tc.srcW, tc.x, tc.y, tc.cw, tc.ch, flip); !bytes.Equal(dst, want) {
					t.Fatalf("differs from the reference at byte %d", firstDiff(dst, want))
				}
				checkGuard(t, all, n)
			})
		}
	}
}

func TestCropRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		srcW, srcH := 1+rng.IntN(40), 1+rng.IntN(40)
		cw, ch := 1+rng.IntN(srcW), 1+rng.IntN(srcH)
		x, y := rng.IntN(srcW-cw+1), rng.IntN(srcH-ch+1)
		flip := rng.IntN(2) == 1
		// The source is cut exactly to size so a read past its end panics.
		src := randomImage(rng, srcW, srcH)
		dst, all := withGuard(cw * ch * 3)
		Crop(dst, src, srcW, srcH, x, y, cw, ch, flip)
		if want := refCrop(src, srcW, x, y, cw, ch, flip); !bytes.Equal(dst, want) {
			t.Fatalf("%dx%d from %dx%d at (%d,%d) flip=%v: differs at byte %d", cw, ch, srcW, srcH, x, y, flip, firstDiff(dst, want))
		}
		checkGuard(t, all, cw*ch*3)
	}
}

func TestRandomCropUsesParams(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	src := randomImage(rng, 20, 18)
	p := Params{X: 3, Y: 5, Flip: true}
	dst := make([]uint8, 12*12*3)
	RandomCrop(dst, src, 20, 18, 12, p)
	if want := refCrop(src, 20, 3, 5, 12, 12, true); !bytes.Equal(dst, want) {
		t.Fatal("RandomCrop did not crop at p.X, p.Y with p.Flip")
	}
}

func TestCenterCrop(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	tests := []struct {
		srcW, srcH, crop, x, y int
	}{
		{256, 256, 224, 16, 16},
		{256, 256, 227, 14, 14}, // odd margin rounds down
		{300, 257, 224, 38, 16},
		{5, 5, 5, 0, 0},
	}
	for _, tc := range tests {
		src := randomImage(rng, tc.srcW, tc.srcH)
		dst := make([]uint8, tc.crop*tc.crop*3)
		CenterCrop(dst, src, tc.srcW, tc.srcH, tc.crop)
		if want := refCrop(src, tc.srcW, tc.x, tc.y, tc.crop, tc.crop, false); !bytes.Equal(dst, want) {
			t.Errorf("%d from %dx%d: not the window at (%d,%d)", tc.crop, tc.srcW, tc.srcH, tc.x, tc.y)
		}
	}
}

func TestTenCropOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const srcW, srcH, crop = 37, 31, 24
	src := randomImage(rng, srcW, srcH)
	mx, my := srcW-crop, srcH-crop
	want := [10]struct {
		x, y int
		flip bool
	}{
		{0, 0, false}, {mx, 0, false}, {0, my, false}, {mx, my, false}, {mx / 2, my / 2, false},
		{0, 0, true}, {mx, 0, true}, {0, my, true}, {mx, my, true}, {mx / 2, my / 2, true},
	}
	var dsts [10][]uint8
	for i := range dsts {
		dsts[i] = make([]uint8, crop*crop*3)
	}
	TenCrop(dsts, src, srcW, srcH, crop)
	for i, w := range want {
		if ref := refCrop(src, srcW, w.x, w.y, crop, crop, w.flip); !bytes.Equal(dsts[i], ref) {
			t.Errorf("view %d is not the window at (%d,%d) flip=%v", i, w.x, w.y, w.flip)
		}
	}
}

func TestCropPanics(t *testing.T) {
	src := make([]uint8, 10*8*3)
	dst := make([]uint8, 10*8*3)
	tests := []struct {
		name                     string
		dst, src                 []uint8
		srcW, srcH, x, y, cw, ch int
	}{
		{"x past the right edge", dst, src, 10, 8, 3, 0, 8, 8},
		{"y past the bottom", dst, src, 10, 8, 0, 1, 8, 8},
		{"negative x", dst, src, 10, 8, -1, 0, 4, 4},
		{"zero width", dst, src, 10, 8, 0, 0, 0, 4},
		{"short source", dst, src[:len(src)-1], 10, 8, 0, 0, 4, 4},
		{"short destination", dst[:4*4*3-1], src, 10, 8, 0, 0, 4, 4},
	}
	for _, tc := range tests {
		for _, flip := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/flip=%v", tc.name, flip), func(t *testing.T) {
				defer func() {
					if recover() == nil {
						t.Fatal("no panic")
					}
				}()
				Crop(tc.dst, tc.src, tc.srcW, tc.srcH, tc.x, tc.y, tc.cw, tc.ch, flip)
			})
		}
	}
}

// TestCropRow checks each row against the reference crop, over widths and
// offsets that exercise flipRow's pair loop and its tail, and that it
// writes nothing past its cw pixels.
func TestCropRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, w := range []int{1, 2, 3, 9, 17, 33, 256} {
		row := randomImage(rng, w, 1)
		for x := 0; x < w; x += max(1, w/5) {
			for _, cw := range []int{0, 1, w - x} {
				for _, flip := range []bool{false, true} {
					dst, all := withGuard(3 * cw)
					CropRow(dst, row, x, cw, flip)
					checkGuard(t, all, 3*cw)
					if cw == 0 {
						continue
					}
					if want := refCrop(row, w, x, 0, cw, 1, flip); !bytes.Equal(dst, want) {
						t.Fatalf("w %d x %d cw %d flip %v: differs at %d", w, x, cw, flip, firstDiff(dst, want))
					}
				}
			}
		}
	}
	for _, tc := range []struct {
		name     string
		dst, row int // lengths
		x, cw    int
	}{
		{"past the end", 30, 30, 5, 6},
		{"negative x", 30, 30, -1, 2},
		{"negative width", 30, 30, 0, -1},
		{"short destination", 5, 30, 0, 2},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", tc.name)
				}
			}()
			CropRow(make([]uint8, tc.dst), make([]uint8, tc.row), tc.x, tc.cw, false)
		}()
	}
}

func firstDiff(a, b []uint8) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
