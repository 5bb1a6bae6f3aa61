package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
)

func randn(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

// closeTo fails unless got and want agree to within tol·(1 + |want|).
func closeTo(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range want {
		if d := math.Abs(float64(got[i])-want[i]) / (1 + math.Abs(want[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > tol || math.IsNaN(worst) {
		t.Fatalf("%s[%d] = %g, reference %g (scaled error %.3g > %.3g)", what, at, got[at], want[at], worst, tol)
	}
}

func TestConvMatchesReference(t *testing.T) {
	cases := []struct {
		name   string
		g      convGeom
		n      int
		chunk  int // 0: the layer's own choice
		needDx bool
	}{
		{"3x3 pad1", convGeom{C: 3, H: 11, W: 11, O: 4, K: 3, S: 1, P: 1, Groups: 1}, 2, 0, true},
		{"5x5 pad2 groups2", convGeom{C: 4, H: 13, W: 13, O: 6, K: 5, S: 1, P: 2, Groups: 2}, 3, 0, true},
		{"11x11 stride4 pad2 (conv1)", convGeom{C: 3, H: 27, W: 27, O: 4, K: 11, S: 4, P: 2, Groups: 1}, 2, 0, false},
		{"non-square stride2", convGeom{C: 2, H: 7, W: 9, O: 3, K: 3, S: 2, P: 0, Groups: 1}, 2, 0, true},
		{"stride 1 no padding", convGeom{C: 2, H: 7, W: 9, O: 3, K: 3, S: 1, P: 0, Groups: 1}, 2, 0, true},
		{"stride 1 under-padded", convGeom{C: 2, H: 8, W: 6, O: 3, K: 5, S: 1, P: 1, Groups: 1}, 2, 0, true},
		{"1x1", convGeom{C: 5, H: 4, W: 4, O: 3, K: 1, S: 1, P: 0, Groups: 1}, 2, 0, true},
		{"kernel wider than input", convGeom{C: 2, H: 3, W: 4, O: 2, K: 5, S: 1, P: 2, Groups: 1}, 2, 0, true},
		// small-fc's conv3 at crops 7-10: taps that read only padding.
		{"1x1 map, 5x5 pad2", convGeom{C: 3, H: 1, W: 1, O: 2, K: 5, S: 1, P: 2, Groups: 1}, 2, 0, true},
		{"2x1 map, 5x5 pad2", convGeom{C: 2, H: 2, W: 1, O: 2, K: 5, S: 1, P: 2, Groups: 1}, 2, 0, true},
		{"1x2 map, 5x5 pad2", convGeom{C: 2, H: 1, W: 2, O: 2, K: 5, S: 1, P: 2, Groups: 1}, 2, 0, true},
		{"1x1 map, 3x3 stride2 pad1", convGeom{C: 2, H: 1, W: 1, O: 2, K: 3, S: 2, P: 1, Groups: 1}, 2, 0, true},
		{"2x2 map, 6x6 pad2 (not same)", convGeom{C: 2, H: 2, W: 2, O: 2, K: 6, S: 1, P: 2, Groups: 1}, 2, 0, true},
		{"chunks of 1", convGeom{C: 4, H: 6, W: 6, O: 4, K: 3, S: 1, P: 1, Groups: 2}, 3, 1, true},
		{"partial last chunk", convGeom{C: 4, H: 6, W: 6, O: 4, K: 3, S: 1, P: 1, Groups: 4}, 5, 2, true},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			g.OH, g.OW = (g.H+2*g.P-g.K)/g.S+1, (g.W+2*g.P-g.K)/g.S+1
			l := newConvLayer(g, tc.n, tc.needDx, newWorkspace())
			if tc.chunk > 0 {
				l.setChunk(tc.chunk)
			}
			x := randn(r, tc.n*g.inSize(), 1)
			w := randn(r, g.O*g.C/g.Groups*g.K*g.K, 0.5)
			b := randn(r, g.O, 1)
			dy := randn(r, tc.n*g.outSize(), 1)
			// Stale values in the outputs must not leak into results.
			for _, s := range [][]float32{l.y.data, l.dx.data, l.dw.data, l.db.data} {
				for i := range s {
					s[i] = 99
				}
			}
			l.forward(x, w, b)
			closeTo(t, "y", l.y.data, refConv(to64(x), tc.n, g, to64(w), to64(b)), 1e-5)
			l.backward(x, w, dy)
			dx, dw, db := refConvBack(to64(x), tc.n, g, to64(w), to64(dy))
			closeTo(t, "dw", l.dw.data, dw, 1e-5)
			closeTo(t, "db", l.db.data, db, 1e-5)
			if tc.needDx {
				closeTo(t, "dx", l.dx.data, dx, 1e-5)
			}
		})
	}
}

func TestFCMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n, in, out := 3, 20, 7
	l := newFCLayer(n, in, out, []int{n, 5, 2, 2}, true)
	x, w, b, dy := randn(r, n*in, 1), randn(r, out*in, 1), randn(r, out, 1), randn(r, n*out, 1)
	l.forward(x, w, b)
	closeTo(t, "y", l.y.data, refFC(to64(x), n, in, out, to64(w), to64(b)), 1e-5)
	l.backward(x, w, dy)
	dx, dw, db := make([]float64, n*in), make([]float64, out*in), make([]float64, out)
	for s := 0; s < n; s++ {
		for o := 0; o < out; o++ {
			d := float64(dy[s*out+o])
			db[o] += d
			for i := 0; i < in; i++ {
				dw[o*in+i] += d * float64(x[s*in+i])
				dx[s*in+i] += d * float64(w[o*in+i])
			}
		}
	}
	closeTo(t, "dx", l.dx.data, dx, 1e-5)
	closeTo(t, "dw", l.dw.data, dw, 1e-5)
	closeTo(t, "db", l.db.data, db, 1e-5)
}

var lrnCases = []struct {
	name string
	p    alexnet.LRNParams
	c    int
	xStd float64 // activations large enough that the normalisation bites
}{
	{"paper", alexnet.LRNParams{Size: 5, Alpha: 5e-4, Beta: 0.75, K: 2}, 7, 30},
	{"small net", alexnet.LRNParams{Size: 3, Alpha: 5e-5, Beta: 0.75, K: 1}, 4, 100},
	{"strong, generic beta", alexnet.LRNParams{Size: 3, Alpha: 0.9, Beta: 0.6, K: 1}, 5, 1},
	{"window wider than channels", alexnet.LRNParams{Size: 9, Alpha: 0.5, Beta: 0.75, K: 1.5}, 3, 1},
}

func TestLRNMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, tc := range lrnCases {
		t.Run(tc.name, func(t *testing.T) {
			n, h, w := 2, 25, 23 // 575 positions: crosses a block boundary
			l := newLRNLayer(n, tc.c, h, w, tc.p.Size, tc.p.Alpha, tc.p.Beta, tc.p.K)
			x := randn(r, n*tc.c*h*w, tc.xStd)
			l.forward(x)
			want := refLRN(to64(x), n, tc.c, h*w, tc.p)
			closeTo(t, "y", l.y.data, want, 1e-5)
			// The reference must differ from the identity, or the test
			// checks nothing about the normalisation.
			var moved float64
			for i, v := range want {
				moved = max(moved, math.Abs(v-float64(x[i]))/(1+math.Abs(v)))
			}
			if moved < 1e-3 {
				t.Fatalf("normalisation changes values by only %g; pick larger activations", moved)
			}
		})
	}
}

// TestLRNGradient checks the hand-written backward against central finite
// differences of the float64 reference, for L = Σ r·LRN(x).
func TestLRNGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, tc := range lrnCases {
		t.Run(tc.name, func(t *testing.T) {
			n, h, w := 2, 3, 4
			l := newLRNLayer(n, tc.c, h, w, tc.p.Size, tc.p.Alpha, tc.p.Beta, tc.p.K)
			x := randn(r, n*tc.c*h*w, tc.xStd)
			dy := randn(r, len(x), 1)
			l.forward(x)
			l.backward(x, dy)
			x64 := to64(x)
			loss := func(v []float64) float64 {
				var s float64
				for i, y := range refLRN(v, n, tc.c, h*w, tc.p) {
					s += float64(dy[i]) * y
				}
				return s
			}
			fd := make([]float64, len(x))
			for i := range x64 {
				e := 1e-6 * max(1, math.Abs(x64[i]))
				orig := x64[i]
				x64[i] = orig + e
				up := loss(x64)
				x64[i] = orig - e
				down := loss(x64)
				x64[i] = orig
				fd[i] = (up - down) / (2 * e)
			}
			closeTo(t, "dx", l.dx.data, fd, 1e-4)
		})
	}
}

func TestPoolMatchesReference(t *testing.T) {
	cases := []struct{ h, w, k, s, p int }{
		{55, 55, 3, 2, 0}, // AlexNet pool1
		{13, 13, 3, 2, 0},
		{32, 32, 3, 2, 0}, // small: 15, floor
		{7, 8, 2, 2, 0},
		{6, 6, 3, 2, 1}, // padding never wins
	}
	r := rand.New(rand.NewPCG(9, 10))
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dx%d k%d s%d p%d", tc.h, tc.w, tc.k, tc.s, tc.p), func(t *testing.T) {
			n, c := 2, 3
			l := newPoolLayer(n, c, tc.h, tc.w, tc.k, tc.s, tc.p)
			x := randn(r, n*c*tc.h*tc.w, 1)
			for i := range x {
				x[i] -= 10 // all negative: a zero from padding would win
			}
			l.forward(x)
			closeTo(t, "y", l.y.data, refPool(to64(x), n, c, tc.h, tc.w, tc.k, tc.s, tc.p), 0)
			dy := randn(r, len(l.y.data), 1)
			l.backward(dy)
			// Reference backward: each output's gradient goes to the
			// position holding its maximum.
			want := make([]float64, len(x))
			for pl := 0; pl < n*c; pl++ {
				for oy := 0; oy < l.oh; oy++ {
					for ox := 0; ox < l.ow; ox++ {
						best, bi := math.Inf(-1), -1
						for iy := max(0, oy*tc.s-tc.p); iy < min(tc.h, oy*tc.s-tc.p+tc.k); iy++ {
							for ix := max(0, ox*tc.s-tc.p); ix < min(tc.w, ox*tc.s-tc.p+tc.k); ix++ {
								if v := float64(x[(pl*tc.h+iy)*tc.w+ix]); v > best {
									best, bi = v, (pl*tc.h+iy)*tc.w+ix
								}
							}
						}
						want[bi] += float64(dy[(pl*l.oh+oy)*l.ow+ox])
					}
				}
			}
			closeTo(t, "dx", l.dx.data, want, 1e-6)
		})
	}
}

// TestPoolTies: with many equal values (and both zeros, which compare
// equal), each output is the first maximum of its window in scan order,
// bit for bit, and its gradient goes there; the order of negative values,
// infinities and subnormals is the floats' order.
func TestPoolTies(t *testing.T) {
	vals := []float32{-2, -1, float32(math.Copysign(0, -1)), 0, 1, 2, float32(math.Inf(-1)), float32(math.Inf(1)),
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, -math.MaxFloat32, math.MaxFloat32}
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ h, w, k, s, p int }{{32, 32, 3, 2, 0}, {13, 13, 3, 2, 0}, {7, 8, 2, 2, 0}, {9, 9, 3, 1, 0}, {9, 9, 3, 2, 1}} {
		for _, spread := range []int{2, 4, len(vals)} { // few distinct values: many ties
			n, c := 2, 3
			l := newPoolLayer(n, c, tc.h, tc.w, tc.k, tc.s, tc.p)
			x := make([]float32, n*c*tc.h*tc.w)
			for i := range x {
				x[i] = vals[r.IntN(spread)]
			}
			l.forward(x)
			for pl := 0; pl < n*c; pl++ {
				for oy := 0; oy < l.oh; oy++ {
					for ox := 0; ox < l.ow; ox++ {
						bi := -1
						for iy := max(0, oy*tc.s-tc.p); iy < min(tc.h, oy*tc.s-tc.p+tc.k); iy++ {
							for ix := max(0, ox*tc.s-tc.p); ix < min(tc.w, ox*tc.s-tc.p+tc.k); ix++ {
								if i := (pl*tc.h+iy)*tc.w + ix; bi < 0 || x[i] > x[bi] {
									bi = i
								}
							}
						}
						o := (pl*l.oh+oy)*l.ow + ox
						if got := pl*tc.h*tc.w + int(l.argmax[o]); got != bi || math.Float32bits(l.y.data[o]) != math.Float32bits(x[bi]) {
							t.Fatalf("%+v spread %d: output %d is x[%d] = %g, want x[%d] = %g", tc, spread, o, got, l.y.data[o], bi, x[bi])
						}
					}
				}
			}
		}
	}
}

// TestPoolNaN: padded and unpadded pooling order NaNs alike, by sign: a
// window holding a NaN with the sign bit clear outputs it, one with the
// sign bit set (what x86 makes of 0/0) never wins over a number.
func TestPoolNaN(t *testing.T) {
	posNaN := math.Float32frombits(0x7fc00000)
	negNaN := math.Float32frombits(0xffc00000)
	for _, p := range []int{0, 1} {
		const h, w = 7, 7
		l := newPoolLayer(1, 1, h, w, 3, 2, p)
		x := make([]float32, h*w)
		for i := range x {
			x[i] = float32(i)
		}
		x[0], x[h*w-1] = posNaN, negNaN // top-left and bottom-right corners
		l.forward(x)
		for oy := 0; oy < l.oh; oy++ {
			for ox := 0; ox < l.ow; ox++ {
				y := l.y.data[oy*l.ow+ox]
				first := oy == 0 && ox == 0 // the only window holding x[0]
				if nan := y != y; nan != first || (nan && math.Float32bits(y) != 0x7fc00000) {
					t.Errorf("pad %d: output (%d,%d) = %v (bits %#x)", p, oy, ox, y, math.Float32bits(y))
				}
			}
		}
	}
}

// Both forms: inverted (kept units ×1/(1−p) in training, evaluation the
// identity) and the paper's (kept units ×1, evaluation ×(1−p)). Either
// way the expected output in training is what evaluation gives.
func TestDropoutScaling(t *testing.T) {
	for _, tc := range []struct {
		p     float64
		paper bool
	}{{0.2, false}, {0.5, false}, {0.8, false}, {0.5, true}, {0.8, true}} {
		p := tc.p
		t.Run(fmt.Sprint(p, tc.paper), func(t *testing.T) {
			const n = 200_000
			var step uint64 = 3
			training := true
			o := newDropout("d", p, tc.paper, 42, &step, &training, []int{n})
			x := make([]float32, n)
			for i := range x {
				x[i] = 1
			}
			xt := newBuf(n)
			copy(xt.data, x)
			if _, err := o.Do(xt.t); err != nil {
				t.Fatal(err)
			}
			var sum float64
			zeros := 0
			keep, mean := float32(1/(1-p)), 1.0
			if tc.paper {
				keep, mean = 1, 1-p
			}
			for _, v := range o.y.data {
				sum += float64(v)
				switch v {
				case 0:
					zeros++
				case keep:
				default:
					t.Fatalf("output %g is neither 0 nor the kept units' %g", v, keep)
				}
			}
			// Mean is 1 (1−p in the paper's form) with standard deviation
			// keep·sqrt(p(1−p)/n).
			if sd := float64(keep) * math.Sqrt(p*(1-p)/n); math.Abs(sum/n-mean) > 5*sd {
				t.Errorf("mean %g, want %g ± %g", sum/n, mean, 5*sd)
			}
			if frac := float64(zeros) / n; math.Abs(frac-p) > 5*math.Sqrt(p*(1-p)/n) {
				t.Errorf("zeroed %g of units, want %g", frac, p)
			}
			// Backward multiplies by the same mask.
			dy := newBuf(n)
			for i := range dy.data {
				dy.data[i] = float32(i % 7)
			}
			back := &dropoutBackOp{opBase: newBase("db"), f: o}
			if _, err := back.Do(o.y.t, dy.t); err != nil {
				t.Fatal(err)
			}
			for i := range dy.data {
				if want := dy.data[i] * o.y.data[i]; o.dx.data[i] != want {
					t.Fatalf("dx[%d] = %g, want %g", i, o.dx.data[i], want)
				}
			}
			// Same step, same mask; next step, another; evaluation passes through.
			first := append([]float32(nil), o.y.data...)
			o.Do(xt.t)
			if !equal32(first, o.y.data) {
				t.Error("the same step drew a different mask")
			}
			step++
			o.Do(xt.t)
			if equal32(first, o.y.data) {
				t.Error("the next step drew the same mask")
			}
			training = false
			o.Do(xt.t)
			want := x
			if tc.paper {
				want = make([]float32, n)
				for i := range want {
					want[i] = x[i] * float32(1-p)
				}
			}
			if !equal32(want, o.y.data) {
				t.Errorf("evaluation gives %g…, want %g…", o.y.data[:3], want[:3])
			}
		})
	}
}

func equal32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestLossMatchesReference(t *testing.T) {
	cases := []struct {
		name  string
		scale float64
	}{
		{"ordinary", 2},
		{"huge logits stay finite", 1e4},
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, k := 5, 9
			o := newLoss("loss", n, k)
			z := newBuf(n, k)
			copy(z.data, randn(r, n*k, tc.scale))
			o.labels = []int32{0, 8, 3, 3, 1}
			if _, err := o.Do(z.t); err != nil {
				t.Fatal(err)
			}
			z64 := to64(z.data)
			want := refLoss(z64, o.labels, k)
			if math.IsInf(want, 0) {
				// exp overflows in the naive reference: shift rows first.
				for s := 0; s < n; s++ {
					m := math.Inf(-1)
					for _, v := range z64[s*k : (s+1)*k] {
						m = max(m, v)
					}
					for j := s * k; j < (s+1)*k; j++ {
						z64[j] -= m
					}
				}
				want = refLoss(z64, o.labels, k)
			}
			if math.Abs(o.loss-want) > 1e-9*(1+math.Abs(want)) {
				t.Fatalf("loss %g, reference %g", o.loss, want)
			}
			back := &lossBackOp{opBase: newBase("lb"), f: o}
			one := 1.0
			if _, err := back.Do(nil, f32(one)); err != nil {
				t.Fatal(err)
			}
			for s := 0; s < n; s++ {
				var rowSum float64
				for j := 0; j < k; j++ {
					rowSum += float64(o.dx.data[s*k+j])
				}
				if math.Abs(rowSum) > 1e-6 {
					t.Fatalf("row %d of dlogits sums to %g, want 0", s, rowSum)
				}
				if d := o.dx.data[s*k+int(o.labels[s])]; d > 0 {
					t.Fatalf("row %d: gradient at the label %g > 0", s, d)
				}
			}
		})
	}
	o := newLoss("loss", 1, 3)
	o.labels = []int32{3}
	if _, err := o.Do(newBuf(1, 3).t); err == nil {
		t.Error("label 3 of 3 classes accepted")
	}
}

func f32(v float64) *G.F32 { return G.NewF32(float32(v)) }

// A panic in a worker of parallel or forEach reaches the op's Do as an
// error naming the op, the panic and the worker's stack, rather than
// ending the process from a goroutine no one can recover.
func TestOpPanicBecomesError(t *testing.T) {
	boom := func(i int) {
		if i == 5 {
			var s []int
			_ = s[i] // an index out of range, as a shape bug gives
		}
	}
	for _, tc := range []struct {
		name string
		run  func()
	}{
		{"parallel", func() {
			parallel(64, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					boom(i)
				}
			})
		}},
		{"forEach", func() { forEach(2, 64, func(_, task int) { boom(task) }) }},
		{"forEach, one worker", func() { forEach(1, 64, func(_, task int) { boom(task) }) }},
		{"in the op's goroutine", func() { boom(5) }},
	} {
		do := func() (err error) {
			defer recoverOp("conv9", &err)
			tc.run()
			return nil
		}
		err := do()
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		msg := err.Error()
		for _, want := range []string{"conv9: internal error", "index out of range [5]", "TestOpPanicBecomesError"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: %q lacks %q", tc.name, firstLines(msg, 3), want)
			}
		}
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
