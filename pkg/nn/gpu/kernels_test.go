package gpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/alexnet-repro/alexnet/augment"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
)

// These tests run kernels.cu's kernels, through the same Go launch
// functions the Net uses, against Go references. kernelHost gives them a
// launcher and memory: the emulator here, the GPU in gpu_test.go.
type kernelHost interface {
	launcher
	alloc(t testing.TB, bytes int) cuda.DevicePtr
	put(t testing.TB, dst cuda.DevicePtr, src []byte)
	get(t testing.TB, dst []byte, src cuda.DevicePtr)
}

type emuHost struct {
	*emulator
	mem *hostMem
}

func newEmuHost(t testing.TB) *emuHost {
	h := &emuHost{emulator: needEmulator(t), mem: &hostMem{}}
	t.Cleanup(h.mem.free)
	return h
}

func (h *emuHost) alloc(t testing.TB, bytes int) cuda.DevicePtr { return h.mem.alloc(bytes) }
func (h *emuHost) put(t testing.TB, dst cuda.DevicePtr, src []byte) {
	copy(h.mem.bytes(dst, len(src)), src)
}
func (h *emuHost) get(t testing.TB, dst []byte, src cuda.DevicePtr) {
	copy(dst, h.mem.bytes(src, len(dst)))
}

func upload[T cuda.Number](t testing.TB, h kernelHost, v []T) cuda.DevicePtr {
	t.Helper()
	b := cuda.Bytes(v)
	p := h.alloc(t, max(len(b), 8))
	h.put(t, p, b)
	return p
}

func fetch[T cuda.Number](t testing.TB, h kernelHost, p cuda.DevicePtr, n int) []T {
	t.Helper()
	out := make([]T, n)
	h.get(t, cuda.Bytes(out), p)
	return out
}

func ok(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkNormalizeKnownValues: every case of augment.KnownValues, in each
// of the three channels, bit for bit.
func checkNormalizeKnownValues(t *testing.T, h kernelHost) {
	for _, kv := range augment.KnownValues {
		px := upload(t, h, []uint8{kv.V, kv.V, kv.V})
		off := upload(t, h, []float32{kv.Offset, kv.Offset, kv.Offset})
		out := h.alloc(t, 12)
		mean := [3]float32{kv.Mean, kv.Mean, kv.Mean}
		_, scale := augment.Affine(mean, [3]float32{kv.Std, kv.Std, kv.Std}, [3]float32{})
		ok(t, launchNormalize(h, px, off, out, 1, 1, mean, scale))
		for c, v := range fetch[float32](t, h, out, 3) {
			if got := math.Float32bits(v); got != kv.Out {
				t.Errorf("%s (v=%d, channel %d): got %#08x (%g), want %#08x", kv.Note, kv.V, c, got, v, kv.Out)
			}
		}
	}
}

// checkNormalizeBatch: a batch with per-image offsets, non-square,
// against augment.NormalizeBatch, bit for bit.
func checkNormalizeBatch(t *testing.T, h kernelHost, n, w, hh int) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]uint8, n*w*hh*3)
	for i := range src {
		src[i] = uint8(rng.IntN(256))
	}
	offsets := make([][3]float32, n)
	flat := make([]float32, 3*n)
	for i := range offsets {
		for c := range 3 {
			offsets[i][c] = float32(rng.NormFloat64() * 7)
			flat[3*i+c] = offsets[i][c]
		}
	}
	mean, std := [3]float32{123.675, 116.28, 103.53}, [3]float32{58.395, 57.12, 57.375}
	want := make([]float32, n*3*w*hh)
	augment.NormalizeBatch(want, src, n, w, hh, mean, std, offsets)
	_, scale := augment.Affine(mean, std, [3]float32{})
	out := h.alloc(t, 4*len(want))
	ok(t, launchNormalize(h, upload(t, h, src), upload(t, h, flat), out, n, w*hh, mean, scale))
	for i, v := range fetch[float32](t, h, out, len(want)) {
		if math.Float32bits(v) != math.Float32bits(want[i]) {
			t.Fatalf("element %d: %g, want %g", i, v, want[i])
		}
	}
}

func TestNormalizeKernel(t *testing.T) {
	h := newEmuHost(t)
	checkNormalizeKnownValues(t, h)
	checkNormalizeBatch(t, h, 3, 7, 5)
}

// cpuDropoutMask is pkg/nn/cpu's mask, drawn the way its dropoutOp does.
func cpuDropoutMask(seed, step uint64, p float64, n int) []bool {
	r := rand.New(rand.NewPCG(seed, step))
	keep := make([]bool, n)
	for i := range keep {
		keep[i] = !(r.Float64() < p)
	}
	return keep
}

// checkDropout: the mask, the forward and backward multipliers (1/(1−p),
// or 1 in the paper's form) and, in the paper's form, evaluation's ×(1−p),
// each bit for bit as the CPU's.
func checkDropout(t *testing.T, h kernelHost, total int, seed, step uint64, p float64, paper bool) {
	rng := rand.New(rand.NewPCG(seed, 99))
	x := make([]float32, total)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	xp, yp, mp := upload(t, h, x), h.alloc(t, 4*total), h.alloc(t, total)
	ok(t, launchDropout(h, xp, yp, mp, int64(total), seed, step, p, paper))
	y, mask := fetch[float32](t, h, yp, total), fetch[uint8](t, h, mp, total)
	want := cpuDropoutMask(seed, step, p, total)
	scale := float32(1 / (1 - p)) // the CPU's keep value
	if paper {
		scale = 1
	}
	kept := 0
	for i := range total {
		if (mask[i] == 1) != want[i] {
			t.Fatalf("seed %d step %d p %g: element %d kept=%v, the CPU says %v", seed, step, p, i, mask[i] == 1, want[i])
		}
		m := float32(0)
		if want[i] {
			m = scale
			kept++
		}
		if math.Float32bits(y[i]) != math.Float32bits(x[i]*m) {
			t.Fatalf("element %d: y %g, want %g", i, y[i], x[i]*m)
		}
	}
	// The backward pass applies the same mask and scale.
	dy := make([]float32, total)
	for i := range dy {
		dy[i] = float32(i%7) - 3
	}
	dxp := h.alloc(t, 4*total)
	ok(t, launchDropoutBack(h, upload(t, h, dy), dxp, mp, int64(total), p, paper))
	for i, v := range fetch[float32](t, h, dxp, total) {
		m := float32(0)
		if want[i] {
			m = scale
		}
		if math.Float32bits(v) != math.Float32bits(dy[i]*m) {
			t.Fatalf("backward element %d: %g, want %g", i, v, dy[i]*m)
		}
	}
	if paper {
		ok(t, launchScale(h, xp, yp, int64(total), float32(1-p)))
		for i, v := range fetch[float32](t, h, yp, total) {
			if want := x[i] * float32(1-p); math.Float32bits(v) != math.Float32bits(want) {
				t.Fatalf("evaluation element %d: %g, want %g", i, v, want)
			}
		}
	}
	if total > 1000 {
		if f := float64(kept) / float64(total); math.Abs(f-(1-p)) > 0.05 {
			t.Errorf("kept %.3f of units, want about %.3f", f, 1-p)
		}
	}
}

func TestDropoutKernelMatchesCPU(t *testing.T) {
	h := newEmuHost(t)
	for _, tc := range []struct {
		total int
		seed  uint64
		step  uint64
		p     float64
		paper bool
	}{
		{1, 0, 0, 0.5, false},
		{dropoutChunk, 1, 0, 0.5, false},
		{dropoutChunk + 1, 1, 1, 0.5, false},
		{5003, dropoutSeed(7, 16), 0, 0.5, false}, // jumps of up to 5000 draws
		{5003, dropoutSeed(7, 19), 123456789, 0.5, false},
		{3001, math.MaxUint64, math.MaxUint64, 0.1, false},
		{3001, 42, 3, 0.9, false},
		{777, 42, 3, 1.0 / 3, false},
		{3001, 42, 3, 0.5, true},
		{777, 42, 3, 1.0 / 3, true},
	} {
		checkDropout(t, h, tc.total, tc.seed, tc.step, tc.p, tc.paper)
	}
	if got := dropoutThreshold(0.5); got != 1<<52 {
		t.Errorf("threshold(0.5) = %d, want 2^52", got)
	}
}

// xentRef is pkg/nn/cpu's loss and gradient, restated.
func xentRef(z []float32, labels []int32, k int) (loss float64, dz []float32, hits int) {
	n := len(labels)
	dz = make([]float32, len(z))
	for i := range n {
		row := z[i*k : (i+1)*k]
		m := float64(row[0])
		for _, v := range row {
			m = max(m, float64(v))
		}
		var sum float64
		p := make([]float64, k)
		for j, v := range row {
			p[j] = math.Exp(float64(v) - m)
			sum += p[j]
		}
		loss += m + math.Log(sum) - float64(row[labels[i]])
		above := 0
		for j, v := range row {
			q := p[j] / sum
			if j == int(labels[i]) {
				q--
			}
			dz[i*k+j] = float32(q / float64(n))
			if v > row[labels[i]] {
				above++
			}
		}
		if above == 0 {
			hits++
		}
	}
	return loss / float64(n), dz, hits
}

func checkXent(t *testing.T, h kernelHost, n, k int, badLabel bool) {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(k)))
	z := make([]float32, n*k)
	for i := range z {
		z[i] = float32(rng.NormFloat64() * 3)
	}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(rng.IntN(k))
	}
	// A tie with the label's logit still counts as a hit.
	z[1] = z[int(labels[0])]
	zp, lp, dzp := upload(t, h, z), upload(t, h, labels), h.alloc(t, 4*n*k)
	rl, rh, out := h.alloc(t, 8*n), h.alloc(t, 4*n), h.alloc(t, 16)
	if badLabel {
		labels[n-1] = int32(k)
		h.put(t, lp, cuda.Bytes(labels))
	}
	ok(t, launchXent(h, zp, lp, dzp, rl, rh, out, n, k))
	res := fetch[float64](t, h, out, 2)
	if badLabel {
		if !math.IsNaN(res[0]) {
			t.Errorf("label %d of %d classes: loss %g, want NaN", k, k, res[0])
		}
		return
	}
	loss, dz, hits := xentRef(z, labels, k)
	if math.Abs(res[0]-loss) > 1e-12*math.Abs(loss) {
		t.Errorf("n=%d k=%d: loss %.15g, want %.15g", n, k, res[0], loss)
	}
	if int(res[1]) != hits {
		t.Errorf("n=%d k=%d: %v hits, want %d", n, k, res[1], hits)
	}
	for i, v := range fetch[float32](t, h, dzp, n*k) {
		if d := math.Abs(float64(v - dz[i])); d > 1e-7*math.Abs(float64(dz[i]))+1e-12 {
			t.Fatalf("n=%d k=%d: dz[%d] = %g, want %g", n, k, i, v, dz[i])
		}
	}
}

func TestXentKernel(t *testing.T) {
	h := newEmuHost(t)
	for _, tc := range []struct {
		n, k int
		bad  bool
	}{{2, 3, false}, {5, 7, false}, {3, 1000, false}, {300, 10, false}, {4, 10, true}} {
		checkXent(t, h, tc.n, tc.k, tc.bad)
	}
}

// checkSGD: the packed update against the CPU's expression, bit for bit,
// the last third of the elements spared weight decay as biases are.
func checkSGD(t *testing.T, h kernelHost, total int) {
	rng := rand.New(rand.NewPCG(5, uint64(total)))
	w, v, g := make([]float32, total), make([]float32, total), make([]float32, total)
	for i := range w {
		w[i], v[i], g[i] = float32(rng.NormFloat64()*0.01), float32(rng.NormFloat64()*0.001), float32(rng.NormFloat64()*0.1)
	}
	wp, vp, gp := upload(t, h, w), upload(t, h, v), upload(t, h, g)
	lr, momentum, wd := float32(0.01), float32(0.9), float32(0.0005)
	decayed := total * 2 / 3
	ok(t, launchSGD(h, wp, vp, gp, int64(total), int64(decayed), lr, momentum, wd))
	gw, gv := fetch[float32](t, h, wp, total), fetch[float32](t, h, vp, total)
	for i := range w {
		// pkg/nn/cpu's Net.Update, verbatim.
		wd := wd
		if i >= decayed {
			wd = 0
		}
		v[i] = momentum*v[i] - wd*lr*w[i] - lr*g[i]
		w[i] += v[i]
		if math.Float32bits(gw[i]) != math.Float32bits(w[i]) || math.Float32bits(gv[i]) != math.Float32bits(v[i]) {
			t.Fatalf("element %d: w %g v %g, want %g %g", i, gw[i], gv[i], w[i], v[i])
		}
	}
}

func TestSGDKernel(t *testing.T) {
	checkSGD(t, newEmuHost(t), 3000)
}

// checkConvBiasGrad: the conv bias gradient against a float64 sum. The
// values are multiples of 1/4 small enough that every partial sum is
// exact in float32, so any order of addition gives exactly the answer.
func checkConvBiasGrad(t *testing.T, h kernelHost, n, c, hw int) {
	t.Helper()
	dy := make([]float32, n*c*hw)
	for i := range dy {
		dy[i] = float32((i*7)%13)*0.25 - 1.5
	}
	splits, per := biasSplits(n, c)
	if splits < 1 || per < 1 || (splits-1)*per >= n || splits*per < n {
		t.Fatalf("biasSplits(%d, %d) = %d, %d: some group is empty or images are left out", n, c, splits, per)
	}
	part := h.alloc(t, 4*c*splits)
	db := h.alloc(t, 4*c)
	ok(t, launchBiasGradNCHW(h, upload(t, h, dy), part, db, n, c, hw))
	for ch, got := range fetch[float32](t, h, db, c) {
		var want float64
		for img := range n {
			for _, v := range dy[(img*c+ch)*hw : (img*c+ch+1)*hw] {
				want += float64(v)
			}
		}
		if float64(got) != want {
			t.Errorf("conv bias gradient %d×%d×%d, channel %d: %g, want %g", n, c, hw, ch, got, want)
		}
	}
}

func TestConvBiasGradKernel(t *testing.T) {
	h := newEmuHost(t)
	for _, tc := range []struct{ n, c, hw int }{
		{1, 1, 1},
		{3, 2, 7},     // planes far smaller than a block: one thread walks several images
		{5, 3, 300},   // planes a little larger than a block
		{9, 600, 4},   // more channels than biasBlocks: one group of images
		{13, 4, 169},  // 13 images in groups of 1 (the last groups' sizes differ from per only at the end)
		{7, 96, 1000}, // n smaller than the splits wanted
	} {
		checkConvBiasGrad(t, h, tc.n, tc.c, tc.hw)
	}
}

func TestElementwiseKernels(t *testing.T) {
	h := newEmuHost(t)
	const n, c, hw = 2, 3, 5
	total := n * c * hw
	y := make([]float32, total)
	for i := range y {
		y[i] = float32(i%9) - 4.5
	}
	y[7] = float32(math.NaN())
	b := []float32{0.5, -1, 2}
	for _, relu := range []bool{false, true} {
		yp := upload(t, h, y)
		ok(t, launchBiasAct(h, yp, upload(t, h, b), int64(total), c, hw, relu))
		for i, got := range fetch[float32](t, h, yp, total) {
			want := y[i] + b[(i/hw)%c]
			if relu && want < 0 {
				want = 0
			}
			if math.Float32bits(got) != math.Float32bits(want) {
				t.Errorf("bias_act relu=%v element %d: %g, want %g", relu, i, got, want)
			}
		}
	}
	yp, out := upload(t, h, y), h.alloc(t, 4*total)
	ok(t, launchReLU(h, yp, out, int64(total)))
	relu := fetch[float32](t, h, out, total)
	dy := make([]float32, total)
	for i := range dy {
		dy[i] = float32(i) + 1
	}
	dyp := upload(t, h, dy)
	ok(t, launchReLUBack(h, out, dyp, dyp, int64(total))) // in place, as the fused layers do
	for i, g := range fetch[float32](t, h, dyp, total) {
		want := float32(0)
		if relu[i] > 0 {
			want = dy[i]
		}
		if g != want {
			t.Errorf("relu_bwd element %d (y=%g): %g, want %g", i, relu[i], g, want)
		}
	}
	// fc bias gradient: column sums.
	const rows, cols = 7, 300
	d := make([]float32, rows*cols)
	for i := range d {
		d[i] = float32(i%13) * 0.25
	}
	db := h.alloc(t, 4*cols)
	ok(t, launchBiasGradRows(h, upload(t, h, d), db, rows, cols))
	for o, got := range fetch[float32](t, h, db, cols) {
		var want float32
		for r := range rows {
			want += d[r*cols+o]
		}
		if got != want {
			t.Errorf("bias_grad_rows column %d: %g, want %g", o, got, want)
		}
	}
}

func TestEmulatorRefusesWrongArgumentTypes(t *testing.T) {
	h := newEmuHost(t)
	p := h.alloc(t, 64)
	// A Go int where the kernel takes long long: the real driver would
	// read 8 bytes and carry on; the emulator's signature check must not.
	if err := h.launch("relu_fwd", gridFor(4), block1, p, p, int32(4)); err == nil {
		t.Error("int32 for long long accepted")
	}
	if err := h.launch("relu_fwd", gridFor(4), block1, p, p); err == nil {
		t.Error("missing argument accepted")
	}
}
