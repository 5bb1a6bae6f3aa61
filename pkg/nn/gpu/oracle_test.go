package gpu

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
)

// torchPython finds a Python that imports torch: $ALEXNET_TORCH_PYTHON,
// else python3 on PATH, else /usr/bin/python3 (Debian's python3-torch).
func torchPython(t *testing.T) string {
	t.Helper()
	cands := []string{os.Getenv("ALEXNET_TORCH_PYTHON"), "python3", "/usr/bin/python3"}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if exec.Command(c, "-c", "import torch").Run() == nil {
			return c
		}
	}
	t.Skip("no Python with torch (set ALEXNET_TORCH_PYTHON); the PyTorch scripts are not exercised")
	return ""
}

const gpucheckDir = "../../../tools/gpucheck"

// TestOracleAgainstPyTorch writes an oracle export from the host engine
// and runs tools/gpucheck/torch_oracle.py on it, on the CPU: the export
// format, the module builder, the fixed dropout masks and the update
// formula are checked here, before the GPU machine's one run relies on
// them.
func TestOracleAgainstPyTorch(t *testing.T) {
	em := needEmulator(t)
	// A dropout layer with P = 0 is a copy with no mask: the export has
	// none for it, and the oracle's module keeps it the identity.
	p0 := miniAlexNet(5)
	for i, l := range p0.Layers {
		if l.Kind == alexnet.Dropout {
			p0.Layers[i].P = 0
			break
		}
	}
	for _, tc := range []struct {
		name  string
		spec  alexnet.Spec
		masks int
		prec  Precision
	}{{"two masks", miniAlexNet(5), 2, FP32}, {"drop6 p=0", p0, 1, FP32}, {"paper layout", miniPaper(5), 2, FP32},
		// A tf32 export also runs PyTorch's float32 step, for the floor
		// (on the CPU both are float32, so everything agrees).
		{"tf32 floor", miniPaper(5), 2, TF32}} {
		t.Run(tc.name, func(t *testing.T) { oracleAgainstPyTorch(t, em, tc.spec, tc.masks, tc.prec) })
	}
}

func oracleAgainstPyTorch(t *testing.T, em *emulator, spec alexnet.Spec, masks int, prec Precision) {
	params, err := alexnet.InitParams(spec, "he", 6)
	if err != nil {
		t.Fatal(err)
	}
	net, err := newNet(newHostEngine(em), spec, 3, params, Options{Precision: prec, Seed: 6, Mean: testMean, Std: testStd})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	dir := t.TempDir()
	var x []float32
	if prec == TF32 { // one subtest trains on the continuous input
		x = CrossCheckInput(spec, 3, 4)
	}
	m, err := WriteOracle(dir, net, params, testSlot(spec, 3, 4), x, 0.01, 0.9, 0.0005)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Params) != 16 || len(m.Tensors) != 3+masks+4*16 {
		t.Fatalf("manifest lists %d params and %d tensors", len(m.Params), len(m.Tensors))
	}
	for name, f := range m.Tensors {
		n := map[string]int{"float32": 4, "int32": 4, "uint8": 1}[f.DType]
		for _, d := range f.Shape {
			n *= d
		}
		fi, err := os.Stat(filepath.Join(dir, f.File))
		if err != nil || fi.Size() != int64(n) {
			t.Errorf("tensor %s: file %s of %v bytes, want %d (%v)", name, f.File, fi.Size(), n, err)
		}
	}
	py := torchPython(t)
	out, err := exec.Command(py, filepath.Join(gpucheckDir, "torch_oracle.py"), "--device", "cpu", "--tol", "1e-4",
		"--json", filepath.Join(dir, "oracle.jsonl"), dir).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("torch_oracle.py: %v", err)
	}
	if !strings.Contains(string(out), "TENSOR OK   logits") || strings.Contains(string(out), "BAD") {
		t.Error("the oracle did not agree on every tensor")
	}
	if floor := strings.Contains(string(out), "tf32 floor: worst gradient vs float32"); floor != (prec == TF32) {
		t.Errorf("%v export: the oracle's tf32 floor line present %v", prec, floor)
	}
	js, err := os.ReadFile(filepath.Join(dir, "oracle.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if has := strings.Contains(string(js), `"torch_vs_fp32"`); has != (prec == TF32) {
		t.Errorf("%v export: oracle.jsonl has torch_vs_fp32 %v: %s", prec, has, js)
	}
}

// TestTorchModelMatchesSpec builds the real nets with torch_model.py and
// checks its parameter names and shapes against spec.Params(), and that a
// forward pass of one image yields one logit per class.
func TestTorchModelMatchesSpec(t *testing.T) {
	py := torchPython(t)
	for _, name := range []string{"alexnet", "alexnet-owt"} {
		spec, err := alexnet.Build(name, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		js, err := NewSpecJSON(spec)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(js)
		f := filepath.Join(t.TempDir(), "spec.json")
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		script := `
import json, sys, torch
sys.path.insert(0, sys.argv[1])
import torch_model
m = torch_model.build(json.load(open(sys.argv[2])))
y = m.eval()(torch.zeros(1, 3, 224, 224))
print(json.dumps({"params": [[n, list(p.shape)] for n, p in m.named_parameters()], "out": list(y.shape)}))
`
		out, err := exec.Command(py, "-c", script, gpucheckDir, f).Output()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got struct {
			Params [][2]any
			Out    []int
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: %v in %s", name, err, out)
		}
		ps := spec.Params()
		if len(got.Params) != len(ps) {
			t.Fatalf("%s: PyTorch module has %d parameters, the spec %d", name, len(got.Params), len(ps))
		}
		for i, p := range ps {
			shape, _ := json.Marshal(p.Shape)
			gs, _ := json.Marshal(got.Params[i][1])
			if got.Params[i][0] != p.Name || string(shape) != string(gs) {
				t.Errorf("%s parameter %d: PyTorch %v %s, spec %s %s", name, i, got.Params[i][0], gs, p.Name, shape)
			}
		}
		if len(got.Out) != 2 || got.Out[1] != 1000 {
			t.Errorf("%s: output shape %v", name, got.Out)
		}
	}
}
