package cuda

import (
	"fmt"
	"sync"
	"unsafe"
)

// cudnnAPI holds cuDNN 9's legacy ("v7-style") functions: cudnn_graph.h,
// cudnn_ops.h and cudnn_cnn.h. Descriptors and the handle are opaque
// pointers (uintptr); alpha and beta are host pointers to float32 for
// float32 tensors and are read before each call returns.
type cudnnAPI struct {
	getVersion         func() uintptr
	getCudartVersion   func() uintptr
	getErrorString     func(s int32) string
	getLastErrorString func(buf *byte, n uintptr)

	create    func(h *uintptr) int32
	destroy   func(h uintptr) int32
	setStream func(h, s uintptr) int32

	createTensor  func(d *uintptr) int32
	setTensor4d   func(d uintptr, format, dtype, n, c, h, w int32) int32
	destroyTensor func(d uintptr) int32
	createFilter  func(d *uintptr) int32
	setFilter4d   func(d uintptr, dtype, format, k, c, h, w int32) int32
	destroyFilter func(d uintptr) int32

	createConv        func(d *uintptr) int32
	setConv2d         func(d uintptr, padH, padW, u, v, dilH, dilW, mode, computeType int32) int32
	setConvGroupCount func(d uintptr, groups int32) int32
	setConvMathType   func(d uintptr, mathType int32) int32
	destroyConv       func(d uintptr) int32
	convFwdOutputDim  func(conv, x, w uintptr, n, c, h, wd *int32) int32

	findFwd         func(h, x, w, conv, y uintptr, req int32, ret *int32, perf *convPerf) int32
	findBwdData     func(h, w, dy, conv, dx uintptr, req int32, ret *int32, perf *convPerf) int32
	findBwdFilter   func(h, x, dy, conv, dw uintptr, req int32, ret *int32, perf *convPerf) int32
	getFwd          func(h, x, w, conv, y uintptr, req int32, ret *int32, perf *convPerf) int32
	getBwdData      func(h, w, dy, conv, dx uintptr, req int32, ret *int32, perf *convPerf) int32
	getBwdFilter    func(h, x, dy, conv, dw uintptr, req int32, ret *int32, perf *convPerf) int32
	fwdWorkspace    func(h, x, w, conv, y uintptr, algo int32, size *uintptr) int32
	bwdDataWorkspc  func(h, w, dy, conv, dx uintptr, algo int32, size *uintptr) int32
	bwdFilterWorksp func(h, x, dy, conv, dw uintptr, algo int32, size *uintptr) int32

	convFwd       func(h uintptr, alpha *float32, xd, x, wd, w, conv uintptr, algo int32, ws, wsSize uintptr, beta *float32, yd, y uintptr) int32
	convBwdData   func(h uintptr, alpha *float32, wd, w, dyd, dy, conv uintptr, algo int32, ws, wsSize uintptr, beta *float32, dxd, dx uintptr) int32
	convBwdFilter func(h uintptr, alpha *float32, xd, x, dyd, dy, conv uintptr, algo int32, ws, wsSize uintptr, beta *float32, dwd, dw uintptr) int32
	convBwdBias   func(h uintptr, alpha *float32, dyd, dy uintptr, beta *float32, dbd, db uintptr) int32
	addTensor     func(h uintptr, alpha *float32, ad, a uintptr, beta *float32, cd, c uintptr) int32

	createPool        func(d *uintptr) int32
	setPool2d         func(d uintptr, mode, nan, wh, ww, ph, pw, sh, sw int32) int32
	destroyPool       func(d uintptr) int32
	poolFwdOutputDim  func(pd, xd uintptr, n, c, h, w *int32) int32
	poolFwd           func(h, pd uintptr, alpha *float32, xd, x uintptr, beta *float32, yd, y uintptr) int32
	poolBwd           func(h, pd uintptr, alpha *float32, yd, y, dyd, dy, xd, x uintptr, beta *float32, dxd, dx uintptr) int32
	createLRN         func(d *uintptr) int32
	setLRN            func(d uintptr, n uint32, alpha, beta, k float64) int32
	destroyLRN        func(d uintptr) int32
	lrnFwd            func(h, ld uintptr, mode int32, alpha *float32, xd, x uintptr, beta *float32, yd, y uintptr) int32
	lrnBwd            func(h, ld uintptr, mode int32, alpha *float32, yd, y, dyd, dy, xd, x uintptr, beta *float32, dxd, dx uintptr) int32
	createActivation  func(d *uintptr) int32
	setActivation     func(d uintptr, mode, nan int32, coef float64) int32
	destroyActivation func(d uintptr) int32
	actFwd            func(h, ad uintptr, alpha *float32, xd, x uintptr, beta *float32, yd, y uintptr) int32
	actBwd            func(h, ad uintptr, alpha *float32, yd, y, dyd, dy, xd, x uintptr, beta *float32, dxd, dx uintptr) int32
	softmaxFwd        func(h uintptr, algo, mode int32, alpha *float32, xd, x uintptr, beta *float32, yd, y uintptr) int32
	softmaxBwd        func(h uintptr, algo, mode int32, alpha *float32, yd, y, dyd, dy uintptr, beta *float32, dxd, dx uintptr) int32
	createDropout     func(d *uintptr) int32
	destroyDropout    func(d uintptr) int32
	dropoutStatesSize func(h uintptr, size *uintptr) int32
	dropoutReserve    func(xd uintptr, size *uintptr) int32
	setDropout        func(d, h uintptr, p float32, states, stateSize uintptr, seed uint64) int32
	dropoutFwd        func(h, dd, xd, x, yd, y, reserve, reserveSize uintptr) int32
	dropoutBwd        func(h, dd, dyd, dy, dxd, dx, reserve, reserveSize uintptr) int32

	// The graph API (cudnn_graph.go); optional: without it every
	// convolution keeps its legacy algorithm.
	backendCreate       func(t int32, d *uintptr) int32
	backendDestroy      func(d uintptr) int32
	backendFinalize     func(d uintptr) int32
	backendSetAttribute func(d uintptr, name, typ int32, count int64, p unsafe.Pointer) int32
	backendGetAttribute func(d uintptr, name, typ int32, want int64, got *int64, p unsafe.Pointer) int32
	backendExecute      func(h, plan, pack uintptr) int32

	path    string
	version int // cudnnGetVersion: major·10000 + minor·100 + patch for cuDNN 9
	cudart  int // cudnnGetCudartVersion: the CUDA it was built for, 12090 for 12.9; 0 if unknown
}

var (
	cudnnOnce sync.Once
	cudnnLib  *cudnnAPI
	cudnnErr  error
)

func cudnn() (*cudnnAPI, error) {
	cudnnOnce.Do(func() { cudnnLib, cudnnErr = loadCUDNN() })
	return cudnnLib, cudnnErr
}

func loadCUDNN() (*cudnnAPI, error) {
	// cuDNN's engines call cuBLASLt and (runtime-compiled engines) NVRTC
	// by soname; loading ours first lets those lookups succeed even when
	// the libraries sit in folders the loader does not search. Failure is
	// not fatal here: cuDNN will report what it misses.
	_, _ = cublas()
	_, _ = nvrtc()
	var a *cudnnAPI
	_, err := libCUDNN.load(func(path string, h uintptr) error {
		c := &cudnnAPI{}
		if _, err := bindSyms(path, h, cudnnSyms(c)); err != nil {
			return err
		}
		c.version = int(c.getVersion())
		if c.version/10000 != 9 {
			return fmt.Errorf("reports cuDNN version %d: this package needs cuDNN 9", c.version)
		}
		if c.getCudartVersion != nil {
			c.cudart = int(c.getCudartVersion())
			if err := checkCUDAMajor("cuDNN "+cudnnVersionString(c.version)+" (CUDA "+VersionString(c.cudart)+" build)", c.cudart/1000, driverCUDA()); err != nil {
				return err
			}
		}
		a = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.path = loadedPath(libCUDNN)
	return a, nil
}

func cudnnSyms(a *cudnnAPI) []sym {
	return []sym{
		{fptr: &a.getVersion, names: []string{"cudnnGetVersion"}},
		{fptr: &a.getCudartVersion, names: []string{"cudnnGetCudartVersion"}, optional: true},
		{fptr: &a.getErrorString, names: []string{"cudnnGetErrorString"}},
		{fptr: &a.getLastErrorString, names: []string{"cudnnGetLastErrorString"}, optional: true},
		{fptr: &a.create, names: []string{"cudnnCreate"}},
		{fptr: &a.destroy, names: []string{"cudnnDestroy"}},
		{fptr: &a.setStream, names: []string{"cudnnSetStream"}},
		{fptr: &a.createTensor, names: []string{"cudnnCreateTensorDescriptor"}},
		{fptr: &a.setTensor4d, names: []string{"cudnnSetTensor4dDescriptor"}},
		{fptr: &a.destroyTensor, names: []string{"cudnnDestroyTensorDescriptor"}},
		{fptr: &a.createFilter, names: []string{"cudnnCreateFilterDescriptor"}},
		{fptr: &a.setFilter4d, names: []string{"cudnnSetFilter4dDescriptor"}},
		{fptr: &a.destroyFilter, names: []string{"cudnnDestroyFilterDescriptor"}},
		{fptr: &a.createConv, names: []string{"cudnnCreateConvolutionDescriptor"}},
		{fptr: &a.setConv2d, names: []string{"cudnnSetConvolution2dDescriptor"}},
		{fptr: &a.setConvGroupCount, names: []string{"cudnnSetConvolutionGroupCount"}},
		{fptr: &a.setConvMathType, names: []string{"cudnnSetConvolutionMathType"}},
		{fptr: &a.destroyConv, names: []string{"cudnnDestroyConvolutionDescriptor"}},
		{fptr: &a.convFwdOutputDim, names: []string{"cudnnGetConvolution2dForwardOutputDim"}},
		{fptr: &a.findFwd, names: []string{"cudnnFindConvolutionForwardAlgorithm"}},
		{fptr: &a.findBwdData, names: []string{"cudnnFindConvolutionBackwardDataAlgorithm"}},
		{fptr: &a.findBwdFilter, names: []string{"cudnnFindConvolutionBackwardFilterAlgorithm"}},
		{fptr: &a.getFwd, names: []string{"cudnnGetConvolutionForwardAlgorithm_v7"}},
		{fptr: &a.getBwdData, names: []string{"cudnnGetConvolutionBackwardDataAlgorithm_v7"}},
		{fptr: &a.getBwdFilter, names: []string{"cudnnGetConvolutionBackwardFilterAlgorithm_v7"}},
		{fptr: &a.fwdWorkspace, names: []string{"cudnnGetConvolutionForwardWorkspaceSize"}},
		{fptr: &a.bwdDataWorkspc, names: []string{"cudnnGetConvolutionBackwardDataWorkspaceSize"}},
		{fptr: &a.bwdFilterWorksp, names: []string{"cudnnGetConvolutionBackwardFilterWorkspaceSize"}},
		{fptr: &a.convFwd, names: []string{"cudnnConvolutionForward"}},
		{fptr: &a.convBwdData, names: []string{"cudnnConvolutionBackwardData"}},
		{fptr: &a.convBwdFilter, names: []string{"cudnnConvolutionBackwardFilter"}},
		{fptr: &a.convBwdBias, names: []string{"cudnnConvolutionBackwardBias"}},
		{fptr: &a.addTensor, names: []string{"cudnnAddTensor"}},
		{fptr: &a.createPool, names: []string{"cudnnCreatePoolingDescriptor"}},
		{fptr: &a.setPool2d, names: []string{"cudnnSetPooling2dDescriptor"}},
		{fptr: &a.destroyPool, names: []string{"cudnnDestroyPoolingDescriptor"}},
		{fptr: &a.poolFwdOutputDim, names: []string{"cudnnGetPooling2dForwardOutputDim"}},
		{fptr: &a.poolFwd, names: []string{"cudnnPoolingForward"}},
		{fptr: &a.poolBwd, names: []string{"cudnnPoolingBackward"}},
		{fptr: &a.createLRN, names: []string{"cudnnCreateLRNDescriptor"}},
		{fptr: &a.setLRN, names: []string{"cudnnSetLRNDescriptor"}},
		{fptr: &a.destroyLRN, names: []string{"cudnnDestroyLRNDescriptor"}},
		{fptr: &a.lrnFwd, names: []string{"cudnnLRNCrossChannelForward"}},
		{fptr: &a.lrnBwd, names: []string{"cudnnLRNCrossChannelBackward"}},
		{fptr: &a.createActivation, names: []string{"cudnnCreateActivationDescriptor"}},
		{fptr: &a.setActivation, names: []string{"cudnnSetActivationDescriptor"}},
		{fptr: &a.destroyActivation, names: []string{"cudnnDestroyActivationDescriptor"}},
		{fptr: &a.actFwd, names: []string{"cudnnActivationForward"}},
		{fptr: &a.actBwd, names: []string{"cudnnActivationBackward"}},
		{fptr: &a.softmaxFwd, names: []string{"cudnnSoftmaxForward"}},
		{fptr: &a.softmaxBwd, names: []string{"cudnnSoftmaxBackward"}},
		{fptr: &a.createDropout, names: []string{"cudnnCreateDropoutDescriptor"}},
		{fptr: &a.destroyDropout, names: []string{"cudnnDestroyDropoutDescriptor"}},
		{fptr: &a.dropoutStatesSize, names: []string{"cudnnDropoutGetStatesSize"}},
		{fptr: &a.dropoutReserve, names: []string{"cudnnDropoutGetReserveSpaceSize"}},
		{fptr: &a.setDropout, names: []string{"cudnnSetDropoutDescriptor"}},
		{fptr: &a.dropoutFwd, names: []string{"cudnnDropoutForward"}},
		{fptr: &a.dropoutBwd, names: []string{"cudnnDropoutBackward"}},
		{fptr: &a.backendCreate, names: []string{"cudnnBackendCreateDescriptor"}, optional: true},
		{fptr: &a.backendDestroy, names: []string{"cudnnBackendDestroyDescriptor"}, optional: true},
		{fptr: &a.backendFinalize, names: []string{"cudnnBackendFinalize"}, optional: true},
		{fptr: &a.backendSetAttribute, names: []string{"cudnnBackendSetAttribute"}, optional: true},
		{fptr: &a.backendGetAttribute, names: []string{"cudnnBackendGetAttribute"}, optional: true},
		{fptr: &a.backendExecute, names: []string{"cudnnBackendExecute"}, optional: true},
	}
}

// err makes an *Error from a cuDNN status. cuDNN 9 keeps a per-thread
// message for the last failure, naming the bad parameter, which is far
// more useful than the status; it is read here, while the caller is still
// on the thread that made the failing call.
func (a *cudnnAPI) err(r int32, format string, args ...any) error {
	if r == 0 {
		return nil
	}
	var desc, detail string
	if a != nil {
		desc = a.getErrorString(r)
		if a.getLastErrorString != nil {
			buf := make([]byte, 2048)
			a.getLastErrorString(&buf[0], uintptr(len(buf)))
			detail = goString(&buf[0])
		}
	}
	return newError(APICUDNN, int(r), desc, detail, format, args...)
}

// CUDNNVersion returns the loaded cuDNN's version as major·10000 +
// minor·100 + patch (90300 for 9.3.0).
func CUDNNVersion() (int, error) {
	a, err := cudnn()
	if err != nil {
		return 0, err
	}
	return a.version, nil
}

// cudnnVersionString formats cuDNN 9's version number.
func cudnnVersionString(v int) string {
	return fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100)
}

// DNN is a cuDNN handle bound to a device. Not safe for concurrent use:
// the stream is per handle; use one handle per goroutine.
type DNN struct {
	dev    *Device
	api    *cudnnAPI
	h      uintptr
	stream *Stream // SetStream's, where the planner times the graph API's engines
}

// NewDNN creates a cuDNN handle in the device's primary context.
func (d *Device) NewDNN() (*DNN, error) {
	a, err := cudnn()
	if err != nil {
		return nil, err
	}
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	n := &DNN{dev: d, api: a}
	if r := a.create(&n.h); r != 0 {
		return nil, a.err(r, "cudnnCreate [%s]", a.path)
	}
	return n, nil
}

// Device returns the device the handle belongs to.
func (n *DNN) Device() *Device { return n.dev }

// do runs one cuDNN call with the context current and turns its status
// into an error while still on the calling thread.
func (n *DNN) do(f func() int32, format string, args ...any) error {
	if err := n.dev.enter(); err != nil {
		return err
	}
	defer n.dev.leave()
	return n.api.err(f(), format, args...)
}

// Close destroys the handle (cudnnDestroy synchronises the device).
func (n *DNN) Close() error {
	if n == nil || n.h == 0 {
		return nil
	}
	err := n.do(func() int32 { return n.api.destroy(n.h) }, "cudnnDestroy")
	n.h = 0
	return err
}

// SetStream makes later calls queue on s (nil: legacy default stream).
func (n *DNN) SetStream(s *Stream) error {
	if err := s.live(); err != nil {
		return err
	}
	if err := n.do(func() int32 { return n.api.setStream(n.h, s.handle()) }, "cudnnSetStream"); err != nil {
		return err
	}
	n.stream = s
	return nil
}

// cuDNN enumerations used here (cudnn_graph.h, cudnn_ops.h, cudnn_cnn.h).
const (
	dnnTensorNCHW       = 0 // CUDNN_TENSOR_NCHW
	dnnDataFloat        = 0 // CUDNN_DATA_FLOAT
	dnnCrossCorrelation = 1 // CUDNN_CROSS_CORRELATION: what every framework calls convolution
	dnnNotPropagateNaN  = 0
	dnnLRNCrossChannel  = 0 // CUDNN_LRN_CROSS_CHANNEL_DIM1

	dnnDefaultMath     = 0 // CUDNN_DEFAULT_MATH: may use TF32 tensor cores for float32
	dnnTensorOpMath    = 1 // CUDNN_TENSOR_OP_MATH
	dnnTensorOpConvert = 2 // CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION
	dnnFMAMath         = 3 // CUDNN_FMA_MATH: float32 FMA only, no TF32
)

// TensorDesc describes a packed NCHW float32 tensor.
type TensorDesc struct {
	dnn        *DNN
	h          uintptr
	N, C, H, W int
}

// NewTensor4d describes a packed n×c×h×w float32 tensor.
func (n *DNN) NewTensor4d(nn, c, h, w int) (*TensorDesc, error) {
	if nn <= 0 || c <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("cuda: NewTensor4d(%d,%d,%d,%d): dimensions must be positive", nn, c, h, w)
	}
	t := &TensorDesc{dnn: n, N: nn, C: c, H: h, W: w}
	if err := n.do(func() int32 { return n.api.createTensor(&t.h) }, "cudnnCreateTensorDescriptor"); err != nil {
		return nil, err
	}
	if err := n.do(func() int32 {
		return n.api.setTensor4d(t.h, dnnTensorNCHW, dnnDataFloat, int32(nn), int32(c), int32(h), int32(w))
	}, "cudnnSetTensor4dDescriptor(NCHW, FLOAT, %d,%d,%d,%d)", nn, c, h, w); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Elems is the tensor's element count; Bytes its float32 size.
func (t *TensorDesc) Elems() int { return t.N * t.C * t.H * t.W }

// Bytes is the tensor's size in bytes.
func (t *TensorDesc) Bytes() int { return 4 * t.Elems() }

// Close destroys the descriptor.
func (t *TensorDesc) Close() error {
	if t == nil || t.h == 0 {
		return nil
	}
	err := t.dnn.do(func() int32 { return t.dnn.api.destroyTensor(t.h) }, "cudnnDestroyTensorDescriptor")
	t.h = 0
	return err
}

// FilterDesc describes float32 convolution weights, K×C×R×S (OIHW; C is
// input channels per group).
type FilterDesc struct {
	dnn        *DNN
	h          uintptr
	K, C, R, S int
}

// NewFilter4d describes k×c×r×s float32 weights.
func (n *DNN) NewFilter4d(k, c, r, s int) (*FilterDesc, error) {
	if k <= 0 || c <= 0 || r <= 0 || s <= 0 {
		return nil, fmt.Errorf("cuda: NewFilter4d(%d,%d,%d,%d): dimensions must be positive", k, c, r, s)
	}
	f := &FilterDesc{dnn: n, K: k, C: c, R: r, S: s}
	if err := n.do(func() int32 { return n.api.createFilter(&f.h) }, "cudnnCreateFilterDescriptor"); err != nil {
		return nil, err
	}
	// Note the argument order: data type before format, unlike tensors.
	if err := n.do(func() int32 {
		return n.api.setFilter4d(f.h, dnnDataFloat, dnnTensorNCHW, int32(k), int32(c), int32(r), int32(s))
	}, "cudnnSetFilter4dDescriptor(FLOAT, NCHW, %d,%d,%d,%d)", k, c, r, s); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Close destroys the descriptor.
func (f *FilterDesc) Close() error {
	if f == nil || f.h == 0 {
		return nil
	}
	err := f.dnn.do(func() int32 { return f.dnn.api.destroyFilter(f.h) }, "cudnnDestroyFilterDescriptor")
	f.h = 0
	return err
}

// convDesc is a convolution descriptor; ConvPlan makes and owns them.
type convDesc struct {
	dnn *DNN
	h   uintptr
}

func (n *DNN) newConvDesc(s ConvShape, mathType int32) (*convDesc, error) {
	c := &convDesc{dnn: n}
	if err := n.do(func() int32 { return n.api.createConv(&c.h) }, "cudnnCreateConvolutionDescriptor"); err != nil {
		return nil, err
	}
	s = s.normalized()
	steps := []struct {
		f    func() int32
		what string
	}{
		{func() int32 {
			// Compute type FLOAT: accumulate in float32 whatever the math mode.
			return n.api.setConv2d(c.h, int32(s.PadH), int32(s.PadW), int32(s.StrideH), int32(s.StrideW),
				int32(s.DilationH), int32(s.DilationW), dnnCrossCorrelation, dnnDataFloat)
		}, fmt.Sprintf("cudnnSetConvolution2dDescriptor(pad %d,%d stride %d,%d dilation %d,%d)", s.PadH, s.PadW, s.StrideH, s.StrideW, s.DilationH, s.DilationW)},
		{func() int32 { return n.api.setConvGroupCount(c.h, int32(s.Groups)) }, fmt.Sprintf("cudnnSetConvolutionGroupCount(%d)", s.Groups)},
		{func() int32 { return n.api.setConvMathType(c.h, mathType) }, fmt.Sprintf("cudnnSetConvolutionMathType(%d)", mathType)},
	}
	for _, st := range steps {
		if err := n.do(st.f, "%s", st.what); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

func (c *convDesc) setMath(mathType int32) error {
	return c.dnn.do(func() int32 { return c.dnn.api.setConvMathType(c.h, mathType) }, "cudnnSetConvolutionMathType(%d)", mathType)
}

func (c *convDesc) close() error {
	if c == nil || c.h == 0 {
		return nil
	}
	err := c.dnn.do(func() int32 { return c.dnn.api.destroyConv(c.h) }, "cudnnDestroyConvolutionDescriptor")
	c.h = 0
	return err
}

// AddTensor computes C = alpha·A + beta·C, broadcasting A over any
// dimension where it is 1: with A 1×K×1×1 this adds a bias per channel.
func (n *DNN) AddTensor(alpha float32, aDesc *TensorDesc, a DevicePtr, beta float32, cDesc *TensorDesc, c DevicePtr) error {
	return n.do(func() int32 {
		return n.api.addTensor(n.h, &alpha, aDesc.h, uintptr(a), &beta, cDesc.h, uintptr(c))
	}, "cudnnAddTensor")
}

// ConvolutionBackwardBias computes db = alpha·Σ_{n,h,w} dy + beta·db, the
// bias gradient, with db described as 1×K×1×1.
func (n *DNN) ConvolutionBackwardBias(alpha float32, dyDesc *TensorDesc, dy DevicePtr, beta float32, dbDesc *TensorDesc, db DevicePtr) error {
	return n.do(func() int32 {
		return n.api.convBwdBias(n.h, &alpha, dyDesc.h, uintptr(dy), &beta, dbDesc.h, uintptr(db))
	}, "cudnnConvolutionBackwardBias")
}

// PoolMode is a cudnnPoolingMode_t.
type PoolMode int32

const (
	PoolMax              PoolMode = 0 // CUDNN_POOLING_MAX
	PoolAverageInclusive PoolMode = 1 // CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
	PoolAverageExclusive PoolMode = 2 // CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING
	PoolMaxDeterministic PoolMode = 3 // CUDNN_POOLING_MAX_DETERMINISTIC
)

// PoolDesc describes 2-D pooling.
type PoolDesc struct {
	dnn                 *DNN
	h                   uintptr
	Mode                PoolMode
	Window, Stride, Pad [2]int // (vertical, horizontal)
}

// NewPool describes pooling with a window×window window, the given stride
// and padding, in both directions. AlexNet's is NewPool(PoolMax, 3, 2, 0).
func (n *DNN) NewPool(mode PoolMode, window, stride, pad int) (*PoolDesc, error) {
	p := &PoolDesc{dnn: n, Mode: mode, Window: [2]int{window, window}, Stride: [2]int{stride, stride}, Pad: [2]int{pad, pad}}
	if window <= 0 || stride <= 0 || pad < 0 || pad >= window {
		return nil, fmt.Errorf("cuda: NewPool(window %d, stride %d, pad %d): want window, stride > 0 and 0 <= pad < window", window, stride, pad)
	}
	if err := n.do(func() int32 { return n.api.createPool(&p.h) }, "cudnnCreatePoolingDescriptor"); err != nil {
		return nil, err
	}
	if err := n.do(func() int32 {
		return n.api.setPool2d(p.h, int32(mode), dnnNotPropagateNaN, int32(window), int32(window), int32(pad), int32(pad), int32(stride), int32(stride))
	}, "cudnnSetPooling2dDescriptor(mode %d, window %d, pad %d, stride %d)", mode, window, pad, stride); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// OutputDims asks cuDNN for the pooled shape of x; PoolOutput computes
// the same on the CPU.
func (p *PoolDesc) OutputDims(x *TensorDesc) (n, c, h, w int, err error) {
	var a, b, cc, d int32
	err = p.dnn.do(func() int32 { return p.dnn.api.poolFwdOutputDim(p.h, x.h, &a, &b, &cc, &d) }, "cudnnGetPooling2dForwardOutputDim")
	return int(a), int(b), int(cc), int(d), err
}

// Close destroys the descriptor.
func (p *PoolDesc) Close() error {
	if p == nil || p.h == 0 {
		return nil
	}
	err := p.dnn.do(func() int32 { return p.dnn.api.destroyPool(p.h) }, "cudnnDestroyPoolingDescriptor")
	p.h = 0
	return err
}

// PoolingForward computes y = alpha·pool(x) + beta·y.
func (n *DNN) PoolingForward(p *PoolDesc, alpha float32, xDesc *TensorDesc, x DevicePtr, beta float32, yDesc *TensorDesc, y DevicePtr) error {
	return n.do(func() int32 {
		return n.api.poolFwd(n.h, p.h, &alpha, xDesc.h, uintptr(x), &beta, yDesc.h, uintptr(y))
	}, "cudnnPoolingForward")
}

// PoolingBackward computes dx from dy, given the forward's x and y.
func (n *DNN) PoolingBackward(p *PoolDesc, alpha float32, yDesc *TensorDesc, y DevicePtr, dyDesc *TensorDesc, dy DevicePtr,
	xDesc *TensorDesc, x DevicePtr, beta float32, dxDesc *TensorDesc, dx DevicePtr) error {
	return n.do(func() int32 {
		return n.api.poolBwd(n.h, p.h, &alpha, yDesc.h, uintptr(y), dyDesc.h, uintptr(dy), xDesc.h, uintptr(x), &beta, dxDesc.h, uintptr(dx))
	}, "cudnnPoolingBackward")
}

// LRN limits from cudnn_ops.h.
const (
	lrnMinN    = 1
	lrnMaxN    = 16
	lrnMinK    = 1e-5
	lrnMinBeta = 0.01
)

// LRNDesc describes cross-channel local response normalisation,
//
//	y_c = x_c / (K + (Alpha/N)·Σ_{j∈window(c)} x_j²)^Beta
//
// with the N channels centred on c, clipped at the edges. This is cuDNN's
// convention, and pkg/alexnet's: Alpha multiplies the mean of the squares.
// The paper writes α·Σ with α = 1e-4, which is Alpha = N·α = 5e-4 here;
// passing 1e-4 (as Caffe's bvlc_alexnet does) normalises 5× more weakly.
type LRNDesc struct {
	dnn            *DNN
	h              uintptr
	N              int
	Alpha, Beta, K float64
}

// CheckLRN validates LRN parameters against cuDNN's limits.
func CheckLRN(n int, alpha, beta, k float64) error {
	switch {
	case n < lrnMinN || n > lrnMaxN:
		return fmt.Errorf("LRN size %d outside cuDNN's [%d, %d]", n, lrnMinN, lrnMaxN)
	case k < lrnMinK:
		return fmt.Errorf("LRN k=%g below cuDNN's minimum %g", k, lrnMinK)
	case beta < lrnMinBeta:
		return fmt.Errorf("LRN beta=%g below cuDNN's minimum %g", beta, lrnMinBeta)
	case alpha < 0:
		return fmt.Errorf("LRN alpha=%g is negative", alpha)
	}
	return nil
}

// NewLRN describes LRN over n channels; alpha in cuDNN's convention (see
// LRNDesc). The paper's layer is NewLRN(5, 5e-4, 0.75, 2).
func (n *DNN) NewLRN(size int, alpha, beta, k float64) (*LRNDesc, error) {
	if err := CheckLRN(size, alpha, beta, k); err != nil {
		return nil, fmt.Errorf("cuda: NewLRN: %w", err)
	}
	l := &LRNDesc{dnn: n, N: size, Alpha: alpha, Beta: beta, K: k}
	if err := n.do(func() int32 { return n.api.createLRN(&l.h) }, "cudnnCreateLRNDescriptor"); err != nil {
		return nil, err
	}
	if err := n.do(func() int32 { return n.api.setLRN(l.h, uint32(size), alpha, beta, k) },
		"cudnnSetLRNDescriptor(n=%d, alpha=%g, beta=%g, k=%g)", size, alpha, beta, k); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Close destroys the descriptor.
func (l *LRNDesc) Close() error {
	if l == nil || l.h == 0 {
		return nil
	}
	err := l.dnn.do(func() int32 { return l.dnn.api.destroyLRN(l.h) }, "cudnnDestroyLRNDescriptor")
	l.h = 0
	return err
}

// LRNForward computes y = alpha·LRN(x) + beta·y.
func (n *DNN) LRNForward(l *LRNDesc, alpha float32, xDesc *TensorDesc, x DevicePtr, beta float32, yDesc *TensorDesc, y DevicePtr) error {
	return n.do(func() int32 {
		return n.api.lrnFwd(n.h, l.h, dnnLRNCrossChannel, &alpha, xDesc.h, uintptr(x), &beta, yDesc.h, uintptr(y))
	}, "cudnnLRNCrossChannelForward")
}

// LRNBackward computes dx from dy, given the forward's x and y.
func (n *DNN) LRNBackward(l *LRNDesc, alpha float32, yDesc *TensorDesc, y DevicePtr, dyDesc *TensorDesc, dy DevicePtr,
	xDesc *TensorDesc, x DevicePtr, beta float32, dxDesc *TensorDesc, dx DevicePtr) error {
	return n.do(func() int32 {
		return n.api.lrnBwd(n.h, l.h, dnnLRNCrossChannel, &alpha, yDesc.h, uintptr(y), dyDesc.h, uintptr(dy), xDesc.h, uintptr(x), &beta, dxDesc.h, uintptr(dx))
	}, "cudnnLRNCrossChannelBackward")
}

// ActivationMode is a cudnnActivationMode_t.
type ActivationMode int32

const (
	ActivationSigmoid ActivationMode = 0
	ActivationReLU    ActivationMode = 1
	ActivationTanh    ActivationMode = 2
)

// ActivationDesc describes an element-wise activation.
type ActivationDesc struct {
	dnn  *DNN
	h    uintptr
	Mode ActivationMode
}

// NewActivation describes mode (ReLU for AlexNet).
func (n *DNN) NewActivation(mode ActivationMode) (*ActivationDesc, error) {
	a := &ActivationDesc{dnn: n, Mode: mode}
	if err := n.do(func() int32 { return n.api.createActivation(&a.h) }, "cudnnCreateActivationDescriptor"); err != nil {
		return nil, err
	}
	if err := n.do(func() int32 { return n.api.setActivation(a.h, int32(mode), dnnNotPropagateNaN, 0) },
		"cudnnSetActivationDescriptor(mode %d)", mode); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Close destroys the descriptor.
func (a *ActivationDesc) Close() error {
	if a == nil || a.h == 0 {
		return nil
	}
	err := a.dnn.do(func() int32 { return a.dnn.api.destroyActivation(a.h) }, "cudnnDestroyActivationDescriptor")
	a.h = 0
	return err
}

// ActivationForward computes y = alpha·f(x) + beta·y; x and y may alias.
func (n *DNN) ActivationForward(a *ActivationDesc, alpha float32, xDesc *TensorDesc, x DevicePtr, beta float32, yDesc *TensorDesc, y DevicePtr) error {
	return n.do(func() int32 {
		return n.api.actFwd(n.h, a.h, &alpha, xDesc.h, uintptr(x), &beta, yDesc.h, uintptr(y))
	}, "cudnnActivationForward")
}

// ActivationBackward computes dx from dy, given the forward's x and y.
func (n *DNN) ActivationBackward(a *ActivationDesc, alpha float32, yDesc *TensorDesc, y DevicePtr, dyDesc *TensorDesc, dy DevicePtr,
	xDesc *TensorDesc, x DevicePtr, beta float32, dxDesc *TensorDesc, dx DevicePtr) error {
	return n.do(func() int32 {
		return n.api.actBwd(n.h, a.h, &alpha, yDesc.h, uintptr(y), dyDesc.h, uintptr(dy), xDesc.h, uintptr(x), &beta, dxDesc.h, uintptr(dx))
	}, "cudnnActivationBackward")
}

// SoftmaxAlgo is a cudnnSoftmaxAlgorithm_t.
type SoftmaxAlgo int32

const (
	SoftmaxFast     SoftmaxAlgo = 0 // no max subtraction: may overflow
	SoftmaxAccurate SoftmaxAlgo = 1 // subtracts the max first
	SoftmaxLog      SoftmaxAlgo = 2 // log-softmax
)

// softmaxModeChannel (CUDNN_SOFTMAX_MODE_CHANNEL) normalises over C for
// each (n, h, w): for logits described as N×classes×1×1 that is per image.
const softmaxModeChannel = 1

// SoftmaxForward computes y = alpha·softmax(x) + beta·y over the channel
// dimension.
func (n *DNN) SoftmaxForward(algo SoftmaxAlgo, alpha float32, xDesc *TensorDesc, x DevicePtr, beta float32, yDesc *TensorDesc, y DevicePtr) error {
	return n.do(func() int32 {
		return n.api.softmaxFwd(n.h, int32(algo), softmaxModeChannel, &alpha, xDesc.h, uintptr(x), &beta, yDesc.h, uintptr(y))
	}, "cudnnSoftmaxForward(algo %d)", algo)
}

// SoftmaxBackward computes dx from dy and the forward's y.
func (n *DNN) SoftmaxBackward(algo SoftmaxAlgo, alpha float32, yDesc *TensorDesc, y DevicePtr, dyDesc *TensorDesc, dy DevicePtr,
	beta float32, dxDesc *TensorDesc, dx DevicePtr) error {
	return n.do(func() int32 {
		return n.api.softmaxBwd(n.h, int32(algo), softmaxModeChannel, &alpha, yDesc.h, uintptr(y), dyDesc.h, uintptr(dy), &beta, dxDesc.h, uintptr(dx))
	}, "cudnnSoftmaxBackward(algo %d)", algo)
}

// Dropout is a cuDNN dropout descriptor with its RNG state on the device.
// cuDNN's dropout is "inverted": kept units are scaled by 1/(1−P) during
// training, so inference uses the layer unchanged: at inference the same
// function as the paper's halving of outputs at test time when P = 0.5
// (training's path differs; README).
type Dropout struct {
	dnn    *DNN
	h      uintptr
	states Buffer
	P      float32
	Seed   uint64
}

// NewDropout makes a dropout descriptor that zeroes each unit with
// probability p, and allocates and seeds its RNG states (a kernel launch
// on the handle's stream; do it once, not per step).
func (n *DNN) NewDropout(p float32, seed uint64) (*Dropout, error) {
	if p < 0 || p >= 1 {
		return nil, fmt.Errorf("cuda: NewDropout(%g): probability must be in [0, 1)", p)
	}
	d := &Dropout{dnn: n, P: p, Seed: seed}
	if err := n.do(func() int32 { return n.api.createDropout(&d.h) }, "cudnnCreateDropoutDescriptor"); err != nil {
		return nil, err
	}
	var size uintptr
	if err := n.do(func() int32 { return n.api.dropoutStatesSize(n.h, &size) }, "cudnnDropoutGetStatesSize"); err != nil {
		d.Close()
		return nil, err
	}
	var err error
	if d.states, err = n.dev.MemAlloc(int(size)); err != nil {
		d.Close()
		return nil, err
	}
	if err := n.do(func() int32 {
		return n.api.setDropout(d.h, n.h, p, uintptr(d.states.Ptr), uintptr(d.states.Bytes), seed)
	}, "cudnnSetDropoutDescriptor(p=%g, %d state bytes, seed %d)", p, size, seed); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// ReserveBytes is the size of the per-call mask buffer that Forward fills
// and Backward reads, for tensors shaped like x.
func (d *Dropout) ReserveBytes(x *TensorDesc) (int, error) {
	var size uintptr
	err := d.dnn.do(func() int32 { return d.dnn.api.dropoutReserve(x.h, &size) }, "cudnnDropoutGetReserveSpaceSize")
	return int(size), err
}

// Forward applies dropout to x into y, recording the mask in reserve.
func (d *Dropout) Forward(xDesc *TensorDesc, x DevicePtr, yDesc *TensorDesc, y DevicePtr, reserve Buffer) error {
	n := d.dnn
	return n.do(func() int32 {
		return n.api.dropoutFwd(n.h, d.h, xDesc.h, uintptr(x), yDesc.h, uintptr(y), uintptr(reserve.Ptr), uintptr(reserve.Bytes))
	}, "cudnnDropoutForward(%d reserve bytes)", reserve.Bytes)
}

// Backward applies the recorded mask (and scale) to dy into dx.
func (d *Dropout) Backward(dyDesc *TensorDesc, dy DevicePtr, dxDesc *TensorDesc, dx DevicePtr, reserve Buffer) error {
	n := d.dnn
	return n.do(func() int32 {
		return n.api.dropoutBwd(n.h, d.h, dyDesc.h, uintptr(dy), dxDesc.h, uintptr(dx), uintptr(reserve.Ptr), uintptr(reserve.Bytes))
	}, "cudnnDropoutBackward(%d reserve bytes)", reserve.Bytes)
}

// Close destroys the descriptor and frees its states.
func (d *Dropout) Close() error {
	if d == nil {
		return nil
	}
	var err error
	if d.h != 0 {
		err = d.dnn.do(func() int32 { return d.dnn.api.destroyDropout(d.h) }, "cudnnDestroyDropoutDescriptor")
		d.h = 0
	}
	if ferr := d.dnn.dev.MemFree(d.states); err == nil {
		err = ferr
	}
	d.states = Buffer{}
	return err
}
