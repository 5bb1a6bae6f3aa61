package imageio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

type stdCodec struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

var stdCodecs = map[Format]stdCodec{
	FormatJPEG: {jpeg.DecodeConfig, jpeg.Decode},
	FormatPNG:  {png.DecodeConfig, png.Decode},
	FormatGIF:  {gif.DecodeConfig, gif.Decode},
	FormatBMP:  {bmp.DecodeConfig, bmp.Decode},
	FormatWebP: {webp.DecodeConfig, webp.Decode},
	FormatTIFF: {tiff.DecodeConfig, tiff.Decode},
}

// decodeStdlib decodes with the Go decoders: the JPEG fallback and the only
// path for the other formats. Dimensions are checked from the header before
// the decoder allocates, and a panicking decoder becomes a FormatError.
func (d *Decoder) decodeStdlib(ctx context.Context, f Format, data []byte) (img Image, err error) {
	name := f.String()
	defer func() {
		if r := recover(); r != nil {
			img, err = Image{}, &FormatError{Format: name, Reason: fmt.Sprintf("decoder panic: %v", r)}
		}
	}()
	codec, ok := stdCodecs[f]
	if !ok {
		return Image{}, &UnsupportedError{Format: name, Reason: "no decoder"}
	}
	if f == FormatGIF {
		data = gifOpaque(data)
	}
	if f == FormatJPEG {
		// What image/jpeg takes and libjpeg refuses (a missing
		// quantization table, which image/jpeg decodes as flat grey; an
		// overfull Huffman table; a scan too many) is refused here too,
		// before decoding, so both paths skip the same files.
		if _, err := scanJPEGHeader(data); err != nil {
			return Image{}, err
		}
		if r := jpegRefusal(data); r != "" {
			return Image{}, &FormatError{Format: name, Reason: "corrupt JPEG: " + strings.ToLower(r[:1]) + r[1:] + " (libjpeg refuses the file; image/jpeg alone would decode it)"}
		}
	}
	cfg, err := codec.config(bytes.NewReader(data))
	if err != nil {
		return Image{}, stdError(f, data, err)
	}
	if err := checkDims(name, cfg.Width, cfg.Height); err != nil {
		return Image{}, err
	}
	if f == FormatWebP {
		// An extended (VP8X) file's config is its canvas; the frame in
		// it states its own size, which x/image/webp decodes at: a
		// 50-byte file could claim a 16384² frame on a 1×1 canvas.
		if w, h, ok := webpFrameDims(data); ok {
			if err := checkDims(name, w, h); err != nil {
				return Image{}, err
			}
			if w != cfg.Width || h != cfg.Height {
				return Image{}, &FormatError{Format: name, Reason: fmt.Sprintf("the image's frame is %dx%d, its canvas %dx%d", w, h, cfg.Width, cfg.Height)}
			}
		}
	}
	est := stdEstimate(f, data, cfg.Width, cfg.Height, cfg.ColorModel)
	if err := d.reserve(ctx, est, est); err != nil {
		return Image{}, err
	}
	m, err := codec.decode(bytes.NewReader(data))
	if err != nil {
		return Image{}, stdError(f, data, err)
	}
	if f == FormatGIF {
		m = gifOnScreen(m, data, cfg.Width, cfg.Height)
	}
	b := m.Bounds()
	if err := checkDims(name, b.Dx(), b.Dy()); err != nil {
		return Image{}, err
	}
	if f == FormatJPEG {
		// image/jpeg decodes past damage in silence; name it as
		// libjpeg-turbo would (jpegScanWarning).
		warn, refusal := jpegScan(data)
		if refusal != "" {
			return Image{}, &FormatError{Format: name, Reason: "corrupt JPEG: " + refusal + " (libjpeg refuses the file; image/jpeg alone would decode it)"}
		}
		d.warning = warn
	}
	d.buf = fitBytes(d.buf, b.Dx()*b.Dy()*3)
	if f == FormatWebP {
		// VP8's YCbCr is video range (BT.601, Y in 16–235); image/jpeg's
		// is JFIF's full range, which toRGB assumes.
		switch y := m.(type) {
		case *image.NYCbCrA:
			m = &y.YCbCr
		}
		if y, ok := m.(*image.YCbCr); ok && videoYCbCrToRGB(y, d.buf) {
			return Image{W: b.Dx(), H: b.Dy(), Pix: d.buf[:b.Dx()*b.Dy()*3]}, nil
		}
	}
	toRGB(m, d.buf)
	return Image{W: b.Dx(), H: b.Dy(), Pix: d.buf[:b.Dx()*b.Dy()*3]}, nil
}

// stdError maps the Go decoders' errors onto this package's types, with
// the packages' own "jpeg: " style prefixes removed (FormatError adds one).
func stdError(f Format, data []byte, err error) error {
	name := f.String()
	msg := strings.TrimPrefix(err.Error(), name+": ")
	truncated := errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.HasSuffix(msg, "unexpected EOF") // gif wraps with %v
	switch f {
	case FormatJPEG:
		// image/jpeg words a short file as "short Huffman data" or an
		// unexpected EOF depending on where it ends; the markers decide, as
		// on the libjpeg-turbo path.
		h, herr := scanJPEGHeader(data)
		if herr != nil {
			return herr
		}
		if h.arithmetic {
			// image/jpeg says only "unknown marker".
			return &UnsupportedError{Format: name, Reason: "arithmetic-coded JPEG, which Go's image/jpeg does not decode (libjpeg-turbo does: install libturbojpeg0)", Err: err}
		}
		if msg == "unsupported JPEG feature: luma/chroma subsampling ratio" && jpegWholeSampling(data) {
			return &UnsupportedError{Format: name, Reason: "a chroma sampling Go's image/jpeg does not decode (libjpeg-turbo does: install libturbojpeg0)", Err: err}
		}
		// Only image/jpeg's symptoms of the miscount (asked first: the
		// walk reads the whole coded data), and only where libjpeg-turbo
		// reads the whole file, at most warning of a header.
		symptom := msg == "invalid JPEG format: missing 0xff00 sequence" || msg == "invalid JPEG format: bad RST marker"
		if symptom {
			if w, misread := jpegRestartMisread(data); misread {
				// A valid file image/jpeg cannot read: say so, not "corrupt".
				reason := "a JPEG with restart markers in a scan of one of its components (as a progressive file's AC scans all are), which Go's image/jpeg misreads (libjpeg-turbo decodes it: install libturbojpeg0)"
				if w != "" {
					reason += "; libjpeg also warns: " + w
				}
				return &UnsupportedError{Format: name, Reason: reason, Err: err}
			}
		}
		truncated = truncated || !hasEOIAfterScan(data)
	case FormatPNG:
		// A cut IDAT reads as "not enough pixel data"; a PNG always ends
		// with an IEND chunk.
		truncated = truncated || !bytes.Contains(data, []byte("IEND"))
	}
	if truncated {
		return &FormatError{Format: name, Reason: "truncated " + strings.ToUpper(name) + " (" + msg + ")", Err: ErrTruncated}
	}
	var (
		ju jpeg.UnsupportedError
		pu png.UnsupportedError
		tu tiff.UnsupportedError
	)
	if errors.As(err, &ju) || errors.As(err, &pu) || errors.As(err, &tu) || errors.Is(err, bmp.ErrUnsupported) {
		return &UnsupportedError{Format: name, Reason: msg, Err: err}
	}
	return &FormatError{Format: name, Reason: msg, Err: err}
}

// FromImage converts any image.Image to RGB the way DecodeForSize does,
// into a new buffer.
func FromImage(m image.Image) Image {
	b := m.Bounds()
	pix := make([]uint8, b.Dx()*b.Dy()*3)
	toRGB(m, pix)
	return Image{W: b.Dx(), H: b.Dy(), Pix: pix}
}

// toRGB writes m as interleaved RGB into dst (len >= 3*pixels). The common
// decoder output types have direct loops; anything else goes through
// color.NRGBAModel, which drops alpha without darkening, like Pillow.
func toRGB(m image.Image, dst []uint8) {
	b := m.Bounds()
	w, h := b.Dx(), b.Dy()
	switch m := m.(type) {
	case *image.YCbCr:
		if ycbcrToRGB(m, dst) {
			return
		}
	case *image.Gray:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			o := dst[y*w*3 : (y+1)*w*3]
			for x, v := range row {
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
		return
	case *image.Gray16:
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+2*w]
			o := dst[y*w*3 : (y+1)*w*3]
			for x := range w {
				v := row[2*x] // big-endian: the high byte
				o[3*x], o[3*x+1], o[3*x+2] = v, v, v
			}
		}
		return
	case *image.NRGBA:
		copyDropAlpha(m.Pix, m.Stride, w, h, 4, 1, dst)
		return
	case *image.RGBA:
		// Go's decoders produce RGBA only for opaque images, where
		// premultiplication is a no-op.
		copyDropAlpha(m.Pix, m.Stride, w, h, 4, 1, dst)
		return
	case *image.NRGBA64:
		copyDropAlpha(m.Pix, m.Stride, w, h, 8, 2, dst)
		return
	case *image.CMYK:
		// image.CMYK holds ink amounts (the decoder already undid Adobe's
		// inversion).
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			o := dst[y*w*3 : (y+1)*w*3]
			for x := range w {
				q := row[4*x : 4*x+4 : 4*x+4]
				nk := 255 - int32(q[3])
				o[3*x] = uint8(nk - muldiv255(int32(q[0]), nk))
				o[3*x+1] = uint8(nk - muldiv255(int32(q[1]), nk))
				o[3*x+2] = uint8(nk - muldiv255(int32(q[2]), nk))
			}
		}
		return
	case *image.Paletted:
		var pal [256][3]uint8
		for i, c := range m.Palette {
			if i >= len(pal) {
				break
			}
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			pal[i] = [3]uint8{n.R, n.G, n.B}
		}
		for y := range h {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			o := dst[y*w*3 : (y+1)*w*3]
			for x, v := range row {
				p := pal[v]
				o[3*x], o[3*x+1], o[3*x+2] = p[0], p[1], p[2]
			}
		}
		return
	}
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(m.At(x, y)).(color.NRGBA)
			dst[i], dst[i+1], dst[i+2] = c.R, c.G, c.B
			i += 3
		}
	}
}

// copyDropAlpha copies the first sample's high byte of channels 0..2 from
// rows of bpp-byte pixels (sample bytes per channel, big-endian).
func copyDropAlpha(pix []uint8, stride, w, h, bpp, sample int, dst []uint8) {
	for y := range h {
		row := pix[y*stride : y*stride+w*bpp]
		o := dst[y*w*3 : (y+1)*w*3]
		for x := range w {
			p := row[x*bpp:]
			o[3*x], o[3*x+1], o[3*x+2] = p[0], p[sample], p[2*sample]
		}
	}
}

// ycbcrToRGB converts with the JFIF equations in 16.16 fixed point,
// rounded as libjpeg's tables are (color.YCbCrToRGB biases by up to one
// level instead), and nearest-neighbour chroma, which is what image/jpeg's
// planes give; libjpeg's smooth chroma upsampling is the main
// difference between the two backends. It reports false for layouts it does
// not handle, which then take the generic path.
func ycbcrToRGB(m *image.YCbCr, dst []uint8) bool {
	hs, vs, ok := chromaShifts(m)
	if !ok {
		return false
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	cw := (w + (1 << hs) - 1) >> hs
	for y := range h {
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		co := (y >> vs) * m.CStride
		cb := m.Cb[co : co+cw]
		cr := m.Cr[co : co+cw]
		o := dst[y*w*3 : (y+1)*w*3]
		for x, yv := range yrow {
			r, g, b := ycc(yv, cb[x>>hs], cr[x>>hs])
			q := o[3*x : 3*x+3 : 3*x+3]
			q[0], q[1], q[2] = r, g, b
		}
	}
	return true
}

func ycc(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy := int32(y)<<16 + 1<<15
	b1 := int32(cb) - 128
	r1 := int32(cr) - 128
	// 1.402, 0.344136, 0.714136, 1.772 in 16.16.
	return clampFix(yy + 91881*r1), clampFix(yy - 22554*b1 - 46802*r1), clampFix(yy + 116130*b1)
}

func clampFix(v int32) uint8 {
	if uint32(v)&0xff000000 == 0 {
		return uint8(v >> 16)
	}
	return uint8(^(v >> 31))
}

// videoYCbCrToRGB converts video-range (BT.601) YCbCr, as lossy WebP
// stores it, with the standard equations R = 1.164(Y−16) + 1.596(Cr−128),
// G = 1.164(Y−16) − 0.392(Cb−128) − 0.813(Cr−128), B = 1.164(Y−16) +
// 2.017(Cb−128), in 16.16 fixed point, and nearest-neighbour chroma (libwebp
// upsamples chroma smoothly, so the two differ slightly at colour edges).
// Read as full range, the contrast was 219/255 of PIL's (4.4 levels mean).
// It reports false for layouts it does not handle.
func videoYCbCrToRGB(m *image.YCbCr, dst []uint8) bool {
	hs, vs, ok := chromaShifts(m)
	if !ok {
		return false
	}
	const (
		ky  = 76284  // 1.164 × 65536
		krv = 104595 // 1.596
		kgu = 25690  // 0.392
		kgv = 53281  // 0.813
		kbu = 132186 // 2.017
	)
	clip := func(v int32) uint8 {
		v = (v + 1<<15) >> 16
		return uint8(min(max(v, 0), 255))
	}
	w, h := m.Rect.Dx(), m.Rect.Dy()
	for y := range h {
		yrow := m.Y[y*m.YStride : y*m.YStride+w]
		crow := (y >> vs) * m.CStride
		o := dst[y*w*3 : (y+1)*w*3]
		for x, yv := range yrow {
			ci := crow + x>>hs
			yy := ky * (int32(yv) - 16)
			cb, cr := int32(m.Cb[ci])-128, int32(m.Cr[ci])-128
			o[3*x] = clip(yy + krv*cr)
			o[3*x+1] = clip(yy - kgu*cb - kgv*cr)
			o[3*x+2] = clip(yy + kbu*cb)
		}
	}
	return true
}

// chromaShifts gives the right shifts from a pixel's coordinates to its
// chroma sample's, for the layouts the direct conversions handle: a known
// subsampling, and planes that start at the origin.
func chromaShifts(m *image.YCbCr) (hs, vs int, ok bool) {
	if m.Rect.Min != (image.Point{}) {
		return 0, 0, false
	}
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio444:
		return 0, 0, true
	case image.YCbCrSubsampleRatio422:
		return 1, 0, true
	case image.YCbCrSubsampleRatio420:
		return 1, 1, true
	case image.YCbCrSubsampleRatio440:
		return 0, 1, true
	case image.YCbCrSubsampleRatio411:
		return 2, 0, true
	case image.YCbCrSubsampleRatio410:
		return 2, 1, true
	}
	return 0, 0, false
}

// webpFrameDims reads the size the first VP8 or VP8L chunk of a WebP file
// states for its frame, walking the RIFF chunks; ok is false when there is
// none to read.
func webpFrameDims(data []byte) (w, h int, ok bool) {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WEBP" {
		return 0, 0, false
	}
	for p := 12; p+8 <= len(data); {
		fourcc, size := string(data[p:p+4]), int(binary.LittleEndian.Uint32(data[p+4:]))
		body := data[p+8:]
		if size < len(body) {
			body = body[:size]
		}
		switch fourcc {
		case "VP8L":
			if len(body) < 5 || body[0] != 0x2f {
				return 0, 0, false
			}
			v := binary.LittleEndian.Uint32(body[1:])
			return int(v&0x3fff) + 1, int(v>>14&0x3fff) + 1, true
		case "VP8 ":
			if len(body) < 10 || body[3] != 0x9d || body[4] != 0x01 || body[5] != 0x2a {
				return 0, 0, false
			}
			return int(binary.LittleEndian.Uint16(body[6:]) & 0x3fff), int(binary.LittleEndian.Uint16(body[8:]) & 0x3fff), true
		}
		if size > len(data) {
			return 0, 0, false
		}
		p += 8 + size + size&1 // chunks are padded to an even length
	}
	return 0, 0, false
}
