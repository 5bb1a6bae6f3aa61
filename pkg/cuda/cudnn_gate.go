package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// The accuracy gate. cuDNN's notes on an algorithm say what it may do
// (tensor cores, FFT, Winograd), not how well it does it: on an H200, one
// precompiled backward-filter engine with no such note computed a grouped
// 5×5 filter gradient with a relative error of 3.3e-3 in fp32, where the
// others were within 3e-6 of a float64 reference. So before a plan takes
// an algorithm it runs it once on random data and compares the result
// with a plain GEMM-based algorithm under FMA math on the same data; one
// that is off by more than gateTolerance is passed over for the next.

// gateTolerance is the largest max|got−ref| / max|ref| a plan accepts:
// 1e-4 in fp32 (sound algorithms are near 1e-6), 5e-3 under TF32 (about
// ten times TF32's rounding of each input, 2⁻¹¹; tensor-core engines
// measured 3e-4 to 8e-4).
func gateTolerance(m ConvMath) float64 {
	if m == ConvTF32 {
		return 5e-3
	}
	return 1e-4
}

// The reference algorithm of each pass: implicit GEMM forward, and the
// GEMM-based ALGO_1 backward passes, all under FMA math.
var gateReference = [3]int32{dirForward: 0, dirBackwardData: 1, dirBackwardFilter: 1}

// gateScratch holds one plan's random inputs, an output buffer, and the
// reference outputs, made on first use and freed by close.
type gateScratch struct {
	pl      *ConvPlan
	sizes   [3]int    // floats in x, w and y
	in      [3]Buffer // random x, w, y (y doubles as dy)
	out     Buffer    // every pass writes here
	ws      Buffer
	ref     [3][]float32
	refConv *convDesc // set last: the scratch is ready
	failed  error     // ensure's error, not retried
}

// nanBits is a float32 quiet NaN.
const nanBits = 0x7fc00000

func (sc *gateScratch) ensure() (err error) {
	if sc.refConv != nil {
		return nil
	}
	if sc.failed != nil {
		return sc.failed
	}
	// Built in locals and kept only whole, so a failure (out of memory
	// for conv1 at a large batch) leaks nothing and is not retried.
	defer func() { sc.failed = err }()
	pl := sc.pl
	dev := pl.dnn.dev
	s := pl.Shape
	n, k, p, q, err := s.Output()
	if err != nil {
		return err
	}
	fk, fc, fr, fs := s.Filter()
	sizes := [3]int{s.N * s.C * s.H * s.W, fk * fc * fr * fs, n * k * p * q}
	var bufs []Buffer
	defer func() {
		if err != nil {
			for _, b := range bufs {
				_ = dev.MemFree(b)
			}
		}
	}()
	r := rand.New(rand.NewPCG(uint64(s.N*s.C*s.H), uint64(s.K*s.R*s.S)))
	big := 0
	var in [3]Buffer
	for i, sz := range sizes {
		host := make([]float32, sz)
		for j := range host {
			host[j] = 2*r.Float32() - 1
		}
		if in[i], err = dev.MemAlloc(4 * sz); err != nil {
			return err
		}
		bufs = append(bufs, in[i])
		if err = dev.MemcpyHtoD(in[i].Ptr, Bytes(host)); err != nil {
			return err
		}
		big = max(big, sz)
	}
	out, err := dev.MemAlloc(4 * big)
	if err != nil {
		return err
	}
	bufs = append(bufs, out)
	// A copy from pageable memory may return before its bytes land, and
	// the handle's non-blocking stream does not wait for the legacy one.
	if err = dev.Synchronize(); err != nil {
		return err
	}
	refConv, err := pl.dnn.newConvDesc(s, dnnFMAMath)
	if err != nil {
		return err
	}
	sc.sizes, sc.in, sc.out, sc.refConv = sizes, in, out, refConv
	return nil
}

// roles returns the x, w and y pointers of pass d: the pass's output is
// the scratch output buffer, its inputs the random ones.
func (sc *gateScratch) roles(d convDirection) (x, w, y DevicePtr, out int) {
	x, w, y = sc.in[0].Ptr, sc.in[1].Ptr, sc.in[2].Ptr
	switch d {
	case dirForward:
		return x, w, sc.out.Ptr, sc.sizes[2]
	case dirBackwardData:
		return sc.out.Ptr, w, y, sc.sizes[0]
	}
	return x, sc.out.Ptr, y, sc.sizes[1]
}

// workspace returns a workspace of at least n bytes.
func (sc *gateScratch) workspace(n int64) (Buffer, error) {
	if n <= int64(sc.ws.Bytes) {
		return sc.ws, nil
	}
	dev := sc.pl.dnn.dev
	if sc.ws.Ptr != 0 {
		// Work queued on the handle's stream may still use it.
		if err := dev.Synchronize(); err != nil {
			return Buffer{}, err
		}
		if err := dev.MemFree(sc.ws); err != nil {
			return Buffer{}, err
		}
		sc.ws = Buffer{}
	}
	b, err := dev.MemAlloc(int(n))
	if err != nil {
		return Buffer{}, err
	}
	sc.ws = b
	return b, nil
}

// output runs pass d through run and returns what it wrote.
func (sc *gateScratch) output(d convDirection, need int64, run func(x, w, y DevicePtr, ws Buffer) error) ([]float32, error) {
	if err := sc.ensure(); err != nil {
		return nil, err
	}
	ws, err := sc.workspace(need)
	if err != nil {
		return nil, err
	}
	x, w, y, n := sc.roles(d)
	// NaN first, so that an algorithm that reports success but leaves part
	// of its output unwritten reads as infinitely wrong, not as whatever
	// the last run left there.
	if err := sc.pl.dnn.dev.MemsetD32Async(sc.out.Ptr, nanBits, n, sc.pl.dnn.stream); err != nil {
		return nil, err
	}
	if err := run(x, w, y, ws); err != nil {
		return nil, err
	}
	// The handle's stream does not block the legacy stream the
	// synchronous copy runs on: wait for the pass first.
	dev := sc.pl.dnn.dev
	if err := dev.Synchronize(); err != nil {
		return nil, err
	}
	got := make([]float32, n)
	if err := dev.MemcpyDtoH(Bytes(got), sc.out.Ptr); err != nil {
		return nil, err
	}
	return got, nil
}

// reference returns pass d's reference output on the scratch inputs.
func (sc *gateScratch) reference(d convDirection) ([]float32, error) {
	if sc.ref[d] != nil {
		return sc.ref[d], nil
	}
	if err := sc.ensure(); err != nil {
		return nil, err
	}
	pl := sc.pl
	algo := gateReference[d]
	need, err := pl.legacyWorkspace(d, sc.refConv, algo)
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", algoName(d, int(algo)), err)
	}
	ref, err := sc.output(d, need, func(x, w, y DevicePtr, ws Buffer) error {
		return pl.runLegacyAlgo(d, sc.refConv, algo, x, w, y, ws)
	})
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", algoName(d, int(algo)), err)
	}
	// The output was NaN-filled first: an element the reference left
	// unwritten would make every comparison NaN, which passes no check
	// and fails none.
	for i, v := range ref {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("reference %s: element %d of %d is %v", algoName(d, int(algo)), i, len(ref), v)
		}
	}
	sc.ref[d] = ref
	return ref, nil
}

// check runs a candidate for pass d and returns its relative error
// against the reference.
func (sc *gateScratch) check(d convDirection, need int64, run func(x, w, y DevicePtr, ws Buffer) error) (float64, error) {
	ref, err := sc.reference(d)
	if err != nil {
		return 0, err
	}
	got, err := sc.output(d, need, run)
	if err != nil {
		return 0, err
	}
	return RelErr(got, ref), nil
}

func (sc *gateScratch) close() {
	dev := sc.pl.dnn.dev
	_ = dev.Synchronize()
	for _, b := range append(sc.in[:], sc.out, sc.ws) {
		if b.Ptr != 0 {
			_ = dev.MemFree(b)
		}
	}
	_ = sc.refConv.close()
	*sc = gateScratch{pl: sc.pl}
}

// RelErr is max|got − want| / max|want|: the largest error relative to
// the reference's largest magnitude (max|got − want| where want is all
// zero). Unlike an element-wise relative error it does not blow up where
// the reference is near zero. A NaN or infinity on either side, or a
// length mismatch, makes it +Inf: max(x, NaN) is NaN, and NaN > tolerance is
// false, so a NaN must not slip through every check.
func RelErr(got, want []float32) float64 {
	if len(got) != len(want) {
		return math.Inf(1)
	}
	var d, m float64
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsInf(g, 0) || math.IsNaN(w) || math.IsInf(w, 0) {
			return math.Inf(1)
		}
		d = max(d, math.Abs(g-w))
		m = max(m, math.Abs(w))
	}
	if m == 0 {
		return d
	}
	return d / m
}

// gateLegacy returns the first of the ranked legacy algorithms whose
// result passes the gate, noting each one refused. If none passes, it
// takes the most accurate and says so; if the gate cannot run at all (the
// reference fails), it takes the first and says why.
func (pl *ConvPlan) gateLegacy(d convDirection, ranked []AlgoPerf, sc *gateScratch) AlgoPerf {
	tol := gateTolerance(pl.Math)
	best, bestErr := -1, math.Inf(1)
	for i := range ranked {
		ranked[i].GateErr = math.NaN()
	}
	for i, cand := range ranked {
		conv := pl.convs[d]
		if pl.Math == ConvTF32 {
			if err := conv.setMath(cand.MathType); err != nil {
				pl.note(d, "gate: %s: %v", cand.Name, err)
				continue
			}
		}
		need, err := pl.legacyWorkspace(d, conv, int32(cand.Algo))
		if err == nil {
			need = max(need, cand.Memory)
			var e float64
			e, err = sc.check(d, need, func(x, w, y DevicePtr, ws Buffer) error {
				return pl.runLegacyAlgo(d, conv, int32(cand.Algo), x, w, y, ws)
			})
			if err == nil {
				cand.GateErr = e
				if e <= tol { // false for NaN
					if i > 0 {
						pl.note(d, "gate: took %s (error %.1e)", cand.Name, e)
					}
					return cand
				}
				pl.note(d, "gate: %s refused, error %.1e > %.0e", cand.Name, e, tol)
				if e < bestErr {
					best, bestErr = i, e
				}
				continue
			}
		}
		if _, rerr := sc.reference(d); rerr != nil {
			pl.note(d, "gate not run: %v", rerr)
			return ranked[0]
		}
		pl.note(d, "gate: %s: %v", cand.Name, err)
	}
	if best < 0 {
		pl.note(d, "gate: no algorithm ran; keeping %s", ranked[0].Name)
		return ranked[0]
	}
	pl.note(d, "gate: every algorithm exceeds %.0e; keeping the most accurate, %s (%.1e)", tol, ranked[best].Name, bestErr)
	ranked[best].GateErr = bestErr
	return ranked[best]
}

func (pl *ConvPlan) note(d convDirection, format string, args ...any) {
	pl.Notes = append(pl.Notes, fmt.Sprintf("%v: ", d)+fmt.Sprintf(format, args...))
}

// notGated marks an AlgoPerf the gate did not measure.
var notGated = math.NaN()
