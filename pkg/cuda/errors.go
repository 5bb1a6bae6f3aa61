package cuda

import (
	"errors"
	"fmt"
)

// API names the library a status code came from. The same number means
// different things in each: 3 is CUDA_ERROR_NOT_INITIALIZED in the driver,
// CUBLAS_STATUS_ALLOC_FAILED in cuBLAS and NVRTC_ERROR_INVALID_INPUT in NVRTC.
type API uint8

// The libraries whose statuses Error carries.
const (
	APIDriver API = iota + 1 // CUresult, cuda.h
	APICUBLAS                // cublasStatus_t, cublas_api.h
	APICUDNN                 // cudnnStatus_t, cudnn_graph.h (cuDNN 9 numbering)
	APINVRTC                 // nvrtcResult, nvrtc.h
)

func (a API) String() string {
	switch a {
	case APIDriver:
		return "driver"
	case APICUBLAS:
		return "cuBLAS"
	case APICUDNN:
		return "cuDNN"
	case APINVRTC:
		return "NVRTC"
	}
	return fmt.Sprintf("API(%d)", uint8(a))
}

// Error is a failed call into a CUDA library. Its message names the C
// function (with the arguments that explain the failure), the status's
// symbolic name and the library's own description:
//
//	cuda: cuMemAlloc_v2(1073741824): CUDA_ERROR_OUT_OF_MEMORY: out of memory
type Error struct {
	API    API
	Call   string // C function and key arguments, "cuMemAlloc_v2(1073741824)"
	Code   int    // the raw status
	Name   string // symbolic name, "CUDA_ERROR_OUT_OF_MEMORY"
	Desc   string // the library's description; may be empty
	Detail string // extra context: cuDNN's last error message, a JIT log
}

func (e *Error) Error() string {
	s := "cuda: " + e.Call + ": " + e.Name
	if e.Desc != "" && e.Desc != e.Name {
		s += ": " + e.Desc
	}
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}

// Sentinels that errors.Is matches against an *Error from any library.
var (
	// ErrOutOfMemory: the driver, cuBLAS, cuDNN or NVRTC could not allocate.
	ErrOutOfMemory = errors.New("cuda: out of memory")
	// ErrNotReady: the queried work has not finished (CUDA_ERROR_NOT_READY).
	ErrNotReady = errors.New("cuda: not ready")
	// ErrContextLost: a fault in device code (an illegal address, a failed
	// launch, uncorrectable ECC) has made the context unusable; every later
	// call on any thread fails with it.
	ErrContextLost = errors.New("cuda: context lost to a device fault")
)

// stickyCodes are the driver statuses that poison the context. The work
// that caused one ran earlier and asynchronously, so the call that reports
// it is usually not the culprit.
var stickyCodes = map[int]bool{214: true, 700: true, 702: true, 714: true, 715: true, 716: true, 717: true, 718: true, 719: true}

// stickyHint goes with a sticky status, which otherwise points at
// whichever call happened to see it first (often the feed's copy wait).
// An uncorrectable ECC error is the memory's, not a kernel's.
func stickyHint(code int) string {
	if code == 214 {
		return "the CUDA context is unusable: the GPU's memory reported an uncorrectable error (a hardware fault; nvidia-smi -q -d ECC says more), not a fault of this program"
	}
	return "the CUDA context is unusable; the fault may come from any earlier asynchronous work, an earlier kernel most likely: rerun with CUDA_LAUNCH_BLOCKING=1, or under compute-sanitizer, to find it"
}

// Is lets errors.Is(err, ErrOutOfMemory) work whichever library ran out.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrOutOfMemory:
		switch e.API {
		case APIDriver:
			return e.Code == 2
		case APICUBLAS:
			return e.Code == 3
		case APICUDNN:
			return e.Code == 4003 || e.Code == 4004
		case APINVRTC:
			return e.Code == 1
		}
	case ErrNotReady:
		return e.API == APIDriver && e.Code == 600
	case ErrContextLost:
		return e.API == APIDriver && stickyCodes[e.Code]
	}
	return false
}

// StatusName returns the symbolic name of a status code, or a generic
// "<PREFIX>_<code>" when the code is not in the table (a newer library).
// It needs no library loaded, so errors read the same on every machine.
func StatusName(api API, code int) string {
	var name string
	var ok bool
	switch api {
	case APIDriver:
		if name, ok = driverNames[code]; !ok {
			name = fmt.Sprintf("CUDA_ERROR_%d", code)
		}
	case APICUBLAS:
		if name, ok = cublasNames[code]; !ok {
			name = fmt.Sprintf("CUBLAS_STATUS_%d", code)
		}
	case APICUDNN:
		name = cudnnStatusName(code)
	case APINVRTC:
		if name, ok = nvrtcNames[code]; !ok {
			name = fmt.Sprintf("NVRTC_ERROR_%d", code)
		}
	default:
		name = fmt.Sprintf("%v status %d", api, code)
	}
	return name
}

// cudnnStatusName resolves cuDNN 9's hierarchical codes: the thousands
// digit is the category (2xxx bad parameter, 3xxx not supported, 4xxx
// internal, 5xxx execution failed), so an unknown sub-code still gets its
// category's name.
func cudnnStatusName(code int) string {
	if n, ok := cudnnNames[code]; ok {
		return n
	}
	if n, ok := cudnnNames[code/1000*1000]; ok && code >= 2000 {
		return fmt.Sprintf("%s (sub-code %d)", n, code)
	}
	return fmt.Sprintf("CUDNN_STATUS_%d", code)
}

// newError builds an *Error with the table name and, when desc is empty,
// the table's fallback description. Call is formatted only here, on the
// failure path, so successful calls allocate nothing for errors.
func newError(api API, code int, desc, detail, format string, args ...any) *Error {
	if desc == "" && api == APIDriver {
		desc = driverDescs[code]
	}
	return &Error{
		API:    api,
		Call:   fmt.Sprintf(format, args...),
		Code:   code,
		Name:   StatusName(api, code),
		Desc:   desc,
		Detail: detail,
	}
}

// driverNames is cuda.h's CUresult (CUDA 12.x/13.x numbering).
var driverNames = map[int]string{
	0:   "CUDA_SUCCESS",
	1:   "CUDA_ERROR_INVALID_VALUE",
	2:   "CUDA_ERROR_OUT_OF_MEMORY",
	3:   "CUDA_ERROR_NOT_INITIALIZED",
	4:   "CUDA_ERROR_DEINITIALIZED",
	5:   "CUDA_ERROR_PROFILER_DISABLED",
	6:   "CUDA_ERROR_PROFILER_NOT_INITIALIZED",
	7:   "CUDA_ERROR_PROFILER_ALREADY_STARTED",
	8:   "CUDA_ERROR_PROFILER_ALREADY_STOPPED",
	34:  "CUDA_ERROR_STUB_LIBRARY",
	46:  "CUDA_ERROR_DEVICE_UNAVAILABLE",
	100: "CUDA_ERROR_NO_DEVICE",
	101: "CUDA_ERROR_INVALID_DEVICE",
	102: "CUDA_ERROR_DEVICE_NOT_LICENSED",
	200: "CUDA_ERROR_INVALID_IMAGE",
	201: "CUDA_ERROR_INVALID_CONTEXT",
	202: "CUDA_ERROR_CONTEXT_ALREADY_CURRENT",
	205: "CUDA_ERROR_MAP_FAILED",
	206: "CUDA_ERROR_UNMAP_FAILED",
	207: "CUDA_ERROR_ARRAY_IS_MAPPED",
	208: "CUDA_ERROR_ALREADY_MAPPED",
	209: "CUDA_ERROR_NO_BINARY_FOR_GPU",
	210: "CUDA_ERROR_ALREADY_ACQUIRED",
	211: "CUDA_ERROR_NOT_MAPPED",
	212: "CUDA_ERROR_NOT_MAPPED_AS_ARRAY",
	213: "CUDA_ERROR_NOT_MAPPED_AS_POINTER",
	214: "CUDA_ERROR_ECC_UNCORRECTABLE",
	215: "CUDA_ERROR_UNSUPPORTED_LIMIT",
	216: "CUDA_ERROR_CONTEXT_ALREADY_IN_USE",
	217: "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED",
	218: "CUDA_ERROR_INVALID_PTX",
	219: "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT",
	220: "CUDA_ERROR_NVLINK_UNCORRECTABLE",
	221: "CUDA_ERROR_JIT_COMPILER_NOT_FOUND",
	222: "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
	223: "CUDA_ERROR_JIT_COMPILATION_DISABLED",
	224: "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY",
	225: "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC",
	226: "CUDA_ERROR_CONTAINED",
	300: "CUDA_ERROR_INVALID_SOURCE",
	301: "CUDA_ERROR_FILE_NOT_FOUND",
	302: "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND",
	303: "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED",
	304: "CUDA_ERROR_OPERATING_SYSTEM",
	400: "CUDA_ERROR_INVALID_HANDLE",
	401: "CUDA_ERROR_ILLEGAL_STATE",
	402: "CUDA_ERROR_LOSSY_QUERY",
	500: "CUDA_ERROR_NOT_FOUND",
	600: "CUDA_ERROR_NOT_READY",
	700: "CUDA_ERROR_ILLEGAL_ADDRESS",
	701: "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
	702: "CUDA_ERROR_LAUNCH_TIMEOUT",
	703: "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING",
	704: "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED",
	705: "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED",
	708: "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE",
	709: "CUDA_ERROR_CONTEXT_IS_DESTROYED",
	710: "CUDA_ERROR_ASSERT",
	711: "CUDA_ERROR_TOO_MANY_PEERS",
	712: "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
	713: "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
	714: "CUDA_ERROR_HARDWARE_STACK_ERROR",
	715: "CUDA_ERROR_ILLEGAL_INSTRUCTION",
	716: "CUDA_ERROR_MISALIGNED_ADDRESS",
	717: "CUDA_ERROR_INVALID_ADDRESS_SPACE",
	718: "CUDA_ERROR_INVALID_PC",
	719: "CUDA_ERROR_LAUNCH_FAILED",
	720: "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE",
	721: "CUDA_ERROR_TENSOR_MEMORY_LEAK",
	800: "CUDA_ERROR_NOT_PERMITTED",
	801: "CUDA_ERROR_NOT_SUPPORTED",
	802: "CUDA_ERROR_SYSTEM_NOT_READY",
	803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
	804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
	805: "CUDA_ERROR_MPS_CONNECTION_FAILED",
	806: "CUDA_ERROR_MPS_RPC_FAILURE",
	807: "CUDA_ERROR_MPS_SERVER_NOT_READY",
	808: "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED",
	809: "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED",
	810: "CUDA_ERROR_MPS_CLIENT_TERMINATED",
	811: "CUDA_ERROR_CDP_NOT_SUPPORTED",
	812: "CUDA_ERROR_CDP_VERSION_MISMATCH",
	900: "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
	901: "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
	902: "CUDA_ERROR_STREAM_CAPTURE_MERGE",
	903: "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED",
	904: "CUDA_ERROR_STREAM_CAPTURE_UNJOINED",
	905: "CUDA_ERROR_STREAM_CAPTURE_ISOLATION",
	906: "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
	907: "CUDA_ERROR_CAPTURED_EVENT",
	908: "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD",
	909: "CUDA_ERROR_TIMEOUT",
	910: "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE",
	911: "CUDA_ERROR_EXTERNAL_DEVICE",
	912: "CUDA_ERROR_INVALID_CLUSTER_SIZE",
	913: "CUDA_ERROR_FUNCTION_NOT_LOADED",
	914: "CUDA_ERROR_INVALID_RESOURCE_TYPE",
	915: "CUDA_ERROR_INVALID_RESOURCE_CONFIGURATION",
	999: "CUDA_ERROR_UNKNOWN",
}

// driverDescs stands in for cuGetErrorString when the driver cannot be
// asked (it failed to load, or the code is being formatted on a CPU
// machine). Only the codes this project is likely to meet are described.
var driverDescs = map[int]string{
	1:   "invalid argument",
	2:   "out of memory",
	3:   "initialization error",
	34:  "CUDA driver is a stub library",
	100: "no CUDA-capable device is detected",
	101: "invalid device ordinal",
	201: "invalid device context",
	209: "no kernel image is available for execution on the device",
	218: "a PTX JIT compilation failed",
	222: "the provided PTX was compiled with an unsupported toolchain",
	400: "invalid resource handle",
	500: "named symbol not found",
	600: "device not ready",
	700: "an illegal memory access was encountered",
	701: "too many resources requested for launch",
	719: "unspecified launch failure",
	803: "system has unsupported display driver / cuda driver combination",
	999: "unknown error",
}

// cublasNames is cublas_api.h's cublasStatus_t.
var cublasNames = map[int]string{
	0:  "CUBLAS_STATUS_SUCCESS",
	1:  "CUBLAS_STATUS_NOT_INITIALIZED",
	3:  "CUBLAS_STATUS_ALLOC_FAILED",
	7:  "CUBLAS_STATUS_INVALID_VALUE",
	8:  "CUBLAS_STATUS_ARCH_MISMATCH",
	11: "CUBLAS_STATUS_MAPPING_ERROR",
	13: "CUBLAS_STATUS_EXECUTION_FAILED",
	14: "CUBLAS_STATUS_INTERNAL_ERROR",
	15: "CUBLAS_STATUS_NOT_SUPPORTED",
	16: "CUBLAS_STATUS_LICENSE_ERROR",
}

// cudnnNames is cuDNN 9's cudnnStatus_t. cuDNN 8 numbered 1..14; version 9
// renumbered into categories, and this package requires 9.
var cudnnNames = map[int]string{
	0:    "CUDNN_STATUS_SUCCESS",
	1001: "CUDNN_STATUS_NOT_INITIALIZED",
	1002: "CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH",
	1003: "CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH",
	1004: "CUDNN_STATUS_DEPRECATED",
	1005: "CUDNN_STATUS_LICENSE_ERROR",
	1006: "CUDNN_STATUS_RUNTIME_IN_PROGRESS",
	1007: "CUDNN_STATUS_RUNTIME_FP_OVERFLOW",
	1008: "CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED",
	2000: "CUDNN_STATUS_BAD_PARAM",
	2001: "CUDNN_STATUS_INVALID_VALUE",
	2002: "CUDNN_STATUS_BAD_PARAM_NULL_POINTER",
	2003: "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER",
	2004: "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED",
	2005: "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND",
	2006: "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT",
	2007: "CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH",
	2008: "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH",
	2009: "CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES",
	2010: "CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE",
	2011: "CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH",
	2012: "CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE",
	3000: "CUDNN_STATUS_NOT_SUPPORTED",
	3001: "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN",
	3002: "CUDNN_STATUS_NOT_SUPPORTED_SHAPE",
	3003: "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE",
	3004: "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT",
	3005: "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER",
	3006: "CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART",
	3007: "CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH",
	3008: "CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING",
	3009: "CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE",
	3010: "CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT",
	3011: "CUDNN_STATUS_NOT_SUPPORTED_PADDING",
	3012: "CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM",
	3013: "CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API",
	4000: "CUDNN_STATUS_INTERNAL_ERROR",
	4001: "CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED",
	4002: "CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE",
	4003: "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED",
	4004: "CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED",
	4005: "CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM",
	4006: "CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED",
	5000: "CUDNN_STATUS_EXECUTION_FAILED",
	5001: "CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER",
	5002: "CUDNN_STATUS_EXECUTION_FAILED_CUBLAS",
	5003: "CUDNN_STATUS_EXECUTION_FAILED_CUDART",
	5004: "CUDNN_STATUS_EXECUTION_FAILED_CURAND",
}

// nvrtcNames is nvrtc.h's nvrtcResult.
var nvrtcNames = map[int]string{
	0:  "NVRTC_SUCCESS",
	1:  "NVRTC_ERROR_OUT_OF_MEMORY",
	2:  "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
	3:  "NVRTC_ERROR_INVALID_INPUT",
	4:  "NVRTC_ERROR_INVALID_PROGRAM",
	5:  "NVRTC_ERROR_INVALID_OPTION",
	6:  "NVRTC_ERROR_COMPILATION",
	7:  "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE",
	8:  "NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION",
	9:  "NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION",
	10: "NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID",
	11: "NVRTC_ERROR_INTERNAL_ERROR",
	12: "NVRTC_ERROR_TIME_FILE_WRITE_FAILED",
	13: "NVRTC_ERROR_NO_PCH_CREATE_ATTEMPTED",
	14: "NVRTC_ERROR_PCH_CREATE_HEAP_EXHAUSTED",
	15: "NVRTC_ERROR_PCH_CREATE",
	16: "NVRTC_ERROR_CANCELLED",
	17: "NVRTC_ERROR_TIME_TRACE_FILE_WRITE_FAILED",
}
