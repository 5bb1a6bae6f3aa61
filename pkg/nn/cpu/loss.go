package cpu

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lossOp is the mean softmax cross-entropy of logits [N, K] against
// labels, computed through log-softmax (subtract the row maximum before
// exponentiating) in float64. Labels are not a graph input: the Net sets
// them before each run.
type lossOp struct {
	opBase
	n, k   int
	labels []int32
	loss   float64
	prob   []float64 // softmax, kept for backward
	dx     buf
}

func newLoss(name string, n, k int) *lossOp {
	return &lossOp{opBase: newBase(name), n: n, k: k, prob: make([]float64, n*k), dx: newBuf(n, k)}
}

func (o *lossOp) Arity() int    { return 1 }
func (o *lossOp) Type() hm.Type { return hm.NewFnType(tt(2), G.Float32) }
func (o *lossOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (o *lossOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	z, err := f32s(in[0], o.n*o.k)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	if len(o.labels) != o.n {
		return nil, fmt.Errorf("%s: %d labels for a batch of %d", o.name, len(o.labels), o.n)
	}
	var total float64
	for i := 0; i < o.n; i++ {
		lab := int(o.labels[i])
		if lab < 0 || lab >= o.k {
			return nil, fmt.Errorf("%s: sample %d has label %d, want 0..%d", o.name, i, lab, o.k-1)
		}
		row, p := z[i*o.k:(i+1)*o.k], o.prob[i*o.k:(i+1)*o.k]
		m := float64(row[0])
		for _, v := range row {
			m = max(m, float64(v))
		}
		var sum float64
		for j, v := range row {
			p[j] = math.Exp(float64(v) - m)
			sum += p[j]
		}
		lse := m + math.Log(sum)
		for j := range p {
			p[j] /= sum
		}
		total += lse - float64(row[lab])
	}
	o.loss = total / float64(o.n)
	return G.NewF32(float32(o.loss)), nil
}
func (o *lossOp) DiffWRT(int) []bool { return []bool{true} }
func (o *lossOp) SymDiff(_ G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(&lossBackOp{opBase: newBase(o.name + "_back"), f: o}, out, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// lossBackOp: (loss, dloss) → dlogits = dloss·(softmax − onehot)/N.
type lossBackOp struct {
	opBase
	f *lossOp
}

func (o *lossBackOp) Arity() int    { return 2 }
func (o *lossBackOp) Type() hm.Type { return hm.NewFnType(G.Float32, G.Float32, tt(2)) }
func (o *lossBackOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.f.dx.t.Shape().Clone(), nil
}
func (o *lossBackOp) Do(in ...G.Value) (_ G.Value, err error) {
	defer recoverOp(o.name, &err)
	g := 1.0
	if s, ok := in[1].(*G.F32); ok {
		g = float64(*s)
	} else {
		return nil, fmt.Errorf("%s: loss gradient is %T, want *F32", o.name, in[1])
	}
	f := o.f
	scale := g / float64(f.n)
	for i := 0; i < f.n; i++ {
		for j := 0; j < f.k; j++ {
			v := f.prob[i*f.k+j]
			if j == int(f.labels[i]) {
				v--
			}
			f.dx.data[i*f.k+j] = float32(v * scale)
		}
	}
	return f.dx.t, nil
}
