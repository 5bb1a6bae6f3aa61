package trainer

import (
	"fmt"
	"runtime"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/blas"
	"github.com/alexnet-repro/alexnet/pkg/nn/cpu"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// Backend is what the loop needs from a device. Batches arrive as the
// pipeline's slots (uint8 NHWC plus lighting offsets); a backend
// normalises them itself, on the CPU in Go and on a GPU in a kernel.
type Backend interface {
	// Step runs forward, backward and the SGD update on a full batch and
	// returns the mean loss and the number of top-1 hits.
	Step(s *pipeline.Slot, lr, momentum, weightDecay float32) (loss float64, correct1 int, err error)
	// Logits returns [s.N, classes] logits, dropout off, no lighting.
	Logits(s *pipeline.Slot) ([]float32, error)
	// Tensors returns the parameters and momenta in spec order, for
	// reading: the slices may be the backend's own (the CPU's live
	// tensors, a GPU's reused host mirrors), valid until the next step or
	// call, and writes to them need not reach the device. A device that
	// cannot be read gives an error, never a partial list, so no
	// checkpoint is written from it.
	Tensors() ([]Tensor, error)
	// SetMomenta sets the momenta from ts (a checkpoint's tensors, in
	// spec order); names and sizes must match the model's.
	SetMomenta(ts []Tensor) error
	// SetStep sets the step counter, from which dropout masks derive.
	SetStep(step uint64)
	// SetBiasDecay says whether Step's weight decay reaches the biases
	// (on, the default) or the weights alone (Config.NoBiasDecay).
	SetBiasDecay(on bool)
	Describe() string
	// Arith names what decides the bits of the backend's sums (its
	// libraries, their kernels, the precision), without what does not
	// (thread counts, paths). Where the backend repeats itself (the CPU
	// always, a GPU with deterministic algorithms), the same state stepped
	// under the same Arith gives the same bits; under another it cannot be
	// relied on to. A checkpoint keeps it, so that a resume under another
	// can say that the run no longer repeats bit for bit.
	Arith() string
	Close() error
}

// cpuBackend adapts pkg/nn/cpu's Net.
type cpuBackend struct {
	net       *cpu.Net
	mean, std [3]float32
	x         []float32
}

// NewCPU builds the CPU backend for spec at batch size batch, with the
// given initial parameters.
func NewCPU(spec alexnet.Spec, batch int, params map[string][]float32, seed uint64, mean, std [3]float32) (Backend, error) {
	net, err := cpu.New(spec, batch, params, seed)
	if err != nil {
		return nil, err
	}
	return &cpuBackend{net: net, mean: mean, std: std}, nil
}

func (b *cpuBackend) normalize(s *pipeline.Slot) []float32 {
	b.x = s.Normalize(b.x, b.mean, b.std)
	return b.x
}

func (b *cpuBackend) Step(s *pipeline.Slot, lr, momentum, wd float32) (float64, int, error) {
	if s.N != b.net.Batch() {
		return 0, 0, fmt.Errorf("cpu backend: batch of %d, graph built for %d", s.N, b.net.Batch())
	}
	loss, c1, _, err := b.net.TrainStep(b.normalize(s), s.Labels[:s.N])
	if err != nil {
		return 0, 0, err
	}
	b.net.Update(lr, momentum, wd)
	return loss, c1, nil
}

func (b *cpuBackend) Logits(s *pipeline.Slot) ([]float32, error) {
	bs := b.net.Batch()
	var out []float32
	// A batch's crops at a time: a ten-crop slot holds 10 batches.
	for lo := 0; lo < s.N; lo += bs {
		n := min(bs, s.N-lo)
		b.x = s.NormalizeRange(b.x, lo, n, b.mean, b.std)
		l, err := b.net.Eval(b.x, n)
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
	}
	return out, nil
}

func (b *cpuBackend) Tensors() ([]Tensor, error) {
	ps := b.net.Params()
	out := make([]Tensor, len(ps))
	for i, p := range ps {
		out[i] = Tensor{Name: p.Name, Shape: p.Shape, W: p.W, V: p.V}
	}
	return out, nil
}

func (b *cpuBackend) SetMomenta(ts []Tensor) error {
	ps := b.net.Params()
	if len(ts) != len(ps) {
		return fmt.Errorf("cpu backend: %d tensors given, the model has %d", len(ts), len(ps))
	}
	for i, p := range ps {
		if ts[i].Name != p.Name || len(ts[i].V) != len(p.V) {
			return fmt.Errorf("cpu backend: tensor %d is %s (%d values), given %s (%d)", i, p.Name, len(p.V), ts[i].Name, len(ts[i].V))
		}
	}
	for i, p := range ps {
		copy(p.V, ts[i].V)
	}
	return nil
}

func (b *cpuBackend) SetStep(step uint64)  { b.net.SetStep(step) }
func (b *cpuBackend) SetBiasDecay(on bool) { b.net.SetBiasDecay(on) }
func (b *cpuBackend) Describe() string     { return "cpu: " + b.net.Backend() }
func (b *cpuBackend) Arith() string        { return "cpu " + runtime.GOARCH + ", BLAS " + blas.Arith() }
func (b *cpuBackend) Close() error         { return b.net.Close() }
