package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/cli"
)

// The bench end to end at a small size, with the real commands: every
// step is measured, the two layouts give one digest, and the dataset is
// ImageNet's shape (a tar of class tars; a tree of class folders).
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ingest, shardtool and train")
	}
	bin := t.TempDir()
	for _, cmd := range []string{"ingest", "tools/shardtool", "train"} {
		out := filepath.Join(bin, filepath.Base(cmd))
		if b, err := exec.Command("go", "build", "-o", out, "github.com/alexnet-repro/alexnet/"+cmd).CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", cmd, err, b)
		}
	}
	work := t.TempDir()
	var so, se bytes.Buffer
	if code := run([]string{"--bin", bin, "--work", work, "--classes", "3", "--per-class", "50", "--val-per-class", "4", "--train-steps", "1", "--json"}, &so, &se); code != 0 {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	var r report
	if err := json.Unmarshal(so.Bytes(), &r); err != nil {
		t.Fatalf("%v:\n%s", err, so.String())
	}
	if r.Images != 150 || r.ValImages != 12 || !r.LayoutsAgree || r.DigestTars == "" || r.DigestTars != r.DigestTree || len(r.Steps) != 6 {
		t.Fatalf("report %+v", r)
	}
	peaks := map[float64]bool{}
	for _, s := range r.Steps {
		if s.Seconds <= 0 || s.PeakRSSMiB <= 0 || s.Result == "" {
			t.Errorf("step %+v measured nothing", s)
		}
		peaks[s.PeakRSSMiB] = true
	}
	if len(peaks) < 2 || r.SelfRSS <= 0 {
		t.Errorf("peaks %v, own %v: not each command's own", peaks, r.SelfRSS)
	}
	if !strings.Contains(r.Steps[0].Result, "150 train + 12 val") || !regexp.MustCompile(`[1-9][0-9]* resumed shards`).MatchString(r.Steps[1].Result) {
		t.Errorf("ingest said %q, then %q", r.Steps[0].Result, r.Steps[1].Result)
	}
	if !strings.Contains(r.Steps[5].Result, ", 12 images: top-1 error ") {
		t.Errorf("the evaluation did not read the 12 val images: %q", r.Steps[5].Result)
	}
	// The train tar holds one tar per class, each with its images.
	f, err := os.Open(filepath.Join(work, "tars", "ILSVRC2012_img_train.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	outer := tar.NewReader(f)
	var classes []string
	for {
		h, err := outer.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		classes = append(classes, h.Name)
		inner := tar.NewReader(outer)
		n := 0
		for {
			if _, err := inner.Next(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 50 {
			t.Errorf("%s holds %d images, want 50", h.Name, n)
		}
	}
	if strings.Join(classes, " ") != "n01000000.tar n01000001.tar n01000002.tar" {
		t.Errorf("class tars %v", classes)
	}
	if r.ListingS <= 0 || r.ListingS > r.Steps[1].Seconds {
		t.Errorf("listing %.3f s of a %.3f s resume", r.ListingS, r.Steps[1].Seconds)
	}
	if r.ReferenceNote == "" && (r.ReferenceS <= 0 || !strings.Contains(table(r), "Python's tarfile")) {
		t.Errorf("reference %.3f s, table:\n%s", r.ReferenceS, table(r))
	}
	if !strings.Contains(table(r), "byte-identical") {
		t.Errorf("table:\n%s", table(r))
	}
	if code := run([]string{"--bin", bin, "--work", work}, &so, &se); code != cli.ExitUsage {
		t.Errorf("a --work that is not empty: exit %d, want %d", code, cli.ExitUsage)
	}
	for _, bad := range [][]string{{"--classes", "0"}, {"--per-class", "0"}, {"--val-per-class", "-1"}, {"--size", "4"}, {"--train-steps", "-1"}} {
		if code := run(bad, &so, &se); code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d", bad, code, cli.ExitUsage)
		}
	}
}

// The summary's decoding time is read, or its absence said; a command
// that cannot start is an error, not a crash.
func TestParts(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"ingest: done: 1281000 train + 50000 val records, 0 skipped, 1300 resumed shards, 0 images in 1.8s (0.0 img/s, 2 workers), 1100 B/image (0.358 of raw)", 1.8, true},
		{"ingest: done: 12 train records, 3 images in 0s (0 img/s)", 0, true},
		{"ingest: done: 12 train records", 0, false},
		{"ingest: done: 3 images in soon", 0, false},
	} {
		got, ok := decodingSeconds(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("decodingSeconds(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if _, err := measure(context.Background(), filepath.Join(t.TempDir(), "no-such-python"), nil); err == nil {
		t.Error("a command that does not exist ran")
	}
}

// A step's summary goes into one cell of the bench's Markdown table: the
// evaluation's table row is said in words, not six more columns.
func TestLastLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"train: note\n| small | 20 | centre crop | 500 | 48.00% | 12.00% |\n", "small at step 20, centre crop, 500 images: top-1 error 48.00%, top-5 error 12.00%"},
		{"ingest: done: 12 train records, 3 images in 0s -> /tmp/x\n", "ingest: done: 12 train records, 3 images in 0s"},
		{"train: done: 3 steps; checkpoint runs/x\n", "train: done: 3 steps"},
	} {
		if got := lastLine(c.in); got != c.want {
			t.Errorf("lastLine(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
