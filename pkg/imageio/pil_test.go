package imageio

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/testdata"
)

// These tests compare with Pillow, the library a user of the paper's
// preprocessing would script with. Debian's python3 carries Pillow 9.4
// linked against the same libjpeg-turbo that Backend loads; the python3
// first on PATH may not have PIL at all, so the path is fixed.
const pilPython = "/usr/bin/python3"

// pilScript is shared by the tests below. Each command reads file paths from
// argv and writes raw RGB next to the given output prefix.
const pilScript = `
import sys
from PIL import Image

def crop(im, size):
    w, h = im.size
    # The rule ResizedSize documents: shorter side to size, longer side
    # long*size//short.
    if w <= h:
        nw, nh = size, max(size, h * size // w)
    else:
        nw, nh = max(size, w * size // h), size
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))

cmd, out, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
paths = sys.argv[4:]
if cmd == "preprocess":
    # Image.open().convert("RGB"), no draft(): the full-size decode a
    # user gets by default.
    for i, p in enumerate(paths):
        im = Image.open(p).convert("RGB")
        open("%s%d.rgb" % (out, i), "wb").write(crop(im, size).tobytes())
elif cmd == "decoded":
    # The full-size decode plus Pillow's resize of those very pixels.
    for i, p in enumerate(paths):
        im = Image.open(p).convert("RGB")
        open("%s%d.full" % (out, i), "wb").write(("%d %d\n" % im.size).encode() + im.tobytes())
        open("%s%d.rgb" % (out, i), "wb").write(crop(im, size).tobytes())
elif cmd == "save":
    # save <out> <quality> <src> <mode> <kwargs>: re-encode a photo as a
    # fixture: mode CMYK, L, or RGB; "progressive" in kwargs.
    src, mode, opts = paths[0], paths[1], paths[2]
    im = Image.open(src).convert(mode)
    im.save(out, "JPEG", quality=size, progressive="progressive" in opts)
elif cmd == "webp":
    # webp <out> <quality>: a colourful synthetic image as lossy WebP at
    # out, and Pillow's decode of that file at out.rgb.
    g = Image.linear_gradient("L")
    im = Image.merge("RGB", [g, g.rotate(90), Image.radial_gradient("L")])
    im.save(out, "WEBP", quality=size)
    open(out + ".rgb", "wb").write(Image.open(out).convert("RGB").tobytes())
elif cmd == "panorama":
    # panorama <out> <size> <width> <height>: a wide strip with detail
    # across its length, as a JPEG (quality 90) at out.jpg and a PNG at
    # out.png, and Pillow's preprocessing of each at out.jpg.rgb and
    # out.png.rgb.
    w, h = int(paths[0]), int(paths[1])
    g = Image.linear_gradient("L").resize((w, h))
    r = Image.radial_gradient("L").resize((w // 40, h)).resize((w, h))
    im = Image.merge("RGB", [g, r, g.transpose(Image.FLIP_LEFT_RIGHT)])
    for ext, kw in (("jpg", {"quality": 90}), ("png", {})):
        im.save(out + "." + ext, **kw)
        rgb = crop(Image.open(out + "." + ext).convert("RGB"), size).tobytes()
        open(out + "." + ext + ".rgb", "wb").write(rgb)
elif cmd == "gif":
    # gif <out> <side>: a paletted GIF whose transparent index has a
    # colour (red) of its own, with a comment block before the frame, at
    # out, and Pillow's decode of that file at out.rgb.
    im = Image.new("P", (size, size), 0)
    im.putpalette([255, 0, 0, 0, 255, 0, 20, 40, 200] + [0] * 759)
    for y in range(size):
        for x in range(size):
            im.putpixel((x, y), (x + 2 * y) % 3)
    im.save(out, "GIF", transparency=0, comment=b"made for a test")
    open(out + ".rgb", "wb").write(Image.open(out).convert("RGB").tobytes())
`

// runPIL runs pilScript or skips t when Debian's Pillow is not there.
func runPIL(t testing.TB, args ...string) {
	t.Helper()
	if _, err := os.Stat(pilPython); err != nil {
		t.Skipf("%s not found: the Pillow comparison needs Debian's python3-pil", pilPython)
	}
	if out, err := exec.Command(pilPython, "-c", "import PIL.Image").CombinedOutput(); err != nil {
		t.Skipf("%s has no PIL (%v): %s", pilPython, err, out)
	}
	cmd := exec.Command(pilPython, append([]string{"-c", pilScript}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Pillow script %s failed: %v\n%s", args[0], err, out)
	}
}

// pilSubset picks sample images covering the cases that matter: every one
// large enough for DCT scaling at 256, the grayscale ones, and the first
// few ordinary ones.
func pilSubset(t testing.TB, paths []string) []string {
	var out []string
	ordinary := 0
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h, err := scanJPEGHeader(data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		switch {
		case min(h.width, h.height) >= 512, h.components == 1:
			out = append(out, p)
		case ordinary < 12 && len(paths) > 0:
			out = append(out, p)
			ordinary++
		}
	}
	return out
}

type diffStats struct {
	mad     float64 // mean absolute difference per channel value
	maxDiff int
	equal   bool
}

func compareRGB(got, want []uint8) diffStats {
	var s diffStats
	sum := 0
	for i := range got {
		d := int(got[i]) - int(want[i])
		if d < 0 {
			d = -d
		}
		sum += d
		s.maxDiff = max(s.maxDiff, d)
	}
	s.mad = float64(sum) / float64(len(got))
	s.equal = s.maxDiff == 0
	return s
}

// TestPreprocessMatchesPIL is the acceptance test for ingest's pixels:
// Preprocess against Pillow's open/convert/resize(BILINEAR)/crop on real
// photos. Unscaled decodes must be bit-identical (same libjpeg-turbo, same
// resampling arithmetic); DCT-scaled ones must stay within a mean absolute
// difference of 2 levels.
//
// At 32 px a 500×333 photo is DCT-scaled to 1/4 (125×84), whose rounded-up
// size once set the geometry: PIL's 48×32 became 47×32 and the crop moved
// a pixel (mean differences up to 11.8 levels).
func TestPreprocessMatchesPIL(t *testing.T) {
	paths := pilSubset(t, testdata.ImageNetSample(t))
	for _, size := range []int{256, 32} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { preprocessMatchesPIL(t, paths, size) })
	}
}

func preprocessMatchesPIL(t *testing.T, paths []string, size int) {
	dir := t.TempDir()
	runPIL(t, append([]string{"preprocess", dir + "/", fmt.Sprint(size)}, paths...)...)
	for _, backend := range []struct {
		name string
		dec  *Decoder
	}{{"default", NewDecoder()}, {"stdlib", NewDecoderStdlib()}} {
		t.Run(backend.name, func(t *testing.T) {
			d := backend.dec
			defer d.Close()
			dst := make([]uint8, size*size*3)
			worst, worstName := 0.0, ""
			exact := 0
			for i, p := range paths {
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				want, err := os.ReadFile(fmt.Sprintf("%s/%d.rgb", dir, i))
				if err != nil {
					t.Fatal(err)
				}
				if err := d.Preprocess(data, size, dst); err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				s := compareRGB(dst, want)
				img, _ := d.DecodeForSize(data, dctMinShort(size))
				t.Logf("%-45s decoded %4dx%-4d MAD %.3f max %3d", filepath.Base(p), img.W, img.H, s.mad, s.maxDiff)
				if s.mad > worst {
					worst, worstName = s.mad, filepath.Base(p)
				}
				if s.equal {
					exact++
				}
				if s.mad > 2 {
					t.Errorf("%s: mean absolute difference %.3f > 2", p, s.mad)
				}
				if d.lib != nil {
					hdr, _ := scanJPEGHeader(data)
					if scaledDecode := img.W != hdr.width; !scaledDecode && !s.equal {
						t.Errorf("%s: full-size libjpeg-turbo decode differs from Pillow (max %d): the resize no longer matches Pillow's arithmetic", p, s.maxDiff)
					}
				}
			}
			t.Logf("%s: %d images, %d bit-identical to Pillow, worst MAD %.3f (%s)", d.Backend(), len(paths), exact, worst, worstName)
		})
	}
}

// TestResizeMatchesPILExactly feeds Pillow's own decoded pixels to
// ResizeShortCrop, isolating the resampler from the decoder: every byte
// must equal Pillow's resize and crop, for downscales and upscales.
func TestResizeMatchesPILExactly(t *testing.T) {
	paths := testdata.ImageNetSample(t)
	picks := []string{paths[0], paths[1], paths[7]}
	for _, p := range paths {
		if strings.Contains(p, "Shih-Tzu") || strings.Contains(p, "airship") {
			picks = append(picks, p) // 1280x1024, and a 350x156 grayscale
		}
	}
	dir := t.TempDir()
	for _, size := range []int{256, 224, 97, 700} { // 700 upscales every sample
		runPIL(t, append([]string{"decoded", fmt.Sprintf("%s/%d_", dir, size), fmt.Sprint(size)}, picks...)...)
		for i, p := range picks {
			raw, err := os.ReadFile(fmt.Sprintf("%s/%d_%d.full", dir, size, i))
			if err != nil {
				t.Fatal(err)
			}
			var w, h int
			nl := strings.IndexByte(string(raw), '\n')
			if _, err := fmt.Sscanf(string(raw[:nl]), "%d %d", &w, &h); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(fmt.Sprintf("%s/%d_%d.rgb", dir, size, i))
			if err != nil {
				t.Fatal(err)
			}
			got := make([]uint8, size*size*3)
			ResizeShortCrop(Image{W: w, H: h, Pix: raw[nl+1:]}, size, got)
			if s := compareRGB(got, want); !s.equal {
				t.Errorf("%s at %d: differs from Pillow: MAD %.4f, max %d", filepath.Base(p), size, s.mad, s.maxDiff)
			}
		}
	}
}

// TestWebPMatchesPIL: lossy WebP (common under .jpg names in scraped
// data) is video-range YCbCr; read as full range its contrast was 219/255
// of Pillow's (4.4 levels mean, 24 max).
func TestWebPMatchesPIL(t *testing.T) {
	img, want := decodedBesidePIL(t, "webp", "x.webp", "90")
	s := compareRGB(img.Pix, want)
	t.Logf("%dx%d lossy WebP against Pillow: MAD %.3f, max %d", img.W, img.H, s.mad, s.maxDiff)
	if s.mad > 1 {
		t.Errorf("MAD %.3f > 1", s.mad)
	}
}

// TestGIFMatchesPIL: a GIF's transparent pixels take their palette colour,
// as in Pillow's convert("RGB"), not the transparent black image/gif
// gives them.
func TestGIFMatchesPIL(t *testing.T) {
	img, want := decodedBesidePIL(t, "gif", "x.gif", "17")
	if s := compareRGB(img.Pix, want); s.maxDiff != 0 {
		t.Errorf("transparent GIF against Pillow: MAD %.3f, max %d; want identical (first pixel %v, Pillow %v)", s.mad, s.maxDiff, img.Pix[:3], want[:3])
	}
}

// decodedBesidePIL has pilScript's cmd write a file named name (with arg)
// and Pillow's RGB decode of it, and returns our Go decoders' image of
// that file beside Pillow's pixels.
func decodedBesidePIL(t *testing.T, cmd, name, arg string) (Image, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	runPIL(t, cmd, out, arg)
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(out + ".rgb")
	if err != nil {
		t.Fatal(err)
	}
	img, err := NewDecoderStdlib().DecodeFull(data)
	if err != nil {
		t.Fatal(err)
	}
	return img, want
}

// TestPanoramaMatchesPIL: a 20,000×600 strip, wider than the 16,384 px a
// side once allowed, decodes on both backends, as JPEG and PNG, and its
// centre crop matches Pillow's as the photos' do.
func TestPanoramaMatchesPIL(t *testing.T) {
	const size, w, h = 256, 20000, 600
	out := filepath.Join(t.TempDir(), "pano")
	runPIL(t, "panorama", out, fmt.Sprint(size), fmt.Sprint(w), fmt.Sprint(h))
	for _, ext := range []string{"jpg", "png"} {
		data, err := os.ReadFile(out + "." + ext)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(out + "." + ext + ".rgb")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []*Decoder{NewDecoder(), NewDecoderStdlib()} {
			dst := make([]uint8, size*size*3)
			if err := d.Preprocess(data, size, dst); err != nil {
				t.Fatalf("%s, %s: %v", ext, d.Backend(), err)
			}
			s := compareRGB(dst, want)
			t.Logf("%dx%d %s, %s: MAD %.3f, max %d", w, h, ext, d.Backend(), s.mad, s.maxDiff)
			if s.mad > 2 {
				t.Errorf("%s, %s: mean absolute difference %.3f > 2", ext, d.Backend(), s.mad)
			}
			d.Close()
		}
	}
}
