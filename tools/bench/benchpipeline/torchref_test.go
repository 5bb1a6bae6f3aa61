package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/shards"
	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

// refPython is a Python that can run the reference, or the test skips.
func refPython(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3"
	if p := os.Getenv("ALEXNET_TORCH_PYTHON"); p != "" {
		py = p
	}
	if why := refAvailable(py); why != "" {
		t.Skipf("PyTorch DataLoader reference not testable: %s", why)
	}
	return py
}

// writeJPEGs makes n w×h JPEGs named as in the ImageNet sample, in two
// classes, and as writeShards names its records.
func writeJPEGs(t *testing.T, n, w, h int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.Set(x, y, color.RGBA{uint8(x * 5), uint8(y * 7), uint8(i * 40), 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("n0000000%d_img%d.JPEG", i%2, i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := jpeg.Encode(f, img, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return dir
}

// TestReferenceInReport runs the whole bench with the PyTorch reference
// on tiny inputs: the round gets a run of each mode at one core and at
// all cores, each with a ratio to ours, and the report prints them. (One
// round: each run starts a Python that imports torch, about 2 s.)
func TestReferenceInReport(t *testing.T) {
	py := refPython(t)
	dir := writeShards(t, 20, 10, 32, 32)
	imgs := writeJPEGs(t, 20, 48, 40) // the shards' sources, by name
	args := []string{"--shards", dir, "--batches", "3", "--batch", "4", "--workers", "2", "--ceiling-time", "10ms", "--rounds", "1",
		"--quality=false", "--python", py, "--reference-images", imgs, "--reference-batches", "4", "--json"}
	var out, errs bytes.Buffer
	if code := run(args, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	ref := rep.Reference
	if ref == nil || ref.Skipped != "" || ref.Torch == "" || ref.PIL == "" {
		t.Fatalf("reference %+v\n%s", ref, errs.String())
	}
	if len(ref.Runs) != 2*2 {
		t.Fatalf("%d reference runs, want 4: %+v", len(ref.Runs), ref.Runs)
	}
	for _, r := range ref.Runs {
		batches := 4
		if r.Mode == refOriginal {
			batches = 1 // 3/10 of 4 batches, at least 1
		}
		if r.Workers > 0 {
			batches = max(batches, 4*r.Workers) // past the DataLoader's prefetch waves
		}
		wantImages := 4 * batches
		if r.Images != wantImages || r.Rate <= 0 || r.Ours <= 0 || r.Ratio != r.Ours/r.Rate {
			t.Errorf("run %+v: want %d images and a ratio", r, wantImages)
		}
		if (r.Workers == 0) != (r.CPU >= 0) || (r.Workers != 0 && r.Workers != 2) {
			t.Errorf("run %+v: one-core runs are pinned with no workers, all-cores runs unpinned with 2", r)
		}
	}
	if len(ref.Rows) != 4 {
		t.Errorf("medians %+v", ref.Rows)
	}

	out.Reset()
	printRef(&out, &rep)
	for _, want := range []string{"against PyTorch's DataLoader", "DataLoader + PIL, 32-px JPEGs (q90)", "DataLoader + PIL, original JPEGs", "ours, grad-huff shards"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "—") {
		t.Errorf("a reference cell is empty:\n%s", out.String())
	}
}

// TestReferenceFailure: a reference that fails is reported with its
// error, and the bench still measures and reports ours, with exit 3.
func TestReferenceFailure(t *testing.T) {
	py := refPython(t)
	dir := writeShards(t, 20, 10, 32, 32)
	// The shards' sources by name, but not JPEGs: PIL cannot open them.
	bad := writeJPEGs(t, 20, 8, 8)
	files, _ := filepath.Glob(filepath.Join(bad, "*.JPEG"))
	for _, f := range files {
		if err := os.WriteFile(f, []byte("not a JPEG"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errs bytes.Buffer
	code := run([]string{"--shards", dir, "--batches", "3", "--batch", "4", "--workers", "2", "--ceiling-time", "10ms", "--rounds", "1",
		"--quality=false", "--python", py, "--reference-images", bad, "--json"}, &out, &errs)
	if code != benchstat.ExitNoReference {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if ref := rep.Reference; ref == nil || !strings.HasPrefix(ref.Skipped, "failed: ") || len(ref.Runs) != 0 {
		t.Errorf("reference %+v", rep.Reference)
	}
	if rep.One.ImgPerSec <= 0 || !rep.DigestsMatch {
		t.Errorf("ours not measured: %+v", rep.One)
	}
}

func TestRefAvailableMissingPython(t *testing.T) {
	why := refAvailable(filepath.Join(t.TempDir(), "no-python"))
	if !strings.Contains(why, "python3-torch") {
		t.Errorf("refAvailable of a missing interpreter: %q", why)
	}
}

// JPEGs that are not the shards' sources give no ratio: the reference is
// skipped, saying why, before any Python runs.
func TestRefMismatch(t *testing.T) {
	dir := writeShards(t, 20, 10, 32, 32)
	meta, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	renamed := writeJPEGs(t, 20, 8, 8)
	if err := os.Rename(filepath.Join(renamed, "n00000000_img10.JPEG"), filepath.Join(renamed, "n00000000_other.JPEG")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		images, want string
	}{
		{writeJPEGs(t, 20, 8, 8), ""},
		{writeJPEGs(t, 6, 8, 8), "holds 6 .JPEG files and the shards' train split 20 records: not the JPEGs the shards were made from"},
		{t.TempDir(), "holds 0 .JPEG files"},
		{renamed, "has no JPEG named n00000000_img10.JPEG, as the first record of train-00001.shard is"},
		{writeJPEGs(t, 22, 8, 8), "holds 22 .JPEG files and the shards' train split 20 records: not"},
		{filepath.Join(t.TempDir(), "absent"), "--reference-images: open"},
	} {
		got := refMismatch(dir, meta, tc.images)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.images, got, tc.want)
		}
	}
	// Sources ingest skipped are still in the folder: up to that many more.
	meta.Splits["train"] = shards.Split{Records: 20, Skipped: 2, Shards: meta.Splits["train"].Shards}
	if got := refMismatch(dir, meta, writeJPEGs(t, 22, 8, 8)); got != "" {
		t.Errorf("22 JPEGs for 20 records and 2 skipped: %q", got)
	}
	if got := refMismatch(dir, meta, writeJPEGs(t, 23, 8, 8)); !strings.Contains(got, "20 records (and 2 skipped)") {
		t.Errorf("23 JPEGs for 20 records and 2 skipped: %q", got)
	}
	// The whole bench: ours alone, exit 3, the reason in the report.
	var out, errs bytes.Buffer
	code := run([]string{"--shards", dir, "--batches", "3", "--batch", "4", "--workers", "2", "--ceiling-time", "10ms", "--rounds", "1",
		"--quality=false", "--reference-images", writeJPEGs(t, 6, 8, 8), "--json"}, &out, &errs)
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || code != benchstat.ExitNoReference || rep.Reference == nil ||
		!strings.Contains(rep.Reference.Skipped, "not the JPEGs the shards were made from") || rep.One.ImgPerSec <= 0 {
		t.Fatalf("exit %d, %v: %s\n%s", code, err, out.String(), errs.String())
	}
}
