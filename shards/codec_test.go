package shards

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/alexnet-repro/alexnet/internal/testdata"
	"github.com/alexnet-repro/alexnet/pkg/imageio"
)

// The codecs the tests and benchmarks cover: a new codec added here is
// round-tripped, row-decoded, fuzzed and benchmarked by all of them.
var (
	allCodecs  = []Codec{CodecZstd, CodecGradZstd, CodecGradHuff}
	gradCodecs = []Codec{CodecGradZstd, CodecGradHuff}
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

// realImages is the real-photo sample as ingest stores it: each JPEG in
// ../shared/data/imagenet-sample decoded, resized and centre-cropped to
// 256×256 RGB. It skips when the sample is absent.
func realImages(b testing.TB) ([][]byte, int, int) {
	const side = 256
	if realCache == nil {
		dec := imageio.NewDecoder()
		defer dec.Close()
		for _, path := range testdata.ImageNetSample(b) {
			data, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			pix := make([]byte, side*side*3)
			if err := dec.Preprocess(data, side, pix); err != nil {
				b.Fatalf("%s: %v", path, err)
			}
			realCache = append(realCache, pix)
		}
	}
	return realCache, side, side
}

var realCache [][]byte

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
func encodeAll(b testing.TB, codec Codec, ims [][]byte, w, h int) [][]byte {
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

// BenchmarkDecodeReal decodes the real-photo sample with each grad codec
// and kernel, and reports the stored size as a fraction of raw.
func BenchmarkDecodeReal(b *testing.B) {
	ims, w, h := realImages(b)
	dec, _ := NewDecoder()
	pix := make([]byte, w*h*3)
	for _, codec := range gradCodecs {
		payloads := encodeAll(b, codec, ims, w, h)
		gradImpls(b, func(impl string) {
			b.Run(codec.String()+"/"+impl, func(b *testing.B) {
				b.SetBytes(int64(w * h * 3))
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if err := dec.Decode(pix, codec, payloads[i%len(payloads)], w, h); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(storedFraction(payloads, w*h*3), "of-raw")
			})
		})
	}
}

func storedFraction(payloads [][]byte, raw int) float64 {
	n := 0
	for _, p := range payloads {
		n += len(p)
	}
	return float64(n) / float64(raw*len(payloads))
}

// BenchmarkEncodeReal is ingest's cost per image for each grad codec, on
// real photos (synthetic ones flatter zstd, which gives up on their noise).
func BenchmarkEncodeReal(b *testing.B) {
	ims, w, h := realImages(b)
	for _, codec := range gradCodecs {
		b.Run(codec.String(), func(b *testing.B) {
			enc, err := NewEncoder(codec)
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			var out []byte
			b.SetBytes(int64(w * h * 3))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if out, err = enc.Encode(out[:0], ims[i%len(ims)], w, h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInflateReal is the entropy stage alone, the pipeline's ceiling:
// zstd for grad-zstd, Huffman for grad-huff, and for comparison in the
// same run, grad-huff through huff0's decoder where ours is the default.
func BenchmarkInflateReal(b *testing.B) {
	ims, w, h := realImages(b)
	dec, _ := NewDecoder()
	for _, codec := range gradCodecs {
		payloads := encodeAll(b, codec, ims, w, h)
		for _, huff0 := range []bool{false, true} {
			name := codec.String()
			if huff0 {
				if codec != CodecGradHuff || !huffOwn {
					continue
				}
				name += "-huff0"
			}
			b.Run(name, func(b *testing.B) {
				own := huffOwn
				huffOwn = own && !huff0
				defer func() { huffOwn = own }()
				b.SetBytes(int64(w * h * 3))
				b.ReportAllocs()
				for i := 0; b.Loop(); i++ {
					if _, err := dec.residuals(codec, payloads[i%len(payloads)], w, h); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
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
	for _, codec := range allCodecs {
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
							if want := mirror && codec != CodecZstd && impl == "avx2"; mirrored != want {
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
	dec, _ := NewDecoder()
	pix := make([]byte, w*h*3)
	dst := make([]byte, crop*crop*3)
	rowLen := 3 * crop
	for _, codec := range gradCodecs {
		payloads := encodeAll(b, codec, ims, w, h)
		b.Run(codec.String()+"/whole+copy", func(b *testing.B) {
			b.SetBytes(int64(len(dst)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := dec.Decode(pix, codec, payloads[i%len(payloads)], w, h); err != nil {
					b.Fatal(err)
				}
				for r := range crop {
					copy(dst[r*rowLen:], pix[(y0+r)*3*w+3*x0:][:rowLen])
				}
			}
		})
		b.Run(codec.String()+"/rows", func(b *testing.B) {
			b.SetBytes(int64(len(dst)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				err := dec.DecodeRows(codec, payloads[i%len(payloads)], w, h, y0+crop, i%2 == 1, func(y int, row []byte, _ bool) {
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
}

// huffModes walks a grad-huff payload and returns each block's mode.
func huffModes(p []byte, w, h int) []byte {
	var modes []byte
	band := huffBandRows(w)
	for range 3 {
		for y := 0; y < h; y += band {
			if len(p) == 0 {
				return modes
			}
			modes = append(modes, p[0])
			switch p[0] {
			case huffRaw:
				p = p[min(len(p), 1+w*(min(y+band, h)-y)):]
			case huffRLE:
				p = p[min(len(p), 2):]
			case huffCode:
				p = p[min(len(p), 5+int(binary.LittleEndian.Uint32(p[1:]))):]
			}
		}
	}
	return modes
}

// TestGradHuffBlocks makes images that drive every block mode and band
// layout, and checks each round trip and the modes chosen.
func TestGradHuffBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	gray := func(w, h int) []byte {
		p := photoLike(rng, w, h)
		for i := 0; i < len(p); i += 3 {
			p[i], p[i+2] = p[i+1], p[i+1]
		}
		return p
	}
	noise := func(w, h int) []byte {
		p := make([]byte, w*h*3)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	for _, tc := range []struct {
		name  string
		w, h  int
		pix   []byte
		modes string // one letter per block: r raw, l run, c code
	}{
		{"photo, one band per plane", 256, 256, photoLike(rng, 256, 256), "ccc"},
		{"grayscale: red and blue planes are runs of zeros", 64, 64, gray(64, 64), "lcl"},
		{"flat colour: one corner residual, zeros elsewhere", 50, 40, bytes.Repeat([]byte{200, 100, 50}, 50*40), "ccc"},
		{"black", 50, 40, make([]byte, 50*40*3), "lll"},
		{"noise stays raw", 64, 64, noise(64, 64), "rrr"},
		{"too small for a table", 10, 10, photoLike(rng, 10, 10), "rrr"},
		{"three bands per plane", 300, 500, photoLike(rng, 300, 500), "ccccccccc"},
		{"one row per band", 40000, 2, photoLike(rng, 40000, 2), "cccccc"},
		{"one pixel", 1, 1, []byte{1, 2, 3}, "lll"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, _ := NewEncoder(CodecGradHuff)
			dec, _ := NewDecoder()
			payload, err := enc.Encode(nil, tc.pix, tc.w, tc.h)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, m := range huffModes(payload, tc.w, tc.h) {
				got += string("rlc"[m])
			}
			if got != tc.modes {
				t.Errorf("block modes %q, want %q", got, tc.modes)
			}
			out := make([]byte, len(tc.pix))
			if err := dec.Decode(out, CodecGradHuff, payload, tc.w, tc.h); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, tc.pix) {
				t.Fatal("round trip differs")
			}
		})
	}
}

// TestGradHuffCorrupt damages a grad-huff payload every way a block can be
// damaged: each must give ErrCorrupt and never panic.
func TestGradHuffCorrupt(t *testing.T) {
	const w, h = 64, 48
	enc, _ := NewEncoder(CodecGradHuff)
	dec, _ := NewDecoder()
	good, err := enc.Encode(nil, photoLike(rand.New(rand.NewPCG(1, 1)), w, h), w, h)
	if err != nil {
		t.Fatal(err)
	}
	if good[0] != huffCode {
		t.Fatalf("first block has mode %d; the cases below need a Huffman block", good[0])
	}
	out := make([]byte, w*h*3)
	with := func(f func(p []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"empty":             nil,
		"trailing byte":     append(append([]byte(nil), good...), 0),
		"unknown mode":      with(func(p []byte) []byte { p[0] = 7; return p }),
		"length past end":   with(func(p []byte) []byte { binary.LittleEndian.PutUint32(p[1:], uint32(len(p))); return p }),
		"length short":      with(func(p []byte) []byte { binary.LittleEndian.PutUint32(p[1:], 3); return p }),
		"raw block cut":     {huffRaw, 1, 2, 3},
		"run without byte":  {huffRLE},
		"code without size": {huffCode, 1},
	}
	for n := 1; n < len(good); n += 1 + n/8 {
		cases[fmt.Sprintf("cut at %d", n)] = good[:n]
	}
	for name, p := range cases {
		if err := dec.Decode(out, CodecGradHuff, p, w, h); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	// Flipped bits inside a Huffman block: the record CRC catches these in a
	// shard, so the decoder owes only an error or wrong pixels, never a panic.
	for i := 5; i < len(good); i += 7 {
		p := with(func(p []byte) []byte { p[i] ^= 1 << (i % 8); return p })
		_ = dec.Decode(out, CodecGradHuff, p, w, h)
	}
}

// FuzzGradHuff feeds arbitrary payloads to the grad-huff decoder, below the
// record CRC that keeps them from it in a shard: Decode and DecodeRows must
// agree, and neither may panic.
func FuzzGradHuff(f *testing.F) {
	enc, _ := NewEncoder(CodecGradHuff)
	for _, sz := range [][2]int{{64, 48}, {10, 10}, {300, 7}} {
		p, _ := enc.Encode(nil, photoLike(rand.New(rand.NewPCG(2, 2)), sz[0], sz[1]), sz[0], sz[1])
		f.Add(p, uint16(sz[0]-1), uint16(sz[1]-1))
	}
	dec, _ := NewDecoder() // a fuzz worker calls the target one input at a time
	f.Fuzz(func(t *testing.T, payload []byte, w16, h16 uint16) {
		w, h := int(w16%400)+1, int(h16%64)+1
		pix := make([]byte, w*h*3)
		whole := dec.Decode(pix, CodecGradHuff, payload, w, h)
		rows := dec.DecodeRows(CodecGradHuff, payload, w, h, h, false, func(y int, row []byte, _ bool) {
			if !bytes.Equal(row, pix[y*3*w:(y+1)*3*w]) {
				t.Fatalf("row %d: DecodeRows differs from Decode", y)
			}
		})
		if (whole == nil) != (rows == nil) {
			t.Fatalf("Decode says %v, DecodeRows %v", whole, rows)
		}
	})
}

// TestDecodeImpossibleSizes: sizes no record can have are errors, never a
// division by zero or a buffer sized from them.
func TestDecodeImpossibleSizes(t *testing.T) {
	dec, _ := NewDecoder()
	for _, codec := range allCodecs {
		for _, wh := range [][2]int{{0, 5}, {5, 0}, {-1, 5}, {1 << 16, 1}, {1, 1 << 16}} {
			if _, err := dec.Inflate(codec, []byte{1, 2, 3}, wh[0], wh[1]); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%v Inflate %v: %v", codec, wh, err)
			}
			if err := dec.Decode(nil, codec, []byte{1, 2, 3}, wh[0], wh[1]); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%v Decode %v: %v", codec, wh, err)
			}
			if err := dec.DecodeRows(codec, []byte{1, 2, 3}, wh[0], wh[1], 0, false, nil); err == nil {
				t.Errorf("%v DecodeRows %v: no error", codec, wh)
			}
		}
	}
}

// A small zstd frame that inflates far past the record's size (its
// checksums recomputed, so nothing flags it before decoding) is refused
// without the memory it claims: one that declares its size is refused
// unread, one that does not stops at the record's size. Before, each
// decoder inflated the whole frame (a 50 KB payload took 250 MB) and only
// then compared sizes.
func TestZstdBombRefusedCheaply(t *testing.T) {
	const w, h = 64, 64
	zeros := make([]byte, 32<<20)
	enc, _ := zstd.NewWriter(nil)
	declared := enc.EncodeAll(zeros, nil)
	var b bytes.Buffer
	zw, _ := zstd.NewWriter(&b) // streamed: no content size in its header
	zw.Write(zeros)
	zw.Close()
	undeclared := b.Bytes()
	for _, tc := range []struct {
		name    string
		payload []byte
		fcs     bool
	}{{"declared", declared, true}, {"undeclared", undeclared, false}} {
		var hd zstd.Header
		if err := hd.Decode(tc.payload); err != nil || hd.HasFCS != tc.fcs {
			t.Fatalf("%s: the fixture's header: content size given %v (%v), want %v", tc.name, hd.HasFCS, err, tc.fcs)
		}
		dec, _ := NewDecoder()
		for _, codec := range []Codec{CodecZstd, CodecGradZstd} {
			dst := make([]byte, w*h*3)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := dec.Decode(dst, codec, tc.payload, w, h)
			_, ierr := dec.Inflate(codec, tc.payload, w, h)
			rerr := dec.DecodeRows(codec, tc.payload, w, h, h, false, func(int, []byte, bool) {})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrCorrupt) || !errors.Is(ierr, ErrCorrupt) || rerr == nil {
				t.Errorf("%s, %v: Decode %v, Inflate %v, DecodeRows %v", tc.name, codec, err, ierr, rerr)
			}
			says := "decodes to more than the record's 12288 bytes"
			if tc.fcs {
				says = "the frame declares 33554432 bytes of content, want 12288"
			}
			if !strings.Contains(fmt.Sprint(err), says) {
				t.Errorf("%s, %v: %v, want it to say %q", tc.name, codec, err, says)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
				t.Errorf("%s, %v: refusing it allocated %d bytes", tc.name, codec, got)
			}
		}
		dec.Close()
	}
}

// A zstd codec's payload is exactly one frame. The writer's, and one
// another encoder writes with a content checksum, decode; a second frame
// (which zstd's DecodeAll would go on into), a skippable frame, bytes
// after the frame or a frame cut short are ErrCorrupt, for both codecs,
// in Decode and DecodeRows alike.
func TestZstdPayloadIsOneFrame(t *testing.T) {
	const w, h = 40, 30
	img := photoLike(rand.New(rand.NewPCG(4, 4)), w, h)
	dec, _ := NewDecoder()
	for _, codec := range []Codec{CodecZstd, CodecGradZstd} {
		enc, _ := NewEncoder(codec)
		good, err := enc.Encode(nil, img, w, h)
		if err != nil {
			t.Fatal(err)
		}
		n, err := zstdFrameLen(good, new(zstd.Header))
		if err != nil || n != len(good) {
			t.Fatalf("%v: the writer's payload measures %d of %d bytes (%v)", codec, n, len(good), err)
		}
		// The same content in a frame with a checksum, from another encoder.
		raw, err := dec.decodeAll(good, nil, w*h*3)
		if err != nil {
			t.Fatal(err)
		}
		ck, _ := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
		withSum := ck.EncodeAll(raw, nil)
		// Two frames: the content split in two, each compressed alone.
		two := append(ck.EncodeAll(raw[:len(raw)/2], nil), ck.EncodeAll(raw[len(raw)/2:], nil)...)
		ck.Close()
		skippable := append([]byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4}, good...)

		out := make([]byte, w*h*3)
		if err := dec.Decode(out, codec, withSum, w, h); err != nil {
			t.Errorf("%v: a frame with a content checksum: %v", codec, err)
		} else if want := decodeOrFail(t, dec, codec, good, w, h); !bytes.Equal(out, want) {
			t.Errorf("%v: the checksummed frame decodes to other pixels", codec)
		}
		for name, p := range map[string][]byte{
			"two frames":        two,
			"skippable first":   skippable,
			"a byte after":      append(append([]byte(nil), good...), 0),
			"cut in its blocks": good[:len(good)-3],
			"cut in its header": good[:5],
		} {
			if err := dec.Decode(out, codec, p, w, h); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%v, %s: Decode gave %v, want ErrCorrupt", codec, name, err)
			}
			if err := dec.DecodeRows(codec, p, w, h, h, false, func(int, []byte, bool) {}); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%v, %s: DecodeRows gave %v, want ErrCorrupt", codec, name, err)
			}
		}
	}
}

func decodeOrFail(t *testing.T, dec *Decoder, codec Codec, p []byte, w, h int) []byte {
	t.Helper()
	out := make([]byte, w*h*3)
	if err := dec.Decode(out, codec, p, w, h); err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzZstdFrameLen: measuring a frame never panics, and a length it gives
// lies within the bytes given.
func FuzzZstdFrameLen(f *testing.F) {
	enc, _ := NewEncoder(CodecZstd)
	p, _ := enc.Encode(nil, photoLike(rand.New(rand.NewPCG(5, 5)), 20, 10), 20, 10)
	f.Add(p)
	f.Add(p[:7])
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		n, err := zstdFrameLen(p, new(zstd.Header))
		if err == nil && (n <= 0 || n > len(p)) {
			t.Fatalf("length %d of %d bytes", n, len(p))
		}
	})
}
