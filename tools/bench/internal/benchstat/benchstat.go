// Package benchstat holds what the bench commands share in how they
// measure: the median they report, the process's CPU time (on a shared
// machine a steadier yardstick than the wall clock), and how they run
// their Python references.
package benchstat

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Median is the middle value of v (the mean of the middle two when even),
// 0 for none.
func Median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// PythonCannotImport says why python cannot import every one of modules
// (Python's last line of complaint, or the exec error), or "" when it can:
// the bench references check this before they run.
func PythonCannotImport(python string, modules ...string) string {
	out, err := exec.Command(python, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
	if err == nil {
		return ""
	}
	msg := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg == "" {
		msg = err.Error()
	}
	return msg
}

// Allocator is the memory allocator a Python reference runs with: Env is
// added to its environment, Name says which in reports.
type Allocator struct {
	Name string
	Env  []string
}

// jemallocPaths are where distributions install jemalloc's shared library.
var jemallocPaths = []string{
	"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
	"/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2",
}

// ReferenceAllocator chooses a PyTorch reference's allocator: "jemalloc"
// (preloaded, with page purging off), "glibc-thp" (glibc's malloc on
// transparent huge pages) or "system" (glibc's malloc as it comes). Which
// is a reference's best depends on its work, so each bench defaults to the
// one measured best for its reference: the DataLoader (many small
// buffers, worker processes) ran at 606 img/CPU-s on jemalloc without
// purging, 1,635 on glibc and 2,074 on glibc-thp; the training step the
// other way round (below). glibc
// returns every block above its mmap threshold (at most 32 MiB) to the
// kernel on free, and PyTorch allocates a step's activations afresh, so
// on glibc the reference pays a page fault per 4 KiB of every large
// activation, every step; jemalloc purges freed pages by default too.
// AlexNet at batch 32 on 2 cores (torch 1.13): glibc 10.7 img/s, jemalloc
// as it comes 5.7, with the settings of PyTorch's CPU tuning guide 5.9,
// with purging off (dirty_decay_ms and muzzy_decay_ms -1) 32–34. The last
// is the reference's best, and the one to compare against. With jemalloc
// asked for and not installed, it falls back to glibc and says so.
func ReferenceAllocator(choice string) (Allocator, string, error) {
	switch choice {
	case "system":
		return Allocator{Name: "system malloc (glibc)"}, "", nil
	case "glibc-thp":
		// Transparent huge pages for glibc's large blocks (glibc 2.35+;
		// older ones ignore the tunable): a fault per 2 MiB, not per 4 KiB.
		return Allocator{Name: "glibc malloc, glibc.malloc.hugetlb=1", Env: []string{"GLIBC_TUNABLES=glibc.malloc.hugetlb=1"}}, "", nil
	case "jemalloc":
		for _, p := range jemallocPaths {
			if _, err := os.Stat(p); err == nil {
				return Allocator{Name: "jemalloc, purging off (" + p + ")", Env: []string{
					"LD_PRELOAD=" + p,
					"MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1",
				}}, "", nil
			}
		}
		return Allocator{Name: "system malloc (glibc)"}, "jemalloc is not installed (libjemalloc2; `bash scripts/setup.sh torch` installs it): the reference runs on glibc's malloc, whose page faults slow PyTorch and flatter us", nil
	}
	return Allocator{}, "", fmt.Errorf("unknown allocator %q (want jemalloc, glibc-thp or system)", choice)
}

// RunJSON runs a reference script under python, with alloc's environment,
// and decodes the one JSON value it prints into v. A failure names the
// script and carries its standard error; unreadable output is quoted.
func RunJSON(python string, alloc Allocator, args []string, v any) error {
	cmd := exec.Command(python, args...)
	if len(alloc.Env) > 0 {
		cmd.Env = append(os.Environ(), alloc.Env...)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	name := python
	if len(args) > 0 {
		name = filepath.Base(args[0])
	}
	if err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s: unreadable result %q (%v)", name, strings.TrimSpace(string(out)), err)
	}
	return nil
}

// ExitNoReference is a bench's exit code when it ran but the reference it
// was asked for did not: our figures are printed without the comparison
// the bench exists for, which a script must not take for a full result.
const ExitNoReference = 3

// NoReference says so on w, naming why and the flag that runs ours alone
// (with exit 0), and returns ExitNoReference.
func NoReference(w io.Writer, tool, why, alone string) int {
	fmt.Fprintf(w, "%s: no ratio: the reference did not run (%s); %s runs ours alone (exit 0); exit %d\n", tool, why, alone, ExitNoReference)
	return ExitNoReference
}

// Main is a bench's main: it runs run on the command line and exits with
// its code, except that a report stdout could not take (a full disk) is
// exit 1. The report is a bench's whole output, and a script reading
// exit 0 (or 3, ours alone) would take the lost figures for written.
func Main(tool string, run func(args []string, stdout, stderr io.Writer) int) {
	os.Exit(mainCode(tool, os.Args[1:], os.Stdout, os.Stderr, run))
}

func mainCode(tool string, args []string, stdout, stderr io.Writer, run func(args []string, stdout, stderr io.Writer) int) int {
	w := &checkedWriter{w: stdout}
	code := run(args, w, stderr)
	if w.err != nil && (code == 0 || code == ExitNoReference) {
		fmt.Fprintf(stderr, "%s: writing the report: %v\n", tool, w.err)
		return 1
	}
	return code
}

// checkedWriter keeps the first error of its writes.
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}
