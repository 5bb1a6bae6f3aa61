package cuda

import (
	"strings"
	"testing"
)

// TestProbe runs everywhere: on a CPU machine it must say what is missing
// and where it looked; on a GPU machine, what it found.
func TestProbe(t *testing.T) {
	r := Probe()
	md := r.Markdown()
	t.Logf("\n%s", md)
	for _, name := range []string{"CUDA driver", "cuBLAS", "cuDNN", "NVRTC"} {
		if !strings.Contains(md, "| "+name+" |") {
			t.Errorf("table lacks a %s row", name)
		}
	}
	if r.Driver.Err != "" {
		if r.Available() {
			t.Error("Available with a driver error")
		}
		if len(r.Driver.Tried) > 0 && !strings.Contains(md, "CUDA driver search:") {
			t.Error("the driver search is not reported")
		}
		return
	}
	if r.Driver.Version == "" || len(r.Devices) == 0 {
		t.Errorf("driver loaded but version %q, %d devices", r.Driver.Version, len(r.Devices))
	}
}
