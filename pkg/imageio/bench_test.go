package imageio

import (
	"os"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/testdata"
)

// loadSample reads every sample JPEG once; benchmarks cycle through them so
// the figures reflect ImageNet's mix of sizes, not one lucky file.
func loadSample(b *testing.B) (files [][]byte, total int64) {
	b.Helper()
	for _, p := range testdata.ImageNetSample(b) {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, data)
		total += int64(len(data))
	}
	return files, total
}

// benchImages runs f over the sample round-robin and reports img/s (wall)
// and cpu-ns/op (this thread's CPU time, steadier on a shared machine).
func benchImages(b *testing.B, f func(data []byte) error) {
	files, total := loadSample(b)
	b.SetBytes(total / int64(len(files)))
	b.ReportAllocs()
	c := startCPU(b)
	i := 0
	for b.Loop() {
		if err := f(files[i%len(files)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	c.report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "img/s")
}

func benchDecoders(b *testing.B) map[string]*Decoder {
	ds := map[string]*Decoder{"stdlib": NewDecoderStdlib()}
	if d := NewDecoder(); d.lib != nil {
		ds["turbo"] = d
	} else {
		b.Logf("libjpeg-turbo not loaded: %s", Backend())
	}
	b.Cleanup(func() {
		for _, d := range ds {
			d.Close()
		}
	})
	return ds
}

// BenchmarkDecodeFull is the decode-only ceiling: full size, no scaling.
func BenchmarkDecodeFull(b *testing.B) {
	for _, name := range []string{"turbo", "stdlib"} {
		b.Run(name, func(b *testing.B) {
			d, ok := benchDecoders(b)[name]
			if !ok {
				b.Skip("backend not available")
			}
			benchImages(b, func(data []byte) error { _, err := d.DecodeFull(data); return err })
		})
	}
}

// BenchmarkPreprocess is ingest's per-image work before compression:
// decode (DCT-scaled where allowed) + resize + centre crop to 256.
func BenchmarkPreprocess(b *testing.B) {
	for _, name := range []string{"turbo", "stdlib"} {
		b.Run(name, func(b *testing.B) {
			d, ok := benchDecoders(b)[name]
			if !ok {
				b.Skip("backend not available")
			}
			dst := make([]uint8, 256*256*3)
			benchImages(b, func(data []byte) error { return d.Preprocess(data, 256, dst) })
		})
	}
}

// BenchmarkResizeSample is the resize alone on the sample's decoded pixels.
func BenchmarkResizeSample(b *testing.B) {
	files, _ := loadSample(b)
	d := NewDecoder()
	defer d.Close()
	var imgs []Image
	var total int64
	for _, f := range files {
		img, err := d.DecodeForSize(f, dctScaleMargin*256)
		if err != nil {
			b.Fatal(err)
		}
		imgs = append(imgs, Image{W: img.W, H: img.H, Pix: append([]uint8(nil), img.Pix...)})
		total += int64(len(img.Pix))
	}
	dst := make([]uint8, 256*256*3)
	r := new(resizer)
	b.SetBytes(total / int64(len(imgs)))
	b.ReportAllocs()
	c := startCPU(b)
	i := 0
	for b.Loop() {
		r.resizeShortCrop(imgs[i%len(imgs)], 256, dst)
		i++
	}
	c.report(b)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "img/s")
}

// BenchmarkRenewHandle is the cost of the fresh TurboJPEG handle each
// file gets (decodeTurbo), against a decode's milliseconds.
func BenchmarkRenewHandle(b *testing.B) {
	d := NewDecoder()
	defer d.Close()
	if d.handle == 0 {
		b.Skip("no libturbojpeg")
	}
	b.ReportAllocs()
	for b.Loop() {
		d.renewHandle()
	}
}
