package cuda

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestPTXCacheKeyStable pins the key of one input, so that a change to the
// hashing scheme (which would silently orphan every cached file, or worse,
// alias two) shows up as a failing test and a deliberate version bump.
func TestPTXCacheKeyStable(t *testing.T) {
	got := ptxCacheKey(`extern "C" __global__ void k() {}`, "k.cu", "compute_90", []string{"-default-device"}, "13.0")
	if got != ptxCacheKeyGolden {
		t.Errorf("ptxCacheKey = %s, want %s (changed the scheme? bump alexnet-ptx-cache-v1)", got, ptxCacheKeyGolden)
	}
	if again := ptxCacheKey(`extern "C" __global__ void k() {}`, "k.cu", "compute_90", []string{"-default-device"}, "13.0"); again != got {
		t.Error("key is not deterministic")
	}
}

// ptxCacheKeyGolden was computed independently (Python hashlib over the
// documented field encoding), not by copying this package's output.
const ptxCacheKeyGolden = "6c74b38294de934200f71a5a102e19e0e49805d672d9f344d181415ecc3854ba"

// TestPTXCacheKeyInputs: every input matters, and fields cannot bleed into
// each other.
func TestPTXCacheKeyInputs(t *testing.T) {
	base := func() (string, string, string, []string, string) {
		return "src", "k.cu", "compute_90", []string{"-a", "-b"}, "13.0"
	}
	s, n, a, o, v := base()
	ref := ptxCacheKey(s, n, a, o, v)
	variants := map[string]string{
		"source":        ptxCacheKey("src ", n, a, o, v),
		"name":          ptxCacheKey(s, "j.cu", a, o, v),
		"arch":          ptxCacheKey(s, n, "compute_80", o, v),
		"option":        ptxCacheKey(s, n, a, []string{"-a", "-c"}, v),
		"option order":  ptxCacheKey(s, n, a, []string{"-b", "-a"}, v),
		"fewer options": ptxCacheKey(s, n, a, []string{"-a"}, v),
		"nvrtc version": ptxCacheKey(s, n, a, o, "12.8"),
		"joined fields": ptxCacheKey(s, n, a, []string{"-a-b"}, v),
		"shifted":       ptxCacheKey("k.cusrc", "", a, o, v),
	}
	seen := map[string]string{ref: "base"}
	for what, k := range variants {
		if prev, dup := seen[k]; dup {
			t.Errorf("changing %s gives the same key as %s", what, prev)
		}
		seen[k] = what
	}
}

func TestPTXCacheDir(t *testing.T) {
	tests := []struct {
		env  map[string]string
		home string
		want string
		ok   bool
	}{
		{map[string]string{}, "/home/u", "/home/u/.cache/alexnet/ptx", true},
		{map[string]string{"XDG_CACHE_HOME": "/xdg"}, "/home/u", "/xdg/alexnet/ptx", true},
		{map[string]string{"ALEXNET_PTX_CACHE": "/scratch/ptx", "XDG_CACHE_HOME": "/xdg"}, "/home/u", "/scratch/ptx", true},
		{map[string]string{"ALEXNET_PTX_CACHE": "off"}, "/home/u", "", false},
		{map[string]string{}, "", "", false},
	}
	for _, tc := range tests {
		got, ok := ptxCacheDir(envOf(tc.env), tc.home)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ptxCacheDir(%v, %q) = %q, %v; want %q, %v", tc.env, tc.home, got, ok, tc.want, tc.ok)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "x.ptx")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := []byte{byte('a' + i), byte('a' + i), byte('a' + i)}
			if err := writeFileAtomic(path, body); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 3 || b[0] != b[1] || b[1] != b[2] {
		t.Errorf("torn file %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestArchFor(t *testing.T) {
	nvrtc13 := []int{75, 80, 86, 87, 89, 90, 100, 103, 110, 120, 121}
	tests := []struct {
		cc        ComputeCapability
		supported []int
		want      string
	}{
		{ComputeCapability{9, 0}, nil, "compute_90"},
		{ComputeCapability{9, 0}, nvrtc13, "compute_90"},
		{ComputeCapability{8, 9}, nvrtc13, "compute_89"},
		{ComputeCapability{10, 0}, []int{75, 80, 90}, "compute_90"}, // GPU newer than NVRTC
		{ComputeCapability{8, 6}, []int{75, 80, 90}, "compute_80"},
		{ComputeCapability{7, 0}, nvrtc13, "compute_70"}, // too old: let NVRTC refuse it by name
	}
	for _, tc := range tests {
		if got := archFor(tc.cc, tc.supported); got != tc.want {
			t.Errorf("archFor(%v, %v) = %s, want %s", tc.cc, tc.supported, got, tc.want)
		}
	}
}
