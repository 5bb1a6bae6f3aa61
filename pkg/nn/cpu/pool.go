package cpu

import (
	"fmt"

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
		for pl := lo; pl < hi; pl++ {
			xs := x[pl*in : (pl+1)*in]
			ys, am := l.y.data[pl*out:(pl+1)*out], l.argmax[pl*out:(pl+1)*out]
			if l.p == 0 {
				l.planeUnpadded(xs, ys, am)
			} else {
				l.planePadded(xs, ys, am)
			}
		}
	})
}

// planeUnpadded pools one plane when every window lies inside it (no
// padding), which spares the clipping of planePadded.
func (l *poolLayer) planeUnpadded(xs, ys []float32, am []int32) {
	for oy := 0; oy < l.oh; oy++ {
		for ox := 0; ox < l.ow; ox++ {
			at := oy*l.s*l.w + ox*l.s
			best, bi := xs[at], at
			for ky := 0; ky < l.k; ky++ {
				r := at + ky*l.w
				for kx, v := range xs[r : r+l.k] {
					if v > best {
						best, bi = v, r+kx
					}
				}
			}
			ys[oy*l.ow+ox], am[oy*l.ow+ox] = best, int32(bi)
		}
	}
}

// planePadded pools one plane, clipping windows to the input: padded cells
// never win.
func (l *poolLayer) planePadded(xs, ys []float32, am []int32) {
	for oy := 0; oy < l.oh; oy++ {
		y0, y1 := max(0, oy*l.s-l.p), min(l.h, oy*l.s-l.p+l.k)
		for ox := 0; ox < l.ow; ox++ {
			x0, x1 := max(0, ox*l.s-l.p), min(l.w, ox*l.s-l.p+l.k)
			best, bi := xs[y0*l.w+x0], y0*l.w+x0
			for iy := y0; iy < y1; iy++ {
				for ix := x0; ix < x1; ix++ {
					if v := xs[iy*l.w+ix]; v > best {
						best, bi = v, iy*l.w+ix
					}
				}
			}
			ys[oy*l.ow+ox], am[oy*l.ow+ox] = best, int32(bi)
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
func (o *poolOp) Do(in ...G.Value) (G.Value, error) {
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
func (o *poolBackOp) Do(in ...G.Value) (G.Value, error) {
	dy, err := f32s(in[1], len(o.l.y.data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	o.l.backward(dy)
	return o.l.dx.t, nil
}
