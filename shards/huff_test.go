package shards

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/huff0"
)

// huffCase draws n symbols whose distribution is skewed by skew (0: uniform
// over alphabet symbols; larger: geometric, as residuals are), so that the
// tables range from 1-bit codes to huff0's 11-bit limit.
func huffCase(r *rand.Rand, n, alphabet int, skew float64) []byte {
	b := make([]byte, n)
	for i := range b {
		var s int
		if skew == 0 {
			s = r.IntN(alphabet)
		} else {
			s = int(r.ExpFloat64()*skew) % alphabet
		}
		b[i] = byte(s)
	}
	return b
}

// huffReference decodes a block with huff0, the decoder the format is
// defined by.
func huffReference(comp []byte, n int) ([]byte, error) {
	var sc huff0.Scratch
	s, body, err := huff0.ReadTable(comp, &sc)
	if err != nil {
		return nil, err
	}
	return s.Decoder().Decompress4X(make([]byte, 0, n), body)
}

// huffOurs decodes a block with huffDecoder.
func huffOurs(h *huffDecoder, comp []byte, n int) ([]byte, error) {
	body, err := h.readTable(comp)
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	return out, h.decode4X(out, body, n)
}

// TestHuffMatchesHuff0 decodes what huff0 encodes, over sizes from a few
// bytes (every stream under the fast loop's 8 bytes) to beyond a band, and
// code lengths from 1 bit to 11, and requires huff0's output.
func TestHuffMatchesHuff0(t *testing.T) { huffLoops(t, testHuffMatchesHuff0) }

// huffLoops runs f with the fast loops, where this machine has them, and
// without (every symbol through the careful loop).
func huffLoops(t *testing.T, f func(*testing.T)) {
	defer setHuffAsm(true)
	for _, asm := range []bool{true, false} {
		setHuffAsm(asm)
		t.Run(fmt.Sprintf("asm=%v", useHuffAsm), f)
	}
}

func testHuffMatchesHuff0(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h huffDecoder
	logs := map[uint8]int{}
	sizes := []int{20, 33, 64, 100, 257, 1000, 4097, 65536, 65537, 200000}
	for _, n := range sizes {
		for _, alphabet := range []int{2, 3, 5, 17, 64, 256} {
			for _, skew := range []float64{0, 0.3, 1, 2.5, 6, 30} {
				src := huffCase(r, n, alphabet, skew)
				var sc huff0.Scratch
				comp, _, err := huff0.Compress4X(src, &sc)
				if errors.Is(err, huff0.ErrIncompressible) || errors.Is(err, huff0.ErrUseRLE) {
					continue
				}
				if err != nil {
					t.Fatalf("n=%d alphabet=%d skew=%g: Compress4X: %v", n, alphabet, skew, err)
				}
				got, err := huffOurs(&h, comp, n)
				if err != nil {
					t.Fatalf("n=%d alphabet=%d skew=%g (log %d): %v", n, alphabet, skew, h.log, err)
				}
				if !bytes.Equal(got, src) {
					i := 0
					for got[i] == src[i] {
						i++
					}
					t.Fatalf("n=%d alphabet=%d skew=%g (log %d): byte %d is %d, want %d", n, alphabet, skew, h.log, i, got[i], src[i])
				}
				logs[h.log]++
			}
		}
	}
	for l := uint8(1); l <= huffMaxLog; l++ {
		if l >= 2 && logs[l] == 0 {
			t.Errorf("no case had table log %d (%v)", l, logs)
		}
	}
}

// TestHuffDamage: on damaged blocks (bits flipped, bytes cut or added)
// the two decoders agree on failing, and where both succeed, on the bytes.
// A prefix code reads one symbol sequence from any bits, so they must.
func TestHuffDamage(t *testing.T) { huffLoops(t, testHuffDamage) }

func testHuffDamage(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var h huffDecoder
	for trial := range 3000 {
		n := []int{40, 300, 5000}[trial%3]
		src := huffCase(r, n, 256, 1+r.Float64()*8)
		var sc huff0.Scratch
		comp, _, err := huff0.Compress4X(src, &sc)
		if err != nil {
			continue
		}
		bad := append([]byte(nil), comp...)
		switch trial % 4 {
		case 0, 1:
			for range 1 + trial%3 {
				i := r.IntN(len(bad))
				bad[i] ^= 1 << r.IntN(8)
			}
		case 2:
			bad = bad[:r.IntN(len(bad))]
		case 3:
			bad = append(bad, byte(r.IntN(256)))
		}
		want, werr := huffReference(bad, n)
		got, gerr := huffOurs(&h, bad, n)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("trial %d: huff0 says %v, ours %v", trial, werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("trial %d: both decode, to different bytes", trial)
		}
	}
}

// TestHuffRealBands decodes every band of the real sample's grad-huff
// payloads with both decoders and compares the residual planes.
func TestHuffRealBands(t *testing.T) {
	ims, w, hgt := realImages(t)
	payloads := encodeAll(t, CodecGradHuff, ims, w, hgt)
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	own := huffOwn
	defer func() { huffOwn = own }()
	for i, p := range payloads {
		huffOwn = false
		want, err := dec.residuals(CodecGradHuff, p, w, hgt)
		if err != nil {
			t.Fatal(err)
		}
		want = append([]byte(nil), want...)
		huffOwn = own
		got, err := dec.residuals(CodecGradHuff, p, w, hgt)
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("image %d: residuals differ", i)
		}
	}
}

// TestHuffPartial: asked for a prefix of the block, the decoder delivers
// it exactly, for prefixes that end in every quarter and on their edges,
// and never fails on a valid block.
func TestHuffPartial(t *testing.T) { huffLoops(t, testHuffPartial) }

func testHuffPartial(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	var h huffDecoder
	for _, n := range []int{64, 1000, 4099, 65536} {
		src := huffCase(r, n, 64, 3)
		var sc huff0.Scratch
		comp, _, err := huff0.Compress4X(src, &sc)
		if err != nil {
			t.Fatal(err)
		}
		every := (n + 3) / 4
		var needs []int
		for q := range 4 {
			needs = append(needs, q*every-1, q*every, q*every+1, q*every+every/2)
		}
		needs = append(needs, n-1, n)
		for _, need := range needs {
			if need < 0 || need > n {
				continue
			}
			body, err := h.readTable(comp)
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]byte, n)
			if err := h.decode4X(dst, body, need); err != nil {
				t.Fatalf("n=%d need=%d: %v", n, need, err)
			}
			if !bytes.Equal(dst[:need], src[:need]) {
				t.Fatalf("n=%d need=%d: the prefix differs", n, need)
			}
		}
	}
}

// TestHuffEmptyBlock: a body of four valid streams decoded into nothing
// is an error, not a panic (huffBlock never asks for it; a direct caller
// may).
func TestHuffEmptyBlock(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	var sc huff0.Scratch
	comp, _, err := huff0.Compress4X(huffCase(r, 4000, 64, 3), &sc)
	if err != nil {
		t.Fatal(err)
	}
	huffLoops(t, func(t *testing.T) {
		var h huffDecoder
		body, err := h.readTable(comp)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.decode4X(nil, body, 0); err == nil {
			t.Fatal("4,000 symbols decoded into an empty block without an error")
		}
	})
}

// FuzzHuffStreams fuzzes what huff0 encodes: the symbols (so the fuzzer
// explores code shapes and stream lengths that reach every loop), then
// optionally one damaged byte of the block. Undamaged, the decoder must
// return the symbols, and any prefix of them when asked for one; damaged,
// agree with huff0.
func FuzzHuffStreams(f *testing.F) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{40, 700, 5000} {
		f.Add(huffCase(r, n, 32, 2), uint16(n*3/4), uint8(0))
		f.Add(huffCase(r, n, 200, 9), uint16(n/3), uint8(0x10))
	}
	var h huffDecoder
	f.Fuzz(func(t *testing.T, src []byte, at uint16, flip uint8) {
		var sc huff0.Scratch
		comp, _, err := huff0.Compress4X(src, &sc)
		if err != nil {
			return // incompressible, a run, too short or too long: not a Huffman block
		}
		if flip == 0 {
			got, err := huffOurs(&h, comp, len(src))
			if err != nil || !bytes.Equal(got, src) {
				t.Fatalf("a valid block of %d symbols: %v", len(src), err)
			}
			// And a prefix of it, as a crop asks (at picks the length).
			need := int(at) % (len(src) + 1)
			body, _ := h.readTable(comp)
			part := make([]byte, len(src))
			if err := h.decode4X(part, body, need); err != nil || !bytes.Equal(part[:need], src[:need]) {
				t.Fatalf("the first %d of %d symbols: %v", need, len(src), err)
			}
			return
		}
		comp[int(at)%len(comp)] ^= flip
		want, werr := huffReference(comp, len(src))
		got, gerr := huffOurs(&h, comp, len(src))
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("huff0 says %v, ours %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatal("both decode, to different bytes")
		}
	})
}

// FuzzHuff holds the decoder to huff0 on arbitrary blocks: the same
// verdict, and the same bytes when both decode.
func FuzzHuff(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{30, 500, 3000} {
		src := huffCase(r, n, 64, 3)
		var sc huff0.Scratch
		if comp, _, err := huff0.Compress4X(src, &sc); err == nil {
			f.Add(comp, uint16(n))
		}
	}
	var h huffDecoder
	f.Fuzz(func(t *testing.T, comp []byte, size uint16) {
		n := int(size%8192) + 1
		want, werr := huffReference(comp, n)
		got, gerr := huffOurs(&h, comp, n)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("huff0 says %v, ours %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatal("both decode, to different bytes")
		}
	})
}

// TestHuffFastLoopBounds: decode4X lets a round of the fast loops start
// at pos ≤ end − huffRoundBytes. Five lookups advance 15 bytes at most and
// the last stores 4. With a table whose every lookup yields three symbols,
// and input to spare (the input bound usually stops the loops first), the
// single-stream loop is run to each limit: it must write up to lim+15 and
// never beyond.
func TestHuffFastLoopBounds(t *testing.T) {
	if !useHuffAsm {
		t.Skip("no BMI1 and BMI2: the fast loops do not run here")
	}
	r := rand.New(rand.NewPCG(7, 8))
	var h huffDecoder
	var sc huff0.Scratch
	comp, _, err := huff0.Compress4X(huffCase(r, 4000, 2, 0), &sc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.readTable(comp); err != nil || h.log != 1 {
		t.Fatalf("want a 1-bit code, got log %d (%v)", h.log, err)
	}
	in := make([]byte, 4096)
	for i := range in {
		in[i] = byte(r.IntN(256))
	}
	for lim := 0; lim < 40; lim++ {
		out := make([]byte, 128)
		for i := range out {
			out[i] = 0xAA
		}
		c := huffLoop{src: &in[0], out: &out[0], tbl: &h.multi[0]}
		// used 1: the entry state of a stream whose last byte is 0x80 (the
		// end marker, and no zero bits above it).
		c.off[0], c.used[0], c.pos[0], c.lim[0], c.low[0] = int64(len(in)-8), 1, 0, int64(lim), 8
		huffLoop1BMI2(&c)
		hi := len(out) - 1 // the last byte written: symbols are 0 or 1
		for hi >= 0 && out[hi] == 0xAA {
			hi--
		}
		if c.pos[0] <= int64(lim) || hi > lim+huffRoundBytes-1 {
			t.Fatalf("lim %d: stopped at pos %d, wrote up to %d (at most %d allowed)", lim, c.pos[0], hi, lim+huffRoundBytes-1)
		}
		if lim%15 == 0 && hi != lim+15 {
			t.Errorf("lim %d: wrote up to %d, want exactly %d (every lookup three symbols)", lim, hi, lim+15)
		}
	}
}

// BenchmarkHuffTable times readTable (parse and both tables) on the real
// sample's band tables: three a 256×256 image.
func BenchmarkHuffTable(b *testing.B) {
	ims, w, hgt := realImages(b)
	enc, err := NewEncoder(CodecGradHuff)
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	var tables [][]byte
	for _, im := range ims[:20] {
		res := make([]byte, 3*w*hgt)
		gradFilter(res, im, w, hgt, nil)
		for p := range 3 {
			var sc huff0.Scratch
			comp, _, err := huff0.Compress4X(res[p*w*hgt:(p+1)*w*hgt], &sc)
			if err != nil {
				b.Fatal(err)
			}
			tables = append(tables, comp)
		}
	}
	var h huffDecoder
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := h.readTable(tables[i%len(tables)]); err != nil {
			b.Fatal(err)
		}
	}
}
