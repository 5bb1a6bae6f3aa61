package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/cli/clitest"
	"github.com/alexnet-repro/alexnet/internal/dirlock"
	"github.com/alexnet-repro/alexnet/internal/fixtures"
	"github.com/alexnet-repro/alexnet/pkg/imageio"
)

// The test binary doubles as the ingest command when this variable is set,
// so a test can kill or signal a real ingest process: main itself runs,
// with its signal handling.
func TestMain(m *testing.M) {
	if os.Getenv("INGEST_AS_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// signalMidRun starts this test binary as a real ingest with args, sends
// sig once out holds shards train shards (or after 20 s), and returns
// Wait's result; the process's stderr goes to stderr.
func signalMidRun(t *testing.T, args []string, out string, shards int, sig os.Signal, stderr io.Writer) error {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "INGEST_AS_MAIN=1")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(out, "train-*.shard")); len(m) >= shards {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Signal(sig)
	return cmd.Wait()
}

// A real SIGTERM (not a cancelled context) stops a real ingest with exit 130
// and the line saying the complete shards are kept; the same command then
// finishes the job.
func TestSIGTERMStopsAndResumes(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 70, 20)
	out := t.TempDir()
	args := []string{"--quiet", "--size", "48", "--shard-size", "8", "--workers", "1", "--out", out, root}
	var stderr bytes.Buffer
	err := signalMidRun(t, args, out, 2, syscall.SIGTERM, &stderr)
	if _, serr := os.Stat(filepath.Join(out, "meta.json")); serr == nil {
		t.Skip("the run finished before the signal landed")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != cli.ExitInterrupted {
		t.Fatalf("after SIGTERM: %v, want exit %d\n%s", err, cli.ExitInterrupted, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted; the complete shards in ") {
		t.Errorf("no interrupted line:\n%s", stderr.String())
	}
	var so, se bytes.Buffer
	if code := run(context.Background(), args, &so, &se); code != 0 {
		t.Fatalf("resumed run: exit %d: %s", code, se.String())
	}
}

func outputs(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() || e.Name() == "ingest-report.json" {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		m[e.Name()] = b
	}
	return m
}

// Killed with SIGKILL at some moment, then run again with the same
// arguments, ingest ends with output byte-identical to an uninterrupted
// run's.
func TestKill9ThenResume(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 70, 20)
	args := func(out string) []string {
		return []string{"--quiet", "--size", "48", "--shard-size", "8", "--workers", "1", "--out", out, root}
	}
	want := t.TempDir()
	var so, se bytes.Buffer
	if code := run(context.Background(), args(want), &so, &se); code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", code, se.String())
	}
	out := t.TempDir()
	// Kill once a few shards exist, so the kill lands mid-run.
	signalMidRun(t, args(out), out, 3, syscall.SIGKILL, io.Discard)
	if _, err := os.Stat(filepath.Join(out, "meta.json")); err == nil {
		t.Skip("the run finished before the kill landed; nothing to resume")
	}
	se.Reset()
	if code := run(context.Background(), args(out), &so, &se); code != 0 {
		t.Fatalf("resumed run: exit %d: %s", code, se.String())
	}
	if !strings.Contains(se.String(), "resum") {
		t.Errorf("resumed run did not say it resumed:\n%s", se.String())
	}
	a, b := outputs(t, want), outputs(t, out)
	if len(a) != len(b) {
		t.Fatalf("%d files vs %d", len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Fatalf("%s differs after kill -9 and resume", k)
		}
	}
}

func TestExitCodes(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 3, 2)
	// Range errors must come before the listing: the dataset is missing.
	nope := filepath.Join(root, "nope")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// A split whose every file fails: a text file and an empty one.
	allBad := t.TempDir()
	if err := os.MkdirAll(filepath.Join(allBad, "train", "n00000001"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"a.JPEG": []byte("hello\n"), "b.JPEG": nil} {
		if err := os.WriteFile(filepath.Join(allBad, "train", "n00000001", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An --out holding root's shards, for a run over another dataset.
	full := t.TempDir()
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"--quiet", "--size", "16", "--out", full, root}, &so, &se); code != cli.ExitOK {
		t.Fatalf("setup: exit %d: %s", code, se.String())
	}
	// Every image good, but val unlabelled: no label file beside it.
	unlabelled := t.TempDir()
	for i, p := range []string{"train/n00000001/a.JPEG", "train/n00000002/b.JPEG", "val/ILSVRC2012_val_00000001.JPEG"} {
		p = filepath.Join(unlabelled, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, fixtures.JPEG(t, 40, 30, i, false), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A folder of Go source, as ./shards is in the repository's root.
	goPkg := t.TempDir()
	if err := os.WriteFile(filepath.Join(goPkg, "shards.go"), []byte("package shards\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := t.TempDir()
	dangling, loop := filepath.Join(links, "dangling"), filepath.Join(links, "loop")
	if err := os.Symlink("/nonexistent/zz", dangling); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(loop, loop); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		args      []string
		code      int
		say       string
		lacks     string
		cancelled bool
	}{
		{name: "help", args: []string{"--help"}, code: cli.ExitOK, say: "Example", lacks: "Layouts (detected"},
		{name: "no dataset", args: []string{}, code: cli.ExitUsage, say: "exactly one dataset"},
		{name: "bad codec", args: []string{"--codec", "jpeg", root}, code: cli.ExitUsage, say: "unknown codec"},
		{name: "bad split", args: []string{"--splits", "bogus", nope}, code: cli.ExitUsage, say: `unknown split "bogus" (want train, val or train,val)`},
		{name: "a zero too many workers", args: []string{"--workers", "20000", nope}, code: cli.ExitUsage, say: "workers 20000 must be 0 (one per CPU) to 1024"},
		{name: "split twice", args: []string{"--splits", "train,train", nope}, code: cli.ExitUsage, say: `split "train" given twice`},
		{name: "no split", args: []string{"--splits", " , ", nope}, code: cli.ExitUsage, say: `--splits " , " names no split`},
		{name: "size 0", args: []string{"--size", "0", nope}, code: cli.ExitUsage, say: "size 0 out of range 1..4096"},
		{name: "size -5", args: []string{"--size", "-5", nope}, code: cli.ExitUsage, say: "size -5 out of range"},
		{name: "size too large", args: []string{"--size", "100000", nope}, code: cli.ExitUsage, say: "size 100000 out of range"},
		{name: "shard size 0", args: []string{"--shard-size", "0", nope}, code: cli.ExitUsage, say: "shard size 0 must be positive"},
		{name: "shard size -1", args: []string{"--shard-size", "-1", nope}, code: cli.ExitUsage, say: "shard size -1 must be positive"},
		{name: "workers -1", args: []string{"--workers", "-1", nope}, code: cli.ExitUsage, say: "workers -1 must be 0 (one per CPU) to 1024"},
		{name: "workers 0", args: []string{"--quiet", "--workers", "0", "--size", "16", "--out", t.TempDir(), root}, code: cli.ExitOK,
			say: cli.Count(runtime.GOMAXPROCS(0), "worker", "workers")},
		{name: "decode memory -1", args: []string{"--decode-memory", "-1", nope}, code: cli.ExitUsage, say: "--decode-memory -1 must be 0"},
		{name: "bad layout", args: []string{"--layout", "zip", nope}, code: cli.ExitUsage, say: `unknown --layout "zip"`},
		{name: "missing dir", args: []string{nope}, code: cli.ExitUsage, say: "the dataset " + nope + ": no such file or directory"},
		{name: "a file for the dataset", args: []string{"main.go"}, code: cli.ExitUsage, say: "main.go: not a directory, nor ILSVRC2012_img_train.tar or ILSVRC2012_img_val.tar"},
		{name: "missing val labels", args: []string{"--val-labels", nope, root}, code: cli.ExitUsage, say: "--val-labels " + nope + ": no such file"},
		{name: "val labels a folder", args: []string{"--val-labels", root, root}, code: cli.ExitUsage, say: "--val-labels " + root + ": a directory, not a regular file"},
		{name: "val labels /dev/null", args: []string{"--val-labels", os.DevNull, root}, code: cli.ExitUsage, say: "a character device, not a regular file"},
		{name: "skips are fine", args: []string{"--quiet", "--size", "16", "--out", t.TempDir(), root}, code: cli.ExitOK, say: "skipped"},
		{name: "strict", args: []string{"--quiet", "--strict", "--size", "16", "--out", t.TempDir(), root}, code: cli.ExitSkipped, say: "--strict"},
		{name: "a true/false flag's value apart", args: []string{"--strict", "true", root}, code: cli.ExitUsage, say: `unexpected argument "true": --strict takes its value after =, as --strict=true`},
		{name: "quiet's value apart, no dataset", args: []string{"--quiet", "1"}, code: cli.ExitUsage, say: `unexpected argument "1": --quiet takes its value after =, as --quiet=1`},
		{name: "unlabelled val", args: []string{"--quiet", "--size", "16", "--out", t.TempDir(), unlabelled}, code: cli.ExitOK, say: "1 image without labels"},
		{name: "unlabelled val, strict", args: []string{"--quiet", "--strict", "--size", "16", "--out", t.TempDir(), unlabelled}, code: cli.ExitSkipped,
			say: "--strict: 0 files were skipped and 0 files kept decoded past damage (listed in"},
		// Cancelled from the start, it stops in the listing (a signal
		// mid-run is TestSIGTERMStopsAndResumes's).
		{name: "interrupted", args: []string{"--quiet", "--size", "16", "--out", t.TempDir(), root}, cancelled: true, code: cli.ExitInterrupted,
			say: "interrupted while listing the dataset; nothing was written", lacks: "context canceled"},
		{name: "flags after the dataset", args: []string{root, "--quiet", "--size", "16", "--out", t.TempDir()}, code: cli.ExitOK, say: "done:"},
		{name: "out is a file", args: []string{"--out", filepath.Join(root, "LOC_val_solution.csv"), root}, code: cli.ExitUsage, say: "is a file, not a folder"},
		{name: "out under a file", args: []string{"--out", filepath.Join(root, "LOC_val_solution.csv", "shards"), root}, code: cli.ExitUsage, say: "is a file, not a folder"},
		{name: "out holds Go source", args: []string{"--out", goPkg, root}, code: cli.ExitUsage, say: "holds Go source (shards.go), not shards"},
		// Refused before the listing (minutes on ImageNet), not after it
		// as "mkdir: file exists".
		{name: "out a dangling link", args: []string{"--out", dangling, root}, code: cli.ExitUsage, say: "a symbolic link to /nonexistent/zz, which does not exist"},
		{name: "out a link loop", args: []string{"--out", loop, root}, code: cli.ExitUsage, say: "which cannot be reached: too many levels of symbolic links"},
		{name: "out a dangling link/", args: []string{"--out", dangling + "/", root}, code: cli.ExitUsage, say: "a symbolic link to /nonexistent/zz, which does not exist"},
		{name: "another dataset", args: []string{"--quiet", "--size", "16", "--out", full, allBad}, code: cli.ExitUsage,
			say: "holds the shards of another dataset"},
		{name: "all skipped", args: []string{"--quiet", "--size", "16", "--out", t.TempDir(), allBad}, code: cli.ExitFailure,
			say: "all 2 train images were skipped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			if c.cancelled {
				ctx = cancelled
			}
			var so, se bytes.Buffer
			if code := run(ctx, c.args, &so, &se); code != c.code {
				t.Fatalf("exit %d want %d: %s", code, c.code, se.String())
			}
			all := se.String() + so.String()
			if !strings.Contains(all, c.say) {
				t.Fatalf("output lacks %q:\n%s", c.say, all)
			}
			if c.lacks != "" && strings.Contains(all, c.lacks) {
				t.Fatalf("output holds %q:\n%s", c.lacks, all)
			}
			if c.code == cli.ExitOK {
				return
			}
			// Under --json stdout holds one JSON document either way:
			// the report, or the error alone when there is none, each
			// with the reason stderr gives and the exit code.
			so.Reset()
			se.Reset()
			args := append(slices.Clone(c.args), "--json")
			if i := slices.Index(args, "--out"); i >= 0 && c.name != "another dataset" && !strings.HasPrefix(c.name, "out ") {
				args[i+1] = t.TempDir()
			}
			if code := run(ctx, args, &so, &se); code != c.code {
				t.Fatalf("--json: exit %d want %d: %s", code, c.code, se.String())
			}
			obj := clitest.JSONFailure(t, so.Bytes(), c.code)
			if msg := obj["error"].(string); !strings.Contains(se.String(), msg) || !strings.Contains(msg, c.say) {
				t.Fatalf("--json: error %q is not stderr's, or lacks %q:\n%s", msg, c.say, se.String())
			}
			// Failures found after the run keep the report around them,
			// and so does the copy on disk.
			if _, report := obj["written"]; report != (strings.Contains(c.name, "strict") || c.name == "all skipped") {
				t.Fatalf("--json: the report is there: %v, want it only after a run:\n%s", report, so.String())
			} else if report {
				var disk struct {
					Error    string `json:"error"`
					ExitCode int    `json:"exit_code"`
				}
				b, err := os.ReadFile(filepath.Join(args[slices.Index(args, "--out")+1], "ingest-report.json"))
				if err != nil || json.Unmarshal(b, &disk) != nil || disk.ExitCode != c.code || disk.Error != obj["error"] {
					t.Fatalf("ingest-report.json does not record the failure (%v):\n%s", err, b)
				}
			}
		})
	}
	// A success's report on disk says so too, and names its folders
	// absolutely, whatever directory the command was run from.
	out := t.TempDir()
	t.Chdir(filepath.Dir(root))
	if code := run(context.Background(), []string{"--quiet", "--size", "16", "--out", out, filepath.Base(root)}, &so, &se); code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	var disk map[string]any
	b, err := os.ReadFile(filepath.Join(out, "ingest-report.json"))
	if err != nil || json.Unmarshal(b, &disk) != nil {
		t.Fatalf("ingest-report.json: %v\n%s", err, b)
	}
	if code, ok := disk["exit_code"].(float64); !ok || code != 0 {
		t.Errorf("a success's report has exit_code %v, want 0", disk["exit_code"])
	}
	if disk["root"] != root || disk["out"] != out {
		t.Errorf("report names root %v and out %v, want %s and %s", disk["root"], disk["out"], root, out)
	}
}

// A later split stopped by its all-skipped first shard, at new settings:
// the run reports what it wrote and why it stopped (on stderr, in --json
// and on disk), says that meta.json no longer lists the split, and the
// same command again keeps the records the stop kept.
func TestLaterSplitAllSkipped(t *testing.T) {
	root, out := ingestedTree(t)
	var so, se bytes.Buffer
	vals, _ := filepath.Glob(filepath.Join(root, "val", "*.JPEG"))
	for _, v := range vals {
		if err := os.WriteFile(v, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	valShard := filepath.Join(out, "val-00000.shard")
	kept, err := os.ReadFile(valShard)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--quiet", "--json", "--size", "20", "--shard-size", "5", "--out", out, root}
	for i := range 2 {
		so.Reset()
		se.Reset()
		code := run(context.Background(), args, &so, &se)
		obj := clitest.JSONFailure(t, so.Bytes(), cli.ExitFailure)
		msg, _ := obj["error"].(string)
		if code != cli.ExitFailure || !strings.Contains(msg, "stopped before replacing any of the 7 val records") {
			t.Fatalf("run %d: exit %d, error %q:\n%s", i+1, code, msg, se.String())
		}
		if _, report := obj["written"]; !report {
			t.Fatalf("run %d: --json gave the error without the report: %s", i+1, so.String())
		}
		for _, want := range []string{"no longer lists the val split", "ingest: stopped: "} {
			if i == 1 && want != "ingest: stopped: " {
				continue // the second run's meta.json did not list val to begin with
			}
			if !strings.Contains(se.String(), want) {
				t.Errorf("run %d: stderr lacks %q:\n%s", i+1, want, se.String())
			}
		}
		var disk struct {
			Error    string `json:"error"`
			ExitCode int    `json:"exit_code"`
		}
		b, err := os.ReadFile(filepath.Join(out, "ingest-report.json"))
		if err != nil || json.Unmarshal(b, &disk) != nil || disk.ExitCode != cli.ExitFailure || disk.Error != msg {
			t.Fatalf("run %d: ingest-report.json does not record the failure (%v):\n%s", i+1, err, b)
		}
		if now, err := os.ReadFile(valShard); err != nil || !bytes.Equal(now, kept) {
			t.Fatalf("run %d replaced %s without --overwrite (%v)", i+1, valShard, err)
		}
	}
}

// The first split stopped by its all-skipped first shard writes nothing:
// the run still prints its report with the failure (--json too), every
// skipped file is listed, and ingest-report.json, which said the last run
// succeeded, now says this one failed.
func TestFirstSplitAllSkipped(t *testing.T) {
	root, out := ingestedTree(t)
	var so, se bytes.Buffer
	trains, _ := filepath.Glob(filepath.Join(root, "train", "*", "*.JPEG"))
	for _, f := range trains {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	so.Reset()
	se.Reset()
	code := run(context.Background(), []string{"--quiet", "--json", "--size", "16", "--shard-size", "5", "--out", out, root}, &so, &se)
	obj := clitest.JSONFailure(t, so.Bytes(), cli.ExitFailure)
	msg, _ := obj["error"].(string)
	if code != cli.ExitFailure || !strings.Contains(msg, "every image of the first shard to write was skipped") {
		t.Fatalf("exit %d, error %q:\n%s", code, msg, se.String())
	}
	skipped, _ := obj["skipped"].([]any)
	if _, report := obj["written"]; !report || len(skipped) != 5 {
		t.Fatalf("--json: want the report with the 5 skipped files of the stopping shard: %s", so.String())
	}
	if n := strings.Count(se.String(), "ingest: skipped "); n != 5 || !strings.Contains(se.String(), "ingest: stopped: 0 train + 0 val records, 5 skipped") {
		t.Errorf("stderr names %d skipped files, want 5, and the stopped line:\n%s", n, se.String())
	}
	var disk struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	b, err := os.ReadFile(filepath.Join(out, "ingest-report.json"))
	if err != nil || json.Unmarshal(b, &disk) != nil || disk.ExitCode != cli.ExitFailure || disk.Error != msg {
		t.Fatalf("ingest-report.json does not record the failure (%v):\n%s", err, b)
	}
}

// Splits asked for that the dataset has no image of are a run with
// nothing to do: exit 1 naming them, nothing made in --out. One empty
// split beside another is left alone as before.
func TestNothingToWrite(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 3, 0)
	out := filepath.Join(t.TempDir(), "shards")
	var so, se bytes.Buffer
	code := run(context.Background(), []string{"--quiet", "--size", "16", "--splits", "val", "--out", out, root}, &so, &se)
	if code != cli.ExitFailure || !strings.Contains(se.String(), "has no images for --splits val: nothing to write") {
		t.Fatalf("--splits val without val images: exit %d:\n%s", code, se.String())
	}
	if _, err := os.Stat(filepath.Join(out, "meta.json")); err == nil {
		t.Error("a meta.json was written")
	}
	se.Reset()
	if code := run(context.Background(), []string{"--quiet", "--size", "16", "--out", out, root}, &so, &se); code != cli.ExitOK {
		t.Fatalf("train,val without val images: exit %d:\n%s", code, se.String())
	}
}

// --splits train does not read the val split: a damaged label file (or a
// val archive still downloading) is no reason to refuse the training
// images, and the summary names only the split written.
func TestTrainSplitIgnoresVal(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 3, 4)
	if err := os.WriteFile(filepath.Join(root, "LOC_val_solution.csv"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "shards")
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"--size", "16", "--out", out, root}, &so, &se); code != cli.ExitFailure || !strings.Contains(se.String(), "LOC_val_solution.csv") {
		t.Fatalf("train,val with a damaged label file: exit %d:\n%s", code, se.String())
	}
	se.Reset()
	code := run(context.Background(), []string{"--size", "16", "--splits", "train", "--out", out, root}, &so, &se)
	if code != cli.ExitOK {
		t.Fatalf("--splits train: exit %d:\n%s", code, se.String())
	}
	for _, want := range []string{"(val not read: --splits train)", "done: 10 train records, 2 skipped"} {
		if !strings.Contains(se.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, se.String())
		}
	}
	if strings.Contains(se.String(), "val records") {
		t.Errorf("the summary names the val split not asked for:\n%s", se.String())
	}
	// A --val-labels file, even a missing one, is not read either.
	se.Reset()
	code = run(context.Background(), []string{"--size", "16", "--splits", "train", "--val-labels", filepath.Join(root, "absent.csv"), "--out", out, root}, &so, &se)
	if code != cli.ExitOK || !strings.Contains(se.String(), "absent.csv is not read: --splits train writes no val split") {
		t.Errorf("--splits train --val-labels absent.csv: exit %d:\n%s", code, se.String())
	}
}

// --out one of the dataset's split folders is refused before anything is
// written among the images (exit 2).
func TestOutIsASplitFolder(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 2, 2)
	for _, split := range []string{"train", "val"} {
		var so, se bytes.Buffer
		code := run(context.Background(), []string{"--quiet", "--size", "16", "--out", filepath.Join(root, split), root}, &so, &se)
		if code != cli.ExitUsage || !strings.Contains(se.String(), "--out is the dataset's "+split+" folder") {
			t.Errorf("--out %s/: exit %d:\n%s", split, code, se.String())
		}
		for _, f := range []string{"meta.json", ".lock", ".ingest-state"} {
			if _, err := os.Stat(filepath.Join(root, split, f)); err == nil {
				t.Errorf("%s written into %s/", f, split)
			}
		}
	}
}

// A root holding two layouts uses the one detection prefers; when that one
// is empty (a Kaggle folder made but not yet filled), the error names the
// other, and --layout picks it.
func TestLayoutFlag(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 3, 2)
	if err := os.MkdirAll(filepath.Join(root, "ILSVRC", "Data", "CLS-LOC", "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"detected, empty", nil, cli.ExitFailure, "kaggle layout found, but no images in it; it also holds a tree layout (--layout tree)"},
		{"forced tree", []string{"--layout", "tree"}, cli.ExitOK, "tree layout at"},
		{"forced tars, none there", []string{"--layout", "tars"}, cli.ExitUsage, "no tars layout found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"--quiet", "--size", "16", "--out", t.TempDir()}, c.args...)
			var so, se bytes.Buffer
			if code := run(context.Background(), append(args, root), &so, &se); code != c.code || !strings.Contains(se.String(), c.say) {
				t.Fatalf("exit %d want %d, output lacks %q:\n%s", code, c.code, c.say, se.String())
			}
		})
	}
}

// A train/ with fewer classes than the training tar beside it (a stopped
// extraction) is exit 2, naming both counts, until --layout picks one.
func TestHalfExtractedTreeBesideTars(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 3, 2)
	entries, err := os.ReadDir(filepath.Join(root, "train"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	classes := 0
	for _, e := range append(entries, nil) { // the tree's classes and one more
		name := "n99999999.tar"
		if e != nil {
			if !e.IsDir() {
				continue
			}
			name = e.Name() + ".tar"
		}
		classes++
		empty := make([]byte, 1024) // an empty tar: its end-of-archive blocks
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(empty)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(empty); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "ILSVRC2012_img_train.tar"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var so, se bytes.Buffer
	want := fmt.Sprintf("has %d class folders in train, and ILSVRC2012_img_train.tar beside it %d class archives", classes-1, classes)
	if code := run(context.Background(), []string{"--quiet", "--size", "16", "--out", t.TempDir(), root}, &so, &se); code != cli.ExitUsage ||
		!strings.Contains(se.String(), want) {
		t.Fatalf("exit %d, want %d saying %q:\n%s", code, cli.ExitUsage, want, se.String())
	}
	se.Reset()
	if code := run(context.Background(), []string{"--quiet", "--size", "16", "--layout", "tree", "--out", t.TempDir(), root}, &so, &se); code != cli.ExitOK {
		t.Fatalf("--layout tree: exit %d:\n%s", code, se.String())
	}
}

// A --out another ingest holds is refused before the listing (minutes on
// ImageNet): here the dataset does not even exist, and the lock is what
// the run reports.
func TestBusyOutBeforeListing(t *testing.T) {
	out := t.TempDir()
	held, err := dirlock.Acquire(out, "ingest")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"--quiet", "--out", out, filepath.Join(out, "nope")}, &so, &se); code != cli.ExitFailure ||
		!strings.Contains(se.String(), "in use by another run (ingest, pid") {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	held.Release()
	// Free again, the same command gets as far as the listing.
	se.Reset()
	if code := run(context.Background(), []string{"--quiet", "--out", out, filepath.Join(out, "nope")}, &so, &se); code != cli.ExitUsage ||
		strings.Contains(se.String(), "in use") {
		t.Fatalf("after release: exit %d: %s", code, se.String())
	}
}

// An --out ingest cannot write in is refused before the listing, which
// takes minutes on ImageNet. Permissions do not bind root, so root runs
// it as another user.
func TestUnwritableOutBeforeListing(t *testing.T) {
	if !fixtures.Unprivileged(t) {
		return
	}
	locked := t.TempDir()
	if err := os.Chmod(locked, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	var so, se bytes.Buffer
	// The dataset is absent: a refusal naming it would mean the listing
	// came first.
	code := run(context.Background(), []string{"--quiet", "--out", filepath.Join(locked, "shards"), filepath.Join(locked, "absent")}, &so, &se)
	if code != cli.ExitFailure || !strings.Contains(se.String(), "cannot write in "+locked) {
		t.Fatalf("exit %d: %s", code, se.String())
	}
}

// --decode-memory sets the process's decode budget, in MiB; 0 removes it.
func TestDecodeMemoryFlag(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 2, 1)
	t.Cleanup(func() { imageio.SetDecodeBudget(imageio.DefaultDecodeBudget) })
	for _, tc := range []struct {
		arg  string
		want int64
	}{{"800", 800 << 20}, {"0", 0}} {
		var so, se bytes.Buffer
		if code := run(context.Background(), []string{"--quiet", "--size", "16", "--decode-memory", tc.arg, "--out", t.TempDir(), root}, &so, &se); code != cli.ExitOK {
			t.Fatalf("--decode-memory %s: exit %d: %s", tc.arg, code, se.String())
		}
		if got := imageio.DecodeBudget(); got != tc.want {
			t.Errorf("--decode-memory %s: budget %d, want %d", tc.arg, got, tc.want)
		}
	}
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"--decode-memory", "9223372036854775807", root}, &so, &se); code != cli.ExitUsage || !strings.Contains(se.String(), "at most") {
		t.Errorf("an overflowing --decode-memory: exit %d, %s", code, se.String())
	}
}

// A named pipe where ingest reads a file (a class folder's meta.json,
// which the listing looks into; --out's meta.json or state; --val-labels)
// is refused at once, naming it: a plain open would wait for a writer, and
// the run would hang with no message.
func TestNamedPipesDoNotHang(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no named pipes in the file system")
	}
	mk := func(t *testing.T, p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := fixtures.Mkfifo(p); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root, out string) []string
		code  int
		say   string
	}{
		{"meta.json in a class folder", func(t *testing.T, root, out string) []string {
			mk(t, filepath.Join(root, "train", fixtures.WNIDs[0], "meta.json"))
			return nil
		}, cli.ExitOK, ""},
		{"--out's meta.json", func(t *testing.T, root, out string) []string {
			mk(t, filepath.Join(out, "meta.json"))
			return nil
		}, cli.ExitFailure, "a named pipe, not a regular file"},
		{"--out's dataset mark", func(t *testing.T, root, out string) []string {
			mk(t, filepath.Join(out, ".ingest-state", "dataset.json"))
			return nil
		}, cli.ExitFailure, "a named pipe, not a regular file"},
		{"LOC_val_solution.csv", func(t *testing.T, root, out string) []string {
			p := filepath.Join(root, "LOC_val_solution.csv")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			mk(t, p)
			return nil
		}, cli.ExitFailure, "a named pipe, not a regular file"},
		{"--val-labels", func(t *testing.T, root, out string) []string {
			p := filepath.Join(t.TempDir(), "labels.txt")
			mk(t, p)
			return []string{"--val-labels", p}
		}, cli.ExitUsage, "a named pipe, not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			fixtures.Tree(t, root, 2, 3)
			out := filepath.Join(t.TempDir(), "shards")
			extra := tc.setup(t, root, out)
			var so, se bytes.Buffer
			done := make(chan int, 1)
			go func() {
				done <- run(context.Background(), append(append([]string{"--quiet", "--size", "16", "--out", out}, extra...), root), &so, &se)
			}()
			select {
			case code := <-done:
				if code != tc.code || !strings.Contains(se.String(), tc.say) {
					t.Errorf("exit %d (want %d), stderr:\n%s", code, tc.code, se.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatal("ingest hung on a named pipe")
			}
		})
	}
}

// ingestedTree is a fixture tree (6 images a class, 7 val) ingested at
// 16 px in shards of 5: the first run the all-skipped tests start from.
func ingestedTree(t *testing.T) (root, out string) {
	t.Helper()
	root, out = t.TempDir(), t.TempDir()
	fixtures.Tree(t, root, 6, 7)
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"--quiet", "--size", "16", "--shard-size", "5", "--out", out, root}, &so, &se); code != cli.ExitOK {
		t.Fatalf("setup: exit %d: %s", code, se.String())
	}
	return root, out
}
