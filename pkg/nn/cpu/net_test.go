package cpu

import (
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
)

// tinySpec has one of every layer kind, groups, a strided conv, and an LRN
// strong enough to matter, at a size where the float64 reference is fast.
func tinySpec() alexnet.Spec {
	return alexnet.Spec{
		Name: "tiny", Input: [3]int{3, 12, 12}, Classes: 5, InitScheme: "he",
		Layers: []alexnet.Layer{
			{Kind: alexnet.Conv, Name: "conv1", Out: 8, K: 3, Stride: 1, Pad: 1},
			{Kind: alexnet.ReLU, Name: "relu1"},
			{Kind: alexnet.LRN, Name: "norm1", LRN: alexnet.LRNParams{Size: 3, Alpha: 0.3, Beta: 0.75, K: 1}},
			{Kind: alexnet.MaxPool, Name: "pool1", K: 3, Stride: 2},
			{Kind: alexnet.Conv, Name: "conv2", Out: 6, K: 3, Stride: 2, Pad: 1, Groups: 2},
			{Kind: alexnet.ReLU, Name: "relu2"},
			{Kind: alexnet.Flatten, Name: "flatten"},
			{Kind: alexnet.Dropout, Name: "drop3", P: 0.3},
			{Kind: alexnet.FC, Name: "fc3", Out: 10},
			{Kind: alexnet.ReLU, Name: "relu3"},
			{Kind: alexnet.FC, Name: "fc4", Out: 5},
		},
	}
}

func mustNet(t testing.TB, s alexnet.Spec, batch int, params map[string][]float32, seed uint64) *Net {
	t.Helper()
	n, err := New(s, batch, params, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// randomParams gives biases small random values too, so that a bias
// gradient that ignored them would show.
func randomParams(s alexnet.Spec, seed uint64) map[string][]float32 {
	p, _ := alexnet.InitParams(s, "he", seed)
	r := rand.New(rand.NewPCG(seed, 99))
	for name, v := range p {
		if strings.HasSuffix(name, ".bias") {
			for i := range v {
				v[i] = float32(r.NormFloat64() * 0.1)
			}
		}
	}
	return p
}

func batchData(s alexnet.Spec, n int, seed uint64) ([]float32, []int32) {
	r := rand.New(rand.NewPCG(seed, 7))
	x := randn(r, n*s.Input[0]*s.Input[1]*s.Input[2], 1)
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(r.IntN(s.Classes))
	}
	return x, labels
}

// TestNetGradientsMatchFiniteDifferences checks every parameter's gradient
// after one TrainStep against central differences of the float64
// reference network, run with the dropout mask the step drew.
func TestNetGradientsMatchFiniteDifferences(t *testing.T) {
	s := tinySpec()
	const batch = 3
	params := randomParams(s, 1)
	n := mustNet(t, s, batch, params, 5)
	x, labels := batchData(s, batch, 2)
	loss, _, _, err := n.TrainStep(x, labels)
	if err != nil {
		t.Fatal(err)
	}
	masks := map[string][]float32{"drop3": n.dropouts[0].mask}
	p64 := map[string][]float64{}
	for name, v := range params {
		p64[name] = to64(v)
	}
	x64 := to64(x)
	refLossOf := func() float64 {
		return refLoss(refForward(s, p64, x64, batch, masks), labels, s.Classes)
	}
	if want := refLossOf(); math.Abs(loss-want) > 1e-5*(1+want) {
		t.Fatalf("loss %g, reference %g", loss, want)
	}
	grads := n.Grads()
	for _, ps := range s.Params() {
		w := p64[ps.Name]
		got := grads[ps.Name]
		var worst float64
		for i := range w {
			orig := w[i]
			h := 1e-5
			w[i] = orig + h
			up := refLossOf()
			w[i] = orig - h
			down := refLossOf()
			w[i] = orig
			fd := (up - down) / (2 * h)
			// Float32 backward against float64 differences: allow 1e-3
			// relative, 1e-5 absolute.
			err := math.Abs(float64(got[i])-fd) / (1e-2 + math.Abs(fd))
			worst = max(worst, err)
			if math.Abs(float64(got[i])-fd) > 1e-3*math.Abs(fd)+1e-5 {
				t.Errorf("%s[%d]: gradient %g, finite difference %g", ps.Name, i, got[i], fd)
				break
			}
		}
		t.Logf("%s: worst scaled error %.2g", ps.Name, worst)
	}
}

func TestEvalMatchesReference(t *testing.T) {
	s := tinySpec()
	const batch = 4
	params := randomParams(s, 3)
	n := mustNet(t, s, batch, params, 1)
	x, _ := batchData(s, batch, 4)
	p64 := map[string][]float64{}
	for name, v := range params {
		p64[name] = to64(v)
	}
	got, err := n.Eval(x, batch)
	if err != nil {
		t.Fatal(err)
	}
	closeTo(t, "logits", got, refForward(s, p64, to64(x), batch, nil), 1e-5)
	// A partial batch gives the same rows: padding does not leak.
	per := len(x) / batch
	part, err := n.Eval(x[:2*per], 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(part) != 2*s.Classes {
		t.Fatalf("partial batch: %d logits, want %d", len(part), 2*s.Classes)
	}
	closeTo(t, "partial-batch logits", part, to64(got[:2*s.Classes]), 1e-6)
}

// The update against the paper's rule in float64, with the biases decayed
// (PyTorch's SGD) and spared (cuda-convnet's), at a decay strong enough
// that the two differ far beyond the tolerance.
func TestUpdateMatchesScalarReference(t *testing.T) {
	for _, biasDecay := range []bool{true, false} {
		s := tinySpec()
		n := mustNet(t, s, 2, nil, 1)
		n.SetBiasDecay(biasDecay)
		r := rand.New(rand.NewPCG(8, 9))
		type state struct {
			w, v, g []float64
			bias    bool
		}
		before := map[string]state{}
		for _, p := range n.params {
			for i := range p.W {
				p.W[i] = float32(r.NormFloat64())
				p.V[i] = float32(r.NormFloat64())
				p.grad[i] = float32(r.NormFloat64())
			}
			before[p.Name] = state{to64(p.W), to64(p.V), to64(p.grad), p.bias}
		}
		const lr, mom, wd = 0.01, 0.9, 0.5
		n.Update(lr, mom, wd)
		biases := 0
		for _, p := range n.Params() {
			b := before[p.Name]
			d := wd
			if b.bias {
				biases++
				if !biasDecay {
					d = 0
				}
			}
			for i := range p.W {
				v := mom*b.v[i] - d*lr*b.w[i] - lr*b.g[i]
				w := b.w[i] + v
				if math.Abs(float64(p.V[i])-v) > 1e-6*(1+math.Abs(v)) || math.Abs(float64(p.W[i])-w) > 1e-6*(1+math.Abs(w)) {
					t.Fatalf("bias decay %v: %s[%d]: w, v = %g, %g; want %g, %g", biasDecay, p.Name, i, p.W[i], p.V[i], w, v)
				}
			}
		}
		if biases == 0 || biases == len(n.params) {
			t.Fatalf("%d of %d parameters are biases: the test tells nothing", biases, len(n.params))
		}
	}
}

// TestDeterministic trains two Nets from the same seed on the same
// batches and requires bit-identical parameters. One of them also runs
// Eval between steps, which must not disturb training.
func TestDeterministic(t *testing.T) {
	for _, name := range []string{"tiny", "small", "small-fc"} {
		t.Run(name, func(t *testing.T) {
			s := tinySpec()
			if name != "tiny" {
				s, _ = alexnet.Build(name, 10, 0)
			}
			const batch, steps = 8, 4
			a, b := mustNet(t, s, batch, nil, 11), mustNet(t, s, batch, nil, 11)
			for step := 0; step < steps; step++ {
				x, labels := batchData(s, batch, uint64(step))
				la, _, _, err := a.TrainStep(x, labels)
				if err != nil {
					t.Fatal(err)
				}
				a.Update(0.01, 0.9, 0.0005)
				if _, err := b.Eval(x[:len(x)/2], batch/2); err != nil {
					t.Fatal(err)
				}
				lb, _, _, _ := b.TrainStep(x, labels)
				b.Update(0.01, 0.9, 0.0005)
				if la != lb {
					t.Fatalf("step %d: losses %v and %v", step, la, lb)
				}
			}
			pa, pb := a.Params(), b.Params()
			for i := range pa {
				if !equal32(pa[i].W, pb[i].W) || !equal32(pa[i].V, pb[i].V) {
					t.Fatalf("%s differs after %d steps", pa[i].Name, steps)
				}
			}
			if a.Step() != steps {
				t.Fatalf("Step() = %d, want %d", a.Step(), steps)
			}
		})
	}
}

// TestDeterministicAcrossCoreCounts: work is split into chunks, blocks and
// accumulation groups whose shapes do not depend on GOMAXPROCS, so one
// core and any number of them give the same bits. small-fc's fc layers
// span several 256-column GEMM blocks (2304 inputs, 256 outputs), which
// GOMAXPROCS once regrouped into wider GEMMs that rounded differently.
func TestDeterministicAcrossCoreCounts(t *testing.T) {
	smallFC, err := alexnet.Build("small-fc", 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []alexnet.Spec{tinySpec(), smallFC} {
		t.Run(s.Name, func(t *testing.T) {
			const batch, steps = 8, 2
			run := func(procs int) []Param {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				n := mustNet(t, s, batch, nil, 5)
				for step := 0; step < steps; step++ {
					x, labels := batchData(s, batch, uint64(step))
					if _, _, _, err := n.TrainStep(x, labels); err != nil {
						t.Fatal(err)
					}
					n.Update(0.01, 0.9, 0.0005)
				}
				return n.Params()
			}
			one := run(1)
			for _, procs := range []int{2, 3, 5} {
				many := run(procs)
				for i := range one {
					if !equal32(one[i].W, many[i].W) || !equal32(one[i].V, many[i].V) {
						t.Errorf("%s differs between 1 and %d cores", one[i].Name, procs)
					}
				}
			}
		})
	}
}

// synthetic draws n 32×32 images of 10 classes: class c is a stripe
// pattern (orientation c%2, period 2+c/2 pixels) in colour c%3 on
// Gaussian noise. The task is separable but needs spatial filters.
func synthetic(n int, seed uint64) ([]float32, []int32) {
	r := rand.New(rand.NewPCG(seed, 1))
	const hw = 32
	x := make([]float32, n*3*hw*hw)
	labels := make([]int32, n)
	for i := range labels {
		c := r.IntN(10)
		labels[i] = int32(c)
		period := 2 + c/2
		phase := r.IntN(period)
		img := x[i*3*hw*hw : (i+1)*3*hw*hw]
		for j := range img {
			img[j] = float32(r.NormFloat64() * 0.5)
		}
		for y := 0; y < hw; y++ {
			for xx := 0; xx < hw; xx++ {
				pos := xx
				if c%2 == 1 {
					pos = y
				}
				if (pos+phase)%period == 0 {
					img[(c%3)*hw*hw+y*hw+xx] += 1.5
				}
			}
		}
	}
	return x, labels
}

func TestSmallLearnsSyntheticTask(t *testing.T) {
	if testing.Short() {
		t.Skip("trains for a few seconds")
	}
	s, err := alexnet.Build("small", 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	const batch, steps = 32, 60
	n := mustNet(t, s, batch, nil, 1)
	xs, labels := synthetic(batch*steps, 1)
	per := 3 * 32 * 32
	start := time.Now()
	var last float64
	for step := 0; step < steps; step++ {
		loss, _, _, err := n.TrainStep(xs[step*batch*per:(step+1)*batch*per], labels[step*batch:(step+1)*batch])
		if err != nil {
			t.Fatal(err)
		}
		if math.IsNaN(loss) {
			t.Fatalf("step %d: loss is NaN", step)
		}
		n.Update(0.001, 0.9, 0.0005)
		last = 0.9*last + 0.1*loss
		if step == 0 {
			last = loss
		}
	}
	elapsed := time.Since(start)
	tx, tl := synthetic(256, 2)
	correct := 0
	for i := 0; i < len(tl); i += batch {
		logits, err := n.Eval(tx[i*per:(i+batch)*per], batch)
		if err != nil {
			t.Fatal(err)
		}
		c1, _ := topK(logits, tl[i:i+batch], 10)
		correct += c1
	}
	acc := float64(correct) / float64(len(tl))
	t.Logf("%d steps in %v (%.0f img/s): smoothed loss %.3f (ln 10 = %.3f), held-out accuracy %.1f%%",
		steps, elapsed.Round(time.Millisecond), float64(steps*batch)/elapsed.Seconds(), last, math.Log(10), 100*acc)
	if last > 0.5*math.Log(10) {
		t.Errorf("smoothed training loss %.3f, want below %.3f", last, 0.5*math.Log(10))
	}
	if acc < 0.6 {
		t.Errorf("held-out accuracy %.1f%%, want at least 60%%", 100*acc)
	}
}

func TestNewRejects(t *testing.T) {
	s := tinySpec()
	good, _ := alexnet.InitParams(s, "", 1)
	missing := map[string][]float32{}
	for k, v := range good {
		if k != "fc4.bias" {
			missing[k] = v
		}
	}
	short := map[string][]float32{}
	for k, v := range good {
		short[k] = v
	}
	short["conv2.weight"] = short["conv2.weight"][1:]
	broken := tinySpec()
	broken.Classes = 6
	cases := []struct {
		name   string
		spec   alexnet.Spec
		batch  int
		params map[string][]float32
		errSub string
	}{
		{"batch 0", s, 0, good, "batch"},
		{"missing", s, 2, missing, "fc4.bias"},
		{"short", s, 2, short, "conv2.weight"},
		{"invalid spec", broken, 2, nil, "classes"},
	}
	for _, tc := range cases {
		if _, err := New(tc.spec, tc.batch, tc.params, 1); err == nil || !strings.Contains(err.Error(), tc.errSub) {
			t.Errorf("%s: New = %v, want error containing %q", tc.name, err, tc.errSub)
		}
	}
}

func TestStepRejectsBadInput(t *testing.T) {
	s := tinySpec()
	n := mustNet(t, s, 2, nil, 1)
	x, labels := batchData(s, 2, 1)
	if _, _, _, err := n.TrainStep(x[1:], labels); err == nil {
		t.Error("short x accepted")
	}
	if _, _, _, err := n.TrainStep(x, labels[:1]); err == nil {
		t.Error("one label for two images accepted")
	}
	if _, _, _, err := n.TrainStep(x, []int32{0, 5}); err == nil {
		t.Error("label 5 of 5 classes accepted")
	}
	if _, err := n.Eval(x, 3); err == nil {
		t.Error("Eval of 3 images at batch 2 accepted")
	}
	if _, err := n.Eval(x[:10], 1); err == nil {
		t.Error("Eval with a wrong-sized image accepted")
	}
	// A failed step leaves the Net usable.
	if _, _, _, err := n.TrainStep(x, labels); err != nil {
		t.Errorf("step after errors: %v", err)
	}
}

func TestTopK(t *testing.T) {
	logits := []float32{
		5, 1, 2, 3, 4, 0, // label 0 first
		5, 1, 2, 3, 4, 0, // label 4 second
		5, 1, 2, 3, 4, 0, // label 5 last
		1, 1, 1, 1, 1, 1, // all tied: counts as first
	}
	c1, c5 := topK(logits, []int32{0, 4, 5, 3}, 6)
	if c1 != 2 || c5 != 3 {
		t.Fatalf("topK = %d, %d; want 2, 3", c1, c5)
	}
}

// TestWorksWithGonumBLAS reruns the gradient and evaluation checks in a
// child process with OpenBLAS switched off, so the pure-Go fallback that a
// machine without the library gets is exercised too.
func TestWorksWithGonumBLAS(t *testing.T) {
	if os.Getenv("CPU_GONUM_CHILD") == "1" {
		n := mustNet(t, tinySpec(), 1, nil, 1)
		if !strings.Contains(n.Backend(), "gonum") {
			t.Fatalf("OPENBLAS_LIB=none, yet Backend() = %q", n.Backend())
		}
		return
	}
	if testing.Short() {
		t.Skip("runs the gradient check again in a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^(TestWorksWithGonumBLAS|TestNetGradientsMatchFiniteDifferences|TestEvalMatchesReference)$", "-test.v")
	cmd.Env = append(os.Environ(), "CPU_GONUM_CHILD=1", "OPENBLAS_LIB=none")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "--- PASS") != 3 {
		t.Fatalf("child run with gonum: %v\n%s", err, out)
	}
}

// Every small model trains and evaluates at each crop from its MinInput
// up to where its maps stop being tiny: at small-fc's 7 to 10 px, conv3
// sees a 1×1 map whose outer taps read only padding, which once crashed
// im2col. (The AlexNets' 60M parameters make this too heavy for them;
// their layers' small maps are TestConvMatchesReference's cases.)
func TestSmallModelsTrainFromMinInput(t *testing.T) {
	for _, v := range []string{"small", "small-fc"} {
		lo := alexnet.MinInput(v)
		for hw := lo; hw <= lo+4; hw++ {
			s, err := alexnet.Build(v, 3, hw)
			if err != nil {
				t.Fatalf("%s at %d: %v", v, hw, err)
			}
			n := mustNet(t, s, 2, nil, 1)
			x, labels := batchData(s, 2, 1)
			loss, _, _, err := n.TrainStep(x, labels)
			if err != nil || math.IsNaN(float64(loss)) {
				t.Fatalf("%s at %d px: loss %v, %v", v, hw, loss, err)
			}
			n.Update(0.01, 0.9, 0)
			if _, err := n.Eval(x, 2); err != nil {
				t.Fatalf("%s at %d px: eval: %v", v, hw, err)
			}
		}
	}
}
