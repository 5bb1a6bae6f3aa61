package imageio

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/alexnet-repro/alexnet/internal/dl"
	"github.com/alexnet-repro/alexnet/internal/testdata"
	"github.com/ebitengine/purego"
)

// tjTransformSpec is TurboJPEG 2.x's tjtransform: a crop region, an
// operation, options, and a filter callback (unused, nil).
type tjTransformSpec struct {
	x, y, w, h  int32
	op, options int32
	data        uintptr
	filter      uintptr
}

const (
	tjxoptGray        = 8
	tjxoptProgressive = 32
)

// progressiveTranscoder makes progressive JPEGs from baseline ones
// through libjpeg-turbo's lossless transcoder (tjTransform), whose
// progression (jpeg_simple_progression) has every kind of progressive
// scan: interleaved DC scans, AC spectral bands, and successive
// approximation refinement of both.
type progressiveTranscoder struct {
	handle    uintptr
	transform func(h uintptr, buf unsafe.Pointer, size uint64, n int32, dst *unsafe.Pointer, dstSize *uint64, xf *tjTransformSpec, flags int32) int32
	free      func(p unsafe.Pointer)
	errStr    func(h uintptr) string
}

func newProgressiveTranscoder(t testing.TB, lib *turboLib) *progressiveTranscoder {
	t.Helper()
	h, err := dl.Open(lib.path, false)
	if err != nil {
		t.Fatal(err)
	}
	var p progressiveTranscoder
	var initTransform func() uintptr
	var destroy func(uintptr) int32
	for _, b := range []struct {
		fptr any
		name string
	}{
		{&initTransform, "tjInitTransform"},
		{&p.transform, "tjTransform"},
		{&p.free, "tjFree"},
		{&p.errStr, "tjGetErrorStr2"},
		{&destroy, "tjDestroy"},
	} {
		sym, err := dl.Sym(h, b.name)
		if err != nil {
			t.Fatalf("%s: %v", lib.path, err)
		}
		purego.RegisterFunc(b.fptr, sym)
	}
	if p.handle = initTransform(); p.handle == 0 {
		t.Fatal("tjInitTransform failed")
	}
	t.Cleanup(func() { destroy(p.handle) })
	return &p
}

// progressive returns data transcoded to a progressive JPEG, gray (the
// luma alone) if asked.
func (p *progressiveTranscoder) progressive(t testing.TB, data []byte, gray bool) []byte {
	t.Helper()
	xf := tjTransformSpec{options: tjxoptProgressive}
	if gray {
		xf.options |= tjxoptGray
	}
	var dst unsafe.Pointer
	var size uint64
	if p.transform(p.handle, unsafe.Pointer(&data[0]), uint64(len(data)), 1, &dst, &size, &xf, 0) != 0 {
		t.Fatalf("tjTransform: %s", p.errStr(p.handle))
	}
	defer p.free(dst)
	out := bytes.Clone(unsafe.Slice((*byte)(dst), size))
	if h, err := scanJPEGHeader(out); err != nil || !h.progressive {
		t.Fatalf("tjTransform gave no progressive JPEG (%v)", err)
	}
	return out
}

// texture is a w×h image with edges and noise, so that its JPEG has
// AC coefficients in every band and a damaged code lands somewhere that
// matters.
func texture(w, h int, seed int64) *image.NRGBA {
	rng := rand.New(rand.NewSource(seed))
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			n := rng.Intn(48)
			m.SetNRGBA(x, y, color.NRGBA{uint8(x*7 + n), uint8((x ^ y) * 5), uint8(y*3 + n*2), 255})
		}
	}
	return m
}

// scans returns where each scan of data begins (its SOS marker) and
// ends (the next marker that is not a restart marker).
func scans(data []byte) (begin, end []int) {
	for sg := range jpegSegments(data) {
		if sg.code == 0xDA {
			begin, end = append(begin, sg.at), append(end, sg.end)
		}
	}
	return begin, end
}

// scanFields is where scan i's spectral and approximation fields (Ss,
// Se, Ah/Al: its header's last three bytes) are.
func scanFields(t testing.TB, data []byte, i int) int {
	t.Helper()
	begin, _ := scans(data)
	if i >= len(begin) {
		t.Fatalf("no scan %d (%d scans)", i, len(begin))
	}
	b := begin[i]
	return b + 2 + (int(data[b+2])<<8 | int(data[b+3])) - 3
}

// scanHeaderFlip flips a bit in the spectral and approximation fields
// of one of a progressive file's scans after the first, which libjpeg
// either refuses or, where only the order of the scans is wrong, warns
// of ("Inconsistent progression sequence").
func scanHeaderFlip(t testing.TB, rng *rand.Rand, data []byte) []byte {
	begin, _ := scans(data)
	if len(begin) < 2 {
		return data
	}
	data[scanFields(t, data, 1+rng.Intn(len(begin)-1))+rng.Intn(3)] ^= 1 << rng.Intn(8)
	return data
}

// Against libjpeg-turbo, on progressive files damaged at random, as
// TestJPEGScanMatchesLibjpeg on sequential ones: made by libjpeg-turbo's
// transcoder from textures (colour and gray, 4:2:0, sizes with partial
// blocks and MCUs) and, where the ImageNet sample is here, from its
// photos; and cjpeg's progressive file with restart markers. Wherever
// both decoders keep the file, the image/jpeg path's warning must be
// libjpeg-turbo's, word for word.
func TestJPEGScanMatchesLibjpegProgressive(t *testing.T) {
	tj, st := NewDecoder(), NewDecoderStdlib()
	if tj.lib == nil {
		t.Skip("libjpeg-turbo is not installed: nothing to compare with")
	}
	defer tj.Close()
	pt := newProgressiveTranscoder(t, tj.lib)
	var sources [][]byte
	for i, size := range [][2]int{{160, 120}, {97, 61}, {64, 200}} {
		base := encodeJPEG(t, texture(size[0], size[1], int64(i)), 85)
		sources = append(sources, pt.progressive(t, base, false), pt.progressive(t, base, true))
	}
	sources = append(sources, fixture(t, "progressive_restart_444_64x48.jpg"))
	// The sample's photos where it is here (it is not in a user's clone,
	// which still runs the rest).
	files, _ := filepath.Glob(filepath.Join(testdata.ImageNetSampleDir(), "*.JPEG"))
	for _, f := range files[:min(len(files), 6)] {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if h, err := scanJPEGHeader(data); err == nil && !h.progressive {
			sources = append(sources, pt.progressive(t, data, false))
		}
	}
	for i, src := range sources {
		if _, err := st.DecodeFull(src); err != nil {
			t.Fatalf("source %d: image/jpeg: %v", i, err)
		}
		if w := jpegScanWarning(src); w != "" {
			t.Fatalf("source %d, undamaged: %q", i, w)
		}
	}
	rng, trials := diffTrials(2)
	kinds := []string{"flip", "junk before EOI", "junk in the data", "cut", "header", "scan header", "junk at a scan's end"}
	flagged, clean, refused := map[string]int{}, map[string]int{}, map[string]int{}
	warnings := map[string]int{}
	for trial := range trials {
		data := bytes.Clone(sources[rng.Intn(len(sources))])
		kind := kinds[rng.Intn(len(kinds))]
		switch kind {
		case "scan header":
			data = scanHeaderFlip(t, rng, data)
		case "junk at a scan's end":
			data = junkAtScanEnd(rng, data)
		default:
			data = damageJPEG(t, rng, data, kind)
		}
		switch lw, sw, by := bothWarnings(tj, st, data); {
		case by != "":
			refused[by]++
		case lw != sw:
			t.Errorf("%s (trial %d): libjpeg-turbo says %q, the image/jpeg path %q", kind, trial, lw, sw)
		case sw != "":
			flagged[kind]++
			warnings[warningKind(sw)]++
		default:
			clean[kind]++
		}
	}
	t.Logf("%d sources; kept by both and called damaged by both: %v; by neither: %v; refused by %v", len(sources), flagged, clean, refused)
	t.Logf("warnings: %v", warnings)
	for _, k := range kinds {
		if flagged[k] == 0 {
			t.Errorf("no %q trial was kept and flagged by both: the test exercised nothing there", k)
		}
	}
	// image/jpeg refuses what runs into a marker or decodes a bad code,
	// so those warnings are rare here; these two must come up.
	for _, w := range []string{"extraneous bytes", "Inconsistent progression sequence"} {
		if warnings[w] == 0 {
			t.Errorf("no trial drew %q from both: the test exercised nothing there", w)
		}
	}
}

// junkAtScanEnd inserts junk before the marker that ends a random scan,
// or before a random restart marker: libjpeg counts it from where its bit
// reader stopped in that scan (what the buffer fetched is not counted), so
// every kind of scan, not only the last, has its reading checked to the
// bit, AC refinements' correction bits above all.
func junkAtScanEnd(rng *rand.Rand, data []byte) []byte {
	_, end := scans(data)
	at := end[rng.Intn(len(end))]
	var rst []int
	for i := 0; i+1 < len(data); i++ {
		if data[i] == 0xFF && data[i+1] >= 0xD0 && data[i+1] <= 0xD7 {
			rst = append(rst, i)
		}
	}
	if len(rst) > 0 && rng.Intn(3) == 0 {
		at = rst[rng.Intn(len(rst))]
	}
	return insertAt(data, at, randomJunk(rng, 1+rng.Intn(12))...)
}

// warningKind names a libjpeg warning without its numbers.
func warningKind(w string) string {
	for _, k := range []string{"extraneous bytes", "premature end of data segment", "bad Huffman code", "Inconsistent progression sequence", "instead of RST", "Premature end of JPEG file"} {
		if bytes.Contains([]byte(w), []byte(k)) {
			return k
		}
	}
	return w
}

// The walk's cost on progressive photos (the sample's, transcoded by
// libjpeg-turbo), beside image/jpeg's decode of the same files.
func BenchmarkJPEGScanWarningProgressive(b *testing.B) {
	testdata.ImageNetSample(b) // skips without it, before the library is asked
	tj := NewDecoder()
	if tj.lib == nil {
		b.Skip("libjpeg-turbo is not installed: it makes the progressive files")
	}
	defer tj.Close()
	pt := newProgressiveTranscoder(b, tj.lib)
	all, total := sampleFiles(b, func(data []byte) []byte {
		if h, err := scanJPEGHeader(data); err == nil && !h.progressive {
			return pt.progressive(b, data, false)
		}
		return nil
	})
	b.Run("walk", func(b *testing.B) {
		b.SetBytes(int64(total / len(all)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			jpegScanWarning(all[i%len(all)])
		}
	})
	b.Run("image-jpeg", func(b *testing.B) {
		b.SetBytes(int64(total / len(all)))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := jpeg.Decode(bytes.NewReader(all[i%len(all)])); err != nil {
				b.Fatal(err)
			}
		}
	})
}
