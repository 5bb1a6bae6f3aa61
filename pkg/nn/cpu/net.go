// Package cpu is the CPU training backend: it builds a gorgonia expression
// graph from an alexnet.Spec, differentiates it with gorgonia.Grad, and
// runs it on gorgonia's tape machine.
//
// Every layer is a native gorgonia Op written here (convolution with
// groups, LRN, max pooling, ReLU, dropout, fully connected, softmax
// cross-entropy), each with a hand-written backward op. gorgonia's own
// layers are either slow on this path (im2col, col2im and the NCHW
// transpose run on one goroutine; LRN composed from elementwise ops is 40%
// of a step) or wrong (AveragePool2D, Dropout's gradient for p ≠ 0.5).
// Inside an op, work is split across GOMAXPROCS goroutines and the GEMMs go
// to pkg/blas (OpenBLAS when it loads, gonum otherwise).
//
// Ownership and concurrency: a Net owns its parameters, momentum, the
// activations of one batch and a scratch workspace; a step allocates
// little (gorgonia's bookkeeping, about 200 kB). A Net is not safe for
// concurrent use. Ops split their work into chunks whose shapes depend
// only on the spec and batch size, write disjoint outputs and sum in a
// fixed order, so training is bit-reproducible: the same seed and batches
// give the same parameters, whatever GOMAXPROCS (with the same BLAS
// library).
//
// The first New sets gorgonia's BLAS to pkg/blas and OpenBLAS to one
// thread per call: ops run GEMMs on several goroutines at once, and
// OpenBLAS's own threads would only oversubscribe the cores.
package cpu

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/blas"
)

// Param is one learnable tensor: W holds the values and V the momentum.
// Both are the Net's live storage; write them only between steps (to load
// a checkpoint).
type Param struct {
	Name  string
	Shape []int
	W, V  []float32
}

type param struct {
	Param
	grad []float32 // the backward op's buffer
	bias bool
}

// Net is a network of one Spec at one batch size, ready to train.
type Net struct {
	spec    alexnet.Spec
	batch   int
	classes int

	g      *G.ExprGraph
	train  G.VM
	eval   G.VM
	input  buf
	loss   *lossOp
	logits []float32 // the last layer's output buffer

	params   []*param
	dropouts []*dropoutOp

	step     uint64
	training bool
	// spareBiases leaves the biases out of the update's weight decay.
	spareBiases bool
}

var useBLAS sync.Once

// New builds the training graph of spec for batches of batch images.
// params maps every name of spec.Params() to its values (copied); nil
// draws them with alexnet.InitParams under the spec's default scheme.
// seed fixes the dropout masks (and the initial values when params is nil).
func New(spec alexnet.Spec, batch int, params map[string][]float32, seed uint64) (*Net, error) {
	useBLAS.Do(func() {
		G.Use(blas.Implementation{})
		blas.SetThreads(1)
	})
	if batch < 1 {
		return nil, fmt.Errorf("cpu: batch %d", batch)
	}
	if _, err := spec.Shapes(); err != nil {
		return nil, fmt.Errorf("cpu: %s: %w", spec.Name, err)
	}
	if params == nil {
		var err error
		if params, err = alexnet.InitParams(spec, "", seed); err != nil {
			return nil, fmt.Errorf("cpu: %w", err)
		}
	}
	n := &Net{spec: spec, batch: batch, classes: spec.Classes, training: true}
	for _, ps := range spec.Params() {
		v, ok := params[ps.Name]
		if !ok {
			return nil, fmt.Errorf("cpu: no values for parameter %s", ps.Name)
		}
		if len(v) != ps.Size() {
			return nil, fmt.Errorf("cpu: parameter %s has %d values, want %d (%v)", ps.Name, len(v), ps.Size(), ps.Shape)
		}
		n.params = append(n.params, &param{Param: Param{
			Name: ps.Name, Shape: slices.Clone(ps.Shape),
			W: slices.Clone(v), V: make([]float32, len(v)),
		}, bias: ps.Bias})
	}
	if err := n.build(seed); err != nil {
		return nil, fmt.Errorf("cpu: building %s: %w", spec.Name, err)
	}
	return n, nil
}

// build lays the spec's layers into the graph, adds the loss and its
// gradient, and compiles one program for training and one, over the
// forward subgraph only, for evaluation.
func (n *Net) build(seed uint64) error {
	g := G.NewGraph()
	n.g = g
	in := n.spec.Input
	shape := []int{n.batch, in[0], in[1], in[2]}
	n.input = newBuf(shape...)
	x := G.NewTensor(g, G.Float32, 4, G.WithShape(shape...), G.WithName("input"), G.WithValue(n.input.t))
	cur := x
	ws := newWorkspace()
	needDx := false // nothing before the first parametrised layer wants a gradient
	inputs := G.Nodes{x}
	var wrt G.Nodes
	pi := 0
	addParams := func(w, b buf) (*G.Node, *G.Node) {
		nodes := make([]*G.Node, 2)
		for j, gb := range []buf{w, b} {
			p := n.params[pi]
			t := tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(p.W))
			nodes[j] = G.NewTensor(g, G.Float32, len(p.Shape), G.WithShape(p.Shape...), G.WithName(p.Name), G.WithValue(t))
			p.grad = gb.data
			pi++
		}
		inputs = append(inputs, nodes...)
		wrt = append(wrt, nodes...)
		return nodes[0], nodes[1]
	}
	var err error
	for i, l := range n.spec.Layers {
		switch l.Kind {
		case alexnet.Conv:
			groups := max(1, l.Groups)
			geom := convGeom{C: shape[1], H: shape[2], W: shape[3], O: l.Out, K: l.K, S: l.Stride, P: l.Pad, Groups: groups}
			geom.OH, geom.OW = (geom.H+2*l.Pad-l.K)/l.Stride+1, (geom.W+2*l.Pad-l.K)/l.Stride+1
			cl := newConvLayer(geom, n.batch, needDx, ws)
			w, b := addParams(cl.dw, cl.db)
			cur, err = G.ApplyOp(&convOp{opBase: newBase(l.Name), l: cl}, cur, w, b)
			shape = []int{n.batch, geom.O, geom.OH, geom.OW}
			needDx = true
		case alexnet.FC:
			inSize := 1
			for _, d := range shape[1:] {
				inSize *= d
			}
			fl := newFCLayer(n.batch, inSize, l.Out, shape, needDx)
			w, b := addParams(fl.dw, fl.db)
			cur, err = G.ApplyOp(&fcOp{opBase: newBase(l.Name), l: fl}, cur, w, b)
			shape = []int{n.batch, l.Out}
			n.logits = fl.y.data
			needDx = true
		case alexnet.ReLU:
			cur, err = G.ApplyOp(newReLU(l.Name, shape), cur)
		case alexnet.LRN:
			p := l.LRN
			cur, err = G.ApplyOp(&lrnOp{opBase: newBase(l.Name),
				l: newLRNLayer(shape[0], shape[1], shape[2], shape[3], p.Size, p.Alpha, p.Beta, p.K)}, cur)
		case alexnet.MaxPool:
			pl := newPoolLayer(shape[0], shape[1], shape[2], shape[3], l.K, l.Stride, l.Pad)
			cur, err = G.ApplyOp(&poolOp{opBase: newBase(l.Name), l: pl}, cur)
			shape = []int{n.batch, shape[1], pl.oh, pl.ow}
		case alexnet.Dropout:
			// Each dropout layer gets its own stream: seed mixed with the
			// layer index by a 64-bit odd constant.
			ds := seed ^ (uint64(i+1) * 0x9E3779B97F4A7C15)
			d := newDropout(l.Name, l.P, n.spec.PaperDropout, ds, &n.step, &n.training, shape)
			n.dropouts = append(n.dropouts, d)
			cur, err = G.ApplyOp(d, cur)
		case alexnet.Flatten:
			// The fc op reads any NCHW input as [N, C·H·W]: nothing to do.
		default:
			err = fmt.Errorf("layer %s: kind %q not supported", l.Name, l.Kind)
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Name, err)
		}
	}
	if n.logits == nil || shape[1] != n.classes {
		return errors.New("the spec does not end in an fc layer with one output per class")
	}
	logits := cur
	n.loss = newLoss("loss", n.batch, n.classes)
	cost, err := G.ApplyOp(n.loss, logits)
	if err != nil {
		return fmt.Errorf("loss: %w", err)
	}
	if _, err := G.Grad(cost, wrt...); err != nil {
		return fmt.Errorf("gradient: %w", err)
	}
	n.train = G.NewTapeMachine(g)
	prog, locs, err := G.CompileFunction(g, inputs, G.Nodes{logits})
	if err != nil {
		return fmt.Errorf("compiling the forward pass: %w", err)
	}
	n.eval = G.NewTapeMachine(g, G.WithPrecompiled(prog, locs))
	return nil
}

// Spec returns the network's spec.
func (n *Net) Spec() alexnet.Spec { return n.spec }

// Batch returns the batch size the graph was built for.
func (n *Net) Batch() int { return n.batch }

// Step returns the number of training steps taken (or set by SetStep).
func (n *Net) Step() uint64 { return n.step }

// SetStep sets the step counter, which selects the dropout masks: a run
// resumed from a checkpoint at step t sets t to draw the same masks as the
// run it continues.
func (n *Net) SetStep(t uint64) { n.step = t }

// SetBiasDecay says whether Update's weight decay reaches the biases (on,
// the default, as in PyTorch's SGD) or the weights alone, as in the
// authors' cuda-convnet, whose layers have a weight cost and none for
// biases.
func (n *Net) SetBiasDecay(on bool) { n.spareBiases = !on }

// Backend describes what computes: the graph engine, the BLAS and the
// number of goroutines ops use.
func (n *Net) Backend() string {
	procs, noun := runtime.GOMAXPROCS(0), "goroutines"
	if procs == 1 {
		noun = "goroutine"
	}
	return fmt.Sprintf("gorgonia graph, native ops on %d %s, BLAS %s", procs, noun, blas.Backend())
}

func (n *Net) sampleSize() int { return n.spec.Input[0] * n.spec.Input[1] * n.spec.Input[2] }

// TrainStep runs forward and backward on one batch: x holds batch images,
// NCHW, normalised; labels their classes. It returns the mean loss and
// how many images had their label first (correct1) or among the first five
// (correct5) by logit, counting ties in the label's favour. Gradients stay
// in the Net for Update.
func (n *Net) TrainStep(x []float32, labels []int32) (loss float64, correct1, correct5 int, err error) {
	if len(x) != n.batch*n.sampleSize() {
		return 0, 0, 0, fmt.Errorf("cpu: TrainStep got %d values, want %d (batch %d × %v)", len(x), n.batch*n.sampleSize(), n.batch, n.spec.Input)
	}
	if len(labels) != n.batch {
		return 0, 0, 0, fmt.Errorf("cpu: TrainStep got %d labels for a batch of %d", len(labels), n.batch)
	}
	for i, lab := range labels {
		if lab < 0 || int(lab) >= n.classes {
			return 0, 0, 0, fmt.Errorf("cpu: TrainStep: image %d has label %d, want 0..%d", i, lab, n.classes-1)
		}
	}
	copy(n.input.data, x)
	n.loss.labels = labels
	defer func() { n.loss.labels = nil }()
	n.training = true
	err = n.train.RunAll()
	n.train.Reset()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("cpu: step %d: %w", n.step, err)
	}
	n.step++
	correct1, correct5 = topK(n.logits, labels, n.classes)
	return n.loss.loss, correct1, correct5, nil
}

// topK counts labels ranked first and within the first five.
func topK(logits []float32, labels []int32, k int) (c1, c5 int) {
	for i, lab := range labels {
		row := logits[i*k : (i+1)*k]
		target := row[lab]
		above := 0
		for _, v := range row {
			if v > target {
				above++
			}
		}
		if above == 0 {
			c1++
		}
		if above < 5 {
			c5++
		}
	}
	return c1, c5
}

// Update applies the paper's SGD step to every parameter, in place, with
// the gradients of the last TrainStep:
//
//	v ← momentum·v − weightDecay·lr·w − lr·∂L/∂w
//	w ← w + v
//
// (written out because gorgonia's Momentum with L2 never decays weights).
// Biases take weightDecay 0 after SetBiasDecay(false).
func (n *Net) Update(lr, momentum, weightDecay float32) {
	for _, p := range n.params {
		w, v, g := p.W, p.V, p.grad
		wd := weightDecay
		if p.bias && n.spareBiases {
			wd = 0
		}
		elementwise(len(w), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				v[i] = momentum*v[i] - wd*lr*w[i] - lr*g[i]
				w[i] += v[i]
			}
		})
	}
}

// Eval returns the logits ([batchLen, classes], row-major) of the first
// batchLen images of x with dropout off. batchLen may be less than the
// batch size (the last batch of an epoch): the rest is padded with zeros
// and its logits are dropped.
func (n *Net) Eval(x []float32, batchLen int) ([]float32, error) {
	if batchLen < 1 || batchLen > n.batch {
		return nil, fmt.Errorf("cpu: Eval of %d images with batch size %d", batchLen, n.batch)
	}
	if len(x) != batchLen*n.sampleSize() {
		return nil, fmt.Errorf("cpu: Eval got %d values for %d images of %v", len(x), batchLen, n.spec.Input)
	}
	copy(n.input.data, x)
	clear(n.input.data[len(x):])
	n.training = false
	err := n.eval.RunAll()
	n.eval.Reset()
	n.training = true
	if err != nil {
		return nil, fmt.Errorf("cpu: eval: %w", err)
	}
	return slices.Clone(n.logits[:batchLen*n.classes]), nil
}

// Params returns the parameters in spec order, with live slices.
func (n *Net) Params() []Param {
	out := make([]Param, len(n.params))
	for i, p := range n.params {
		out[i] = p.Param
	}
	return out
}

// Grads returns a copy of each parameter's gradient from the last
// TrainStep (the mean over the batch of ∂loss/∂w).
func (n *Net) Grads() map[string][]float32 {
	out := make(map[string][]float32, len(n.params))
	for _, p := range n.params {
		out[p.Name] = slices.Clone(p.grad)
	}
	return out
}

// Close releases the compiled programs.
func (n *Net) Close() error {
	return errors.Join(n.train.Close(), n.eval.Close())
}
