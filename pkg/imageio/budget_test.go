package imageio

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// bigPNG is a w×h NRGBA PNG with a pattern, small on disk and large
// decoded: the shape of file the decode budget is for.
func bigPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x / 64), uint8(y / 64), uint8((x + y) / 128), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func withBudget(t *testing.T, bytes int64) *decodeBudget {
	t.Helper()
	SetDecodeBudget(bytes)
	t.Cleanup(func() { SetDecodeBudget(DefaultDecodeBudget) })
	return budget.Load()
}

// TestDecodeBudget: large decodes on several goroutines never hold more
// than the budget together, one larger than the budget still runs (alone),
// every reservation is given back, errors included, and the pixels are
// the same as without a budget.
func TestDecodeBudget(t *testing.T) {
	big := bigPNG(t, 2400, 2000) // 4.8 MP NRGBA: (4+3)·4.8M = 33.6 MB, over smallDecode
	est := int64(2400*2000) * stdBytesPerPixel(color.NRGBAModel)
	if est < smallDecode {
		t.Fatalf("the fixture's estimate %d is under smallDecode: the test would test nothing", est)
	}
	const size = 64
	want := make([]byte, size*size*3)
	withBudget(t, 0)
	if err := NewDecoderStdlib().Preprocess(big, size, want); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		budget  int64
		maxPeak int64
	}{
		{"one at a time", est + est/2, est},
		{"two at a time", 2 * est, 2 * est},
		{"each larger than the budget", est / 3, est / 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := withBudget(t, tc.budget)
			var wg sync.WaitGroup
			errs := make([]error, 4)
			outs := make([][]byte, 4)
			for i := range 4 {
				wg.Go(func() {
					d := NewDecoderStdlib()
					outs[i] = make([]byte, size*size*3)
					for range 2 {
						if err := d.Preprocess(big, size, outs[i]); err != nil {
							errs[i] = err
							return
						}
					}
					// A failing decode gives its reservation back too.
					if _, err := d.DecodeForSize(big[:len(big)/3], 0); err == nil {
						errs[i] = errTest("a truncated PNG decoded")
					}
				})
			}
			waitOrFail(t, &wg)
			for i := range 4 {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				if !slices.Equal(outs[i], want) {
					t.Fatalf("goroutine %d: pixels differ from the unbudgeted decode", i)
				}
			}
			// At least one image is reserved whole (or the whole budget);
			// more than the budget never is. How many overlap below that
			// is up to the scheduler.
			if b.peak < min(est, tc.budget) || b.peak > tc.maxPeak {
				t.Errorf("peak reserved %d, want %d to %d (budget %d, one image %d)", b.peak, min(est, tc.budget), tc.maxPeak, tc.budget, est)
			}
			if b.used != 0 {
				t.Errorf("%d bytes still reserved after every decode returned", b.used)
			}
		})
	}
	// Ordinary images do not touch the budget.
	b := withBudget(t, est)
	small := bigPNG(t, 500, 375)
	d := NewDecoderStdlib()
	if err := d.Preprocess(small, size, want); err != nil {
		t.Fatal(err)
	}
	if b.peak != 0 {
		t.Errorf("a 500×375 image reserved %d bytes", b.peak)
	}
}

// TestDecodeBudgetTurbo: libjpeg-turbo's decodes reserve what they
// allocate, the DCT-scaled size, and give it back.
func TestDecodeBudgetTurbo(t *testing.T) {
	d := NewDecoder()
	defer d.Close()
	if d.lib == nil {
		t.Skip("libjpeg-turbo is not installed: the Go decoders' budget is TestDecodeBudget's")
	}
	m := image.NewRGBA(image.Rect(0, 0, 4000, 3000))
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 50}); err != nil {
		t.Fatal(err)
	}
	b := withBudget(t, 1<<30)
	if _, err := d.DecodeFull(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if want := int64(4000 * 3000 * 3); b.peak != want || b.used != 0 {
		t.Errorf("a full 4000×3000 decode: peak %d, left %d; want %d, 0", b.peak, b.used, want)
	}
	// Scaled to 1/8 for a 256 px output it is small, and reserves nothing.
	b = withBudget(t, 1<<30)
	if err := d.Preprocess(buf.Bytes(), 64, make([]byte, 64*64*3)); err != nil {
		t.Fatal(err)
	}
	if b.peak != 0 {
		t.Errorf("a DCT-scaled decode reserved %d bytes", b.peak)
	}
}

// waitOrFail fails the test, rather than hanging it, when a reservation
// is never given back and a decode waits for it for ever.
func waitOrFail(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("decodes still waiting after a minute: a reservation was not given back")
	}
}

// A decode waiting its turn gives up when its context ends, holding
// nothing, with an error that wraps the context's.
func TestDecodeBudgetWaitIsCancellable(t *testing.T) {
	big := bigPNG(t, 2400, 2000)
	b := withBudget(t, 64<<20)
	// Hold the whole budget, as another worker's huge decode would.
	held, err := b.reserve(context.Background(), 64<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- NewDecoderStdlib().PreprocessContext(ctx, big, 64, make([]byte, 64*64*3)) }()
	select {
	case err := <-errc:
		t.Fatalf("the decode did not wait for the budget: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled wait: %v, want an error wrapping context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled decode is still waiting")
	}
	held.release()
	if b.used != 0 {
		t.Errorf("%d bytes reserved after the cancelled wait and the release", b.used)
	}
	// The budget is whole again: the same decode now runs.
	if err := NewDecoderStdlib().PreprocessContext(context.Background(), big, 64, make([]byte, 64*64*3)); err != nil {
		t.Fatal(err)
	}
}

// A JPEG TurboJPEG's header call refuses for its sampling is decoded
// without it; a stopped run ends its wait for the budget, and that is
// the stop's error, never an unsupported file (ingest would record it as
// skipped, and seal its shard without it).
func TestUnnamedSamplingWaitIsCancellable(t *testing.T) {
	small, err := os.ReadFile(filepath.Join("testdata", "sampling_4x2_32x24.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	big := withJPEGDims(t, small, 4000, 3000) // its estimate needs the budget
	d := NewDecoder()
	if d.lib == nil {
		t.Skip("libjpeg-turbo is not loaded: no header call to step round")
	}
	b := withBudget(t, 64<<20)
	held, err := b.reserve(context.Background(), 64<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// At 1,500 px no DCT scaling applies: the decode needs 36 MB.
	err = d.PreprocessContext(ctx, big, 1500, make([]byte, 1500*1500*3))
	var u *UnsupportedError
	if !errors.Is(err, context.Canceled) || errors.As(err, &u) {
		t.Fatalf("a stopped wait: %T %v, want the stop's error and no UnsupportedError", err, err)
	}
}

// The Go decoders' estimate counts what some kinds hold besides the
// image and its copy: a progressive JPEG's coefficients, an interlaced
// PNG's passes.
func TestStdEstimate(t *testing.T) {
	jpegHeader := func(sof byte) []byte {
		return []byte{0xFF, 0xD8,
			0xFF, sof, 0, 17, 8, 0x0B, 0xB8, 0x0F, 0xA0, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, // 4000×3000
			0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0, 0xFF, 0xD9}
	}
	png := func(interlace byte) []byte {
		b := make([]byte, 33)
		copy(b, "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
		b[28] = interlace
		return b
	}
	const px = 4000 * 3000
	for _, tc := range []struct {
		name string
		f    Format
		data []byte
		m    color.Model
		want int64
	}{
		{"baseline JPEG", FormatJPEG, jpegHeader(0xC0), color.YCbCrModel, px * 7},
		{"progressive JPEG", FormatJPEG, jpegHeader(0xC2), color.YCbCrModel, px*7 + px*3*4},
		{"PNG", FormatPNG, png(0), color.RGBAModel, px * 7},
		{"interlaced PNG", FormatPNG, png(1), color.RGBAModel, px*7 + px*4},
		{"interlaced 16-bit PNG", FormatPNG, png(1), color.RGBA64Model, px*11 + px*8},
	} {
		if got := stdEstimate(tc.f, tc.data, 4000, 3000, tc.m); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	// A small progressive JPEG skips the header scan: its extra is noise.
	if got := stdEstimate(FormatJPEG, jpegHeader(0xC2), 400, 300, color.YCbCrModel); got != 400*300*7 {
		t.Errorf("small progressive JPEG: %d", got)
	}
}

type errTest string

func (e errTest) Error() string { return string(e) }

// TestTurboEstimate: a progressive JPEG's estimate counts its full-size
// coefficients, which DCT scaling leaves whole; a baseline one's only the
// output buffer; a small one skips the header scan.
func TestTurboEstimate(t *testing.T) {
	header := func(sof byte, w, h int) []byte {
		return []byte{0xFF, 0xD8,
			0xFF, sof, 0, 17, 8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1,
			0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0,
			0x12, 0x34, 0xFF, 0xD9}
	}
	for _, tc := range []struct {
		name   string
		sof    byte
		w, h   int
		sw, sh int
		want   int64
	}{
		{"baseline, scaled", 0xC0, 10000, 10000, 1250, 1250, 1250 * 1250 * 3},
		{"progressive, scaled", 0xC2, 10000, 10000, 1250, 1250, 1250*1250*3 + 10000*10000*3*2},
		{"arithmetic", 0xC9, 10000, 10000, 10000, 10000, 10000*10000*3 + 10000*10000*3*2},
		{"progressive, small", 0xC2, 1000, 1000, 1000, 1000, 1000 * 1000 * 3},
	} {
		if got := turboEstimate(header(tc.sof, tc.w, tc.h), tc.w, tc.h, tc.sw, tc.sh, 3); got != tc.want {
			t.Errorf("%s: estimate %d, want %d", tc.name, got, tc.want)
		}
	}
}
