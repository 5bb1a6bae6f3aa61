package gpu

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
	"github.com/alexnet-repro/alexnet/shards"
)

// The TestGPU* tests need a GPU with cuDNN, cuBLAS and NVRTC. Without
// them they skip with the loader's reason; ALEXNET_REQUIRE_GPU=1 (set by
// the GPU machine's check script) turns a skip into a failure, so a
// broken library search cannot pass as "skipped".

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("ALEXNET_REQUIRE_GPU") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func needGPU(t testing.TB) *cuda.Device {
	t.Helper()
	d, err := cuda.Init()
	if err != nil {
		skipOrFail(t, "no CUDA driver: %v", err)
	}
	return d
}

// gpuHost is kernelHost on the device, through a cudaEngine.
type gpuHost struct {
	e *cudaEngine
}

func newGPUHost(t testing.TB) *gpuHost {
	d := needGPU(t)
	e, err := newCUDAEngine(d, FP32, cuda.SearchHeuristic, 0, false)
	if err != nil {
		skipOrFail(t, "GPU engine: %v", err)
	}
	t.Cleanup(func() { e.close() })
	return &gpuHost{e: e}
}

func (h *gpuHost) launch(name string, grid, block [3]uint32, args ...any) error {
	return h.e.launch(name, grid, block, args...)
}

func (h *gpuHost) alloc(t testing.TB, bytes int) cuda.DevicePtr {
	p, err := h.e.alloc(bytes)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (h *gpuHost) put(t testing.TB, dst cuda.DevicePtr, src []byte) {
	if err := h.e.upload(dst, src); err != nil {
		t.Fatal(err)
	}
}

func (h *gpuHost) get(t testing.TB, dst []byte, src cuda.DevicePtr) {
	if err := h.e.download(dst, src); err != nil {
		t.Fatal(err)
	}
}

// TestGPUKernels runs the emulator's kernel checks on the device: the
// normalisation bit for bit against augment.KnownValues and
// augment.NormalizeBatch, dropout masks equal to the CPU's, the loss, and
// the SGD update bit for bit.
func TestGPUKernels(t *testing.T) {
	h := newGPUHost(t)
	t.Run("normalize known values", func(t *testing.T) { checkNormalizeKnownValues(t, h) })
	t.Run("normalize batch", func(t *testing.T) { checkNormalizeBatch(t, h, 4, 224, 224) })
	t.Run("dropout", func(t *testing.T) {
		checkDropout(t, h, 128*9216+5, dropoutSeed(1, 16), 0, 0.5, false)
		checkDropout(t, h, 4099, dropoutSeed(1, 19), 987654, 0.5, false)
		checkDropout(t, h, 4099, 3, 1, 0.1, false)
		checkDropout(t, h, 4099, 3, 1, 0.5, true)
	})
	t.Run("xent", func(t *testing.T) {
		checkXent(t, h, 128, 1000, false)
		checkXent(t, h, 7, 10, false)
		checkXent(t, h, 4, 10, true)
	})
	t.Run("sgd", func(t *testing.T) { checkSGD(t, h, 1<<20+3) })
	t.Run("conv-bias-grad", func(t *testing.T) {
		checkConvBiasGrad(t, h, 128, 64, 55*55)
		checkConvBiasGrad(t, h, 128, 384, 13*13)
		checkConvBiasGrad(t, h, 3, 5, 7)
	})
}

// TestGPUCrossCheck compares the GPU backend with the CPU backend on the
// same weights and batch: logits, loss, every gradient, and the
// parameters after one SGD step, within 1e-3 (fp32) and 1e-2 (tf32)
// relative error; the normalised input and the dropout masks exactly.
func TestGPUCrossCheck(t *testing.T) {
	dev := needGPU(t)
	dnn, err := dev.NewDNN()
	if err != nil {
		skipOrFail(t, "no cuDNN: %v", err)
	}
	dnn.Close()
	models := []struct {
		name    string
		classes int
		batch   int
		paper   bool // the paper's dropout (train --dropout paper)
	}{{"small", 10, 16, false}, {"small-fc", 10, 16, true}, {"alexnet-owt", 1000, 8, false}, {"alexnet", 1000, 8, false}}
	if testing.Short() {
		models = models[:1]
	}
	for _, m := range models {
		t.Run(fmt.Sprintf("%s paper dropout %v", m.name, m.paper), func(t *testing.T) {
			spec, err := alexnet.Build(m.name, m.classes, 0)
			if err != nil {
				t.Fatal(err)
			}
			spec.PaperDropout = m.paper
			rs, err := CrossCheck(spec, m.batch, 3, []Precision{FP32, TF32}, false, dev)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				t.Log(r.String())
				if !r.OK() {
					t.Errorf("%s %s: worst rel err %.2e (tolerance %.0e), input exact %v, masks equal %v",
						r.Model, r.Precision, r.Worst(), r.Tolerance, r.InputExact, r.MasksEqual)
				}
			}
		})
	}
}

// TestGPUDeterministic: with Options.Deterministic, two runs of the same
// steps from the same seed end with bit-identical weights and momenta, in both
// precisions, on the paper's model (grouped convolutions, overlapping
// pooling, dropout); one step's gradients against the default mode's are
// logged, and the fc layers' must agree within the cross-check's
// tolerance. The default mode's repeatability is only
// logged: cuDNN does not promise it.
func TestGPUDeterministic(t *testing.T) {
	needGPU(t)
	spec, err := alexnet.Build("alexnet", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	const batch, steps = 16, 4
	mean, std := [3]float32{120, 115, 100}, [3]float32{60, 58, 57}
	train := func(p Precision, det bool) []trainer.Tensor {
		b, err := NewBackend(spec, batch, nil, Options{Precision: p, Seed: 7, Mean: mean, Std: std, Deterministic: det})
		if err != nil {
			skipOrFail(t, "GPU backend: %v", err)
		}
		defer b.Close()
		for i := range steps {
			if _, _, err := b.Step(CrossCheckBatch(spec, batch, uint64(i)), 0.01, 0.9, 0.0005); err != nil {
				t.Fatalf("%v step %d: %v", p, i, err)
			}
		}
		ts, err := b.Tensors()
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	differing := func(a, b []trainer.Tensor) []string {
		var names []string
		same := func(x, y []float32) bool {
			for j := range x {
				if math.Float32bits(x[j]) != math.Float32bits(y[j]) {
					return false
				}
			}
			return len(x) == len(y)
		}
		for i := range a {
			if !same(a[i].W, b[i].W) || !same(a[i].V, b[i].V) {
				names = append(names, a[i].Name)
			}
		}
		return names
	}
	for _, p := range []Precision{FP32, TF32} {
		det := train(p, true)
		if d := differing(det, train(p, true)); len(d) > 0 {
			t.Errorf("%v, deterministic: two runs differ in %v", p, d)
		}
		// The two modes' gradients are only logged: their algorithms
		// round differently, and where two inputs of a max-pooling window
		// are within that rounding of each other the gradient goes to a
		// different one (on the H200, 1.1e-2 in conv1's filter gradient);
		// the accuracy gate checks each algorithm itself (pkg/cuda).
		if p == FP32 {
			grads := func(det bool) map[string][]float32 {
				net, err := New(spec, batch, nil, Options{Precision: p, Seed: 7, Mean: mean, Std: std, Deterministic: det})
				if err != nil {
					skipOrFail(t, "GPU net: %v", err)
				}
				defer net.Close()
				if _, _, err := net.trainFloat(CrossCheckInput(spec, batch, 1), CrossCheckBatch(spec, batch, 1).Labels[:batch]); err != nil {
					t.Fatal(err)
				}
				g, err := net.Grads()
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			gd, gf := grads(true), grads(false)
			for _, ps := range spec.Params() {
				e := RelErr(gf[ps.Name], gd[ps.Name])
				t.Logf("fp32: gradient of %s, deterministic vs default mode: %.2e relative", ps.Name, e)
				// The fc layers' gradients come before any pooling's in
				// the backward pass, so no pooling route reaches them
				// (a ReLU of fc6 or fc7 within rounding of zero could; in
				// the H200's cross-checks the fc gradients always agreed
				// to 1e-6).
				if strings.HasPrefix(ps.Name, "fc") && !(e <= TolFP32) {
					t.Errorf("fp32: gradient of %s differs from the default mode's by %.2e", ps.Name, e)
				}
			}
		}
	}
	if d := differing(train(TF32, false), train(TF32, false)); len(d) > 0 {
		t.Logf("tf32, default algorithms: two runs differ in %v (expected possible)", d)
	} else {
		t.Logf("tf32, default algorithms: two runs happened to agree")
	}
}

// TestGPUResumeMatches: a run resumed as train --resume --deterministic
// resumes it (weights, SetMomenta, SetStep) ends bit for bit where the
// uninterrupted run does, on the paper's model in train's default TF32
// (TestGPUDeterministic has shown both precisions repeat bit for bit).
func TestGPUResumeMatches(t *testing.T) {
	needGPU(t)
	spec, err := alexnet.Build("alexnet", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	mean, std := [3]float32{120, 115, 100}, [3]float32{60, 58, 57}
	resumeMatches(t, spec, 16, func(params map[string][]float32) trainer.Backend {
		b, err := NewBackend(spec, 16, params, Options{Precision: TF32, Seed: 7, Mean: mean, Std: std, Deterministic: true})
		if err != nil {
			skipOrFail(t, "GPU backend: %v", err)
		}
		return b
	})
}

// TestGPUUpdateSparesBiases: the update with biases decayed and spared
// (train --bias-decay=false), bit for bit as the CPU's expression, on the
// device.
func TestGPUUpdateSparesBiases(t *testing.T) {
	dev := needGPU(t)
	checkUpdateSparesBiases(t, func(spec alexnet.Spec, batch int, params map[string][]float32, opt Options) (*Net, error) {
		opt.Device = dev
		n, err := New(spec, batch, params, opt)
		if err != nil {
			skipOrFail(t, "GPU net: %v", err)
		}
		return n, err
	})
}

// TestGPUCheckpointAcrossDevices: a model trained on the GPU evaluates
// the same on the CPU from its Tensors, and the reverse.
func TestGPUCheckpointAcrossDevices(t *testing.T) {
	needGPU(t)
	spec, err := alexnet.Build("small", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	const batch = 16
	params, err := alexnet.InitParams(spec, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	mean, std := [3]float32{120, 115, 100}, [3]float32{60, 58, 57}
	gb, err := NewBackend(spec, batch, params, Options{Precision: FP32, Seed: 4, Mean: mean, Std: std})
	if err != nil {
		skipOrFail(t, "GPU backend: %v", err)
	}
	defer gb.Close()
	for i := range 3 {
		loss, _, err := gb.Step(CrossCheckBatch(spec, batch, uint64(i)), 0.01, 0.9, 0.0005)
		if err != nil || math.IsNaN(loss) {
			t.Fatalf("step %d: loss %v, %v", i, loss, err)
		}
	}
	trained := map[string][]float32{}
	gts, err := gb.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range gts {
		trained[tn.Name] = tn.W
	}
	cb, err := trainer.NewCPU(spec, batch, trained, 4, mean, std)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	val := CrossCheckBatch(spec, 2*batch+3, 99)
	for i := range val.Offsets {
		val.Offsets[i] = [3]float32{} // evaluation has no lighting
	}
	gl, err := gb.Logits(val)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := cb.Logits(val)
	if err != nil {
		t.Fatal(err)
	}
	if e := RelErr(gl, cl); e > TolFP32 {
		t.Errorf("GPU-trained weights: GPU and CPU logits differ by %.2e", e)
	}
	// The reverse: CPU-trained weights loaded into a GPU backend.
	for i := range 2 {
		if _, _, err := cb.Step(CrossCheckBatch(spec, batch, uint64(10+i)), 0.01, 0.9, 0.0005); err != nil {
			t.Fatal(err)
		}
	}
	cpuTrained := map[string][]float32{}
	cts, err := cb.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range cts {
		cpuTrained[tn.Name] = tn.W
	}
	gb2, err := NewBackend(spec, batch, cpuTrained, Options{Precision: FP32, Seed: 4, Mean: mean, Std: std})
	if err != nil {
		t.Fatal(err)
	}
	defer gb2.Close()
	gl2, _ := gb2.Logits(val)
	cl2, _ := cb.Logits(val)
	if e := RelErr(gl2, cl2); e > TolFP32 {
		t.Errorf("CPU-trained weights: GPU and CPU logits differ by %.2e", e)
	}
}

// writeTestShards writes n synthetic w×w images in 4 train shards.
func writeTestShards(t testing.TB, dir string, n, w, classes int) {
	t.Helper()
	enc, err := shards.NewEncoder(shards.CodecGradZstd)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	m := &shards.Meta{FormatVersion: shards.Version, Width: w, Height: w, Channels: 3, Splits: map[string]shards.Split{},
		Stats: &shards.Stats{Pixels: 1, Mean: [3]float64{120, 115, 100}, Std: [3]float64{60, 58, 57},
			PCAEigval: [3]float64{14830, 1376, 389},
			PCAEigvec: [3][3]float64{{-0.5675, 0.7192, 0.4009}, {-0.5808, -0.0045, -0.8140}, {-0.5836, -0.6948, 0.4203}}}}
	for c := range classes {
		m.Classes = append(m.Classes, shards.Class{Index: c, WNID: fmt.Sprintf("n%08d", c)})
	}
	split := shards.Split{Records: n}
	id := uint64(0)
	for s := range 4 {
		sw, err := shards.Create(filepath.Join(dir, shards.ShardName("train", s)))
		if err != nil {
			t.Fatal(err)
		}
		for ; id < uint64((s+1)*n/4); id++ {
			rng := rand.New(rand.NewPCG(id, 1))
			px := make([]byte, w*w*3)
			for i := range px {
				px[i] = byte(i/3 + rng.IntN(64))
			}
			payload, err := enc.Encode(nil, px, w, w)
			if err != nil {
				t.Fatal(err)
			}
			rec := shards.Record{ID: id, Label: int32(id % uint64(classes)), Name: fmt.Sprintf("%d.JPEG", id),
				Codec: shards.CodecGradZstd, W: w, H: w, Channels: 3, Payload: payload}
			if err := sw.Append(&rec); err != nil {
				t.Fatal(err)
			}
		}
		info, err := sw.Close()
		if err != nil {
			t.Fatal(err)
		}
		split.Shards = append(split.Shards, info)
	}
	m.Splits["train"] = split
	if err := shards.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
}

// TestGPUFeed trains through pkg/feed from the real pipeline: pinned
// slots, the copy stream, events. It checks the batches arrive in order,
// the loss stays finite, and the device clock saw the copy of batch n+1
// start before step n ended.
func TestGPUFeed(t *testing.T) {
	dev := needGPU(t)
	dir := t.TempDir()
	const side, crop, batch, classes = 72, 64, 32, 10
	writeTestShards(t, dir, 640, side, classes)
	spec, err := alexnet.Build("small", classes, crop)
	if err != nil {
		t.Fatal(err)
	}
	net, err := New(spec, batch, nil, Options{Seed: 1, Mean: [3]float32{120, 115, 100}, Std: [3]float32{60, 58, 57}, Device: dev})
	if err != nil {
		skipOrFail(t, "GPU net: %v", err)
	}
	defer net.Close()
	layout := net.InputLayout()
	slots, freeSlots, err := feed.PinnedSlots(dev, 4, layout)
	if err != nil {
		t.Fatal(err)
	}
	defer freeSlots()
	pl, err := pipeline.New(context.Background(), dir, pipeline.Options{Mode: pipeline.Train, Batch: batch, Crop: crop, Seed: 1, Epochs: 3, Slots: slots})
	if err != nil {
		t.Fatal(err)
	}
	defer pl.Close()
	fd, err := feed.NewCUDADevice(dev, net.Stream(), layout, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	var log strings.Builder
	f, err := feed.New(pl, fd, feed.Options{Log: &log, LogEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	// On a t.Fatal the copier must stop before fd's buffers go (deferred
	// calls run last first), or it panics and takes the binary's other
	// GPU tests with it. Close is idempotent.
	defer f.Close()
	steps, want := 0, 3*pl.BatchesPerEpoch()
	var pos pipeline.Position
	for {
		b, p, err := net.StepFeed(f, 0.01, 0.9, 0.0005)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if steps > 0 && b.Pos != (pipeline.Position{Epoch: pos.Epoch, Batch: pos.Batch + 1}) && b.Pos != (pipeline.Position{Epoch: pos.Epoch + 1}) {
			t.Fatalf("batch at %v after %v", b.Pos, pos)
		}
		pos = b.Pos
		loss, _, err := p.Wait()
		if err != nil || math.IsNaN(loss) || math.IsInf(loss, 0) {
			t.Fatalf("step %d: loss %v, %v", steps, loss, err)
		}
		steps++
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if steps != want {
		t.Errorf("%d steps, want %d", steps, want)
	}
	st := f.Stats()
	t.Logf("%d steps; data wait %.2f%% (max %.1f%%), copy overlapped the previous step %d times, host wait %v\n%s",
		steps, 100*st.WaitFraction(), 100*st.MaxWait, st.Overlap, st.HostWait, log.String())
	if st.Overlap == 0 {
		t.Error("no copy ever started before the previous step ended")
	}
}

// BenchmarkGPUStep times one training step of alexnet-owt at batch 128
// on data already on the device (what gpucheck's bench measures in full).
func BenchmarkGPUStep(b *testing.B) {
	dev := needGPU(b)
	spec, err := alexnet.Build("alexnet-owt", 1000, 0)
	if err != nil {
		b.Fatal(err)
	}
	net, err := New(spec, 128, nil, Options{Seed: 1, Mean: [3]float32{120, 115, 100}, Std: [3]float32{60, 58, 57}, Device: dev})
	if err != nil {
		skipOrFail(b, "GPU net: %v", err)
	}
	defer net.Close()
	db, err := net.Stage(CrossCheckBatch(spec, 128, 1))
	if err != nil {
		b.Fatal(err)
	}
	step := func() *Pending {
		if err := net.Load(db); err != nil {
			b.Fatal(err)
		}
		p, err := net.StepLoaded(0.01, 0.9, 0.0005)
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	for range 5 {
		step().Wait()
	}
	b.ResetTimer()
	t0 := time.Now()
	var p *Pending
	for range b.N {
		p = step()
	}
	if _, _, err := p.Wait(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(128*b.N)/time.Since(t0).Seconds(), "img/s")
}

// TestGPUProfile runs Net.Profile on the device: events on the compute
// stream, one part per layer and pass in queue order, and real steps.
func TestGPUProfile(t *testing.T) {
	dev := needGPU(t)
	spec := miniAlexNet(5)
	params, err := alexnet.InitParams(spec, "he", 3)
	if err != nil {
		t.Fatal(err)
	}
	net, err := New(spec, 4, params, Options{Precision: FP32, Seed: 5, Mean: testMean, Std: testStd, Device: dev})
	if err != nil {
		skipOrFail(t, "GPU net: %v", err)
	}
	defer net.Close()
	db, err := net.Stage(testSlot(spec, 4, 9))
	if err != nil {
		t.Fatal(err)
	}
	parts, err := net.Profile(db, 3, 0.05, 0.9, 5e-4)
	if err != nil {
		t.Fatal(err)
	}
	checkParts(t, parts)
	if net.Step() != 3 {
		t.Errorf("Step() = %d after 3 profiled steps", net.Step())
	}
}
