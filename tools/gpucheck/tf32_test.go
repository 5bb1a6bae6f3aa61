package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The PyTorch baseline sets TF32 through the API its torch has: the
// fp32_precision settings from 2.9 on, never mixed with the allow_tf32
// flags (a mix can raise there), and the flags before. Neither torch is
// needed: tf32_check.py runs torch_model against stand-ins for both.
func TestTorchTF32API(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3: torch_model.py's TF32 switch is not checked")
	}
	// -B: no __pycache__ left in the tree.
	out, err := exec.Command(py, "-B", "tf32_check.py").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("tf32_check.py: %v\n%s", err, out)
	}
}
