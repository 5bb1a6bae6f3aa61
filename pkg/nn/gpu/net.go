package gpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/alexnet-repro/alexnet/augment"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
)

// Precision is the arithmetic of convolutions and matrix products.
type Precision int

const (
	// TF32 lets cuDNN and cuBLAS use TF32 tensor cores for float32 data
	// (10-bit mantissa products, float32 accumulation), as PyTorch does
	// for convolutions by default. The default.
	TF32 Precision = iota
	// FP32 is strict float32 arithmetic.
	FP32
)

func (p Precision) String() string {
	if p == FP32 {
		return "fp32"
	}
	return "tf32"
}

// ParsePrecision reads "tf32" (or "") and "fp32", as --precision takes them.
func ParsePrecision(s string) (Precision, error) {
	switch s {
	case "", "tf32":
		return TF32, nil
	case "fp32":
		return FP32, nil
	}
	return 0, fmt.Errorf("gpu: unknown precision %q (want fp32 or tf32)", s)
}

// Options configure a Net.
type Options struct {
	Precision Precision
	// Seed fixes the dropout masks, exactly as pkg/nn/cpu's seed does.
	Seed uint64
	// Mean and Std normalise the input (meta.json's train statistics).
	Mean, Std [3]float32
	// WorkspaceLimit caps one convolution's workspace in bytes; 0 sizes it
	// from free memory (see workspaceBudget).
	WorkspaceLimit int64
	// Heuristic picks convolution algorithms by cuDNN's heuristics
	// instead of timing them all (faster start, maybe slower steps).
	Heuristic bool
	// Deterministic makes training bit-reproducible on one GPU: only
	// convolution algorithms cuDNN reports as deterministic (some
	// backward-filter and backward-data ones accumulate with atomics, in
	// an order that varies run to run), and max pooling whose backward
	// pass routes each gradient without atomics
	// (CUDNN_POOLING_MAX_DETERMINISTIC): the overlapping 3×3 stride-2
	// windows share inputs. Everything else the step runs is already
	// deterministic: cuBLAS on one stream, LRN, softmax and our kernels,
	// which use no atomics. The algorithms are also chosen the same way
	// every run: by cuDNN's heuristics (timing them would pick among
	// near-equal ones by noise), under a workspace budget that does not
	// depend on free memory (WorkspaceLimit, else detWorkspace). It can
	// cost speed; gpucheck bench measures it.
	Deterministic bool
	// Device is the GPU to use; nil opens the default one (cuda.Init).
	Device *cuda.Device
}

// paramAlign pads every packed parameter to a multiple of 64 floats, so
// each one starts 256-byte aligned, as cuDNN's and cuBLAS's fastest
// kernels want.
const paramAlign = 64

type param struct {
	name  string
	shape []int
	size  int
	off   int // in floats, within the packed buffers
}

// node is one layer that computes. ReLUs that follow a conv or fc layer
// are fused into it (relu), and Flatten is only a change of shape, so
// neither gets a node.
type node struct {
	index    int // in spec.Layers
	l        alexnet.Layer
	in, out  shape4
	x, y     cuda.DevicePtr
	dx, dy   cuda.DevicePtr // 0 where no gradient flows
	relu     bool
	w, b     *param
	conv     convRun
	lrn      lrnRun
	pool     poolRun
	mask     cuda.DevicePtr // dropout: 1 byte per unit, 1 = kept
	dropSeed uint64
}

// Net is a network of one Spec at one batch size, on one device. It owns
// the packed parameters, momenta and gradients, every activation and its
// gradient, and the scratch of one batch, all in device memory. Its work
// is queued on one stream (Stream); it is not safe for concurrent use.
type Net struct {
	spec    alexnet.Spec
	batch   int
	classes int
	opt     Options
	scale   [3]float32 // augment.Affine's 1/std

	eng engine
	cu  *cudaEngine // eng, when it is the GPU

	nodes  []*node
	params []*param
	packed int // floats in each packed buffer
	// biasesAt is where the biases begin in the packed buffers: the
	// weights come first, so that the one SGD kernel can spare the biases
	// weight decay by offset (SetBiasDecay).
	biasesAt    int
	spareBiases bool
	w, v        cuda.DevicePtr
	g           cuda.DevicePtr

	input    cuda.DevicePtr // normalised batch, N×3×H×W
	labels   cuda.DevicePtr // N int32
	logits   cuda.DevicePtr // the last node's y
	dlogits  cuda.DevicePtr
	rowLoss  cuda.DevicePtr
	rowHit   cuda.DevicePtr
	result   cuda.DevicePtr // mean loss, hits (two doubles)
	stage    cuda.DevicePtr // a batch uploaded from a pipeline slot, in feed.Layout
	stageLay feed.Layout

	step   uint64
	loaded int // crops normalised into input since the last step (0: none)

	// Host mirrors for Params, the packed weights and momenta: kept so
	// that a checkpoint reuses them rather than allocating twice the
	// model's size each time. Only Params writes them, and nothing reads
	// them back to the device: SetParams uploads what it is given.
	hostW, hostV []float32

	results *resultRing
	prof    *profiler // set while Profile runs
}

// New builds spec for batches of batch crops on a GPU. params maps every
// name of spec.Params() to its values (copied); nil draws them with
// alexnet.InitParams under the spec's default scheme and opt.Seed.
func New(spec alexnet.Spec, batch int, params map[string][]float32, opt Options) (*Net, error) {
	dev := opt.Device
	if dev == nil {
		var err error
		if dev, err = cuda.Init(); err != nil {
			return nil, fmt.Errorf("gpu: %w", err)
		}
	}
	search := cuda.SearchBenchmark
	// Timing picks among near-equal algorithms by noise, so two runs may
	// choose differently: a deterministic run takes cuDNN's ranking.
	if opt.Heuristic || opt.Deterministic {
		search = cuda.SearchHeuristic
	}
	e, err := newCUDAEngine(dev, opt.Precision, search, opt.WorkspaceLimit, opt.Deterministic)
	if err != nil {
		return nil, fmt.Errorf("gpu: %w", err)
	}
	n, err := newNet(e, spec, batch, params, opt)
	if err != nil {
		e.close()
		return nil, err
	}
	n.cu = e
	if n.results, err = newResultRing(e); err != nil {
		n.Close()
		return nil, fmt.Errorf("gpu: %w", err)
	}
	return n, nil
}

// newNet builds the network on any engine.
func newNet(e engine, spec alexnet.Spec, batch int, params map[string][]float32, opt Options) (*Net, error) {
	if batch < 1 {
		return nil, fmt.Errorf("gpu: batch %d", batch)
	}
	if _, err := spec.Shapes(); err != nil {
		return nil, fmt.Errorf("gpu: %s: %w", spec.Name, err)
	}
	for c, s := range opt.Std {
		if !(s > 0) {
			return nil, fmt.Errorf("gpu: std[%d] = %g; the input statistics are missing", c, s)
		}
	}
	if params == nil {
		var err error
		if params, err = alexnet.InitParams(spec, "", opt.Seed); err != nil {
			return nil, fmt.Errorf("gpu: %w", err)
		}
	}
	n := &Net{spec: spec, batch: batch, classes: spec.Classes, opt: opt, eng: e}
	_, n.scale = augment.Affine(opt.Mean, opt.Std, [3]float32{})
	if err := n.build(params); err != nil {
		return nil, fmt.Errorf("gpu: building %s: %w", spec.Name, err)
	}
	return n, nil
}

func (n *Net) alloc(bytes int64) (cuda.DevicePtr, error) {
	if bytes > math.MaxInt32*4 {
		return 0, fmt.Errorf("a buffer of %d bytes", bytes)
	}
	return n.eng.alloc(int(bytes))
}

// build lays out the parameters, walks the spec allocating each layer's
// output and gradient, and plans the layers on the engine.
func (n *Net) build(params map[string][]float32) error {
	e := n.eng
	byName := map[string]*param{}
	specs := n.spec.Params()
	for _, ps := range specs {
		v, ok := params[ps.Name]
		if !ok {
			return fmt.Errorf("no values for parameter %s", ps.Name)
		}
		if len(v) != ps.Size() {
			return fmt.Errorf("parameter %s has %d values, want %d (%v)", ps.Name, len(v), ps.Size(), ps.Shape)
		}
		p := &param{name: ps.Name, shape: slices.Clone(ps.Shape), size: ps.Size()}
		n.params = append(n.params, p)
		byName[p.name] = p
	}
	// Packed weights first, then biases; n.params stays in spec order.
	for _, biases := range []bool{false, true} {
		if biases {
			n.biasesAt = n.packed
		}
		for i, ps := range specs {
			if ps.Bias == biases {
				p := n.params[i]
				p.off = n.packed
				n.packed += (p.size + paramAlign - 1) / paramAlign * paramAlign
			}
		}
	}
	var err error
	for _, p := range []*cuda.DevicePtr{&n.w, &n.v, &n.g} {
		if *p, err = n.alloc(int64(n.packed) * 4); err != nil {
			return err
		}
		// Zero everything, the alignment gaps included, which the update
		// then leaves at zero.
		if err := e.zero(*p, n.packed*4); err != nil {
			return err
		}
	}
	host := make([]float32, n.packed)
	for _, p := range n.params {
		copy(host[p.off:], params[p.name])
	}
	if err := e.upload(n.w, cuda.Bytes(host)); err != nil {
		return err
	}

	shapes, _ := n.spec.Shapes()
	in := n.spec.Input
	cur := shape4{n.batch, in[0], in[1], in[2]}
	if n.input, err = n.alloc(cur.elems() * 4); err != nil {
		return err
	}
	x, dx := n.input, cuda.DevicePtr(0)
	wantGrad := false // no gradient flows below the first layer with parameters
	for i, l := range n.spec.Layers {
		out := shape4{n.batch, shapes[i].C, shapes[i].H, shapes[i].W}
		switch l.Kind {
		case alexnet.Flatten:
			cur = out
			continue
		case alexnet.ReLU:
			if k := len(n.nodes); k > 0 {
				if last := n.nodes[k-1]; last.index == i-1 && (last.l.Kind == alexnet.Conv || last.l.Kind == alexnet.FC) {
					last.relu = true
					continue
				}
			}
		}
		nd := &node{index: i, l: l, in: cur, out: out, x: x, dx: dx}
		switch l.Kind {
		case alexnet.Conv:
			nd.conv, err = e.conv(cuda.ConvShape{N: cur.N, C: cur.C, H: cur.H, W: cur.W, K: l.Out, R: l.K, S: l.K,
				PadH: l.Pad, PadW: l.Pad, StrideH: l.Stride, StrideW: l.Stride, Groups: max(1, l.Groups)}, dx != 0)
			nd.w, nd.b = byName[l.Name+".weight"], byName[l.Name+".bias"]
		case alexnet.FC:
			nd.w, nd.b = byName[l.Name+".weight"], byName[l.Name+".bias"]
		case alexnet.LRN:
			nd.lrn, err = e.lrn(cur, l.LRN)
		case alexnet.MaxPool:
			nd.pool, err = e.pool(cur, out, l.K, l.Stride, l.Pad)
		case alexnet.Dropout:
			nd.dropSeed = dropoutSeed(n.opt.Seed, i)
			if l.P > 0 {
				// P = 0 is a copy, and a mask never written would tell
				// DropoutMasks (and the oracle) that every unit was dropped.
				nd.mask, err = n.alloc(cur.elems())
			}
		case alexnet.ReLU:
		default:
			err = fmt.Errorf("kind %q not supported", l.Kind)
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", l.Name, err)
		}
		if l.HasParams() {
			if nd.w == nil || nd.b == nil {
				return fmt.Errorf("layer %s: parameters missing from the spec's list", l.Name)
			}
			wantGrad = true
		}
		if nd.y, err = n.alloc(out.elems() * 4); err != nil {
			return err
		}
		if wantGrad {
			if nd.dy, err = n.alloc(out.elems() * 4); err != nil {
				return err
			}
		}
		x, dx, cur = nd.y, nd.dy, out
		n.nodes = append(n.nodes, nd)
	}
	last := n.nodes[len(n.nodes)-1]
	if last.l.Kind != alexnet.FC || last.relu || last.out.C != n.classes {
		return fmt.Errorf("the spec does not end in an fc layer (without ReLU) with one output per class")
	}
	n.logits, n.dlogits = last.y, last.dy
	for _, b := range []struct {
		p     *cuda.DevicePtr
		bytes int64
	}{{&n.labels, 4}, {&n.rowLoss, 8}, {&n.rowHit, 4}} {
		if *b.p, err = n.alloc(b.bytes * int64(n.batch)); err != nil {
			return err
		}
	}
	if n.result, err = n.alloc(16); err != nil {
		return err
	}
	n.stageLay = feed.Layout{Crops: n.batch, Crop: in[1]}
	if in[1] != in[2] || in[0] != 3 {
		return fmt.Errorf("input %v: the pipeline delivers square RGB crops", in)
	}
	if n.stage, err = n.alloc(int64(n.stageLay.Bytes())); err != nil {
		return err
	}
	return e.prepare()
}

// Spec returns the network's spec.
func (n *Net) Spec() alexnet.Spec { return n.spec }

// Batch returns the batch size the buffers were made for.
func (n *Net) Batch() int { return n.batch }

// Step returns the number of training steps taken (or set by SetStep).
func (n *Net) Step() uint64 { return n.step }

// SetStep sets the step counter, which selects the dropout masks exactly
// as pkg/nn/cpu's does: a run resumed at step t draws the masks the
// uninterrupted run would have.
func (n *Net) SetStep(t uint64) { n.step = t }

// SetBiasDecay says whether Update's weight decay reaches the biases (on,
// the default) or the weights alone, as pkg/nn/cpu's SetBiasDecay.
func (n *Net) SetBiasDecay(on bool) { n.spareBiases = !on }

// Load queues the normalisation of a device batch into the input and a
// copy of its labels, so that the batch's buffer may be reused as soon as
// this work has run (feed.Free). b.N crops, at most the batch size; its
// crops must be the spec's input size.
func (n *Net) Load(b feed.DeviceBatch) error {
	if b.N < 1 || b.N > n.batch {
		return fmt.Errorf("gpu: batch of %d crops for a net of batch %d", b.N, n.batch)
	}
	if b.Layout.Crop != n.spec.Input[1] {
		return fmt.Errorf("gpu: %d-pixel crops for a %d-pixel input", b.Layout.Crop, n.spec.Input[1])
	}
	if err := launchNormalize(n.eng, b.Pixels(), b.Offsets(), n.input, b.N, b.Layout.Crop*b.Layout.Crop, n.opt.Mean, n.scale); err != nil {
		return fmt.Errorf("gpu: normalize: %w", err)
	}
	if err := n.eng.copyDtoD(n.labels, b.Labels(), 4*b.N); err != nil {
		return err
	}
	n.loaded = b.N
	return nil
}

// stageSlot uploads crops [lo, lo+cnt) of a pipeline slot (any memory)
// into the staging buffer and returns it as a device batch.
func (n *Net) stageSlot(s *pipeline.Slot, lo, cnt int) (feed.DeviceBatch, error) {
	l := n.stageLay
	if s.Crop != l.Crop {
		return feed.DeviceBatch{}, fmt.Errorf("gpu: slot of %d-pixel crops for a %d-pixel input", s.Crop, l.Crop)
	}
	img := l.ImageBytes()
	offs := s.Offsets[lo : lo+cnt]
	parts := []struct {
		at  int
		src []byte
	}{
		{l.LabelsAt(), cuda.Bytes(s.Labels[lo : lo+cnt])},
		{l.OffsetsAt(), unsafe.Slice((*byte)(unsafe.Pointer(&offs[0])), 12*cnt)},
		{l.PixelsAt(), s.Pixels[lo*img : (lo+cnt)*img]},
	}
	for _, p := range parts {
		if err := n.eng.upload(n.stage.Add(p.at), p.src); err != nil {
			return feed.DeviceBatch{}, err
		}
	}
	return feed.DeviceBatch{Base: n.stage, Layout: l, N: cnt}, nil
}

func (n *Net) checkLabels(labels []int32) error {
	for i, lab := range labels {
		if lab < 0 || int(lab) >= n.classes {
			return fmt.Errorf("gpu: image %d has label %d, want 0..%d", i, lab, n.classes-1)
		}
	}
	return nil
}

// TrainStep runs forward and backward on a full batch from a pipeline
// slot (normalised on the device, with the slot's lighting offsets) and
// returns the mean loss and the number of top-1 hits. Gradients stay on
// the device for Update; Grads reads them.
func (n *Net) TrainStep(s *pipeline.Slot) (loss float64, correct1 int, err error) {
	if s.N != n.batch {
		return 0, 0, fmt.Errorf("gpu: TrainStep got %d crops, the net has batch %d", s.N, n.batch)
	}
	if err := n.checkLabels(s.Labels[:s.N]); err != nil {
		return 0, 0, err
	}
	b, err := n.stageSlot(s, 0, s.N)
	if err != nil {
		return 0, 0, err
	}
	if err := n.Load(b); err != nil {
		return 0, 0, err
	}
	if err := n.queueTrain(); err != nil {
		return 0, 0, err
	}
	return n.readResult()
}

// loadFloat puts an already normalised batch (n.batch images, NCHW) and
// its labels where Load would put a normalised uint8 batch: the layer
// check's input, and the oracle's with --input continuous.
func (n *Net) loadFloat(x []float32, labels []int32) error {
	in := n.spec.Input
	if len(x) != n.batch*in[0]*in[1]*in[2] {
		return fmt.Errorf("gpu: %d input values for a batch of %d × %v", len(x), n.batch, in)
	}
	if labels != nil {
		if len(labels) != n.batch {
			return fmt.Errorf("gpu: %d labels for a batch of %d", len(labels), n.batch)
		}
		if err := n.checkLabels(labels); err != nil {
			return err
		}
		if err := n.eng.upload(n.labels, cuda.Bytes(labels)); err != nil {
			return err
		}
	}
	if err := n.eng.upload(n.input, cuda.Bytes(x)); err != nil {
		return err
	}
	n.loaded = n.batch
	return nil
}

// trainFloat is TrainStep on an already normalised batch.
func (n *Net) trainFloat(x []float32, labels []int32) (float64, int, error) {
	if err := n.loadFloat(x, labels); err != nil {
		return 0, 0, err
	}
	if err := n.queueTrain(); err != nil {
		return 0, 0, err
	}
	return n.readResult()
}

// queueTrain queues forward, loss and backward for the loaded batch.
func (n *Net) queueTrain() error {
	if n.loaded != n.batch {
		return fmt.Errorf("gpu: step %d: %d crops loaded, the net has batch %d", n.step, n.loaded, n.batch)
	}
	if err := n.forward(true); err != nil {
		return fmt.Errorf("gpu: step %d: %w", n.step, err)
	}
	if err := launchXent(n.eng, n.logits, n.labels, n.dlogits, n.rowLoss, n.rowHit, n.result, n.batch, n.classes); err != nil {
		return fmt.Errorf("gpu: step %d: loss: %w", n.step, err)
	}
	if err := n.mark("loss", "loss", "", false); err != nil {
		return err
	}
	if err := n.backward(); err != nil {
		return fmt.Errorf("gpu: step %d: %w", n.step, err)
	}
	n.loaded = 0
	n.step++
	return nil
}

func (n *Net) readResult() (float64, int, error) {
	var b [16]byte
	if err := n.eng.download(b[:], n.result); err != nil {
		return 0, 0, fmt.Errorf("gpu: reading the loss: %w", err)
	}
	return decodeResult(b[:])
}

func decodeResult(b []byte) (float64, int, error) {
	loss := math.Float64frombits(binary.LittleEndian.Uint64(b[0:]))
	hits := math.Float64frombits(binary.LittleEndian.Uint64(b[8:]))
	return loss, int(hits), nil
}

// Update applies the paper's SGD step to every parameter with the last
// TrainStep's gradients, in one kernel over the packed buffers:
//
//	v ← momentum·v − weightDecay·lr·w − lr·∂L/∂w;  w ← w + v
//
// with weightDecay 0 for the biases after SetBiasDecay(false).
func (n *Net) Update(lr, momentum, weightDecay float32) error {
	decayed := n.packed
	if n.spareBiases {
		decayed = n.biasesAt
	}
	if err := launchSGD(n.eng, n.w, n.v, n.g, int64(n.packed), int64(decayed), lr, momentum, weightDecay); err != nil {
		return fmt.Errorf("gpu: update: %w", err)
	}
	return nil
}

func (n *Net) wAt(p *param) cuda.DevicePtr { return n.w.Add(4 * p.off) }
func (n *Net) gAt(p *param) cuda.DevicePtr { return n.g.Add(4 * p.off) }

// forward queues every layer; dropout is on when training.
func (n *Net) forward(training bool) error {
	e := n.eng
	for _, nd := range n.nodes {
		var err error
		switch nd.l.Kind {
		case alexnet.Conv:
			if err = nd.conv.forward(nd.x, n.wAt(nd.w), nd.y); err == nil {
				err = launchBiasAct(e, nd.y, n.wAt(nd.b), nd.out.elems(), nd.out.C, nd.out.H*nd.out.W, nd.relu)
			}
		case alexnet.FC:
			in := int(nd.in.elems()) / nd.in.N
			if err = e.gemm(false, true, nd.in.N, nd.out.C, in, nd.x, in, n.wAt(nd.w), in, 0, nd.y, nd.out.C); err == nil {
				err = launchBiasAct(e, nd.y, n.wAt(nd.b), nd.out.elems(), nd.out.C, 1, nd.relu)
			}
		case alexnet.ReLU:
			err = launchReLU(e, nd.x, nd.y, nd.out.elems())
		case alexnet.LRN:
			err = nd.lrn.forward(nd.x, nd.y)
		case alexnet.MaxPool:
			err = nd.pool.forward(nd.x, nd.y)
		case alexnet.Dropout:
			switch {
			case training && nd.l.P > 0:
				err = launchDropout(e, nd.x, nd.y, nd.mask, nd.out.elems(), nd.dropSeed, n.step, nd.l.P, n.spec.PaperDropout)
			case !training && nd.l.P > 0 && n.spec.PaperDropout:
				err = launchScale(e, nd.x, nd.y, nd.out.elems(), float32(1-nd.l.P))
			default:
				err = e.copyDtoD(nd.y, nd.x, int(nd.out.elems()*4))
			}
		}
		if err == nil {
			err = n.mark(nd.l.Name, string(nd.l.Kind), "forward", nd.relu)
		}
		if err != nil {
			return fmt.Errorf("%s forward: %w", nd.l.Name, err)
		}
	}
	return nil
}

// backward queues every layer's gradients, last layer first, from dlogits.
func (n *Net) backward() error {
	e := n.eng
	for i := len(n.nodes) - 1; i >= 0; i-- {
		nd := n.nodes[i]
		if nd.dy == 0 {
			continue
		}
		var err error
		if nd.relu {
			// The fused ReLU's gradient, in place: dy becomes the
			// gradient of the pre-activation.
			if err := launchReLUBack(e, nd.y, nd.dy, nd.dy, nd.out.elems()); err != nil {
				return fmt.Errorf("%s relu backward: %w", nd.l.Name, err)
			}
		}
		switch nd.l.Kind {
		case alexnet.Conv:
			err = nd.conv.backwardBias(nd.dy, n.gAt(nd.b))
			if err == nil {
				err = nd.conv.backwardFilter(nd.x, nd.dy, n.gAt(nd.w))
			}
			if err == nil && nd.dx != 0 {
				err = nd.conv.backwardData(n.wAt(nd.w), nd.dy, nd.dx)
			}
		case alexnet.FC:
			in := int(nd.in.elems()) / nd.in.N
			out := nd.out.C
			err = launchBiasGradRows(e, nd.dy, n.gAt(nd.b), nd.in.N, out)
			if err == nil {
				// dW[out, in] = dyᵀ[out, N] · x[N, in]
				err = e.gemm(true, false, out, in, nd.in.N, nd.dy, out, nd.x, in, 0, n.gAt(nd.w), in)
			}
			if err == nil && nd.dx != 0 {
				// dx[N, in] = dy[N, out] · W[out, in]
				err = e.gemm(false, false, nd.in.N, in, out, nd.dy, out, n.wAt(nd.w), in, 0, nd.dx, in)
			}
		case alexnet.ReLU:
			if nd.dx != 0 {
				err = launchReLUBack(e, nd.y, nd.dy, nd.dx, nd.out.elems())
			}
		case alexnet.LRN:
			if nd.dx != 0 {
				err = nd.lrn.backward(nd.y, nd.dy, nd.x, nd.dx)
			}
		case alexnet.MaxPool:
			if nd.dx != 0 {
				err = nd.pool.backward(nd.y, nd.dy, nd.x, nd.dx)
			}
		case alexnet.Dropout:
			if nd.dx != 0 {
				if nd.l.P > 0 {
					err = launchDropoutBack(e, nd.dy, nd.dx, nd.mask, nd.out.elems(), nd.l.P, n.spec.PaperDropout)
				} else {
					err = e.copyDtoD(nd.dx, nd.dy, int(nd.out.elems()*4))
				}
			}
		}
		if err == nil {
			err = n.mark(nd.l.Name, string(nd.l.Kind), "backward", nd.relu)
		}
		if err != nil {
			return fmt.Errorf("%s backward: %w", nd.l.Name, err)
		}
	}
	return nil
}

// Eval returns the logits ([s.N, classes], row-major) of a slot's crops
// with dropout off, normalised with the slot's offsets (zero outside
// training), in chunks of the batch size.
func (n *Net) Eval(s *pipeline.Slot) ([]float32, error) {
	out := make([]float32, s.N*n.classes)
	for lo := 0; lo < s.N; lo += n.batch {
		cnt := min(n.batch, s.N-lo)
		b, err := n.stageSlot(s, lo, cnt)
		if err != nil {
			return nil, err
		}
		if err := n.Load(b); err != nil {
			return nil, err
		}
		// Rows past cnt hold an older batch's data: every layer treats
		// images independently, so they cannot change the rows read.
		if err := n.forward(false); err != nil {
			return nil, fmt.Errorf("gpu: eval: %w", err)
		}
		n.loaded = 0
		if err := n.eng.download(cuda.Bytes(out[lo*n.classes:(lo+cnt)*n.classes]), n.logits); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// download reads count float32s at p.
func (n *Net) download(p cuda.DevicePtr, count int) ([]float32, error) {
	out := make([]float32, count)
	return out, n.eng.download(cuda.Bytes(out), p)
}

// Logits returns the last training step's logits, [batch, classes].
func (n *Net) Logits() ([]float32, error) { return n.download(n.logits, n.batch*n.classes) }

// Input returns the normalised input of the last step, N×3×H×W.
func (n *Net) Input() ([]float32, error) {
	in := n.spec.Input
	return n.download(n.input, n.batch*in[0]*in[1]*in[2])
}

// Grads returns a copy of each parameter's gradient from the last
// TrainStep (the batch mean of ∂loss/∂w).
func (n *Net) Grads() (map[string][]float32, error) {
	all, err := n.download(n.g, n.packed)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]float32, len(n.params))
	for _, p := range n.params {
		out[p.name] = slices.Clone(all[p.off : p.off+p.size])
	}
	return out, nil
}

// DropoutMasks returns each dropout layer's mask of the last training
// step, one byte per unit (1 kept, 0 dropped), by layer name. Layers with
// P = 0 drop nothing and have none.
func (n *Net) DropoutMasks() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, nd := range n.nodes {
		if nd.l.Kind != alexnet.Dropout || nd.mask == 0 {
			continue
		}
		m := make([]byte, nd.out.elems())
		if err := n.eng.download(m, nd.mask); err != nil {
			return nil, err
		}
		out[nd.l.Name] = m
	}
	return out, nil
}

// Param is one parameter: W and V are the host mirrors Tensors hands
// out.
type Param struct {
	Name  string
	Shape []int
	W, V  []float32
}

// Params returns the parameters and momenta in spec order, read from the
// device after the work queued so far. The slices are host mirrors the
// Net reuses: they hold these values until the next call of Params, and
// writing to them changes nothing on the device (SetParams does). A
// checkpoint therefore costs one download and no upload: the next step
// goes on from the device's own copy.
func (n *Net) Params() ([]Param, error) {
	if n.hostW == nil {
		n.hostW, n.hostV = make([]float32, n.packed), make([]float32, n.packed)
	}
	if err := n.eng.download(cuda.Bytes(n.hostW), n.w); err != nil {
		return nil, err
	}
	if err := n.eng.download(cuda.Bytes(n.hostV), n.v); err != nil {
		return nil, err
	}
	out := make([]Param, len(n.params))
	for i, p := range n.params {
		out[i] = Param{Name: p.name, Shape: p.shape, W: n.hostW[p.off : p.off+p.size : p.off+p.size],
			V: n.hostV[p.off : p.off+p.size : p.off+p.size]}
	}
	return out, nil
}

// SetParams uploads parameters and momenta, ordered after the work
// queued so far: ps[i] is the i-th parameter in spec order, and a nil W
// or V leaves that half as it is (a resumed run sets only momenta, the
// weights having been given to New). Names and sizes must match.
func (n *Net) SetParams(ps []Param) error {
	if len(ps) != len(n.params) {
		return fmt.Errorf("gpu: %d parameters given, the net has %d", len(ps), len(n.params))
	}
	// All checked before any upload: a list refused is not half applied.
	for i, p := range n.params {
		g := ps[i]
		if g.Name != p.name {
			return fmt.Errorf("gpu: parameter %d is %s, given %s", i, p.name, g.Name)
		}
		for _, half := range []struct {
			what string
			src  []float32
		}{{"weights", g.W}, {"momenta", g.V}} {
			if half.src != nil && len(half.src) != p.size {
				return fmt.Errorf("gpu: %s of %s: %d values, want %d", half.what, p.name, len(half.src), p.size)
			}
		}
	}
	for i, p := range n.params {
		for _, half := range []struct {
			src []float32
			dst cuda.DevicePtr
		}{{ps[i].W, n.w}, {ps[i].V, n.v}} {
			if half.src == nil {
				continue
			}
			if err := n.eng.upload(half.dst.Add(p.off*4), cuda.Bytes(half.src)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close frees everything on the device.
func (n *Net) Close() error {
	var err error
	// A step queued and never waited for (an error path, or direct use
	// of StepLoaded/StepFeed) may still be copying its result into the
	// pinned buffer freed below: let the stream drain first.
	if n.eng != nil {
		err = n.eng.sync()
	}
	if n.results != nil {
		if rerr := n.results.close(); err == nil {
			err = rerr
		}
		n.results = nil
	}
	if n.eng != nil {
		if cerr := n.eng.close(); err == nil {
			err = cerr
		}
		n.eng = nil
	}
	return err
}
