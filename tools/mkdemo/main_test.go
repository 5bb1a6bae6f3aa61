package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/testdata"
	"github.com/alexnet-repro/alexnet/pkg/fashionmnist"
)

// fakeSource writes a tiny Fashion-MNIST look-alike (gzipped IDX files) so
// the command is tested without the real dataset: image i is filled with
// grey level 10·(i%25) and has label i%10.
func fakeSource(t *testing.T, nTrain, nVal int) string {
	t.Helper()
	dir := t.TempDir()
	for _, s := range []struct {
		split string
		n     int
	}{{"train", nTrain}, {"t10k", nVal}} {
		img, lab := fashionmnist.Files(dir, s.split)
		pix := make([]byte, s.n*28*28)
		labels := make([]byte, s.n)
		for i := range s.n {
			labels[i] = byte(i % 10)
			for p := range 28 * 28 {
				pix[i*784+p] = byte(10 * (i % 25))
			}
		}
		writeIDX(t, img, []uint32{uint32(s.n), 28, 28}, pix)
		writeIDX(t, lab, []uint32{uint32(s.n)}, labels)
	}
	return dir
}

func writeIDX(t *testing.T, path string, dims []uint32, data []byte) {
	t.Helper()
	var buf bytes.Buffer
	z := gzip.NewWriter(&buf)
	z.Write([]byte{0, 0, 8, byte(len(dims))})
	for _, d := range dims {
		binary.Write(z, binary.BigEndian, d)
	}
	z.Write(data)
	z.Close()
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run %v: %v\nstderr: %s", args, err, stderr.String())
	}
	return stdout.String()
}

// checkTree verifies the layout against the source set and returns the
// decoded first validation image.
func checkTree(t *testing.T, out string, train, val *fashionmnist.Set, nTrain, nVal, size int) image.Image {
	t.Helper()
	mapping, err := os.ReadFile(filepath.Join(out, mappingName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(mapping)), "\n")
	if len(lines) != 10 || lines[0] != "n99000000 T-shirt/top" || lines[9] != "n99000009 Ankle boot" {
		t.Fatalf("mapping:\n%s", mapping)
	}
	if !sort.StringsAreSorted(lines) {
		t.Error("mapping lines are not in WNID order")
	}

	// Every train file sits in its label's class directory and no other
	// files exist.
	var files int
	for l := range 10 {
		w := fashionmnist.WNID(l)
		ents, err := os.ReadDir(filepath.Join(out, "train", w))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			var k int
			if _, err := fmt.Sscanf(e.Name(), w+"_%d.JPEG", &k); err != nil || k < 1 || k > nTrain {
				t.Fatalf("unexpected train file %s/%s", w, e.Name())
			}
			if int(train.Labels[k-1]) != l {
				t.Errorf("%s holds record %d whose label is %d", w, k, train.Labels[k-1])
			}
			files++
		}
	}
	if files != nTrain {
		t.Errorf("%d train files, want %d", files, nTrain)
	}
	ents, err := os.ReadDir(filepath.Join(out, "val"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != nVal || ents[0].Name() != "ILSVRC2012_val_00000001.JPEG" ||
		ents[nVal-1].Name() != fmt.Sprintf("ILSVRC2012_val_%08d.JPEG", nVal) {
		t.Errorf("val holds %d files, first %s", len(ents), ents[0].Name())
	}

	f, err := os.Open(filepath.Join(out, solutionName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	if sc.Text() != "ImageId,PredictionString" {
		t.Errorf("solution header %q", sc.Text())
	}
	var rows int
	for sc.Scan() {
		want := fmt.Sprintf("ILSVRC2012_val_%08d,%s 0 0 %d %d", rows+1, fashionmnist.WNID(int(val.Labels[rows])), size-1, size-1)
		if sc.Text() != want {
			t.Fatalf("solution row %d = %q, want %q", rows+1, sc.Text(), want)
		}
		rows++
	}
	if rows != nVal {
		t.Errorf("solution has %d rows, want %d", rows, nVal)
	}

	jf, err := os.Open(filepath.Join(out, "val", "ILSVRC2012_val_00000001.JPEG"))
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	img, err := jpeg.Decode(jf)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.Gray); !ok {
		t.Errorf("JPEG decodes as %T, want a single-channel *image.Gray", img)
	}
	if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
		t.Errorf("JPEG is %v, want %dx%d", b, size, size)
	}
	return img
}

func TestRunFakeSource(t *testing.T) {
	src := fakeSource(t, 300, 60)
	train, _ := fashionmnist.Load(src, "train")
	val, _ := fashionmnist.Load(src, "t10k")
	out := filepath.Join(t.TempDir(), "demo")

	msg := runOK(t, "--out", out, "--src", src, "--train", "200", "--val", "50", "--workers", "3")
	if !strings.Contains(msg, "wrote 200 train + 50 val") {
		t.Errorf("summary %q", msg)
	}
	img := checkTree(t, out, train, val, 200, 50, 28)
	// The tree is ordinary data others may read, not a private temp folder.
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: mode %v, %v; want 0755", out, fi.Mode(), err)
	}
	// Val image 1 is a flat grey 0, so JPEG should keep it near exactly.
	if y := img.(*image.Gray).GrayAt(5, 5).Y; y > 2 {
		t.Errorf("flat black image decoded with level %d", y)
	}

	// Same flags: a no-op that leaves files untouched, and still clears
	// the work directory a killed run left beside the tree.
	stamp := mtime(t, filepath.Join(out, markerName))
	killed := out + ".tmp-123456"
	if err := os.MkdirAll(killed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(killed, ownerName), []byte("999999999"), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg := runOK(t, "--out", out, "--src", src, "--train", "200", "--val", "50"); !strings.Contains(msg, "up to date") {
		t.Errorf("re-run said %q", msg)
	}
	if mtime(t, filepath.Join(out, markerName)) != stamp {
		t.Error("re-run rewrote the tree")
	}
	if _, err := os.Stat(killed); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an up-to-date run left the killed run's %s: %v", killed, err)
	}
	// Same flags, a file gone since: the marker alone does not make the
	// tree up to date.
	gone, _ := filepath.Glob(filepath.Join(out, "train", "*", "*.JPEG"))
	if len(gone) == 0 {
		t.Fatal("no train JPEG to delete")
	}
	if err := os.Remove(gone[0]); err != nil {
		t.Fatal(err)
	}
	var so, se bytes.Buffer
	if err := run(context.Background(), []string{"--out", out, "--src", src, "--train", "200", "--val", "50"}, &so, &se); err != nil || !strings.Contains(se.String(), "holds 199 train and 50 val images, not the 200 and 50 its marker records") {
		t.Errorf("a tree missing a file: %v, stdout %q, stderr %q", err, so.String(), se.String())
	}
	checkTree(t, out, train, val, 200, 50, 28)

	// Other flags: the tree is replaced, not merged with the old one.
	runOK(t, "--out", out, "--src", src, "--train", "30", "--val", "10", "--size", "40")
	checkTree(t, out, train, val, 30, 10, 40)
	if left, _ := filepath.Glob(out + ".tmp-*"); len(left) != 0 {
		t.Errorf("temporary directories left behind: %v", left)
	}
}

func mtime(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime().UnixNano()
}

func TestRunRealFashionMNIST(t *testing.T) {
	src := testdata.FashionMNIST(t)
	train, err := fashionmnist.Load(src, "train")
	if err != nil {
		t.Fatal(err)
	}
	val, err := fashionmnist.Load(src, "t10k")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "demo")
	runOK(t, "--out", out, "--src", src, "--train", "200", "--val", "50")
	img := checkTree(t, out, train, val, 200, 50, 28).(*image.Gray)
	// JPEG at quality 95 stays close to the source pixels.
	var sum int
	for i, v := range val.Image(0) {
		// The decoder may pad its buffer to whole 8×8 blocks; go
		// through GrayAt rather than Pix.
		d := int(img.GrayAt(i%28, i/28).Y) - int(v)
		sum += max(d, -d)
	}
	mean := float64(sum) / 784
	t.Logf("mean absolute JPEG error %.2f grey levels", mean)
	if mean > 4 {
		t.Errorf("mean absolute JPEG error %.2f grey levels, want ≤ 4", mean)
	}
}

func TestRunErrors(t *testing.T) {
	src := fakeSource(t, 20, 5)
	notOurs := t.TempDir()
	os.WriteFile(filepath.Join(notOurs, "precious.txt"), []byte("x"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"no out", []string{"--src", src}, "--out is required", cli.ExitUsage},
		{"missing source", []string{"--out", filepath.Join(t.TempDir(), "d"), "--src", t.TempDir()}, "just setup", cli.ExitFailure},
		{"too many train", []string{"--out", filepath.Join(t.TempDir(), "d"), "--src", src, "--train", "21"}, "only 20 training", cli.ExitUsage},
		{"too many val", []string{"--out", filepath.Join(t.TempDir(), "d"), "--src", src, "--train", "20", "--val", "6"}, "only 5 test", cli.ExitUsage},
		{"negative", []string{"--out", "x", "--train", "-1"}, "negative", cli.ExitUsage},
		{"nothing to write", []string{"--out", "x", "--train", "0", "--val", "0"}, "write no image", cli.ExitUsage},
		{"bad size", []string{"--out", "x", "--size", "0"}, "--size", cli.ExitUsage},
		{"bad quality", []string{"--out", "x", "--quality", "101"}, "--quality", cli.ExitUsage},
		{"negative workers", []string{"--out", "x", "--workers", "-1"}, "--workers -1: want 0 (one per CPU) to 1024", cli.ExitUsage},
		{"stray argument", []string{"--out", "x", "extra"}, "unexpected argument", cli.ExitUsage},
		{"foreign directory", []string{"--out", notOurs, "--src", src, "--train", "20", "--val", "5"}, "refusing to replace", cli.ExitFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) || cli.ExitCode(err) != tc.code {
				t.Fatalf("err = %v (exit %d), want it to mention %q (exit %d)", err, cli.ExitCode(err), tc.want, tc.code)
			}
		})
	}
	// A flag mistake is one line on stderr: the parser's, with the hint,
	// not repeated by the error line main prints.
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--out", "x", "--trian", "5"}, &stdout, &stderr)
	if code := finish(context.Background(), err, &stderr); code != cli.ExitUsage {
		t.Errorf("typo: exit %d, want %d", code, cli.ExitUsage)
	}
	if got, want := stderr.String(), "mkdemo: flag provided but not defined: -trian; did you mean --train? (see --help)\n"; got != want {
		t.Errorf("typo: stderr\n%q\nwant\n%q", got, want)
	}
	stderr.Reset()
	err = run(context.Background(), []string{"--out", "x", "--train", "-1"}, &stdout, &stderr)
	if finish(context.Background(), err, &stderr); strings.Count(stderr.String(), "negative") != 1 {
		t.Errorf("a check's error is printed %d times, want once:\n%s", strings.Count(stderr.String(), "negative"), stderr.String())
	}
	if _, err := os.Stat(filepath.Join(notOurs, "precious.txt")); err != nil {
		t.Errorf("foreign directory was touched: %v", err)
	}
}

func TestHelpShowsExample(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Example:", "mkdemo --out", "-train", "-src"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help on stdout lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestCancel(t *testing.T) {
	src := fakeSource(t, 500, 10)
	out := filepath.Join(t.TempDir(), "demo")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"--out", out, "--src", src, "--train", "500", "--val", "10"}, &stdout, &stderr); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a cancelled run left %s behind: %v", out, err)
	}
	if left, _ := filepath.Glob(out + ".tmp-*"); len(left) != 0 {
		t.Errorf("temporary directories left behind: %v", left)
	}
}

func BenchmarkEncode(b *testing.B) {
	set := &fashionmnist.Set{N: 1, Rows: 28, Cols: 28, Pixels: make([]byte, 784), Labels: []byte{0}}
	for i := range set.Pixels {
		set.Pixels[i] = byte(i * 13)
	}
	c := config{Size: 28, Quality: 95}
	var buf bytes.Buffer
	b.SetBytes(784)
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := encode(&buf, set, 0, c); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPlainProgress(t *testing.T) {
	defer func(d time.Duration) { plainEvery = d }(plainEvery)
	plainEvery = 5 * time.Millisecond
	var done atomic.Int64
	done.Store(5)
	var out syncBuffer
	p := startProgress(&out, 10, &done)
	time.Sleep(50 * time.Millisecond)
	p.stop()
	p.stop() // idempotent
	if !strings.Contains(out.String(), "mkdemo: 5/10 images (50%)") {
		t.Errorf("progress output %q", out.String())
	}
}

// syncBuffer is a bytes.Buffer safe to read while the reporter writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSweepStale: a killed run's work directories are removed by the next
// run; a live run's, and a fresh one without an owner yet, are kept.
func TestSweepStale(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "fm")
	mk := func(name, owner string, age time.Duration) string {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(d, ownerName), []byte(owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
		return d
	}
	const live, dead = 1111, 2222
	alive := func(pid int) bool { return pid == live }
	dead1 := mk("fm.tmp-1", strconv.Itoa(dead), 0)
	live1 := mk("fm.tmp-2", strconv.Itoa(live), 0)
	fresh := mk("fm.tmp-3", "", time.Minute)
	orphan := mk("fm.tmp-4", "", 2*time.Hour)
	garbled := mk("fm.tmp-5", "not a pid", 0)
	aside := mk("fm.tmp-6.old", "", 0) // its work directory fm.tmp-6 is gone
	liveAside := mk("fm.tmp-2.old", "", 0)
	other := mk("fmx.tmp-7", strconv.Itoa(dead), 0) // another tree's
	// Not MkdirTemp's form, or not only a tree's parts: someone's data.
	backup := mk("fm.tmp-mybackup", "", 2*time.Hour)
	notes := mk("fm.tmp-8", "", 2*time.Hour)
	if err := os.WriteFile(filepath.Join(notes, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(notes, old, old)

	got := sweepStale(out, alive, time.Now())
	slices.Sort(got)
	want := []string{dead1, orphan, garbled, aside}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("removed %v, want %v", got, want)
	}
	for _, d := range []string{live1, fresh, liveAside, other, backup, notes} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed: %v", d, err)
		}
	}
	for _, d := range want {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s is still there", d)
		}
	}
}

func TestProcessAlive(t *testing.T) {
	if !processAlive(os.Getpid()) {
		t.Error("this process reads as dead")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no `true` to start:", err)
	}
	if processAlive(cmd.Process.Pid) {
		t.Errorf("pid %d of a finished child reads as alive", cmd.Process.Pid)
	}
	if processAlive(0) || processAlive(-1) {
		t.Error("pids 0 and -1 read as alive")
	}
}

// A tree mkdemo wrote is replaced whole by a run with other flags, so one
// that has gained other entries since (shards ingested into it, notes) is
// refused, naming them, and left as it was.
func TestReplaceRefusesForeignEntries(t *testing.T) {
	src := fakeSource(t, 40, 10)
	out := filepath.Join(t.TempDir(), "demo")
	runOK(t, "--out", out, "--src", src, "--train", "20", "--val", "5")
	if err := os.MkdirAll(filepath.Join(out, "shards"), 0o755); err != nil {
		t.Fatal(err)
	}
	var so, se bytes.Buffer
	err := run(context.Background(), []string{"--out", out, "--src", src, "--train", "10", "--val", "5"}, &so, &se)
	if err == nil || !strings.Contains(err.Error(), "besides mkdemo's tree it holds shards") {
		t.Fatalf("replacing a tree with shards in it: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "shards")); err != nil {
		t.Errorf("the user's folder: %v", err)
	}
	// Inside the tree too: a note in val/, a class folder of one's own
	// in train/, a file in a class folder that mkdemo would not name so.
	if err := os.RemoveAll(filepath.Join(out, "shards")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"val/notes.txt", "train/mine/a.JPEG", "train/n99000001/keep.JPEG"} {
		p := filepath.Join(out, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = run(context.Background(), []string{"--out", out, "--src", src, "--train", "10", "--val", "5"}, &so, &se)
	if err == nil || !strings.Contains(err.Error(), "train/mine") || !strings.Contains(err.Error(), "train/n99000001/keep.JPEG") || !strings.Contains(err.Error(), "val/notes.txt") {
		t.Fatalf("replacing a tree with the user's files inside it: %v", err)
	}
	for _, f := range []string{"val/notes.txt", "train/mine/a.JPEG", "train/n99000001/keep.JPEG"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("the user's file: %v", err)
		}
	}
	// mkdemo's own tree alone is replaced.
	for _, f := range []string{"val/notes.txt", "train/mine", "train/n99000001/keep.JPEG"} {
		if err := os.RemoveAll(filepath.Join(out, f)); err != nil {
			t.Fatal(err)
		}
	}
	runOK(t, "--out", out, "--src", src, "--train", "10", "--val", "5")
}

// --out naming the current folder (or one holding it) cannot be renamed
// into place: refused before any work, as a usage error.
func TestOutCannotHoldTheWorkingFolder(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, out := range []string{".", "..", dir} {
		var so, se bytes.Buffer
		err := run(context.Background(), []string{"--out", out, "--src", "/nonexistent"}, &so, &se)
		if cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), "is the current folder or holds it") {
			t.Errorf("--out %s: %v", out, err)
		}
	}
}

// --out made by another run between the check and the rename: the other
// tree stays, and the error says what happened rather than rename's words.
func TestPublishOntoAnOutThatAppeared(t *testing.T) {
	dir := t.TempDir()
	tmp, out := filepath.Join(dir, "out.tmp-1"), filepath.Join(dir, "out")
	for _, f := range []string{filepath.Join(tmp, "a"), filepath.Join(out, "b")} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err := publish(tmp, out, false)
	if err == nil || !strings.Contains(err.Error(), "appeared while this run was writing") {
		t.Fatalf("publish onto an --out that appeared: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "b")); err != nil {
		t.Errorf("the other run's tree: %v", err)
	}
}
