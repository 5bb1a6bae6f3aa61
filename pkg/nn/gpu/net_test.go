package gpu

import (
	"context"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/nn/cpu"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
)

// miniAlexNet has every feature of the paper's net at a size the naive
// host layers handle in a blink: grouped convolutions, LRN (strong
// enough to matter), overlapping max pools, dropout before fc layers,
// and ReLUs fused into conv and fc layers.
func miniAlexNet(classes int) alexnet.Spec {
	lrn := alexnet.LRNParams{Size: 5, Alpha: 0.5, Beta: 0.75, K: 2}
	return alexnet.Spec{
		Name: "mini-alexnet", Input: [3]int{3, 31, 31}, Classes: classes, InitScheme: "he",
		Layers: []alexnet.Layer{
			{Kind: alexnet.Conv, Name: "conv1", Out: 8, K: 5, Stride: 2, Pad: 2}, {Kind: alexnet.ReLU, Name: "relu1"},
			{Kind: alexnet.LRN, Name: "norm1", LRN: lrn}, {Kind: alexnet.MaxPool, Name: "pool1", K: 3, Stride: 2},
			{Kind: alexnet.Conv, Name: "conv2", Out: 8, K: 3, Stride: 1, Pad: 1, Groups: 2, BiasInit: 1}, {Kind: alexnet.ReLU, Name: "relu2"},
			{Kind: alexnet.LRN, Name: "norm2", LRN: lrn}, {Kind: alexnet.MaxPool, Name: "pool2", K: 3, Stride: 2},
			{Kind: alexnet.Conv, Name: "conv3", Out: 12, K: 3, Stride: 1, Pad: 1}, {Kind: alexnet.ReLU, Name: "relu3"},
			{Kind: alexnet.Conv, Name: "conv4", Out: 12, K: 3, Stride: 1, Pad: 1, Groups: 2}, {Kind: alexnet.ReLU, Name: "relu4"},
			{Kind: alexnet.Conv, Name: "conv5", Out: 8, K: 3, Stride: 1, Pad: 1, Groups: 2}, {Kind: alexnet.ReLU, Name: "relu5"},
			{Kind: alexnet.MaxPool, Name: "pool5", K: 3, Stride: 2},
			{Kind: alexnet.Flatten, Name: "flatten"},
			{Kind: alexnet.Dropout, Name: "drop6", P: 0.5}, {Kind: alexnet.FC, Name: "fc6", Out: 16}, {Kind: alexnet.ReLU, Name: "relu6"},
			{Kind: alexnet.Dropout, Name: "drop7", P: 0.5}, {Kind: alexnet.FC, Name: "fc7", Out: 16}, {Kind: alexnet.ReLU, Name: "relu7"},
			{Kind: alexnet.FC, Name: "fc8", Out: classes},
		},
	}
}

// miniPaper is miniAlexNet laid out as the paper's net is: dropout on
// the outputs of fc6 and fc7 (after their fused ReLUs), and centred raw
// pixels (MeanOnly) for input.
func miniPaper(classes int) alexnet.Spec {
	s := miniAlexNet(classes)
	s.Name, s.MeanOnly = "mini-paper", true
	var ls []alexnet.Layer
	var pending *alexnet.Layer
	for _, l := range s.Layers {
		switch {
		case l.Kind == alexnet.Dropout:
			pending = &l
			continue
		case l.Kind == alexnet.ReLU && pending != nil:
			ls = append(ls, l, *pending)
			pending = nil
			continue
		}
		ls = append(ls, l)
	}
	s.Layers = ls
	return s
}

var (
	testMean = [3]float32{120, 115, 100}
	testStd  = [3]float32{60, 58, 57}
)

// testSlot is a batch of n random crops with labels and lighting offsets.
func testSlot(spec alexnet.Spec, n int, seed uint64) *pipeline.Slot {
	crop := spec.Input[1]
	s := pipeline.NewSlot(n, 1, crop)
	rng := rand.New(rand.NewPCG(seed, 11))
	for i := range s.Pixels {
		s.Pixels[i] = uint8(rng.IntN(256))
	}
	for i := range n {
		s.Labels[i] = int32(rng.IntN(spec.Classes))
		for c := range 3 {
			s.Offsets[i][c] = float32(rng.NormFloat64() * 7)
		}
	}
	s.N, s.Crop, s.Views = n, crop, 1
	return s
}

// relErr is the largest difference relative to the reference's largest
// magnitude: a norm-wise error, steady where elements are near zero.
func relErr(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	if m == 0 {
		return d
	}
	return d / m
}

func TestNetMatchesCPU(t *testing.T) {
	em := needEmulator(t)
	small, err := alexnet.Build("small", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	paperDrop := miniAlexNet(5)
	paperDrop.Name, paperDrop.PaperDropout = "mini-alexnet-paper-dropout", true
	for _, tc := range []struct {
		spec  alexnet.Spec
		batch int
	}{
		{miniAlexNet(5), 3},
		{small, 2},
		{paperDrop, 3},
	} {
		t.Run(tc.spec.Name, func(t *testing.T) {
			const seed = 77
			B := tc.batch
			params, err := alexnet.InitParams(tc.spec, "he", seed)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := cpu.New(tc.spec, B, params, seed)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			net, err := newNet(newHostEngine(em), tc.spec, B, params, Options{Seed: seed, Mean: testMean, Std: testStd})
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			const tol = 1e-4
			lr, momentum, wd := float32(0.05), float32(0.9), float32(0.0005)
			for step := range 3 {
				s := testSlot(tc.spec, B, uint64(step))
				x := s.Normalize(nil, testMean, testStd)
				wantLoss, want1, _, err := ref.TrainStep(x, s.Labels[:B])
				if err != nil {
					t.Fatal(err)
				}
				loss, hits, err := net.TrainStep(s)
				if err != nil {
					t.Fatal(err)
				}
				in, err := net.Input()
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(in, x); e != 0 {
					t.Errorf("step %d: normalised input differs from the CPU's (rel err %g)", step, e)
				}
				if math.Abs(loss-wantLoss) > tol*math.Abs(wantLoss) || hits != want1 {
					t.Errorf("step %d: loss %.7f, %d hits; CPU %.7f, %d", step, loss, hits, wantLoss, want1)
				}
				masks, err := net.DropoutMasks()
				if err != nil {
					t.Fatal(err)
				}
				for i, l := range tc.spec.Layers {
					if l.Kind != alexnet.Dropout {
						continue
					}
					m := masks[l.Name]
					for j, keep := range cpuDropoutMask(dropoutSeed(seed, i), uint64(step), l.P, len(m)) {
						if (m[j] == 1) != keep {
							t.Fatalf("step %d %s: unit %d's mask differs from the CPU's", step, l.Name, j)
						}
					}
				}
				grads, err := net.Grads()
				if err != nil {
					t.Fatal(err)
				}
				for name, want := range ref.Grads() {
					if e := relErr(grads[name], want); e > tol {
						t.Errorf("step %d: gradient of %s: rel err %.2g", step, name, e)
					}
				}
				if err := net.Update(lr, momentum, wd); err != nil {
					t.Fatal(err)
				}
				ref.Update(lr, momentum, wd)
				got, err := net.Params()
				if err != nil {
					t.Fatal(err)
				}
				for i, p := range ref.Params() {
					if got[i].Name != p.Name {
						t.Fatalf("parameter %d is %s, the CPU's %s", i, got[i].Name, p.Name)
					}
					if e, ev := relErr(got[i].W, p.W), relErr(got[i].V, p.V); e > tol || ev > tol {
						t.Errorf("step %d: after the update, %s: rel err %.2g (weights), %.2g (momenta)", step, p.Name, e, ev)
					}
				}
				if step == 0 {
					// A resumed run sets momenta (SetParams); the next
					// step must use them. The weights are set too, to
					// the CPU's, so the drift so far starts again from 0.
					set := make([]Param, len(got))
					for i, p := range ref.Params() {
						for j := range p.V {
							p.V[j] = float32(j%5) * 1e-3
						}
						set[i] = Param{Name: p.Name, W: slices.Clone(p.W), V: slices.Clone(p.V)}
					}
					if err := net.SetParams(set); err != nil {
						t.Fatal(err)
					}
				}
			}
			// Evaluation: dropout off, in chunks of the batch size.
			s := testSlot(tc.spec, 2*B-1, 9)
			x := s.Normalize(nil, testMean, testStd)
			got, err := net.Eval(s)
			if err != nil {
				t.Fatal(err)
			}
			per := len(x) / s.N
			for lo := 0; lo < s.N; lo += B {
				cnt := min(B, s.N-lo)
				want, err := ref.Eval(x[lo*per:(lo+cnt)*per], cnt)
				if err != nil {
					t.Fatal(err)
				}
				if e := relErr(got[lo*tc.spec.Classes:(lo+cnt)*tc.spec.Classes], want); e > tol {
					t.Errorf("eval logits of crops %d..%d: rel err %.2g", lo, lo+cnt, e)
				}
			}
		})
	}
}

func TestNetRejects(t *testing.T) {
	em := needEmulator(t)
	spec := miniAlexNet(5)
	params, _ := alexnet.InitParams(spec, "he", 1)
	if _, err := newNet(newHostEngine(em), spec, 2, params, Options{Mean: testMean}); err == nil || !strings.Contains(err.Error(), "std") {
		t.Errorf("zero std accepted: %v", err)
	}
	delete(params, "fc7.bias")
	if _, err := newNet(newHostEngine(em), spec, 2, params, Options{Mean: testMean, Std: testStd}); err == nil || !strings.Contains(err.Error(), "fc7.bias") {
		t.Errorf("missing parameter: %v", err)
	}
	params, _ = alexnet.InitParams(spec, "he", 1)
	net, err := newNet(newHostEngine(em), spec, 2, params, Options{Mean: testMean, Std: testStd})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	s := testSlot(spec, 2, 1)
	s.Labels[1] = 5
	if _, _, err := net.TrainStep(s); err == nil || !strings.Contains(err.Error(), "label 5") {
		t.Errorf("label out of range: %v", err)
	}
	if _, _, err := net.TrainStep(testSlot(spec, 1, 1)); err == nil {
		t.Error("a short batch accepted for training")
	}
	for _, tc := range []struct {
		in   string
		want Precision
		err  bool
	}{{"", TF32, false}, {"tf32", TF32, false}, {"fp32", FP32, false}, {"fp16", 0, true}} {
		p, err := ParsePrecision(tc.in)
		if (err != nil) != tc.err || (!tc.err && p != tc.want) {
			t.Errorf("ParsePrecision(%q) = %v, %v", tc.in, p, err)
		}
	}
}

func TestWorkspaceBudget(t *testing.T) {
	for _, tc := range []struct{ free, limit, want int64 }{
		{80 << 30, 0, 4 << 30},
		{8 << 30, 0, 2 << 30},
		{100 << 20, 0, 64 << 20},
		{80 << 30, 1 << 20, 1 << 20},
	} {
		if got := workspaceBudget(tc.free, tc.limit); got != tc.want {
			t.Errorf("workspaceBudget(%d, %d) = %d, want %d", tc.free, tc.limit, got, tc.want)
		}
	}
}

// TestCrossCheckOnHost runs CrossCheck's own logic (the mask and error
// bookkeeping) with the host engine standing in for the GPU: everything
// must come out exact or within float32 noise.
func TestCrossCheckOnHost(t *testing.T) {
	em := needEmulator(t)
	paper := miniPaper(5)
	if got := layerNames(paper); got != "conv1 relu1 norm1 pool1 conv2 relu2 norm2 pool2 conv3 relu3 conv4 relu4 conv5 relu5 pool5 flatten fc6 relu6 drop6 fc7 relu7 drop7 fc8" {
		t.Fatalf("miniPaper's layers: %s", got)
	}
	for _, tc := range []struct {
		spec alexnet.Spec
		det  bool
	}{{miniAlexNet(5), false}, {miniAlexNet(5), true}, {paper, false}} {
		spec, det := tc.spec, tc.det
		var built Options
		rs, err := crossCheck(spec, 3, 8, []Precision{FP32}, det, func(params map[string][]float32, opt Options) (*Net, error) {
			built = opt
			return newNet(newHostEngine(em), spec, 3, params, opt)
		})
		if err != nil {
			t.Fatal(err)
		}
		r := rs[0]
		t.Log(spec.Name, r.String())
		if !r.OK() || r.Worst() > 1e-4 || len(r.Grads) != 16 || len(r.Params) != 16 {
			t.Errorf("host cross-check: %s", r.String())
		}
		if built.Deterministic != det || r.Deterministic != det || strings.Contains(r.String(), "deterministic") != det {
			t.Errorf("deterministic %v: the net was built with %v, the result says %v: %q", det, built.Deterministic, r.Deterministic, r.String())
		}
	}
	if RelErr([]float32{1, 2}, []float32{1, 2, 3}) != math.Inf(1) || RelErr([]float32{0, 1.5}, []float32{0, 2}) != 0.25 {
		t.Error("RelErr")
	}
}

// hostFeedDevice is feed.Device on the host engine's memory: copies are
// immediate and the streams are the caller's order, so only the feed's
// bookkeeping and the Net's use of device batches are exercised.
type hostFeedDevice struct {
	mem  *hostMem
	l    feed.Layout
	bufs []cuda.DevicePtr
}

func (d *hostFeedDevice) Buffers() int { return len(d.bufs) }
func (d *hostFeedDevice) Batch(buf, n int) feed.DeviceBatch {
	return feed.DeviceBatch{Base: d.bufs[buf], Layout: d.l, N: n}
}
func (d *hostFeedDevice) Upload(seq int64, buf int, s *pipeline.Slot) error {
	block, err := d.l.Block(s)
	if err != nil {
		return err
	}
	n := d.l.CopyBytes(s.N)
	copy(d.mem.bytes(d.bufs[buf], n), block[:n])
	return nil
}
func (d *hostFeedDevice) Uploaded(int) error     { return nil }
func (d *hostFeedDevice) Drain() error           { return nil }
func (d *hostFeedDevice) Begin(int64, int) error { return nil }
func (d *hostFeedDevice) Free(int) error         { return nil }
func (d *hostFeedDevice) End(int64) error        { return nil }
func (d *hostFeedDevice) Timing(seq int64) (feed.StepTiming, error) {
	return feed.StepTiming{Seq: seq}, nil
}

// TestStepFeedOnHost trains through the real pipeline and pkg/feed with
// StepFeed, and without the feed (slots straight into TrainStep) from the
// same pipeline run: the losses must be identical, bit for bit.
func TestStepFeedOnHost(t *testing.T) {
	em := needEmulator(t)
	dir := t.TempDir()
	const side, crop, batch, classes = 24, 20, 4, 10
	writeTestShards(t, dir, 24, side, classes)
	spec, err := alexnet.Build("small", classes, crop)
	if err != nil {
		t.Fatal(err)
	}
	params, err := alexnet.InitParams(spec, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Seed: 2, Mean: [3]float32{120, 115, 100}, Std: [3]float32{60, 58, 57}}
	newPL := func(slots []*pipeline.Slot) *pipeline.Pipeline {
		pl, err := pipeline.New(context.Background(), dir, pipeline.Options{Mode: pipeline.Train, Batch: batch, Crop: crop, Seed: 3,
			Epochs: 2, Decoders: 2, Slots: slots})
		if err != nil {
			t.Fatal(err)
		}
		return pl
	}

	ref, err := newNet(newHostEngine(em), spec, batch, params, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var want []float64
	pl := newPL(nil)
	for {
		s, err := pl.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		loss, _, err := ref.TrainStep(s)
		s.Release()
		if err != nil {
			t.Fatal(err)
		}
		if err := ref.Update(0.01, 0.9, 0.0005); err != nil {
			t.Fatal(err)
		}
		want = append(want, loss)
	}
	pl.Close()

	eng := newHostEngine(em)
	net, err := newNet(eng, spec, batch, params, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	l := net.InputLayout()
	var slots []*pipeline.Slot
	for range 3 {
		s, err := l.Slot(make([]byte, l.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, s)
	}
	pl = newPL(slots)
	defer pl.Close()
	dev := &hostFeedDevice{mem: eng.mem, l: l, bufs: []cuda.DevicePtr{eng.mem.alloc(l.Bytes()), eng.mem.alloc(l.Bytes())}}
	f, err := feed.New(pl, dev, feed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for {
		_, p, err := net.StepFeed(f, 0.01, 0.9, 0.0005)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		loss, _, err := p.Wait()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, loss)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) != 12 {
		t.Fatalf("%d steps through the feed, %d without; want 12", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("step %d: loss %.9f through the feed, %.9f without", i, got[i], want[i])
		}
	}
}

func layerNames(s alexnet.Spec) string {
	var names []string
	for _, l := range s.Layers {
		names = append(names, l.Name)
	}
	return strings.Join(names, " ")
}

// uploadCounter is a hostEngine that records where each upload went.
type uploadCounter struct {
	*hostEngine
	dsts []cuda.DevicePtr
}

func (u *uploadCounter) upload(dst cuda.DevicePtr, src []byte) error {
	u.dsts = append(u.dsts, dst)
	return u.hostEngine.upload(dst, src)
}

// TestParamsAreReadOnly: reading the parameters (a checkpoint) costs no
// upload of them later, writing to what Params returned changes nothing
// on the device, and SetParams does, half by half.
func TestParamsAreReadOnly(t *testing.T) {
	em := needEmulator(t)
	spec := miniAlexNet(5)
	const B, seed = 3, 11
	params, err := alexnet.InitParams(spec, "he", seed)
	if err != nil {
		t.Fatal(err)
	}
	eng := &uploadCounter{hostEngine: newHostEngine(em)}
	net, err := newNet(eng, spec, B, params, Options{Seed: seed, Mean: testMean, Std: testStd})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	inParams := func(p cuda.DevicePtr) bool {
		end := int(net.packed) * 4
		return (p >= net.w && p < net.w.Add(end)) || (p >= net.v && p < net.v.Add(end))
	}
	step := func(i int) {
		t.Helper()
		if _, _, err := net.TrainStep(testSlot(spec, B, uint64(i))); err != nil {
			t.Fatal(err)
		}
		if err := net.Update(0.05, 0.9, 0.0005); err != nil {
			t.Fatal(err)
		}
	}
	step(0)
	ps, err := net.Params()
	if err != nil {
		t.Fatal(err)
	}
	w0, v0 := ps[0].W[0], ps[0].V[0]
	ps[0].W[0], ps[0].V[0] = 1234, 5678
	eng.dsts = nil
	step(1)
	for _, d := range eng.dsts {
		if inParams(d) {
			t.Fatalf("a step after Params uploaded parameters (to %#x)", d)
		}
	}
	if len(eng.dsts) == 0 {
		t.Fatal("no upload seen at all: the counter is not in the path")
	}
	ps, err = net.Params()
	if err != nil {
		t.Fatal(err)
	}
	// (The upload check above is the guard; these values only show that
	// Params read the device afresh rather than returning the mirrors as
	// they were written.)
	if ps[0].W[0] == 1234 || ps[0].V[0] == 5678 {
		t.Fatalf("Params returned the written mirrors, not the device's values: %v, %v", ps[0].W[0], ps[0].V[0])
	}
	if ps[0].W[0] == w0 && ps[0].V[0] == v0 {
		t.Fatal("a step changed neither the weight nor the momentum")
	}

	// SetParams: momenta only, then the weights of one tensor.
	set := make([]Param, len(ps))
	for i, p := range ps {
		set[i] = Param{Name: p.Name, V: make([]float32, len(p.V))}
		for j := range set[i].V {
			set[i].V[j] = float32(i+j%7) * 1e-3
		}
	}
	wantW := slices.Clone(ps[0].W)
	if err := net.SetParams(set); err != nil {
		t.Fatal(err)
	}
	got, err := net.Params()
	if err != nil {
		t.Fatal(err)
	}
	for i := range set {
		if !slices.Equal(got[i].V, set[i].V) {
			t.Fatalf("%s: momenta not set", got[i].Name)
		}
	}
	if !slices.Equal(got[0].W, wantW) {
		t.Fatal("SetParams with nil weights changed the weights")
	}
	for _, tc := range []struct {
		name string
		edit func([]Param) []Param
		want string
	}{
		{"count", func(p []Param) []Param { return p[:len(p)-1] }, "given"},
		{"name", func(p []Param) []Param { p[0].Name = "nope"; return p }, "given nope"},
		{"size", func(p []Param) []Param { p[1].V = p[1].V[:1]; return p }, "1 values"},
	} {
		if err := net.SetParams(tc.edit(slices.Clone(set))); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: SetParams error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// resumeMatches trains 4 steps in one go, and 2 steps then 2 more in a
// backend built as trainer.Train's --resume builds it (the checkpoint's
// weights to the constructor, its momenta through SetMomenta, its step
// through SetStep), and wants the same weights and momenta, bit for bit:
// the dropout masks, the momenta and the step count all carry over.
func resumeMatches(t *testing.T, spec alexnet.Spec, batch int, mk func(params map[string][]float32) trainer.Backend) {
	t.Helper()
	params, err := alexnet.InitParams(spec, "he", 5)
	if err != nil {
		t.Fatal(err)
	}
	train := func(b trainer.Backend, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, _, err := b.Step(CrossCheckBatch(spec, batch, uint64(i)), 0.01, 0.9, 0.0005); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
	}
	snapshot := func(b trainer.Backend) []trainer.Tensor {
		t.Helper()
		ts, err := b.Tensors()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]trainer.Tensor, len(ts))
		for i, x := range ts {
			out[i] = trainer.Tensor{Name: x.Name, Shape: x.Shape, W: slices.Clone(x.W), V: slices.Clone(x.V)}
		}
		return out
	}
	whole := mk(params)
	defer whole.Close()
	train(whole, 0, 4)
	want := snapshot(whole)

	first := mk(params)
	defer first.Close()
	train(first, 0, 2)
	ck := snapshot(first)
	weights := map[string][]float32{}
	for _, x := range ck {
		weights[x.Name] = x.W
	}
	resumed := mk(weights)
	defer resumed.Close()
	if err := resumed.SetMomenta(ck); err != nil {
		t.Fatal(err)
	}
	resumed.SetStep(2)
	train(resumed, 2, 4)
	got := snapshot(resumed)
	for i := range want {
		if !slices.Equal(got[i].W, want[i].W) || !slices.Equal(got[i].V, want[i].V) {
			t.Errorf("%s: the resumed run's weights or momenta differ from the uninterrupted run's", want[i].Name)
		}
	}
}

// TestResumeMatches is resumeMatches on the host engine, whose arithmetic
// repeats exactly; TestGPUResumeMatches is the same on a GPU.
func TestResumeMatches(t *testing.T) {
	em := needEmulator(t)
	spec := miniAlexNet(5)
	resumeMatches(t, spec, 3, func(params map[string][]float32) trainer.Backend {
		n, err := newNet(newHostEngine(em), spec, 3, params, Options{Seed: 9, Mean: testMean, Std: testStd})
		if err != nil {
			t.Fatal(err)
		}
		return &Backend{net: n}
	})
}

// The update over the packed buffers, weights first and biases after
// them, against pkg/nn/cpu's expression bit for bit, per parameter: with
// the biases decayed and spared. The biases are set away from 0 and the
// decay made strong, so that decaying them is seen.
func TestUpdateSparesBiases(t *testing.T) {
	em := needEmulator(t)
	checkUpdateSparesBiases(t, func(spec alexnet.Spec, batch int, params map[string][]float32, opt Options) (*Net, error) {
		return newNet(newHostEngine(em), spec, batch, params, opt)
	})
}

// checkUpdateSparesBiases is TestUpdateSparesBiases on nets that build
// makes (on the emulator, or on a GPU).
func checkUpdateSparesBiases(t *testing.T, build func(spec alexnet.Spec, batch int, params map[string][]float32, opt Options) (*Net, error)) {
	spec := miniAlexNet(5)
	const B, seed = 3, 13
	params, err := alexnet.InitParams(spec, "he", seed)
	if err != nil {
		t.Fatal(err)
	}
	bias := map[string]bool{}
	for _, ps := range spec.Params() {
		bias[ps.Name] = ps.Bias
		if ps.Bias {
			for i := range params[ps.Name] {
				params[ps.Name][i] = 0.25 + float32(i%3)
			}
		}
	}
	for _, biasDecay := range []bool{true, false} {
		net, err := build(spec, B, params, Options{Precision: FP32, Seed: seed, Mean: testMean, Std: testStd})
		if err != nil {
			t.Fatal(err)
		}
		net.SetBiasDecay(biasDecay)
		if _, _, err := net.TrainStep(testSlot(spec, B, 0)); err != nil {
			t.Fatal(err)
		}
		before, err := net.Params()
		if err != nil {
			t.Fatal(err)
		}
		for i := range before { // Params' slices are the mirrors, which the next read refills
			before[i].W, before[i].V = slices.Clone(before[i].W), slices.Clone(before[i].V)
		}
		grads, err := net.Grads()
		if err != nil {
			t.Fatal(err)
		}
		lr, momentum, wd := float32(0.05), float32(0.9), float32(0.5)
		if err := net.Update(lr, momentum, wd); err != nil {
			t.Fatal(err)
		}
		after, err := net.Params()
		if err != nil {
			t.Fatal(err)
		}
		spared := 0
		for i, p := range before {
			d := wd
			if bias[p.Name] && !biasDecay {
				d, spared = 0, spared+1
			}
			g := grads[p.Name]
			for j := range p.W {
				v := momentum*p.V[j] - d*lr*p.W[j] - lr*g[j]
				w := p.W[j] + v
				if math.Float32bits(after[i].V[j]) != math.Float32bits(v) || math.Float32bits(after[i].W[j]) != math.Float32bits(w) {
					t.Fatalf("bias decay %v: %s[%d]: w, v = %g, %g; want %g, %g", biasDecay, p.Name, j, after[i].W[j], after[i].V[j], w, v)
				}
			}
		}
		if !biasDecay && spared == 0 {
			t.Fatal("no bias in the model: the test tells nothing")
		}
		net.Close()
	}
}
