package cpu

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// poolLayer is max pooling over K×K windows with stride S and zero-free
// padding P (padded cells never win). Forward records each output's
// winning input index, so backward is a scatter.
type poolLayer struct {
	n, c, h, w int
	k, s, p    int
	oh, ow     int

	y      buf
	argmax []int32 // index within the input plane
	dx     buf
}

func newPoolLayer(n, c, h, w, k, s, p int) *poolLayer {
	l := &poolLayer{n: n, c: c, h: h, w: w, k: k, s: s, p: p,
		oh: (h+2*p-k)/s + 1, ow: (w+2*p-k)/s + 1}
	l.y = newBuf(n, c, l.oh, l.ow)
	l.argmax = make([]int32, n*c*l.oh*l.ow)
	l.dx = newBuf(n, c, h, w)
	return l
}

func (l *poolLayer) forward(x []float32) {
	in, out := l.h*l.w, l.oh*l.ow
	parallel(l.n*l.c, func(lo, hi int) {
		var col []int64
		if l.p == 0 {
			col = make([]int64, l.w)
		}
		for pl := lo; pl < hi; pl++ {
			xs := x[pl*in : (pl+1)*in]
			ys, am := l.y.data[pl*out:(pl+1)*out], l.argmax[pl*out:(pl+1)*out]
			if l.p == 0 {
				l.planeUnpadded(xs, ys, am, col)
			} else {
				l.planePadded(xs, ys, am)
			}
		}
	})
}

// planeUnpadded pools one plane when every window lies inside it (no
// padding), which spares the clipping of planePadded. The running maximum
// is kept as a rankKey, so that finding it is integer max (a conditional
// move) instead of a float compare whose branch, on a network's
// activations, goes either way unpredictably; and it goes row by row: a
// column maximum over the window's K rows for every input column, then the
// maximum of K neighbouring columns, which shares the column work between
// overlapping windows. col is scratch of at least l.w.
func (l *poolLayer) planeUnpadded(xs, ys []float32, am []int32, col []int64) {
	span := (l.ow-1)*l.s + l.k // input columns any window reads
	col = col[:span]
	for oy := 0; oy < l.oh; oy++ {
		r0 := oy * l.s * l.w
		keysRow(col, xs[r0:r0+span], r0)
		for ky := 1; ky < l.k; ky++ {
			r := r0 + ky*l.w
			maxKeysRow(col, xs[r:r+span], r)
		}
		yr, ar := ys[oy*l.ow:(oy+1)*l.ow], am[oy*l.ow:(oy+1)*l.ow]
		if l.k == 3 {
			windows3(yr, ar, col, xs, l.s)
			continue
		}
		for ox := range yr {
			w := col[ox*l.s : ox*l.s+l.k]
			best := w[0]
			for _, k := range w[1:] {
				best = max(best, k)
			}
			bi := keyIndex(best)
			yr[ox], ar[ox] = xs[bi], int32(bi)
		}
	}
}

// The row loops are small functions of their own: in one function with
// the window loops, the compiler spilled their variables to the stack.

// keysRow sets dst[x] to src[x]'s rankKey, its index base+x.
func keysRow(dst []int64, src []float32, base int) {
	src = src[:len(dst)]
	for x, v := range src {
		dst[x] = rankKey(v, base+x)
	}
}

// maxKeysRow raises dst[x] to src[x]'s rankKey where that is larger.
func maxKeysRow(dst []int64, src []float32, base int) {
	src = src[:len(dst)]
	for x, v := range src {
		dst[x] = max(dst[x], rankKey(v, base+x))
	}
}

// windows3 takes the maximum of each 3 neighbouring column keys, stride s.
func windows3(ys []float32, am []int32, col []int64, xs []float32, s int) {
	am = am[:len(ys)]
	for ox := range ys {
		w := col[ox*s : ox*s+3]
		bi := keyIndex(max(w[0], w[1], w[2]))
		ys[ox], am[ox] = xs[bi], int32(bi)
	}
}

// rankKey packs a value and its index into one integer whose order is the
// pooling's: a larger value first, then, between equal values, the
// earlier index (the first maximum in scan order, as a strict > keeps).
// The high half is the float's bits made monotonic as a signed integer,
// with −0 and +0 equal, as they compare; the low half is the complement of
// the index. A NaN ranks by its sign bit, above every number or below
// (a strict > would let one win only from the window's first cell):
// training stops at a NaN loss anyway.
func rankKey(v float32, i int) int64 {
	b := int32(math.Float32bits(v))
	s := b >> 31 // −1 for negative values, else 0
	ord := (b ^ (s & 0x7fffffff)) - s
	return int64(ord)<<32 | int64(^uint32(i))
}

// keyIndex is the index packed into a rankKey.
func keyIndex(k int64) int { return int(^uint32(k)) }

// planePadded pools one plane, clipping windows to the input: padded cells
// never win.
func (l *poolLayer) planePadded(xs, ys []float32, am []int32) {
	for oy := 0; oy < l.oh; oy++ {
		y0, y1 := max(0, oy*l.s-l.p), min(l.h, oy*l.s-l.p+l.k)
		for ox := 0; ox < l.ow; ox++ {
			x0, x1 := max(0, ox*l.s-l.p), min(l.w, ox*l.s-l.p+l.k)
			// rankKeys, as planeUnpadded, so that both paths order
			// every value, NaNs included, the same way.
			best := rankKey(xs[y0*l.w+x0], y0*l.w+x0)
			for iy := y0; iy < y1; iy++ {
				for ix := x0; ix < x1; ix++ {
					best = max(best, rankKey(xs[iy*l.w+ix], iy*l.w+ix))
				}
			}
			bi := keyIndex(best)
			ys[oy*l.ow+ox], am[oy*l.ow+ox] = xs[bi], int32(bi)
		}
	}
}

func (l *poolLayer) backward(dy []float32) {
	in, out := l.h*l.w, l.oh*l.ow
	parallel(l.n*l.c, func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			dx := l.dx.data[pl*in : (pl+1)*in]
			clear(dx)
			for i, a := range l.argmax[pl*out : (pl+1)*out] {
				dx[a] += dy[pl*out+i]
			}
		}
	})
}

type poolOp struct {
	opBase
	l *poolLayer
}

func (o *poolOp) Arity() int    { return 1 }
func (o *poolOp) Type() hm.Type { return hm.NewFnType(tt(4), tt(4)) }
func (o *poolOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.l.y.t.Shape().Clone(), nil
}
func (o *poolOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	x, err := f32s(in[0], len(o.l.dx.data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	o.l.forward(x)
	return o.l.y.t, nil
}
func (o *poolOp) DiffWRT(int) []bool { return []bool{true} }
func (o *poolOp) SymDiff(_ G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	// out orders the backward after the forward that wrote argmax.
	dx, err := G.ApplyOp(&poolBackOp{opBase: newBase(o.name + "_back"), l: o.l}, out, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// poolBackOp: (y, dy) → dx.
type poolBackOp struct {
	opBase
	l *poolLayer
}

func (o *poolBackOp) Arity() int    { return 2 }
func (o *poolBackOp) Type() hm.Type { return hm.NewFnType(tt(4), tt(4), tt(4)) }
func (o *poolBackOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.l.dx.t.Shape().Clone(), nil
}
func (o *poolBackOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	dy, err := f32s(in[1], len(o.l.y.data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	o.l.backward(dy)
	return o.l.dx.t, nil
}
