package cpu

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/alexnet-repro/alexnet/pkg/blas"
)

// fcLayer is a fully connected layer y = x·wᵀ + b with w stored [out, in]
// (PyTorch's layout). It reads any input whose per-sample size is in, so
// flattening NCHW is free.
type fcLayer struct {
	n, in, out int
	inDims     int // dimensions of the input tensor (4 after a pool, 2 after fc)
	needDx     bool

	y, dx, dw, db buf
}

func newFCLayer(n, in, out int, inShape []int, needDx bool) *fcLayer {
	l := &fcLayer{n: n, in: in, out: out, inDims: len(inShape), needDx: needDx}
	l.y = newBuf(n, out)
	if needDx {
		l.dx = newBuf(inShape...)
	} else {
		l.dx = newBuf(1)
	}
	l.dw = newBuf(out, in)
	l.db = newBuf(out)
	return l
}

// fcBlock is the width of one GEMM call: every product here is split into
// blocks of output columns (or dw rows), each a disjoint part of the
// result, so goroutines share the work without changing any sum.
const fcBlock = 256

// blocks calls fn once per fcBlock-wide block of [0, n). Each block is its
// own GEMM even where one goroutine takes several in a row: OpenBLAS's
// rounding depends on a call's width, and handing fn a goroutine's whole
// range made the bits depend on GOMAXPROCS (small-fc's fc4 backward).
func blocks(n int, fn func(lo, hi int)) {
	parallel((n+fcBlock-1)/fcBlock, func(lo, hi int) {
		for b := lo; b < hi; b++ {
			fn(b*fcBlock, min((b+1)*fcBlock, n))
		}
	})
}

func (l *fcLayer) forward(x, w, b []float32) {
	y := l.y.data
	for i := 0; i < l.n; i++ {
		copy(y[i*l.out:(i+1)*l.out], b)
	}
	blocks(l.out, func(o0, o1 int) {
		blas.Sgemm(false, true, l.n, o1-o0, l.in, 1, x, l.in, w[o0*l.in:], l.in, 1, y[o0:], l.out)
	})
}

func (l *fcLayer) backward(x, w, dy []float32) {
	db := l.db.data
	clear(db)
	for i := 0; i < l.n; i++ {
		for j, v := range dy[i*l.out : (i+1)*l.out] {
			db[j] += v
		}
	}
	blocks(l.out, func(o0, o1 int) {
		blas.Sgemm(true, false, o1-o0, l.in, l.n, 1, dy[o0:], l.out, x, l.in, 0, l.dw.data[o0*l.in:], l.in)
	})
	if l.needDx {
		blocks(l.in, func(i0, i1 int) {
			blas.Sgemm(false, false, l.n, i1-i0, l.out, 1, dy, l.out, w[i0:], l.in, 0, l.dx.data[i0:], l.in)
		})
	}
}

type fcOp struct {
	opBase
	l *fcLayer
}

func (o *fcOp) Arity() int    { return 3 }
func (o *fcOp) Type() hm.Type { return hm.NewFnType(tt(o.l.inDims), tt(2), tt(1), tt(2)) }
func (o *fcOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{o.l.n, o.l.out}, nil
}
func (o *fcOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	x, w, b, err := o.l.inputs(o.name, in, o.l.out)
	if err != nil {
		return nil, err
	}
	o.l.forward(x, w, b)
	return o.l.y.t, nil
}

// inputs unpacks (x, w, third) where third is the bias (forward) or dy
// (backward), thirdLen elements long.
func (l *fcLayer) inputs(name string, in []G.Value, thirdLen int) (x, w, third []float32, err error) {
	if x, err = f32s(in[0], l.n*l.in); err != nil {
		return nil, nil, nil, fmt.Errorf("%s input: %w", name, err)
	}
	if w, err = f32s(in[1], l.out*l.in); err != nil {
		return nil, nil, nil, fmt.Errorf("%s weight: %w", name, err)
	}
	if third, err = f32s(in[2], thirdLen); err != nil {
		return nil, nil, nil, fmt.Errorf("%s third input: %w", name, err)
	}
	return x, w, third, nil
}

func (o *fcOp) DiffWRT(int) []bool { return []bool{o.l.needDx, true, true} }
func (o *fcOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	return weightedGrads(o.name, &fcBackOp{opBase: newBase(o.name + "_back"), l: o.l}, in, grad, o.l.dw, o.l.db, o.l.needDx)
}

// fcBackOp: (x, w, dy) → dx, leaving dw and db in the layer.
type fcBackOp struct {
	opBase
	l *fcLayer
}

func (o *fcBackOp) Arity() int { return 3 }
func (o *fcBackOp) Type() hm.Type {
	return hm.NewFnType(tt(o.l.inDims), tt(2), tt(2), tt(o.l.dx.t.Dims()))
}
func (o *fcBackOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.l.dx.t.Shape().Clone(), nil
}
func (o *fcBackOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	x, w, dy, err := o.l.inputs(o.name, in, o.l.n*o.l.out)
	if err != nil {
		return nil, err
	}
	o.l.backward(x, w, dy)
	return o.l.dx.t, nil
}
