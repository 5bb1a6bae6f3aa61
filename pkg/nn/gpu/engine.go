package gpu

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
)

// engine is everything the Net asks of a device. cudaEngine implements it
// with pkg/cuda on one stream; the tests implement it on the host (the
// kernels in an emulator, cuDNN's and cuBLAS's layers as naive loops), so
// that the Net's wiring — buffers, aliasing, fused ReLUs, the order of the
// backward pass, parameter packing — is checked against pkg/nn/cpu on a
// machine without a GPU. All work is ordered as queued.
type engine interface {
	launcher
	alloc(bytes int) (cuda.DevicePtr, error)
	upload(dst cuda.DevicePtr, src []byte) error   // src may be reused on return
	download(dst []byte, src cuda.DevicePtr) error // waits for earlier work
	copyDtoD(dst, src cuda.DevicePtr, bytes int) error
	zero(dst cuda.DevicePtr, bytes int) error // bytes a multiple of 4
	// gemm computes C = op(A)·op(B) + beta·C on row-major float32
	// matrices: C is m×n, op(A) m×k, op(B) k×n.
	gemm(transA, transB bool, m, n, k int, a cuda.DevicePtr, lda int, b cuda.DevicePtr, ldb int, beta float32, c cuda.DevicePtr, ldc int) error
	conv(s cuda.ConvShape, needDx bool) (convRun, error) // needDx: backwardData will run
	lrn(in shape4, p alexnet.LRNParams) (lrnRun, error)
	pool(in, out shape4, k, stride, pad int) (poolRun, error)
	// prepare runs after every alloc and layer, before the first step:
	// the GPU engine chooses convolution algorithms here, under a
	// workspace budget taken from the memory left.
	prepare() error
	// newTimer makes a timer of points points for Profile.
	newTimer(points int) (stepTimer, error)
	sync() error
	describe() string
	close() error
}

// convRun is one planned convolution (alpha 1, beta 0 everywhere).
type convRun interface {
	forward(x, w, y cuda.DevicePtr) error
	backwardData(w, dy, dx cuda.DevicePtr) error
	backwardFilter(x, dy, dw cuda.DevicePtr) error
	backwardBias(dy, db cuda.DevicePtr) error
}

// lrnRun and poolRun are cross-channel LRN and max pooling over one shape.
type lrnRun interface {
	forward(x, y cuda.DevicePtr) error
	backward(y, dy, x, dx cuda.DevicePtr) error
}

type poolRun interface {
	forward(x, y cuda.DevicePtr) error
	backward(y, dy, x, dx cuda.DevicePtr) error
}

// shape4 is an NCHW tensor shape.
type shape4 struct{ N, C, H, W int }

func (s shape4) elems() int64 { return int64(s.N) * int64(s.C) * int64(s.H) * int64(s.W) }

func (s shape4) String() string { return fmt.Sprintf("%dx%dx%dx%d", s.N, s.C, s.H, s.W) }

// cudaEngine runs everything on one non-blocking stream of one device,
// with one cuBLAS and one cuDNN handle bound to it.
type cudaEngine struct {
	dev       *cuda.Device
	stream    *cuda.Stream
	blas      *cuda.BLAS
	dnn       *cuda.DNN
	mod       *cuda.Module
	fns       map[string]*cuda.Function
	math      cuda.ConvMath
	search    cuda.AlgoSearch
	wsLimit   int64
	det       bool // Options.Deterministic
	planner   *cuda.ConvPlanner
	convs     []*cudaConv
	ws        cuda.Buffer
	bufs      []cuda.Buffer
	allocated int64
	closers   []func() error
}

func newCUDAEngine(dev *cuda.Device, p Precision, search cuda.AlgoSearch, wsLimit int64, deterministic bool) (e *cudaEngine, err error) {
	e = &cudaEngine{dev: dev, fns: map[string]*cuda.Function{}, search: search, wsLimit: wsLimit, det: deterministic, math: cuda.ConvFP32}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.stream, err = dev.NewStream(); err != nil {
		return nil, err
	}
	if e.blas, err = dev.NewBLAS(); err != nil {
		return nil, err
	}
	if err = e.blas.SetStream(e.stream); err != nil {
		return nil, err
	}
	// cuBLAS's default math is strict float32 (TF32 only when asked for
	// or forced by NVIDIA_TF32_OVERRIDE); cuDNN's is chosen per plan.
	bm := cuda.MathDefault
	if p == TF32 {
		bm, e.math = cuda.MathTF32, cuda.ConvTF32
	}
	if err = e.blas.SetMathMode(bm); err != nil {
		return nil, err
	}
	if e.dnn, err = dev.NewDNN(); err != nil {
		return nil, err
	}
	if err = e.dnn.SetStream(e.stream); err != nil {
		return nil, err
	}
	if e.mod, err = dev.CompileModule(kernelSource, "kernels.cu", nvrtcOptions); err != nil {
		return nil, fmt.Errorf("compiling kernels.cu: %w", err)
	}
	for _, name := range kernelNames {
		if e.fns[name], err = e.mod.Function(name); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *cudaEngine) launch(name string, grid, block [3]uint32, args ...any) error {
	f := e.fns[name]
	if f == nil {
		return fmt.Errorf("no kernel %q", name)
	}
	return f.Launch(grid, block, 0, e.stream, args...)
}

func (e *cudaEngine) alloc(bytes int) (cuda.DevicePtr, error) {
	b, err := e.dev.MemAlloc(bytes)
	if err != nil {
		return 0, err
	}
	e.bufs = append(e.bufs, b)
	e.allocated += int64(bytes)
	return b.Ptr, nil
}

func (e *cudaEngine) upload(dst cuda.DevicePtr, src []byte) error {
	// The copy is ordered on the stream, after the work already queued.
	// The interface promises src may be reused on return: from pageable
	// Go memory current drivers do stage the bytes before returning, but
	// CUDA does not document that, and from a pinned slot the copy is
	// truly still running. So wait for it. Uploads happen at build, in
	// SetParams (a resume's momenta), and on the synchronous Step path
	// (which reads every loss anyway); the fast path, StepFeed, copies
	// through pkg/feed and never comes here.
	if err := e.dev.MemcpyHtoDAsync(dst, src, e.stream); err != nil {
		return err
	}
	return e.stream.Synchronize()
}

func (e *cudaEngine) download(dst []byte, src cuda.DevicePtr) error {
	if err := e.dev.MemcpyDtoHAsync(dst, src, e.stream); err != nil {
		return err
	}
	return e.stream.Synchronize()
}

func (e *cudaEngine) copyDtoD(dst, src cuda.DevicePtr, bytes int) error {
	return e.dev.MemcpyDtoDAsync(dst, src, bytes, e.stream)
}

func (e *cudaEngine) zero(dst cuda.DevicePtr, bytes int) error {
	return e.dev.MemsetD32Async(dst, 0, bytes/4, e.stream)
}

func (e *cudaEngine) gemm(transA, transB bool, m, n, k int, a cuda.DevicePtr, lda int, b cuda.DevicePtr, ldb int, beta float32, c cuda.DevicePtr, ldc int) error {
	return e.blas.SgemmRowMajor(transA, transB, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
}

func (e *cudaEngine) sync() error { return e.stream.Synchronize() }

// cudaConv is a convolution whose plan is made in prepare, once the
// workspace budget is known.
type cudaConv struct {
	e      *cudaEngine
	shape  cuda.ConvShape
	needDx bool
	plan   *cuda.ConvPlan
	part   cuda.DevicePtr // bias_grad_part's partial sums
}

func (e *cudaEngine) conv(s cuda.ConvShape, needDx bool) (convRun, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	c := &cudaConv{e: e, shape: s, needDx: needDx}
	splits, _ := biasSplits(s.N, s.K)
	var err error
	if c.part, err = e.alloc(4 * s.K * splits); err != nil {
		return nil, err
	}
	e.convs = append(e.convs, c)
	return c, nil
}

func (c *cudaConv) forward(x, w, y cuda.DevicePtr) error {
	return c.plan.RunForward(1, x, w, 0, y, c.e.ws)
}

func (c *cudaConv) backwardData(w, dy, dx cuda.DevicePtr) error {
	return c.plan.RunBackwardData(1, w, dy, 0, dx, c.e.ws)
}

func (c *cudaConv) backwardFilter(x, dy, dw cuda.DevicePtr) error {
	return c.plan.RunBackwardFilter(1, x, dy, 0, dw, c.e.ws)
}

func (c *cudaConv) backwardBias(dy, db cuda.DevicePtr) error {
	_, k, p, q, err := c.shape.Output()
	if err != nil {
		return err
	}
	return launchBiasGradNCHW(c.e, dy, c.part, db, c.shape.N, k, p*q)
}

type cudaLRN struct {
	e *cudaEngine
	d *cuda.TensorDesc
	l *cuda.LRNDesc
}

func (e *cudaEngine) lrn(in shape4, p alexnet.LRNParams) (lrnRun, error) {
	d, err := e.dnn.NewTensor4d(in.N, in.C, in.H, in.W)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, d.Close)
	l, err := e.dnn.NewLRN(p.Size, p.Alpha, p.Beta, p.K)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, l.Close)
	return &cudaLRN{e: e, d: d, l: l}, nil
}

func (r *cudaLRN) forward(x, y cuda.DevicePtr) error {
	return r.e.dnn.LRNForward(r.l, 1, r.d, x, 0, r.d, y)
}

func (r *cudaLRN) backward(y, dy, x, dx cuda.DevicePtr) error {
	return r.e.dnn.LRNBackward(r.l, 1, r.d, y, r.d, dy, r.d, x, 0, r.d, dx)
}

type cudaPool struct {
	e      *cudaEngine
	xd, yd *cuda.TensorDesc
	p      *cuda.PoolDesc
}

func (e *cudaEngine) pool(in, out shape4, k, stride, pad int) (poolRun, error) {
	xd, err := e.dnn.NewTensor4d(in.N, in.C, in.H, in.W)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, xd.Close)
	yd, err := e.dnn.NewTensor4d(out.N, out.C, out.H, out.W)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, yd.Close)
	p, err := e.dnn.NewPool(poolMode(e.det), k, stride, pad)
	if err != nil {
		return nil, err
	}
	e.closers = append(e.closers, p.Close)
	// The spec's arithmetic and cuDNN's must agree, or the buffers are
	// the wrong size.
	n, c, h, w, err := p.OutputDims(xd)
	if err != nil {
		return nil, err
	}
	if got := (shape4{n, c, h, w}); got != out {
		return nil, fmt.Errorf("cuDNN pools %v to %v, the spec says %v", in, got, out)
	}
	return &cudaPool{e: e, xd: xd, yd: yd, p: p}, nil
}

// poolMode is the cuDNN max pooling for Options.Deterministic: where
// overlapping windows share an input, CUDNN_POOLING_MAX's backward pass
// accumulates their gradients with atomics, in an order that varies;
// the deterministic mode does not.
func poolMode(deterministic bool) cuda.PoolMode {
	if deterministic {
		return cuda.PoolMaxDeterministic
	}
	return cuda.PoolMax
}

func (r *cudaPool) forward(x, y cuda.DevicePtr) error {
	return r.e.dnn.PoolingForward(r.p, 1, r.xd, x, 0, r.yd, y)
}

func (r *cudaPool) backward(y, dy, x, dx cuda.DevicePtr) error {
	return r.e.dnn.PoolingBackward(r.p, 1, r.yd, y, r.yd, dy, r.xd, x, 0, r.xd, dx)
}

// Workspace budget bounds, per convolution, and the fixed budget of
// Options.Deterministic.
const (
	minWorkspace = 64 << 20
	maxWorkspace = 4 << 30
	detWorkspace = 512 << 20
)

// workspaceBudget is the most workspace one convolution may use: a
// quarter of the memory still free once every buffer is allocated, within
// [64 MiB, 4 GiB]. cuDNN's fastest algorithms want workspace (FFT and
// Winograd, implicit GEMM with large tiles), and one buffer of the
// largest chosen size serves every layer and pass; the rest stays free
// for cuDNN's and cuBLAS's own allocations and for the algorithm search.
func workspaceBudget(free, limit int64) int64 {
	if limit > 0 {
		return limit
	}
	return min(max(free/4, minWorkspace), maxWorkspace)
}

func (e *cudaEngine) prepare() error {
	free, _, err := e.dev.MemGetInfo()
	if err != nil {
		return err
	}
	budget := workspaceBudget(free, e.wsLimit)
	if e.det && e.wsLimit == 0 {
		// Free memory differs run to run, and with it which algorithms
		// fit: a deterministic run must not depend on it.
		budget = detWorkspace
	}
	e.planner = e.dnn.NewConvPlanner(cuda.ConvPlannerOptions{
		WorkspaceBudget: budget, Search: e.search, Deterministic: e.det,
	})
	var need int64
	for _, c := range e.convs {
		if c.needDx {
			c.plan, err = e.planner.Plan(c.shape, e.math)
		} else {
			// conv1's backward-data pass never runs (the image needs
			// no gradient): neither search for it nor size the
			// workspace by its algorithms.
			c.plan, err = e.planner.PlanWithoutBackwardData(c.shape, e.math)
		}
		if err != nil {
			return err
		}
		need = max(need, c.plan.Workspace)
	}
	if need > 0 {
		if e.ws, err = e.dev.MemAlloc(int(need)); err != nil {
			return fmt.Errorf("workspace: %w", err)
		}
		e.allocated += need
	}
	return nil
}

func (e *cudaEngine) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d MiB allocated (workspace %d MiB)", e.allocated>>20, int64(e.ws.Bytes)>>20)
	for _, c := range e.convs {
		if c.plan != nil {
			fmt.Fprintf(&b, "\n  conv %v: fwd %s, bwd-data %s, bwd-filter %s", c.shape, c.plan.Forward, c.plan.BackwardData, c.plan.BackwardFilter)
			for _, n := range c.plan.Notes {
				fmt.Fprintf(&b, "\n    %s", n)
			}
		}
	}
	return b.String()
}

func (e *cudaEngine) close() error {
	var errs []error
	if e.stream != nil {
		errs = append(errs, e.stream.Synchronize())
	}
	if e.planner != nil {
		errs = append(errs, e.planner.Close())
	}
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	e.closers = nil
	for _, b := range e.bufs {
		errs = append(errs, e.dev.MemFree(b))
	}
	e.bufs = nil
	errs = append(errs, e.dev.MemFree(e.ws))
	e.ws = cuda.Buffer{}
	if e.mod != nil {
		errs = append(errs, e.mod.Unload())
	}
	if e.dnn != nil {
		errs = append(errs, e.dnn.Close())
	}
	if e.blas != nil {
		errs = append(errs, e.blas.Close())
	}
	if e.stream != nil {
		errs = append(errs, e.stream.Destroy())
		e.stream = nil
	}
	return errors.Join(errs...)
}
