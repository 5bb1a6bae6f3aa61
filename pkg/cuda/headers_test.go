package cuda

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestBindingsAgainstHeaders checks every binding table of this package
// and every enumeration value it hard-codes against NVIDIA's own headers,
// read by a C++ compiler, so nothing depends on a person copying a
// prototype correctly. It needs the headers (cuda.h, nvrtc.h,
// cublas_v2.h and cudnn.h with cuDNN 9's split headers), named by
// ALEXNET_CUDA_INCLUDE (folders, colon-separated; a CUDA toolkit's
// include folder plus cuDNN's, or a PyTorch environment's
// site-packages/nvidia/*/include), and c++. It skips otherwise.
//
// For each symbol the headers declare, the compiler reports the ABI class
// of the return value and of every parameter (32- or 64-bit integer or
// pointer, float, double), and the test compares them with the Go
// function type purego calls it through. A float passed where C wants a
// double, or an int64 read from a C int, is exactly the mistake that works
// on a fake library written by the same hand and fails on the real one.
func TestBindingsAgainstHeaders(t *testing.T) {
	inc := os.Getenv("ALEXNET_CUDA_INCLUDE")
	if inc == "" {
		t.Skip("set ALEXNET_CUDA_INCLUDE to folders holding cuda.h, nvrtc.h, cublas_v2.h and cudnn.h (9.x)")
	}
	cxx := ""
	for _, c := range []string{os.Getenv("CXX"), "c++", "g++", "clang++"} {
		if p, err := exec.LookPath(c); c != "" && err == nil {
			cxx = p
			break
		}
	}
	if cxx == "" {
		t.Skip("no C++ compiler (c++, g++, clang++ or $CXX)")
	}
	var flags []string
	for _, d := range filepath.SplitList(inc) {
		flags = append(flags, "-I"+d)
	}

	tables := []struct {
		lib  string
		syms []sym
	}{
		{"driver", driverSyms(&driverAPI{})},
		{"nvrtc", nvrtcSyms(&nvrtcAPI{})},
		{"cublas", cublasSyms(&cublasAPI{})},
		{"cudnn", cudnnSyms(&cudnnAPI{})},
	}
	dir := t.TempDir()
	preprocess := func(src string, extra ...string) ([]byte, string, error) {
		f := filepath.Join(dir, "pre.cc")
		if err := os.WriteFile(f, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(cxx, append(append(append([]string{"-E", "-std=c++17"}, extra...), flags...), f)...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		return out, stderr.String(), err
	}
	// Each header that compiles here; a library whose header is missing
	// or incomplete (cudnn.h needs the runtime's cuda_runtime_api.h) is
	// reported as not checked.
	var header string
	for _, h := range []string{"cuda.h", "nvrtc.h", "cublas_v2.h", "cudnn.h"} {
		line := "#include <" + h + ">\n"
		if _, msg, err := preprocess(line); err != nil {
			t.Logf("%s: not usable here: %s", h, firstLine(strings.TrimSpace(msg)))
			continue
		}
		header += line
	}
	pre, msg, err := preprocess(header)
	if err != nil {
		t.Fatalf("preprocessing the headers from %s: %v\n%s", inc, err, msg)
	}
	// The names as the compiler sees them after cuda.h's #define renames
	// (cuMemAlloc → cuMemAlloc_v2): those are the exported symbols.
	declared := func(name string) bool {
		return regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\s*\(`).Match(pre)
	}
	// Constants are enumerators (in the preprocessed text) or macros
	// (CU_MEMHOSTALLOC_PORTABLE, listed by -dM).
	macros, msg, err := preprocess(header, "-dM")
	if err != nil {
		t.Fatalf("listing the headers' macros: %v\n%s", err, msg)
	}
	enumerator := func(name string) bool {
		return regexp.MustCompile(`\b`+regexp.QuoteMeta(name)+`\s*=`).Match(pre) ||
			regexp.MustCompile(`(?m)^#define `+regexp.QuoteMeta(name)+`\s`).Match(macros)
	}

	var prog strings.Builder
	prog.WriteString(header + cxxDescribe)
	prog.WriteString("int main() {\n")
	prog.WriteString(`#ifdef CUDA_VERSION
  std::printf("version CUDA %d\n", CUDA_VERSION);
#endif
#ifdef CUDNN_MAJOR
  std::printf("version cuDNN %d.%d.%d\n", CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL);
#endif
#ifdef CUBLAS_VER_MAJOR
  std::printf("version cuBLAS %d.%d.%d\n", CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH);
#endif
`)
	goSig := map[string][]string{}
	libsChecked := 0
	for _, tb := range tables {
		var absent, required []string
		for _, s := range tb.syms {
			ft := reflect.TypeOf(s.fptr).Elem()
			sig, err := goABI(ft)
			if err != nil {
				t.Errorf("%s %s: %v", tb.lib, s.names[0], err)
				continue
			}
			found := false
			for _, n := range s.names {
				if declared(n) {
					goSig[n] = sig
					fmt.Fprintf(&prog, "  describe(%q, (decltype(&%s))nullptr);\n", n, n)
					found = true
				}
			}
			if !found {
				absent = append(absent, strings.Join(s.names, "|"))
				if !s.optional {
					required = append(required, strings.Join(s.names, "|"))
				}
			}
		}
		if len(absent) < len(tb.syms) {
			libsChecked++
		}
		switch {
		case len(absent) == len(tb.syms):
			t.Logf("%s: no header here, not checked", tb.lib)
		case len(required) > 0:
			// The header is there but a function the binding cannot do
			// without is not: that library version would fail to load.
			t.Errorf("%s: these headers lack required functions: %s", tb.lib, strings.Join(required, ", "))
		case len(absent) > 0:
			t.Logf("%s: optional functions not in these headers: %s", tb.lib, strings.Join(absent, ", "))
		}
	}
	if libsChecked == 0 {
		t.Skipf("none of cuda.h, nvrtc.h, cublas_v2.h, cudnn.h in %s", inc)
	}
	consts := headerConstants()
	for _, c := range consts {
		if enumerator(c.name) {
			fmt.Fprintf(&prog, "  printf(\"const %s %%lld\\n\", (long long)%s);\n", c.name, c.name)
		}
	}
	prog.WriteString("  return 0;\n}\n")
	src := filepath.Join(dir, "describe.cc")
	bin := filepath.Join(dir, "describe")
	if err := os.WriteFile(src, []byte(prog.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cxx, append(append([]string{"-std=c++17", "-w", "-o", bin}, flags...), src)...).CombinedOutput(); err != nil {
		t.Fatalf("compiling the checker: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}

	cSig, cConst := map[string][]string{}, map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[0] == "fn":
			cSig[f[1]] = f[2:]
		case len(f) >= 2 && f[0] == "version":
			t.Logf("headers: %s", strings.Join(f[1:], " "))
		case len(f) == 3 && f[0] == "const":
			v, _ := strconv.ParseInt(f[2], 10, 64)
			cConst[f[1]] = v
		}
	}
	names := make([]string, 0, len(goSig))
	for n := range goSig {
		names = append(names, n)
	}
	sort.Strings(names)
	matched := 0
	for _, n := range names {
		c, g := cSig[n], goSig[n]
		ok := len(c) == len(g)
		for i := 0; ok && i < len(c); i++ {
			ok = abiMatch(g[i], c[i])
		}
		if !ok {
			t.Errorf("%s: the header says (%s), the Go binding calls (%s) [return value first]", n, strings.Join(c, " "), strings.Join(g, " "))
			continue
		}
		matched++
	}
	t.Logf("%d of %d bound functions match their declarations (return, then parameters, by ABI class)", matched, len(names))
	checked := 0
	for _, c := range consts {
		v, ok := cConst[c.name]
		if !ok {
			t.Logf("enumerator %s not in these headers", c.name)
			continue
		}
		checked++
		if v != c.value {
			t.Errorf("%s = %d in the headers, %d here", c.name, v, c.value)
		}
	}
	t.Logf("%d of %d enumerators and status codes match", checked, len(consts))
}

// cxxDescribe prints a function's ABI: the class of its return value and
// of each parameter, as the x86-64 and AArch64 calling conventions see
// them (enums are integers of their underlying size), and for pointers
// what they point to, so that a Go *uint32 handed to a size_t* (8 bytes
// written into 4) shows up too.
const cxxDescribe = `
#include <cstdio>
#include <string>
#include <type_traits>
template <typename T> const char* cls() {
	if constexpr (std::is_void_v<T>) return "void";
	else if constexpr (std::is_pointer_v<T>) return "x64";
	else if constexpr (std::is_same_v<T, float>) return "f32";
	else if constexpr (std::is_same_v<T, double>) return "f64";
	else if constexpr (std::is_integral_v<T> || std::is_enum_v<T>)
		return sizeof(T) == 8 ? "x64" : sizeof(T) == 4 ? "i32" : sizeof(T) == 2 ? "i16" : "i8";
	else return "struct";
}
template <class T, class = void> struct complete : std::false_type {};
template <class T> struct complete<T, std::void_t<decltype(sizeof(T))>> : std::true_type {};
template <typename T> std::string desc() {
	if constexpr (std::is_pointer_v<T>) {
		using P = std::remove_cv_t<std::remove_pointer_t<T>>;
		if constexpr (std::is_void_v<P>) return "p:void";
		else if constexpr (std::is_pointer_v<P>) return "p:x64";
		else if constexpr (std::is_arithmetic_v<P> || std::is_enum_v<P>) return std::string("p:") + cls<P>();
		else if constexpr (complete<P>::value) return "p:s" + std::to_string(sizeof(P));
		else return "p:opaque";
	} else return cls<T>();
}
template <typename R, typename... A> void describe(const char* name, R (*)(A...)) {
	std::printf("fn %s %s", name, desc<R>().c_str());
	((std::printf(" %s", desc<A>().c_str())), ...);
	std::printf("\n");
}
`

// goABI describes a Go function type in cxxDescribe's terms. A Go pointer
// says what it points to; uintptr and unsafe.Pointer ("x64") stand for any
// C pointer or 64-bit integer, and a string for a char*.
func goABI(ft reflect.Type) ([]string, error) {
	var scalar func(t reflect.Type) (string, error)
	scalar = func(t reflect.Type) (string, error) {
		switch t.Kind() {
		case reflect.Int32, reflect.Uint32:
			return "i32", nil
		case reflect.Int64, reflect.Uint64, reflect.Uintptr, reflect.UnsafePointer:
			return "x64", nil
		case reflect.String:
			return "str", nil
		case reflect.Float32:
			return "f32", nil
		case reflect.Float64:
			return "f64", nil
		case reflect.Uint8, reflect.Int8, reflect.Bool:
			return "i8", nil
		case reflect.Pointer:
			e := t.Elem()
			switch e.Kind() {
			case reflect.Pointer, reflect.Uintptr, reflect.UnsafePointer:
				return "p:x64", nil
			case reflect.Struct:
				return "p:s" + strconv.Itoa(int(e.Size())), nil
			}
			c, err := scalar(e)
			if err != nil || strings.HasPrefix(c, "p:") || c == "str" {
				return "", fmt.Errorf("Go type %s has no fixed C counterpart", t)
			}
			return "p:" + c, nil
		}
		return "", fmt.Errorf("Go type %s has no fixed C counterpart", t)
	}
	var parts []string
	switch ft.NumOut() {
	case 0:
		parts = append(parts, "void")
	case 1:
		c, err := scalar(ft.Out(0))
		if err != nil {
			return nil, err
		}
		parts = append(parts, c)
	default:
		return nil, fmt.Errorf("%d results", ft.NumOut())
	}
	for i := range ft.NumIn() {
		c, err := scalar(ft.In(i))
		if err != nil {
			return nil, fmt.Errorf("parameter %d: %v", i, err)
		}
		parts = append(parts, c)
	}
	return parts, nil
}

// abiMatch reports whether a Go value of class g may stand where C has c.
func abiMatch(g, c string) bool {
	switch {
	case g == c:
		return true
	case g == "x64" && (c == "x64" || strings.HasPrefix(c, "p:")):
		return true // a handle, device pointer or raw address
	case strings.HasPrefix(g, "p:") && (c == "p:void" || c == "p:opaque"):
		return true // the library does not say what it points to
	case g == "str" && c == "p:i8":
		return true // purego passes a Go string as a NUL-terminated char*
	}
	return false
}

type headerConst struct {
	name  string
	value int64
}

// headerConstants lists every CUDA, cuBLAS, cuDNN and NVRTC enumerator
// this package hard-codes, with the value it uses, and every status code
// of its name tables.
func headerConstants() []headerConst {
	cs := []headerConst{
		{"CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK", attrMaxThreadsPerBlock},
		{"CU_DEVICE_ATTRIBUTE_WARP_SIZE", attrWarpSize},
		{"CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT", attrMultiprocessorCount},
		{"CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS", attrConcurrentKernels},
		{"CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE", attrL2CacheSize},
		{"CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT", attrAsyncEngineCount},
		{"CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR", attrComputeCapabilityMajor},
		{"CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR", attrComputeCapabilityMinor},
		{"CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", attrMaxSharedPerBlockOptin},
		{"CU_JIT_ERROR_LOG_BUFFER", jitErrorLogBuffer},
		{"CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES", jitErrorLogBufferSizeBytes},
		{"CU_MEMHOSTALLOC_PORTABLE", memHostAllocPortable},
		{"CU_STREAM_NON_BLOCKING", streamNonBlocking},
		{"CU_EVENT_DISABLE_TIMING", eventDisableTiming},
		{"CUBLAS_DEFAULT_MATH", int64(MathDefault)},
		{"CUBLAS_PEDANTIC_MATH", int64(MathPedantic)},
		{"CUBLAS_TF32_TENSOR_OP_MATH", int64(MathTF32)},
		{"CUBLAS_OP_N", int64(op(false))},
		{"CUBLAS_OP_T", int64(op(true))},
		{"CUDNN_TENSOR_NCHW", dnnTensorNCHW},
		{"CUDNN_DATA_FLOAT", dnnDataFloat},
		{"CUDNN_CROSS_CORRELATION", dnnCrossCorrelation},
		{"CUDNN_NOT_PROPAGATE_NAN", dnnNotPropagateNaN},
		{"CUDNN_LRN_CROSS_CHANNEL_DIM1", dnnLRNCrossChannel},
		{"CUDNN_DEFAULT_MATH", dnnDefaultMath},
		{"CUDNN_TENSOR_OP_MATH", dnnTensorOpMath},
		{"CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION", dnnTensorOpConvert},
		{"CUDNN_FMA_MATH", dnnFMAMath},
		{"CUDNN_POOLING_MAX", int64(PoolMax)},
		{"CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING", int64(PoolAverageInclusive)},
		{"CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING", int64(PoolAverageExclusive)},
		{"CUDNN_POOLING_MAX_DETERMINISTIC", int64(PoolMaxDeterministic)},
		{"CUDNN_SOFTMAX_FAST", int64(SoftmaxFast)},
		{"CUDNN_SOFTMAX_ACCURATE", int64(SoftmaxAccurate)},
		{"CUDNN_SOFTMAX_LOG", int64(SoftmaxLog)},
		{"CUDNN_SOFTMAX_MODE_CHANNEL", softmaxModeChannel},
		{"CUDNN_ACTIVATION_SIGMOID", int64(ActivationSigmoid)},
		{"CUDNN_ACTIVATION_RELU", int64(ActivationReLU)},
		{"CUDNN_ACTIVATION_TANH", int64(ActivationTanh)},
		{"CUDNN_DETERMINISTIC", 1},
		{"CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR", bdConvolution},
		{"CUDNN_BACKEND_ENGINE_DESCRIPTOR", bdEngine},
		{"CUDNN_BACKEND_ENGINECFG_DESCRIPTOR", bdEngineCfg},
		{"CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR", bdEngineHeur},
		{"CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR", bdExecutionPlan},
		{"CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR", bdOpConvForward},
		{"CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR", bdOpConvBwdFilter},
		{"CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR", bdOpConvBwdData},
		{"CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR", bdOperationGraph},
		{"CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR", bdVariantPack},
		{"CUDNN_BACKEND_TENSOR_DESCRIPTOR", bdTensor},
		{"CUDNN_TYPE_HANDLE", btHandle},
		{"CUDNN_TYPE_DATA_TYPE", btDataType},
		{"CUDNN_TYPE_INT64", btInt64},
		{"CUDNN_TYPE_FLOAT", btFloat},
		{"CUDNN_TYPE_VOID_PTR", btVoidPtr},
		{"CUDNN_TYPE_CONVOLUTION_MODE", btConvolutionMode},
		{"CUDNN_TYPE_HEUR_MODE", btHeurMode},
		{"CUDNN_TYPE_NUMERICAL_NOTE", btNumericalNote},
		{"CUDNN_TYPE_BACKEND_DESCRIPTOR", btBackendDescriptor},
		{"CUDNN_TYPE_BEHAVIOR_NOTE", btBehaviorNote},
		{"CUDNN_ATTR_CONVOLUTION_COMP_TYPE", baConvCompType},
		{"CUDNN_ATTR_CONVOLUTION_CONV_MODE", baConvMode},
		{"CUDNN_ATTR_CONVOLUTION_DILATIONS", baConvDilations},
		{"CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES", baConvFilterStrides},
		{"CUDNN_ATTR_CONVOLUTION_POST_PADDINGS", baConvPostPaddings},
		{"CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS", baConvPrePaddings},
		{"CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS", baConvSpatialDims},
		{"CUDNN_ATTR_ENGINEHEUR_MODE", baHeurMode},
		{"CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH", baHeurGraph},
		{"CUDNN_ATTR_ENGINEHEUR_RESULTS", baHeurResults},
		{"CUDNN_ATTR_ENGINECFG_ENGINE", baCfgEngine},
		{"CUDNN_ATTR_EXECUTION_PLAN_HANDLE", baPlanHandle},
		{"CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG", baPlanEngineCfg},
		{"CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE", baPlanWorkspace},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA", baFwdAlpha},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA", baFwdBeta},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC", baFwdConv},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W", baFwdW},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X", baFwdX},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y", baFwdY},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA", baBwdDataAlpha},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA", baBwdDataBeta},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC", baBwdDataConv},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W", baBwdDataW},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX", baBwdDataDX},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY", baBwdDataDY},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA", baBwdFilterAlpha},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA", baBwdFilterBeta},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC", baBwdFilterConv},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW", baBwdFilterDW},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X", baBwdFilterX},
		{"CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY", baBwdFilterDY},
		{"CUDNN_ATTR_OPERATIONGRAPH_HANDLE", baGraphHandle},
		{"CUDNN_ATTR_OPERATIONGRAPH_OPS", baGraphOps},
		{"CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT", baTensorAlignment},
		{"CUDNN_ATTR_TENSOR_DATA_TYPE", baTensorDataType},
		{"CUDNN_ATTR_TENSOR_DIMENSIONS", baTensorDims},
		{"CUDNN_ATTR_TENSOR_STRIDES", baTensorStrides},
		{"CUDNN_ATTR_TENSOR_UNIQUE_ID", baTensorUID},
		{"CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS", baPackUIDs},
		{"CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS", baPackPointers},
		{"CUDNN_ATTR_VARIANT_PACK_WORKSPACE", baPackWorkspace},
		{"CUDNN_ATTR_ENGINE_GLOBAL_INDEX", baEngineGlobalIndex},
		{"CUDNN_ATTR_ENGINE_NUMERICAL_NOTE", baEngineNumericalNote},
		{"CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE", baEngineBehaviorNote},
		{"CUDNN_HEUR_MODE_INSTANT", heurModeInstant},
		{"CUDNN_HEUR_MODE_FALLBACK", heurModeFallback},
		{"CUDNN_HEUR_MODE_A", heurModeA},
		{"CUDNN_NUMERICAL_NOTE_TENSOR_CORE", noteTensorCore},
		{"CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS", noteDownConvertInputs},
		{"CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION", noteReducedPrecision},
		{"CUDNN_NUMERICAL_NOTE_FFT", noteFFT},
		{"CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC", noteNondeterministic},
		{"CUDNN_NUMERICAL_NOTE_WINOGRAD", noteWinograd},
		{"CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4", noteWinograd4x4},
		{"CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6", noteWinograd6x6},
		{"CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13", noteWinograd13x13},
		{"CUDNN_NUMERICAL_NOTE_STRICT_NAN_PROP", noteStrictNaNProp},
		{"CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION", behaviorRuntimeCompilation},
	}
	prefixes := [...]string{
		dirForward:        "CUDNN_CONVOLUTION_FWD_ALGO_",
		dirBackwardData:   "CUDNN_CONVOLUTION_BWD_DATA_ALGO_",
		dirBackwardFilter: "CUDNN_CONVOLUTION_BWD_FILTER_ALGO_",
	}
	for d, names := range algoNames {
		for i, n := range names {
			// The backward passes' numbered algorithms are
			// CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, not ..._ALGO_ALGO_0.
			cs = append(cs, headerConst{prefixes[d] + strings.TrimPrefix(n, "ALGO_"), int64(i)})
		}
	}
	for _, table := range []map[int]string{driverNames, cublasNames, cudnnNames, nvrtcNames} {
		for code, name := range table {
			cs = append(cs, headerConst{name, int64(code)})
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	return cs
}
