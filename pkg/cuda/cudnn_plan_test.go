package cuda

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// TestAlexNetConvShapes pins the output size of every AlexNet convolution
// and pooling layer as cuDNN will compute them, for both ways of reaching
// 55×55 after conv1: the paper's 224 with padding 2 (this project's
// choice, see pkg/alexnet) and Caffe's unpadded 227.
func TestAlexNetConvShapes(t *testing.T) {
	const batch = 128
	tests := []struct {
		name       string
		s          ConvShape
		p, q       int
		filter     [4]int
		gflopsBtch float64 // forward GFLOP for the batch
	}{
		{"conv1 224 pad 2", ConvShape{N: batch, C: 3, H: 224, W: 224, K: 96, R: 11, S: 11, PadH: 2, PadW: 2, StrideH: 4, StrideW: 4}, 55, 55, [4]int{96, 3, 11, 11}, 26.98},
		{"conv1 227", ConvShape{N: batch, C: 3, H: 227, W: 227, K: 96, R: 11, S: 11, StrideH: 4, StrideW: 4}, 55, 55, [4]int{96, 3, 11, 11}, 26.98},
		{"conv2", ConvShape{N: batch, C: 96, H: 27, W: 27, K: 256, R: 5, S: 5, PadH: 2, PadW: 2, Groups: 2}, 27, 27, [4]int{256, 48, 5, 5}, 57.33},
		{"conv3", ConvShape{N: batch, C: 256, H: 13, W: 13, K: 384, R: 3, S: 3, PadH: 1, PadW: 1}, 13, 13, [4]int{384, 256, 3, 3}, 38.27},
		{"conv4", ConvShape{N: batch, C: 384, H: 13, W: 13, K: 384, R: 3, S: 3, PadH: 1, PadW: 1, Groups: 2}, 13, 13, [4]int{384, 192, 3, 3}, 28.70},
		{"conv5", ConvShape{N: batch, C: 384, H: 13, W: 13, K: 256, R: 3, S: 3, PadH: 1, PadW: 1, Groups: 2}, 13, 13, [4]int{256, 192, 3, 3}, 19.14},
		// Stride without padding leaves a remainder that floor drops.
		{"floor", ConvShape{N: 1, C: 1, H: 10, W: 9, K: 1, R: 3, S: 3, StrideH: 2, StrideW: 3}, 4, 3, [4]int{1, 1, 3, 3}, 2 * 4 * 3 * 9 / 1e9},
		{"dilated", ConvShape{N: 1, C: 2, H: 9, W: 9, K: 4, R: 3, S: 3, DilationH: 2, DilationW: 2}, 5, 5, [4]int{4, 2, 3, 3}, 2 * 4 * 25 * 18 / 1e9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, k, p, q, err := tc.s.Output()
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.s.N || k != tc.s.K || p != tc.p || q != tc.q {
				t.Errorf("output %d×%d×%d×%d, want %d×%d×%d×%d", n, k, p, q, tc.s.N, tc.s.K, tc.p, tc.q)
			}
			fk, fc, fr, fs := tc.s.Filter()
			if got := [4]int{fk, fc, fr, fs}; got != tc.filter {
				t.Errorf("filter %v, want %v", got, tc.filter)
			}
			if g := float64(tc.s.FLOPs()) / 1e9; math.Abs(g-tc.gflopsBtch) > 0.01*tc.gflopsBtch {
				t.Errorf("FLOPs %.3f G, want %.2f G", g, tc.gflopsBtch)
			}
		})
	}
}

func TestAlexNetPoolShapes(t *testing.T) {
	for _, tc := range []struct{ in, window, stride, pad, want int }{
		{55, 3, 2, 0, 27}, // pool1
		{27, 3, 2, 0, 13}, // pool2
		{13, 3, 2, 0, 6},  // pool5
		// The small net's 32×32 input: floor gives 15, 7, 3 where Caffe's
		// ceil would give 16, 8, 4 (see pkg/alexnet).
		{32, 3, 2, 0, 15}, {15, 3, 2, 0, 7}, {7, 3, 2, 0, 3},
		{4, 2, 2, 1, 3},
	} {
		if got := PoolOutput(tc.in, tc.window, tc.stride, tc.pad); got != tc.want {
			t.Errorf("PoolOutput(%d, %d, %d, %d) = %d, want %d", tc.in, tc.window, tc.stride, tc.pad, got, tc.want)
		}
	}
}

func TestConvShapeValidate(t *testing.T) {
	ok := ConvShape{N: 1, C: 4, H: 8, W: 8, K: 6, R: 3, S: 3, Groups: 2}
	tests := []struct {
		mod  func(*ConvShape)
		want string
	}{
		{func(s *ConvShape) {}, ""},
		{func(s *ConvShape) { s.N = 0 }, "input"},
		{func(s *ConvShape) { s.K = 0 }, "filter"},
		{func(s *ConvShape) { s.PadH = -1 }, "negative"},
		{func(s *ConvShape) { s.Groups = 3 }, "3 groups do not divide"},
		{func(s *ConvShape) { s.K = 5 }, "do not divide"},
		{func(s *ConvShape) { s.R = 9 }, "does not fit"},
		{func(s *ConvShape) { s.R, s.PadH = 9, 1 }, ""},
		{func(s *ConvShape) { s.StrideW = -2 }, "positive"},
	}
	for i, tc := range tests {
		s := ok
		tc.mod(&s)
		err := s.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("case %d %+v: err %v, want %q", i, s, err, tc.want)
		}
	}
	// Zero and one mean the same, so plans are shared between them.
	a := ConvShape{N: 1, C: 1, H: 5, W: 5, K: 1, R: 3, S: 3}
	b := a
	b.StrideH, b.StrideW, b.DilationH, b.DilationW, b.Groups = 1, 1, 1, 1, 1
	if a.normalized() != b.normalized() {
		t.Error("normalized shapes differ")
	}
}

// TestConvPerfLayout pins the Go mirror of cudnnConvolutionFwdAlgoPerf_t
// to the C layout: int algo, int status, float time, (pad) size_t memory,
// int determinism, int mathType, int reserved[3], (pad).
func TestConvPerfLayout(t *testing.T) {
	var p convPerf
	if s := unsafe.Sizeof(p); s != 48 {
		t.Errorf("size %d, want 48", s)
	}
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"algo", unsafe.Offsetof(p.Algo), 0},
		{"status", unsafe.Offsetof(p.Status), 4},
		{"time", unsafe.Offsetof(p.Time), 8},
		{"memory", unsafe.Offsetof(p.Memory), 16},
		{"determinism", unsafe.Offsetof(p.Determinism), 24},
		{"mathType", unsafe.Offsetof(p.MathType), 28},
		{"reserved", unsafe.Offsetof(p.Reserved), 32},
	} {
		if f.got != f.want {
			t.Errorf("%s at offset %d, want %d", f.name, f.got, f.want)
		}
	}
	raw := []convPerf{{Algo: 1, Status: 0, Time: 0.25, Memory: 1 << 20, Determinism: 1, MathType: dnnFMAMath}, {Algo: 9, Status: 3000}}
	got := toAlgoPerfs(dirForward, raw)
	if got[0].Name != "IMPLICIT_PRECOMP_GEMM" || !got[0].Deterministic || got[0].Memory != 1<<20 || got[1].Name != "ALGO(9)" {
		t.Errorf("toAlgoPerfs = %+v", got)
	}
}

func TestChooseAlgo(t *testing.T) {
	perfs := []AlgoPerf{
		{Algo: 0, Name: "IMPLICIT_GEMM", TimeMs: 3.0, Memory: 0, Deterministic: true, MathType: dnnFMAMath},
		{Algo: 1, Name: "IMPLICIT_PRECOMP_GEMM", TimeMs: 1.0, Memory: 1 << 20, Deterministic: true, MathType: dnnTensorOpMath},
		{Algo: 4, Name: "FFT", TimeMs: 0.5, Memory: 1 << 30, Deterministic: true, MathType: dnnFMAMath},
		{Algo: 6, Name: "WINOGRAD", TimeMs: 0.1, Memory: 0, Status: 3000},
		{Algo: 3, Name: "DIRECT", TimeMs: 1.0, Memory: 1 << 10, Deterministic: false, MathType: dnnDefaultMath},
		{Algo: 2, Name: "GEMM", TimeMs: 1.0, Memory: 1 << 10, Deterministic: true, MathType: dnnDefaultMath},
	}
	tests := []struct {
		name  string
		rules algoRules
		want  string
		err   string
	}{
		{"fastest that fits", algoRules{budget: 1 << 20, byTime: true}, "GEMM", ""}, // 1.0ms ties: less memory, then lower id (GEMM 2 < DIRECT 3)
		{"bigger budget", algoRules{budget: 1 << 30, byTime: true}, "FFT", ""},      // failed WINOGRAD never chosen
		{"strict fp32 takes FMA results only", algoRules{budget: 1 << 20, strictFP32: true, byTime: true}, "IMPLICIT_GEMM", ""},
		{"strict fp32 takes FFT (the gate judges accuracy)", algoRules{budget: 1 << 30, strictFP32: true, byTime: true}, "FFT", ""},
		{"no transforms in tf32 either", algoRules{budget: 1 << 30, noTransforms: true, byTime: true}, "GEMM", ""}, // FFT refused; the 1.0ms ties as above
		{"deterministic", algoRules{budget: 1 << 10, deterministic: true, byTime: true}, "GEMM", ""},
		{"no workspace", algoRules{budget: 0, byTime: true}, "IMPLICIT_GEMM", ""},
		{"heuristic keeps cuDNN's order", algoRules{budget: 1 << 20}, "IMPLICIT_GEMM", ""},
		{"all rules at once", algoRules{budget: 0, strictFP32: true, deterministic: true, byTime: true}, "IMPLICIT_GEMM", ""},
	}
	for _, tc := range tests {
		got, err := chooseAlgo(dirForward, perfs, tc.rules)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got.Name != tc.want {
			t.Errorf("%s: chose %s, want %s", tc.name, got.Name, tc.want)
		}
	}
	// With no FMA result, strict fp32 falls back to the DEFAULT-math
	// ones (run under its FMA descriptor), never to TENSOR_OP math.
	if got, err := chooseAlgo(dirForward, perfs[4:], algoRules{budget: 1 << 20, strictFP32: true, byTime: true}); err != nil || got.Name != "GEMM" {
		t.Errorf("strict fp32 with only DEFAULT-math results: chose %s, %v; want GEMM", got.Name, err)
	}
	// The fallback still obeys determinism: the faster DIRECT is not.
	defaults := []AlgoPerf{
		{Algo: 3, Name: "DIRECT", TimeMs: 0.5, Memory: 0, Deterministic: false, MathType: dnnDefaultMath},
		{Algo: 2, Name: "GEMM", TimeMs: 1.0, Memory: 0, Deterministic: true, MathType: dnnDefaultMath},
	}
	if got, err := chooseAlgo(dirForward, defaults, algoRules{budget: 1 << 20, strictFP32: true, deterministic: true, byTime: true}); err != nil || got.Name != "GEMM" {
		t.Errorf("strict fp32, deterministic, only DEFAULT-math results: chose %s, %v; want GEMM", got.Name, err)
	}
	if got, err := chooseAlgo(dirForward, perfs[1:2], algoRules{budget: 1 << 20, strictFP32: true, byTime: true}); err == nil ||
		!strings.Contains(err.Error(), "IMPLICIT_PRECOMP_GEMM: math type 1 under fp32") || !strings.Contains(err.Error(), "--precision tf32") {
		t.Errorf("strict fp32 with only a TENSOR_OP result: chose %s, %v; want an error naming the math type", got.Name, err)
	}
	// A faster DEFAULT-math result does not displace a usable FMA one.
	faster := append([]AlgoPerf{{Algo: 5, Name: "FFT_TILING", TimeMs: 0.01, Memory: 0, Deterministic: true, MathType: dnnDefaultMath}}, perfs...)
	if got, err := chooseAlgo(dirForward, faster, algoRules{budget: 1 << 20, strictFP32: true, byTime: true}); err != nil || got.Name != "IMPLICIT_GEMM" {
		t.Errorf("strict fp32 with a faster DEFAULT-math result: chose %s, %v; want IMPLICIT_GEMM", got.Name, err)
	}
	// An algorithm that would round float32 to fp16 is never taken, even
	// under TF32 and even when fastest.
	convert := append([]AlgoPerf{{Algo: 7, Name: "WINOGRAD_NONFUSED", TimeMs: 0.05, Memory: 0, Deterministic: true, MathType: dnnTensorOpConvert}}, perfs...)
	if got, err := chooseAlgo(dirForward, convert, algoRules{budget: 1 << 20, byTime: true}); err != nil || got.Name != "GEMM" {
		t.Errorf("with an fp16-converting algorithm offered: chose %s, %v; want GEMM", got.Name, err)
	}
	_, err := chooseAlgo(dirBackwardFilter, perfs[3:4], algoRules{budget: 1 << 30, byTime: true})
	if err == nil || !strings.Contains(err.Error(), "no usable backward-filter algorithm") || !strings.Contains(err.Error(), "WINOGRAD: CUDNN_STATUS_NOT_SUPPORTED") {
		t.Errorf("err = %v", err)
	}
}

func TestCheckLRN(t *testing.T) {
	for _, tc := range []struct {
		n              int
		alpha, beta, k float64
		want           string
	}{
		{5, 5e-4, 0.75, 2, ""},
		{1, 0, 0.01, 1e-5, ""},
		{16, 1, 1, 1, ""},
		{0, 5e-4, 0.75, 2, "size 0"},
		{17, 5e-4, 0.75, 2, "size 17"},
		{5, 5e-4, 0.75, 0, "k=0"},
		{5, 5e-4, 0.001, 2, "beta=0.001"},
		{5, -1, 0.75, 2, "negative"},
	} {
		err := CheckLRN(tc.n, tc.alpha, tc.beta, tc.k)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("CheckLRN(%d, %g, %g, %g) = %v, want %q", tc.n, tc.alpha, tc.beta, tc.k, err, tc.want)
		}
	}
}

// lrnRef is cuDNN's cross-channel LRN on NCHW float32, in float64:
// y_c = x_c / (k + alpha/n · Σ_{|j−c| ≤ n/2} x_j²)^beta.
func lrnRef(x []float32, n, c, hw, size int, alpha, beta, k float64) []float32 {
	y := make([]float32, len(x))
	for b := range n {
		for ch := range c {
			for p := range hw {
				var s float64
				for j := max(0, ch-size/2); j <= min(c-1, ch+size/2); j++ {
					v := float64(x[(b*c+j)*hw+p])
					s += v * v
				}
				i := (b*c+ch)*hw + p
				y[i] = float32(float64(x[i]) / math.Pow(k+alpha/float64(size)*s, beta))
			}
		}
	}
	return y
}

// TestLRNConventions: cuDNN's Alpha = n·α reproduces the paper's formula
// with α = 1e-4 exactly, and Caffe's Alpha = α does not.
func TestLRNConventions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, c, hw = 2, 9, 4
	x := make([]float32, n*c*hw)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 40)
	}
	paper := make([]float32, len(x))
	for b := range n {
		for ch := range c {
			for p := range hw {
				var s float64
				for j := max(0, ch-2); j <= min(c-1, ch+2); j++ {
					v := float64(x[(b*c+j)*hw+p])
					s += v * v
				}
				i := (b*c+ch)*hw + p
				paper[i] = float32(float64(x[i]) / math.Pow(2+1e-4*s, 0.75))
			}
		}
	}
	cudnnForm := lrnRef(x, n, c, hw, 5, 5*1e-4, 0.75, 2)
	caffeForm := lrnRef(x, n, c, hw, 5, 1e-4, 0.75, 2)
	var maxPaper, maxCaffe float64
	for i := range x {
		maxPaper = max(maxPaper, math.Abs(float64(cudnnForm[i]-paper[i])))
		maxCaffe = max(maxCaffe, math.Abs(float64(caffeForm[i]-paper[i])))
	}
	if maxPaper > 1e-5 {
		t.Errorf("cuDNN form with alpha=5e-4 differs from the paper by %g", maxPaper)
	}
	if maxCaffe < 1e-2 {
		t.Errorf("Caffe's alpha should differ visibly from the paper at these magnitudes (diff %g)", maxCaffe)
	}
}

func TestPlanWithoutBackwardDataRefusesThatPass(t *testing.T) {
	// The workspace buffer of such a plan is sized for the passes that
	// run; the pass that was never planned must refuse rather than hand
	// cuDNN algorithm -1 or a buffer it did not size.
	pl := &ConvPlan{Workspace: 9 << 20, NoBackwardData: true, BackwardData: AlgoPerf{Algo: -1, Name: "not planned"}}
	pl.wsPerPass[dirForward], pl.wsPerPass[dirBackwardFilter] = 5<<20, 9<<20
	err := pl.RunBackwardData(1, 0, 0, 0, 0, Buffer{Bytes: 1 << 30})
	if err == nil || !strings.Contains(err.Error(), "not planned") {
		t.Errorf("RunBackwardData on a plan without it: %v", err)
	}
	if got := pl.BackwardData.String(); got != "not planned" {
		t.Errorf("the skipped pass reads %q in reports", got)
	}
	ws := Buffer{Bytes: int(pl.Workspace)}
	for _, d := range []convDirection{dirForward, dirBackwardFilter} {
		if err := pl.checkWorkspace(d, ws); err != nil {
			t.Error(err)
		}
	}
	if err := pl.checkWorkspace(dirForward, Buffer{Bytes: 4 << 20}); err == nil {
		t.Error("forward accepted a workspace smaller than its pass needs")
	}
}

func TestGraphAllowed(t *testing.T) {
	base := algoRules{budget: 1 << 20}
	fp32 := algoRules{budget: 1 << 20, strictFP32: true}
	for _, tc := range []struct {
		name  string
		notes []int32
		ws    int64
		rules algoRules
		want  bool
	}{
		{"plain engine, tf32", nil, 0, base, true},
		{"tensor cores, tf32", []int32{noteTensorCore}, 0, base, true},
		{"tensor cores, fp32", []int32{noteTensorCore}, 0, fp32, false},
		{"plain engine, fp32", nil, 0, fp32, true},
		{"fp16 conversion, tf32", []int32{noteTensorCore, noteDownConvertInputs}, 0, base, false},
		{"reduced-precision reduction", []int32{noteReducedPrecision}, 0, base, false},
		{"winograd, fp32", []int32{noteWinograd4x4}, 0, fp32, true},
		{"fft, tf32", []int32{noteFFT}, 0, base, true},
		{"fft, fp32", []int32{noteFFT}, 0, fp32, true},
		{"winograd, no transforms", []int32{noteWinograd}, 0, algoRules{budget: 1 << 20, strictFP32: true, noTransforms: true}, false},
		{"fft, tf32 without transforms", []int32{noteFFT}, 0, algoRules{budget: 1 << 20, noTransforms: true}, false},
		{"nondeterministic, deterministic run", []int32{noteNondeterministic}, 0, algoRules{budget: 1 << 20, deterministic: true}, false},
		{"nondeterministic, default run", []int32{noteNondeterministic}, 0, base, true},
		{"over budget", nil, 2 << 20, base, false},
	} {
		g := &graphPass{notes: tc.notes, workspace: tc.ws}
		if got, why := graphAllowed(g, tc.rules); got != tc.want {
			t.Errorf("%s: allowed %v (%s), want %v", tc.name, got, why, tc.want)
		}
	}
}

func TestRankAlgosOrder(t *testing.T) {
	perfs := []AlgoPerf{
		{Algo: 0, Name: "IMPLICIT_GEMM", TimeMs: 3.0, Deterministic: true, MathType: dnnFMAMath},
		{Algo: 1, Name: "IMPLICIT_PRECOMP_GEMM", TimeMs: 1.0, Memory: 8, Deterministic: true, MathType: dnnFMAMath},
		{Algo: 7, Name: "WINOGRAD_NONFUSED", TimeMs: 0.5, Memory: 8, Deterministic: true, MathType: dnnFMAMath},
		{Algo: 6, Name: "WINOGRAD", TimeMs: 0.1, Status: 3000},
	}
	got, err := rankAlgos(dirForward, perfs, algoRules{budget: 1 << 10, strictFP32: true, byTime: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
	}
	// Fastest first, the failed one left out: the gate walks this order.
	if want := "WINOGRAD_NONFUSED IMPLICIT_PRECOMP_GEMM IMPLICIT_GEMM"; strings.Join(names, " ") != want {
		t.Errorf("ranked %v, want %s", names, want)
	}
	heur, _ := rankAlgos(dirForward, perfs, algoRules{budget: 1 << 10, strictFP32: true})
	if heur[0].Name != "IMPLICIT_GEMM" {
		t.Errorf("heuristic ranking starts with %s, want cuDNN's first (IMPLICIT_GEMM)", heur[0].Name)
	}
}

func TestRelErr(t *testing.T) {
	for _, tc := range []struct {
		got, want []float32
		err       float64
	}{
		{[]float32{1, 2}, []float32{1, 2}, 0},
		{[]float32{1, 2.5}, []float32{1, -2}, 4.5 / 2},
		{[]float32{0.5, 0}, []float32{0, 0}, 0.5},
		{[]float32{float32(math.NaN()), 0}, []float32{1, 1}, math.Inf(1)},
		{[]float32{1}, []float32{1, 1}, math.Inf(1)},
		{[]float32{1, 1}, []float32{float32(math.NaN()), 1}, math.Inf(1)},
	} {
		if got := RelErr(tc.got, tc.want); got != tc.err {
			t.Errorf("RelErr(%v, %v) = %g, want %g", tc.got, tc.want, got, tc.err)
		}
	}
}
