package shards

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// gradImpls runs f once per implementation of the filter kernels this
// machine has, with the kernels switched accordingly.
func gradImpls(t testing.TB, f func(name string)) {
	t.Helper()
	defer setAVX2(true)
	setAVX2(false)
	f("go")
	setAVX2(true)
	if useAVX2 {
		f("avx2")
	}
}

// guarded returns a slice of n bytes filled with junk, followed in the same
// array by 96 sentinel bytes that check reports on if anything wrote there.
func guarded(rng *rand.Rand, n int) (b []byte, check func() bool) {
	buf := randBytes(rng, n+96)
	tail := bytes.Clone(buf[n:])
	return buf[:n:n], func() bool { return bytes.Equal(buf[n:], tail) }
}

func TestGradKernelsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var widths []int
	for w := 1; w <= 70; w++ {
		widths = append(widths, w)
	}
	widths = append(widths, 95, 96, 97, 127, 128, 129, 224, 255, 256, 257, 300)
	for _, w := range widths {
		for _, h := range []int{1, 2, 3, 5, 33} {
			for k, pix := range [][]byte{photoLike(rng, w, h), randBytes(rng, w*h*3)} {
				want := refGradFilter(pix, w, h)
				gradImpls(t, func(impl string) {
					name := fmt.Sprintf("%s %dx%d input %d", impl, w, h, k)
					res, ok := guarded(rng, len(pix))
					gradFilter(res, pix, w, h, make([]byte, 6*w))
					if !ok() {
						t.Fatalf("%s: gradFilter wrote past the end", name)
					}
					if !bytes.Equal(res, want) {
						t.Fatalf("%s: gradFilter differs from reference at %d", name, firstDiff(res, want))
					}
					back, ok := guarded(rng, len(pix))
					gradUnfilter(back, res, w, h)
					if !ok() {
						t.Fatalf("%s: gradUnfilter wrote past the end", name)
					}
					if !bytes.Equal(back, pix) {
						t.Fatalf("%s: gradUnfilter does not invert at %d", name, firstDiff(back, pix))
					}
				})
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestGradUnfilterArbitraryResiduals decodes residual planes that no image
// produced (every byte string is some image's residuals) with every kernel.
func TestGradUnfilterArbitraryResiduals(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sz := range [][2]int{{1, 40}, {7, 9}, {31, 31}, {32, 32}, {33, 3}, {63, 17}, {200, 2}, {256, 256}} {
		w, h := sz[0], sz[1]
		res := randBytes(rng, 3*w*h)
		var first []byte
		gradImpls(t, func(impl string) {
			pix := make([]byte, len(res))
			gradUnfilter(pix, res, w, h)
			if first == nil {
				first = pix
			} else if !bytes.Equal(pix, first) {
				t.Fatalf("%dx%d: %s decodes differently from go at %d", w, h, impl, firstDiff(pix, first))
			}
			if !bytes.Equal(refGradFilter(pix, w, h), res) {
				t.Fatalf("%dx%d: %s: filtering the decoded image does not give the residuals back", w, h, impl)
			}
		})
	}
}

func FuzzGradRoundTrip(f *testing.F) {
	f.Add(uint16(1), []byte{1, 2, 3})
	f.Add(uint16(33), bytes.Repeat([]byte{200, 1, 7}, 33*3))
	f.Add(uint16(32), bytes.Repeat([]byte{9, 255, 0, 4}, 3*32*5))
	f.Fuzz(func(t *testing.T, w16 uint16, data []byte) {
		w := int(w16)%300 + 1
		h := len(data) / (3 * w)
		if h == 0 {
			return
		}
		pix := data[:3*w*h]
		want := refGradFilter(pix, w, h)
		gradImpls(t, func(impl string) {
			res := make([]byte, len(pix))
			gradFilter(res, pix, w, h, make([]byte, 6*w))
			if !bytes.Equal(res, want) {
				t.Fatalf("%s %dx%d: gradFilter differs from reference", impl, w, h)
			}
			back := make([]byte, len(pix))
			gradUnfilter(back, res, w, h)
			if !bytes.Equal(back, pix) {
				t.Fatalf("%s %dx%d: round trip differs", impl, w, h)
			}
			// The data as residuals decodes the same way in every kernel.
			gradUnfilter(back, pix, w, h)
			if !bytes.Equal(refGradFilter(back, w, h), pix) {
				t.Fatalf("%s %dx%d: decoding arbitrary residuals is not inverted by the filter", impl, w, h)
			}
		})
	})
}

// realImages loads the real-photo sample if it is on this machine: 256×256
// RGB images, raw and concatenated.
func realImages(b *testing.B) ([][]byte, int, int) {
	const w, h = 256, 256
	raw, err := os.ReadFile("/tmp/codec/raw200.bin")
	if err != nil {
		b.Skip("no real-photo sample: ", err)
	}
	var ims [][]byte
	for len(raw) >= w*h*3 {
		ims = append(ims, raw[:w*h*3])
		raw = raw[w*h*3:]
	}
	return ims, w, h
}

// BenchmarkGradKernels times each kernel on the same data in one run, so
// their ratio survives a noisy machine.
func BenchmarkGradKernels(b *testing.B) {
	ims, _, _ := benchImages(b)
	for _, wh := range [][2]int{{256, 256}, {32, 32}, {255, 255}} {
		w, h := wh[0], wh[1]
		pix := photoLike(rand.New(rand.NewPCG(9, 9)), w, h)
		if w == 256 {
			pix = ims[0]
		}
		res := make([]byte, len(pix))
		scratch := make([]byte, 6*w)
		out := make([]byte, len(pix))
		gradImpls(b, func(impl string) {
			b.Run(fmt.Sprintf("unfilter/%dx%d/%s", w, h, impl), func(b *testing.B) {
				gradFilter(res, pix, w, h, scratch)
				b.SetBytes(int64(len(pix)))
				b.ReportAllocs()
				for b.Loop() {
					gradUnfilter(out, res, w, h)
				}
			})
			b.Run(fmt.Sprintf("filter/%dx%d/%s", w, h, impl), func(b *testing.B) {
				b.SetBytes(int64(len(pix)))
				b.ReportAllocs()
				for b.Loop() {
					gradFilter(res, pix, w, h, scratch)
				}
			})
		})
	}
}

// encodeAll compresses each of ims with codec.
func encodeAll(b *testing.B, codec Codec, ims [][]byte, w, h int) [][]byte {
	enc, err := NewEncoder(codec)
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	var payloads [][]byte
	for _, im := range ims {
		p, err := enc.Encode(nil, im, w, h)
		if err != nil {
			b.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	return payloads
}

// BenchmarkDecodeReal decodes the real-photo sample with each kernel.
func BenchmarkDecodeReal(b *testing.B) {
	ims, w, h := realImages(b)
	payloads := encodeAll(b, CodecGradZstd, ims, w, h)
	dec, _ := NewDecoder()
	pix := make([]byte, w*h*3)
	gradImpls(b, func(impl string) {
		b.Run(impl, func(b *testing.B) {
			b.SetBytes(int64(w * h * 3))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := dec.Decode(pix, CodecGradZstd, payloads[i%len(payloads)], w, h); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// TestDecodeRows checks the row-streaming decoder against Decode for both
// codecs and every kernel, on widths around the AVX2 block size, for every
// prefix length a crop can ask for, and that it reads nothing it should not.
func TestDecodeRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, codec := range []Codec{CodecZstd, CodecGradZstd} {
		enc, err := NewEncoder(codec)
		if err != nil {
			t.Fatal(err)
		}
		for _, sz := range [][2]int{{1, 1}, {1, 9}, {5, 3}, {31, 4}, {32, 32}, {33, 7}, {64, 2}, {70, 70}, {97, 13}, {256, 256}} {
			w, h := sz[0], sz[1]
			pix := photoLike(rng, w, h)
			payload, err := enc.Encode(nil, pix, w, h)
			if err != nil {
				t.Fatal(err)
			}
			gradImpls(t, func(impl string) {
				for _, rows := range []int{0, 1, h / 2, h} {
					for _, mirror := range []bool{false, true} {
						name := fmt.Sprintf("%v %s %dx%d rows %d mirror %v", codec, impl, w, h, rows, mirror)
						next := 0
						err := dec.DecodeRows(codec, payload, w, h, rows, mirror, func(y int, row []byte, mirrored bool) {
							if y != next {
								t.Fatalf("%s: row %d came when %d was due", name, y, next)
							}
							next++
							// Only the AVX2 kernel mirrors, and it always does when asked.
							if want := mirror && codec == CodecGradZstd && impl == "avx2"; mirrored != want {
								t.Fatalf("%s: row %d mirrored %v, want %v", name, y, mirrored, want)
							}
							want := pix[y*3*w : (y+1)*3*w]
							if mirrored {
								want = refMirror(want)
							}
							if !bytes.Equal(row, want) {
								t.Fatalf("%s: row %d differs at byte %d", name, y, firstDiff(row, want))
							}
						})
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						if next != rows {
							t.Fatalf("%s: %d rows delivered", name, next)
						}
					}
				}
			})
		}
		enc.Close()
	}
}

// refMirror is a row of RGB pixels in reverse order, the obvious way.
func refMirror(row []byte) []byte {
	out := make([]byte, 0, len(row))
	for x := len(row)/3 - 1; x >= 0; x-- {
		out = append(out, row[3*x:3*x+3]...)
	}
	return out
}

func TestDecodeRowsErrors(t *testing.T) {
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	enc, err := NewEncoder(CodecGradZstd)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	pix := photoLike(rand.New(rand.NewPCG(1, 2)), 40, 30)
	payload, err := enc.Encode(nil, pix, 40, 30)
	if err != nil {
		t.Fatal(err)
	}
	never := func(int, []byte, bool) { t.Fatal("a row was delivered from a payload that does not decode") }
	for _, tc := range []struct {
		name        string
		codec       Codec
		payload     []byte
		w, h, rows  int
		wantCorrupt bool
	}{
		{"truncated", CodecGradZstd, payload[:len(payload)/2], 40, 30, 30, true},
		{"wrong size", CodecGradZstd, payload, 40, 29, 29, true},
		{"unknown codec", Codec(9), payload, 40, 30, 30, true},
		{"garbage", CodecZstd, []byte("not zstd at all"), 40, 30, 1, true},
		{"rows past the image", CodecGradZstd, payload, 40, 30, 31, false},
		{"negative rows", CodecGradZstd, payload, 40, 30, -1, false},
		{"empty image", CodecGradZstd, payload, 0, 30, 0, false},
	} {
		err := dec.DecodeRows(tc.codec, tc.payload, tc.w, tc.h, tc.rows, false, never)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
		} else if errors.Is(err, ErrCorrupt) != tc.wantCorrupt {
			t.Errorf("%s: %v, ErrCorrupt %v, want %v", tc.name, err, errors.Is(err, ErrCorrupt), tc.wantCorrupt)
		}
	}
}

// BenchmarkCropReal compares the two ways to a 224 crop of a 256 real
// photo: decoding the whole image and copying the window out, and
// DecodeRows copying each row of the window as it is decoded (the
// pipeline's path). The window sits at the mean offset, (16, 16).
func BenchmarkCropReal(b *testing.B) {
	ims, w, h := realImages(b)
	const crop, x0, y0 = 224, 16, 16
	payloads := encodeAll(b, CodecGradZstd, ims, w, h)
	dec, _ := NewDecoder()
	pix := make([]byte, w*h*3)
	dst := make([]byte, crop*crop*3)
	rowLen := 3 * crop
	b.Run("whole+copy", func(b *testing.B) {
		b.SetBytes(int64(len(dst)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := dec.Decode(pix, CodecGradZstd, payloads[i%len(payloads)], w, h); err != nil {
				b.Fatal(err)
			}
			for r := range crop {
				copy(dst[r*rowLen:], pix[(y0+r)*3*w+3*x0:][:rowLen])
			}
		}
	})
	b.Run("rows", func(b *testing.B) {
		b.SetBytes(int64(len(dst)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			err := dec.DecodeRows(CodecGradZstd, payloads[i%len(payloads)], w, h, y0+crop, i%2 == 1, func(y int, row []byte, _ bool) {
				if y >= y0 {
					copy(dst[(y-y0)*rowLen:], row[3*x0:][:rowLen])
				}
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
