package gpu

import (
	"fmt"
	"strings"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
)

// Backend adapts a Net to trainer.Backend: the training loop's view of a
// device. Step takes a batch as a pipeline slot in any memory and copies
// it itself, without overlap; as a trainer.Streamer (stream.go) it drives
// the Net through pkg/feed, which hides each batch's copy behind the
// previous step, and that is the path trainer.Train takes.
type Backend struct {
	net *Net
	// Tests on the host engine stand in for the CUDA feed device and the
	// page-locked slots; nil means the real ones.
	feedDevice func(l feed.Layout) (feed.Device, func() error, error)
	slots      func(n int, l feed.Layout) ([]*pipeline.Slot, func() error, error)
}

var _ trainer.Backend = (*Backend)(nil)

// NewBackend builds the GPU backend for spec at batch size batch, with the
// given initial parameters (nil: drawn from opt.Seed, as New does). On a
// machine without CUDA it fails at once with the missing library and
// where it was looked for.
func NewBackend(spec alexnet.Spec, batch int, params map[string][]float32, opt Options) (*Backend, error) {
	n, err := New(spec, batch, params, opt)
	if err != nil {
		return nil, err
	}
	return &Backend{net: n}, nil
}

// Net is the network behind the backend.
func (b *Backend) Net() *Net { return b.net }

// Step runs forward, backward and the update on a full batch. All of it
// is queued before the one wait, for the loss.
func (b *Backend) Step(s *pipeline.Slot, lr, momentum, weightDecay float32) (float64, int, error) {
	n := b.net
	if s.N != n.batch {
		return 0, 0, fmt.Errorf("gpu backend: batch of %d, built for %d", s.N, n.batch)
	}
	db, err := n.Stage(s)
	if err != nil {
		return 0, 0, err
	}
	if err := n.Load(db); err != nil {
		return 0, 0, err
	}
	p, err := n.StepLoaded(lr, momentum, weightDecay)
	if err != nil {
		return 0, 0, err
	}
	return p.Wait()
}

// Logits returns [s.N, classes] logits with dropout off.
func (b *Backend) Logits(s *pipeline.Slot) ([]float32, error) { return b.net.Eval(s) }

// Tensors returns the parameters and momenta in spec order, read back
// from the device, for reading: a checkpoint, a plot. A device that cannot
// be read (a dead CUDA context) gives an error, and the trainer then
// writes no checkpoint.
func (b *Backend) Tensors() ([]trainer.Tensor, error) {
	ps, err := b.net.Params()
	if err != nil {
		return nil, fmt.Errorf("gpu backend: reading the parameters from the device: %w", err)
	}
	out := make([]trainer.Tensor, len(ps))
	for i, p := range ps {
		out[i] = trainer.Tensor{Name: p.Name, Shape: p.Shape, W: p.W, V: p.V}
	}
	return out, nil
}

// SetMomenta uploads a resumed run's momenta.
func (b *Backend) SetMomenta(ts []trainer.Tensor) error {
	ps := make([]Param, len(ts))
	for i, t := range ts {
		if t.V == nil {
			// SetParams would leave these momenta as they are; the
			// CPU backend refuses the list, and so does this one.
			return fmt.Errorf("gpu backend: tensor %d (%s) has no momenta", i, t.Name)
		}
		ps[i] = Param{Name: t.Name, V: t.V}
	}
	if err := b.net.SetParams(ps); err != nil {
		return fmt.Errorf("gpu backend: %w", err)
	}
	return nil
}

// SetStep sets the step counter, from which dropout masks derive.
func (b *Backend) SetStep(step uint64) { b.net.SetStep(step) }

// SetBiasDecay is trainer.Backend's: Net.SetBiasDecay.
func (b *Backend) SetBiasDecay(on bool) { b.net.SetBiasDecay(on) }

// Describe names the device, the precision and the libraries.
func (b *Backend) Describe() string { return b.net.Describe() }

// Arith is trainer.Backend's: the device, the precision, whether the
// algorithms are the deterministic ones, and the cuDNN and cuBLAS
// versions.
func (b *Backend) Arith() string { return b.net.Arith() }

// Close frees the device memory and handles.
func (b *Backend) Close() error { return b.net.Close() }

// Describe is one line: device, precision, libraries, memory.
func (n *Net) Describe() string {
	d := n.Arith()
	if n.eng != nil {
		d += ", " + strings.SplitN(n.eng.describe(), "\n", 2)[0]
	}
	return d
}

// Arith is Describe without the memory: what decides the bits of a step.
// The SM count stays, as cuBLAS and cuDNN choose kernels by it (a MIG
// slice or a cut-down card of the same name), and so does NVRTC's
// version, which compiled our own kernels.
func (n *Net) Arith() string {
	var parts []string
	if d := n.Device(); d != nil {
		parts = append(parts, fmt.Sprintf("cuda: %s (cc %v, %d SMs)", d.Name, d.ComputeCapability, d.SMs))
	}
	parts = append(parts, n.opt.Precision.String())
	if n.opt.Deterministic {
		parts = append(parts, "deterministic")
	}
	if v, err := cuda.CUDNNVersion(); err == nil {
		parts = append(parts, fmt.Sprintf("cuDNN %d.%d.%d", v/10000, v%10000/100, v%100))
	}
	if v, err := cuda.CUBLASVersion(); err == nil {
		parts = append(parts, fmt.Sprintf("cuBLAS %d.%d.%d", v[0], v[1], v[2]))
	}
	if major, minor, err := cuda.NVRTCVersion(); err == nil {
		parts = append(parts, fmt.Sprintf("NVRTC %d.%d", major, minor))
	}
	return strings.Join(parts, ", ")
}

// Report is Describe plus the convolution algorithms cuDNN chose.
func (n *Net) Report() string {
	if n.eng == nil {
		return ""
	}
	return n.Describe() + "\n" + n.eng.describe()
}
