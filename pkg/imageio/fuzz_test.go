package imageio

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/bmp"
)

// FuzzDecode feeds arbitrary bytes to both backends through DecodeFull and
// Preprocess. Neither may panic or crash; every failure must be one of the
// two error types ingest distinguishes; every success must be a
// consistent image.
func FuzzDecode(f *testing.F) {
	src := gradient(24, 17)
	jpg := encodeJPEG(f, src, 80)
	pngData := encodePNG(f, src)
	var gifBuf, gifAnim, bmpBuf bytes.Buffer
	pal := image.NewPaletted(src.Bounds(), color.Palette{color.Black, color.White})
	if err := gif.Encode(&gifBuf, pal, nil); err != nil {
		f.Fatal(err)
	}
	// With a Graphic Control Extension, whose transparency flag the
	// decoder clears (gifOpaque).
	if err := gif.EncodeAll(&gifAnim, &gif.GIF{Image: []*image.Paletted{pal, pal}, Delay: []int{1, 2}}); err != nil {
		f.Fatal(err)
	}
	if err := bmp.Encode(&bmpBuf, src); err != nil {
		f.Fatal(err)
	}
	seeds := [][]byte{nil, jpg, jpg[:len(jpg)/2], jpg[:40], pngData, pngData[:60], gifBuf.Bytes(), gifAnim.Bytes(), bmpBuf.Bytes(),
		[]byte("\xff\xd8\xff\xc0\x00\x11\x08\x40\x00\x40\x00\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xd9")}
	for _, name := range []string{"cmyk_adobe_32x24.jpg", "ycck_adobe_32x24.jpg"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	decoders := []*Decoder{NewDecoder(), NewDecoderStdlib()}
	dst := make([]uint8, 32*32*3)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range decoders {
			img, err := d.DecodeFull(data)
			checkDecodeResult(t, d, img, err)
			// Preprocess decodes DCT-scaled, which may meet a damaged
			// file's defects differently, so only its error type is checked.
			if perr := d.Preprocess(data, 32, dst); perr != nil {
				checkDecodeResult(t, d, Image{}, perr)
			}
		}
	})
}

func checkDecodeResult(t *testing.T, d *Decoder, img Image, err error) {
	t.Helper()
	if err != nil {
		var fe *FormatError
		var ue *UnsupportedError
		if !errors.As(err, &fe) && !errors.As(err, &ue) {
			t.Fatalf("%s: error %q is %T, not *FormatError or *UnsupportedError", backendName(d), err, err)
		}
		return
	}
	if img.W < 1 || img.H < 1 || img.W > MaxSide || img.H > MaxSide || len(img.Pix) != img.W*img.H*3 {
		t.Fatalf("%s: inconsistent image %dx%d with %d bytes", backendName(d), img.W, img.H, len(img.Pix))
	}
}
