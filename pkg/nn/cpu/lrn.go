package cpu

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lrnLayer is cross-channel local response normalisation in cuDNN's form
// (see pkg/alexnet): y_c = x_c · s_c^−β with s_c = k + (α/n)·Σ x_j² over
// the n channels centred on c. It is one native op because composing it
// from gorgonia's elementwise ops cost 40% of an AlexNet step.
type lrnLayer struct {
	n, c, plane int
	size        int
	alpha, beta float32 // alpha already divided by size
	k           float32

	y   buf
	inv []float32 // 1/s, kept from forward for backward
	pw  []float32 // s^−β, likewise
	t   []float32 // backward scratch: dy·y/s
	acc []float32 // window sums, lrnBlock per task
	dx  buf
}

func newLRNLayer(n, c, h, w, size int, alpha, beta, k float64) *lrnLayer {
	l := &lrnLayer{n: n, c: c, plane: h * w, size: size,
		alpha: float32(alpha / float64(size)), beta: float32(beta), k: float32(k)}
	l.y = newBuf(n, c, h, w)
	l.dx = newBuf(n, c, h, w)
	l.inv = make([]float32, n*c*h*w)
	l.pw = make([]float32, n*c*h*w)
	l.t = make([]float32, n*c*h*w)
	l.acc = make([]float32, n*l.blocks()*lrnBlock)
	return l
}

// powNegBeta returns s^−β for the β other than 0.75 (every LRN here is
// 0.75, which lrnFwdRow takes with two square roots).
func (l *lrnLayer) powNegBeta(s float32) float32 {
	return float32(math.Pow(float64(s), -float64(l.beta)))
}

// lrnBlock is the spatial extent one parallel task covers: small enough to
// stay in cache across the channel window, large enough to amortise the
// task.
const lrnBlock = 512

// units splits the batch into (sample, spatial block) tasks and runs fn on
// each with the block's [p0, p1).
func (l *lrnLayer) units(fn func(n, p0, p1 int, acc []float32)) {
	blocks := l.blocks()
	parallel(l.n*blocks, func(lo, hi int) {
		for u := lo; u < hi; u++ {
			n, b := u/blocks, u%blocks
			fn(n, b*lrnBlock, min((b+1)*lrnBlock, l.plane), l.acc[u*lrnBlock:(u+1)*lrnBlock])
		}
	})
}

func (l *lrnLayer) blocks() int { return (l.plane + lrnBlock - 1) / lrnBlock }

// windowSums calls emit(c, sum) for every channel c with the sums over
// c's window of src's channels (restricted to [p0, p1) of sample base),
// sliding the window: add the channel entering, subtract the one leaving.
// sq squares src first. acc is the task's scratch.
func (l *lrnLayer) windowSums(src []float32, base, p0, p1 int, sq bool, acc []float32, emit func(c int, sum []float32)) {
	a := acc[:p1-p0]
	clear(a)
	h := l.size / 2
	add := func(j int, neg bool) {
		if j < 0 || j >= l.c {
			return
		}
		v := src[base+j*l.plane+p0 : base+j*l.plane+p1]
		switch {
		case sq && neg:
			sqSubRow(a, v)
		case sq:
			sqAddRow(a, v)
		case neg:
			subRow(a, v)
		default:
			addTo(a, v)
		}
	}
	for j := 0; j < h; j++ {
		add(j, false)
	}
	for c := 0; c < l.c; c++ {
		add(c+h, false)
		add(c-h-1, true)
		emit(c, a)
	}
}

func (l *lrnLayer) forward(x []float32) {
	l.units(func(n, p0, p1 int, acc []float32) {
		base := n * l.c * l.plane
		l.windowSums(x, base, p0, p1, true, acc, func(c int, sum []float32) {
			off := base + c*l.plane + p0
			xs, ys := x[off:off+len(sum)], l.y.data[off:off+len(sum)]
			inv, pw := l.inv[off:off+len(sum)], l.pw[off:off+len(sum)]
			if l.beta == 0.75 {
				lrnFwdRow(sum, xs, ys, inv, pw, l.k, l.alpha)
				return
			}
			for i, v := range sum {
				s := l.k + l.alpha*max(v, 0) // the sliding sum can dip below 0 by rounding
				p := l.powNegBeta(s)
				inv[i], pw[i] = 1/s, p
				ys[i] = xs[i] * p
			}
		})
	})
}

// backward: dx_i = dy_i·s_i^−β − (2αβ/n)·x_i·Σ_{j∈W(i)} dy_j·y_j/s_j, where
// W is symmetric, so the channels whose windows contain i are W(i).
func (l *lrnLayer) backward(x, dy []float32) {
	coef := 2 * l.alpha * l.beta
	l.units(func(n, p0, p1 int, acc []float32) {
		base := n * l.c * l.plane
		for c := 0; c < l.c; c++ {
			off := base + c*l.plane
			mul3Row(l.t[off+p0:off+p1], dy[off+p0:off+p1], l.y.data[off+p0:off+p1], l.inv[off+p0:off+p1])
		}
		l.windowSums(l.t, base, p0, p1, false, acc, func(c int, sum []float32) {
			off := base + c*l.plane + p0
			xs, ds, pw, gs := x[off:off+len(sum)], dy[off:off+len(sum)], l.pw[off:off+len(sum)], l.dx.data[off:off+len(sum)]
			lrnBwdRow(gs, ds, pw, xs, sum, coef)
		})
	})
}

// The row kernels below are LRN's loops, in Go; on amd64 with AVX2 the
// dispatchers (lrn_amd64.go) run their bulk in assembly that does the same
// float operations in the same order, so results are identical bit for
// bit. The conversions to float32 stop a compiler from fusing a multiply
// and an add (Go allows it; amd64 at GOAMD64=v3 may), which the
// assembly does not do.

// sqAddGo: a[i] += x[i]²; sqSubGo: a[i] −= x[i]²; subGo: a[i] −= x[i].
func sqAddGo(a, x []float32) {
	a = a[:len(x)]
	for i, v := range x {
		a[i] += float32(v * v)
	}
}

func sqSubGo(a, x []float32) {
	a = a[:len(x)]
	for i, v := range x {
		a[i] -= float32(v * v)
	}
}

func subGo(a, x []float32) {
	a = a[:len(x)]
	for i, v := range x {
		a[i] -= v
	}
}

// lrnFwdGo is forward's β = 0.75 loop: s = k + α·max(sum, 0) (the
// sliding sum can dip below 0 by rounding), inv = 1/s, pw = s^−0.75 by
// two float64 square roots, y = x·pw.
func lrnFwdGo(sum, x, y, inv, pw []float32, k, alpha float32) {
	x, y, inv, pw = x[:len(sum)], y[:len(sum)], inv[:len(sum)], pw[:len(sum)]
	for i, v := range sum {
		s := k + float32(alpha*max(v, 0))
		r := math.Sqrt(float64(s))
		p := float32(1 / float64(r*math.Sqrt(r)))
		inv[i], pw[i] = 1/s, p
		y[i] = x[i] * p
	}
}

// mul3Go: t = d·y·inv, left to right.
func mul3Go(t, d, y, inv []float32) {
	d, y, inv = d[:len(t)], y[:len(t)], inv[:len(t)]
	for i := range t {
		t[i] = float32(d[i]*y[i]) * inv[i]
	}
}

// lrnBwdGo: g = d·pw − (coef·x)·sum.
func lrnBwdGo(g, d, pw, x, sum []float32, coef float32) {
	d, pw, x, sum = d[:len(g)], pw[:len(g)], x[:len(g)], sum[:len(g)]
	for i := range g {
		g[i] = float32(d[i]*pw[i]) - float32(float32(coef*x[i])*sum[i])
	}
}

type lrnOp struct {
	opBase
	l *lrnLayer
}

func (o *lrnOp) Arity() int    { return 1 }
func (o *lrnOp) Type() hm.Type { return hm.NewFnType(tt(4), tt(4)) }
func (o *lrnOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.l.y.t.Shape().Clone(), nil
}
func (o *lrnOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	x, err := f32s(in[0], len(o.l.y.data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	o.l.forward(x)
	return o.l.y.t, nil
}
func (o *lrnOp) DiffWRT(int) []bool { return []bool{true} }
func (o *lrnOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	// out is a child so that the backward runs after this op's forward
	// filled scale, which gorgonia only guarantees through data edges.
	dx, err := G.ApplyOp(&lrnBackOp{opBase: newBase(o.name + "_back"), l: o.l}, in[0], out, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// lrnBackOp: (x, y, dy) → dx.
type lrnBackOp struct {
	opBase
	l *lrnLayer
}

func (o *lrnBackOp) Arity() int    { return 3 }
func (o *lrnBackOp) Type() hm.Type { return hm.NewFnType(tt(4), tt(4), tt(4), tt(4)) }
func (o *lrnBackOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.l.dx.t.Shape().Clone(), nil
}
func (o *lrnBackOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	x, err := f32s(in[0], len(o.l.y.data))
	if err != nil {
		return nil, fmt.Errorf("%s input: %w", o.name, err)
	}
	dy, err := f32s(in[2], len(o.l.y.data))
	if err != nil {
		return nil, fmt.Errorf("%s output gradient: %w", o.name, err)
	}
	o.l.backward(x, dy)
	return o.l.dx.t, nil
}
