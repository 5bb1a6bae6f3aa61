//go:build unix

package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunScriptOut runs run.sh on this machine (no GPU) with stub
// binaries, a tight budget and a device tool's $OUT, and checks the two
// things the device call depends on: every step's timeout is cut to the
// budget, so one slow step cannot push the run past the call's limit (a
// stub bench sleeps 300 s under a 15 s budget), and what lands in $OUT
// fits what the tool brings back: at most 8 files, no deeper than
// $OUT/a/b/file, plain names, with the whole results folder in one
// archive.
func TestRunScriptOut(t *testing.T) {
	b, out, took := runScriptWithStubs(t, nil, 15)
	if took > 60*time.Second {
		t.Errorf("run.sh took %v under a 15 s budget: a step's timeout was not cut to it\n%s", took, b)
	}
	if !strings.Contains(string(b), "TIMEOUT bench-alexnet-owt-tf32") {
		t.Errorf("the sleeping bench was not stopped at the budget:\n%s", b)
	}
	// The required rows come before the test binaries and the
	// real pipeline, whose never-run code could hang: the order is the
	// priority when the budget runs out. Here the bench hangs, so the
	// network's own tests (gpu-test) move ahead of the cross-check, which
	// builds the network too.
	if !strings.Contains(string(b), "diagnosing: bench-alexnet-owt-tf32 hung") {
		t.Errorf("a hung bench did not bring the network's tests forward:\n%s", b)
	}
	order := []string{"bench-alexnet-owt-tf32", "torch-bench-tf32", "cuda-test", "gpu-test", "crosscheck", "crosscheck-det", "bench-alexnet-fp32"}
	last := -1
	for _, st := range order {
		i := strings.Index(string(b), " "+st+" ")
		if i < 0 {
			i = strings.Index(string(b), " "+st+":")
		}
		if i < 0 {
			continue // not reached (torch steps need a python)
		}
		if i < last {
			t.Errorf("%s comes before a step listed ahead of it (%v):\n%s", st, order, b)
		}
		last = i
	}

	// The device tool's limits on what comes back from $OUT.
	name := regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	files := 0
	err := filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == out {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		parts := strings.Split(rel, string(filepath.Separator))
		for _, part := range parts {
			if !name.MatchString(part) {
				t.Errorf("$OUT/%s: name the device tool does not bring back", rel)
			}
		}
		if !d.IsDir() {
			files++
			if len(parts) > 3 {
				t.Errorf("$OUT/%s is more than two folders down", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 || files > 8 {
		t.Errorf("%d files in $OUT; the device tool brings back 1 to 8", files)
	}
	for _, f := range []string{"run.log", "table.md"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("$OUT/%s: %v", f, err)
		}
	}
	in := archive(t, out)
	for _, want := range []string{"results/run.log", "results/table.md", "results/probe.md", "results/bench-alexnet-owt-tf32.log", "results/machine.jsonl"} {
		if _, ok := in[want]; !ok {
			t.Errorf("gpu-results.tar.gz lacks %s (has %v)", want, in)
		}
	}
}

// runScriptWithStubs runs run.sh on this machine (no GPU) with stub
// binaries (gpucheck bench sleeps 300 s; override replaces any by name,
// and a name with a slash is a file written under the root instead),
// a budget of that many seconds and a device tool's $OUT, with env added.
// It returns run.sh's output, $OUT and how long the run took.
func runScriptWithStubs(t *testing.T, override map[string]string, budget int, env ...string) (b []byte, out string, took time.Duration) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs run.sh for about 20 s")
	}
	for _, tool := range []string{"bash", "tar", "xz", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	root := t.TempDir()
	g := filepath.Join(root, "gpu")
	stage := filepath.Join(root, "stage")
	for _, d := range []string{g, stage} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	src, err := os.ReadFile("run.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(g, "run.sh"), src, 0o755); err != nil {
		t.Fatal(err)
	}
	stubs := map[string]string{
		// bench never returns on its own; table prints a table.
		"gpucheck":  `case $1 in bench) sleep 300;; table) echo "| table |";; probe) echo "| cuDNN | 9 |";; *) exit 1;; esac`,
		"cuda.test": "exit 1", "gpu.test": "exit 1", "feed.test": "exit 1", "ingest": "exit 1", "train": "exit 1", "benchpipeline": "exit 1",
	}
	for name, body := range override {
		if strings.Contains(name, "/") { // a file of the carried tree, not a binary
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		stubs[name] = body
	}
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(stage, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pack := exec.Command("bash", "-c", `tar -C "$1" -cf - . | xz -0 >"$2"`, "_", stage, filepath.Join(g, "bin.tar.xz"))
	if b, err := pack.CombinedOutput(); err != nil {
		t.Fatalf("packing the stubs: %v\n%s", err, b)
	}
	out = filepath.Join(root, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(g, "run.sh"))
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "OUT="+out, "GPUCHECK_BUDGET="+strconv.Itoa(budget), "GPUCHECK_GRACE=3", "GPUCHECK_PYTHON="), env...)
	// Whatever a step left running ends with the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t.Cleanup(func() {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	t0 := time.Now()
	b, err = cmd.CombinedOutput()
	took = time.Since(t0)
	if err != nil {
		t.Fatalf("run.sh: %v\n%s", err, b)
	}
	return b, out, took
}

// A Go test binary whose own -test.timeout fires (it panics and exits 2,
// inside the step's longer limit) has hung as surely as one the step's
// timeout stops: the layer check's hang must cut the limits of the steps
// after it that build the network too, and bring the diagnosis forward.
func TestRunScriptGoTestTimeoutIsAHang(t *testing.T) {
	hang := `case "$*" in *TestGPULayerCheck*) echo "panic: test timed out after 170s"; echo "running tests:"; exit 2;; *) exit 1;; esac`
	b, _, _ := runScriptWithStubs(t, map[string]string{"gpu.test": hang}, 60, "GPUCHECK_ONLY=layer-check$|crosscheck$")
	for _, want := range []string{"TIMEOUT layer-check", "diagnosing: layer-check hung", "crosscheck: timeout cut to 45 s, as layer-check hung"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("run.sh does not say %q:\n%s", want, b)
		}
	}
	if strings.Contains(string(b), "FAILED layer-check") {
		t.Errorf("the test's own timeout was told as a failure:\n%s", b)
	}
}

// A Go binary run behind the wrapper that sends its stdout to a file
// (learn-cuda's train --json) gets SIGQUIT at its timeout, as one run
// directly does, so its log says where it hung: with SIGTERM, train
// would take it for Ctrl-C and leave no stacks.
func TestRunScriptWrappedGoBinaryGetsQuit(t *testing.T) {
	train := `trap 'echo "got QUIT" >&2; exit 3' QUIT; trap 'echo "got TERM" >&2; exit 4' TERM; sleep 300 & wait; wait`
	b, out, _ := runScriptWithStubs(t, map[string]string{"train": train,
		"gpu/fmnist/meta.json": "{}", "gpu/learn-args": "--model small-fc\n", "gpu/learn-cpu.json": `{"top1_err":0.17}`}, 15, "GPUCHECK_ONLY=learn-cuda$")
	if !strings.Contains(string(b), "TIMEOUT learn-cuda") {
		t.Fatalf("the stub did not time out:\n%s", b)
	}
	if log := archive(t, out)["results/learn-cuda.log"]; !strings.Contains(log, "got QUIT") {
		t.Errorf("learn-cuda's train got no SIGQUIT; its log:\n%s", log)
	}
}

// Every timeout in run.sh carries a kill-after. GNU timeout without one
// sends its signal and then waits for the command however long it takes:
// a process stuck in the driver, or one that ignores TERM, would hold the
// run until the device call's limit, and the results of every step after
// it would never come back. With one, timeout SIGKILLs its process group,
// itself included, and returns 137 whether or not the command has died.
func TestRunScriptTimeoutsKill(t *testing.T) {
	src, err := os.ReadFile("run.sh")
	if err != nil {
		t.Fatal(err)
	}
	call := regexp.MustCompile(`(?:^|[;&|]|\$\()\s*timeout\s+([^>|]*)`)
	found := 0
	for i, line := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range call.FindAllStringSubmatch(line, -1) {
			found++
			if !regexp.MustCompile(`(^|\s)(-k\s+\d|--kill-after=)`).MatchString(m[1]) {
				t.Errorf("run.sh:%d: a timeout without --kill-after: %s", i+1, strings.TrimSpace(line))
			}
		}
	}
	if found < 5 {
		t.Errorf("found %d timeout calls in run.sh: the pattern no longer matches them", found)
	}
}

// archive returns the files of $OUT/gpu-results.tar.gz by name.
func archive(t *testing.T, out string) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "gpu-results.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "./")] = string(b)
	}
}

// run.sh's STEPS, against which it checks GPUCHECK_ONLY before any work,
// names every step the script runs and no other: a name left out would
// be refused, one too many would pass a filter that runs nothing.
func TestRunScriptStepNames(t *testing.T) {
	src, err := os.ReadFile("run.sh")
	if err != nil {
		t.Fatal(err)
	}
	// The steps as called, NAME then TIMEOUT: step NAME, netstep "NAME",
	// feedstep …, and $exp "NAME" (netstep, or forced netstep), with $m
	// each model.
	call := regexp.MustCompile(`(?m)^[^#\n]*?(?:\bstep|\bnetstep|\bfeedstep|\$exp) +"?([a-z][a-z0-9$-]*)"? +[0-9]`)
	used := map[string]bool{}
	for _, m := range call.FindAllSubmatch(src, -1) {
		name := string(m[1])
		for _, model := range []string{"alexnet-owt", "alexnet"} {
			used[strings.ReplaceAll(name, "$m", model)] = true
		}
	}
	cmd := exec.Command("bash", "run.sh")
	cmd.Env = append(os.Environ(), "GPUCHECK_ONLY=no-such-step")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("GPUCHECK_ONLY=no-such-step: exit %d (%v), want 2 before any work:\n%s", code, err, out)
	}
	_, list, ok := strings.Cut(string(out), "(the steps: ")
	if !ok {
		t.Fatalf("no list of steps in:\n%s", out)
	}
	list, _, _ = strings.Cut(list, ")")
	listed := map[string]bool{}
	for _, s := range strings.Fields(list) {
		listed[s] = true
	}
	for s := range used {
		if !listed[s] {
			t.Errorf("step %s runs but is not in STEPS", s)
		}
	}
	for s := range listed {
		if !used[s] {
			t.Errorf("STEPS names %s, which no step call runs", s)
		}
	}
	// A part of the filter that names no step, and one grep cannot read.
	for _, only := range []string{"layer-check|bench-owt", "crosscheck("} {
		cmd := exec.Command("bash", "run.sh")
		cmd.Env = append(os.Environ(), "GPUCHECK_ONLY="+only)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "GPUCHECK_ONLY='"+only+"'") {
			t.Errorf("GPUCHECK_ONLY=%s: exit %d:\n%s", only, cmd.ProcessState.ExitCode(), out)
		}
	}
}
