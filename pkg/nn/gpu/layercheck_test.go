package gpu

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
)

// The layer check: a full-size network's training step checked one layer
// at a time. An end-to-end comparison with another implementation cannot
// be held to 1e-3: where two inputs of a max-pooling window (or a ReLU's
// input and zero) are closer than the two implementations' rounding, the
// gradient takes a different path, and PyTorch's own float32 and float64
// steps differ by up to 1.3e-2 for that reason (tools/gpucheck/
// torch_floor.py). Here every layer's reference is computed in float64
// from the inputs the GPU's layer itself received (its input activation,
// and the gradient that arrived from above), so every decision is taken
// on the same values and a difference can only be that layer's error.

// layerErr is one layer's worst relative error (RelErr) in each output,
// and the bound for its kind.
type layerErr struct {
	name                       string
	fwd, dw, db, dx            float64
	haveW, haveDX, haveForward bool
	tol                        float64
}

// layerTolerance bounds a layer's error. Only convolutions and fc layers
// compute in TF32, so only they get the cross-check's tolerance; pooling
// and dropout move float32 values (a pooling gradient sums at most four),
// the loss is computed in double, and cuDNN's LRN uses single-precision
// powers: a 1% fault there must not pass under TF32's 1e-2.
func layerTolerance(kind alexnet.Kind, p Precision) float64 {
	switch kind {
	case alexnet.Conv, alexnet.FC:
		return Tolerance(p)
	case alexnet.LRN:
		return 1e-4
	}
	return 1e-5
}

// ok reports whether every error is within the layer's bound (false for
// NaN, which worst makes +Inf).
func (e layerErr) ok() bool { return e.worst() <= e.tol }

// worst is the largest error, +Inf if any is NaN (max would return NaN,
// which compares false with everything).
func (e layerErr) worst() float64 {
	w := 0.0
	for _, v := range []float64{e.fwd, e.dw, e.db, e.dx} {
		if math.IsNaN(v) {
			return math.Inf(1)
		}
		w = max(w, v)
	}
	return w
}

func (e layerErr) String() string {
	s := fmt.Sprintf("%-6s forward %.1e", e.name, e.fwd)
	if e.haveW {
		s += fmt.Sprintf("  dW %.1e  db %.1e", e.dw, e.db)
	}
	if e.haveDX {
		s += fmt.Sprintf("  dx %.1e", e.dx)
	}
	return s
}

// parallelFor runs fn(i) for i in [0, n) on every core.
func parallelFor(n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range min(n, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// convGeom is one convolution's shape, for the float64 references.
type convGeom struct {
	n, c, h, w, k, r, s, pad, stride, groups, p, q int
}

func geomOf(nd *node) convGeom {
	l := nd.l
	return convGeom{n: nd.in.N, c: nd.in.C, h: nd.in.H, w: nd.in.W, k: l.Out, r: l.K, s: l.K, pad: l.Pad, stride: l.Stride,
		groups: max(1, l.Groups), p: nd.out.H, q: nd.out.W}
}

// tap calls fn for every (input, weight) pair feeding output (n, k, p, q).
func (g convGeom) tap(n, k, p, q int, fn func(xi, wi int)) {
	cg, kg := g.c/g.groups, g.k/g.groups
	c0 := k / kg * cg
	for c := range cg {
		for r := range g.r {
			y := p*g.stride - g.pad + r
			if y < 0 || y >= g.h {
				continue
			}
			for s := range g.s {
				x := q*g.stride - g.pad + s
				if x < 0 || x >= g.w {
					continue
				}
				fn(((n*g.c+c0+c)*g.h+y)*g.w+x, ((k*cg+c)*g.r+r)*g.s+s)
			}
		}
	}
}

func (g convGeom) forward(x, w, b []float32) []float32 {
	y := make([]float32, g.n*g.k*g.p*g.q)
	parallelFor(g.n*g.k, func(nk int) {
		n, k := nk/g.k, nk%g.k
		for p := range g.p {
			for q := range g.q {
				sum := float64(b[k])
				g.tap(n, k, p, q, func(xi, wi int) { sum += float64(x[xi]) * float64(w[wi]) })
				y[((n*g.k+k)*g.p+p)*g.q+q] = float32(sum)
			}
		}
	})
	return y
}

func (g convGeom) backward(x, w, dy []float32, needDX bool) (dw, db, dx []float32) {
	dw, db = make([]float32, len(w)), make([]float32, g.k)
	cg := g.c / g.groups
	per := cg * g.r * g.s
	parallelFor(g.k, func(k int) {
		acc := make([]float64, per)
		var bias float64
		for n := range g.n {
			for p := range g.p {
				for q := range g.q {
					d := float64(dy[((n*g.k+k)*g.p+p)*g.q+q])
					bias += d
					g.tap(n, k, p, q, func(xi, wi int) { acc[wi-k*per] += d * float64(x[xi]) })
				}
			}
		}
		for i, v := range acc {
			dw[k*per+i] = float32(v)
		}
		db[k] = float32(bias)
	})
	if !needDX {
		return dw, db, nil
	}
	// dx gathered per (image, input channel): every input sums the
	// outputs whose window covers it, so the tasks share nothing and
	// there are n·c of them, enough for every core.
	dx = make([]float32, len(x))
	kg := g.k / g.groups
	parallelFor(g.n*g.c, func(nc int) {
		n, c := nc/g.c, nc%g.c
		k0, ci := c/cg*kg, c%cg
		for iy := range g.h {
			for ix := range g.w {
				var sum float64
				for r := range g.r {
					py := iy + g.pad - r
					if py < 0 || py%g.stride != 0 || py/g.stride >= g.p {
						continue
					}
					p := py / g.stride
					for s := range g.s {
						qx := ix + g.pad - s
						if qx < 0 || qx%g.stride != 0 || qx/g.stride >= g.q {
							continue
						}
						q := qx / g.stride
						for k := k0; k < k0+kg; k++ {
							sum += float64(dy[((n*g.k+k)*g.p+p)*g.q+q]) * float64(w[((k*cg+ci)*g.r+r)*g.s+s])
						}
					}
				}
				dx[((n*g.c+c)*g.h+iy)*g.w+ix] = float32(sum)
			}
		}
	})
	return dw, db, dx
}

// fcForward: y[n, o] = b[o] + Σ x[n, i]·w[o, i].
func fcForward(x, w, b []float32, n, in, out int) []float32 {
	y := make([]float32, n*out)
	parallelFor(out, func(o int) {
		for r := range n {
			sum := float64(b[o])
			for i, v := range x[r*in : (r+1)*in] {
				sum += float64(v) * float64(w[o*in+i])
			}
			y[r*out+o] = float32(sum)
		}
	})
	return y
}

func fcBackward(x, w, dy []float32, n, in, out int) (dw, db, dx []float32) {
	dw, db, dx = make([]float32, out*in), make([]float32, out), make([]float32, n*in)
	parallelFor(out, func(o int) {
		var bias float64
		acc := make([]float64, in)
		for r := range n {
			d := float64(dy[r*out+o])
			bias += d
			for i, v := range x[r*in : (r+1)*in] {
				acc[i] += d * float64(v)
			}
		}
		for i, v := range acc {
			dw[o*in+i] = float32(v)
		}
		db[o] = float32(bias)
	})
	parallelFor(n, func(r int) {
		acc := make([]float64, in)
		for o := range out {
			d := float64(dy[r*out+o])
			for i := range acc {
				acc[i] += d * float64(w[o*in+i])
			}
		}
		for i, v := range acc {
			dx[r*in+i] = float32(v)
		}
	})
	return dw, db, dx
}

func reluInPlace(y []float32) {
	for i, v := range y {
		if !(v > 0) {
			y[i] = 0
		}
	}
}

// tiedPoolInputs lists the inputs of every pooling window whose maximum
// is reached more than once.
func tiedPoolInputs(p *hostPool, X []float32) []int {
	var tied []int
	p.windows(func(_ int, xs []int) {
		best, count := float32(math.Inf(-1)), 0
		for _, xi := range xs {
			switch v := X[xi]; {
			case v > best:
				best, count = v, 1
			case v == best:
				count++
			}
		}
		if count > 1 {
			tied = append(tied, xs...)
		}
	})
	return tied
}

// hostRun runs a host-engine layer (hostLRN, hostPool) on host slices.
type hostRun struct{ h *hostEngine }

func (r hostRun) put(v []float32) cuda.DevicePtr {
	p := r.h.mem.alloc(4 * len(v))
	copy(r.h.mem.f32(p, len(v)), v)
	return p
}

func (r hostRun) get(p cuda.DevicePtr, n int) []float32 {
	return append([]float32(nil), r.h.mem.f32(p, n)...)
}

// layerCheck runs one training step of net on x and labels and checks
// every layer against its float64 reference, fed the GPU's own inputs.
func layerCheck(net *Net, x []float32, labels []int32) ([]layerErr, error) {
	if _, _, err := net.trainFloat(x, labels); err != nil {
		return nil, err
	}
	dl := func(p cuda.DevicePtr, n int) ([]float32, error) { return net.download(p, n) }
	// Every weight and gradient, read once.
	ps, err := net.Params()
	if err != nil {
		return nil, err
	}
	weights := map[string][]float32{}
	for _, p := range ps {
		weights[p.Name] = p.W
	}
	grads, err := net.Grads()
	if err != nil {
		return nil, err
	}
	var out []layerErr
	host := hostRun{newHostEngine(nil)}
	defer host.h.mem.free()
	for i, nd := range net.nodes {
		in, outN := int(nd.in.elems()), int(nd.out.elems())
		X, err := dl(nd.x, in)
		if err != nil {
			return nil, err
		}
		// Each layer is checked on the GPU's own input, so a broken
		// upload (zeros, a stale batch) would pass every layer: the
		// first layer's input must be the batch given, bit for bit.
		if i == 0 {
			if len(X) != len(x) {
				return nil, fmt.Errorf("%s: input has %d values, the batch %d", nd.l.Name, len(X), len(x))
			}
			for j := range x {
				if math.Float32bits(X[j]) != math.Float32bits(x[j]) {
					return nil, fmt.Errorf("%s: input value %d reads back as %g, the batch gave %g: the upload is wrong", nd.l.Name, j, X[j], x[j])
				}
			}
		}
		Y, err := dl(nd.y, outN)
		if err != nil {
			return nil, err
		}
		var DY, DX []float32
		if nd.dy != 0 {
			if DY, err = dl(nd.dy, outN); err != nil {
				return nil, err
			}
		}
		if nd.dx != 0 {
			if DX, err = dl(nd.dx, in); err != nil {
				return nil, err
			}
		}
		e := layerErr{name: nd.l.Name, haveForward: true, tol: layerTolerance(nd.l.Kind, net.opt.Precision)}
		var refY, refDX []float32
		switch nd.l.Kind {
		case alexnet.Conv, alexnet.FC:
			W, B := weights[nd.w.name], weights[nd.b.name]
			GW, GB := grads[nd.w.name], grads[nd.b.name]
			var dw, db []float32
			if nd.l.Kind == alexnet.Conv {
				g := geomOf(nd)
				refY = g.forward(X, W, B)
				if DY != nil {
					dw, db, refDX = g.backward(X, W, DY, DX != nil)
				}
			} else {
				n := nd.in.N
				refY = fcForward(X, W, B, n, in/n, nd.out.C)
				if DY != nil {
					dw, db, refDX = fcBackward(X, W, DY, n, in/n, nd.out.C)
				}
			}
			if nd.relu {
				reluInPlace(refY)
				// DY is the pre-activation gradient (the fused ReLU's
				// backward ran in place): zero wherever the unit was off.
				for j, v := range Y {
					if !(v > 0) && DY != nil && DY[j] != 0 {
						return nil, fmt.Errorf("%s: gradient %g at output %d, whose ReLU was off", nd.l.Name, DY[j], j)
					}
				}
			}
			if dw != nil {
				e.haveW, e.dw, e.db = true, RelErr(GW, dw), RelErr(GB, db)
			}
		case alexnet.LRN:
			lr := &hostLRN{h: host.h, in: nd.in, p: nd.l.LRN}
			xp, yp := host.put(X), host.put(make([]float32, outN))
			if err := lr.forward(xp, yp); err != nil {
				return nil, err
			}
			refY = host.get(yp, outN)
			if DY != nil {
				dxp := host.put(make([]float32, in))
				if err := lr.backward(host.put(Y), host.put(DY), xp, dxp); err != nil {
					return nil, err
				}
				refDX = host.get(dxp, in)
			}
		case alexnet.MaxPool:
			pl := &hostPool{h: host.h, in: nd.in, out: nd.out, k: nd.l.K, stride: nd.l.Stride, pad: nd.l.Pad}
			xp, yp := host.put(X), host.put(make([]float32, outN))
			if err := pl.forward(xp, yp); err != nil {
				return nil, err
			}
			refY = host.get(yp, outN)
			if DY != nil {
				dxp := host.put(make([]float32, in))
				if err := pl.backward(yp, host.put(DY), xp, dxp); err != nil {
					return nil, err
				}
				refDX = host.get(dxp, in)
				// A window whose maximum is tied (in alexnet, after LRN
				// of a ReLU's zeros) may route its gradient to either
				// input: cuDNN does not say which. Its inputs are left
				// out on both sides.
				for _, j := range tiedPoolInputs(pl, X) {
					refDX[j] = 0
					if DX != nil {
						DX[j] = 0
					}
				}
			}
		case alexnet.Dropout:
			refY = make([]float32, outN)
			var mask []byte
			if nd.l.P > 0 {
				mask = make([]byte, in)
				if err := net.eng.download(mask, nd.mask); err != nil {
					return nil, err
				}
			}
			scale := dropoutScale(nd.l.P, net.spec.PaperDropout)
			keep := func(j int) float32 {
				if mask == nil {
					return 1
				}
				if mask[j] == 1 {
					return scale
				}
				return 0
			}
			for j, v := range X {
				refY[j] = v * keep(j)
			}
			if DY != nil {
				refDX = make([]float32, in)
				for j, v := range DY {
					refDX[j] = v * keep(j)
				}
			}
		default:
			return nil, fmt.Errorf("%s: kind %q not checked", nd.l.Name, nd.l.Kind)
		}
		e.fwd = RelErr(Y, refY)
		if refDX != nil && DX != nil {
			// DX is the layer below's gradient after that layer's fused
			// ReLU ran in place on it: mask the reference the same way.
			if i > 0 && net.nodes[i-1].relu {
				prevY, err := dl(net.nodes[i-1].y, in)
				if err != nil {
					return nil, err
				}
				for j, v := range prevY {
					if !(v > 0) {
						refDX[j] = 0
					}
				}
			}
			e.haveDX, e.dx = true, RelErr(DX, refDX)
		}
		out = append(out, e)
	}
	// The loss: dlogits = (softmax − one-hot)/N from the GPU's logits.
	last := net.nodes[len(net.nodes)-1]
	logits, err := dl(net.logits, net.batch*net.classes)
	if err != nil {
		return nil, err
	}
	dlog, err := dl(last.dy, net.batch*net.classes)
	if err != nil {
		return nil, err
	}
	ref := make([]float32, len(dlog))
	for r := range net.batch {
		row := logits[r*net.classes : (r+1)*net.classes]
		m := math.Inf(-1)
		for _, v := range row {
			m = max(m, float64(v))
		}
		var z float64
		for _, v := range row {
			z += math.Exp(float64(v) - m)
		}
		for j, v := range row {
			p := math.Exp(float64(v)-m) / z
			if int32(j) == labels[r] {
				p--
			}
			ref[r*net.classes+j] = float32(p / float64(net.batch))
		}
	}
	out = append(out, layerErr{name: "loss", fwd: RelErr(dlog, ref), haveForward: true, tol: 1e-5})
	return out, nil
}

// TestGPULayerCheck runs the layer check on both models at batch 8, in
// both precisions, with the planner's default choices.
func TestGPULayerCheck(t *testing.T) {
	needGPU(t)
	for _, model := range []string{"alexnet-owt", "alexnet"} {
		spec, err := alexnet.Build(model, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		const batch = 8
		x := CrossCheckInput(spec, batch, 3)
		labels := CrossCheckBatch(spec, batch, 3).Labels[:batch]
		for _, p := range []Precision{FP32, TF32} {
			net, err := New(spec, batch, nil, Options{Precision: p, Seed: 3, Mean: alexnet.ImageNetMean, Std: spec.InputStd(alexnet.ImageNetStd)})
			if err != nil {
				if os.Getenv("ALEXNET_REQUIRE_GPU") != "1" {
					t.Skipf("GPU net: %v", err)
				}
				// The GPU check: a record for this network, and the
				// others still run.
				t.Errorf("%s %v: building the GPU net: %v", model, p, err)
				recordLayerCheck(t, model, p, batch, math.Inf(1), "building: "+err.Error(), Tolerance(p), false)
				continue
			}
			errs, err := layerCheck(net, x, labels)
			net.Close()
			// The layer whose error is nearest its bound (or furthest past
			// it) speaks for the network.
			ok, worst, tol, where := true, 0.0, Tolerance(p), ""
			if err != nil {
				t.Errorf("%s %v: %v", model, p, err) // the other networks still run
				ok, worst, where = false, math.Inf(1), err.Error()
			}
			ratio := -1.0
			for _, e := range errs {
				t.Logf("%s %v %v (bound %.0e)", model, p, e, e.tol)
				if r := e.worst() / e.tol; !(r <= ratio) {
					ratio, worst, tol, where = r, e.worst(), e.tol, e.name
				}
				if !e.ok() {
					ok = false
					t.Errorf("%s %v: layer %s: %.2e > %.0e", model, p, e.name, e.worst(), e.tol)
				}
			}
			t.Logf("layer check %s %v batch %d: ok %v; nearest its bound: %s, %.2e of %.0e", model, p, batch, ok, where, worst, tol)
			recordLayerCheck(t, model, p, batch, worst, where, tol, ok)
		}
	}
}

// recordLayerCheck appends a network's verdict to $ALEXNET_LAYERCHECK_JSON,
// where the GPU check's table reads it.
func recordLayerCheck(t *testing.T, model string, p Precision, batch int, worst float64, where string, tol float64, ok bool) {
	path := os.Getenv("ALEXNET_LAYERCHECK_JSON")
	if path == "" {
		return
	}
	rec, _ := json.Marshal(map[string]any{"kind": "layercheck", "model": model, "precision": p.String(), "batch": batch,
		"worst": JSONFloat(worst), "where": where, "tolerance": tol, "ok": ok})
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = f.Write(append(rec, '\n'))
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		t.Errorf("recording to %s: %v", path, err)
	}
}

// scaledPoolEngine is the host engine with one fault: the second max
// pooling layer's backward pass scales its gradient by 1.01.
type scaledPoolEngine struct {
	*hostEngine
	pools *int
}

type scaledPool struct{ *hostPool }

func (e scaledPoolEngine) pool(in, out shape4, k, stride, pad int) (poolRun, error) {
	p, err := e.hostEngine.pool(in, out, k, stride, pad)
	if err != nil {
		return nil, err
	}
	if *e.pools++; *e.pools != 2 {
		return p, nil
	}
	return scaledPool{p.(*hostPool)}, nil
}

func (p scaledPool) backward(y, dy, x, dx cuda.DevicePtr) error {
	if err := p.hostPool.backward(y, dy, x, dx); err != nil {
		return err
	}
	for i, v := range p.h.mem.f32(dx, int(p.in.elems())) {
		p.h.mem.f32(dx, int(p.in.elems()))[i] = v * 1.01
	}
	return nil
}

// TestLayerCheckOnHost: on the host engine every layer of the paper's
// layout (grouped convolutions, LRN, overlapping pooling, dropout) agrees
// with its reference, and a 1% fault in pooling's backward pass is found
// in that layer and no other.
func TestLayerCheckOnHost(t *testing.T) {
	em := needEmulator(t)
	spec := miniPaper(5)
	params, err := alexnet.InitParams(spec, "he", 6)
	if err != nil {
		t.Fatal(err)
	}
	const batch = 3
	x := CrossCheckInput(spec, batch, 2)
	labels := testSlot(spec, batch, 2).Labels[:batch]
	for _, faulty := range []bool{false, true} {
		var e engine = newHostEngine(em)
		if faulty {
			e = scaledPoolEngine{newHostEngine(em), new(int)}
		}
		net, err := newNet(e, spec, batch, params, Options{Seed: 6, Mean: testMean, Std: testStd})
		if err != nil {
			t.Fatal(err)
		}
		errs, err := layerCheck(net, x, labels)
		net.Close()
		if err != nil {
			t.Fatal(err)
		}
		var bad []string
		for _, le := range errs {
			t.Logf("faulty %v: %v", faulty, le)
			if !(le.worst() <= 1e-5) {
				bad = append(bad, le.name)
			}
		}
		want := []string(nil)
		if faulty {
			want = []string{"pool2"} // the fault, found where it is and nowhere else
		}
		if !slices.Equal(bad, want) {
			t.Errorf("faulty %v: layers %v disagree with their references, want %v", faulty, bad, want)
		}
	}
}

// zeroUploadEngine is the host engine whose uploads, once armed, write
// zeros: every layer stays consistent with its own (wrong) input.
type zeroUploadEngine struct {
	*hostEngine
	armed *bool
}

func (e zeroUploadEngine) upload(dst cuda.DevicePtr, src []byte) error {
	if *e.armed {
		src = make([]byte, len(src))
	}
	return e.hostEngine.upload(dst, src)
}

// TestLayerCheckFindsABrokenUpload: a batch that never reaches the GPU
// fails the check, though each layer agrees with its reference.
func TestLayerCheckFindsABrokenUpload(t *testing.T) {
	em := needEmulator(t)
	spec := miniPaper(5)
	params, err := alexnet.InitParams(spec, "he", 6)
	if err != nil {
		t.Fatal(err)
	}
	const batch = 2
	x := CrossCheckInput(spec, batch, 2)
	labels := testSlot(spec, batch, 2).Labels[:batch]
	armed := false
	net, err := newNet(zeroUploadEngine{newHostEngine(em), &armed}, spec, batch, params, Options{Seed: 6, Mean: testMean, Std: testStd})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	armed = true
	_, err = layerCheck(net, x, labels)
	if err == nil || !strings.Contains(err.Error(), "the upload is wrong") {
		t.Fatalf("layerCheck = %v, want the input named as wrong", err)
	}
}

func TestRelErrCountsNaNAsInfinite(t *testing.T) {
	nan := float32(math.NaN())
	for _, got := range [][]float32{{nan, 1}, {1, float32(math.Inf(1))}} {
		if e := RelErr(got, []float32{1, 1}); !math.IsInf(e, 1) {
			t.Errorf("RelErr(%v) = %g, want +Inf", got, e)
		}
	}
	if e := RelErr([]float32{1, 2}, []float32{1, 1}); e != 1 {
		t.Errorf("RelErr = %g, want 1", e)
	}
}
