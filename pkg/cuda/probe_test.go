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

// The probe says what the kernels are built as for each device: machine
// code where NVRTC has nvrtcGetCUBIN and lists the device's compute
// capability, else PTX for the newest architecture at or below it.
func TestProbeKernelTarget(t *testing.T) {
	nvrtc13 := []int{75, 80, 86, 87, 89, 90, 100, 103, 110, 120, 121}
	for _, tc := range []struct {
		cubin bool
		archs []int
		cc    ComputeCapability
		want  string
	}{
		{true, nvrtc13, ComputeCapability{9, 0}, "machine code (CUBIN) for sm_90"},
		{false, nvrtc13, ComputeCapability{9, 0}, "PTX for compute_90, compiled by the driver's JIT"},
		{true, []int{75, 80, 90}, ComputeCapability{10, 0}, "PTX for compute_90, compiled by the driver's JIT"}, // GPU newer than NVRTC
		{true, nil, ComputeCapability{8, 0}, "PTX for compute_80, compiled by the driver's JIT"},                // NVRTC cannot list its targets
	} {
		r := ProbeReport{NVRTC: LibraryReport{Name: "NVRTC", Version: "13.0"}, NVRTCArchs: tc.archs, NVRTCCUBIN: tc.cubin,
			Devices: []DeviceInfo{{Ordinal: 0, Name: "GPU", ComputeCapability: tc.cc}}}
		if md := r.Markdown(); !strings.Contains(md, "Kernels for GPU 0: "+tc.want+"\n") {
			t.Errorf("cubin %v, targets %v, cc %v: no line %q in\n%s", tc.cubin, tc.archs, tc.cc, tc.want, md)
		}
	}
}
