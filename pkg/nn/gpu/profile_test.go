package gpu

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
)

// TestProfileOnHost checks Profile's bookkeeping with the host engine:
// the parts come in queue order with the right names and passes, and a
// profiled step trains exactly as an unprofiled one does.
func TestProfileOnHost(t *testing.T) {
	em := needEmulator(t)
	spec := miniAlexNet(5)
	params, err := alexnet.InitParams(spec, "he", 3)
	if err != nil {
		t.Fatal(err)
	}
	const batch, steps = 2, 2
	build := func() *Net {
		n, err := newNet(newHostEngine(em), spec, batch, params, Options{Seed: 5, Mean: testMean, Std: testStd})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	plain, profiled := build(), build()
	s := testSlot(spec, batch, 9)

	db, err := plain.Stage(s)
	if err != nil {
		t.Fatal(err)
	}
	for range steps {
		if err := plain.Load(db); err != nil {
			t.Fatal(err)
		}
		pd, err := plain.StepLoaded(0.05, 0.9, 5e-4)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := pd.Wait(); err != nil {
			t.Fatal(err)
		}
	}

	db, err = profiled.Stage(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := profiled.Profile(db, 0, 0.05, 0.9, 5e-4); err == nil {
		t.Error("Profile of 0 steps accepted")
	}
	parts, err := profiled.Profile(db, steps, 0.05, 0.9, 5e-4)
	if err != nil {
		t.Fatal(err)
	}

	checkParts(t, parts)
	if profiled.Step() != steps {
		t.Errorf("Step() = %d after %d profiled steps", profiled.Step(), steps)
	}

	// Profiled steps are real steps: bit-identical weights and momenta.
	pw, err := plain.Params()
	if err != nil {
		t.Fatal(err)
	}
	qw, err := profiled.Params()
	if err != nil {
		t.Fatal(err)
	}
	for i := range pw {
		if !slices.Equal(pw[i].W, qw[i].W) || !slices.Equal(pw[i].V, qw[i].V) {
			t.Errorf("%s differs after profiled steps", pw[i].Name)
		}
	}
	// The marks are gone once Profile returns: a plain step still works.
	if err := profiled.Load(db); err != nil {
		t.Fatal(err)
	}
	if _, err := profiled.StepLoaded(0.05, 0.9, 5e-4); err != nil {
		t.Fatal(err)
	}
}

// miniParts is Profile's order for miniAlexNet, written out from the
// spec: ReLUs after conv and fc are fused into them (+), Flatten has no
// work, and the backward pass is the forward pass reversed.
var miniParts = func() []string {
	fwd := []string{"conv1+", "norm1", "pool1", "conv2+", "norm2", "pool2", "conv3+", "conv4+", "conv5+",
		"pool5", "drop6", "fc6+", "drop7", "fc7+", "fc8"}
	want := []string{"input"}
	for _, l := range fwd {
		want = append(want, l+" forward")
	}
	want = append(want, "loss")
	for _, l := range slices.Backward(fwd) {
		want = append(want, l+" backward")
	}
	return append(want, "update")
}()

// checkParts holds a profile of miniAlexNet to miniParts, with kinds that
// are layers' and times that add up.
func checkParts(t *testing.T, parts []LayerTime) {
	t.Helper()
	var got []string
	var total float64
	for _, p := range parts {
		name := p.Layer
		if p.ReLU {
			name += "+"
		}
		if p.Pass != "" {
			name += " " + p.Pass
		}
		got = append(got, name)
		if p.Ms < 0 {
			t.Errorf("%s: %g ms", name, p.Ms)
		}
		total += p.Ms
		if k := alexnet.Kind(p.Kind); p.Pass != "" && k != alexnet.Conv && k != alexnet.FC && k != alexnet.LRN &&
			k != alexnet.MaxPool && k != alexnet.Dropout {
			t.Errorf("%s: kind %q", name, p.Kind)
		}
	}
	if !slices.Equal(got, miniParts) {
		t.Errorf("parts:\n got %s\nwant %s", strings.Join(got, ", "), strings.Join(miniParts, ", "))
	}
	if total <= 0 {
		t.Errorf("the parts add up to %g ms", total)
	}
}

// TestTorchProfileOnCPU runs tools/gpucheck/torch_bench.py's profile on
// the CPU over the same spec: one part per module and pass, in autograd's
// order, with the loss and the update, so the GPU check's table can line
// them up with ours.
func TestTorchProfileOnCPU(t *testing.T) {
	py := torchPython(t)
	spec := miniAlexNet(5)
	sj, err := NewSpecJSON(spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := json.Marshal(sj)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "spec-mini.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "torch.jsonl")
	cmd := exec.Command(py, filepath.Join(gpucheckDir, "torch_bench.py"), "--device", "cpu", "--specs", dir,
		"--models", "mini", "--precisions", "fp32", "--batch", "3", "--warmup", "1", "--steps", "2",
		"--profile-steps", "2", "--json", out)
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("torch_bench.py: %v\n%s", err, log)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	var r struct {
		ImgS         float64     `json:"img_s"`
		Layers       []LayerTime `json:"layers"`
		ProfileError string      `json:"profile_error"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if r.ProfileError != "" || r.ImgS <= 0 {
		t.Fatalf("img/s %g, profile error %q\n%s", r.ImgS, r.ProfileError, log)
	}
	var mods []string
	for _, l := range spec.Layers {
		mods = append(mods, l.Name+" "+string(l.Kind))
	}
	var want []string
	for _, m := range mods {
		want = append(want, m+" forward")
	}
	want = append(want, "loss loss")
	for _, m := range slices.Backward(mods) {
		want = append(want, m+" backward")
	}
	want = append(want, "update update")
	var got []string
	for _, p := range r.Layers {
		got = append(got, strings.TrimSpace(p.Layer+" "+p.Kind+" "+p.Pass))
		if p.Ms < 0 {
			t.Errorf("%s %s: %g ms", p.Layer, p.Pass, p.Ms)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("parts:\n got %s\nwant %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
}
