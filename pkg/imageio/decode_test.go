package imageio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/image/bmp"

	"github.com/alexnet-repro/alexnet/internal/testdata"
)

// backends returns the decoders every behavioural test runs against: the
// default one (libjpeg-turbo here, stdlib where it is missing) and the
// forced stdlib one.
func backends(t testing.TB) []*Decoder {
	ds := []*Decoder{NewDecoder(), NewDecoderStdlib()}
	t.Cleanup(func() {
		for _, d := range ds {
			d.Close()
		}
	})
	if ds[0].lib == nil {
		t.Logf("libjpeg-turbo not loaded (%s): both runs use the stdlib decoder", Backend())
	}
	return ds
}

func backendName(d *Decoder) string {
	if d.lib != nil {
		return "turbo"
	}
	return "stdlib"
}

// gradient is a synthetic photo-like image.
func gradient(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / max(w-1, 1)), uint8(y * 255 / max(h-1, 1)), uint8((x + y) * 255 / max(w+h-2, 1)), 255})
		}
	}
	return m
}

func encodeJPEG(t testing.TB, m image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sampleBytes(t testing.TB, name string) []byte {
	t.Helper()
	for _, p := range testdata.ImageNetSample(t) {
		if strings.Contains(filepath.Base(p), name) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
	t.Fatalf("sample image %q not found", name)
	return nil
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Format
	}{
		{"\xff\xd8\xff\xe0", FormatJPEG},
		{"\x89PNG\r\n\x1a\n....", FormatPNG},
		{"GIF89a...", FormatGIF},
		{"GIF87a...", FormatGIF},
		{"BM" + strings.Repeat("\x00", 20), FormatBMP},
		{"BM", FormatUnknown}, // too short to be a BMP header
		{"RIFF\x00\x00\x00\x00WEBPVP8 ", FormatWebP},
		{"RIFF\x00\x00\x00\x00WAVEfmt ", FormatUnknown},
		{"II*\x00", FormatTIFF},
		{"MM\x00*", FormatTIFF},
		{"<!DOCTYPE html>", FormatUnknown},
		{"\xff\xd8", FormatUnknown},
		{"", FormatUnknown},
	} {
		if got := Sniff([]byte(tc.in)); got != tc.want {
			t.Errorf("Sniff(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// withDims patches the frame header of a JPEG to claim w x h.
func withJPEGDims(t testing.TB, data []byte, w, h int) []byte {
	t.Helper()
	out := bytes.Clone(data)
	hdr, err := scanJPEGHeader(out)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i+9 < hdr.sosOffset; i++ {
		if out[i] == 0xFF && out[i+1] >= 0xC0 && out[i+1] <= 0xC2 {
			binary.BigEndian.PutUint16(out[i+5:], uint16(h))
			binary.BigEndian.PutUint16(out[i+7:], uint16(w))
			return out
		}
	}
	t.Fatal("no SOF marker")
	return nil
}

// withPNGDims patches IHDR, keeping its CRC valid so the claim is believed.
func withPNGDims(data []byte, w, h int) []byte {
	out := bytes.Clone(data)
	binary.BigEndian.PutUint32(out[16:], uint32(w))
	binary.BigEndian.PutUint32(out[20:], uint32(h))
	binary.BigEndian.PutUint32(out[29:], crc32.ChecksumIEEE(out[12:29]))
	return out
}

// TestDecodeErrors pins the classification and wording ingest reports for
// each kind of bad input, on both backends.
func TestDecodeErrors(t *testing.T) {
	photo := sampleBytes(t, "n01440764_tench")
	small := encodeJPEG(t, gradient(64, 48), 90)
	pngData := encodePNG(t, gradient(64, 48))
	random := make([]byte, 5000)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	type want struct {
		unsupported bool   // *UnsupportedError rather than *FormatError
		truncated   bool   // errors.Is(err, ErrTruncated)
		contains    string // substring of Error()
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want want
	}{
		{"empty", nil, want{contains: "empty file"}},
		{"random bytes", random, want{contains: "not an image: unknown signature " + fmt.Sprintf("%x", random[:8])}},
		{"html", []byte("<!DOCTYPE html><html>404</html>"), want{contains: "unknown signature 3c21444f43545950 (an HTML page: a download that got an error page?)"}},
		{"html, lower case", []byte("<html><body>403 Forbidden</body></html>"), want{contains: "(an HTML page"}},
		{"html after a BOM and a line", []byte("\xef\xbb\xbf\n<!doctype html>"), want{contains: "(an HTML page"}},
		{"git lfs pointer", []byte("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 110592\n"),
			want{contains: "unknown signature 76657273696f6e20 (a Git LFS pointer, not the file: `git lfs pull` fetches it)"}},
		{"jpeg cut at half", photo[:len(photo)/2], want{truncated: true, contains: "truncated JPEG"}},
		{"jpeg cut in header", photo[:200], want{truncated: true, contains: "truncated JPEG (file ends inside the header)"}},
		{"jpeg SOI only", []byte{0xFF, 0xD8, 0xFF}, want{truncated: true, contains: "truncated JPEG"}},
		{"jpeg no scan", []byte{0xFF, 0xD8, 0xFF, 0xD9}, want{contains: "jpeg: "}},
		// A marker code below 0xC0, which JPEG does not define, is damage
		// on both paths; a defined one neither handles (hierarchical
		// DHP, a reserved JPGn) is unsupported on both.
		{"jpeg undefined marker", withMarker(small, 0x02), want{contains: "jpeg: "}},
		{"jpeg undefined marker 0xbf", withMarker(small, 0xBF), want{contains: "jpeg: "}},
		{"jpeg hierarchical DHP marker", withMarker(small, 0xDE), want{unsupported: true, contains: "unsupported"}},
		{"jpeg reserved JPG0 marker", withMarker(small, 0xF0), want{unsupported: true, contains: "unsupported"}},
		{"jpeg short frame header", []byte("\xff\xd8\xff\xc0\x00\x04\x08\x00\xff\xd9" + strings.Repeat("\x00", 64)), want{contains: "jpeg: "}},
		// A JPEG side cannot pass MaxSide (65535, its field's limit):
		// too many pixels is what a JPEG header can claim.
		{"jpeg too many pixels", withJPEGDims(t, small, 16000, 16000), want{unsupported: true, contains: "256000000 pixels, over the limit of 100000000"}},
		{"png cut", pngData[:len(pngData)/2], want{truncated: true, contains: "truncated PNG"}},
		{"png too wide", withPNGDims(pngData, 1<<16, 10), want{unsupported: true, contains: "dimensions 65536x10: a side over the limit of 65535"}},
		{"gif header only", []byte("GIF89a\x01\x00"), want{truncated: true, contains: "truncated GIF"}},
	} {
		for _, d := range backends(t) {
			t.Run(tc.name+"/"+backendName(d), func(t *testing.T) {
				img, err := d.DecodeFull(tc.in)
				if err == nil {
					t.Fatalf("decoded %dx%d, want an error", img.W, img.H)
				}
				var fe *FormatError
				var ue *UnsupportedError
				switch {
				case tc.want.unsupported && !errors.As(err, &ue):
					t.Errorf("error %q (%T) is not an *UnsupportedError", err, err)
				case !tc.want.unsupported && !errors.As(err, &fe):
					t.Errorf("error %q (%T) is not a *FormatError", err, err)
				}
				if got := errors.Is(err, ErrTruncated); got != tc.want.truncated {
					t.Errorf("errors.Is(%q, ErrTruncated) = %v, want %v", err, got, tc.want.truncated)
				}
				if !strings.Contains(err.Error(), tc.want.contains) {
					t.Errorf("error %q does not contain %q", err, tc.want.contains)
				}
				// Preprocess must report the same failure.
				if perr := d.Preprocess(tc.in, 32, make([]uint8, 32*32*3)); perr == nil || perr.Error() != err.Error() {
					t.Errorf("Preprocess error %v, DecodeFull error %v", perr, err)
				}
			})
		}
	}
	if !errors.Is(&FormatError{Reason: "empty file", Err: ErrEmpty}, ErrEmpty) {
		t.Error("ErrEmpty not wrapped")
	}
}

// TestDecodeFormats decodes each supported container and pixel layout and
// checks the pixels against the source image they were encoded from.
func TestDecodeFormats(t *testing.T) {
	src := gradient(64, 48)
	opaque := image.NewRGBA(src.Bounds())
	copy(opaque.Pix, src.Pix)
	translucent := image.NewNRGBA(src.Bounds())
	copy(translucent.Pix, src.Pix)
	for i := 3; i < len(translucent.Pix); i += 4 {
		translucent.Pix[i] = uint8(i) // alpha must be dropped, not composited
	}
	gray16 := image.NewGray16(src.Bounds())
	for i := range gray16.Pix {
		gray16.Pix[i] = uint8(i * 13)
	}
	pal := image.NewPaletted(src.Bounds(), color.Palette{color.NRGBA{255, 0, 0, 255}, color.NRGBA{0, 0, 255, 0}, color.NRGBA{10, 200, 30, 128}})
	for i := range pal.Pix {
		pal.Pix[i] = uint8(i % 3)
	}
	rgba64 := image.NewNRGBA64(src.Bounds())
	for y := range 48 {
		for x := range 64 {
			c := src.NRGBAAt(x, y)
			rgba64.SetNRGBA64(x, y, color.NRGBA64{uint16(c.R)<<8 | 0x7F, uint16(c.G)<<8 | 0xFF, uint16(c.B) << 8, 0x8000})
		}
	}
	// GIF palettes are opaque RGB.
	gifPal := image.NewPaletted(src.Bounds(), color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}, color.RGBA{10, 200, 30, 255}})
	copy(gifPal.Pix, pal.Pix)
	var gifBuf, bmpBuf bytes.Buffer
	if err := gif.Encode(&gifBuf, gifPal, nil); err != nil {
		t.Fatal(err)
	}
	if err := bmp.Encode(&bmpBuf, opaque); err != nil {
		t.Fatal(err)
	}
	transparentGIF := gifWithTransparentIndex(t, gifPal, 0)
	for _, tc := range []struct {
		name      string
		data      []byte
		want      image.Image
		tolerance float64 // mean absolute difference allowed
	}{
		{"png rgb", encodePNG(t, opaque), opaque, 0},
		{"png rgba drops alpha", encodePNG(t, translucent), translucent, 0},
		{"png gray16 keeps high byte", encodePNG(t, gray16), gray16, 0},
		{"png 16-bit rgba", encodePNG(t, rgba64), src, 0},
		{"png paletted with transparency", encodePNG(t, pal), pal, 0},
		{"gif", gifBuf.Bytes(), gifPal, 0},
		{"gif transparent index keeps its colour", transparentGIF, gifPal, 0},
		{"bmp", bmpBuf.Bytes(), opaque, 0},
		{"jpeg", encodeJPEG(t, src, 95), src, 3},
		{"jpeg gray", encodeJPEG(t, toGray(src), 95), toGray(src), 1.5},
	} {
		for _, d := range backends(t) {
			t.Run(tc.name+"/"+backendName(d), func(t *testing.T) {
				img, err := d.DecodeFull(tc.data)
				if err != nil {
					t.Fatal(err)
				}
				want := expectRGB(tc.want)
				if img.W != 64 || img.H != 48 {
					t.Fatalf("decoded %dx%d, want 64x48", img.W, img.H)
				}
				if s := compareRGB(img.Pix, want); s.mad > tc.tolerance {
					t.Errorf("MAD %.3f (max %d) > %.1f", s.mad, s.maxDiff, tc.tolerance)
				}
			})
		}
	}
}

// expectRGB is the reference conversion: Pillow's convert("RGB") drops
// alpha from non-premultiplied colour and keeps 16-bit samples' high byte.
func expectRGB(m image.Image) []uint8 {
	b := m.Bounds()
	out := make([]uint8, 0, b.Dx()*b.Dy()*3)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			switch c := m.At(x, y).(type) {
			case color.NRGBA:
				out = append(out, c.R, c.G, c.B)
			case color.NRGBA64:
				out = append(out, uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8))
			case color.Gray16:
				out = append(out, uint8(c.Y>>8), uint8(c.Y>>8), uint8(c.Y>>8))
			default:
				r, g, bb, _ := c.RGBA()
				out = append(out, uint8(r>>8), uint8(g>>8), uint8(bb>>8))
			}
		}
	}
	return out
}

func toGray(m image.Image) *image.Gray {
	g := image.NewGray(m.Bounds())
	for y := m.Bounds().Min.Y; y < m.Bounds().Max.Y; y++ {
		for x := m.Bounds().Min.X; x < m.Bounds().Max.X; x++ {
			g.Set(x, y, m.At(x, y))
		}
	}
	return g
}

// TestPNGNamedJPEG is ILSVRC2012's n02105855_2933.JPEG: PNG bytes behind a
// .JPEG name must decode, on both backends.
func TestPNGNamedJPEG(t *testing.T) {
	data := encodePNG(t, gradient(300, 200))
	path := filepath.Join(t.TempDir(), "n02105855_2933.JPEG")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	read, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range backends(t) {
		dst := make([]uint8, 256*256*3)
		if err := d.Preprocess(read, 256, dst); err != nil {
			t.Errorf("%s: %v", backendName(d), err)
		}
	}
}

// TestCMYKFixtures decodes the committed Adobe CMYK and YCCK fixtures
// (testdata/README.md says how they were made): quadrants of red, green,
// blue and light gray. An inverted-ink mistake turns red into cyan.
func TestCMYKFixtures(t *testing.T) {
	want := [4][3]int{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {191, 191, 191}}
	at := [4][2]int{{8, 6}, {24, 6}, {8, 18}, {24, 18}}
	for _, name := range []string{"cmyk_adobe_32x24.jpg", "ycck_adobe_32x24.jpg"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range backends(t) {
			img, err := d.DecodeFull(data)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, backendName(d), err)
			}
			if img.W != 32 || img.H != 24 {
				t.Fatalf("%s/%s: %dx%d", name, backendName(d), img.W, img.H)
			}
			for q, p := range at {
				i := (p[1]*img.W + p[0]) * 3
				for c := range 3 {
					if diff := int(img.Pix[i+c]) - want[q][c]; diff < -6 || diff > 6 {
						t.Errorf("%s/%s: pixel %v = %v, want about %v", name, backendName(d), p, img.Pix[i:i+3], want[q])
						break
					}
				}
			}
		}
	}
}

// TestCMYKMatchesPIL re-encodes a real photo as an Adobe CMYK JPEG with
// Pillow and decodes it both ways: libjpeg-turbo plus our CMYK conversion
// must equal Pillow's decode exactly.
func TestCMYKMatchesPIL(t *testing.T) {
	paths := testdata.ImageNetSample(t)
	dir := t.TempDir()
	for _, tc := range []struct{ mode, opts string }{{"CMYK", ""}, {"RGB", "progressive"}, {"L", "progressive"}} {
		t.Run(tc.mode+"_"+tc.opts, func(t *testing.T) {
			out := filepath.Join(dir, tc.mode+tc.opts+".jpg")
			runPIL(t, "save", out, "90", paths[3], tc.mode, tc.opts+" ")
			runPIL(t, "decoded", out+".", "256", out)
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(out + ".0.full")
			if err != nil {
				t.Fatal(err)
			}
			nl := bytes.IndexByte(raw, '\n')
			want := raw[nl+1:]
			hdr, err := scanJPEGHeader(data)
			if err != nil {
				t.Fatal(err)
			}
			if got := hdr.progressive; got != (tc.opts == "progressive") {
				t.Fatalf("fixture progressive = %v", got)
			}
			for _, d := range backends(t) {
				img, err := d.DecodeFull(data)
				if err != nil {
					t.Fatalf("%s: %v", backendName(d), err)
				}
				s := compareRGB(img.Pix, want)
				t.Logf("%s: MAD %.3f max %d vs Pillow", backendName(d), s.mad, s.maxDiff)
				if d.lib != nil && !s.equal {
					t.Errorf("libjpeg-turbo decode differs from Pillow: MAD %.3f max %d", s.mad, s.maxDiff)
				}
				if s.mad > 1.5 {
					t.Errorf("%s: MAD %.3f vs Pillow", backendName(d), s.mad)
				}
			}
		})
	}
}

// TestGrayscaleSamples: the sample's grayscale JPEGs come out as RGB with
// three equal channels.
func TestGrayscaleSamples(t *testing.T) {
	for _, name := range []string{"airship", "pencil_sharpener", "soccer_ball"} {
		data := sampleBytes(t, name)
		hdr, err := scanJPEGHeader(data)
		if err != nil || hdr.components != 1 {
			t.Fatalf("%s: components %d, %v", name, hdr.components, err)
		}
		for _, d := range backends(t) {
			img, err := d.DecodeFull(data)
			if err != nil {
				t.Fatal(err)
			}
			if img.W != hdr.width || img.H != hdr.height {
				t.Errorf("%s: %dx%d, header says %dx%d", name, img.W, img.H, hdr.width, hdr.height)
			}
			for i := 0; i < len(img.Pix); i += 3 {
				if img.Pix[i] != img.Pix[i+1] || img.Pix[i] != img.Pix[i+2] {
					t.Fatalf("%s/%s: pixel %d is %v, not gray", name, backendName(d), i/3, img.Pix[i:i+3])
				}
			}
		}
	}
}

// TestSmallImagesUpscale: images below the output size are enlarged, not
// rejected or padded.
func TestSmallImagesUpscale(t *testing.T) {
	for _, sz := range [][2]int{{50, 40}, {40, 50}, {1, 1}, {255, 300}, {3, 200}} {
		data := encodeJPEG(t, gradient(sz[0], sz[1]), 95)
		for _, d := range backends(t) {
			dst := make([]uint8, 256*256*3)
			if err := d.Preprocess(data, 256, dst); err != nil {
				t.Fatalf("%v/%s: %v", sz, backendName(d), err)
			}
			img, err := d.DecodeFull(data)
			if err != nil {
				t.Fatal(err)
			}
			if s := compareRGB(dst, refResize(img, 256)); !s.equal {
				t.Errorf("%v/%s: Preprocess differs from decode + reference resize", sz, backendName(d))
			}
		}
	}
}

// TestDCTScaling checks which scale DecodeForSize picks and that the
// stdlib path, which cannot scale, ignores the hint.
func TestDCTScaling(t *testing.T) {
	big := sampleBytes(t, "Shih-Tzu")  // 1280x1024
	typical := sampleBytes(t, "tench") // 500x375
	d := NewDecoder()
	defer d.Close()
	if d.lib == nil {
		t.Skip("libjpeg-turbo not loaded: " + Backend())
	}
	for _, tc := range []struct {
		data         []byte
		minShort     int
		wantW, wantH int
	}{
		{big, 0, 1280, 1024},
		{big, 1024, 1280, 1024},
		{big, 1000, 1280, 1024}, // 1/2 would give 512 < 1000
		{big, 512, 640, 512},
		{big, 300, 640, 512},
		{big, 256, 320, 256},
		{big, 128, 160, 128},
		{big, 1, 160, 128}, // 1/8 is the smallest factor
		{typical, 256, 500, 375},
		{typical, 187, 250, 188}, // ceil(375/2)
		{typical, 188, 250, 188},
		{typical, 189, 500, 375},
	} {
		img, err := d.DecodeForSize(tc.data, tc.minShort)
		if err != nil {
			t.Fatal(err)
		}
		if img.W != tc.wantW || img.H != tc.wantH {
			t.Errorf("DecodeForSize(%dx%d, %d) = %dx%d, want %dx%d", tc.wantW, tc.wantH, tc.minShort, img.W, img.H, tc.wantW, tc.wantH)
		}
	}
	s := NewDecoderStdlib()
	if img, err := s.DecodeForSize(big, 256); err != nil || img.W != 1280 {
		t.Errorf("stdlib DecodeForSize(big, 256) = %dx%d, %v; want full size", img.W, img.H, err)
	}
	// Preprocess scales only to twice the output: 1280x1024 at 256 decodes
	// at 640x512.
	dst := make([]uint8, 256*256*3)
	if err := d.Preprocess(big, 256, dst); err != nil {
		t.Fatal(err)
	}
	img, _ := d.DecodeForSize(big, 512)
	if s := compareRGB(dst, refResize(img, 256)); !s.equal {
		t.Error("Preprocess(big, 256) is not the 640x512 decode resized")
	}
}

// TestBackendsAgree decodes every sample with both backends at full size:
// the decoders differ (image/jpeg's chroma is not smoothly upsampled, its
// IDCT is another) but only slightly; after resizing to 256 the stdlib
// path stays within 0.4 of Pillow on the test's photos, 0.8 on the worst
// of the whole sample (TestPreprocessMatchesPIL asserts 2).
func TestBackendsAgree(t *testing.T) {
	d := NewDecoder()
	defer d.Close()
	if d.lib == nil {
		t.Skip("libjpeg-turbo not loaded: " + Backend())
	}
	s := NewDecoderStdlib()
	worst, worstName := 0.0, ""
	paths := testdata.ImageNetSample(t)
	if testing.Short() {
		paths = paths[:20]
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		a, err := d.DecodeFull(data)
		if err != nil {
			t.Fatalf("%s: turbo: %v", p, err)
		}
		b, err := s.DecodeFull(data)
		if err != nil {
			t.Fatalf("%s: stdlib: %v", p, err)
		}
		if a.W != b.W || a.H != b.H {
			t.Fatalf("%s: %dx%d vs %dx%d", p, a.W, a.H, b.W, b.H)
		}
		st := compareRGB(a.Pix, b.Pix)
		if st.mad > worst {
			worst, worstName = st.mad, filepath.Base(p)
		}
	}
	t.Logf("%d images: worst mean absolute difference libjpeg-turbo vs image/jpeg %.3f (%s)", len(paths), worst, worstName)
	if worst > 2.5 {
		t.Errorf("worst MAD %.3f > 2.5", worst)
	}
}

// TestWarningAccepted: junk between two header segments is a recoverable
// defect ("Corrupt JPEG data: 3 extraneous bytes before marker 0xda" from
// libjpeg; image/jpeg skips it in silence, and jpegScanWarning names it)
// that must not reject the file.
func TestWarningAccepted(t *testing.T) {
	data := encodeJPEG(t, gradient(64, 48), 90)
	hdr, err := scanJPEGHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	bad := slices.Concat(data[:hdr.sosOffset], []byte{0x12, 0x34, 0x56}, data[hdr.sosOffset:])
	for _, d := range backends(t) {
		img, err := d.DecodeFull(bad)
		if err != nil {
			t.Fatalf("%s: %v", backendName(d), err)
		}
		got := bytes.Clone(img.Pix)
		if !strings.Contains(d.Warning(), "3 extraneous bytes before marker 0xda") {
			t.Errorf("%s: Warning() = %q, want libjpeg's extraneous-bytes warning", backendName(d), d.Warning())
		}
		good, err := d.DecodeFull(data)
		if err != nil {
			t.Fatal(err)
		}
		if firstDiff(got, good.Pix) >= 0 {
			t.Errorf("%s: pixels changed by the junk", backendName(d))
		}
		if d.Warning() != "" {
			t.Errorf("warning %q survived into the next decode", d.Warning())
		}
	}
}

func TestBackendReport(t *testing.T) {
	b := Backend()
	if !strings.HasPrefix(b, "libjpeg-turbo (") && !strings.HasPrefix(b, "stdlib image/jpeg (") {
		t.Errorf("Backend() = %q", b)
	}
	t.Log(b)
	d := NewDecoder()
	if err := d.Close(); err != nil {
		t.Error(err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// A closed Decoder falls back to the stdlib decoder rather than using a
	// freed handle.
	if _, err := d.DecodeFull(encodeJPEG(t, gradient(8, 8), 90)); err != nil {
		t.Error(err)
	}
}

func TestFromImage(t *testing.T) {
	src := gradient(5, 3)
	img := FromImage(src)
	if img.W != 5 || img.H != 3 || firstDiff(img.Pix, expectRGB(src)) >= 0 {
		t.Errorf("FromImage = %+v", img)
	}
}

// TestConcurrentDecoders runs one Decoder per goroutine, as ingest does,
// over good and bad files, and expects exactly the serial results. It
// would catch state shared between Decoders, and error text read from the
// wrong thread (TurboJPEG keeps it thread-local).
func TestConcurrentDecoders(t *testing.T) {
	paths := testdata.ImageNetSample(t)[:24]
	var inputs [][]byte
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			data = data[:len(data)*2/3] // truncated: its error text must survive
		}
		inputs = append(inputs, data)
	}
	type result struct {
		sum uint64
		err string
	}
	run := func(d *Decoder, data []byte) result {
		dst := make([]uint8, 64*64*3)
		if err := d.Preprocess(data, 64, dst); err != nil {
			return result{err: err.Error()}
		}
		var h uint64 = 14695981039346656037
		for _, v := range dst {
			h = (h ^ uint64(v)) * 1099511628211
		}
		return result{sum: h}
	}
	serial := make([]result, len(inputs))
	d := NewDecoder()
	defer d.Close()
	for i, data := range inputs {
		serial[i] = run(d, data)
	}
	const workers = 4
	got := make([][]result, workers)
	done := make(chan int)
	for w := range workers {
		go func() {
			d := NewDecoder()
			defer d.Close()
			for range 3 {
				for i := range inputs {
					j := (i + w*5) % len(inputs)
					got[w] = append(got[w], run(d, inputs[j]))
				}
			}
			done <- w
		}()
	}
	for range workers {
		<-done
	}
	for w := range workers {
		for k, r := range got[w] {
			j := (k%len(inputs) + w*5) % len(inputs)
			if r != serial[j] {
				t.Errorf("worker %d, input %d: %+v, serial %+v", w, j, r, serial[j])
			}
		}
	}
}

// TestMissingLibrary: a machine without libturbojpeg gets an ordinary
// error naming what was tried, which Backend reports, not a crash.
func TestMissingLibrary(t *testing.T) {
	t.Setenv("TURBOJPEG_LIB", "")
	saved := turboLibNames
	defer func() { turboLibNames = saved }()
	turboLibNames = []string{"libturbojpeg-does-not-exist.so.9"}
	lib, err := openTurbo()
	if err == nil || lib != nil {
		t.Fatalf("openTurbo() = %v, %v; want an error", lib, err)
	}
	if !strings.Contains(err.Error(), "libturbojpeg-does-not-exist.so.9") {
		t.Errorf("error %q does not name the library", err)
	}
}

// TURBOJPEG_LIB names a library to try first, or "none" for the Go
// decoders on a machine that has libturbojpeg.
func TestTurboJPEGLibEnv(t *testing.T) {
	t.Setenv("TURBOJPEG_LIB", "none")
	if lib, err := openTurbo(); lib != nil || err == nil || err.Error() != "TURBOJPEG_LIB=none" {
		t.Errorf("TURBOJPEG_LIB=none: openTurbo() = %v, %v", lib, err)
	}
	saved := turboLibNames
	defer func() { turboLibNames = saved }()
	turboLibNames = []string{"libturbojpeg-does-not-exist.so.9"}
	t.Setenv("TURBOJPEG_LIB", "/nonexistent/libturbojpeg-custom.so")
	_, err := openTurbo()
	if err == nil || !strings.Contains(err.Error(), "libturbojpeg-custom.so") || !strings.Contains(err.Error(), "libturbojpeg-does-not-exist.so.9") {
		t.Errorf("error %v: want both the named library and the usual names tried", err)
	}

	// One named that cannot be used, missing or not libturbojpeg (a
	// library without its symbols), gives way to the system's alike, and
	// the decoder's name says so.
	turboLibNames = saved
	t.Setenv("TURBOJPEG_LIB", "")
	if _, err := openTurbo(); err != nil {
		t.Skipf("no libturbojpeg here to fall back to: %v", err)
	}
	for _, c := range []struct{ env, why string }{
		{"/nonexistent/libturbojpeg-custom.so", "/nonexistent/libturbojpeg-custom.so"},
		{"libc.so.6", "symbol tjInitDecompress"},
	} {
		t.Setenv("TURBOJPEG_LIB", c.env)
		lib, err := openTurbo()
		if err != nil || !strings.Contains(lib.path, "libturbojpeg") || !strings.Contains(lib.path, "; TURBOJPEG_LIB="+c.env+" could not be used: ") || !strings.Contains(lib.path, c.why) {
			t.Errorf("TURBOJPEG_LIB=%s: %v, %v; want the system's library, naming why %s was not used", c.env, lib, err, c.env)
		}
	}
}

// Only the image/jpeg path has rules of its own for damage, which ingest's
// resume keys its shards by.
func TestDamageRules(t *testing.T) {
	if got, stdlib := DamageRules(), BackendKind() == "stdlib"; (got != "") != stdlib {
		t.Errorf("DamageRules() = %q with backend %s", got, BackendKind())
	}
}

// gifWithTransparentIndex encodes m as a GIF whose first frame's Graphic
// Control Extension marks palette entry idx transparent, with the entry's
// colour kept in the colour table (image/gif's encoder writes a
// transparent entry as black, so the flag is set by hand).
func gifWithTransparentIndex(t *testing.T, m *image.Paletted, idx uint8) []byte {
	t.Helper()
	var buf bytes.Buffer
	// A delay makes the encoder write a Graphic Control Extension.
	if err := gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{m}, Delay: []int{1}}); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	i := bytes.Index(data, []byte{0x21, 0xF9, 0x04})
	if i < 0 {
		t.Fatal("no graphic control extension written")
	}
	data[i+3] |= 1  // transparent colour flag
	data[i+6] = idx // transparent colour index
	return data
}

func TestGIFOpaque(t *testing.T) {
	pal := image.NewPaletted(image.Rect(0, 0, 4, 3), color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 9, 0, 255}})
	withFlag := gifWithTransparentIndex(t, pal, 1)
	var plain bytes.Buffer
	if err := gif.Encode(&plain, pal, nil); err != nil {
		t.Fatal(err)
	}
	// A comment extension before the control extension must be stepped over.
	gct := 13
	if withFlag[10]&0x80 != 0 {
		gct += 3 << (withFlag[10]&7 + 1)
	}
	withComment := append(append(append([]byte(nil), withFlag[:gct]...), 0x21, 0xFE, 3, 'a', 'b', 'c', 2, 'd', 'e', 0), withFlag[gct:]...)
	for _, tc := range []struct {
		name    string
		in      []byte
		cleared bool // a copy with the flag cleared, else in itself
	}{
		{"transparent index", withFlag, true},
		{"comment first", withComment, true},
		{"no control extension", plain.Bytes(), false},
		{"cut inside the extension", withFlag[:gct+4], false},
		{"cut inside the colour table", withFlag[:20], false},
		{"header only", withFlag[:13], false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := append([]byte(nil), tc.in...)
			out := gifOpaque(tc.in)
			if !bytes.Equal(tc.in, orig) {
				t.Fatal("input modified")
			}
			diff := 0
			for i := range min(len(out), len(orig)) {
				if out[i] != orig[i] {
					diff++
					if out[i] != orig[i]&^1 {
						t.Errorf("byte %d: %#x, want the flag cleared from %#x", i, out[i], orig[i])
					}
				}
			}
			if len(out) != len(orig) || (diff == 1) != tc.cleared || diff > 1 {
				t.Errorf("%d bytes changed, len %d of %d; cleared=%v expected", diff, len(out), len(orig), tc.cleared)
			}
			if tc.cleared {
				m, err := gif.Decode(bytes.NewReader(out))
				if err != nil {
					t.Fatal(err)
				}
				if _, _, _, a := m.(*image.Paletted).Palette[1].RGBA(); a == 0 {
					t.Error("palette entry 1 still transparent")
				}
			}
		})
	}
}

// webpVP8X is an extended WebP: a VP8X canvas of cw×ch holding a lossless
// frame whose header states fw×fh, its pixel data left out.
func webpVP8X(cw, ch, fw, fh int) []byte {
	le24 := func(v int) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16)} }
	vp8x := append([]byte{0, 0, 0, 0}, append(le24(cw-1), le24(ch-1)...)...)
	bits := uint32(fw-1) | uint32(fh-1)<<14
	vp8l := []byte{0x2f, byte(bits), byte(bits >> 8), byte(bits >> 16), byte(bits >> 24), 0, 0, 0}
	chunk := func(fourcc string, body []byte) []byte {
		n := len(body)
		return append(append([]byte(fourcc), byte(n), byte(n>>8), byte(n>>16), byte(n>>24)), body...)
	}
	body := append([]byte("WEBP"), append(chunk("VP8X", vp8x), chunk("VP8L", vp8l)...)...)
	n := len(body)
	return append([]byte{'R', 'I', 'F', 'F', byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}, body...)
}

// A WebP frame is held to the limits and to its canvas before it is
// decoded: a 50-byte file claiming a 10000² frame on a 1×1 canvas cost
// 667 MB and decoded.
func TestWebPFrameBeyondItsCanvas(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want any
		says string
	}{
		{"frame larger than the canvas", webpVP8X(1, 1, 10000, 10000), &FormatError{}, "frame is 10000x10000, its canvas 1x1"},
		{"frame beyond the limits", webpVP8X(1, 1, 16384, 16384), &UnsupportedError{}, "over the limit of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w, h, ok := webpFrameDims(tc.data); !ok || w < 10000 || h < 10000 {
				t.Fatalf("webpFrameDims = %d, %d, %v", w, h, ok)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := NewDecoder().DecodeForSize(tc.data, 0)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), tc.says) || reflect.TypeOf(err) != reflect.TypeOf(tc.want) {
				t.Fatalf("got %T %v, want %T saying %q", err, err, tc.want, tc.says)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
				t.Errorf("refused after allocating %d bytes", got)
			}
		})
	}
}

// Valid JPEGs one decoder cannot take are Unsupported on it, named for
// what they are: arithmetic coding (libjpeg-turbo decodes it, image/jpeg
// said "unknown marker"); samplings TurboJPEG 2.1 has no name for, which
// libjpeg-turbo decodes all the same and image/jpeg does not (both named
// for the library that reads them); and a fractional sampling, which
// neither decodes.
func TestJPEGFeaturesABackendLacks(t *testing.T) {
	for _, tc := range []struct {
		file        string
		turboDecode bool   // libjpeg-turbo decodes it
		says        string // the Unsupported reason where a backend does not
	}{
		{"arithmetic_32x24.jpg", true, "arithmetic-coded JPEG"},
		{"sampling_2x1_1x2_32x24.jpg", true, "install libturbojpeg0"},
		{"sampling_3x2_32x24.jpg", true, "install libturbojpeg0"},
		{"sampling_fractional_32x24.jpg", false, "subsampling ratio"},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range backends(t) {
			img, err := d.DecodeFull(data)
			if d.lib != nil && tc.turboDecode {
				if err != nil || img.W != 32 || img.H != 24 || img.Pix[(6*32+8)*3] < 240 {
					t.Errorf("%s/%s: %v (%dx%d)", tc.file, backendName(d), err, img.W, img.H)
				}
				continue
			}
			var u *UnsupportedError
			if !errors.As(err, &u) {
				t.Errorf("%s/%s: %T %v, want an UnsupportedError", tc.file, backendName(d), err, err)
			} else if d.lib == nil && !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%s/%s: %v, want it to say %q", tc.file, backendName(d), err, tc.says)
			}
		}
	}
}

// Samplings TurboJPEG 2.1's header call has no name for are decoded by
// libjpeg-turbo all the same, to Pillow's pixels (Pillow decodes with the
// same library); 4:1:0, which image/jpeg decodes too, is kept on both
// backends, to within a few levels there.
func TestUnnamedSampling(t *testing.T) {
	type point struct {
		x, y int
		want [3]uint8 // Pillow 9.4's pixel
	}
	for _, tc := range []struct {
		file   string
		stdlib bool // image/jpeg decodes it too
		pil    []point
	}{
		{"sampling_4x2_32x24.jpg", true, []point{{4, 3, [3]uint8{254, 1, 0}}, {28, 3, [3]uint8{0, 254, 8}}, {4, 20, [3]uint8{0, 0, 254}}, {28, 20, [3]uint8{191, 191, 193}}}},
		{"sampling_3x2_32x24.jpg", false, []point{{4, 3, [3]uint8{253, 5, 0}}, {28, 3, [3]uint8{0, 255, 0}}, {4, 20, [3]uint8{2, 0, 254}}, {28, 20, [3]uint8{191, 191, 191}}}},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range backends(t) {
			if d.lib == nil && !tc.stdlib {
				continue // TestJPEGFeaturesABackendLacks
			}
			img, err := d.DecodeFull(data)
			if err != nil || img.W != 32 || img.H != 24 {
				t.Fatalf("%s/%s: %dx%d, %v", tc.file, backendName(d), img.W, img.H, err)
			}
			tol := 0 // libjpeg-turbo, as Pillow's
			if d.lib == nil {
				tol = 4
			}
			for _, c := range tc.pil {
				i := (c.y*img.W + c.x) * 3
				for k := range 3 {
					if diff := int(img.Pix[i+k]) - int(c.want[k]); diff < -tol || diff > tol {
						t.Errorf("%s/%s: pixel (%d,%d) = %v, Pillow gives %v", tc.file, backendName(d), c.x, c.y, img.Pix[i:i+3], c.want)
						break
					}
				}
			}
		}
	}
}

// A GIF's first frame smaller than its screen is shown on the screen, the
// rest in the background colour, as Pillow's convert("RGB") shows it
// (image/gif gives the frame alone).
func TestGIFFrameOnItsScreen(t *testing.T) {
	pal := color.Palette{color.RGBA{0, 255, 0, 255}, color.RGBA{200, 10, 30, 255}}
	frame := image.NewPaletted(image.Rect(10, 5, 30, 15), pal)
	for i := range frame.Pix {
		frame.Pix[i] = 1
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{frame}, Delay: []int{0},
		Config: image.Config{ColorModel: pal, Width: 40, Height: 30}, BackgroundIndex: 0}); err != nil {
		t.Fatal(err)
	}
	img, err := NewDecoderStdlib().DecodeFull(b.Bytes())
	if err != nil || img.W != 40 || img.H != 30 {
		t.Fatalf("%dx%d, %v: want the 40x30 screen", img.W, img.H, err)
	}
	for _, c := range []struct {
		x, y int
		want [3]uint8
	}{{0, 0, [3]uint8{0, 255, 0}}, {39, 29, [3]uint8{0, 255, 0}}, {15, 8, [3]uint8{200, 10, 30}}, {29, 14, [3]uint8{200, 10, 30}}, {30, 15, [3]uint8{0, 255, 0}}} {
		i := (c.y*img.W + c.x) * 3
		if got := [3]uint8(img.Pix[i : i+3]); got != c.want {
			t.Errorf("pixel (%d,%d) = %v, want %v", c.x, c.y, got, c.want)
		}
	}
}

// withoutDQT returns a JPEG with its quantization table segments removed:
// image/jpeg decodes such a file as flat grey, libjpeg refuses it.
func withoutDQT(t *testing.T, data []byte) []byte {
	t.Helper()
	out := append([]byte(nil), data[:2]...)
	pos := 2
	for pos+4 <= len(data) {
		if data[pos] != 0xFF {
			t.Fatalf("no marker at %d", pos)
		}
		m := data[pos+1]
		if m == 0xDA {
			return append(out, data[pos:]...)
		}
		n := int(data[pos+2])<<8 | int(data[pos+3])
		if m != 0xDB {
			out = append(out, data[pos:pos+2+n]...)
		}
		pos += 2 + n
	}
	t.Fatal("no scan")
	return nil
}

// A JPEG whose first scan uses a quantization table no DQT defined is
// refused on both paths, as libjpeg and PIL refuse it, where image/jpeg
// alone would decode flat grey and ingest would keep it.
func TestUndefinedQuantTableRefused(t *testing.T) {
	good := encodeJPEG(t, gradient(40, 30), 90)
	bad := withoutDQT(t, good)
	if len(bad) >= len(good) {
		t.Fatal("the fixture had no DQT to remove")
	}
	decs := map[string]*Decoder{"stdlib": NewDecoderStdlib()}
	if d := NewDecoder(); d.Backend() != NewDecoderStdlib().Backend() {
		decs["turbo"] = d
	}
	for name, d := range decs {
		out := make([]byte, 16*16*3)
		if err := d.Preprocess(good, 16, out); err != nil {
			t.Fatalf("%s: the fixture itself: %v", name, err)
		}
		err := d.Preprocess(bad, 16, out)
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%s: a JPEG without its quantization tables gave %v, want a FormatError", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	if err := NewDecoderStdlib().Preprocess(bad, 16, make([]byte, 16*16*3)); err == nil || !strings.Contains(err.Error(), "quantization table 0x00 was not defined") {
		t.Errorf("stdlib: %v", err)
	}
}

// withMarker puts a 4-byte segment with marker code m right after a JPEG's
// SOI.
func withMarker(jpg []byte, m byte) []byte {
	return append([]byte{0xFF, 0xD8, 0xFF, m, 0x00, 0x04, 0, 0}, jpg[2:]...)
}

// The libraries tried: the Linux sonames, and on macOS the .dylib names
// and the Homebrew and MacPorts folders dlopen does not search.
func TestTurboLibNames(t *testing.T) {
	for _, tc := range []struct {
		goos      string
		want, not string
	}{
		{"linux", "libturbojpeg.so.0", ".dylib"},
		{"darwin", "/opt/homebrew/lib/libturbojpeg.dylib", ".so"},
	} {
		got := strings.Join(libNames(tc.goos), " ")
		if !strings.Contains(got, tc.want) || strings.Contains(got, tc.not) {
			t.Errorf("%s: %s", tc.goos, got)
		}
	}
}
