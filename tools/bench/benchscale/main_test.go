package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
	for _, s := range r.Steps {
		if s.Seconds <= 0 || s.PeakRSSMiB <= 0 || s.Result == "" {
			t.Errorf("step %+v measured nothing", s)
		}
	}
	if !strings.Contains(r.Steps[0].Result, "150 train + 12 val") || !strings.Contains(r.Steps[1].Result, "resumed") {
		t.Errorf("ingest said %q, then %q", r.Steps[0].Result, r.Steps[1].Result)
	}
	if !strings.Contains(r.Steps[5].Result, "| 12 |") {
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
	for _, bad := range [][]string{{"--classes", "0"}, {"--per-class", "0"}, {"--val-per-class", "-1"}, {"--size", "4"}, {"--train-steps", "-1"}} {
		if code := run(bad, &so, &se); code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d", bad, code, cli.ExitUsage)
		}
	}
}
