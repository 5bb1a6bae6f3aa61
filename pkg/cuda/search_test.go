package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeTree creates files (and their folders) under root; a file whose
// path ends in "!broken" is created without the suffix and marked so that
// the fake opener fails on it, like a library with a missing dependency.
func fakeTree(t *testing.T, root string, files ...string) map[string]bool {
	t.Helper()
	broken := map[string]bool{}
	for _, f := range files {
		bad := strings.HasSuffix(f, "!broken")
		f = strings.TrimSuffix(f, "!broken")
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("ELF"), 0o644); err != nil {
			t.Fatal(err)
		}
		if bad {
			broken[p] = true
		}
	}
	return broken
}

// fakeOpener opens existing, unbroken absolute paths and the bare sonames
// in loader (what ld.so would find), records the order of opens, and
// hands out a distinct handle per open so closes can be traced.
type fakeOpener struct {
	broken  map[string]bool
	loader  map[string]bool
	sticky  map[string]bool // stay loaded after close, as a NODELETE library does
	opened  []string
	closed  []string
	handles map[uintptr]string
}

func (f *fakeOpener) resident(files []string) []string {
	var out []string
	for _, p := range files {
		if f.sticky[p] || slices.Contains(f.still(), p) {
			out = append(out, p)
		}
	}
	return out
}

func (f *fakeOpener) open(path string) (uintptr, error) {
	if !filepath.IsAbs(path) {
		if f.loader[path] {
			return f.give(path), nil
		}
		return 0, fmt.Errorf("%s: cannot open shared object file: No such file or directory", path)
	}
	if f.broken[path] {
		return 0, fmt.Errorf("%s: undefined symbol: something", path)
	}
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	return f.give(path), nil
}

func (f *fakeOpener) give(path string) uintptr {
	if f.handles == nil {
		f.handles = map[uintptr]string{}
	}
	f.opened = append(f.opened, path)
	h := uintptr(len(f.opened))
	f.handles[h] = path
	return h
}

func (f *fakeOpener) close(h uintptr) error {
	p, ok := f.handles[h]
	if !ok {
		return fmt.Errorf("close of unknown handle %d", h)
	}
	delete(f.handles, h)
	f.closed = append(f.closed, p)
	return nil
}

// still lists what is open, sorted.
func (f *fakeOpener) still() []string {
	var out []string
	for _, p := range f.handles {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestSearchDirsOrder(t *testing.T) {
	root := t.TempDir()
	env := searchEnv{
		root: root,
		home: filepath.Join(root, "home"),
		getenv: envOf(map[string]string{
			"ALEXNET_CUDA_LIB": "/opt/a:/opt/b:",
			"LD_LIBRARY_PATH":  "/opt/b:/opt/c",
			"CUDA_HOME":        "/opt/cuda-13",
			"VIRTUAL_ENV":      filepath.Join(root, "venv"),
		}),
	}
	fakeTree(t, root,
		"venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcublas.so.13",
		"venv/lib/python3.12/site-packages/nvidia/cudnn/lib/libcudnn.so.9",
		"usr/lib/python3/dist-packages/nvidia/cublas/lib/libcublas.so.12",
		"proj/.venv/lib/python3.13/site-packages/nvidia/cu13/lib/libnvrtc.so.13",
	)
	env.cwd = filepath.Join(root, "proj")
	got := env.dirs(specCUBLAS)
	var paths, origins []string
	for _, d := range got {
		p := d.path
		if p == "" {
			p = "<loader>"
		}
		paths = append(paths, strings.TrimPrefix(p, root))
		origins = append(origins, d.origin)
	}
	want := []string{
		"/opt/a", "/opt/b", // ALEXNET_CUDA_LIB, in order, empty entry dropped
		"/opt/c", // LD_LIBRARY_PATH, /opt/b not repeated
		"<loader>",
		"/opt/cuda-13/lib64",
		"/usr/local/cuda/lib64", multiarchDir(), "/usr/lib64", "/usr/local/nvidia/lib64", "/usr/lib/wsl/lib",
		"/venv/lib/python3.12/site-packages/nvidia/cu13/lib",
		"/venv/lib/python3.12/site-packages/nvidia/cudnn/lib",
		"/proj/.venv/lib/python3.13/site-packages/nvidia/cu13/lib",
		"/usr/lib/python3/dist-packages/nvidia/cublas/lib",
	}
	if !slices.Equal(paths, want) {
		t.Errorf("search order:\n got %q\nwant %q", paths, want)
	}
	if origins[0] != "ALEXNET_CUDA_LIB" || origins[2] != "LD_LIBRARY_PATH" || origins[3] != "system loader" || origins[len(origins)-1] != "python" {
		t.Errorf("origins = %q", origins)
	}
	// The driver is never in a wheel: no python folders for it.
	for _, d := range env.dirs(specDriver) {
		if d.origin == "python" {
			t.Errorf("driver search includes python folder %s", d.path)
		}
	}
}

func TestLocate(t *testing.T) {
	tests := []struct {
		name      string
		spec      libSpec
		files     []string
		env       map[string]string // values may use $ROOT
		loader    []string
		want      string // path relative to root, or a bare soname
		preloaded []string
		wantErr   bool
		// reject refuses candidates whose path contains it, as a version
		// check would; closed lists what must be closed again, in order.
		reject string
		closed []string
		sticky string // a file that stays loaded after close
		// resident: the search must stop with a *ResidentError naming it.
		resident string
	}{
		{
			name:  "explicit folder wins over the loader",
			spec:  specDriver,
			files: []string{"drv/libcuda.so.1"},
			env:   map[string]string{"ALEXNET_CUDA_LIB": "$ROOT/drv"},
			// The loader would also find it, but the user's folder is first.
			loader: []string{"libcuda.so.1"},
			want:   "/drv/libcuda.so.1",
		},
		{
			name:   "system loader",
			spec:   specDriver,
			loader: []string{"libcuda.so.1"},
			want:   "libcuda.so.1",
		},
		{
			name:  "container driver mount",
			spec:  specDriver,
			files: []string{"usr/local/nvidia/lib64/libcuda.so.1"},
			want:  "/usr/local/nvidia/lib64/libcuda.so.1",
		},
		{
			name:      "newest soname within a folder, with its cuBLASLt",
			spec:      specCUBLAS,
			files:     []string{"cuda/lib64/libcublas.so.12", "cuda/lib64/libcublas.so.13", "cuda/lib64/libcublasLt.so.13", "cuda/lib64/libcublasLt.so.12"},
			env:       map[string]string{"CUDA_HOME": "$ROOT/cuda"},
			want:      "/cuda/lib64/libcublas.so.13",
			preloaded: []string{"/cuda/lib64/libcublasLt.so.13"},
		},
		{
			name:  "earlier folder wins even with an older version",
			spec:  specCUBLAS,
			files: []string{"a/libcublas.so.12", "usr/local/cuda/lib64/libcublas.so.13"},
			env:   map[string]string{"LD_LIBRARY_PATH": "$ROOT/a"},
			want:  "/a/libcublas.so.12",
		},
		{
			name:      "CUDA 13 wheel layout",
			spec:      specCUBLAS,
			files:     []string{"venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcublas.so.13", "venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcublasLt.so.13"},
			env:       map[string]string{"VIRTUAL_ENV": "$ROOT/venv"},
			want:      "/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcublas.so.13",
			preloaded: []string{"/venv/lib/python3.12/site-packages/nvidia/cu13/lib/libcublasLt.so.13"},
		},
		{
			name:  "CUDA 12 wheel layout in the system dist-packages",
			spec:  specCUBLAS,
			files: []string{"usr/lib/python3/dist-packages/nvidia/cublas/lib/libcublas.so.12"},
			want:  "/usr/lib/python3/dist-packages/nvidia/cublas/lib/libcublas.so.12",
		},
		{
			name:  "PYTHONPATH entry is a site folder",
			spec:  specNVRTC,
			files: []string{"pp/nvidia/cuda_nvrtc/lib/libnvrtc.so.12", "pp/nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.12.8", "pp/nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.13.0"},
			env:   map[string]string{"PYTHONPATH": "$ROOT/pp"},
			want:  "/pp/nvidia/cuda_nvrtc/lib/libnvrtc.so.12",
			// Only the builtins of the same major version.
			preloaded: []string{"/pp/nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.12.8"},
		},
		{
			name:      "CUDA 11's NVRTC soname keeps the minor of its first release",
			spec:      specNVRTC,
			files:     []string{"cuda11/libnvrtc.so.11.2", "cuda11/libnvrtc-builtins.so.11.8", "cuda11/libnvrtc-builtins.so.118", "cuda11/libnvrtc-builtins.so.12.0"},
			env:       map[string]string{"ALEXNET_CUDA_LIB": "$ROOT/cuda11"},
			want:      "/cuda11/libnvrtc.so.11.2",
			preloaded: []string{"/cuda11/libnvrtc-builtins.so.11.8"},
		},
		{
			name:  "a broken file falls through to the next place",
			spec:  specNVRTC,
			files: []string{"a/libnvrtc.so.13!broken", "home/.local/lib/python3.11/site-packages/nvidia/cu13/lib/libnvrtc.so.13"},
			env:   map[string]string{"ALEXNET_CUDA_LIB": "$ROOT/a"},
			want:  "/home/.local/lib/python3.11/site-packages/nvidia/cu13/lib/libnvrtc.so.13",
		},
		{
			name: "cuDNN sub-libraries first, in dependency order",
			spec: specCUDNN,
			files: []string{
				"c/nvidia/cudnn/lib/libcudnn.so.9",
				"c/nvidia/cudnn/lib/libcudnn_cnn.so.9",
				"c/nvidia/cudnn/lib/libcudnn_ops.so.9",
				"c/nvidia/cudnn/lib/libcudnn_graph.so.9",
				"c/nvidia/cudnn/lib/libcudnn_future.so.9",
			},
			env:  map[string]string{"PYTHONPATH": "$ROOT/c"},
			want: "/c/nvidia/cudnn/lib/libcudnn.so.9",
			preloaded: []string{
				"/c/nvidia/cudnn/lib/libcudnn_graph.so.9",
				"/c/nvidia/cudnn/lib/libcudnn_ops.so.9",
				"/c/nvidia/cudnn/lib/libcudnn_cnn.so.9",
				"/c/nvidia/cudnn/lib/libcudnn_future.so.9",
			},
		},
		{
			name:   "a stubs folder on LD_LIBRARY_PATH never shadows the driver",
			spec:   specDriver,
			files:  []string{"cuda/lib64/stubs/libcuda.so"},
			env:    map[string]string{"LD_LIBRARY_PATH": "$ROOT/cuda/lib64/stubs"},
			loader: []string{"libcuda.so.1"},
			want:   "libcuda.so.1",
		},
		{
			name:  "a stubs folder is skipped even when nothing better is earlier",
			spec:  specDriver,
			files: []string{"cuda/lib64/stubs/libcuda.so", "dev/libcuda.so"},
			env:   map[string]string{"LD_LIBRARY_PATH": "$ROOT/cuda/lib64/stubs:$ROOT/dev"},
			want:  "/dev/libcuda.so",
		},
		{
			name:  "libcuda.so.1 in a later folder beats a bare libcuda.so in an earlier one",
			spec:  specDriver,
			files: []string{"dev/libcuda.so", "usr/local/nvidia/lib64/libcuda.so.1"},
			env:   map[string]string{"ALEXNET_CUDA_LIB": "$ROOT/dev"},
			want:  "/usr/local/nvidia/lib64/libcuda.so.1",
		},
		{
			name:  "a bare libcuda.so is the last resort",
			spec:  specDriver,
			files: []string{"dev/libcuda.so"},
			env:   map[string]string{"ALEXNET_CUDA_LIB": "$ROOT/dev"},
			want:  "/dev/libcuda.so",
		},
		{
			name: "a refused library and its companions are closed, and the search goes on",
			spec: specCUBLAS,
			files: []string{
				"new/libcublas.so.13", "new/libcublasLt.so.13",
				"old/libcublas.so.12", "old/libcublasLt.so.12",
			},
			env:       map[string]string{"LD_LIBRARY_PATH": "$ROOT/new:$ROOT/old"},
			reject:    ".so.13",
			want:      "/old/libcublas.so.12",
			preloaded: []string{"/old/libcublasLt.so.12"},
			closed:    []string{"/new/libcublas.so.13", "/new/libcublasLt.so.13"},
		},
		{
			name: "companions of a library that fails to open are closed",
			spec: specCUDNN,
			files: []string{
				"a/libcudnn.so.9!broken", "a/libcudnn_graph.so.9", "a/libcudnn_ops.so.9",
				"b/libcudnn.so.9",
			},
			env:    map[string]string{"ALEXNET_CUDA_LIB": "$ROOT/a:$ROOT/b"},
			want:   "/b/libcudnn.so.9",
			closed: []string{"/a/libcudnn_ops.so.9", "/a/libcudnn_graph.so.9"},
		},
		{
			name:   "a refused library from the system loader is closed",
			spec:   specCUBLAS,
			files:  []string{"usr/local/cuda/lib64/libcublas.so.12"},
			loader: []string{"libcublas.so.13"},
			reject: ".so.13",
			want:   "/usr/local/cuda/lib64/libcublas.so.12",
			closed: []string{"libcublas.so.13"},
		},
		{
			name: "a refused library whose sibling stays loaded stops the search",
			spec: specCUBLAS,
			files: []string{
				"new/libcublas.so.13", "new/libcublasLt.so.13",
				"old/libcublas.so.12", "old/libcublasLt.so.12",
			},
			env:      map[string]string{"LD_LIBRARY_PATH": "$ROOT/new:$ROOT/old"},
			reject:   ".so.13",
			sticky:   "new/libcublasLt.so.13",
			resident: "/new/libcublasLt.so.13",
		},
		{
			name:    "nowhere",
			spec:    specCUDNN,
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			broken := fakeTree(t, root, tc.files...)
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = strings.ReplaceAll(v, "$ROOT", root)
			}
			se := searchEnv{getenv: envOf(env), root: root, home: filepath.Join(root, "home")}
			op := &fakeOpener{broken: broken, loader: map[string]bool{}, sticky: map[string]bool{}}
			if tc.sticky != "" {
				op.sticky[filepath.Join(root, tc.sticky)] = true
			}
			for _, l := range tc.loader {
				op.loader[l] = true
			}
			var accept acceptFunc
			if tc.reject != "" {
				accept = func(path string, _ uintptr) error {
					if strings.Contains(path, tc.reject) {
						return errors.New("built for CUDA 13, driver supports 12.8")
					}
					return nil
				}
			}
			res, err := locate(tc.spec, se.dirs(tc.spec), op, accept)
			if tc.resident != "" {
				var re *ResidentError
				if !errors.As(err, &re) || len(re.Resident) != 1 || strings.TrimPrefix(re.Resident[0], root) != tc.resident {
					t.Fatalf("err = %v, want a *ResidentError naming %s", err, tc.resident)
				}
				if !strings.Contains(err.Error(), "cuBLAS was refused") || !strings.Contains(err.Error(), "ALEXNET_CUDA_LIB") {
					t.Errorf("message: %v", err)
				}
				return
			}
			if tc.wantErr {
				var nf *NotFoundError
				if !errors.As(err, &nf) {
					t.Fatalf("err = %v, want *NotFoundError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := strings.TrimPrefix(res.path, root)
			if got != tc.want {
				t.Errorf("found %q, want %q\ntried:\n%s", got, tc.want, strings.Join(res.tried, "\n"))
			}
			var pre []string
			for _, p := range res.preloaded {
				pre = append(pre, strings.TrimPrefix(p, root))
			}
			if !slices.Equal(pre, tc.preloaded) {
				t.Errorf("preloaded %q, want %q", pre, tc.preloaded)
			}
			// Companions are opened before the library that needs them.
			if len(res.preloaded) > 0 && op.opened[len(op.opened)-1] != res.path {
				t.Errorf("open order %q: library not last", op.opened)
			}
			var closed []string
			for _, p := range op.closed {
				closed = append(closed, strings.TrimPrefix(p, root))
			}
			if !slices.Equal(closed, tc.closed) {
				t.Errorf("closed %q, want %q", closed, tc.closed)
			}
			// Nothing stays open but the library and its companions.
			want := append([]string{res.path}, res.preloaded...)
			slices.Sort(want)
			if got := op.still(); !slices.Equal(got, want) {
				t.Errorf("left open %q, want %q", got, want)
			}
			if tc.reject != "" && !strings.Contains(strings.Join(res.tried, "\n"), "unusable: built for CUDA 13") {
				t.Errorf("the refusal is not in the search log:\n%s", strings.Join(res.tried, "\n"))
			}
			// A refusal is kept even though another copy was taken.
			if tc.reject != "" && (len(res.skipped) != 1 || !strings.Contains(res.skipped[0], "unusable: built for CUDA 13")) {
				t.Errorf("skipped = %q", res.skipped)
			}
		})
	}
}

func TestNotFoundErrorListsEverywhere(t *testing.T) {
	root := t.TempDir()
	fakeTree(t, root, "empty/README")
	se := searchEnv{
		root: root, home: filepath.Join(root, "home"),
		getenv: envOf(map[string]string{"ALEXNET_CUDA_LIB": filepath.Join(root, "empty"), "CUDA_HOME": filepath.Join(root, "nocuda")}),
	}
	op := &fakeOpener{loader: map[string]bool{}}
	_, err := locate(specDriver, se.dirs(specDriver), op, nil)
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want *NotFoundError", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"libcuda.so.1 not found",
		"ALEXNET_CUDA_LIB",
		filepath.Join(root, "empty", "libcuda.so.1") + " (ALEXNET_CUDA_LIB): no such file",
		"libcuda.so.1 via system loader: ",
		filepath.Join(root, "nocuda", "lib64") + " (CUDA_HOME): no such directory",
		filepath.Join(root, "usr/local/cuda/lib64"),
		filepath.Join(root, "usr/local/nvidia/lib64"),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	// The pip-only libraries say where Python packages were looked for.
	_, err = locate(specCUDNN, se.dirs(specCUDNN), op, nil)
	if !strings.Contains(err.Error(), "python site-packages: no nvidia/*/lib folder found") {
		t.Errorf("cuDNN error does not mention the Python search:\n%v", err)
	}
}

// orderedLoader opens "b" only once "a" is open, and never "bad".
type orderedLoader struct{ open_ map[string]bool }

func (l *orderedLoader) open(p string) (uintptr, error) {
	if p == "b" && !l.open_["a"] {
		return 0, errors.New("b: needs a")
	}
	if p == "bad" {
		return 0, errors.New("bad: broken")
	}
	l.open_[p] = true
	return uintptr(len(l.open_)), nil
}

func (l *orderedLoader) close(uintptr) error { return nil }

func (l *orderedLoader) resident([]string) []string { return nil }

func TestOpenCompanionsRetriesOutOfOrder(t *testing.T) {
	var tried []string
	var got []string
	for _, c := range openCompanions([]string{"b", "a", "bad"}, &orderedLoader{map[string]bool{}}, &tried) {
		got = append(got, c.path)
	}
	if want := []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("opened %q, want %q", got, want)
	}
	if len(tried) != 1 || !strings.Contains(tried[0], "bad (companion, not fatal): bad: broken") {
		t.Errorf("tried = %q", tried)
	}
}

func TestCheckCUDAMajor(t *testing.T) {
	for _, tc := range []struct {
		lib     int
		driver  int
		refused bool
	}{
		{13, 13000, false},
		{12, 13000, false}, // an older library on a newer driver
		{12, 12080, false},
		{13, 12080, true}, // CUDA 13 wheels on a 12.8 driver
		{13, 0, false},    // no driver: nothing to hold it against
	} {
		err := checkCUDAMajor("cuBLAS", tc.lib, tc.driver)
		if (err != nil) != tc.refused {
			t.Errorf("library CUDA %d, driver %d: %v", tc.lib, tc.driver, err)
		}
		if err != nil && !strings.Contains(err.Error(), "cuBLAS is built for CUDA 13, and the driver supports CUDA 12.8") {
			t.Errorf("message: %v", err)
		}
	}
	// NVRTC's PTX needs a driver of its own release or newer, minor too;
	// its CUBIN a driver of the same major.
	for _, tc := range []struct {
		major, minor, driver int
		cubin                bool
		refused              string // what the refusal says; "" if taken
	}{
		{13, 0, 13000, false, ""},
		{12, 8, 13000, false, ""},
		{13, 1, 13000, false, "NVRTC 13.1 writes PTX that the driver"}, // newer pip wheels beside a 13.0 driver
		{13, 1, 13000, true, ""},                                       // the same, writing CUBINs
		{13, 0, 13020, false, ""},
		{13, 2, 13020, false, ""},
		{13, 0, 12080, false, "NVRTC 13.0 is for CUDA 13, and the driver supports CUDA 12.8"},
		{13, 0, 12080, true, "NVRTC 13.0 is for CUDA 13, and the driver supports CUDA 12.8"},
		{12, 9, 12040, true, ""},
		{13, 1, 0, false, ""}, // no driver: nothing to hold it against
	} {
		err := checkNVRTCVersion(tc.major, tc.minor, tc.driver, tc.cubin)
		if (err != nil) != (tc.refused != "") {
			t.Errorf("NVRTC %d.%d (cubin %v), driver %d: %v", tc.major, tc.minor, tc.cubin, tc.driver, err)
		}
		if err != nil && !strings.Contains(err.Error(), tc.refused) {
			t.Errorf("message: %v, want %q", err, tc.refused)
		}
	}
	// The refusal reads as such in the error and the probe table.
	// It names the family, not the preferred soname, which may be the
	// very one the driver cannot run.
	nf := &NotFoundError{Lib: "libcublas.so.13", Family: "cuBLAS", Tried: []string{"/x/libcublas.so.13 (python): unusable: cuBLAS is built for CUDA 13"}}
	if !strings.HasPrefix(nf.Error(), "cuda: no usable cuBLAS found") {
		t.Errorf("error: %v", nf)
	}
	r := ProbeReport{CUBLAS: LibraryReport{Name: "cuBLAS"}}
	fillLib(&r.CUBLAS, &loadedLib{}, nf)
	if md := r.Markdown(); !strings.Contains(md, "| cuBLAS | unusable | `no usable cuBLAS: /x/libcublas.so.13 (python): unusable: cuBLAS is built for CUDA 13` |") {
		t.Errorf("probe table:\n%s", md)
	}
	// A copy passed over for another is listed even on success.
	ok := ProbeReport{CUBLAS: LibraryReport{Name: "cuBLAS"}}
	fillLib(&ok.CUBLAS, &loadedLib{res: located{path: "/y/libcublas.so.12", handle: 1, skipped: []string{"/x/libcublas.so.13: unusable: cuBLAS is built for CUDA 13"}}}, nil)
	if md := ok.Markdown(); !strings.Contains(md, "cuBLAS: passed over (opened, then refused):\n- /x/libcublas.so.13: unusable") {
		t.Errorf("probe table after a skip:\n%s", md)
	}
	// A refused copy that stayed loaded reads as unusable too.
	bad := ProbeReport{CUBLAS: LibraryReport{Name: "cuBLAS"}}
	fillLib(&bad.CUBLAS, &loadedLib{}, &ResidentError{Lib: "cuBLAS", Refused: "/x/libcublas.so.13: CUDA 13", Resident: []string{"/x/libcublasLt.so.13"}})
	if md := bad.Markdown(); !strings.Contains(md, "| cuBLAS | unusable | `no usable cuBLAS: cuda: cuBLAS was refused") {
		t.Errorf("probe table after a resident refusal:\n%s", md)
	}
}

func TestSonameSuffix(t *testing.T) {
	for in, want := range map[string]string{
		"libcublas.so.13": "13", "libcublas.so": "", "libnvrtc.so.12": "12", "libcudnn.so.9": "9",
	} {
		if got := sonameSuffix(in); got != want {
			t.Errorf("sonameSuffix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMappedPathFindsLoadedLibc(t *testing.T) {
	// A CGO_ENABLED=0 binary that uses purego is linked against libc, so
	// libc appears in /proc/self/maps under its real file name.
	p := mappedPath("libc.so.6")
	if p == "" {
		t.Skip("libc not mapped in this process (static binary?)")
	}
	if !strings.HasPrefix(filepath.Base(p), "libc.so") && !strings.HasPrefix(filepath.Base(p), "libc-") {
		t.Errorf("mappedPath(libc.so.6) = %q", p)
	}
	if got := mappedPath("libdoesnotexist.so.1"); got != "" {
		t.Errorf("mappedPath of an unloaded library = %q", got)
	}
}

// TestInitWithoutDriver pins what a CPU machine sees: Init fails with an
// error that names libcuda.so.1 and the places searched. On a GPU machine
// it is skipped.
func TestInitWithoutDriver(t *testing.T) {
	_, err := Init()
	if err == nil {
		t.Skip("a CUDA driver and GPU are present")
	}
	msg := err.Error()
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		// A real libcuda without a GPU (a CPU machine after `just
		// cuda-cpu-libs`): every symbol bound, and cuInit's failure is
		// named by the driver's own strings, with the library's path.
		var e *Error
		if !errors.As(err, &e) || e.API != APIDriver || !strings.HasPrefix(e.Name, "CUDA_ERROR_") || e.Desc == "" ||
			!strings.Contains(msg, "cuInit") || !strings.Contains(msg, "libcuda.so") {
			t.Errorf("driver present but unusable, and the error does not say why: %v", err)
		}
		if _, err2 := InitDevice(3); err2 == nil || err2.Error() != msg {
			t.Errorf("InitDevice after a failed cuInit: %v, want the same error", err2)
		}
		t.Logf("driver present, no GPU: %v", err)
		return
	}
	for _, want := range []string{"libcuda.so.1", "/usr/local/cuda/lib64", "system loader", "ALEXNET_CUDA_LIB"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	// Every entry point that needs the driver fails the same way, without
	// panicking.
	if _, err := InitDevice(3); err == nil {
		t.Error("InitDevice succeeded without a driver")
	}
}

func TestInitBadDeviceVariable(t *testing.T) {
	t.Setenv("ALEXNET_CUDA_DEVICE", "gpu0")
	_, err := Init()
	if err == nil || !strings.Contains(err.Error(), `ALEXNET_CUDA_DEVICE="gpu0"`) {
		t.Errorf("err = %v", err)
	}
}

// TestResidentWithRealLoader: dl.resident sees a library opened by a
// symlinked path or a bare soname, and no longer sees it once closed. It
// uses whichever small system library is there, and skips when none is.
func TestResidentWithRealLoader(t *testing.T) {
	var path string
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libbz2.so.1.0", "/usr/lib/aarch64-linux-gnu/libbz2.so.1.0", "/lib64/libbz2.so.1"} {
		if _, err := os.Stat(p); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no libbz2 on this machine to load and unload")
	}
	var ld dl
	if got := ld.resident([]string{path}); len(got) != 0 {
		t.Skipf("%s is already loaded in this process", path)
	}
	h, err := ld.open(path)
	if err != nil {
		t.Skipf("dlopen %s: %v", path, err)
	}
	if got := ld.resident([]string{path, "/nonexistent/libx.so"}); !slices.Equal(got, []string{path}) {
		t.Errorf("after open: resident = %q", got)
	}
	if got := ld.resident([]string{"libbz2.so.1.0"}); len(got) != 1 {
		t.Errorf("by soname: resident = %q", got)
	}
	if err := ld.close(h); err != nil {
		t.Fatal(err)
	}
	if got := ld.resident([]string{path}); len(got) != 0 {
		t.Errorf("after close: resident = %q", got)
	}
}

// TestRefusedRealLibraryUnloads runs the search over the real NVRTC and
// libcuda that `just cuda-cpu-check` fetches (and cuBLAS and cuDNN where
// `gpu/run.sh` finds PyTorch's wheels), refusing every copy, and
// checks that each refused copy and its siblings were unloaded again: the
// search ends "not found", not with a *ResidentError, and nothing of the
// library is left in /proc/self/maps. Skips without such a library, or
// when it is already loaded in this process (run it on its own).
func TestRefusedRealLibraryUnloads(t *testing.T) {
	if os.Getenv("ALEXNET_CUDA_LIB") == "" {
		t.Skip("ALEXNET_CUDA_LIB is not set (just cuda-cpu-check and gpu/run.sh set it)")
	}
	// Each copy is vetted as the real search does (its symbols bound, its
	// version asked, which in cuDNN's shim could load sub-libraries of
	// its own), then refused.
	for _, tc := range []struct {
		spec libSpec
		stem string
		vet  func(path string, h uintptr) error
	}{
		{specNVRTC, "libnvrtc", func(path string, h uintptr) error {
			a := &nvrtcAPI{}
			if _, err := bindSyms(path, h, nvrtcSyms(a)); err != nil {
				return err
			}
			var maj, mnr int32
			a.version(&maj, &mnr)
			return nil
		}},
		{specDriver, "libcuda.so", nil},
		{specCUBLAS, "libcublas", func(path string, h uintptr) error {
			a := &cublasAPI{}
			if _, err := bindSyms(path, h, cublasSyms(a)); err != nil {
				return err
			}
			var v int32
			a.getProperty(0, &v)
			return nil
		}},
		{specCUDNN, "libcudnn", func(path string, h uintptr) error {
			a := &cudnnAPI{}
			if _, err := bindSyms(path, h, cudnnSyms(a)); err != nil {
				return err
			}
			a.getVersion()
			if a.getCudartVersion != nil {
				a.getCudartVersion()
			}
			return nil
		}},
	} {
		t.Run(tc.spec.family, func(t *testing.T) {
			if p := mappedWithPrefix(tc.stem); p != "" {
				t.Skipf("already loaded (%s): run this test on its own", p)
			}
			var refused []string
			_, err := locate(tc.spec, processEnv().dirs(tc.spec), dl{}, func(path string, h uintptr) error {
				refused = append(refused, path)
				if tc.vet != nil {
					if err := tc.vet(path, h); err != nil {
						return err
					}
				}
				return errors.New("refused by the test")
			})
			if len(refused) == 0 {
				t.Skip("no copy found to refuse")
			}
			var nf *NotFoundError
			var re *ResidentError
			switch {
			case errors.As(err, &re):
				// The loader may keep a library (cuDNN 9.19's wheel keeps
				// libcudnn_graph, _ops and _adv after dlclose on the
				// H200 machine). Then the search must stop and say so,
				// naming exactly what is still mapped: the safety net
				// that keeps a refused build from mixing into the next.
				for _, p := range re.Resident {
					if !slices.Contains(mappedFiles(), p) {
						t.Errorf("ResidentError names %s, which is not mapped", p)
					}
				}
				if len(re.Resident) == 0 {
					t.Error("ResidentError names nothing")
				}
				t.Logf("refused %q; the loader kept %q, and the search stopped with: %v", refused, re.Resident, err)
				return
			case !errors.As(err, &nf):
				t.Fatalf("err = %v, want *NotFoundError (or *ResidentError) after refusing %q", err, refused)
			}
			if p := mappedWithPrefix(tc.stem); p != "" {
				t.Errorf("%s still mapped after refusing %q, and the search did not say so", p, refused)
			}
			t.Logf("refused and unloaded %q", refused)
		})
	}
}

// mappedWithPrefix is the first file in /proc/self/maps whose name starts
// with prefix ("libcudnn" also finds cuDNN's sub-libraries), or "".
func mappedWithPrefix(prefix string) string {
	for _, p := range mappedFiles() {
		if strings.HasPrefix(filepath.Base(p), prefix) {
			return p
		}
	}
	return ""
}
