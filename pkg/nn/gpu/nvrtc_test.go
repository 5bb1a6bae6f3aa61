package gpu

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/pkg/cuda"
)

// typeRecorder is a launcher that runs nothing: it keeps, per kernel, the
// Go types of the arguments and the block the backend launches it with.
type typeRecorder struct {
	types  map[string][]string
	blocks map[string][3]uint32
}

func (r *typeRecorder) launch(name string, grid, block [3]uint32, args ...any) error {
	var ts []string
	for _, a := range args {
		ts = append(ts, goTypeName(a))
	}
	r.types[name], r.blocks[name] = ts, block
	return nil
}

// launchedTypes calls every launch function of kernels.go once, so the
// argument types are those the backend really passes, not a second
// reading of kernels.cu.
func launchedTypes(t *testing.T) *typeRecorder {
	r := &typeRecorder{types: map[string][]string{}, blocks: map[string][3]uint32{}}
	m := [3]float32{1, 2, 3}
	for _, err := range []error{
		launchNormalize(r, 1, 2, 3, 2, 16, m, m),
		launchBiasAct(r, 1, 2, 40, 2, 20, true),
		launchReLU(r, 1, 2, 40),
		launchReLUBack(r, 1, 2, 3, 40),
		launchDropout(r, 1, 2, 3, 40, 7, 1, 0.5, false),
		launchDropoutBack(r, 1, 2, 3, 40, 0.5, false),
		launchScale(r, 1, 2, 40, 0.5),
		launchXent(r, 1, 2, 3, 4, 5, 6, 4, 10),
		launchBiasGradRows(r, 1, 2, 4, 10),
		launchBiasGradNCHW(r, 1, 2, 3, 4, 10, 5),
		launchSGD(r, 1, 2, 3, 40, 30, 0.01, 0.9, 5e-4),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range kernelNames {
		if _, ok := r.types[k]; !ok {
			t.Fatalf("kernel %s is in kernelNames but no launch function here launches it; add it to launchedTypes", k)
		}
	}
	return r
}

// ptxParamTypes maps the Go argument types a launch may pass to the PTX
// parameter types NVRTC declares for the matching C parameter. The driver
// copies each parameter's PTX size out of our 8-byte slot, so a .u64
// parameter fed from an int32 would read four bytes of garbage.
var ptxParamTypes = map[string][]string{
	"cuda.DevicePtr": {"u64", "b64"},
	"int32":          {"u32", "s32", "b32"},
	"uint32":         {"u32", "b32"},
	"int64":          {"u64", "s64", "b64"},
	"uint64":         {"u64", "b64"},
	"float32":        {"f32"},
	"float64":        {"f64"},
}

var (
	ptxEntryRE = regexp.MustCompile(`(?s)\.entry\s+(\w+)\s*\(([^)]*)\)`)
	ptxParamRE = regexp.MustCompile(`\.param\s+\.(\w+)`)
)

// ptxEntries reads each kernel's parameter types from PTX text.
func ptxEntries(ptx string) map[string][]string {
	out := map[string][]string{}
	for _, m := range ptxEntryRE.FindAllStringSubmatch(ptx, -1) {
		var ps []string
		for _, p := range ptxParamRE.FindAllStringSubmatch(m[2], -1) {
			ps = append(ps, p[1])
		}
		out[m[1]] = ps
	}
	return out
}

// TestNVRTCKernels compiles kernels.cu with the real NVRTC, with the
// backend's options, for the architectures the GPUs we target use. NVRTC
// needs no GPU, so this runs wherever libnvrtc loads: on the GPU machine,
// and on a CPU machine after `just cuda-cpu-libs`. It checks what the g++
// emulation cannot: that NVRTC accepts the source without headers, that
// every kernel the backend looks up is an entry point, and that each PTX
// parameter has the size and kind of the Go value the launch passes. With
// ptxas on PATH (or $ALEXNET_PTXAS) it also assembles the PTX for the real
// chip and checks that every kernel fits the block it is launched with.
func TestNVRTCKernels(t *testing.T) {
	maj, mnr, err := cuda.NVRTCVersion()
	if err != nil {
		skipOrFail(t, "no NVRTC (`just cuda-cpu-libs` fetches one that runs without a GPU): %v", err)
	}
	supported, _ := cuda.SupportedArchs()
	t.Logf("NVRTC %d.%d, targets %v", maj, mnr, supported)
	rec := launchedTypes(t)

	// Ampere and Hopper (A100, H100, H200), plus the newest NVRTC knows.
	archs := []int{80, 90}
	if len(supported) > 0 {
		archs = slices.DeleteFunc(archs, func(a int) bool { return !slices.Contains(supported, a) })
		if newest := slices.Max(supported); !slices.Contains(archs, newest) {
			archs = append(archs, newest)
		}
	}
	if len(archs) == 0 {
		t.Fatalf("NVRTC %d.%d supports none of sm_80, sm_90 (targets %v)", maj, mnr, supported)
	}
	ptxas := findPTXAS()
	if ptxas == "" {
		t.Log("no ptxas on PATH or in ALEXNET_PTXAS: PTX checked, not assembled")
	}
	for _, arch := range archs {
		name := "compute_" + strconv.Itoa(arch)
		t.Run(name, func(t *testing.T) {
			opts := append([]string{"--gpu-architecture=" + name}, nvrtcOptions...)
			ptx, log, err := cuda.Compile(kernelSource, "kernels.cu", opts)
			if err != nil {
				t.Fatalf("NVRTC: %v\n%s", err, log)
			}
			if strings.TrimSpace(log) != "" {
				t.Errorf("NVRTC warnings for %s:\n%s", name, log)
			}
			entries := ptxEntries(ptx)
			for _, k := range kernelNames {
				params, ok := entries[k]
				if !ok {
					t.Errorf("%s: no .entry %s in the PTX (name mangled? extern \"C\" missing?)", name, k)
					continue
				}
				goTypes := rec.types[k]
				if len(params) != len(goTypes) {
					t.Errorf("%s: %s has %d PTX parameters, the launch passes %d (%v)", name, k, len(params), len(goTypes), goTypes)
					continue
				}
				for i, p := range params {
					if !slices.Contains(ptxParamTypes[goTypes[i]], p) {
						t.Errorf("%s: %s parameter %d is .%s in PTX, the launch passes a %s", name, k, i, p, goTypes[i])
					}
				}
			}
			if ptxas != "" {
				assemble(t, ptxas, ptx, arch, rec)
			}
		})
	}
}

// findPTXAS returns $ALEXNET_PTXAS, else ptxas on PATH, else "".
func findPTXAS() string {
	if p := os.Getenv("ALEXNET_PTXAS"); p != "" {
		return p
	}
	p, _ := exec.LookPath("ptxas")
	return p
}

var (
	ptxasFunctionRE = regexp.MustCompile(`Compiling entry function '(\w+)' for 'sm_(\d+)'`)
	ptxasUsedRE     = regexp.MustCompile(`Used (\d+) registers(?:, (\d+) bytes smem)?`)
	ptxasSpillRE    = regexp.MustCompile(`(\d+) bytes spill stores, (\d+) bytes spill loads`)
)

// assemble runs ptxas on ptx for sm_<arch> and checks each kernel against
// the block the backend launches it with: a kernel whose registers times
// threads exceed the SM's 64K registers fails every launch with
// CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, which only shows on a GPU otherwise.
func assemble(t *testing.T, ptxas, ptx string, arch int, rec *typeRecorder) {
	dir := t.TempDir()
	src := filepath.Join(dir, "kernels.ptx")
	if err := os.WriteFile(src, []byte(ptx), 0o644); err != nil {
		t.Fatal(err)
	}
	sm := "sm_" + strconv.Itoa(arch)
	out, err := exec.Command(ptxas, "-arch="+sm, "-v", "-o", filepath.Join(dir, "kernels.cubin"), src).CombinedOutput()
	text := string(out)
	var ee *exec.ExitError
	if errors.As(err, &ee) && (strings.Contains(text, "is not defined for option") || strings.Contains(text, "Unsupported .version")) {
		t.Logf("%s: this ptxas is older than the target or the PTX; not assembled: %s", sm, firstLine(text))
		return
	}
	if err != nil {
		t.Fatalf("ptxas -arch=%s: %v\n%s", sm, err, text)
	}
	// ptxas prints, per kernel, a "Compiling entry function" line and then
	// its resource lines; read them in that order.
	const regsPerSM, maxRegsPerThread, staticSmem = 65536, 255, 48 << 10
	var cur string
	seen := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if m := ptxasFunctionRE.FindStringSubmatch(line); m != nil {
			cur = m[1]
			continue
		}
		if m := ptxasSpillRE.FindStringSubmatch(line); m != nil && cur != "" && (m[1] != "0" || m[2] != "0") {
			t.Errorf("%s: %s spills registers (%s)", sm, cur, strings.TrimSpace(line))
		}
		m := ptxasUsedRE.FindStringSubmatch(line)
		if m == nil || cur == "" {
			continue
		}
		seen[cur] = true
		regs, _ := strconv.Atoi(m[1])
		smem, _ := strconv.Atoi(m[2])
		b := rec.blocks[cur]
		threads := int(b[0] * b[1] * b[2])
		t.Logf("%s %-15s %3d registers × %d threads, %5d bytes static shared memory", sm, cur, regs, threads, smem)
		if regs > maxRegsPerThread || regs*threads > regsPerSM {
			t.Errorf("%s: %s needs %d registers × %d threads > %d: it cannot launch", sm, cur, regs, threads, regsPerSM)
		}
		if smem > staticSmem {
			t.Errorf("%s: %s uses %d bytes of static shared memory > 48 KiB", sm, cur, smem)
		}
	}
	for _, k := range kernelNames {
		if !seen[k] {
			t.Errorf("%s: ptxas reported no resources for %s\n%s", sm, k, text)
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
