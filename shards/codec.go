package shards

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/klauspost/compress/huff0"
	"github.com/klauspost/compress/zstd"
)

// Codec says how a record's pixels are stored. Each record carries its own
// codec byte, so a reader handles shards written by any version and the
// format can gain codecs without a version bump.
type Codec uint8

const (
	// CodecZstd is zstd over the raw interleaved RGB bytes. It decodes
	// fastest and compresses worst (1.12:1 on real photos).
	CodecZstd Codec = 0
	// CodecGradZstd predicts each byte from its neighbours (left + up −
	// up-left, per channel), subtracts the green residual from the red and
	// blue residuals, lays the residuals out as three planes and then runs
	// zstd. Measured on 200 real ImageNet crops at 256×256 it stores 0.56
	// of the raw bytes at zstd's fastest level (1.79:1), where plain zstd
	// stores 0.89 and the gradient predictor alone 0.67 (FORMAT.md).
	CodecGradZstd Codec = 1
	// CodecGradHuff has grad-zstd's residual planes, each entropy-coded on
	// its own with a static Huffman code (huff0, the literal coder inside
	// zstd) instead of by zstd. Each plane gets a code fitted to its own
	// statistics, where zstd shares one across its 128 KiB blocks, and the
	// decoder skips zstd's sequence stage, which on residuals buys almost
	// nothing. On the same 200 photos it stores 0.469 of raw (2.13:1), 16%
	// less than grad-zstd, encodes 2.2–2.9× and decodes 1.1–1.3× as fast
	// (FORMAT.md). Ingest writes it by default.
	CodecGradHuff Codec = 2
)

func (c Codec) String() string {
	switch c {
	case CodecZstd:
		return "zstd"
	case CodecGradZstd:
		return "grad-zstd"
	case CodecGradHuff:
		return "grad-huff"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// ParseCodec is the inverse of String, for flags.
func ParseCodec(s string) (Codec, error) {
	switch s {
	case "zstd":
		return CodecZstd, nil
	case "grad-zstd":
		return CodecGradZstd, nil
	case "grad-huff", "grad":
		return CodecGradHuff, nil
	}
	return 0, fmt.Errorf("unknown codec %q (want grad-huff, grad-zstd or zstd)", s)
}

// Encoder compresses pixels. It holds a zstd encoder and scratch space, so
// make one per goroutine; it is not safe for concurrent use.
type Encoder struct {
	codec   Codec
	zenc    *zstd.Encoder
	huff    huff0.Scratch
	scratch []byte
}

// NewEncoder returns an Encoder for codec. zstd runs at its fastest level:
// the predictor does the heavy lifting, and the default level costs about
// 2.5× the encode time for 9% fewer bytes (FORMAT.md), which ingest would pay
// on every image.
func NewEncoder(codec Codec) (*Encoder, error) {
	if codec != CodecZstd && codec != CodecGradZstd && codec != CodecGradHuff {
		return nil, fmt.Errorf("shards: cannot encode with %v", codec)
	}
	z, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), // records carry their own CRC-32C
		zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	// Every block carries its own table: records must decode alone.
	return &Encoder{codec: codec, zenc: z, huff: huff0.Scratch{Reuse: huff0.ReusePolicyNone}}, nil
}

// Codec reports the codec this encoder writes.
func (e *Encoder) Codec() Codec { return e.codec }

// Encode appends the compressed form of pix (w×h interleaved RGB) to dst.
func (e *Encoder) Encode(dst, pix []byte, w, h int) ([]byte, error) {
	if len(pix) != w*h*3 {
		return dst, fmt.Errorf("shards: encode %d×%d RGB needs %d bytes, have %d", w, h, w*h*3, len(pix))
	}
	if e.codec == CodecZstd {
		return e.zenc.EncodeAll(pix, dst), nil
	}
	need := len(pix) + 6*w
	if cap(e.scratch) < need {
		e.scratch = make([]byte, need)
	}
	e.scratch = e.scratch[:need]
	res := e.scratch[:len(pix)]
	gradFilter(res, pix, w, h, e.scratch[len(pix):])
	if e.codec == CodecGradZstd {
		return e.zenc.EncodeAll(res, dst), nil
	}
	band := huffBandRows(w)
	np := w * h
	for p := range 3 {
		for y := 0; y < h; y += band {
			var err error
			dst, err = e.appendBlock(dst, res[p*np+y*w:p*np+min(y+band, h)*w])
			if err != nil {
				return dst, err
			}
		}
	}
	return dst, nil
}

// grad-huff block modes (FORMAT.md).
const (
	huffRaw  = 0 // the bytes as they are
	huffRLE  = 1 // one byte, repeated
	huffCode = 2 // a uint32 length, then a huff0 4X block with its table
)

// huffMinBlock is the smallest block worth a Huffman table: below it the
// table and the 4X jump table outweigh any saving.
const huffMinBlock = 256

// huffBandRows is how many rows of a plane share one Huffman block: as many
// as fit in 64 KiB, so a 256×256 image's plane is one block, and a block
// of residuals stays in L2 while it is unfiltered.
func huffBandRows(w int) int { return max(1, 65536/w) }

// appendBlock appends one grad-huff block coding src.
func (e *Encoder) appendBlock(dst, src []byte) ([]byte, error) {
	if len(src) >= huffMinBlock {
		out, _, err := huff0.Compress4X(src, &e.huff)
		switch {
		case err == nil && 5+len(out) < 1+len(src):
			dst = append(dst, huffCode)
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(out)))
			return append(dst, out...), nil
		case err == huff0.ErrUseRLE:
			return append(dst, huffRLE, src[0]), nil
		case err != nil && err != huff0.ErrIncompressible:
			return dst, fmt.Errorf("shards: huffman coding: %w", err)
		}
	} else if allSame(src) {
		return append(dst, huffRLE, src[0]), nil
	}
	dst = append(dst, huffRaw)
	return append(dst, src...), nil
}

func allSame(b []byte) bool {
	for _, v := range b {
		if v != b[0] {
			return false
		}
	}
	return true
}

// Close releases the zstd encoder.
func (e *Encoder) Close() error { return e.zenc.Close() }

// Decoder decompresses pixels. Make one per goroutine.
type Decoder struct {
	zdec      *zstd.Decoder
	huff      huff0.Scratch // huff0's decoder: the reference, when huffOwn is off
	hx        huffDecoder
	scratch   []byte
	ring      []byte // DecodeRows's two grad rows
	entropyNs int64  // time spent in zstd or Huffman decoding, for InflateTime
}

// InflateTime is the time this decoder has spent in entropy decoding (zstd,
// or Huffman for grad-huff), the part of decoding that no filter work can
// shorten: the pipeline reports it beside its total, as the ceiling
// measured in the same run.
func (d *Decoder) InflateTime() time.Duration { return time.Duration(d.entropyNs) }

// decodeAll is zstd's DecodeAll of a payload that must be one frame, as
// FORMAT.md says (DecodeAll alone would go on through any frames after
// it), of want bytes, timed. The output stops at dst's capacity (the
// decoder's WithDecodeAllCapLimit), which callers size to want: a 50 KB
// frame can inflate to hundreds of megabytes, and checksums a forger
// recomputed would not stop it before the size check after decoding. A
// declared content size other than want is refused unread.
func (d *Decoder) decodeAll(payload, dst []byte, want int) ([]byte, error) {
	var h zstd.Header
	if end, err := zstdFrameLen(payload, &h); err != nil {
		return nil, err
	} else if end != len(payload) {
		return nil, fmt.Errorf("%d bytes after the zstd frame (of %d), which must be the whole payload", len(payload)-end, end)
	}
	if h.HasFCS && h.FrameContentSize != uint64(want) {
		return nil, fmt.Errorf("the frame declares %d bytes of content, want %d", h.FrameContentSize, want)
	}
	dst = slices.Grow(dst, want) // a no-op where callers sized it
	t0 := time.Now()
	out, err := d.zdec.DecodeAll(payload, dst)
	d.entropyNs += int64(time.Since(t0))
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		err = fmt.Errorf("the frame decodes to more than the record's %d bytes", want)
	}
	return out, err
}

// NewDecoder returns a Decoder.
func NewDecoder() (*Decoder, error) {
	z, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(1<<28),
		zstd.WithDecodeAllCapLimit(true), // decodeAll's bound
		zstd.WithDecoderLowmem(false))
	if err != nil {
		return nil, err
	}
	return &Decoder{zdec: z}, nil
}

// ErrCorrupt marks pixel payloads that do not decode to the size their
// record declares.
var ErrCorrupt = errors.New("corrupt pixel payload")

// rowPad is how far an AVX2 row block reads past the last residual: a
// block is 32 pixels, and the last row's reaches at most 31 past the end.
const rowPad = 32

// buffer returns the decoder's scratch with room for n bytes and rowPad more.
func (d *Decoder) buffer(n int) []byte {
	if cap(d.scratch) < n+rowPad {
		d.scratch = make([]byte, 0, n+rowPad)
	}
	return d.scratch[:0]
}

// zstdFrameLen is the length of the zstd frame at the front of p (RFC
// 8878 §3.1.1): its header, its blocks as their headers size them, and
// the content checksum when the header says there is one. A skippable
// frame is not a pixel frame and is refused.
func zstdFrameLen(p []byte, h *zstd.Header) (int, error) {
	if err := h.Decode(p); err != nil {
		return 0, err
	}
	if h.Skippable {
		return 0, errors.New("a skippable frame")
	}
	i := h.HeaderSize
	for {
		if len(p)-i < 3 {
			return 0, fmt.Errorf("block header at byte %d: %w", i, io.ErrUnexpectedEOF)
		}
		bh := uint32(p[i]) | uint32(p[i+1])<<8 | uint32(p[i+2])<<16
		i += 3
		size := int(bh >> 3)
		switch typ := bh >> 1 & 3; typ {
		case 1: // RLE: one byte, repeated size times
			size = 1
		case 3:
			return 0, fmt.Errorf("block at byte %d: reserved block type", i-3)
		}
		if len(p)-i < size {
			return 0, fmt.Errorf("block at byte %d: %d bytes, %d left: %w", i-3, size, len(p)-i, io.ErrUnexpectedEOF)
		}
		i += size
		if bh&1 == 1 { // the frame's last block
			break
		}
	}
	if h.HasCheckSum {
		if len(p)-i < 4 {
			return 0, fmt.Errorf("content checksum: %w", io.ErrUnexpectedEOF)
		}
		i += 4
	}
	return i, nil
}

// inflate decompresses a zstd payload into the decoder's scratch, with room
// for rowPad more bytes, and checks that it holds exactly n bytes.
func (d *Decoder) inflate(payload []byte, n int) ([]byte, error) {
	out, err := d.decodeAll(payload, d.buffer(n), n)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if len(out) != n {
		return nil, fmt.Errorf("%w: %d bytes decoded, want %d", ErrCorrupt, len(out), n)
	}
	if cap(out) < n+rowPad {
		// zstd grew its own buffer (a frame can claim any size): the AVX2
		// rows need the padding, so the bytes go back into ours.
		d.scratch = append(make([]byte, 0, n+rowPad), out...)
		return d.scratch, nil
	}
	d.scratch = out[:0]
	return out, nil
}

// Inflate runs only the entropy stage of a payload, the part of decoding
// that no filter work can shorten: zstd for zstd and grad-zstd, Huffman for
// grad-huff. It returns the raw pixels or the residual planes, valid until
// the decoder's next call. Benchmarks use it as the decoding ceiling.
func (d *Decoder) Inflate(codec Codec, payload []byte, w, h int) ([]byte, error) {
	if err := checkSize(w, h); err != nil {
		return nil, err
	}
	switch codec {
	case CodecZstd:
		return d.inflate(payload, w*h*3)
	case CodecGradZstd, CodecGradHuff:
		return d.residuals(codec, payload, w, h)
	}
	return nil, fmt.Errorf("%w: unknown codec %d", ErrCorrupt, codec)
}

// checkSize rejects sizes no record can have (FORMAT.md: 16-bit sides, at
// least 1), before any buffer is sized from them.
func checkSize(w, h int) error {
	if w < 1 || h < 1 || w > 0xFFFF || h > 0xFFFF {
		return fmt.Errorf("%w: a %d×%d image", ErrCorrupt, w, h)
	}
	return nil
}

// residuals returns the three residual planes of a grad-zstd or grad-huff
// payload, in the decoder's scratch with rowPad bytes of room after them.
func (d *Decoder) residuals(codec Codec, payload []byte, w, h int) ([]byte, error) {
	return d.residualRows(codec, payload, w, h, h)
}

// residualRows is residuals where only each plane's first rows rows will
// be read: grad-huff leaves the Huffman streams that code only later rows
// undecoded, and stops the one that codes both at the last row wanted. A
// crop ends, on average, 16 rows above the bottom of a 256-row image, a
// quarter of the last stream. The record's CRC has vouched for the bytes
// left unread.
func (d *Decoder) residualRows(codec Codec, payload []byte, w, h, rows int) ([]byte, error) {
	n := w * h * 3
	if codec == CodecGradZstd {
		return d.inflate(payload, n)
	}
	t0 := time.Now()
	defer func() { d.entropyNs += int64(time.Since(t0)) }()
	res := d.buffer(n)[:n]
	band, np := huffBandRows(w), w*h
	p := payload
	for pl := range 3 {
		for y := 0; y < h; y += band {
			blk := res[pl*np+y*w : pl*np+min(y+band, h)*w]
			need := min(len(blk), max(0, (rows-y)*w))
			var err error
			if p, err = d.huffBlock(blk, p, need); err != nil {
				return nil, fmt.Errorf("%w: plane %d, rows from %d: %v", ErrCorrupt, pl, y, err)
			}
		}
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last block", ErrCorrupt, len(p))
	}
	return res, nil
}

// huffBlock decodes one grad-huff block from the front of p into blk and
// returns the rest of p. Only blk[:need] must be decoded (see
// residualRows); need < len(blk) lets the decoder stop short.
func (d *Decoder) huffBlock(blk, p []byte, need int) ([]byte, error) {
	if len(p) < 1 {
		return nil, errors.New("payload ends before the block")
	}
	mode := p[0]
	p = p[1:]
	switch mode {
	case huffRaw:
		if len(p) < len(blk) {
			return nil, fmt.Errorf("raw block of %d bytes has %d", len(blk), len(p))
		}
		copy(blk, p)
		return p[len(blk):], nil
	case huffRLE:
		if len(p) < 1 {
			return nil, errors.New("run block without its byte")
		}
		v := p[0]
		for i := range blk {
			blk[i] = v
		}
		return p[1:], nil
	case huffCode:
		if len(p) < 4 {
			return nil, errors.New("huffman block without its length")
		}
		l := binary.LittleEndian.Uint32(p)
		p = p[4:]
		if uint64(l) > uint64(len(p)) {
			return nil, fmt.Errorf("huffman block of %d bytes has %d", l, len(p))
		}
		if huffOwn {
			if need == 0 {
				return p[l:], nil
			}
			body, err := d.hx.readTable(p[:l])
			if err != nil {
				return nil, fmt.Errorf("huffman table: %v", err)
			}
			if err := d.hx.decode4X(blk, body, need); err != nil {
				return nil, fmt.Errorf("huffman block: %v", err)
			}
			return p[l:], nil
		}
		s, body, err := huff0.ReadTable(p[:l], &d.huff)
		if err != nil {
			return nil, fmt.Errorf("huffman table: %v", err)
		}
		out, err := s.Decoder().Decompress4X(blk[:0:len(blk)], body)
		if err != nil {
			return nil, fmt.Errorf("huffman block: %v", err)
		}
		if len(out) != len(blk) || &out[0] != &blk[0] {
			return nil, fmt.Errorf("huffman block holds %d bytes, want %d", len(out), len(blk))
		}
		return p[l:], nil
	}
	return nil, fmt.Errorf("unknown block mode %d", mode)
}

// Decode decompresses payload into dst, which must hold exactly w*h*3 bytes.
func (d *Decoder) Decode(dst []byte, codec Codec, payload []byte, w, h int) error {
	if err := checkSize(w, h); err != nil {
		return err
	}
	n := w * h * 3
	if len(dst) != n {
		return fmt.Errorf("shards: decode buffer holds %d bytes, need %d", len(dst), n)
	}
	switch codec {
	case CodecZstd:
		out, err := d.decodeAll(payload, dst[:0], n)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if len(out) != n || &out[0] != &dst[0] {
			return fmt.Errorf("%w: %d bytes decoded, want %d", ErrCorrupt, len(out), n)
		}
	case CodecGradZstd, CodecGradHuff:
		res, err := d.residuals(codec, payload, w, h)
		if err != nil {
			return err
		}
		gradUnfilter(dst, res, w, h)
	default:
		return fmt.Errorf("%w: unknown codec %d", ErrCorrupt, codec)
	}
	return nil
}

// DecodeRows decodes the top rows rows of a w×h image and calls
// fn(y, row, mirrored) for y = 0 … rows−1 in order, row being the 3·w
// bytes of row y, valid only during the call. A crop needs no whole image:
// grad-huff and grad-zstd rows are decoded into a two-row ring that stays in L1, so the
// crop's bytes are written once, straight to their destination, and the
// rows below the crop are never decoded. This is the pipeline's training
// path.
//
// With mirror set, the AVX2 unfilter kernel delivers the rows mirrored
// left to right, which costs it nothing, where mirroring a crop afterwards
// cost about 5% of the pipeline's time; mirrored reports whether it did.
// Other paths deliver rows as they are, since a separate mirroring pass
// would cost more than flipping while copying the crop.
func (d *Decoder) DecodeRows(codec Codec, payload []byte, w, h, rows int, mirror bool, fn func(y int, row []byte, mirrored bool)) error {
	if w < 1 || h < 1 || w > 0xFFFF || h > 0xFFFF || rows < 0 || rows > h {
		return fmt.Errorf("shards: decode %d rows of a %d×%d image", rows, w, h)
	}
	n := w * h * 3
	rowLen := 3 * w
	switch codec {
	case CodecZstd:
		pix, err := d.inflate(payload, n)
		if err != nil {
			return err
		}
		for y := range rows {
			fn(y, pix[y*rowLen:(y+1)*rowLen], false)
		}
	case CodecGradZstd, CodecGradHuff:
		res, err := d.residualRows(codec, payload, w, h, rows)
		if err != nil {
			return err
		}
		np := w * h
		// With AVX2 each ring row has room for whole 32-pixel blocks,
		// whose surplus columns hold garbage that only other surplus
		// columns read.
		full := w
		if useAVX2 {
			full = (w + 31) &^ 31
		}
		stride := 3 * full
		if cap(d.ring) < 2*stride {
			d.ring = make([]byte, 2*stride)
		}
		ring := d.ring[:2*stride]
		for y := range rows {
			out := ring[(y&1)*stride : (y&1+1)*stride]
			var up []byte
			if y > 0 {
				up = ring[((y-1)&1)*stride : ((y-1)&1+1)*stride]
			}
			o := y * w
			switch {
			case useAVX2:
				// The block reads res[o+2·np+full−1] ≤ n+30: inside the
				// rowPad that buffer leaves.
				unfilterRowAVX2(out, up, res[o:n+rowPad], np, full, mirror)
				if mirror {
					// Mirrored, the surplus columns come first.
					fn(y, out[stride-rowLen:], true)
				} else {
					fn(y, out[:rowLen], false)
				}
			default:
				unfilterSpan(out, up, res[o:o+w], res[np+o:np+o+w], res[2*np+o:2*np+o+w], 0, 0, 0)
				fn(y, out[:rowLen], false)
			}
		}
	default:
		return fmt.Errorf("%w: unknown codec %d", ErrCorrupt, codec)
	}
	return nil
}

// Close releases the zstd decoder.
func (d *Decoder) Close() { d.zdec.Close() }

// gradFilter writes the residual planes of pix into res (same length):
// plane 0 holds red minus green residuals, plane 1 green, plane 2 blue minus
// green. A residual is the byte minus (left + up − up-left), mod 256, with
// zeros outside the image. scratch holds two rows (6·w bytes). With AVX2 it
// runs the assembly kernel (codec_amd64.s); otherwise gradFilterGo.
func gradFilter(res, pix []byte, w, h int, scratch []byte) {
	full, exact, yfull, ok := avx2Rows(w, h)
	if !ok {
		gradFilterGo(res, pix, w, h, scratch)
		return
	}
	n := 3 * w * h
	_, _ = res[n-1], pix[n-1]
	filterRowsAVX2(res, pix, w, h, 0, yfull, full)
	if yfull < h {
		filterRowsAVX2(res, pix, w, h, yfull, h, exact)
		for y := yfull; y < h; y++ {
			filterTail(res, pix, w, h, y, exact)
		}
	}
}

// avx2Rows plans an assembly pass over a w×h image. The kernels work in
// blocks of 32 pixels; rows y < yfull are done in full blocks (full ≥ w
// pixels), whose surplus reads and writes stay inside the image's buffers
// because they only reach into the rows below. The remaining rows, near the
// end of the buffers, are done in exact blocks (exact ≤ w pixels) and the
// rest of each such row in Go. ok is false without AVX2 or pixels. Even a
// one-pixel-wide image decodes faster in 32-pixel blocks than in Go, whose
// per-row overhead dominates there.
func avx2Rows(w, h int) (full, exact, yfull int, ok bool) {
	if !useAVX2 || w < 1 || h < 1 {
		return 0, 0, 0, false
	}
	full = (w + 31) &^ 31
	exact = w &^ 31
	// Row y's block reaches byte y·w + full of each plane: keep it ≤ w·h.
	if np := w * h; np >= full {
		yfull = min(h, (np-full)/w+1)
	}
	return full, exact, yfull, true
}

// filterTail writes the residuals of pixels x0..w−1 of row y, one by one.
func filterTail(res, pix []byte, w, h, y, x0 int) {
	np := w * h
	stride := 3 * w
	for x := x0; x < w; x++ {
		i := y*stride + 3*x
		var e [3]byte
		for c := range e {
			v := pix[i+c]
			if x > 0 {
				v -= pix[i+c-3]
			}
			if y > 0 {
				v -= pix[i+c-stride]
				if x > 0 {
					v += pix[i+c-stride-3]
				}
			}
			e[c] = v
		}
		o := y*w + x
		res[o] = e[0] - e[1]
		res[np+o] = e[1]
		res[2*np+o] = e[2] - e[1]
	}
}

// gradFilterGo is gradFilter in Go, the reference for the assembly. The
// gradient is separable: with v = pix − up (vertical difference), the
// residual is v[i] − v[i−3], so both differences run eight lanes at a time
// and only the split into planes goes byte by byte.
func gradFilterGo(res, pix []byte, w, h int, scratch []byte) {
	np := w * h
	stride := w * 3
	v := scratch[:stride]
	e := scratch[stride : 2*stride]
	for y := 0; y < h; y++ {
		row := pix[y*stride : (y+1)*stride]
		if y == 0 {
			copy(v, row)
		} else {
			subBytes(v, row, pix[(y-1)*stride:y*stride])
		}
		copy(e[:3], v[:3])
		subBytes(e[3:], v[3:], v[:stride-3])
		o := y * w
		rp := res[o : o+w]
		gp := res[np+o : np+o+w][:len(rp)]
		bp := res[2*np+o : 2*np+o+w][:len(rp)]
		ee := e[:3*len(rp)]
		for x := range rp {
			q := ee[3*x : 3*x+3 : 3*x+3]
			g := q[1]
			rp[x] = q[0] - g
			gp[x] = g
			bp[x] = q[2] - g
		}
	}
}

// subBytes sets dst = a − b byte by byte, mod 256, eight lanes at a time:
// setting each lane's top bit of a and clearing it in b keeps borrows
// inside the lane, and an XOR restores the top bit.
func subBytes(dst, a, b []byte) {
	const lo7, hi1 = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
	a, b = a[:len(dst)], b[:len(dst)]
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		x := binary.LittleEndian.Uint64(a[i:])
		y := binary.LittleEndian.Uint64(b[i:])
		binary.LittleEndian.PutUint64(dst[i:], ((x|hi1)-(y&lo7))^((x^^y)&hi1))
	}
	for ; i < len(dst); i++ {
		dst[i] = a[i] - b[i]
	}
}

// gradUnfilter inverts gradFilter. With AVX2 it runs the assembly kernel
// (codec_amd64.s); otherwise gradUnfilterGo.
func gradUnfilter(pix, res []byte, w, h int) {
	full, exact, yfull, ok := avx2Rows(w, h)
	if !ok {
		gradUnfilterGo(pix, res, w, h)
		return
	}
	n := 3 * w * h
	_, _ = pix[n-1], res[n-1]
	unfilterRowsAVX2(pix, res, w, h, 0, yfull, full)
	if yfull < h {
		unfilterRowsAVX2(pix, res, w, h, yfull, h, exact)
		for y := yfull; y < h; y++ {
			unfilterRow(pix, res, w, h, y, exact)
		}
	}
}

// unfilterRowsAVX2 decodes pixels [0, npx) of rows [y0, y1) of a w×h
// image in place with the row kernel, npx a multiple of 32. npx may exceed
// w: the surplus reads the following row and writes garbage over the start
// of the following rows, which a later row then overwrites; the caller
// keeps every access inside both buffers (see avx2Rows). Rows are done in
// order, so row y−1 is final when row y reads it.
func unfilterRowsAVX2(pix, res []byte, w, h, y0, y1, npx int) {
	np, stride := w*h, 3*w
	for y := y0; y < y1; y++ {
		var up []byte
		if y > 0 {
			up = pix[(y-1)*stride:]
		}
		unfilterRowAVX2(pix[y*stride:], up, res[y*w:], np, npx, false)
	}
}

// gradUnfilterGo is gradUnfilter in Go, the reference for the assembly.
// The residual is e = d[x] − d[x−1] where d is the vertical difference
// pix − up, so a running sum of e along the row gives d (three independent
// carry chains, one per channel), and adding the row above gives the
// pixels.
func gradUnfilterGo(pix, res []byte, w, h int) {
	for y := 0; y < h; y++ {
		unfilterRow(pix, res, w, h, y, 0)
	}
}

// unfilterRow decodes pixels x0..w−1 of row y, given the rows above and the
// pixels before x0.
func unfilterRow(pix, res []byte, w, h, y, x0 int) {
	np := w * h
	stride := w * 3
	o := y * w
	var dr, dg, db byte
	if x0 > 0 {
		// The running sums so far are the last decoded pixel minus the
		// one above it.
		q := pix[y*stride+3*x0-3:][:3]
		dr, dg, db = q[0], q[1], q[2]
		if y > 0 {
			u := pix[(y-1)*stride+3*x0-3:][:3]
			dr, dg, db = dr-u[0], dg-u[1], db-u[2]
		}
	}
	var up []byte
	if y > 0 {
		up = pix[(y-1)*stride+3*x0 : y*stride]
	}
	unfilterSpan(pix[y*stride+3*x0:(y+1)*stride], up, res[o+x0:o+w], res[np+o+x0:np+o+w], res[2*np+o+x0:2*np+o+w], dr, dg, db)
}

// unfilterSpan decodes len(r) pixels into out from the residual planes r,
// g, b, continuing the running sums dr, dg, db (the pixel before the span
// minus the one above it), and adds the pixels of up unless it is empty.
func unfilterSpan(out, up, r, g, b []byte, dr, dg, db byte) {
	g, b = g[:len(r)], b[:len(r)]
	row := out[:3*len(r)]
	if len(up) == 0 {
		for x := range r {
			gg := g[x]
			dr += r[x] + gg
			dg += gg
			db += b[x] + gg
			q := row[3*x : 3*x+3 : 3*x+3]
			q[0], q[1], q[2] = dr, dg, db
		}
		return
	}
	up = up[:len(row)]
	for x := range r {
		gg := g[x]
		dr += r[x] + gg
		dg += gg
		db += b[x] + gg
		q := row[3*x : 3*x+3 : 3*x+3]
		u := up[3*x : 3*x+3 : 3*x+3]
		q[0], q[1], q[2] = dr+u[0], dg+u[1], db+u[2]
	}
}
