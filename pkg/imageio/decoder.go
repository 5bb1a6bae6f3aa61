package imageio

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unsafe"
)

// Image is 8-bit interleaved RGB, row-major, with stride 3*W.
type Image struct {
	W, H int
	Pix  []uint8
	// SrcW and SrcH are the file's own dimensions when the decoder scaled
	// it down in the DCT domain (W×H is then about SrcW/f × SrcH/f,
	// rounded up); 0 when Pix is full size. ResizeShortCrop takes its
	// geometry from them, so scaling changes only the filter's input.
	SrcW, SrcH int
}

// srcSize is the image's size in the file.
func (m Image) srcSize() (w, h int) {
	if m.SrcW > 0 && m.SrcH > 0 {
		return m.SrcW, m.SrcH
	}
	return m.W, m.H
}

// Decoder decodes image bytes to RGB and preprocesses them. It holds a
// TurboJPEG handle and scratch buffers, so it is not safe for concurrent
// use: make one per worker goroutine. Its memory grows to fit the largest
// image it has decoded and is reused. The zero Decoder is valid and uses the
// Go decoders only.
type Decoder struct {
	lib     *turboLib // nil: stdlib decoders only
	handle  uintptr
	cleanup runtime.Cleanup
	// hdr holds tjDecompressHeader3's out-parameters: width, height,
	// subsampling, colourspace. Kept here so the calls do not allocate.
	hdr     [4]int32
	buf     []uint8
	rs      resizer
	warning string
	// afterWarning: the last TurboJPEG failure followed a warning.
	afterWarning bool
	res          reservation // the decode budget this call holds
}

// dctScaleMargin: Preprocess lets DCT scaling go only as far as leaves the
// shorter side at least twice the output size, so the resize that follows
// still downsamples by 2 or more. Measured on the sample against Pillow's
// full-size decode: with a margin of 1, 3 of 11 scaled images missed the
// 2-level tolerance (worst 6.9 levels, a fire engine's grille); with 1.5 none
// did at size 256 or 224 (worst 1.49); 1.4 had one at 4.0; with 2 the worst
// was 0.58. The m/8 factors (7/8, 3/4, ...) were far worse (MAD up to 21).
const dctScaleMargin = 2

// dctScaleFloor is the least shorter side Preprocess lets DCT scaling leave,
// whatever the output size. At small sizes twice the output is a block
// average of a few pixels, which strays from Pillow's wide triangle: at
// 32 px the sample's 500×333 photos missed the 2-level tolerance by up to
// 3.0 levels. From 256 up, ordinary ImageNet photos decode at full size and
// their output is Pillow's bit for bit.
const dctScaleFloor = 256

// dctMinShort is Preprocess's minShort for an output size.
func dctMinShort(size int) int { return max(dctScaleMargin*size, dctScaleFloor) }

// NewDecoder returns a decoder using libjpeg-turbo for JPEG when the library
// loads (see Backend) and the Go standard library otherwise. Close it to
// release the TurboJPEG handle promptly; a forgotten one is released when
// the Decoder is garbage collected.
func NewDecoder() *Decoder {
	d := &Decoder{}
	lib, err := loadTurbo()
	if err != nil {
		return d
	}
	h := lib.initDecompress()
	if h == 0 {
		return d
	}
	d.lib, d.handle = lib, h
	d.cleanup = runtime.AddCleanup(d, func(h uintptr) { lib.destroy(h) }, h)
	return d
}

// renewHandle replaces the TurboJPEG handle with a fresh one.
func (d *Decoder) renewHandle() {
	if d.handle == 0 {
		return
	}
	lib := d.lib
	d.cleanup.Stop()
	lib.destroy(d.handle)
	d.handle = lib.initDecompress()
	if d.handle == 0 {
		d.lib = nil // fall back to the Go decoders rather than use no handle
		return
	}
	d.cleanup = runtime.AddCleanup(d, func(h uintptr) { lib.destroy(h) }, d.handle)
}

// NewDecoderStdlib returns a decoder that never uses libjpeg-turbo. It is
// the fallback NewDecoder gives when the library is missing; tests and
// benchmarks use it to compare the two paths on one machine.
func NewDecoderStdlib() *Decoder { return &Decoder{} }

// Backend reports which JPEG decoder this Decoder uses.
func (d *Decoder) Backend() string {
	if d.lib == nil {
		return "stdlib image/jpeg"
	}
	return "libjpeg-turbo (" + d.lib.path + ")"
}

// Close releases the TurboJPEG handle. A closed Decoder still works, with
// the Go decoders only.
func (d *Decoder) Close() error {
	if d.handle != 0 {
		d.cleanup.Stop()
		rc := d.lib.destroy(d.handle)
		d.handle, d.lib = 0, nil
		if rc != 0 {
			return fmt.Errorf("imageio: tjDestroy failed (%d)", rc)
		}
	}
	return nil
}

// Warning returns the libjpeg-turbo warning from the last successful JPEG
// decode, or "". libjpeg reports recoverable damage ("Corrupt JPEG data:
// 18 extraneous bytes before marker 0xd9") as warnings and still produces
// the whole image, as Pillow does, so such files are decoded and the
// warning is only kept for reports.
func (d *Decoder) Warning() string { return d.warning }

// DecodeFull decodes data at full resolution. See DecodeForSize.
func (d *Decoder) DecodeFull(data []byte) (Image, error) { return d.DecodeForSize(data, 0) }

// DecodeForSize decodes data, recognised by content and not by name (JPEG
// baseline, progressive, or arithmetic with libjpeg-turbo; grayscale, YCbCr, RGB, CMYK, YCCK; PNG,
// GIF's first frame, BMP, WebP, TIFF), into RGB. Grayscale is replicated,
// alpha is dropped as Pillow's convert("RGB") does, 16-bit samples keep
// their high byte, and CMYK is converted with Pillow's formula.
//
// minShort is a hint. With libjpeg-turbo, a JPEG is decoded with DCT-domain
// scaling by the smallest power-of-two factor (1/2, 1/4, 1/8) whose scaled
// shorter side is still at least minShort. That skips most of the IDCT and
// colour conversion for large photos; the caller's resize does the rest.
// minShort <= 0 means full size. Other formats and the stdlib path always
// decode at full size.
//
// The returned Image aliases the Decoder's buffer and is valid until the next
// call. Errors are *FormatError (empty, truncated, corrupt, unknown content)
// or *UnsupportedError; ingest reports and skips both.
func (d *Decoder) DecodeForSize(data []byte, minShort int) (Image, error) {
	defer d.endDecode()
	return d.decode(context.Background(), data, minShort)
}

// endDecode gives back the decode budget a large decode reserved, and
// with it the decode buffer: kept for the next image, it would hold
// hundreds of megabytes outside the budget while other workers decode
// (a returned Image that aliases it stays valid: the caller's reference
// keeps it).
func (d *Decoder) endDecode() {
	if d.res.n > 0 && cap(d.buf) >= smallDecode {
		d.buf = nil
	}
	d.res.release()
}

// decode is DecodeForSize leaving the decode budget reserved (d.res), for
// Preprocess to hold through the resize that reads the pixels; a wait for
// the budget gives up when ctx ends.
func (d *Decoder) decode(ctx context.Context, data []byte, minShort int) (img Image, err error) {
	d.warning = ""
	f := Sniff(data)
	switch {
	case f == FormatJPEG && d.handle != 0:
		return d.decodeTurbo(ctx, data, minShort)
	case f == FormatUnknown:
		return Image{}, unknownFormatError(data)
	}
	return d.decodeStdlib(ctx, f, data)
}

// Preprocess is the ingest hot path: decode data and ResizeShortCrop it to
// size x size into dst, which needs size*size*3 bytes. JPEGs are DCT-scaled
// only down to twice size, and 256, on the shorter side (dctMinShort), which
// keeps the result within a level or two of Pillow's full-size decode.
func (d *Decoder) Preprocess(data []byte, size int, dst []uint8) error {
	return d.PreprocessContext(context.Background(), data, size, dst)
}

// PreprocessContext is Preprocess whose wait for the decode budget (a
// large image while others hold it: SetDecodeBudget) gives up when ctx
// ends, returning an error that wraps ctx's.
func (d *Decoder) PreprocessContext(ctx context.Context, data []byte, size int, dst []uint8) error {
	if size < 1 || len(dst) < size*size*3 {
		return fmt.Errorf("imageio: Preprocess: size %d needs a %d-byte destination, got %d", size, max(size, 0)*max(size, 0)*3, len(dst))
	}
	// Registered first: a panic anywhere below must not keep the budget.
	defer d.endDecode()
	img, err := d.decode(ctx, data, dctMinShort(size))
	if err != nil {
		return err
	}
	d.rs.resizeShortCrop(img, size, dst)
	return nil
}

// reserve takes the decode budget for an estimate of n bytes, goHeap of
// them Go memory, into d.res.
func (d *Decoder) reserve(ctx context.Context, n, goHeap int64) error {
	r, err := budget.Load().reserve(ctx, n, goHeap)
	if err != nil {
		return fmt.Errorf("imageio: waiting for the decode budget: %w", err)
	}
	d.res = r
	return nil
}

// decodeTurbo decodes a JPEG with libjpeg-turbo. A file libjpeg-turbo
// rejects is reported, not retried with image/jpeg, so the two backends
// fail on the same files for the same reasons.
func (d *Decoder) decodeTurbo(ctx context.Context, data []byte, minShort int) (img Image, err error) {
	// TurboJPEG keeps its error text in thread-local storage, so the call
	// and the read of its message must happen on one OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Every file gets a handle of its own. A handle keeps the previous
	// file's quantization and Huffman tables (libjpeg's "abbreviated
	// datastream" rule), so a file lacking its own decoded with whatever
	// file its worker had decoded before: pixels that depended on the
	// order of the work, where a fresh handle refuses a missing
	// quantization table and takes the standard Huffman tables, as PIL
	// does. A handle that failed part-way also kept state that broke the
	// next file (seen: a valid JPEG then failed with "missing SOS marker"
	// after a file truncated in its header). A fresh handle costs
	// microseconds against the milliseconds of a decode.
	defer d.renewHandle()
	lib := d.lib
	src := unsafe.Pointer(unsafe.SliceData(data))
	d.hdr = [4]int32{}
	rc := lib.decompressHeader3(d.handle, src, uint64(len(data)), &d.hdr[0], &d.hdr[1], &d.hdr[2], &d.hdr[3])
	runtime.KeepAlive(data)
	w, h, cs := int(d.hdr[0]), int(d.hdr[1]), d.hdr[3]
	// TurboJPEG 2.1 reads a datastream that ends before its frame header
	// as tables-only: success with zero dimensions.
	if rc != 0 || w <= 0 || h <= 0 {
		if msg, ok := d.turboWarning(); !ok || w <= 0 || h <= 0 {
			// TurboJPEG 2.x's header call refuses a chroma sampling it
			// has no TJSAMP constant for (3x2, or 2x1 luma with 1x2
			// chroma), having filled in the size and colour space
			// first; its decode call never asks, and libjpeg decodes
			// every whole-number ratio, as Pillow does.
			if err := d.turboFatal(data, msg, "reading header"); !errors.Is(err, errUnnamedSampling) || w <= 0 || h <= 0 {
				return Image{}, err
			}
		}
	}
	if err := checkDims("jpeg", w, h); err != nil {
		return Image{}, err
	}
	sw, sh := w, h
	if minShort > 0 {
		short := min(w, h)
		for _, f := range lib.downscales {
			if f.num != 1 {
				continue // the m/8 factors stray too far from Pillow (dctScaleMargin)
			}
			if scaled(short, f) < minShort {
				break
			}
			sw, sh = scaled(w, f), scaled(h, f)
		}
	}
	cmyk := cs == tjcsCMYK || cs == tjcsYCCK
	pf, bpp := int32(tjpfRGB), 3
	if cmyk {
		// libjpeg cannot convert CMYK to RGB; take the inks and convert here.
		pf, bpp = tjpfCMYK, 4
	}
	// A wait for the budget must not hold this OS thread: the locked
	// part is only each TurboJPEG call and the read of its message.
	runtime.UnlockOSThread()
	err = d.reserve(ctx, turboEstimate(data, w, h, sw, sh, bpp), int64(sw)*int64(sh)*int64(bpp))
	runtime.LockOSThread()
	if err != nil {
		return Image{}, err
	}
	d.buf = fitBytes(d.buf, sw*sh*bpp)
	rc = lib.decompress2(d.handle, src, uint64(len(data)), unsafe.Pointer(unsafe.SliceData(d.buf)),
		int32(sw), 0, int32(sh), pf, tjflagLimitScans)
	runtime.KeepAlive(data)
	if rc != 0 {
		msg, ok := d.turboWarning()
		if !ok {
			return Image{}, d.turboFatal(data, msg, "decoding")
		}
		if strings.HasPrefix(msg, "Premature end of JPEG file") || !hasEOIAfterScan(data) {
			return Image{}, &FormatError{Format: "jpeg", Reason: "truncated JPEG (" + msg + ")", Err: ErrTruncated}
		}
		d.warning = msg
	}
	if cmyk {
		adobeCMYKToRGB(d.buf, sw*sh)
	}
	img = Image{W: sw, H: sh, Pix: d.buf[:sw*sh*3]}
	if sw != w || sh != h {
		img.SrcW, img.SrcH = w, h
	}
	return img, nil
}

// turboEstimate is what libjpeg-turbo holds to decode a w×h JPEG into an
// sw×sh buffer of bpp bytes a pixel: that buffer, and for a progressive
// file (or an arithmetic-coded one, which may be multi-scan too) the whole
// image's DCT coefficients at full size (2 bytes a sample, at most one
// sample a pixel per component), which DCT scaling does not shrink: a
// 10,000² progressive JPEG holds about 600 MB.
func turboEstimate(data []byte, w, h, sw, sh, bpp int) int64 {
	est := int64(sw) * int64(sh) * int64(bpp)
	if int64(w)*int64(h)*6 < smallDecode {
		return est // too small to matter whatever its kind: skip the scan
	}
	if hd, err := scanJPEGHeader(data); err == nil && (hd.progressive || hd.arithmetic) {
		est += int64(w) * int64(h) * int64(max(hd.components, 1)) * 2
	}
	return est
}

// libjpegWarnings are the starts of libjpeg's warning messages (JWRN_* in
// jerror.h). TurboJPEG 2.x reports TJERR_WARNING for any failure that
// follows a warning, fatal or not, so the text decides.
var libjpegWarnings = []string{
	"Corrupt JPEG data",
	"Premature end of JPEG file",
	"Inconsistent progression sequence",
	"Unknown Adobe color transform code",
	"Warning: unknown JFIF revision number",
	"Invalid SOS parameters for sequential JPEG",
}

// turboWarning returns the handle's message and whether it is only a
// warning, after which the image is complete. d.afterWarning records
// whether a warning came before a fatal message (TJERR_WARNING with a
// fatal text), for turboFatal.
func (d *Decoder) turboWarning() (string, bool) {
	msg := d.lib.getErrorStr2(d.handle)
	d.afterWarning = false
	if d.lib.getErrorCode(d.handle) != tjerrWarning {
		return msg, false
	}
	d.afterWarning = true
	for _, p := range libjpegWarnings {
		if strings.HasPrefix(msg, p) {
			d.afterWarning = false
			return msg, true
		}
	}
	return msg, false
}

// errUnnamedSampling marks TurboJPEG's refusal of a chroma sampling it has
// no name for: decodeTurbo then decodes without its header call.
var errUnnamedSampling = errors.New("a chroma sampling TurboJPEG has no name for")

// turboFatal classifies a failure. libjpeg reports a file cut inside its
// header as "no image" or a marker error after a premature-end warning, so
// the header scan decides "truncated" first.
func (d *Decoder) turboFatal(data []byte, msg, stage string) error {
	if _, err := scanJPEGHeader(data); err != nil {
		return err
	}
	if strings.HasPrefix(msg, "Premature end of JPEG file") || !hasEOIAfterScan(data) {
		return &FormatError{Format: "jpeg", Reason: "truncated JPEG (" + msg + ")", Err: ErrTruncated}
	}
	// TurboJPEG 2.1 refuses, in its header call, a sampling it has no
	// name for (2x1 luma with 1x2 chroma, say), which its decode call
	// reads all the same (decodeTurbo).
	// libjpeg says "Unsupported marker type 0xNN" of any marker it does not
	// handle. Below 0xC0 no marker is defined at all: damage, as
	// image/jpeg calls the same file. From 0xC0 up the code is a real
	// marker (hierarchical DHP and EXP, the reserved JPGn): unsupported,
	// as image/jpeg says too.
	if code, ok := unsupportedMarker(msg); ok && code < 0xC0 {
		return &FormatError{Format: "jpeg", Reason: "corrupt JPEG (" + msg + ", libjpeg-turbo, " + stage + ")"}
	}
	if strings.Contains(msg, "Could not determine subsampling type") {
		return &UnsupportedError{Format: "jpeg", Reason: msg + " (libjpeg-turbo, " + stage + ")", Err: errUnnamedSampling}
	}
	if d.afterWarning && stage == "decoding" {
		// A marker libjpeg does not handle, met after it warned of
		// damage in the coded data (two bytes flipped into 0xFF 0xC5,
		// say): the damage, not the marker, is the story, as image/jpeg
		// says of the same file.
		return &FormatError{Format: "jpeg", Reason: "corrupt JPEG (" + msg + ", after a warning of damage; libjpeg-turbo, " + stage + ")"}
	}
	if strings.Contains(msg, "Fractional sampling not implemented") {
		// A ratio that is no whole number (3x2 luma, 2x1 chroma):
		// libjpeg's upsampler has no path for it, nor has image/jpeg,
		// whose ratios are all whole ones libjpeg decodes.
		return &UnsupportedError{Format: "jpeg", Reason: "a fractional chroma sampling, which neither libjpeg nor image/jpeg decodes (" + msg + ", libjpeg-turbo, " + stage + ")"}
	}
	if strings.Contains(msg, "Unsupported") || strings.Contains(msg, "not supported") {
		return &UnsupportedError{Format: "jpeg", Reason: msg + " (libjpeg-turbo, " + stage + ")"}
	}
	return &FormatError{Format: "jpeg", Reason: msg + " (libjpeg-turbo, " + stage + ")"}
}

// unsupportedMarker reads the code from libjpeg's "Unsupported marker
// type 0x%02x".
func unsupportedMarker(msg string) (int, bool) {
	hex, ok := strings.CutPrefix(msg, "Unsupported marker type 0x")
	if !ok || len(hex) < 2 {
		return 0, false
	}
	code, err := strconv.ParseUint(hex[:2], 16, 8)
	return int(code), err == nil
}

// adobeCMYKToRGB converts n pixels of libjpeg's CMYK output, which for the
// Adobe files that make up practically all CMYK JPEGs stores 255 for no ink,
// into RGB in place (the write index never passes the read index).
// Like Pillow, every 4-component JPEG is taken to use the Adobe polarity.
// The arithmetic is Pillow's cmyk2rgb: with nk = 255-k,
// out = nk - round(c*nk/255), using its MULDIV255 rounding.
func adobeCMYKToRGB(p []uint8, n int) {
	for i := range n {
		q := p[i*4 : i*4+4 : i*4+4]
		nk := int32(q[3]) // inverted storage: this is 255 - k
		c, m, y := 255-int32(q[0]), 255-int32(q[1]), 255-int32(q[2])
		o := p[i*3 : i*3+3 : i*3+3]
		o[0] = uint8(nk - muldiv255(c, nk))
		o[1] = uint8(nk - muldiv255(m, nk))
		o[2] = uint8(nk - muldiv255(y, nk))
	}
}

// muldiv255 is round(a*b/255) for bytes, exact in this integer form.
func muldiv255(a, b int32) int32 {
	t := a*b + 128
	return ((t >> 8) + t) >> 8
}

// fitBytes is growBytes for the decode buffer, which also gives memory
// back: one 40-megapixel photo must not pin 120 MB per worker for the
// rest of a run of ordinary 500x375 images.
func fitBytes(s []uint8, n int) []uint8 {
	if c := cap(s); c >= n && (c <= 64<<20 || n >= c/4) {
		return s[:n]
	}
	return make([]uint8, n)
}
