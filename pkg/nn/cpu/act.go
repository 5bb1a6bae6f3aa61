package cpu

import (
	"fmt"
	"math/rand/v2"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// reluOp: y = max(x, 0). Its backward reads y, not x: y > 0 exactly where
// x > 0.
type reluOp struct {
	opBase
	dims  int
	y, dx buf
}

func newReLU(name string, shape []int) *reluOp {
	return &reluOp{opBase: newBase(name), dims: len(shape), y: newBuf(shape...), dx: newBuf(shape...)}
}

// elemGrain is how many elements one task of an elementwise op covers.
const elemGrain = 1 << 14

func elementwise(n int, fn func(lo, hi int)) {
	parallel((n+elemGrain-1)/elemGrain, func(lo, hi int) {
		fn(lo*elemGrain, min(hi*elemGrain, n))
	})
}

func (o *reluOp) Arity() int    { return 1 }
func (o *reluOp) Type() hm.Type { return hm.NewFnType(tt(o.dims), tt(o.dims)) }
func (o *reluOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.y.t.Shape().Clone(), nil
}
func (o *reluOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	x, err := f32s(in[0], len(o.y.data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	elementwise(len(x), func(lo, hi int) {
		ys := o.y.data[lo:hi]
		for i, v := range x[lo:hi] {
			ys[i] = max(v, 0)
		}
	})
	return o.y.t, nil
}
func (o *reluOp) DiffWRT(int) []bool { return []bool{true} }
func (o *reluOp) SymDiff(_ G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&reluBackOp{opBase: newBase(o.name + "_back"), f: o}, out, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// reluBackOp: (y, dy) → dx.
type reluBackOp struct {
	opBase
	f *reluOp
}

func (o *reluBackOp) Arity() int { return 2 }
func (o *reluBackOp) Type() hm.Type {
	return hm.NewFnType(tt(o.f.dims), tt(o.f.dims), tt(o.f.dims))
}
func (o *reluBackOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.f.dx.t.Shape().Clone(), nil
}
func (o *reluBackOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	y, err := f32s(in[0], len(o.f.y.data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	dy, err := f32s(in[1], len(y))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	elementwise(len(y), func(lo, hi int) {
		dx := o.f.dx.data[lo:hi]
		for i, v := range y[lo:hi] {
			if v > 0 {
				dx[i] = dy[lo+i]
			} else {
				dx[i] = 0
			}
		}
	})
	return o.f.dx.t, nil
}

// dropoutOp zeroes each unit with probability p and scales the survivors
// by 1/(1−p), so a unit's expected value is unchanged and evaluation is
// the identity (gorgonia's own Dropout gets this wrong for p ≠ 0.5). The
// mask for step t comes from PCG(seed, t), so a run resumed at step t
// draws the masks the uninterrupted run would have.
type dropoutOp struct {
	opBase
	p        float64
	seed     uint64
	step     *uint64 // the Net's step counter
	training *bool   // the Net's mode; evaluation multiplies x by evalScale
	dims     int
	// keep is a kept unit's multiplier in training: 1/(1−p), or 1 in the
	// paper's form, whose evaluation multiplies by evalScale, 1−p (1 in
	// the inverted form).
	keep, evalScale float32

	mask  []float32 // 0 or keep
	y, dx buf
}

func newDropout(name string, p float64, paper bool, seed uint64, step *uint64, training *bool, shape []int) *dropoutOp {
	o := &dropoutOp{opBase: newBase(name), p: p, seed: seed, step: step, training: training, dims: len(shape),
		keep: float32(1 / (1 - p)), evalScale: 1}
	if paper {
		o.keep, o.evalScale = 1, float32(1-p)
	}
	o.y, o.dx = newBuf(shape...), newBuf(shape...)
	o.mask = make([]float32, len(o.y.data))
	return o
}

func (o *dropoutOp) sample() {
	r := rand.New(rand.NewPCG(o.seed, *o.step))
	keep := o.keep
	for i := range o.mask {
		if r.Float64() < o.p {
			o.mask[i] = 0
		} else {
			o.mask[i] = keep
		}
	}
}

func (o *dropoutOp) Arity() int    { return 1 }
func (o *dropoutOp) Type() hm.Type { return hm.NewFnType(tt(o.dims), tt(o.dims)) }
func (o *dropoutOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.y.t.Shape().Clone(), nil
}
func (o *dropoutOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	x, err := f32s(in[0], len(o.y.data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	if !*o.training || o.p == 0 {
		if s := o.evalScale; s != 1 && !*o.training {
			elementwise(len(x), func(lo, hi int) {
				ys := o.y.data[lo:hi]
				for i, v := range x[lo:hi] {
					ys[i] = v * s
				}
			})
			return o.y.t, nil
		}
		copy(o.y.data, x)
		return o.y.t, nil
	}
	o.sample()
	elementwise(len(x), func(lo, hi int) {
		ys, m := o.y.data[lo:hi], o.mask[lo:hi]
		for i, v := range x[lo:hi] {
			ys[i] = v * m[i]
		}
	})
	return o.y.t, nil
}
func (o *dropoutOp) DiffWRT(int) []bool { return []bool{true} }
func (o *dropoutOp) SymDiff(_ G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&dropoutBackOp{opBase: newBase(o.name + "_back"), f: o}, out, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// dropoutBackOp: (y, dy) → dy·mask; y only orders it after the forward.
type dropoutBackOp struct {
	opBase
	f *dropoutOp
}

func (o *dropoutBackOp) Arity() int { return 2 }
func (o *dropoutBackOp) Type() hm.Type {
	return hm.NewFnType(tt(o.f.dims), tt(o.f.dims), tt(o.f.dims))
}
func (o *dropoutBackOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.f.dx.t.Shape().Clone(), nil
}
func (o *dropoutBackOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	dy, err := f32s(in[1], len(o.f.y.data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	if o.f.p == 0 {
		copy(o.f.dx.data, dy)
		return o.f.dx.t, nil
	}
	elementwise(len(dy), func(lo, hi int) {
		dx, m := o.f.dx.data[lo:hi], o.f.mask[lo:hi]
		for i, v := range dy[lo:hi] {
			dx[i] = v * m[i]
		}
	})
	return o.f.dx.t, nil
}
