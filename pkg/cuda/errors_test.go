package cuda

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestStatusName(t *testing.T) {
	tests := []struct {
		api  API
		code int
		want string
	}{
		{APIDriver, 0, "CUDA_SUCCESS"},
		{APIDriver, 1, "CUDA_ERROR_INVALID_VALUE"},
		{APIDriver, 2, "CUDA_ERROR_OUT_OF_MEMORY"},
		{APIDriver, 34, "CUDA_ERROR_STUB_LIBRARY"},
		{APIDriver, 100, "CUDA_ERROR_NO_DEVICE"},
		{APIDriver, 209, "CUDA_ERROR_NO_BINARY_FOR_GPU"},
		{APIDriver, 218, "CUDA_ERROR_INVALID_PTX"},
		{APIDriver, 222, "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"},
		{APIDriver, 500, "CUDA_ERROR_NOT_FOUND"},
		{APIDriver, 600, "CUDA_ERROR_NOT_READY"},
		{APIDriver, 700, "CUDA_ERROR_ILLEGAL_ADDRESS"},
		{APIDriver, 701, "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"},
		{APIDriver, 719, "CUDA_ERROR_LAUNCH_FAILED"},
		{APIDriver, 803, "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH"},
		{APIDriver, 999, "CUDA_ERROR_UNKNOWN"},
		{APIDriver, 4242, "CUDA_ERROR_4242"},
		{APICUBLAS, 0, "CUBLAS_STATUS_SUCCESS"},
		{APICUBLAS, 1, "CUBLAS_STATUS_NOT_INITIALIZED"},
		{APICUBLAS, 3, "CUBLAS_STATUS_ALLOC_FAILED"},
		{APICUBLAS, 7, "CUBLAS_STATUS_INVALID_VALUE"},
		{APICUBLAS, 8, "CUBLAS_STATUS_ARCH_MISMATCH"},
		{APICUBLAS, 13, "CUBLAS_STATUS_EXECUTION_FAILED"},
		{APICUBLAS, 14, "CUBLAS_STATUS_INTERNAL_ERROR"},
		{APICUBLAS, 15, "CUBLAS_STATUS_NOT_SUPPORTED"},
		{APICUBLAS, 99, "CUBLAS_STATUS_99"},
		{APICUDNN, 0, "CUDNN_STATUS_SUCCESS"},
		{APICUDNN, 1001, "CUDNN_STATUS_NOT_INITIALIZED"},
		{APICUDNN, 1008, "CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED"},
		{APICUDNN, 2000, "CUDNN_STATUS_BAD_PARAM"},
		{APICUDNN, 2002, "CUDNN_STATUS_BAD_PARAM_NULL_POINTER"},
		{APICUDNN, 2008, "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH"},
		{APICUDNN, 3000, "CUDNN_STATUS_NOT_SUPPORTED"},
		{APICUDNN, 3007, "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH"},
		{APICUDNN, 4000, "CUDNN_STATUS_INTERNAL_ERROR"},
		{APICUDNN, 4004, "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"},
		{APICUDNN, 5000, "CUDNN_STATUS_EXECUTION_FAILED"},
		{APICUDNN, 5002, "CUDNN_STATUS_EXECUTION_FAILED_CUBLAS"},
		// A sub-code newer than the table still names its category.
		{APICUDNN, 3099, "CUDNN_STATUS_NOT_SUPPORTED (sub-code 3099)"},
		{APICUDNN, 2999, "CUDNN_STATUS_BAD_PARAM (sub-code 2999)"},
		{APICUDNN, 7, "CUDNN_STATUS_7"},
		{APINVRTC, 0, "NVRTC_SUCCESS"},
		{APINVRTC, 1, "NVRTC_ERROR_OUT_OF_MEMORY"},
		{APINVRTC, 3, "NVRTC_ERROR_INVALID_INPUT"},
		{APINVRTC, 5, "NVRTC_ERROR_INVALID_OPTION"},
		{APINVRTC, 6, "NVRTC_ERROR_COMPILATION"},
		{APINVRTC, 11, "NVRTC_ERROR_INTERNAL_ERROR"},
		{APINVRTC, 64, "NVRTC_ERROR_64"},
	}
	for _, tc := range tests {
		if got := StatusName(tc.api, tc.code); got != tc.want {
			t.Errorf("StatusName(%v, %d) = %q, want %q", tc.api, tc.code, got, tc.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{
			newError(APIDriver, 2, "", "", "cuMemAlloc_v2(%d)", 1<<30),
			"cuda: cuMemAlloc_v2(1073741824): CUDA_ERROR_OUT_OF_MEMORY: out of memory",
		},
		{
			// The library's own description wins over the table's.
			newError(APIDriver, 700, "an illegal memory access was encountered", "", "cuStreamSynchronize"),
			"cuda: cuStreamSynchronize: CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered",
		},
		{
			newError(APIDriver, 4242, "", "", "cuFoo"),
			"cuda: cuFoo: CUDA_ERROR_4242",
		},
		{
			newError(APICUBLAS, 7, "an invalid numeric value was used as an argument", "", "cublasSgemm_v2(m=%d)", 3),
			"cuda: cublasSgemm_v2(m=3): CUBLAS_STATUS_INVALID_VALUE: an invalid numeric value was used as an argument",
		},
		{
			// cudnnGetErrorString returns the name itself: not repeated.
			newError(APICUDNN, 2000, "CUDNN_STATUS_BAD_PARAM", "CUDNN_BACKEND_TENSOR_DESCRIPTOR: Check and Set CUDNN_ATTR_TENSOR_DIMENSIONS", "cudnnConvolutionForward"),
			"cuda: cudnnConvolutionForward: CUDNN_STATUS_BAD_PARAM (CUDNN_BACKEND_TENSOR_DESCRIPTOR: Check and Set CUDNN_ATTR_TENSOR_DIMENSIONS)",
		},
		{
			newError(APINVRTC, 6, "NVRTC_ERROR_COMPILATION", "", "nvrtcCompileProgram(%s)", "k.cu"),
			"cuda: nvrtcCompileProgram(k.cu): NVRTC_ERROR_COMPILATION",
		},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestErrorIs(t *testing.T) {
	tests := []struct {
		api       API
		code      int
		oom, busy bool
	}{
		{APIDriver, 2, true, false},
		{APIDriver, 600, false, true},
		{APIDriver, 1, false, false},
		{APICUBLAS, 3, true, false},
		{APICUBLAS, 2, false, false},
		{APICUDNN, 4003, true, false},
		{APICUDNN, 4004, true, false},
		{APICUDNN, 2, false, false},
		{APINVRTC, 1, true, false},
		{APINVRTC, 600, false, false},
	}
	for _, tc := range tests {
		var err error = fmt.Errorf("layer conv1: %w", newError(tc.api, tc.code, "", "", "f"))
		if got := errors.Is(err, ErrOutOfMemory); got != tc.oom {
			t.Errorf("%v %d: Is(ErrOutOfMemory) = %v", tc.api, tc.code, got)
		}
		if got := errors.Is(err, ErrNotReady); got != tc.busy {
			t.Errorf("%v %d: Is(ErrNotReady) = %v", tc.api, tc.code, got)
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || e.API != tc.api {
			t.Errorf("errors.As lost the status: %+v", e)
		}
	}
	// A fault in device code poisons the context: whichever call sees it
	// first says so, and that the culprit ran earlier. Other codes, and
	// the same numbers from other libraries, do not.
	for _, tc := range []struct {
		api  API
		code int
		lost bool
	}{{APIDriver, 700, true}, {APIDriver, 719, true}, {APIDriver, 214, true}, {APIDriver, 2, false}, {APIDriver, 600, false}, {APICUDNN, 700, false}} {
		var e error = newError(tc.api, tc.code, "", "", "f")
		if tc.api == APIDriver {
			e = (*driverAPI)(nil).err(cuResult(tc.code), "cuEventSynchronize")
		}
		if got := errors.Is(e, ErrContextLost); got != tc.lost {
			t.Errorf("%v %d: Is(ErrContextLost) = %v", tc.api, tc.code, got)
		}
		if hint := strings.Contains(e.Error(), "the CUDA context is unusable"); hint != tc.lost {
			t.Errorf("%v %d: %q: the hint is there: %v", tc.api, tc.code, e, hint)
		}
	}
}

// A destroyed stream's handle is 0, the legacy default stream, which does
// not order with the non-blocking streams: every use is refused, before
// any library is called, rather than queued there.
func TestDestroyedStreamRefused(t *testing.T) {
	s := &Stream{destroyed: true}
	var nilStream *Stream
	if nilStream.live() != nil {
		t.Error("nil (the legacy stream by choice) refused")
	}
	for name, err := range map[string]error{
		"Synchronize":     s.Synchronize(),
		"WaitEvent":       s.WaitEvent(&Event{}),
		"Record":          (&Event{}).Record(s),
		"MemcpyHtoDAsync": (&Device{}).MemcpyHtoDAsync(0, []byte{1}, s),
		"MemcpyDtoHAsync": (&Device{}).MemcpyDtoHAsync([]byte{1}, 0, s),
		"MemcpyDtoDAsync": (&Device{}).MemcpyDtoDAsync(0, 0, 1, s),
		"MemsetD8Async":   (&Device{}).MemsetD8Async(0, 0, 1, s),
		"MemsetD32Async":  (&Device{}).MemsetD32Async(0, 0, 1, s),
		"Launch":          (&Function{Name: "k"}).Launch([3]uint32{1, 1, 1}, [3]uint32{1, 1, 1}, 0, s),
		"BLAS.SetStream":  (&BLAS{}).SetStream(s),
		"DNN.SetStream":   (&DNN{}).SetStream(s),
	} {
		if !errors.Is(err, errStreamDestroyed) {
			t.Errorf("%s on a destroyed stream: %v", name, err)
		}
	}
	if _, err := s.Query(); !errors.Is(err, errStreamDestroyed) {
		t.Errorf("Query: %v", err)
	}
}
