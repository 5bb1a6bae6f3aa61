package imageio

import (
	"fmt"
	"math"
	"sync"
)

// precisionBits is Pillow's fixed-point precision for 8-bit resampling
// (32 - 8 - 2): weights are scaled by 2^22, so an accumulator of a pixel
// times a weight sum slightly above one still fits an int32.
const precisionBits = 22

// ResizedSize is the size ResizeShortCrop scales a w x h image to before
// cropping: the shorter side becomes size and the longer side is
// long*size/short rounded down (torchvision's Resize rule, and the Python
// expression long*size//short). The result is never smaller than size.
func ResizedSize(w, h, size int) (rw, rh int) {
	if w <= h {
		return size, max(size, h*size/w)
	}
	return max(size, w*size/h), size
}

// ResizeShortCrop resizes src so its shorter side is size, keeping the
// aspect ratio (ResizedSize), and writes the centred size x size window,
// left = (rw-size)/2 and top = (rh-size)/2, to dst as interleaved RGB.
//
// The filter is Pillow's Image.resize(BILINEAR): a triangle whose support
// widens with the downscale factor, so shrinking antialiases, evaluated
// horizontally then vertically with 22-bit integer weights and an 8-bit
// intermediate, exactly as Pillow does; the output is bit-identical to
// Pillow 9.4 resizing the same pixels and cropping. Only the crop window's
// columns and the rows it needs are computed.
//
// It panics if size < 1, src is empty or inconsistent, or len(dst) <
// size*size*3: those are programming errors, not data errors. It is safe for
// concurrent use; scratch memory comes from a pool.
func ResizeShortCrop(src Image, size int, dst []uint8) {
	r := resizerPool.Get().(*resizer)
	r.resizeShortCrop(src, size, dst)
	resizerPool.Put(r)
}

var resizerPool = sync.Pool{New: func() any { return new(resizer) }}

// kernel holds the weights of one pass for a window of n outputs starting
// at output index first, out of out outputs resampled from in inputs.
// Every output gets the same number of taps (padded with zero weights, with
// the start moved so it stays inside the input), which lets the passes use
// fixed-length unrolled loops; zero weights leave the sums unchanged.
type kernel struct {
	in, out, first, n int // what the weights were computed for
	taps              int
	start             []int // first input index of output first+i
	// w holds, per output, its first input index times step (the bytes
	// per input sample or row, set by the pass) followed by taps weights:
	// one bounds check fetches everything an output needs.
	w    []int32
	step int
	tmp  []float64
	cnt  []int
	// offs and wx are the AVX2 horizontal kernel's layout (expandPairs).
	offs  []int32
	wx    []int32
	pairs int
}

// compute fills k following Pillow's precompute_coeffs and
// normalize_coeffs_8bpc (Resample.c) with the bilinear filter, support 1.
// The float64 conversions pin the evaluation order and forbid fused
// multiply-adds, so the weights match Pillow's bit for bit.
func (k *kernel) compute(in, out, first, n int) {
	if k.in == in && k.out == out && k.first == first && k.n == n && k.w != nil {
		return
	}
	k.in, k.out, k.first, k.n = in, out, first, n
	k.pairs = 0
	scale := float64(in) / float64(out)
	filterscale := max(scale, 1.0)
	support := 1.0 * filterscale
	ksize := int(math.Ceil(support))*2 + 1
	k.tmp = grow(k.tmp, n*ksize)
	k.cnt = growInt(k.cnt, n)
	k.start = growInt(k.start, n)
	ss := 1.0 / filterscale
	taps := 1
	for i := range n {
		center := float64(float64(first+i)+0.5) * scale
		xmin := int(center - support + 0.5)
		xmin = max(xmin, 0)
		xmax := int(center + support + 0.5)
		xmax = min(xmax, in)
		cnt := xmax - xmin
		ww := 0.0
		ws := k.tmp[i*ksize : i*ksize+ksize]
		for x := range cnt {
			w := triangle(float64(float64(x+xmin)-center+0.5) * ss)
			ws[x] = w
			ww += w
		}
		for x := range cnt {
			if ww != 0 {
				ws[x] /= ww
			}
		}
		k.start[i] = xmin
		k.cnt[i] = cnt
		taps = max(taps, cnt)
	}
	k.taps = taps
	k.w = growInt32(k.w, n*(taps+1))
	clear(k.w)
	k.step = 0
	for i := range n {
		xmin, cnt := k.start[i], k.cnt[i]
		s := min(xmin, in-taps)
		ws := k.tmp[i*ksize:]
		dst := k.w[i*(taps+1)+1+xmin-s:]
		sum := int64(0)
		for x := range cnt {
			w := fixedWeight(ws[x])
			if w < 0 {
				panic("imageio: negative bilinear weight") // the triangle is never negative
			}
			dst[x] = w
			sum += int64(w)
		}
		// The passes shift without clamping. That is exact only while a
		// full-scale pixel cannot reach 256: true for non-negative weights
		// whose rounding adds at most half a unit each.
		if 255*sum+(1<<(precisionBits-1)) >= 256<<precisionBits {
			panic("imageio: bilinear weights sum above one")
		}
		k.start[i] = s
	}
}

// expandPairs lays the weights out for horizRowAVX2: byte offsets of each
// output's first tap (offs), and per pair of taps eight lanes
// [w0 w0 w0 w1 w1 w1 0 0] matching eight bytes r0 g0 b0 r1 g1 b1 r2 g2
// loaded from the row. An odd last tap pairs with a zero weight.
func (k *kernel) expandPairs() {
	if k.pairs != 0 {
		return
	}
	t := k.taps
	k.pairs = (t + 1) / 2
	k.offs = growInt32(k.offs, k.n)
	k.wx = growInt32(k.wx, k.n*k.pairs*8)
	clear(k.wx)
	for i := range k.n {
		k.offs[i] = int32(k.start[i] * 3)
		c := k.w[i*(t+1)+1 : (i+1)*(t+1)]
		for j, w := range c {
			lane := (i*k.pairs+j/2)*8 + (j%2)*3
			k.wx[lane], k.wx[lane+1], k.wx[lane+2] = w, w, w
		}
	}
}

// setStep stores each output's first input offset in units of step bytes
// in front of its weights.
func (k *kernel) setStep(step int) {
	if k.step == step {
		return
	}
	for i := range k.n {
		k.w[i*(k.taps+1)] = int32(k.start[i] * step)
	}
	k.step = step
}

func triangle(x float64) float64 {
	if x < 0 {
		x = -x
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

func fixedWeight(w float64) int32 {
	if w < 0 {
		return int32(-0.5 + float64(w*(1<<precisionBits)))
	}
	return int32(0.5 + float64(w*(1<<precisionBits)))
}

// out8 takes an accumulator (which includes the rounding half) to a byte.
// Pillow clamps here; with the bilinear filter the sum can leave [0, 255]
// neither way, which compute asserts, so the shift alone is exact.
func out8(v int32) uint8 { return uint8(v >> precisionBits) }

// resizer owns the kernels and the intermediate rows for one goroutine.
type resizer struct {
	h, v kernel
	mid  []uint8
}

func (r *resizer) resizeShortCrop(src Image, size int, dst []uint8) {
	if size < 1 {
		panic(fmt.Sprintf("imageio: ResizeShortCrop size %d", size))
	}
	if src.W < 1 || src.H < 1 || len(src.Pix) < src.W*src.H*3 {
		panic(fmt.Sprintf("imageio: ResizeShortCrop source %dx%d with %d bytes", src.W, src.H, len(src.Pix)))
	}
	if len(dst) < size*size*3 {
		panic(fmt.Sprintf("imageio: ResizeShortCrop destination has %d bytes, need %d", len(dst), size*size*3))
	}
	// The geometry is the file's: the rounded-up size of a DCT-scaled
	// decode gave other sizes (32×47 where PIL resizes to 32×48) and moved
	// the crop by a pixel.
	sw, sh := src.srcSize()
	rw, rh := ResizedSize(sw, sh, size)
	left, top := (rw-size)/2, (rh-size)/2
	stride := src.W * 3
	outStride := size * 3

	// Pillow skips a pass whose size is unchanged; the identity weights would
	// give the same bytes, so this is only a shortcut.
	needH, needV := rw != src.W, rh != src.H
	if !needV {
		if !needH {
			for y := range size {
				copy(dst[y*outStride:(y+1)*outStride], src.Pix[(top+y)*stride+left*3:])
			}
			return
		}
		r.h.compute(src.W, rw, left, size)
		horizontalPass(&r.h, src.Pix[top*stride:], stride, size, dst, outStride)
		return
	}
	r.v.compute(src.H, rh, top, size)
	y0 := r.v.start[0]
	y1 := r.v.start[size-1] + r.v.taps
	if !needH {
		verticalPass(&r.v, src.Pix[left*3:], stride, 0, dst, outStride, size)
		return
	}
	r.h.compute(src.W, rw, left, size)
	rows := y1 - y0
	r.mid = growBytes(r.mid, rows*outStride)
	horizontalPass(&r.h, src.Pix[y0*stride:], stride, rows, r.mid, outStride)
	verticalPass(&r.v, r.mid, outStride, y0, dst, outStride, size)
}

// horizontalPass resamples rows rows of src (stride bytes apart) into out.
func horizontalPass(k *kernel, src []uint8, stride, rows int, out []uint8, outStride int) {
	n := k.n
	k.setStep(3)
	if useAVX2 {
		k.expandPairs()
	}
	for y := range rows {
		row := src[y*stride : y*stride+stride]
		o := out[y*outStride : y*outStride+n*3]
		from := 0
		if useAVX2 {
			// The kernel reads pairs*6+2 bytes per output, a few past its
			// last tap. That is the next row's start, except at the very end
			// of src, where the last outputs take the scalar loop instead.
			avail := len(src) - y*stride
			from = n
			for from > 0 && int(k.offs[from-1])+k.pairs*6+2 > avail {
				from--
			}
			horizRowAVX2(o[:from*3], src[y*stride:], k.offs[:from], k.wx, k.pairs)
		}
		if from < n {
			horizontalScalar(k, row, o, from)
		}
	}
}

// horizontalScalar computes outputs from..n-1 of one row.
func horizontalScalar(k *kernel, row, o []uint8, from int) {
	const half = 1 << (precisionBits - 1)
	n, t := k.n, k.taps
	{
		switch t {
		case 2:
			for i := from; i < n; i++ {
				c := k.w[i*3 : i*3+3 : i*3+3]
				p := row[c[0] : c[0]+6 : c[0]+6]
				w0, w1 := c[1], c[2]
				q := o[i*3 : i*3+3 : i*3+3]
				q[0] = out8(half + int32(p[0])*w0 + int32(p[3])*w1)
				q[1] = out8(half + int32(p[1])*w0 + int32(p[4])*w1)
				q[2] = out8(half + int32(p[2])*w0 + int32(p[5])*w1)
			}
		case 3:
			for i := from; i < n; i++ {
				c := k.w[i*4 : i*4+4 : i*4+4]
				p := row[c[0] : c[0]+9 : c[0]+9]
				w0, w1, w2 := c[1], c[2], c[3]
				q := o[i*3 : i*3+3 : i*3+3]
				q[0] = out8(half + int32(p[0])*w0 + int32(p[3])*w1 + int32(p[6])*w2)
				q[1] = out8(half + int32(p[1])*w0 + int32(p[4])*w1 + int32(p[7])*w2)
				q[2] = out8(half + int32(p[2])*w0 + int32(p[5])*w1 + int32(p[8])*w2)
			}
		case 4:
			for i := from; i < n; i++ {
				c := k.w[i*5 : i*5+5 : i*5+5]
				p := row[c[0] : c[0]+12 : c[0]+12]
				w0, w1, w2, w3 := c[1], c[2], c[3], c[4]
				q := o[i*3 : i*3+3 : i*3+3]
				q[0] = out8(half + int32(p[0])*w0 + int32(p[3])*w1 + int32(p[6])*w2 + int32(p[9])*w3)
				q[1] = out8(half + int32(p[1])*w0 + int32(p[4])*w1 + int32(p[7])*w2 + int32(p[10])*w3)
				q[2] = out8(half + int32(p[2])*w0 + int32(p[5])*w1 + int32(p[8])*w2 + int32(p[11])*w3)
			}
		case 5:
			for i := from; i < n; i++ {
				c := k.w[i*6 : i*6+6 : i*6+6]
				p := row[c[0] : c[0]+15 : c[0]+15]
				w0, w1, w2, w3, w4 := c[1], c[2], c[3], c[4], c[5]
				q := o[i*3 : i*3+3 : i*3+3]
				q[0] = out8(half + int32(p[0])*w0 + int32(p[3])*w1 + int32(p[6])*w2 + int32(p[9])*w3 + int32(p[12])*w4)
				q[1] = out8(half + int32(p[1])*w0 + int32(p[4])*w1 + int32(p[7])*w2 + int32(p[10])*w3 + int32(p[13])*w4)
				q[2] = out8(half + int32(p[2])*w0 + int32(p[5])*w1 + int32(p[8])*w2 + int32(p[11])*w3 + int32(p[14])*w4)
			}
		default:
			for i := from; i < n; i++ {
				c := k.w[i*(t+1) : (i+1)*(t+1)]
				p := row[c[0] : int(c[0])+t*3]
				r, g, b := int32(half), int32(half), int32(half)
				for j, wj := range c[1:] {
					px := p[j*3 : j*3+3 : j*3+3]
					r += int32(px[0]) * wj
					g += int32(px[1]) * wj
					b += int32(px[2]) * wj
				}
				q := o[i*3 : i*3+3 : i*3+3]
				q[0], q[1], q[2] = out8(r), out8(g), out8(b)
			}
		}
	}
}

// verticalPass writes outRows rows of out from src, whose first row is
// input row y0 (k.start is in input rows). Each output row is a weighted sum
// of taps whole rows, so the inner loops run along contiguous bytes.
func verticalPass(k *kernel, src []uint8, stride, y0 int, out []uint8, outStride, outRows int) {
	const half = 1 << (precisionBits - 1)
	width := outStride // bytes per output row; src rows are at least this wide
	t := k.taps
	for i := range outRows {
		width := width
		o := out[i*outStride : i*outStride+width]
		base := (k.start[i] - y0) * stride
		c := k.w[i*(t+1)+1 : (i+1)*(t+1)]
		if useAVX2 {
			vertRowAVX2(o, src[base:base+(t-1)*stride+width], stride, c)
			done := width &^ 7
			o = o[done:]
			base += done
			width -= done
		}
		row := func(j int) []uint8 { return src[base+j*stride : base+j*stride+width] }
		switch t {
		case 2:
			r0, r1 := row(0), row(1)
			r1, o = r1[:len(r0)], o[:len(r0)]
			w0, w1 := c[0], c[1]
			for x, v := range r0 {
				o[x] = out8(half + int32(v)*w0 + int32(r1[x])*w1)
			}
		case 3:
			r0, r1, r2 := row(0), row(1), row(2)
			r1, r2, o = r1[:len(r0)], r2[:len(r0)], o[:len(r0)]
			w0, w1, w2 := c[0], c[1], c[2]
			for x, v := range r0 {
				o[x] = out8(half + int32(v)*w0 + int32(r1[x])*w1 + int32(r2[x])*w2)
			}
		case 4:
			r0, r1, r2, r3 := row(0), row(1), row(2), row(3)
			r1, r2, r3, o = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)], o[:len(r0)]
			w0, w1, w2, w3 := c[0], c[1], c[2], c[3]
			for x, v := range r0 {
				o[x] = out8(half + int32(v)*w0 + int32(r1[x])*w1 + int32(r2[x])*w2 + int32(r3[x])*w3)
			}
		case 5:
			r0, r1, r2, r3, r4 := row(0), row(1), row(2), row(3), row(4)
			r1, r2, r3, r4, o = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)], r4[:len(r0)], o[:len(r0)]
			w0, w1, w2, w3, w4 := c[0], c[1], c[2], c[3], c[4]
			for x, v := range r0 {
				o[x] = out8(half + int32(v)*w0 + int32(r1[x])*w1 + int32(r2[x])*w2 + int32(r3[x])*w3 + int32(r4[x])*w4)
			}
		default:
			// Wide kernels come from large downscales, which DCT scaling
			// avoids on the libjpeg-turbo path.
			for x := range o {
				acc := int32(half)
				p := base + x
				for _, wj := range c {
					acc += int32(src[p]) * wj
					p += stride
				}
				o[x] = out8(acc)
			}
		}
	}
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func growInt(s []int, n int) []int {
	if cap(s) < n {
		return make([]int, n)
	}
	return s[:n]
}

func growInt32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

func growBytes(s []uint8, n int) []uint8 {
	if cap(s) < n {
		return make([]uint8, n)
	}
	return s[:n]
}
