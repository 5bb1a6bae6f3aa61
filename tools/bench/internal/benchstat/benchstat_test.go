package benchstat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %g, want %g", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("Median reordered its input: %v", tc.in)
			}
		}
	}
}

func TestCPUTimeAdvances(t *testing.T) {
	c0 := CPUTime()
	x := 0.0
	for start := time.Now(); time.Since(start) < 20*time.Millisecond; {
		x += 1e-9
	}
	if c1 := CPUTime(); c1 <= c0 || x == 0 {
		t.Errorf("CPU time %v then %v across 20 ms of spinning", c0, c1)
	}
}

func TestPythonHelpers(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 on PATH")
	}
	if msg := PythonCannotImport(filepath.Join(t.TempDir(), "none"), "sys"); msg == "" {
		t.Error("a missing interpreter imports")
	}
	if msg := PythonCannotImport(py, "sys", "json"); msg != "" {
		t.Errorf("python3 cannot import sys: %s", msg)
	}
	if msg := PythonCannotImport(py, "no_such_module_here"); !strings.Contains(msg, "no_such_module_here") {
		t.Errorf("missing module reported as %q", msg)
	}

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var got struct{ Images int }
	if err := RunJSON(py, Allocator{}, []string{write("ok.py", `import json; print(json.dumps({"Images": 7}))`)}, &got); err != nil || got.Images != 7 {
		t.Errorf("RunJSON: %+v, %v", got, err)
	}
	err = RunJSON(py, Allocator{}, []string{write("fails.py", "import sys; sys.exit('bad input here')")}, &got)
	if err == nil || !strings.Contains(err.Error(), "fails.py") || !strings.Contains(err.Error(), "bad input here") {
		t.Errorf("failing script: %v", err)
	}
	err = RunJSON(py, Allocator{}, []string{write("garbage.py", "print('not json')")}, &got)
	if err == nil || !strings.Contains(err.Error(), "not json") {
		t.Errorf("unreadable output: %v", err)
	}
	// The allocator's environment reaches the script, and with jemalloc
	// installed it is what the script runs on.
	env := write("env.py", `import json, os; print(json.dumps({"Preload": os.environ.get("LD_PRELOAD", ""), "Maps": open("/proc/self/maps").read()}))`)
	var seen struct{ Preload, Maps string }
	if err := RunJSON(py, Allocator{Env: []string{"LD_PRELOAD="}}, []string{env}, &seen); err != nil || seen.Preload != "" {
		t.Errorf("env: %+v %v", seen.Preload, err)
	}
	alloc, warn, err := ReferenceAllocator("jemalloc")
	if err != nil {
		t.Fatal(err)
	}
	if warn != "" {
		t.Logf("%s", warn)
	} else if err := RunJSON(py, alloc, []string{env}, &seen); err != nil || !strings.Contains(seen.Maps, "libjemalloc") {
		t.Errorf("%s: the reference does not map jemalloc (%v)", alloc.Name, err)
	}
	if a, _, err := ReferenceAllocator("glibc-thp"); err != nil || RunJSON(py, a, []string{write("tun.py", `import json, os; print(json.dumps({"Preload": os.environ.get("GLIBC_TUNABLES", "")}))`)}, &seen) != nil || seen.Preload != "glibc.malloc.hugetlb=1" {
		t.Errorf("glibc-thp: %+v %v", seen, err)
	}
	if _, _, err := ReferenceAllocator("tcmalloc"); err == nil {
		t.Error("an unknown allocator was accepted")
	}
}

// A child's peak is read from its rusage; one that never ran has none,
// and this process has a peak of its own.
func TestPeakRSS(t *testing.T) {
	if got := PeakRSSMiB(nil); got != 0 {
		t.Errorf("PeakRSSMiB(nil) = %v", got)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("no true(1): %v", err)
	}
	if got, self := PeakRSSMiB(cmd.ProcessState), SelfPeakRSSMiB(); got <= 0 || self <= 0 {
		t.Errorf("true's peak %v MiB, ours %v MiB", got, self)
	}
}

type fullDisk struct{}

func (fullDisk) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A report stdout could not take is exit 1, whatever the run returned but
// a failure of its own.
func TestMainCode(t *testing.T) {
	report := func(code int) func([]string, io.Writer, io.Writer) int {
		return func(_ []string, stdout, _ io.Writer) int {
			fmt.Fprintln(stdout, "the figures")
			return code
		}
	}
	for _, tc := range []struct {
		stdout io.Writer
		run    int
		want   int
		say    string
	}{
		{&bytes.Buffer{}, 0, 0, ""},
		{&bytes.Buffer{}, ExitNoReference, ExitNoReference, ""},
		{fullDisk{}, 0, 1, "bench: writing the report: no space left on device"},
		{fullDisk{}, ExitNoReference, 1, "writing the report"},
		{fullDisk{}, 2, 2, ""},
	} {
		var stderr bytes.Buffer
		got := mainCode("bench", nil, tc.stdout, &stderr, report(tc.run))
		if got != tc.want || !strings.Contains(stderr.String(), tc.say) || tc.say == "" && stderr.Len() > 0 {
			t.Errorf("run's %d, stdout %T: exit %d, stderr %q", tc.run, tc.stdout, got, stderr.String())
		}
	}
}
