package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

func runJSON(t *testing.T, args ...string) report {
	t.Helper()
	return runJSONExit(t, 0, args...)
}

// runJSONExit is runJSON for a run that must end with exit code want.
func runJSONExit(t *testing.T, want int, args ...string) report {
	t.Helper()
	var out, errs bytes.Buffer
	if code := run(append(args, "--json"), &out, &errs); code != want {
		t.Fatalf("exit %d, want %d: %s", code, want, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	return rep
}

// TestWithoutPyTorch: ours is measured and reported, the reference says
// why it is missing, and the exit code says the comparison is (3).
func TestWithoutPyTorch(t *testing.T) {
	rep := runJSONExit(t, benchstat.ExitNoReference, "--models", "small", "--rounds", "2", "--steps", "1", "--batch", "4", "--python", filepath.Join(t.TempDir(), "none"))
	if !strings.Contains(rep.Skipped, "python3-torch") {
		t.Errorf("skipped %q", rep.Skipped)
	}
	if len(rep.Rounds) != 2 || len(rep.Rows) != 1 {
		t.Fatalf("%d rounds, %d rows", len(rep.Rounds), len(rep.Rows))
	}
	r := rep.Rows[0]
	if r.Name != "small" || r.Batch != 4 || r.Steps != 1 || r.Ours <= 0 || r.OurGFLOPS <= 0 || r.OfSGEMM <= 0 || r.Ratio != 0 {
		t.Errorf("row %+v", r)
	}
	for _, x := range rep.Rounds {
		if x.Ours.Images != 4 || x.Torch.Images != 0 || x.SGEMM <= 0 {
			t.Errorf("round %+v", x)
		}
	}
}

// TestAgainstPyTorch runs the reference for real when a Python with torch
// is here: every round has both measurements and their ratio.
func TestAgainstPyTorch(t *testing.T) {
	py := "/usr/bin/python3"
	if p := os.Getenv("ALEXNET_TORCH_PYTHON"); p != "" {
		py = p
	}
	if msg := benchstat.PythonCannotImport(py, "torch"); msg != "" {
		t.Skipf("%s cannot import torch (%s): the PyTorch reference is not testable here", py, msg)
	}
	rep := runJSON(t, "--models", "small-fc", "--rounds", "1", "--steps", "1", "--batch", "8", "--python", py)
	if rep.Skipped != "" || rep.Torch == "" || rep.TorchBLAS == "" {
		t.Fatalf("reference: %+v", rep)
	}
	if len(rep.Rows) != 1 {
		t.Fatalf("rows %+v", rep.Rows)
	}
	for _, x := range rep.Rounds {
		if x.Ours.Images != 8 || x.Torch.Images != 8 || x.Ratio <= 0 || x.Ratio != x.Ours.rate()/x.Torch.rate() {
			t.Errorf("round %+v", x)
		}
	}

	var out bytes.Buffer
	printReport(&out, &rep)
	for _, want := range []string{"PyTorch " + rep.Torch, "small-fc", "ours ×", "every run:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestReferenceFailsForOneModel: a reference that fails for one model
// (out of memory at alexnet's batch, say) costs that model its PyTorch
// figures, not the others theirs, and the run still exits 3.
func TestReferenceFailsForOneModel(t *testing.T) {
	// A stand-in "python" that imports anything and reports a step for
	// small-fc, and fails for small.
	fake := filepath.Join(t.TempDir(), "python")
	script := `#!/bin/sh
[ "$1" = -c ] && exit 0
case "$3" in
*/small.json) echo "CUDA out of memory" >&2; exit 1;;
esac
echo '{"images": 4, "seconds": 0.5, "cpu_seconds": 1, "torch": "fake", "blas": "none", "mkldnn": false}'
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	rep := runJSONExit(t, benchstat.ExitNoReference, "--models", " small-fc, small ,", "--rounds", "2", "--steps", "1", "--batch", "4",
		"--python", fake, "--reference-alloc", "system")
	if len(rep.Rows) != 2 || rep.Rows[0].Name != "small-fc" || rep.Rows[1].Name != "small" {
		t.Fatalf("rows %+v", rep.Rows)
	}
	if r := rep.Rows[0]; r.Torch != 8 || r.Ratio <= 0 {
		t.Errorf("small-fc lost its reference: %+v", r)
	}
	if r := rep.Rows[1]; r.Torch != 0 || r.Ratio != 0 {
		t.Errorf("small kept a reference that failed: %+v", r)
	}
	if !strings.Contains(rep.Skipped, "small: ") || !strings.Contains(rep.Skipped, "out of memory") || strings.Contains(rep.Skipped, "small-fc") {
		t.Errorf("skipped %q: want only small's failure, with its reason", rep.Skipped)
	}
	var out bytes.Buffer
	printReport(&out, &rep)
	for _, want := range []string{"PyTorch fake", "PyTorch failed for small: ", "—"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"--models", "vgg"}, {"--models", " , "}, {"--models", "small,small"}, {"--rounds", "0"}, {"--steps", "-1"}, {"--bogus"}} {
		var out, errs bytes.Buffer
		if code := run(args, &out, &errs); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	var out, errs bytes.Buffer
	if code := run([]string{"--help"}, &out, &errs); code != 0 || !strings.Contains(out.String(), "Examples") || errs.Len() != 0 {
		t.Errorf("--help: exit %d, stdout %q, stderr %q: want the usage on stdout", code, out.String(), errs.String())
	}
}
