package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/nn/cpu"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// Tolerances of the cross-check: relative error (see RelErr) of logits,
// gradients and updated parameters against the CPU backend.
const (
	TolFP32 = 1e-3
	TolTF32 = 1e-2
)

// Tolerance is the cross-check bound for a precision.
func Tolerance(p Precision) float64 {
	if p == FP32 {
		return TolFP32
	}
	return TolTF32
}

// RelErr is cuda.RelErr, max|got − want| / max|want| (+Inf for a NaN,
// an infinity or a length mismatch): the cross-check's, the layer
// check's and the accuracy gate's one measure of error.
func RelErr(got, want []float32) float64 { return cuda.RelErr(got, want) }

// TensorErr is one tensor's error in a cross-check.
type TensorErr struct {
	Name   string
	RelErr float64
}

// CrossCheckResult compares one GPU precision with the CPU backend on
// the same weights and batch: evaluation logits (dropout off), then one
// training step (dropout on, same masks): its loss, every gradient, and
// every weight and momentum after the SGD update.
//
// Gradients compared end to end this way can differ by more than the
// arithmetic's error. Where two inputs of a max-pooling window (or a
// ReLU's input and zero) are closer than the two implementations'
// rounding of the layers below, the gradient takes a different path in
// each: PyTorch's own float32 and float64 steps of alexnet-owt, on four
// batches of eight images of each kind, differ by 1.3e-2 on one batch of
// pixels and by 3.1e-3 and 3.6e-4 on two of uniform noise, where the
// other five stay under 2.1e-6 (tools/gpucheck/torch_floor.py,
// docs/gpu-machine.md). The layer check
// (layercheck_test.go) compares every layer on the inputs the GPU's layer
// itself received, which no such path can move.
type CrossCheckResult struct {
	Model         string
	Precision     Precision
	Deterministic bool // the GPU ran with Options.Deterministic
	Batch         int
	Tolerance     float64

	InputExact bool // the normalised input equals the CPU's bit for bit
	MasksEqual bool // every dropout mask equals the CPU's

	Logits        float64 // rel err of the evaluation logits
	Loss, CPULoss float64
	LossErr       float64 // |loss − CPU loss| / |CPU loss|
	Grads         []TensorErr
	Params        []TensorErr // after the update, weights and momenta together (worst of the two)
	GPUTime       time.Duration
}

// Worst is the largest relative error of all the compared quantities.
func (r CrossCheckResult) Worst() float64 {
	w := max(r.Logits, r.LossErr)
	for _, g := range append(append([]TensorErr(nil), r.Grads...), r.Params...) {
		w = max(w, g.RelErr)
	}
	return w
}

// OK reports whether everything is within the tolerance and the input
// and masks are exact.
func (r CrossCheckResult) OK() bool {
	return r.InputExact && r.MasksEqual && r.Worst() <= r.Tolerance
}

func (r CrossCheckResult) String() string {
	var b strings.Builder
	verdict := "OK"
	if !r.OK() {
		verdict = "FAILED"
	}
	mode := ""
	if r.Deterministic {
		mode = " deterministic"
	}
	fmt.Fprintf(&b, "cross-check %s %s%s batch %d: %s (worst rel err %.2e, tolerance %.0e; input exact %v, masks equal %v; GPU step %v)\n",
		r.Model, r.Precision, mode, r.Batch, verdict, r.Worst(), r.Tolerance, r.InputExact, r.MasksEqual, r.GPUTime.Round(time.Microsecond))
	fmt.Fprintf(&b, "  logits          rel err %.2e\n  loss            %.7f vs CPU %.7f (rel err %.2e)\n", r.Logits, r.Loss, r.CPULoss, r.LossErr)
	for _, g := range r.Grads {
		fmt.Fprintf(&b, "  grad %-14s rel err %.2e\n", g.Name, g.RelErr)
	}
	for _, p := range r.Params {
		fmt.Fprintf(&b, "  step %-14s rel err %.2e\n", p.Name, p.RelErr)
	}
	return b.String()
}

// CrossCheckInput is a continuous batch for the layer check and the
// oracle, n images of spec's input already normalised: uniform in
// [-2, 2), about the range of normalised pixels, from seed.
func CrossCheckInput(spec alexnet.Spec, n int, seed uint64) []float32 {
	in := spec.Input
	x := make([]float32, n*in[0]*in[1]*in[2])
	rng := rand.New(rand.NewPCG(seed, 0xf10a7))
	for i := range x {
		x[i] = 4*rng.Float32() - 2
	}
	return x
}

// CrossCheckBatch is a synthetic batch for cross-checks: uniform random
// pixels, labels and lighting offsets, from seed.
func CrossCheckBatch(spec alexnet.Spec, n int, seed uint64) *pipeline.Slot {
	crop := spec.Input[1]
	s := pipeline.NewSlot(n, 1, crop)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := range s.Pixels {
		s.Pixels[i] = uint8(rng.IntN(256))
	}
	for i := range n {
		s.Labels[i] = int32(rng.IntN(spec.Classes))
		for c := range 3 {
			s.Offsets[i][c] = float32(rng.NormFloat64() * 7)
		}
	}
	s.N, s.Crop, s.Views = n, crop, 1
	return s
}

// CrossCheck runs spec on the CPU backend and on the GPU in each
// precision, from the same initial weights (the spec's scheme, seed), on
// the same batch, and reports the differences. dev may be nil (cuda.Init).
// deterministic runs the GPU as train --deterministic does: its own
// algorithm choices and max pooling, checked against the same CPU figures.
func CrossCheck(spec alexnet.Spec, batch int, seed uint64, precisions []Precision, deterministic bool, dev *cuda.Device) ([]CrossCheckResult, error) {
	return crossCheck(spec, batch, seed, precisions, deterministic, func(params map[string][]float32, opt Options) (*Net, error) {
		opt.Device = dev
		return New(spec, batch, params, opt)
	})
}

// crossCheck is CrossCheck with the way to build the GPU net left open,
// so the tests can run it on the host engine.
func crossCheck(spec alexnet.Spec, batch int, seed uint64, precisions []Precision, deterministic bool,
	build func(params map[string][]float32, opt Options) (*Net, error)) ([]CrossCheckResult, error) {
	params, err := alexnet.InitParams(spec, "", seed)
	if err != nil {
		return nil, err
	}
	mean, std := alexnet.ImageNetMean, spec.InputStd(alexnet.ImageNetStd)
	s := CrossCheckBatch(spec, batch, seed)
	x := s.Normalize(nil, mean, std)
	lr, momentum, wd := float32(0.01), float32(0.9), float32(0.0005)

	ref, err := cpu.New(spec, batch, params, seed)
	if err != nil {
		return nil, err
	}
	defer ref.Close()
	refLogits, err := ref.Eval(x, batch)
	if err != nil {
		return nil, err
	}
	refLoss, _, _, err := ref.TrainStep(x, s.Labels[:batch])
	if err != nil {
		return nil, err
	}
	refGrads := ref.Grads()
	ref.Update(lr, momentum, wd)
	refParams := ref.Params()

	var out []CrossCheckResult
	for _, p := range precisions {
		r, err := crossCheckGPU(spec, batch, seed, p, deterministic, build, params, s, x, mean, std, lr, momentum, wd, refLogits, refLoss, refGrads, refParams)
		if err != nil {
			return out, fmt.Errorf("gpu: cross-check %s %s: %w", spec.Name, p, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func crossCheckGPU(spec alexnet.Spec, batch int, seed uint64, p Precision, deterministic bool,
	build func(params map[string][]float32, opt Options) (*Net, error), params map[string][]float32,
	s *pipeline.Slot, x []float32, mean, std [3]float32, lr, momentum, wd float32,
	refLogits []float32, refLoss float64, refGrads map[string][]float32, refParams []cpu.Param) (CrossCheckResult, error) {
	r := CrossCheckResult{Model: spec.Name, Precision: p, Deterministic: deterministic, Batch: batch, Tolerance: Tolerance(p), CPULoss: refLoss}
	net, err := build(params, Options{Precision: p, Seed: seed, Mean: mean, Std: std, Deterministic: deterministic})
	if err != nil {
		return r, err
	}
	defer net.Close()
	logits, err := net.Eval(s)
	if err != nil {
		return r, err
	}
	r.Logits = RelErr(logits, refLogits)
	t0 := time.Now()
	if r.Loss, _, err = net.TrainStep(s); err != nil {
		return r, err
	}
	r.GPUTime = time.Since(t0)
	r.LossErr = math.Abs(r.Loss-refLoss) / math.Abs(refLoss)
	in, err := net.Input()
	if err != nil {
		return r, err
	}
	r.InputExact = RelErr(in, x) == 0
	masks, err := net.DropoutMasks()
	if err != nil {
		return r, err
	}
	r.MasksEqual = true
	for i, l := range spec.Layers {
		if l.Kind != alexnet.Dropout || l.P == 0 {
			continue
		}
		m := masks[l.Name]
		rng := rand.New(rand.NewPCG(dropoutSeed(seed, i), 0))
		for _, v := range m {
			if (v == 1) == (rng.Float64() < l.P) {
				r.MasksEqual = false
				break
			}
		}
	}
	grads, err := net.Grads()
	if err != nil {
		return r, err
	}
	for _, ps := range spec.Params() {
		r.Grads = append(r.Grads, TensorErr{ps.Name, RelErr(grads[ps.Name], refGrads[ps.Name])})
	}
	if err := net.Update(lr, momentum, wd); err != nil {
		return r, err
	}
	got, err := net.Params()
	if err != nil {
		return r, err
	}
	for i, rp := range refParams {
		r.Params = append(r.Params, TensorErr{rp.Name, max(RelErr(got[i].W, rp.W), RelErr(got[i].V, rp.V))})
	}
	return r, nil
}
