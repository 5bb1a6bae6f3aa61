package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/dirlock"
	"github.com/alexnet-repro/alexnet/internal/testdata"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/fashionmnist"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/pkg/stats"
	"github.com/alexnet-repro/alexnet/shards"
)

// writeShards writes images (side×side RGB, labels) straight into a shard
// directory with meta.json and statistics, skipping JPEG: the trainer's
// tests are about training, not ingest.
func writeShards(t testing.TB, dir string, side int, train, val [][]byte, trainLabels, valLabels []int32, classes int) {
	t.Helper()
	enc, _ := shards.NewEncoder(shards.CodecGradZstd)
	defer enc.Close()
	meta := &shards.Meta{FormatVersion: shards.Version, Width: side, Height: side, Channels: 3, Splits: map[string]shards.Split{}}
	for c := 0; c < classes; c++ {
		meta.Classes = append(meta.Classes, shards.Class{Index: c, WNID: "n" + strings.Repeat("0", 7) + string(rune('0'+c)), Name: "class"})
	}
	var acc stats.Accumulator
	for _, sp := range []struct {
		name   string
		ims    [][]byte
		labels []int32
	}{{"train", train, trainLabels}, {"val", val, valLabels}} {
		split := shards.Split{}
		const per = 500
		for s := 0; s*per < len(sp.ims); s++ {
			w, err := shards.Create(filepath.Join(dir, shards.ShardName(sp.name, s)))
			if err != nil {
				t.Fatal(err)
			}
			for i := s * per; i < min(len(sp.ims), (s+1)*per); i++ {
				payload, _ := enc.Encode(nil, sp.ims[i], side, side)
				w.Append(&shards.Record{ID: uint64(i), Label: sp.labels[i], Name: "x", Codec: shards.CodecGradZstd, W: side, H: side, Channels: 3, Payload: payload})
				if sp.name == "train" {
					acc.Add(sp.ims[i])
				}
			}
			info, err := w.Close()
			if err != nil {
				t.Fatal(err)
			}
			split.Shards = append(split.Shards, info)
			split.Records += info.Records
		}
		meta.Splits[sp.name] = split
	}
	st, err := acc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	meta.Stats = &shards.Stats{Pixels: st.Pixels, Mean: st.Mean, Std: st.Std, Cov: st.Cov, PCAEigval: st.EigVal, PCAEigvec: st.EigVec}
	if err := shards.WriteMeta(dir, meta); err != nil {
		t.Fatal(err)
	}
}

// synthetic makes n side×side images of 4 classes: a bright square in one
// of four quadrants, on noise.
func synthetic(n, side int, seed uint64) ([][]byte, []int32) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var ims [][]byte
	var labels []int32
	for i := 0; i < n; i++ {
		c := i % 4
		im := make([]byte, side*side*3)
		for j := range im {
			im[j] = byte(rng.IntN(80))
		}
		x0, y0 := (c%2)*side/2, (c/2)*side/2
		for y := y0; y < y0+side/2; y++ {
			for x := x0; x < x0+side/2; x++ {
				im[(y*side+x)*3+c%3] = 250
			}
		}
		ims = append(ims, im)
		labels = append(labels, int32(c))
	}
	return ims, labels
}

// syntheticShards writes train and val synthetic 24-px images of 4
// classes into a temporary directory and returns it.
func syntheticShards(t *testing.T, train, val int) string {
	return syntheticShardsOfSide(t, train, val, 24)
}

// syntheticShardsOfSide is syntheticShards with side-px images.
func syntheticShardsOfSide(t *testing.T, train, val, side int) string {
	dir := t.TempDir()
	tr, tl := synthetic(train, side, 1)
	va, vl := synthetic(val, side, 2)
	writeShards(t, dir, side, tr, va, tl, vl, 4)
	return dir
}

// mustTrain runs cfg to its end, quietly, failing the test on an error.
func mustTrain(t *testing.T, cfg Config) {
	t.Helper()
	if _, err := Train(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
}

func smallConfig(shardDir, out string) Config {
	return Config{Shards: shardDir, Model: "small", Epochs: 2, Batch: 16, Crop: 20, LR: 0.01, Momentum: 0.9, WeightDecay: 5e-4,
		Schedule: "plateau", Patience: 1, Out: out, Seed: 5, LogEvery: 5, EvalBatch: 16, Workers: 2}
}

// --bias-decay=false (NoBiasDecay) spares the biases, and only them,
// weight decay; the checkpoint keeps it, a resume continues with it
// whatever the flag says (naming the flag), and the stopped and resumed
// run ends byte-identical to the uninterrupted one. Its resume_needs name
// it, so that a build that would decay the biases refuses the resume.
func TestNoBiasDecay(t *testing.T) {
	shardDir := syntheticShards(t, 160, 40)
	decayed := t.TempDir()
	cfg := smallConfig(shardDir, decayed)
	cfg.WeightDecay, cfg.Epochs = 0.05, 1 // strong, so that the two runs part at once
	mustTrain(t, cfg)
	full := t.TempDir()
	cfg.Out, cfg.NoBiasDecay = full, true
	mustTrain(t, cfg)
	ckD, err := Load(filepath.Join(decayed, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	ckF, err := Load(filepath.Join(full, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	if ckD.Hyper.NoBiasDecay || !ckF.Hyper.NoBiasDecay || !slices.Contains(ckF.ResumeNeeds, "no_bias_decay") || slices.Contains(ckD.ResumeNeeds, "no_bias_decay") {
		t.Fatalf("hyper %+v / %+v, resume needs %q / %q", ckD.Hyper, ckF.Hyper, ckD.ResumeNeeds, ckF.ResumeNeeds)
	}
	// (Which tensors decay reaches is the nets' own tests' matter.)
	if slices.EqualFunc(ckD.Tensors, ckF.Tensors, func(a, b Tensor) bool { return slices.Equal(a.W, b.W) }) {
		t.Fatal("sparing the biases weight decay changed nothing")
	}
	part := t.TempDir()
	cfg.Out, cfg.MaxSteps = part, 7
	if _, err := Train(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	cfg.MaxSteps, cfg.Resume, cfg.NoBiasDecay = 0, true, false
	var log bytes.Buffer
	if _, err := Train(context.Background(), cfg, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "--resume continues with the checkpoint's --bias-decay=false, not true") {
		t.Errorf("log lacks the note:\n%s", log.String())
	}
	a, _ := os.ReadFile(filepath.Join(full, CheckpointFile))
	b, _ := os.ReadFile(filepath.Join(part, CheckpointFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("resumed run's final checkpoint differs from the uninterrupted run's")
	}
	// At weight decay 0 there is nothing to spare: said, and no need named.
	cfg = smallConfig(shardDir, t.TempDir())
	cfg.WeightDecay, cfg.NoBiasDecay, cfg.MaxSteps = 0, true, 1
	log.Reset()
	if _, err := Train(context.Background(), cfg, &log); err != nil || !strings.Contains(log.String(), "--bias-decay=false changes nothing at --weight-decay 0") {
		t.Errorf("%v:\n%s", err, log.String())
	}
	zero := Checkpoint{Hyper: &Hyper{NoBiasDecay: true}}
	if _, resume := zero.needs(); slices.Contains(resume, "no_bias_decay") {
		t.Error("no_bias_decay needed at weight decay 0")
	}
	// A build that does not know the need refuses to resume the run.
	delete(knownResumeNeeds, "no_bias_decay")
	defer func() { knownResumeNeeds["no_bias_decay"] = true }()
	if err := ckF.CheckNeeds(true); !errors.Is(err, ErrNewerCheckpoint) {
		t.Errorf("a build without no_bias_decay resuming: %v", err)
	}
	if err := ckF.CheckNeeds(false); err != nil {
		t.Errorf("a build without no_bias_decay reading the weights: %v", err)
	}
}

// --dropout paper (PaperDropout): the checkpoint keeps it and names it in
// its needs, evaluation multiplies by 1−p as training's validation did (the
// same error and loss), a resume with the other form is refused, and a
// stopped and resumed run ends byte-identical to an uninterrupted one.
func TestPaperDropout(t *testing.T) {
	shardDir := syntheticShards(t, 160, 40)
	full := t.TempDir()
	cfg := smallConfig(shardDir, full)
	cfg.Model, cfg.Epochs, cfg.PaperDropout = "small-fc", 1, true
	res, err := Train(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ckPath := filepath.Join(full, CheckpointFile)
	ck, err := Load(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	if !ck.PaperDropout || !slices.Contains(ck.Needs, "paper_dropout") {
		t.Fatalf("paper dropout %v, needs %q", ck.PaperDropout, ck.Needs)
	}
	ev, _, err := EvaluateCheckpoint(context.Background(), ckPath, shardDir, false, 16, 0, 0, nil)
	if err != nil || ev.Top1Err != res.Top1Err || ev.Top5Err != res.Top5Err {
		t.Fatalf("evaluation: %+v (%v); the run's validation: %+v", ev, err, res)
	}
	// The same weights evaluated as inverted dropout (no ×0.5) score
	// another loss: the form is the checkpoint's to keep.
	var val float64
	mb, err := os.ReadFile(filepath.Join(full, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(mb)), "\n") {
		var l struct {
			Kind    string  `json:"kind"`
			ValLoss float64 `json:"val_loss"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		if l.Kind == "epoch" {
			val = l.ValLoss
		}
	}
	inverted := *ck
	inverted.PaperDropout = false
	be, err := BackendFromCheckpoint(&inverted, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	paper, err := BackendFromCheckpoint(ck, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	if val == 0 || ev.Loss != val {
		t.Errorf("evaluation loss %v, the run's last val_loss %v", ev.Loss, val)
	}
	slot := pipeline.NewSlot(16, 1, ck.InputHW)
	slot.N, slot.Crop, slot.Views = 16, ck.InputHW, 1
	for i := range slot.Pixels {
		slot.Pixels[i] = uint8(i * 7 % 251)
	}
	a, errA := be.Logits(slot)
	b, errB := paper.Logits(slot)
	if errA != nil || errB != nil || slices.Equal(a, b) {
		t.Errorf("logits with and without the ×(1−p) agree (%v, %v)", errA, errB)
	}
	be.Close()
	paper.Close()

	part := t.TempDir()
	cfg.Out, cfg.MaxSteps = part, 4
	if _, err := Train(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	cfg.MaxSteps, cfg.Resume, cfg.PaperDropout = 0, true, false
	if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, ErrResumeMismatch) || !strings.Contains(err.Error(), "--dropout paper, not inverted") {
		t.Fatalf("resume with the other form: %v", err)
	}
	cfg.PaperDropout = true
	if _, err := Train(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(ckPath)
	y, _ := os.ReadFile(filepath.Join(part, CheckpointFile))
	if len(x) == 0 || !bytes.Equal(x, y) {
		t.Fatal("resumed run's final checkpoint differs from the uninterrupted run's")
	}
	// On a model without dropout the form changes nothing: said, and the
	// checkpoint is the inverted run's, which any build reads.
	noDrop := t.TempDir()
	cfg = smallConfig(shardDir, noDrop)
	cfg.Epochs, cfg.MaxSteps, cfg.PaperDropout = 1, 2, true
	var log bytes.Buffer
	if _, err := Train(context.Background(), cfg, &log); err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join(noDrop, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.PaperDropout || len(c.Needs) > 0 || !strings.Contains(log.String(), "--dropout paper changes nothing: small has no dropout layer") {
		t.Errorf("small with --dropout paper: needs %q, log:\n%s", c.Needs, log.String())
	}
	// One that says the paper's form all the same (as builds of a day
	// wrote them) resumes under either form: the model has no use for it.
	c.PaperDropout = true
	if c.Dropout() != "inverted" || ck.Dropout() != "paper" {
		t.Errorf("forms: small saying paper %s, small-fc's %s", c.Dropout(), ck.Dropout())
	}
	if err := c.Save(filepath.Join(noDrop, CheckpointFile)); err != nil {
		t.Fatal(err)
	}
	for i, paper := range []bool{false, true} {
		cfg.Resume, cfg.MaxSteps, cfg.PaperDropout = true, int64(3+i), paper
		if _, err := Train(context.Background(), cfg, io.Discard); err != nil {
			t.Errorf("resuming small with --dropout %s: %v", DropoutForm(paper), err)
		}
	}
	// A build that does not know the need refuses the checkpoint.
	delete(knownNeeds, "paper_dropout")
	defer func() { knownNeeds["paper_dropout"] = true }()
	if err := ck.CheckNeeds(false); !errors.Is(err, ErrNewerCheckpoint) {
		t.Errorf("a build without paper_dropout reading it: %v", err)
	}
}

// A run stopped part-way (--max-steps) and continued with --resume ends
// with a checkpoint byte-identical to an uninterrupted run's, even when the
// resume's momentum, weight decay and lighting flags differ: the run keeps
// its own, and the log names each ignored flag.
func TestResumeIsByteIdentical(t *testing.T) {
	shardDir := syntheticShards(t, 160, 40)

	full := t.TempDir()
	mustTrain(t, smallConfig(shardDir, full))
	part := t.TempDir()
	cfg := smallConfig(shardDir, part)
	cfg.MaxSteps = 7 // mid-way through the first epoch of 10 batches
	res, err := Train(context.Background(), cfg, io.Discard)
	// Stopped before the first epoch ended: no validation figures to report.
	if err != nil || res.Stopped != "max-steps" || res.Steps != 7 || res.Evaluated {
		t.Fatalf("first leg: %+v %v", res, err)
	}
	firstLeg := priorSeconds(readMetrics(part, res.Steps), part, res.Steps) // the clock of its last metrics line
	cfg.MaxSteps, cfg.Resume = 0, true
	cfg.Momentum, cfg.WeightDecay, cfg.Sigma = 0.5, 0, -1
	var log bytes.Buffer
	res2, err := Train(context.Background(), cfg, &log)
	if err != nil {
		t.Fatal(err)
	}
	// The run's time counts the first leg's on top of the second's; a
	// resume with nothing left to do still reports the whole run's.
	if firstLeg <= 0 || res2.RunSeconds < res2.Seconds+firstLeg || res2.RunSeconds < priorSeconds(readMetrics(part, res2.Steps), part, res2.Steps) {
		t.Errorf("resumed run: %gs this leg, %gs in all; the first leg's metrics reached %gs", res2.Seconds, res2.RunSeconds, firstLeg)
	}
	if res3, err := Train(context.Background(), cfg, io.Discard); err != nil || res3.Steps != res2.Steps || res3.RunSeconds < priorSeconds(readMetrics(part, res2.Steps), part, res2.Steps) {
		t.Errorf("a resume with nothing to do: %+v, %v", res3, err)
	}
	for _, want := range []string{"resuming", "--resume continues with the checkpoint's --momentum 0.9, not 0.5",
		"the checkpoint's --weight-decay 0.0005, not 0", "--resume continues with the checkpoint's --lighting 0.1, not 0"} {
		if !strings.Contains(log.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, log.String())
		}
	}
	a, _ := os.ReadFile(filepath.Join(full, CheckpointFile))
	b, _ := os.ReadFile(filepath.Join(part, CheckpointFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("resumed run's final checkpoint differs from the uninterrupted run's")
	}
	// The metrics log reads as one run: no step logged twice.
	ma, _ := os.ReadFile(filepath.Join(full, "metrics.jsonl"))
	mb, _ := os.ReadFile(filepath.Join(part, "metrics.jsonl"))
	if strings.Count(string(ma), "\n") != strings.Count(string(mb), "\n") {
		t.Fatalf("metrics: %d lines vs %d", strings.Count(string(ma), "\n"), strings.Count(string(mb), "\n"))
	}
	// And the same figures, line by line, but for the timings.
	la, lb := strings.Split(strings.TrimSpace(string(ma)), "\n"), strings.Split(strings.TrimSpace(string(mb)), "\n")
	for i := range la {
		var x, y map[string]any
		if err := json.Unmarshal([]byte(la[i]), &x); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(lb[i]), &y); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"seconds", "img_per_s", "data_wait"} {
			delete(x, k)
			delete(y, k)
		}
		if fmt.Sprint(x) != fmt.Sprint(y) {
			t.Fatalf("metrics line %d differs after resume:\n%s\n%s", i+1, la[i], lb[i])
		}
	}
	for _, f := range []string{"loss.png", "error.png", "conv1-filters.png"} {
		if _, err := os.Stat(filepath.Join(part, f)); err != nil {
			t.Error(err)
		}
	}
	// And the checkpoint evaluates on its own, centre and ten crops.
	for _, ten := range []bool{false, true} {
		r, _, err := EvaluateCheckpoint(context.Background(), filepath.Join(part, CheckpointFile), shardDir, ten, 8, 0, 0, nil)
		if err != nil || r.Images != 40 {
			t.Fatalf("eval ten=%v: %+v %v", ten, r, err)
		}
	}
}

// NaN in the loss stops the run naming the step, and leaves the last good
// checkpoint as it was: in the synchronous loop, and in the streamed one
// (lagBackend), which has already queued the step after the bad one.
func TestNonFiniteLossStops(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend func(t *testing.T) BackendFactory
	}{
		{"sync", func(*testing.T) BackendFactory { return nil }},
		{"streamed", func(t *testing.T) BackendFactory { return lagFactory(t, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) { testNonFiniteLossStops(t, tc.backend(t)) })
	}
}

// A fresh run that blows up before its first checkpoint names no "last
// good checkpoint": there is none to resume from.
func TestNonFiniteBeforeFirstCheckpoint(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.LR = 1e30
	_, err := Train(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not finite") {
		t.Fatalf("want a non-finite error, got %v", err)
	}
	if _, serr := os.Stat(filepath.Join(out, CheckpointFile)); serr == nil {
		t.Fatal("a checkpoint was written")
	}
	if strings.Contains(err.Error(), "last good checkpoint") || !strings.Contains(err.Error(), "no checkpoint yet") {
		t.Fatalf("the error names a checkpoint that does not exist: %v", err)
	}
	// A run is deterministic: the same command would diverge again.
	if !strings.Contains(err.Error(), "lower --lr") || strings.Contains(err.Error(), "the same command again") {
		t.Fatalf("the error does not say to change the learning rate: %v", err)
	}
}

func testNonFiniteLossStops(t *testing.T, backend BackendFactory) {
	shardDir := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.Epochs = 1
	cfg.NewBackend = backend
	mustTrain(t, cfg)
	// Resume with the checkpoint's learning rate (it carries the
	// schedule) blown up, so the next steps overflow.
	ck, err := Load(filepath.Join(out, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	ck.Schedule.LR = 1e30
	if err := ck.Save(filepath.Join(out, CheckpointFile)); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(out, CheckpointFile))
	cfg.Resume, cfg.Epochs = true, 3
	_, err = Train(context.Background(), cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not finite") || !strings.Contains(err.Error(), "step ") {
		t.Fatalf("want a non-finite loss error naming the step, got %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(out, CheckpointFile))
	if !bytes.Equal(good, after) {
		t.Fatal("the last good checkpoint was overwritten")
	}
	// Checkpointing every step, whatever is on disk afterwards holds only
	// finite numbers.
	cfg.CkptEvery = 1
	if _, err := Train(context.Background(), cfg, io.Discard); err == nil {
		t.Fatal("blown-up run did not fail")
	}
	last, err := Load(filepath.Join(out, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range last.Tensors {
		for _, v := range tn.W {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("checkpoint holds %v in %s", v, tn.Name)
			}
		}
	}
}

// The small model learns real data: a few hundred seeded steps on a
// Fashion-MNIST subset take the loss well below chance (ln 10 = 2.30) and
// the accuracy well above 10%.
func TestSmallModelLearnsFashionMNIST(t *testing.T) {
	dir := testdata.FashionMNIST(t)
	trainSet, err := fashionmnist.Load(dir, "train")
	if err != nil {
		t.Fatal(err)
	}
	testSet, err := fashionmnist.Load(dir, "t10k")
	if err != nil {
		t.Fatal(err)
	}
	rgb := func(s *fashionmnist.Set, n int) ([][]byte, []int32) {
		var ims [][]byte
		var ls []int32
		for i := 0; i < n; i++ {
			g := s.Image(i)
			im := make([]byte, 3*len(g))
			for j, v := range g {
				im[3*j], im[3*j+1], im[3*j+2] = v, v, v
			}
			ims = append(ims, im)
			ls = append(ls, int32(s.Labels[i]))
		}
		return ims, ls
	}
	tr, tl := rgb(trainSet, 4000)
	va, vl := rgb(testSet, 1000)
	shardDir := t.TempDir()
	writeShards(t, shardDir, 28, tr, va, tl, vl, 10)
	cfg := Config{Shards: shardDir, Model: "small", Epochs: 2, Batch: 32, Crop: 24, LR: 0.01, Momentum: 0.9, WeightDecay: 5e-4,
		Schedule: "plateau", Patience: 2, Out: t.TempDir(), Seed: 1, LogEvery: 25, EvalBatch: 100, Workers: 2}
	var log bytes.Buffer
	res, err := Train(context.Background(), cfg, &log)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := os.ReadFile(filepath.Join(cfg.Out, "metrics.jsonl"))
	lines := strings.Split(strings.TrimSpace(string(ms)), "\n")
	var last Metric
	for _, l := range lines {
		var m Metric
		if jsonUnmarshal([]byte(l), &m) == nil && m.Kind == "step" {
			last = m
		}
	}
	t.Logf("%d steps: last logged train loss %.3f, val top-1 error %.1f%%\n%s", res.Steps, last.Loss, 100*res.Top1Err, log.String())
	if last.Loss > 0.5*math.Log(10) {
		t.Errorf("train loss %.3f did not fall well below chance (%.3f)", last.Loss, math.Log(10))
	}
	if !res.Evaluated {
		t.Fatal("no validation pass reported")
	}
	if acc := 1 - res.Top1Err; acc < 0.6 {
		t.Errorf("val accuracy %.1f%%, want well above chance (10%%)", 100*acc)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// A new run where a run already is must be asked for (--overwrite), and a
// resume must continue the same run: same batch, same classes.
func TestRunDirectoryGuards(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps, cfg.Init = 2, "he"
	mustTrain(t, cfg)
	// Stopped by --max-steps inside the first epoch, it still leaves plots.
	if _, err := os.Stat(filepath.Join(out, "conv1-filters.png")); err != nil {
		t.Errorf("a run stopped at --max-steps left no plots: %v", err)
	}
	before, _ := os.ReadFile(filepath.Join(out, CheckpointFile))
	// While another run holds the folder, not even a resume may start.
	held, err := dirlock.Acquire(out, "train")
	if err != nil {
		t.Fatal(err)
	}
	busy := cfg
	busy.Resume = true
	if _, err := Train(context.Background(), busy, io.Discard); !errors.Is(err, dirlock.ErrBusy) || !strings.Contains(err.Error(), out) {
		t.Fatalf("a resume while another run holds %s: %v", out, err)
	}
	held.Release()
	if after, _ := os.ReadFile(filepath.Join(out, CheckpointFile)); !bytes.Equal(before, after) {
		t.Fatal("the refused run touched the checkpoint")
	}
	if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, ErrRunExists) || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("a second run into the same --out: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, CheckpointFile)); !bytes.Equal(before, after) {
		t.Fatal("the refused run touched the checkpoint")
	}
	ck, err := Load(filepath.Join(out, CheckpointFile))
	if err != nil || ck.Batch != cfg.Batch || ck.ClassList == "" {
		t.Fatalf("checkpoint keeps batch %d and class list %q: %v", ck.Batch, ck.ClassList, err)
	}
	// The run folder stands for its checkpoint (--eval-only, predict).
	if byDir, err := Load(out); err != nil || !reflect.DeepEqual(byDir, ck) {
		t.Fatalf("Load of the run folder: %v", err)
	}

	// Shards of another image size are another scale: a resume is
	// refused, an evaluation says so.
	bigger := t.TempDir()
	tr32, tl32 := synthetic(64, 32, 1)
	va32, vl32 := synthetic(16, 32, 2)
	writeShards(t, bigger, 32, tr32, va32, tl32, vl32, 4)
	scaled := cfg
	scaled.Shards, scaled.Resume, scaled.MaxSteps = bigger, true, 4
	if _, err := Train(context.Background(), scaled, io.Discard); !errors.Is(err, ErrResumeMismatch) || !strings.Contains(err.Error(), "24-px images") {
		t.Fatalf("resume on shards of another size: %v", err)
	}
	r, _, err := EvaluateCheckpoint(context.Background(), filepath.Join(out, CheckpointFile), bigger, false, 16, 0, 0, nil)
	// Objects fill 32/24 as many pixels as in training.
	if err != nil || !strings.Contains(r.Note, "1.33×") {
		t.Fatalf("evaluating on 32-px shards: note %q, %v", r.Note, err)
	}
	if r, _, err := EvaluateCheckpoint(context.Background(), filepath.Join(out, CheckpointFile), bigger, false, 16, 5, 0, nil); err != nil || r.Images != 5 {
		t.Fatalf("evaluating at most 5 images: %d, %v", r.Images, err)
	}
	// A val split labelled in part: the rest is counted, not scored.
	partial := t.TempDir()
	trP, tlP := synthetic(64, 24, 1)
	vaP, vlP := synthetic(16, 24, 2)
	for i := range 4 {
		vlP[i] = -1
	}
	writeShards(t, partial, 24, trP, vaP, tlP, vlP, 4)
	if r, _, err := EvaluateCheckpoint(context.Background(), filepath.Join(out, CheckpointFile), partial, false, 16, 0, 0, nil); err != nil || r.Images != 12 || r.Unlabelled != 4 {
		t.Fatalf("a val split with 4 of 16 unlabelled: scored %d, unlabelled %d, %v", r.Images, r.Unlabelled, err)
	}
	// Training's epoch line says so too.
	onPartial := smallConfig(partial, t.TempDir())
	onPartial.Epochs = 1
	var plog strings.Builder
	if _, err := Train(context.Background(), onPartial, &plog); err != nil || !strings.Contains(plog.String(), "(12 images; 4 without a label, not scored)") {
		t.Fatalf("training on a val split with 4 of 16 unlabelled: %v\n%s", err, plog.String())
	}
	// Images smaller than the model's crop: said plainly, before any batch.
	smaller := t.TempDir()
	tr16, tl16 := synthetic(64, 16, 1)
	va16, vl16 := synthetic(16, 16, 2)
	writeShards(t, smaller, 16, tr16, va16, tl16, vl16, 4)
	// A mistake in the command, as the same mismatch is when training
	// (ErrConfig: train exits 2 for both).
	if _, _, err := EvaluateCheckpoint(context.Background(), filepath.Join(out, CheckpointFile), smaller, false, 16, 0, 0, nil); !errors.Is(err, ErrConfig) ||
		!strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), "--size 24") {
		t.Fatalf("evaluating on 16-px shards: %v", err)
	}
	if r, _, err := EvaluateCheckpoint(context.Background(), filepath.Join(out, CheckpointFile), shardDir, false, 16, 0, 0, nil); err != nil || r.Note != "" {
		t.Fatalf("evaluating on its own shards: note %q, %v", r.Note, err)
	}

	res := cfg
	res.Resume, res.MaxSteps, res.Batch = true, 4, 8
	if _, err := Train(context.Background(), res, io.Discard); !errors.Is(err, ErrResumeMismatch) || !strings.Contains(err.Error(), "--batch 16") {
		t.Fatalf("resume with another batch: %v", err)
	}
	// Another model is named as such, even where that model would not fit
	// the shards: the run's flags are judged before the shards are.
	res = cfg
	res.Resume, res.MaxSteps, res.Model = true, 4, "alexnet"
	if _, err := Train(context.Background(), res, io.Discard); !errors.Is(err, ErrResumeMismatch) || !strings.Contains(err.Error(), "is a run with --model "+cfg.Model+", not alexnet") {
		t.Fatalf("resume with another model: %v", err)
	}
	// The same shards under another class list (sorted, as ingest writes
	// it; one WNID differs) mean other outputs: refused too. A list out of
	// order is refused by shards.ParseMeta itself.
	other := syntheticShards(t, 64, 16)
	meta, err := shards.ReadMeta(other)
	if err != nil {
		t.Fatal(err)
	}
	meta.Classes[0].WNID = "a" + meta.Classes[0].WNID
	if err := shards.WriteMeta(other, meta); err != nil {
		t.Fatal(err)
	}
	res = cfg
	res.Resume, res.MaxSteps, res.Shards = true, 4, other
	if _, err := Train(context.Background(), res, io.Discard); !errors.Is(err, ErrResumeMismatch) || !strings.Contains(err.Error(), "class list") {
		t.Fatalf("resume on another class list: %v", err)
	}

	res = cfg
	res.Resume, res.MaxSteps, res.Init = true, 4, "" // --init is the run's own on resume
	if r, err := Train(context.Background(), res, io.Discard); err != nil || r.Steps != 4 {
		t.Fatalf("a matching resume: %+v %v", r, err)
	}
	if ck, err := Load(filepath.Join(out, CheckpointFile)); err != nil || ck.Init != "he" {
		t.Fatalf("the resumed checkpoint says init %q: %v", ck.Init, err)
	}
	// An --overwrite run that cannot start (a crop larger than the
	// shards' images, a batch larger than the split) leaves the old run
	// as it was.
	kept, _ := os.ReadFile(filepath.Join(out, CheckpointFile))
	for _, bad := range []func(*Config){func(c *Config) { c.Crop = 40 }, func(c *Config) { c.Batch = 1000 }} {
		c := cfg
		c.Overwrite = true
		bad(&c)
		if _, err := Train(context.Background(), c, io.Discard); !errors.Is(err, ErrConfig) {
			t.Fatalf("an impossible --overwrite run: %v", err)
		}
		if after, _ := os.ReadFile(filepath.Join(out, CheckpointFile)); len(kept) == 0 || !bytes.Equal(kept, after) {
			t.Fatal("an --overwrite run that could not start removed the old checkpoint")
		}
		if b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl")); len(b) == 0 {
			t.Fatal("an --overwrite run that could not start emptied metrics.jsonl")
		}
	}
	// An --overwrite run stopped before its first checkpoint leaves no
	// old checkpoint for a later --resume to take for its own.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	stopped := cfg
	stopped.Overwrite = true
	if _, err := Train(ctx, stopped, io.Discard); err == nil {
		t.Fatal("a cancelled run succeeded")
	}
	if _, err := os.Stat(filepath.Join(out, CheckpointFile)); !os.IsNotExist(err) {
		t.Fatalf("the old checkpoint outlived --overwrite: %v", err)
	}
	fresh := cfg
	fresh.Overwrite = true
	if r, err := Train(context.Background(), fresh, io.Discard); err != nil || r.Steps != 2 {
		t.Fatalf("--overwrite: %+v %v", r, err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, CheckpointFile)); !bytes.Equal(before, after) {
		t.Fatal("an overwritten run's checkpoint differs from the same run's first checkpoint")
	}
}

// Without labelled validation images an epoch reports no validation
// figures (not 0% error), the plots leave them out, and loss.png is drawn
// from the epoch means even when no step line was logged.
func TestNoValidationSplit(t *testing.T) {
	dir := t.TempDir()
	tr, tl := synthetic(64, 24, 1)
	writeShards(t, dir, 24, tr, nil, tl, nil, 4)
	out := t.TempDir()
	cfg := smallConfig(dir, out)
	cfg.LogEvery = 0
	var log bytes.Buffer
	r, err := Train(context.Background(), cfg, &log)
	if err != nil {
		t.Fatal(err)
	}
	if r.Evaluated || r.Unscored {
		t.Errorf("Evaluated %v, Unscored %v without a validation split", r.Evaluated, r.Unscored)
	}
	// A val split without labels is a pass with nothing to score: not
	// Evaluated, but not "no pass" either.
	unl := t.TempDir()
	vi, _ := synthetic(8, 24, 2)
	vl := []int32{-1, -1, -1, -1, -1, -1, -1, -1}
	writeShards(t, unl, 24, tr, vi, tl, vl, 4)
	ucfg := smallConfig(unl, t.TempDir())
	ucfg.LogEvery = 0
	if ur, err := Train(context.Background(), ucfg, io.Discard); err != nil || ur.Evaluated || !ur.Unscored {
		t.Errorf("unlabelled val: %+v, %v; want Unscored, not Evaluated", ur, err)
	}
	for _, want := range []string{"has no validation split: the plateau schedule follows each epoch's training error", "no labelled validation images"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if strings.Contains(log.String(), "val top-1 err") {
		t.Errorf("log reports a validation error:\n%s", log.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var epochs int
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m Metric
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m.Kind == "epoch" {
			epochs++
			if !m.NoVal || !(m.TrainLoss > 0) {
				t.Errorf("epoch record %s: want no_val and a train loss", line)
			}
		}
	}
	if epochs != cfg.Epochs {
		t.Errorf("%d epoch records, want %d", epochs, cfg.Epochs)
	}
	for _, f := range []string{"loss.png", "error.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

// cancelAt is a log that cancels the run's context once a step line for
// step n has been written: Ctrl-C arriving while that step's result is in.
type cancelAt struct {
	prefix string
	cancel context.CancelFunc
	buf    bytes.Buffer
}

func (c *cancelAt) Write(p []byte) (int, error) {
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.prefix) {
		c.cancel()
	}
	return len(p), nil
}

// Ctrl-C between checkpoints saves the state after the last finished
// step, and --resume from it ends byte-identical to an uninterrupted run:
// in the synchronous loop and in the streamed one, which has a step queued
// when the interrupt lands.
func TestInterruptSavesAndResumes(t *testing.T) {
	shardDir := syntheticShards(t, 160, 40)
	full := t.TempDir()
	ref := smallConfig(shardDir, full)
	ref.LogEvery = 1 // as the interrupted run logs, which its checkpoint keeps
	mustTrain(t, ref)
	want, _ := os.ReadFile(filepath.Join(full, CheckpointFile))
	for _, tc := range []struct {
		name    string
		backend func(t *testing.T) BackendFactory
	}{
		{"sync", func(*testing.T) BackendFactory { return nil }},
		{"streamed", func(t *testing.T) BackendFactory { return lagFactory(t, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			cfg := smallConfig(shardDir, out)
			cfg.NewBackend = tc.backend(t)
			cfg.LogEvery = 1
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			log := &cancelAt{prefix: "step      4 ", cancel: cancel}
			_, err := Train(ctx, cfg, log)
			if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrInterrupted) || !strings.Contains(err.Error(), "--resume continues it") {
				t.Fatalf("interrupted run: %v\n%s", err, log.buf.String())
			}
			ck, lerr := Load(filepath.Join(out, CheckpointFile))
			if lerr != nil || ck.Step < 4 || ck.Step > 6 || !strings.Contains(err.Error(), fmt.Sprintf("after step %d,", ck.Step)) {
				t.Fatalf("checkpoint after the interrupt: step %v (%v); error %v", ck, lerr, err)
			}
			cfg.Resume = true
			mustTrain(t, cfg)
			if got, _ := os.ReadFile(filepath.Join(out, CheckpointFile)); !bytes.Equal(got, want) {
				t.Fatal("the run resumed after the interrupt ends with another checkpoint than the uninterrupted run")
			}
		})
	}
}

// A run stopped in an epoch's validation pass, by Ctrl-C or by a damaged
// validation shard, saves the epoch's training as a checkpoint whose
// validation is pending, and --resume runs that validation before any
// step: the run ends with the uninterrupted run's checkpoint, byte for
// byte, and its log has each epoch's line once, with the same figures.
// Before, nothing was saved there, and the epoch's steps since the last
// checkpoint were lost (all of them with --checkpoint-every 0).
func TestStopDuringValidation(t *testing.T) {
	shardDir := syntheticShards(t, 160, 40) // 10 steps an epoch at batch 16
	type want struct{ epochs, maxSteps int }
	refs := map[want][2][]byte{}
	epochLines := map[want][]Metric{}
	// reference gives the uninterrupted run's checkpoint and previous
	// checkpoint (nil where it has none), and its epoch lines.
	reference := func(w want) ([2][]byte, []Metric) {
		if refs[w][0] == nil {
			cfg := smallConfig(shardDir, t.TempDir())
			// --log-every as the stopped runs log: the checkpoint keeps it.
			cfg.Epochs, cfg.MaxSteps, cfg.CkptEvery, cfg.LogEvery = w.epochs, int64(w.maxSteps), 0, 1
			mustTrain(t, cfg)
			refs[w] = readCheckpoints(cfg.Out)
			epochLines[w] = epochLinesOf(cfg.Out)
		}
		return refs[w], epochLines[w]
	}
	for _, tc := range []struct {
		name     string
		epochs   int
		maxSteps int
		step     int  // the epoch's last step, whose validation is stopped
		damage   bool // a damaged val shard, not Ctrl-C
		editMeta bool // meta.json edited after the run began, not Ctrl-C
		reingest bool // meta.json rewritten as an ingest midway through val leaves it
		again    bool // Ctrl-C in the resumed validation too
		resaveNo bool // the save after the resumed validation fails (a full disk)
		streamed bool
	}{
		{name: "first epoch", epochs: 2, step: 10},
		{name: "first epoch, streamed", epochs: 2, step: 10, streamed: true},
		{name: "last epoch", epochs: 2, step: 20},
		{name: "at --max-steps", epochs: 2, maxSteps: 10, step: 10},
		{name: "twice", epochs: 2, step: 10, again: true},
		{name: "resumed save fails", epochs: 2, step: 20, resaveNo: true},
		{name: "damaged val shard", epochs: 1, step: 10, damage: true},
		{name: "meta.json edited", epochs: 1, step: 10, editMeta: true},
		{name: "val being re-ingested", epochs: 1, step: 10, editMeta: true, reingest: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCk, wantEpochs := reference(want{tc.epochs, tc.maxSteps})
			out := t.TempDir()
			cfg := smallConfig(shardDir, out)
			cfg.Epochs, cfg.MaxSteps, cfg.CkptEvery, cfg.LogEvery = tc.epochs, int64(tc.maxSteps), 0, 1
			if tc.streamed {
				cfg.NewBackend = lagFactory(t, nil)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var log io.Writer = &cancelAt{prefix: fmt.Sprintf("step %6d ", tc.step), cancel: cancel}
			val := filepath.Join(shardDir, shards.ShardName("val", 0))
			good, err := os.ReadFile(val)
			if err != nil {
				t.Fatal(err)
			}
			metaPath := filepath.Join(shardDir, shards.MetaFile)
			goodMeta, err := os.ReadFile(metaPath)
			if err != nil {
				t.Fatal(err)
			}
			if tc.editMeta {
				// Once the run has read it: validation reads it again.
				edit := func() {
					os.WriteFile(metaPath, bytes.Replace(goodMeta, []byte(`"name": "class"`), []byte(`"name": "CLASS"`), 1), 0o644)
				}
				if tc.reingest {
					// A valid meta.json, as an ingest rewriting val leaves it.
					edit = func() {
						m, err := shards.ParseMeta(bytes.NewReader(goodMeta))
						if err != nil {
							panic(err)
						}
						delete(m.Splits, "val")
						m.Unfinished = map[string]string{"val": "an ingest run (pid 1) began rewriting its shards"}
						shards.WriteMeta(shardDir, m)
					}
				}
				log = &cancelAt{prefix: fmt.Sprintf("step %6d ", tc.step), cancel: edit}
				defer os.WriteFile(metaPath, goodMeta, 0o644)
			}
			if tc.damage {
				log = io.Discard
				bad := bytes.Clone(good)
				bad[len(bad)/2] ^= 0x40 // a record's bytes: found by the read, not the start's check
				os.WriteFile(val, bad, 0o644)
				defer os.WriteFile(val, good, 0o644)
			}
			_, err = Train(ctx, cfg, log)
			ckPath := filepath.Join(out, CheckpointFile)
			msg := fmt.Sprint(err)
			if !strings.Contains(msg, fmt.Sprintf("validation after epoch %d", tc.step/10-1)) || strings.Count(msg, CheckpointFile) != 1 {
				t.Fatalf("stopped in validation: %v", err)
			}
			var re *shards.RecordError
			if tc.damage {
				if !errors.As(err, &re) || errors.Is(err, ErrInterrupted) || !strings.Contains(msg, "saved in "+ckPath+": after the repair, --resume validates it") {
					t.Fatalf("a damaged val shard: %v", err)
				}
				os.WriteFile(val, good, 0o644) // the repair
			} else if tc.editMeta {
				if errors.Is(err, ErrInterrupted) || !strings.Contains(msg, "meta.json") || !strings.Contains(msg, "saved in "+ckPath+": after the repair, --resume validates it") ||
					tc.reingest && !strings.Contains(msg, "lists no val split: an ingest run (pid 1)") {
					t.Fatalf("meta.json edited: %v", err)
				}
				os.WriteFile(metaPath, goodMeta, 0o644) // the repair
			} else if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrInterrupted) || !strings.Contains(msg, "saved in "+ckPath+", and --resume validates it") {
				t.Fatalf("interrupted in validation: %v", err)
			}
			h, err := ReadHeader(ckPath)
			if err != nil || h.Step != int64(tc.step) || !h.ValPending || h.Position != (Position{Epoch: tc.step / 10}) {
				t.Fatalf("the checkpoint saved: %+v, %v", h, err)
			}
			cfg.Resume = true
			if tc.again {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				_, err := Train(ctx, cfg, &cancelAt{prefix: "running it first", cancel: cancel})
				if !errors.Is(err, ErrInterrupted) || !strings.Contains(fmt.Sprint(err), "--resume validates it") {
					t.Fatalf("interrupted in the resumed validation: %v", err)
				}
				if h2, err := ReadHeader(ckPath); err != nil || h2.Step != h.Step || !h2.ValPending {
					t.Fatalf("the checkpoint after a second interrupt: %+v, %v", h2, err)
				}
			}
			if tc.resaveNo {
				// The epoch's line is written, then the save fails: the
				// next resume validates again and must not log it twice.
				saveCheckpoint = func(c *Checkpoint, path string) error {
					return &os.PathError{Op: "write", Path: path + ".tmp", Err: syscall.ENOSPC}
				}
				_, err := Train(context.Background(), cfg, io.Discard)
				saveCheckpoint = (*Checkpoint).Save
				if h, herr := ReadHeader(ckPath); !errors.Is(err, syscall.ENOSPC) || herr != nil || !h.ValPending {
					t.Fatalf("the save after the resumed validation: %v", err)
				}
			}
			var resumed bytes.Buffer
			res, err := Train(context.Background(), cfg, &resumed)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(resumed.String(), fmt.Sprintf("stopped in epoch %d's validation: running it first", tc.step/10-1)) || !res.Evaluated {
				t.Errorf("the resume: %+v\n%s", res, resumed.String())
			}
			// The previous checkpoint too is the uninterrupted run's, not
			// the pending one the resume replaced.
			if got := readCheckpoints(out); !bytes.Equal(got[0], wantCk[0]) || !bytes.Equal(got[1], wantCk[1]) {
				t.Fatalf("the resumed run ends with other checkpoints than the uninterrupted run (latest equal: %v, previous equal: %v)",
					bytes.Equal(got[0], wantCk[0]), bytes.Equal(got[1], wantCk[1]))
			}
			if got := epochLinesOf(out); !reflect.DeepEqual(got, wantEpochs) {
				t.Errorf("epoch lines:\n got %+v\nwant %+v", got, wantEpochs)
			}
		})
	}
}

// A run stopped in a validation and resumed with fewer --epochs than it
// has done runs that validation, saves, and trains nothing: the train
// pipeline starts at its end (it was refused as past it).
func TestPendingValidationResumedWithFewerEpochs(t *testing.T) {
	shardDir := syntheticShards(t, 160, 40) // 10 steps an epoch at batch 16
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.Epochs, cfg.CkptEvery, cfg.LogEvery = 3, 0, 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Train(ctx, cfg, &cancelAt{prefix: fmt.Sprintf("step %6d ", 20), cancel: cancel}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("stopped in epoch 1's validation: %v", err)
	}
	cfg.Resume, cfg.Epochs = true, 1
	res, err := Train(context.Background(), cfg, io.Discard)
	if err != nil || !res.Evaluated || res.Stopped != "epochs" || res.Steps != 20 {
		t.Fatalf("resumed with --epochs 1: %+v, %v", res, err)
	}
	if h, err := ReadHeader(filepath.Join(out, CheckpointFile)); err != nil || h.ValPending || h.Step != 20 {
		t.Fatalf("the checkpoint after: %+v, %v", h, err)
	}
}

// readCheckpoints gives dir's checkpoint and previous checkpoint, nil
// where there is none.
func readCheckpoints(dir string) [2][]byte {
	ck, _ := os.ReadFile(filepath.Join(dir, CheckpointFile))
	prev, _ := os.ReadFile(filepath.Join(dir, PrevCheckpointFile))
	return [2][]byte{ck, prev}
}

// epochLinesOf is dir's epoch lines, their clock left out.
func epochLinesOf(dir string) []Metric {
	var got []Metric
	for _, m := range readMetrics(dir, math.MaxInt64) {
		if m.Kind == "epoch" {
			m.Seconds = 0
			got = append(got, m)
		}
	}
	return got
}

// A save that fails while an interrupted validation records its epoch
// says once what is kept: the last checkpoint to resume from where there
// is one, otherwise the advice to start again. Neither is ErrInterrupted
// (exit 130): a save that failed on the way out is exit 1. A pending validation anywhere but
// at an epoch's end is a checkpoint no run writes, and is refused.
func TestStopDuringValidationEdges(t *testing.T) {
	shardDir := syntheticShards(t, 160, 40)
	for _, tc := range []struct {
		step      int
		resumable bool
	}{{10, false}, {20, true}} {
		out := t.TempDir()
		cfg := smallConfig(shardDir, out)
		cfg.CkptEvery, cfg.LogEvery = 10, 1
		if tc.step == 10 {
			cfg.CkptEvery = 0
		}
		ctx, cancel := context.WithCancel(context.Background())
		saveCheckpoint = func(c *Checkpoint, path string) error {
			if c.ValPending {
				return &os.PathError{Op: "write", Path: path + ".tmp", Err: syscall.ENOSPC}
			}
			return c.Save(path)
		}
		_, err := Train(ctx, cfg, &cancelAt{prefix: fmt.Sprintf("step %6d ", tc.step), cancel: cancel})
		cancel()
		saveCheckpoint = (*Checkpoint).Save
		msg := fmt.Sprint(err)
		resumes, again := strings.Count(msg, "--resume"), strings.Count(msg, "run it again")
		if errors.Is(err, ErrInterrupted) || !errors.Is(err, syscall.ENOSPC) ||
			tc.resumable && (resumes != 1 || again != 0) || !tc.resumable && (resumes != 0 || again != 1) {
			t.Errorf("step %d: interrupted in validation, and the save failed: resumable %v: %v", tc.step, errors.Is(err, ErrInterrupted), err)
		}
		t.Logf("step %d: %v", tc.step, err)
	}

	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps = 3
	mustTrain(t, cfg)
	ckPath := filepath.Join(out, CheckpointFile)
	ck, err := Load(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	ck.ValPending = true // at {0, 3}: mid-epoch
	if err := ck.Save(ckPath); err != nil {
		t.Fatal(err)
	}
	cfg.Resume, cfg.MaxSteps = true, 4
	if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "not an epoch's end") {
		t.Errorf("a pending validation mid-epoch: %v", err)
	}
	// A resume need this build does not know: Train refuses it first, by
	// name, before comparing flags with a run it cannot continue.
	ck.ValPending, ck.ResumeNeeds = false, []string{"later_state"}
	if err := ck.Save(ckPath); err != nil {
		t.Fatal(err)
	}
	cfg.Batch = 1 << 20 // a flag mistake, judged only after the needs
	if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, ErrNewerCheckpoint) || !strings.Contains(err.Error(), `"later_state"`) {
		t.Errorf("an unknown resume need: %v", err)
	}
}

// Training and an ingest rewriting its shards refuse each other: train
// reads the shards under a shared lock, ingest writes under its own.
func TestTrainRefusesShardsBeingWritten(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	w, err := dirlock.Acquire(shardDir, "ingest")
	if err != nil {
		t.Fatal(err)
	}
	cfg := smallConfig(shardDir, filepath.Join(t.TempDir(), "run"))
	if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, dirlock.ErrBusy) || !strings.Contains(err.Error(), "which is writing it") {
		t.Fatalf("training on shards being written: %v, want ErrBusy", err)
	}
	w.Release()
	if _, err := os.Stat(cfg.Out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused run made its --out: %v", err)
	}
	cfg.MaxSteps = 1
	mustTrain(t, cfg)
	if w, err = dirlock.Acquire(shardDir, "ingest"); err != nil {
		t.Fatalf("the shards stay locked after the run: %v", err)
	}
	if _, _, err := EvaluateCheckpoint(context.Background(), cfg.Out, shardDir, false, 8, 0, 0, nil); !errors.Is(err, dirlock.ErrBusy) {
		t.Fatalf("evaluating on shards being written: %v, want ErrBusy", err)
	}
	w.Release()
	// A run kept in the shards folder itself holds that folder's lock as
	// its run's: it must not contend with itself.
	in := cfg
	in.Out = shardDir
	mustTrain(t, in)
}

// --resume where --out holds no run is a usage error that creates nothing:
// a mistyped --out must not be left behind as an empty run directory.
func TestResumeWithoutRun(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	out := filepath.Join(t.TempDir(), "typo")
	cfg := smallConfig(shardDir, out)
	cfg.Resume = true
	_, err := Train(context.Background(), cfg, io.Discard)
	if !errors.Is(err, ErrNoRun) {
		t.Fatalf("got %v, want ErrNoRun", err)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, fs.ErrNotExist) {
		t.Fatalf("--out was created: %v", serr)
	}
	// An existing folder with no run in it: still "no run", and nothing
	// is created there (not even a lock file).
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, ErrNoRun) {
		t.Fatalf("resume into an empty folder: %v, want ErrNoRun", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatalf("the refused resume left %v in %s", ents, out)
	}
	// The model and crop a resume leaves out are the run's: with no run,
	// the defaults (alexnet, which 64-px shards cannot take) must not be
	// what the error is about.
	def := cfg
	def.Model, def.Crop = "alexnet", 0
	if _, err := Train(context.Background(), def, io.Discard); !errors.Is(err, ErrNoRun) {
		t.Fatalf("resume at the defaults with no run: %v, want ErrNoRun", err)
	}
	// A run killed before its first checkpoint left its log: leaving out
	// --resume would be refused for it, so the advice is --overwrite, and
	// it works.
	if err := os.WriteFile(filepath.Join(out, MetricsFile), []byte(`{"kind":"step","step":5}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, ErrNoRun) || !strings.Contains(err.Error(), "--overwrite in place of --resume starts a new run there") {
		t.Fatalf("resume where a run left only its log: %v", err)
	}
	again := cfg
	again.Resume, again.Overwrite, again.MaxSteps = false, true, 1
	mustTrain(t, again)
	for _, f := range append(slices.Clone(replacedFiles), MetricsFile) {
		os.Remove(filepath.Join(out, f))
	}
	// A run there that has not saved its first checkpoint yet holds the
	// folder: the resume names it rather than advise leaving out --resume.
	held, err := dirlock.Acquire(out, "train")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, dirlock.ErrBusy) || errors.Is(err, ErrNoRun) {
		t.Fatalf("a resume while a run without a checkpoint holds %s: %v", out, err)
	}
}

// TestInputNormalisationPerModel: the paper's net gets centred raw pixels
// (std 1), the others standardised ones, and a resumed run keeps the
// normalisation its checkpoint was trained with.
func TestInputNormalisationPerModel(t *testing.T) {
	dir := syntheticShardsOfSide(t, 16, 8, 72)
	meta, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	var metaStd [3]float32
	for c := range 3 {
		metaStd[c] = float32(meta.Stats.Std[c])
	}
	errStop := errors.New("recorded")
	record := func(got *[3]float32) BackendFactory {
		return func(_ alexnet.Spec, _ int, _ map[string][]float32, _ uint64, _, std [3]float32) (Backend, error) {
			*got = std
			return nil, errStop
		}
	}
	for _, tc := range []struct {
		model, init string
		want        [3]float32
	}{{"alexnet", "", [3]float32{1, 1, 1}}, {"alexnet", "he", metaStd}, {"alexnet-owt", "", metaStd}, {"small", "", metaStd}, {"small", "paper", metaStd}} {
		var got [3]float32
		cfg := Config{Shards: dir, Model: tc.model, Init: tc.init, Epochs: 1, Batch: 4, Crop: 67, LR: 0.01, Schedule: "plateau", Patience: 1, Out: t.TempDir(), Seed: 1, EvalBatch: 4, Workers: 1,
			NewBackend: record(&got)}
		if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, errStop) {
			t.Fatalf("%s: %v", tc.model, err)
		}
		if got != tc.want {
			t.Errorf("%s --init %q: std %v passed to the backend, want %v", tc.model, tc.init, got, tc.want)
		}
	}

	// A checkpoint trained on another scale keeps it on --resume.
	out := t.TempDir()
	cfg := Config{Shards: dir, Model: "small", Epochs: 1, Batch: 4, Crop: 67, LR: 0.01, Schedule: "plateau", Patience: 1, Out: out, Seed: 1, EvalBatch: 4, Workers: 1, MaxSteps: 1}
	mustTrain(t, cfg)
	ckPath := filepath.Join(out, CheckpointFile)
	ck, err := Load(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	ck.Std = [3]float32{1, 1, 1}
	if err := ck.Save(ckPath); err != nil {
		t.Fatal(err)
	}
	var got [3]float32
	cfg.Resume, cfg.MaxSteps, cfg.NewBackend = true, 0, record(&got)
	var log bytes.Buffer
	if _, err := Train(context.Background(), cfg, &log); !errors.Is(err, errStop) {
		t.Fatal(err)
	}
	if got != ck.Std || !strings.Contains(log.String(), "continues with the checkpoint's input normalisation") {
		t.Errorf("resume passed std %v, want the checkpoint's %v; log:\n%s", got, ck.Std, log.String())
	}

	// A He-initialised paper net resumes on its own scale without a note,
	// whatever --init says now (the run's own is in the checkpoint).
	out = t.TempDir()
	cfg = Config{Shards: dir, Model: "alexnet", Init: "he", Epochs: 1, Batch: 4, Crop: 67, LR: 0.01, Schedule: "plateau", Patience: 1, Out: out, Seed: 1, EvalBatch: 4, Workers: 1, MaxSteps: 1}
	mustTrain(t, cfg)
	if ck, err := Load(filepath.Join(out, CheckpointFile)); err != nil || ck.Std != metaStd {
		t.Fatalf("alexnet --init he: checkpoint std %v, want %v (%v)", ck.Std, metaStd, err)
	}
	cfg.Resume, cfg.Init, cfg.MaxSteps, cfg.NewBackend = true, "", 0, record(&got)
	log.Reset()
	if _, err := Train(context.Background(), cfg, &log); !errors.Is(err, errStop) {
		t.Fatal(err)
	}
	if got != metaStd || strings.Contains(log.String(), "input normalisation") {
		t.Errorf("resume of alexnet --init he passed std %v, want %v; log:\n%s", got, metaStd, log.String())
	}
}

// Below batch 64 the paper's initialisation makes the loss climb before
// it falls (README): a new run says so, for the models and schemes that
// do it, and a resume, whose first steps are long past, does not.
func TestNoteOnEarlyClimb(t *testing.T) {
	dir := syntheticShardsOfSide(t, 64, 8, 72)
	errStop := errors.New("recorded")
	stop := func(alexnet.Spec, int, map[string][]float32, uint64, [3]float32, [3]float32) (Backend, error) {
		return nil, errStop
	}
	for _, tc := range []struct {
		model, init string
		batch       int
		resume      bool
		want        bool
	}{
		{"alexnet", "", 4, false, true}, {"alexnet-owt", "", 16, false, true}, {"alexnet-convnet", "paper", 63, false, true},
		{"alexnet", "", 64, false, false}, {"alexnet", "he", 4, false, false}, {"small", "", 4, false, false},
		{"small", "paper", 4, false, false}, {"alexnet", "", 4, true, false},
	} {
		out := t.TempDir()
		cfg := Config{Shards: dir, Model: tc.model, Init: tc.init, Epochs: 1, Batch: tc.batch, Crop: 67, LR: 0.01, Schedule: "plateau", Patience: 1, Out: out, Seed: 1, EvalBatch: 4, Workers: 1}
		if tc.resume {
			first := cfg
			first.MaxSteps = 1
			mustTrain(t, first)
			cfg.Resume = true
		}
		cfg.NewBackend = stop
		var log bytes.Buffer
		if _, err := Train(context.Background(), cfg, &log); !errors.Is(err, errStop) {
			t.Fatalf("%+v: %v", tc, err)
		}
		if got := strings.Contains(log.String(), "makes the loss climb"); got != tc.want {
			t.Errorf("%s --init %q --batch %d resume %v: note %v, want %v; log:\n%s", tc.model, tc.init, tc.batch, tc.resume, got, tc.want, log.String())
		}
	}
}

// A checkpoint's position and shuffle order index the shards it trained
// on: other train shards of the same classes and size (other images, or
// the same ones cut into other shards) are refused by a resume, and a
// byte-identical copy elsewhere is accepted.
func TestResumeRefusesOtherTrainShards(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps = 2
	mustTrain(t, cfg)

	other := t.TempDir()
	tr, tl := synthetic(64, 24, 9) // other noise, same classes and side
	va, vl := synthetic(16, 24, 2)
	writeShards(t, other, 24, tr, va, tl, vl, 4)
	moved := t.TempDir()
	if err := os.CopyFS(moved, os.DirFS(shardDir)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(out, CheckpointFile))
	resume := cfg
	resume.Resume, resume.MaxSteps, resume.Shards = true, 3, other
	if _, err := Train(context.Background(), resume, io.Discard); !errors.Is(err, ErrResumeMismatch) || !strings.Contains(err.Error(), "other train shards") {
		t.Fatalf("resume on other train shards: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, CheckpointFile)); !bytes.Equal(before, after) {
		t.Fatal("the refused resume touched the checkpoint")
	}
	resume.Shards = moved
	if _, err := Train(context.Background(), resume, io.Discard); err != nil {
		t.Fatalf("resume on a copy of the same shards: %v", err)
	}
}

// A schedule a run could not have made (a hand-made checkpoint, its CRC
// valid) is refused when resumed, not an epoch later by a division by zero.
func TestResumeRefusesImpossibleSchedule(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	cfg := smallConfig(shardDir, t.TempDir())
	cfg.MaxSteps = 1
	mustTrain(t, cfg)
	path := filepath.Join(cfg.Out, CheckpointFile)
	for _, tc := range []struct {
		name string
		edit func(*Schedule)
	}{
		{"step of 0 epochs", func(s *Schedule) { s.Kind, s.StepEpochs = "step", 0 }},
		{"unknown kind", func(s *Schedule) { s.Kind = "cosine" }},
		{"lr 0", func(s *Schedule) { s.LR = 0 }},
		{"negative drops", func(s *Schedule) { s.Drops = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ck, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			good := ck.Schedule
			tc.edit(&ck.Schedule)
			if err := ck.Save(path); err != nil {
				t.Fatal(err)
			}
			defer func() {
				ck.Schedule = good
				if err := ck.Save(path); err != nil {
					t.Fatal(err)
				}
			}()
			resume := cfg
			resume.Resume, resume.MaxSteps = true, 2
			if _, err := Train(context.Background(), resume, io.Discard); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "schedule") {
				t.Fatalf("resume with %s: %v", tc.name, err)
			}
		})
	}
}

// metrics.jsonl's clock runs on across a resume (it is the run's time,
// not the process's), and an epoch's line carries the learning rate the
// epoch trained at, not the one the schedule drops to after it.
func TestMetricsClockAndEpochLR(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	cfg := smallConfig(shardDir, t.TempDir())
	cfg.Schedule, cfg.Epochs, cfg.LogEvery = "step:1", 2, 1
	cfg.MaxSteps = 6 // inside epoch 1 (4 batches an epoch)
	mustTrain(t, cfg)
	// Pretend the first leg took an hour: the resumed lines must count on
	// from there.
	mpath := filepath.Join(cfg.Out, "metrics.jsonl")
	first, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	var shifted bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(string(first)), "\n") {
		var m Metric
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		m.Seconds += 3600
		b, _ := json.Marshal(m)
		shifted.Write(append(b, '\n'))
	}
	if err := os.WriteFile(mpath, shifted.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Resume, cfg.MaxSteps = true, 0
	mustTrain(t, cfg)
	b, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	stepLR := map[int]float64{}
	var epochs int
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m Metric
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m.Step > 6 && m.Seconds < 3600 {
			t.Errorf("line %d (step %d) after the resume: seconds %g, want the run's clock (over 3600)", i+1, m.Step, m.Seconds)
		}
		switch m.Kind {
		case "step":
			stepLR[m.Epoch] = m.LR
		case "epoch":
			epochs++
			if m.LR != stepLR[m.Epoch] || m.LR != cfg.LR/math.Pow(10, float64(m.Epoch)) {
				t.Errorf("epoch %d's line has lr %g; its steps trained at %g", m.Epoch, m.LR, stepLR[m.Epoch])
			}
		}
	}
	if epochs != 2 {
		t.Fatalf("%d epoch lines, want 2", epochs)
	}
}

// A shards folder an ingest run left midway (a split unlisted, with its
// note) is refused by name: training on would go without that split,
// silently so for val.
func TestUnfinishedIngestRefused(t *testing.T) {
	for _, split := range []string{"train", "val"} {
		dir := syntheticShards(t, 64, 16)
		trained := t.TempDir()
		cfg := smallConfig(dir, trained)
		cfg.MaxSteps = 1
		mustTrain(t, cfg)
		meta, err := shards.ReadMeta(dir)
		if err != nil {
			t.Fatal(err)
		}
		delete(meta.Splits, split)
		meta.Unfinished = map[string]string{split: "an ingest run (pid 1) began rewriting its shards"}
		if err := shards.WriteMeta(dir, meta); err != nil {
			t.Fatal(err)
		}
		cfg = smallConfig(dir, t.TempDir())
		cfg.MaxSteps = 1
		_, err = Train(context.Background(), cfg, io.Discard)
		want := "meta.json lists no " + split + " split: an ingest run (pid 1)"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s unfinished: %v, want %q", split, err, want)
		}
		// --eval-only needs val alone.
		_, _, err = EvaluateCheckpoint(context.Background(), filepath.Join(trained, CheckpointFile), dir, false, 16, 0, 1, nil)
		if split == "val" && (err == nil || !strings.Contains(err.Error(), want)) || split == "train" && err != nil {
			t.Errorf("--eval-only, %s unfinished: %v", split, err)
		}
	}
}
