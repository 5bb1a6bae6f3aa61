package ingest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/dirlock"
	"github.com/alexnet-repro/alexnet/internal/fixtures"
	"github.com/alexnet-repro/alexnet/internal/testdata"
	"github.com/alexnet-repro/alexnet/pkg/imageio"
	"github.com/alexnet-repro/alexnet/pkg/imagenet"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/shards"
)

var wnids = fixtures.WNIDs

func makeTree(t testing.TB, perClass int) (root string, bad int) {
	root = t.TempDir()
	return root, fixtures.Tree(t, root, perClass, 7)
}

// ingestWith lists root and ingests it with opt.
func ingestWith(t testing.TB, ctx context.Context, root string, opt Options) (*Report, error) {
	t.Helper()
	ds, err := imagenet.Open(root, imagenet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	return Run(ctx, ds, opt)
}

// mustIngest is ingestWith for runs that must succeed.
func mustIngest(t testing.TB, root string, opt Options) *Report {
	t.Helper()
	rep, err := ingestWith(t, context.Background(), root, opt)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func ingestDir(t testing.TB, root, out string, workers int, ctx context.Context, progress func(Progress)) (*Report, error) {
	t.Helper()
	return ingestWith(t, ctx, root, Options{Out: out, Size: 24, Seed: 7, ShardSize: 5, Workers: workers, Codec: shards.CodecGradZstd, Progress: progress})
}

// readReport reads dir's ReportFile.
func readReport(t testing.TB, dir string) Report {
	t.Helper()
	var r Report
	b, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", ReportFile, err)
	}
	return r
}

// outputFiles maps every file ingest leaves (but the report, which holds
// timings) to its bytes.
func outputFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() || e.Name() == "ingest-report.json" || e.Name() == dirlock.File {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func sameOutput(t *testing.T, a, b map[string][]byte) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d files vs %d", len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Fatalf("%s differs", k)
		}
	}
}

// withoutLastClass copies the tree at root without its last class: the
// same images, another class list.
func withoutLastClass(t *testing.T, root string) string {
	t.Helper()
	other := t.TempDir()
	if err := os.CopyFS(other, os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(other, "train", wnids[len(wnids)-1])); err != nil {
		t.Fatal(err)
	}
	return other
}

// sameAsFresh checks that out equals a fresh ingestDir run over root.
func sameAsFresh(t *testing.T, root, out string) {
	t.Helper()
	fresh := t.TempDir()
	if _, err := ingestDir(t, root, fresh, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	sameOutput(t, outputFiles(t, fresh), outputFiles(t, out))
}

func TestIngestTree(t *testing.T) {
	root, bad := makeTree(t, 12)
	out := t.TempDir()
	rep, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Images["train"] != 3*12+3 || rep.Written["train"] != 3*12+3-bad || rep.Written["val"] != 7 {
		t.Fatalf("counts: %+v %+v", rep.Images, rep.Written)
	}
	if want := filepath.Join(root, "LOC_val_solution.csv"); rep.ValLabelSource != want {
		t.Errorf("val_label_source %q, want %q", rep.ValLabelSource, want)
	}
	// A root given relative to the working folder still reports where
	// the labels came from as an absolute path, as it does root and out.
	t.Chdir(filepath.Dir(root))
	rel, err := ingestDir(t, filepath.Base(root), t.TempDir(), 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "LOC_val_solution.csv"); rel.ValLabelSource != want || rel.Root != root {
		t.Errorf("relative root: val_label_source %q, root %q; want %q and %q", rel.ValLabelSource, rel.Root, want, root)
	}
	reasons := map[string]string{}
	for _, s := range rep.Skipped {
		reasons[s.Name] = s.Reason
		if !strings.Contains(s.Path, s.Name) {
			t.Errorf("skip path %q does not name the file", s.Path)
		}
	}
	if len(reasons) != bad || reasons[wnids[1]+"_truncated.JPEG"] == "" || reasons[wnids[2]+"_empty.JPEG"] == "" {
		t.Fatalf("skips: %+v", rep.Skipped)
	}
	m, err := shards.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Classes) != 3 || m.Classes[2].WNID != wnids[2] || m.Stats == nil || m.Splits["train"].Skipped != bad {
		t.Fatalf("meta: %+v", m)
	}
	// Every shard verifies, train labels are in range, val keeps name order
	// and its labels come from the solution file.
	seen := map[uint64]bool{}
	for _, split := range []string{"train", "val"} {
		var prev string
		for _, p := range m.ShardPaths(out, split) {
			if v := shards.Verify(p, true); len(v.Damage) > 0 {
				t.Fatal(v.Damage)
			}
			r, _ := shards.Open(p)
			var rec shards.Record
			var buf []byte
			for i := 0; i < r.Len(); i++ {
				buf, _ = r.ReadRecord(i, &rec, buf)
				if rec.W != 24 || rec.H != 24 {
					t.Fatalf("%s: %dx%d", rec.Name, rec.W, rec.H)
				}
				if split == "train" {
					if seen[rec.ID] || rec.Label < 0 || rec.Label > 2 || !strings.HasPrefix(rec.Name, wnids[rec.Label]) {
						t.Fatalf("train record %+v", rec.Name)
					}
					seen[rec.ID] = true
				} else {
					if rec.Name <= prev {
						t.Fatalf("val out of order: %s after %s", rec.Name, prev)
					}
					prev = rec.Name
					var n int
					fmt.Sscanf(rec.Name, "ILSVRC2012_val_%d.JPEG", &n)
					if int(rec.Label) != n%3 {
						t.Fatalf("%s label %d want %d", rec.Name, rec.Label, n%3)
					}
				}
			}
			r.Close()
		}
	}
	// The train shuffle must mix classes across shards: the first shard is
	// not one class.
	r, _ := shards.Open(m.ShardPaths(out, "train")[0])
	labels := map[int32]bool{}
	var rec shards.Record
	for i := 0; i < r.Len(); i++ {
		r.ReadRecord(i, &rec, nil)
		labels[rec.Label] = true
	}
	r.Close()
	if len(labels) < 2 {
		t.Fatalf("first train shard holds one class: shuffle missing")
	}
}

func TestDeterministicAcrossWorkers(t *testing.T) {
	root, _ := makeTree(t, 10)
	a, b := t.TempDir(), t.TempDir()
	if _, err := ingestDir(t, root, a, 1, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ingestDir(t, root, b, 4, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	sameOutput(t, outputFiles(t, a), outputFiles(t, b))
}

// A run stopped part-way (here: cancelled after some records, with a stale
// temporary file as a kill would leave) and started again ends
// byte-identical to an uninterrupted run, and reuses the finished shards.
func TestResumeAfterInterruption(t *testing.T) {
	root, _ := makeTree(t, 10)
	want := t.TempDir()
	if _, err := ingestDir(t, root, want, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := ingestDir(t, root, out, 2, ctx, func(p Progress) {
		if p.Split == "train" && p.Done == 17 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run returned %v", err)
	}
	// The report on disk says the run was interrupted; the next run's
	// end replaces it with its own.
	if r := readReport(t, out); r.ExitCode != cli.ExitInterrupted || !strings.HasPrefix(r.Error, "interrupted; the complete shards are kept") {
		t.Errorf("the interrupted run's report: exit_code %d, error %q", r.ExitCode, r.Error)
	}
	os.WriteFile(filepath.Join(out, "train-00007.shard.tmp"), []byte("partial"), 0o644)
	rep, err := ingestDir(t, root, out, 3, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := readReport(t, out); r.ExitCode != 0 || r.Error != "" || r.ResumedShards != rep.ResumedShards {
		t.Errorf("the finished run's report: exit_code %d, error %q, %d resumed shards (want %d)", r.ExitCode, r.Error, r.ResumedShards, rep.ResumedShards)
	}
	if rep.ResumedShards < 2 {
		t.Fatalf("resumed %d shards, want the ones finished before the interruption", rep.ResumedShards)
	}
	sameOutput(t, outputFiles(t, want), outputFiles(t, out))
	// A second run over a complete output is a no-op that changes nothing.
	rep, err = ingestDir(t, root, out, 1, context.Background(), nil)
	if err != nil || rep.ProcessedRun != 0 {
		t.Fatalf("rerun processed %d images (%v)", rep.ProcessedRun, err)
	}
	sameOutput(t, outputFiles(t, want), outputFiles(t, out))
}

// A run that fails after its first change to out (here a folder where a
// shard is to go) leaves a report that gives the failure, not the
// placeholder that says it is still running.
func TestFailedRunReportsWhy(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	blocker := filepath.Join(out, "train-00001.shard")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err == nil {
		t.Fatal("a folder where a shard goes did not fail the run")
	}
	r := readReport(t, out)
	if r.ExitCode != 1 || !strings.Contains(r.Error, "train-00001.shard") || strings.HasPrefix(r.Error, "unfinished") {
		t.Errorf("the failed run's report: exit_code %d, error %q", r.ExitCode, r.Error)
	}
	// Its figures are what it found, and what it left on disk: the first
	// shard, sealed before the failure.
	sc, err := readSidecarFile(filepath.Join(out, stateDir, "train-00000.shard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Written["train"] != sc.Info.Records || sc.Info.Records == 0 || r.Images["val"] != 7 || r.Written["val"] != 0 {
		t.Errorf("the failed run's report: images %v, written %v; want train's written %d (its first shard)", r.Images, r.Written, sc.Info.Records)
	}
}

// A rerun clears the temporary files a killed run of ingest left, by
// ingest's own names, and leaves the user's other .tmp files in --out.
func TestResumeClearsOnlyIngestTemps(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(out, stateDir)
	ingests := []string{
		filepath.Join(out, "train-00007.shard.tmp"), // an earlier build's fixed name
		filepath.Join(out, "train-00001.shard.0badf00d.tmp"),
		filepath.Join(out, "meta.json.12345678.tmp"),
		filepath.Join(out, ReportFile+".tmp"),
		filepath.Join(state, "val-00000.shard.json.abcdef01.tmp"),
		filepath.Join(state, datasetFile+".tmp"),
	}
	users := []string{
		filepath.Join(out, "notes.tmp"),
		filepath.Join(out, "download.0badf00d.tmp"),
		filepath.Join(out, "train-7.shard.tmp"),
		filepath.Join(out, "meta.json.old.tmp"),
		filepath.Join(out, ".tmp"),
		filepath.Join(state, "mine.json.tmp"),
	}
	for _, p := range append(slices.Clone(ingests), users...) {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range ingests {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s: a killed run's temporary file was kept", p)
		}
	}
	for _, p := range users {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: the user's file was removed (%v)", p, err)
		}
	}
}

// A shard damaged after a run is not trusted on resume: it is rewritten.
func TestResumeRewritesDamagedShard(t *testing.T) {
	root, _ := makeTree(t, 6)
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, out string)
		redone int    // images decoded again
		says   string // the warning's account of the shard
	}{
		{"a flipped bit in the trailer", func(t *testing.T, out string) {
			p := filepath.Join(out, "train-00001.shard")
			b, _ := os.ReadFile(p)
			b[len(b)-3] ^= 1
			os.WriteFile(p, b, 0o644)
		}, 5, "train-00001.shard: malformed shard"},
		{"cut short", func(t *testing.T, out string) {
			p := filepath.Join(out, "train-00001.shard")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, 5, "train-00001.shard: malformed shard: no trailer"},
		{"deleted", func(t *testing.T, out string) {
			os.Remove(filepath.Join(out, "train-00002.shard"))
		}, 5, "train-00002.shard: missing (deleted since?)"},
		{"another shard of as many records copied over it", func(t *testing.T, out string) {
			m, err := shards.ReadMeta(out)
			if err != nil {
				t.Fatal(err)
			}
			sh := m.Splits["train"].Shards
			for i := 2; i < len(sh); i++ {
				if sh[i].Records == sh[1].Records {
					b, _ := os.ReadFile(filepath.Join(out, sh[i].File))
					os.WriteFile(filepath.Join(out, "train-00001.shard"), b, 0o644)
					return
				}
			}
			t.Fatalf("no shard holds as many records as train-00001.shard: %+v", sh)
		}, 5, "train-00001.shard: its trailer's CRC is "},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			want := outputFiles(t, out)
			c.damage(t, out)
			rep, err := ingestDir(t, root, out, 2, context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if rep.ProcessedRun != c.redone {
				t.Fatalf("rewrote %d images, want one shard's %d", rep.ProcessedRun, c.redone)
			}
			sameOutput(t, want, outputFiles(t, out))
			// Storage that changes a finished shard is going bad: the
			// user hears of it, not only of a resume.
			said := false
			for _, w := range rep.Warnings {
				said = said || strings.HasPrefix(w, "train: 1 shard an earlier run finished is damaged or gone, written again") && strings.Contains(w, c.says)
			}
			if !said {
				t.Errorf("no warning naming the damaged shard (%q) in %q", c.says, rep.Warnings)
			}
			// Resumed over an intact output, nothing is said.
			rep, err = ingestDir(t, root, out, 2, context.Background(), nil)
			if err != nil || rep.ProcessedRun != 0 || slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "damaged or gone") }) {
				t.Errorf("a run over intact shards: %d decoded, warnings %q, %v", rep.ProcessedRun, rep.Warnings, err)
			}
		})
	}
}

func TestIngestRealSample(t *testing.T) {
	files := testdata.ImageNetSample(t)
	if testing.Short() {
		files = files[:40]
	}
	root := t.TempDir()
	for _, f := range files {
		wnid, _, _ := strings.Cut(filepath.Base(f), "_")
		dir := filepath.Join(root, "train", wnid)
		os.MkdirAll(dir, 0o755)
		if err := os.Symlink(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := imagenet.Open(root, imagenet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	out := t.TempDir()
	rep, err := Run(context.Background(), ds, Options{Out: out, Size: 256, Seed: 1, ShardSize: 64, Workers: 2, Codec: shards.CodecGradHuff})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Written["train"] != len(files) || len(rep.Skipped) != 0 {
		t.Fatalf("wrote %d of %d, skipped %+v", rep.Written["train"], len(files), rep.Skipped)
	}
	// The goal is 0.6; grad-huff measured 0.47 on these photos (FORMAT.md),
	// so a regression past 0.5 fails here before it reaches the goal.
	if ratio := rep.BytesPerImage / float64(rep.RawPerImage); ratio > 0.5 {
		t.Errorf("shards hold %.3f of raw bytes, want ≤ 0.5", ratio)
	}
	m, _ := shards.ReadMeta(out)
	st := m.Stats
	// Real photos: the mean sits near cuda-convnet2's ImageNet figures
	// (127, 120, 105) and the top principal component is the brightness
	// axis, all three weights of one sign.
	for c, want := range []float64{127.3, 119.7, 104.9} {
		if math.Abs(st.Mean[c]-want) > 15 {
			t.Errorf("mean[%d] = %.1f, far from ImageNet's %.1f", c, st.Mean[c], want)
		}
	}
	v := st.PCAEigvec
	if v[0][0]*v[1][0] <= 0 || v[0][0]*v[2][0] <= 0 || st.PCAEigval[0] < st.PCAEigval[1] || st.PCAEigval[1] < st.PCAEigval[2] {
		t.Errorf("PCA looks wrong: %+v", st)
	}
	t.Logf("200 real JPEGs: %.0f B/image (%.3f of raw), mean %.1f, std %.1f, eigval %.0f", rep.BytesPerImage, rep.BytesPerImage/float64(rep.RawPerImage), st.Mean, st.Std, st.PCAEigval)
}

// tarDir writes every regular file under dir into a tar at path, names
// relative to dir, sorted.
func tarDir(t *testing.T, path, dir string, files []string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// The same images give byte-identical shards whether they come from the
// extracted tree or from the official archives, read in place.
func TestTreeAndTarsGiveIdenticalShards(t *testing.T) {
	root, _ := makeTree(t, 6)
	// Images in folders inside a class folder, one of them a second copy
	// of a name (a backup/), are read alike from the tree and the tar.
	cls := filepath.Join(root, "train", wnids[0])
	first := wnids[0] + "_0.JPEG"
	img, err := os.ReadFile(filepath.Join(cls, first))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(cls, "images", wnids[0]+"_1.JPEG"), filepath.Join(cls, "backup", first)} {
		os.MkdirAll(filepath.Dir(p), 0o755)
	}
	if err := os.Rename(filepath.Join(cls, wnids[0]+"_1.JPEG"), filepath.Join(cls, "images", wnids[0]+"_1.JPEG")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(cls, "backup", first), img, 0o644)
	tars := t.TempDir()
	staging := t.TempDir()
	var classTars []string
	for _, w := range wnids {
		var names []string
		filepath.WalkDir(filepath.Join(root, "train", w), func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				rel, _ := filepath.Rel(filepath.Join(root, "train", w), p)
				names = append(names, filepath.ToSlash(rel))
			}
			return nil
		})
		tarDir(t, filepath.Join(staging, w+".tar"), filepath.Join(root, "train", w), names)
		classTars = append(classTars, w+".tar")
	}
	tarDir(t, filepath.Join(tars, "ILSVRC2012_img_train.tar"), staging, classTars)
	ents, _ := os.ReadDir(filepath.Join(root, "val"))
	var vals []string
	for _, e := range ents {
		vals = append(vals, e.Name())
	}
	tarDir(t, filepath.Join(tars, "ILSVRC2012_img_val.tar"), filepath.Join(root, "val"), vals)
	sol, _ := os.ReadFile(filepath.Join(root, "LOC_val_solution.csv"))
	os.WriteFile(filepath.Join(tars, "LOC_val_solution.csv"), sol, 0o644)

	a, b := t.TempDir(), t.TempDir()
	if _, err := ingestDir(t, root, a, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	rep, err := ingestDir(t, tars, b, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Layout != "tars" {
		t.Fatalf("layout %s", rep.Layout)
	}
	if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, "file names repeat within a class's folders") }) {
		t.Errorf("the backup copy's name was not met twice: %q", rep.Warnings)
	}
	for _, s := range rep.Skipped {
		if !strings.Contains(s.Path, "ILSVRC2012_img_train.tar:") {
			t.Errorf("skip inside an archive must name the archive path: %q", s.Path)
		}
	}
	sameOutput(t, outputFiles(t, a), outputFiles(t, b))
}

// Entries the listing rejects (a dangling link, a directory named as an
// image) are reported with path and reason, counted as found and skipped,
// and an interrupted run over them resumes to the same bytes.
func TestUnusableEntriesSkipped(t *testing.T) {
	root, bad := makeTree(t, 10)
	cls := filepath.Join(root, "train", wnids[0])
	if err := os.Symlink("/nonexistent/foo.JPEG", filepath.Join(cls, "dangling.JPEG")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(cls, "x.JPEG"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Not UTF-8 (Latin-1 é) and not a JPEG: the report keeps its bytes.
	latin := filepath.Join("train", wnids[0], "caf\xe9.JPEG")
	if err := os.WriteFile(filepath.Join(root, latin), []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad++
	// Not named as an image: left out, each named in the report.
	for _, n := range []string{"a.txt", "b.xml", "c.mat", "d.csv", "e.npy", "f.json"} {
		if err := os.WriteFile(filepath.Join(cls, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := t.TempDir()
	rep, err := ingestDir(t, root, want, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.LeftOut) != 6 || rep.LeftOut[5] != filepath.Join("train", wnids[0], "f.json") {
		t.Errorf("left out %q", rep.LeftOut)
	}
	reasons := map[string]string{}
	for _, s := range rep.Skipped {
		reasons[s.Path] = s.Reason
	}
	rel := filepath.Join("train", wnids[0])
	if reasons[filepath.Join(rel, "dangling.JPEG")] != "dangling symbolic link to /nonexistent/foo.JPEG" ||
		reasons[filepath.Join(rel, "x.JPEG")] != "a directory, not a file" || len(rep.Skipped) != bad+2 {
		t.Fatalf("skipped %+v", rep.Skipped)
	}
	if rep.Images["train"] != rep.Written["train"]+rep.SkippedCount["train"] || rep.SkippedCount["train"] != bad+2 {
		t.Fatalf("images %v, written %v, skipped %v", rep.Images, rep.Written, rep.SkippedCount)
	}
	if m, err := shards.ReadMeta(want); err != nil || m.Splits["train"].Skipped != bad+2 {
		t.Fatalf("meta: %v %+v", err, m)
	}

	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err = ingestDir(t, root, out, 2, ctx, func(p Progress) {
		if p.Split == "train" && p.Done == 17 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run returned %v", err)
	}
	if _, err := ingestDir(t, root, out, 1, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	sameOutput(t, outputFiles(t, want), outputFiles(t, out))
	if _, ok := reasons[latin]; !ok {
		t.Errorf("the non-UTF-8 name is not among the skipped as its bytes: %+q", rep.Skipped)
	}
	// A run over the finished output reads every skip back from the
	// shards' sidecars: the same entries, bytes and all.
	again, err := ingestDir(t, root, out, 1, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Skipped, rep.Skipped) {
		t.Errorf("skips read back from .ingest-state differ:\n%+q\nwant\n%+q", again.Skipped, rep.Skipped)
	}
}

// A run with other settings leaves exactly the shards its meta.json lists,
// of the splits it wrote, and touches nothing named otherwise.
func TestStaleShardsRemoved(t *testing.T) {
	root, _ := makeTree(t, 10)
	out := t.TempDir()
	run := func(shardSize int, splits ...string) *Report {
		t.Helper()
		return mustIngest(t, root, Options{Out: out, Size: 24, Seed: 7, ShardSize: shardSize, Workers: 2, Codec: shards.CodecGradZstd, Splits: splits})
	}
	// 33 train images: shards 0..6 at 5 a shard, 0..1 at 20; 7 val: 0..1 at 5.
	if rep := run(5); len(rep.Removed) != 0 {
		t.Fatalf("a first run removed %v", rep.Removed)
	}
	decoys := []struct {
		name string
		dir  bool
	}{
		{"train-1.shard", false},         // not ShardName's width
		{"train-000099.shard", false},    // nor its zero padding
		{"train-00050.shard.bak", false}, // nor its suffix
		{"Train-00050.shard", false},
		{"train-00050.shard", true},  // the name, but a folder
		{"train-00040.shard", false}, // the name, but not a shard's bytes
		{"notes.txt", false},
		{filepath.Join(".ingest-state", "train-1.shard.json"), false},
	}
	for _, d := range decoys {
		p := filepath.Join(out, d.name)
		if d.dir {
			os.Mkdir(p, 0o755)
		} else {
			os.WriteFile(p, []byte("keep"), 0o644)
		}
	}
	// A stale shard whose header was damaged since is still known as
	// ingest's by its sidecar.
	f, err := os.OpenFile(filepath.Join(out, "train-00006.shard"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("XXXX"), 0)
	f.Close()
	rep := run(20, "train")
	wantRemoved := []string{"train-00002.shard", "train-00003.shard", "train-00004.shard", "train-00005.shard", "train-00006.shard"}
	if fmt.Sprint(rep.Removed) != fmt.Sprint(wantRemoved) {
		t.Errorf("removed %v, want %v", rep.Removed, wantRemoved)
	}
	var left, state []string
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	ents, _ = os.ReadDir(filepath.Join(out, ".ingest-state"))
	for _, e := range ents {
		state = append(state, e.Name())
	}
	// val was not written this time: its shards stay, though meta.json
	// no longer lists them.
	wantLeft := "[.ingest-state .lock Train-00050.shard ingest-report.json meta.json notes.txt train-00000.shard train-00001.shard " +
		"train-000099.shard train-00040.shard train-00050.shard train-00050.shard.bak train-1.shard val-00000.shard val-00001.shard]"
	if fmt.Sprint(left) != wantLeft {
		t.Errorf("left in --out:\n%v\nwant\n%v", left, wantLeft)
	}
	wantState := "[dataset.json train-00000.shard.json train-00001.shard.json train-1.shard.json val-00000.shard.json val-00001.shard.json]"
	if fmt.Sprint(state) != wantState {
		t.Errorf("left in .ingest-state: %v, want %v", state, wantState)
	}
	b, _ := os.ReadFile(filepath.Join(out, "ingest-report.json"))
	if !strings.Contains(string(b), `"removed_stale": [
    "train-00002.shard",`) {
		t.Errorf("ingest-report.json does not list the removed shards:\n%s", b)
	}
	// With val written again at the new size, its second shard goes too.
	if rep := run(20); fmt.Sprint(rep.Removed) != "[val-00001.shard]" {
		t.Errorf("val rewritten: removed %v, want [val-00001.shard]", rep.Removed)
	}
}

// Writing one split into a folder that holds the other keeps the other
// listed (and the train statistics) when the settings match, and says it
// is no longer listed when they do not.
func TestLaterSplitKeepsEarlier(t *testing.T) {
	root, _ := makeTree(t, 10)
	run := func(out string, size int, splits ...string) *Report {
		t.Helper()
		return mustIngest(t, root, Options{Out: out, Size: size, Seed: 7, ShardSize: 5, Workers: 2, Codec: shards.CodecGradZstd, Splits: splits})
	}
	both := t.TempDir()
	run(both, 24)
	want, err := shards.ReadMeta(both)
	if err != nil {
		t.Fatal(err)
	}

	split := t.TempDir()
	run(split, 24, "train")
	if rep := run(split, 24, "val"); strings.Contains(fmt.Sprint(rep.Warnings), "no longer lists") {
		t.Errorf("warnings: %v", rep.Warnings)
	}
	got, err := shards.ReadMeta(split)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("train then val gives another meta.json than both at once:\n%+v\nwant\n%+v", got, want)
	}
	for _, sp := range got.Splits {
		for _, sh := range sp.Shards {
			if v := shards.Verify(filepath.Join(split, sh.File), false); len(v.Damage) != 0 {
				t.Errorf("verify %s: %v", sh.File, v.Damage)
			}
		}
	}

	// An earlier build's meta.json (format version 1) keeps its split too:
	// this build reads its shards, whose headers give their own version.
	old := t.TempDir()
	run(old, 24, "train")
	m, err := shards.ReadMeta(old)
	if err != nil {
		t.Fatal(err)
	}
	m.FormatVersion = shards.MinVersion
	if err := shards.WriteMeta(old, m); err != nil {
		t.Fatal(err)
	}
	run(old, 24, "val")
	if got, err := shards.ReadMeta(old); err != nil || got.Splits["train"].Records != want.Splits["train"].Records || got.Stats == nil {
		t.Errorf("an earlier format's train split is not kept: %v", err)
	}

	// Another size: the train shards no longer belong with the new val.
	rep := run(split, 20, "val")
	got, err = shards.ReadMeta(split)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Splits["train"]; ok || got.Stats != nil {
		t.Error("train shards of another size kept in meta.json")
	}
	if !strings.Contains(fmt.Sprint(rep.Warnings), "no longer lists the train split") {
		t.Errorf("warnings: %v", rep.Warnings)
	}
}

// Shards with skipped images feed the pipeline whole: record IDs number
// the listed images, skipped ones included, so they run past Records.
func TestPipelineReadsShardsWithSkips(t *testing.T) {
	root, bad := makeTree(t, 6)
	if bad == 0 {
		t.Fatal("the fixture tree has no undecodable file")
	}
	out := t.TempDir()
	rep, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SkippedCount["train"] == 0 {
		t.Fatalf("no train image skipped: %+v", rep.SkippedCount)
	}
	for _, mode := range []pipeline.Mode{pipeline.Train, pipeline.Center} {
		split := map[pipeline.Mode]string{pipeline.Train: "train", pipeline.Center: "val"}[mode]
		pl, err := pipeline.New(context.Background(), out, pipeline.Options{Mode: mode, Split: split, Batch: 1, Crop: 20, Epochs: 1})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			s, err := pl.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s record %d: %v", split, n, err)
			}
			n += s.N
			s.Release()
		}
		pl.Close()
		if n != rep.Written[split] {
			t.Errorf("%s: %d records read, %d written", split, n, rep.Written[split])
		}
	}
}

// A requested split that this copy of the dataset lacks is not rewritten:
// its shards from an earlier run stay, and stay listed.
func TestMissingSplitKeepsShards(t *testing.T) {
	root, _ := makeTree(t, 10)
	out := t.TempDir()
	if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	before := outputFiles(t, out)
	want, err := shards.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	// The same dataset without its train images (the class list comes
	// from the val labels and synset mapping the fixture writes).
	if err := os.RemoveAll(filepath.Join(root, "train")); err != nil {
		t.Fatal(err)
	}
	for _, c := range wnids {
		os.MkdirAll(filepath.Join(root, "train", c), 0o755)
	}
	rep, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Removed) != 0 {
		t.Errorf("removed %v", rep.Removed)
	}
	got, err := shards.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Splits, want.Splits) || !reflect.DeepEqual(got.Stats, want.Stats) {
		t.Errorf("meta.json changed: %+v, want %+v", got.Splits, want.Splits)
	}
	after := outputFiles(t, out)
	for name, b := range before {
		if strings.HasSuffix(name, ".shard") && !bytes.Equal(after[name], b) {
			t.Errorf("%s was removed or changed", name)
		}
	}

	// A damaged meta.json cannot vouch for the other split: it is no
	// longer listed, with a warning, and its shards stay on disk.
	os.WriteFile(filepath.Join(out, shards.MetaFile), []byte("{"), 0o644)
	rep, err = ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(rep.Warnings), "could not be read") {
		t.Errorf("warnings: %v", rep.Warnings)
	}
	if _, err := os.Stat(filepath.Join(out, "train-00000.shard")); err != nil {
		t.Error(err)
	}
}

// Fixing a file the report listed and running the same command again
// reads the fixed file: the shard that held its skip is made again, and
// the output equals a fresh run over the fixed tree.
func TestResumeRereadsReplacedFile(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	rep, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var fixed []string
	for _, s := range rep.Skipped {
		if s.Split == "train" {
			// A valid JPEG where the broken one was: another size.
			if err := os.WriteFile(filepath.Join(root, s.Path), fixtures.JPEG(t, 40, 30, 3, false), 0o644); err != nil {
				t.Fatal(err)
			}
			fixed = append(fixed, s.Path)
		}
	}
	if len(fixed) == 0 {
		t.Fatal("the fixture has no broken train image")
	}
	rep, err = ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Skipped {
		if slices.Contains(fixed, s.Path) {
			t.Errorf("%s still skipped after it was fixed: %s", s.Path, s.Reason)
		}
	}
	sameAsFresh(t, root, out)
}

// Each image is stamped once a run, before it is read: a file replaced
// just as its shard's stamps were taken is read in its new form, or its
// changed stamp makes the next run read it again. Stamping after the decode
// (as the writer once did) would record the new stamp beside the old
// pixels, and the resume would keep them.
func TestStampTakenOnceBeforeRead(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	calls := map[string]int{}
	var replaced string
	itemStamp = func(ds *imagenet.Dataset, it *imagenet.Item) string {
		calls[it.Path]++ // the dispatcher and resumable stamp from one goroutine at a time
		if replaced == "" && strings.HasPrefix(it.Path, "train/") {
			replaced = it.Path
			if err := os.WriteFile(filepath.Join(root, it.Path), fixtures.JPEG(t, 44, 28, 5, false), 0o644); err != nil {
				t.Error(err)
			}
		}
		return ds.ItemStamp(it)
	}
	t.Cleanup(func() { itemStamp = (*imagenet.Dataset).ItemStamp })
	check := func(run string) {
		t.Helper()
		if len(calls) == 0 {
			t.Fatalf("%s: no stamp taken", run)
		}
		for p, n := range calls {
			if n != 1 {
				t.Errorf("%s: %s stamped %d times, want once", run, p, n)
			}
		}
		clear(calls)
	}
	if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	check("first run")
	if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	check("resume")
	itemStamp = (*imagenet.Dataset).ItemStamp
	sameAsFresh(t, root, out)
}

// A file that could not be read (moved away for a moment, an I/O error,
// permissions) keeps its size and time: its shard must not be kept for
// them, with the old error repeated for good. The next run reads it again
// and ends as a clean run does. Also: a name longer than a record holds is
// skipped, not the end of the run.
func TestReadFailureIsRetried(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	var gone, away string
	itemStamp = func(ds *imagenet.Dataset, it *imagenet.Item) string {
		stamp := ds.ItemStamp(it)
		if gone == "" && strings.HasPrefix(it.Path, "train/") {
			// Stamped as it was, then gone when a worker reads it.
			gone, away = it.Path, filepath.Join(t.TempDir(), "away")
			if err := os.Rename(filepath.Join(root, it.Path), away); err != nil {
				t.Error(err)
			}
		}
		return stamp
	}
	t.Cleanup(func() { itemStamp = (*imagenet.Dataset).ItemStamp })
	rep, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	itemStamp = (*imagenet.Dataset).ItemStamp
	found := false
	for _, s := range rep.Skipped {
		found = found || s.Path == gone && strings.HasPrefix(s.Reason, readReason)
	}
	if !found {
		t.Fatalf("%s, moved away before its read, is not skipped as unread: %+v", gone, rep.Skipped)
	}
	if err := os.Rename(away, filepath.Join(root, gone)); err != nil { // back, as it was
		t.Fatal(err)
	}
	rep, err = ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Skipped {
		if s.Path == gone {
			t.Errorf("%s still skipped once it reads: %s", gone, s.Reason)
		}
	}
	sameAsFresh(t, root, out)
}

// A file refused for its size is no failure that may pass: its shard is
// kept by the next run, not made again.
func TestTooLargeIsNotRetried(t *testing.T) {
	root, _ := makeTree(t, 2)
	big := filepath.Join(root, "train", wnids[0], "huge.JPEG")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1<<30 + 1); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	out := t.TempDir()
	rep, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(rep.Skipped, func(s Skip) bool { return strings.HasSuffix(s.Path, "huge.JPEG") })
	if i < 0 || strings.HasPrefix(rep.Skipped[i].Reason, readReason) || !strings.Contains(rep.Skipped[i].Reason, "too large for an image") {
		t.Fatalf("the oversized file's skip: %+v", rep.Skipped)
	}
	again, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.ProcessedRun != 0 {
		t.Fatalf("the rerun processed %d images again, want none", again.ProcessedRun)
	}
}

// A tar member's name (PAX) can be longer than a record's may: that image
// is skipped and named, and the run goes on. Before, the shard writer
// refused the name and stopped the run, at the same place every time.
func TestOverlongNameSkipped(t *testing.T) {
	tarBytes := func(members map[string][]byte, order []string) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, name := range order {
			data := members[name]
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
				t.Fatal(err)
			}
			tw.Write(data)
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	const wnid = "n01440764"
	long := wnid + "_" + strings.Repeat("a", 5000) + ".JPEG"
	img := fixtures.JPEG(t, 40, 30, 3, false)
	class := tarBytes(map[string][]byte{wnid + "_1.JPEG": img, long: img}, []string{wnid + "_1.JPEG", long})
	root := t.TempDir()
	outer := tarBytes(map[string][]byte{wnid + ".tar": class}, []string{wnid + ".tar"})
	if err := os.WriteFile(filepath.Join(root, "ILSVRC2012_img_train.tar"), outer, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := ingestDir(t, root, t.TempDir(), 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Written["train"] != 1 || len(rep.Skipped) != 1 || rep.Skipped[0].Name != long ||
		!strings.Contains(rep.Skipped[0].Reason, "a name of 5015 bytes: a shard record's name holds at most 4096") {
		t.Fatalf("train records %d, skipped %+v", rep.Written["train"], rep.Skipped)
	}
}

// A plan without items (none is made today) is sealed as an empty shard,
// its key taken by the writer alone: the dispatcher leaves it, so that
// nothing races on it (run with -race to see the ordering checked).
func TestEmptyPlanSealedWithoutRace(t *testing.T) {
	root, _ := makeTree(t, 3)
	ds, err := imagenet.Open(root, imagenet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, stateDir), 0o755); err != nil {
		t.Fatal(err)
	}
	opt := Options{Out: out, Size: 24, Seed: 7, ShardSize: 5, Workers: 2, Codec: shards.CodecGradZstd}
	todo := append([]*shardPlan{{split: "train"}}, plan("train", ds.Train, opt.Seed, opt.ShardSize)...)
	for i, p := range todo {
		p.index = i
	}
	rep := &Report{Images: map[string]int{}, Written: map[string]int{}, SkippedCount: map[string]int{}}
	if err := runPlans(context.Background(), ds, opt, "train", todo, nil, 0, rep); err != nil {
		t.Fatal(err)
	}
	sc, err := readSidecar(out, todo[0])
	if err != nil || sc.Info.Records != 0 || sc.Plan != todo[0].planKey(ds, &opt) {
		t.Fatalf("the empty plan's sidecar: %+v, %v", sc, err)
	}
}

// A repair that leaves the file's length as it was (an image re-saved
// over a damaged copy, padded to the same size) is still seen by its
// modification time: the shard holding it is made again.
func TestResumeRereadsSameLengthReplacement(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	rep, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first train image that decoded: whichever file is not skipped.
	var target string
	matches, _ := filepath.Glob(filepath.Join(root, "train", "*", "*.JPEG"))
	for _, m := range matches {
		rel, _ := filepath.Rel(root, m)
		if !slices.ContainsFunc(rep.Skipped, func(s Skip) bool { return s.Path == rel }) {
			target = m
			break
		}
	}
	if target == "" {
		t.Fatal("the fixture has no good train image")
	}
	old, err := os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	// Other pixels, padded after the end-of-image marker to the old length.
	repl := fixtures.JPEG(t, 8, 8, 99, false)
	if len(repl) > len(old) {
		t.Fatalf("replacement is %d bytes, the original only %d", len(repl), len(old))
	}
	repl = append(repl, make([]byte, len(old)-len(repl))...)
	if err := os.WriteFile(target, repl, 0o644); err != nil {
		t.Fatal(err)
	}
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(target, later, later); err != nil {
		t.Fatal(err)
	}
	rep2, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := filepath.Glob(filepath.Join(out, "*.shard"))
	if rep.ResumedShards != 0 || rep2.ResumedShards != len(all)-1 {
		t.Errorf("resumed %d, then %d shards of %d: want none, then all but the one holding the replaced file", rep.ResumedShards, rep2.ResumedShards, len(all))
	}
	sameAsFresh(t, root, out)
}

// A source gone bad (every train file truncated) does not replace the
// shards made when it was good: the run stops at the first shard to write,
// with everything in out as it was, until --overwrite says to go ahead.
func TestAllSkippedShardKeepsEarlierRecords(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	before := outputFiles(t, out)
	matches, _ := filepath.Glob(filepath.Join(root, "train", "*", "*.JPEG"))
	for _, m := range matches {
		if err := os.WriteFile(m, []byte("version https://git-lfs"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stopped, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if !errors.Is(err, ErrAllSkipped) || !strings.Contains(err.Error(), "--overwrite") || !strings.Contains(err.Error(), "train records already in") {
		t.Fatalf("re-ingest of an all-broken train split: %v", err)
	}
	sameOutput(t, before, outputFiles(t, out))
	// Its report, returned and on disk, is a failure's, and lists every
	// file of the shard that stopped it (ShardSize 5), not only the first.
	if stopped == nil {
		t.Fatal("no report for the stopped run")
	}
	r := readReport(t, out)
	if r.ExitCode != 1 || !strings.Contains(r.Error, "every image of the first shard to write was skipped") {
		t.Errorf("%s: exit_code %d, error %q", ReportFile, r.ExitCode, r.Error)
	}
	for _, got := range []Report{*stopped, r} {
		if len(got.Skipped) != 5 || got.SkippedCount["train"] != 5 || got.Written["train"] != 0 {
			t.Errorf("report: %d skipped (%v), count %v, written %v; want the shard's 5", len(got.Skipped), got.Skipped, got.SkippedCount, got.Written)
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(out, "*.tmp")); len(tmps) > 0 {
		t.Errorf("left %v", tmps)
	}
	rep, err := ingestWith(t, context.Background(), root, Options{Out: out, Size: 24, Seed: 7, ShardSize: 5, Workers: 2,
		Codec: shards.CodecGradZstd, Overwrite: true})
	if err != nil || rep.Written["train"] != 0 || rep.Written["val"] == 0 {
		t.Fatalf("with Overwrite: %v, written %v", err, rep.Written)
	}
}

// When a later split trips the guard, the splits written before it are
// rewritten already: meta.json must list their new shards, not the old
// run's, so the folder stays a dataset train can read.
func TestAllSkippedLaterSplitKeepsMetaTrue(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	vals, _ := filepath.Glob(filepath.Join(root, "val", "*.JPEG"))
	if len(vals) == 0 {
		t.Fatal("the fixture has no val images")
	}
	for _, v := range vals {
		if err := os.WriteFile(v, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Other settings, so every train shard is rewritten.
	_, err := ingestWith(t, context.Background(), root, Options{Out: out, Size: 20, Seed: 7, ShardSize: 5, Workers: 2, Codec: shards.CodecGradZstd})
	if !errors.Is(err, ErrAllSkipped) || !strings.Contains(err.Error(), "the splits before it (train) are written") {
		t.Fatalf("val all broken after train: %v", err)
	}
	// Its report on disk is a failure's, before any command rewrites it,
	// and lists the stopping shard's skips.
	rep := readReport(t, out)
	if rep.ExitCode != 1 || rep.Error == "" {
		t.Errorf("the stopped run's %s: exit_code %d, error %q, want 1 and why", ReportFile, rep.ExitCode, rep.Error)
	}
	valSkips := 0
	for _, sk := range rep.Skipped {
		if sk.Split == "val" {
			valSkips++
		}
	}
	if n := min(len(vals), 5); rep.SkippedCount["val"] != n || valSkips != n {
		t.Errorf("the stopped run's report: %d val skips listed, count %v; want the val shard's %d", valSkips, rep.SkippedCount, n)
	}
	m, err := shards.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Width != 20 || m.Splits["train"].Records == 0 {
		t.Fatalf("meta.json after the stop: %d px, train %+v", m.Width, m.Splits["train"])
	}
	for _, sh := range m.Splits["train"].Shards {
		r, err := shards.Open(filepath.Join(out, sh.File))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%08x", r.FileCRC()); got != sh.CRC32C || r.Len() != sh.Records {
			t.Errorf("%s: CRC %s, %d records; meta.json says %s, %d", sh.File, got, r.Len(), sh.CRC32C, sh.Records)
		}
		r.Close()
	}
}

// A first shard that was all skipped in the earlier run too (the same bad
// files, not a source gone bad) does not stop a re-ingest.
func TestAllSkippedAgainIsNoAlarm(t *testing.T) {
	root, _ := makeTree(t, 6)
	vals, _ := filepath.Glob(filepath.Join(root, "val", "*.JPEG"))
	sort.Strings(vals)
	if len(vals) < 6 {
		t.Skipf("the fixture has %d val images, want 6", len(vals))
	}
	for _, v := range vals[:5] { // val is cut in name order: shard 0 is these
		if err := os.WriteFile(v, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	rep, err := ingestDir(t, root, out, 2, context.Background(), nil)
	if err != nil || rep.Written["val"] == 0 {
		t.Fatalf("first run: %v, written %v", err, rep.Written)
	}
	if _, err := ingestWith(t, context.Background(), root, Options{Out: out, Size: 20, Seed: 7, ShardSize: 5, Workers: 2, Codec: shards.CodecGradZstd}); err != nil {
		t.Fatalf("re-ingest at another size: %v", err)
	}
}

// Two ingests into one folder would remove each other's temporary files as
// stale: the second is refused, naming the first, and touches nothing.
func TestConcurrentIngestRefused(t *testing.T) {
	root, _ := makeTree(t, 3)
	out := t.TempDir()
	mustIngest(t, root, Options{Out: out, Size: 24, Seed: 7, ShardSize: 5, Codec: shards.CodecGradZstd})
	before := outputFiles(t, out)
	held, err := dirlock.Acquire(out, "ingest")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ingestWith(t, context.Background(), root, Options{Out: out, Size: 32, Seed: 7, ShardSize: 5, Codec: shards.CodecGradZstd})
	if !errors.Is(err, dirlock.ErrBusy) || !strings.Contains(err.Error(), "(ingest, pid ") {
		t.Fatalf("an ingest while another holds %s: %v", out, err)
	}
	sameOutput(t, before, outputFiles(t, out))
	held.Release()
	// A training run reading the shards holds them too.
	reader, err := dirlock.AcquireShared(out, "train", shards.MetaFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ingestWith(t, context.Background(), root, Options{Out: out, Size: 32, Seed: 7, ShardSize: 5, Codec: shards.CodecGradZstd})
	if !errors.Is(err, dirlock.ErrBusy) || !strings.Contains(err.Error(), "being read") {
		t.Fatalf("an ingest while a run reads %s: %v", out, err)
	}
	sameOutput(t, before, outputFiles(t, out))
	reader.Release()
	mustIngest(t, root, Options{Out: out, Size: 32, Seed: 7, ShardSize: 5, Codec: shards.CodecGradZstd})
}

// A skipped file whose name is not UTF-8 keeps its real name in the report,
// quoted, besides the JSON path (which carries U+FFFD for those bytes), and
// reading the JSON back (as a resumed ingest reads .ingest-state) gives the
// original bytes.
func TestSkipJSONQuotesNonUTF8(t *testing.T) {
	for _, tc := range []struct {
		path, name, want string
	}{
		{"train/n01/a.JPEG", "a.JPEG", `{"split":"train","path":"train/n01/a.JPEG","name":"a.JPEG","reason":"r"}`},
		{"train/n01/b\xff.JPEG", "a.JPEG", `{"split":"train","path":"train/n01/b\ufffd.JPEG","name":"a.JPEG","reason":"r","path_quoted":"\"train/n01/b\\xff.JPEG\""}`},
		{"x.tar/c\xfe.JPEG", "c\xfe.JPEG", `{"split":"val","path":"x.tar/c\ufffd.JPEG","name":"c\ufffd.JPEG","reason":"r","path_quoted":"\"x.tar/c\\xfe.JPEG\"","name_quoted":"\"c\\xfe.JPEG\""}`},
	} {
		split := "train"
		if strings.HasPrefix(tc.path, "x.tar") {
			split = "val"
		}
		in := Skip{Split: split, Path: tc.path, Name: tc.name, Reason: "r"}
		b, err := json.Marshal(in)
		if err != nil || string(b) != tc.want {
			t.Errorf("got %s (%v)\nwant %s", b, err, tc.want)
		}
		var back Skip
		if err := json.Unmarshal(b, &back); err != nil || back != in {
			t.Errorf("read back %+q (%v), want %+q", back, err, in)
		}
	}
	var s Skip
	if err := json.Unmarshal([]byte(`{"path":"a","path_quoted":"\"unterminated"}`), &s); err == nil {
		t.Errorf("a path_quoted that is not a Go string was accepted: %+q", s)
	}
}

// A JPEG damaged mid-scan that libjpeg decodes past (with a "Corrupt JPEG
// data" warning, the rows after the damage flat grey) is kept, but listed
// in the report's damaged list with the warning; image/jpeg rejects the
// same file, so without libjpeg-turbo it is skipped instead. A scan with
// junk after its codes, which both decoders keep, is listed as damaged
// by both.
func TestDamagedJPEGReported(t *testing.T) {
	root, bad := makeTree(t, 3)
	path := filepath.Join("train", wnids[1], "damaged.JPEG")
	desynced := filepath.Join("train", wnids[2], "desynced.JPEG")
	for p, data := range map[string][]byte{path: fixtures.DamagedJPEG(t), desynced: fixtures.DesyncedJPEG(t)} {
		if err := os.WriteFile(filepath.Join(root, p), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep := mustIngest(t, root, Options{Out: t.TempDir(), Size: 24, Seed: 7, ShardSize: 5, Workers: 2})
	t.Logf("decoder %s; damaged %+v; skipped %d", rep.Decoder, rep.Damaged, len(rep.Skipped))
	damaged := map[string]string{}
	for _, d := range rep.Damaged {
		damaged[d.Path] = d.Reason
	}
	// Word for word on both decoders: 40 junk bytes, 2 of which libjpeg's
	// bit buffer had fetched with the last codes and does not count.
	if want := "decoded past damage: Corrupt JPEG data: 38 extraneous bytes before marker 0xd9"; damaged[desynced] != want {
		t.Errorf("%s: the desynced JPEG is listed as %q, want %q (damaged %+v)", rep.Decoder, damaged[desynced], want, rep.Damaged)
	}
	if imageio.BackendKind() == "stdlib" {
		if len(rep.Skipped) != bad+1 || len(rep.Damaged) != 1 {
			t.Fatalf("image/jpeg: %d skipped (want %d), %d damaged (want 1)", len(rep.Skipped), bad+1, len(rep.Damaged))
		}
		return
	}
	if len(rep.Skipped) != bad || len(rep.Damaged) != 2 || !strings.Contains(damaged[path], "Corrupt JPEG data") {
		t.Fatalf("libjpeg-turbo: %d skipped (want %d), damaged %+v", len(rep.Skipped), bad, rep.Damaged)
	}
}

// TestDamagedJPEGReported's image/jpeg branch, on a machine that has
// libjpeg-turbo: the test binary again with TURBOJPEG_LIB=none, since the
// library is looked up once per process.
func TestDamagedJPEGReportedWithoutTurbo(t *testing.T) {
	if imageio.BackendKind() == "stdlib" {
		t.Skip("this process decodes with image/jpeg already: TestDamagedJPEGReported took that branch")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestDamagedJPEGReported$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "TURBOJPEG_LIB=none")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "decoder stdlib image/jpeg") || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("with TURBOJPEG_LIB=none: %v\n%s", err, out)
	}
}

// An --out holding another dataset's shards (another class list) is not
// replaced without Overwrite: a mistyped --out must not cost them.
func TestRefusesToReplaceAnotherDataset(t *testing.T) {
	root, _ := makeTree(t, 3)
	out := t.TempDir()
	opt := Options{Out: out, Size: 16, Seed: 7, ShardSize: 5, Workers: 2, Codec: shards.CodecGradZstd}
	mustIngest(t, root, opt)
	before := outputFiles(t, out)

	// The same dataset without its last class is another class list.
	other := withoutLastClass(t, root)
	_, err := ingestWith(t, context.Background(), other, opt)
	if !errors.Is(err, ErrOtherDataset) || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("ingesting another dataset into %s: %v", out, err)
	}
	if after := outputFiles(t, out); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Fatal("the refused run changed the other dataset's shards")
	}
	// Other settings of the same dataset are a re-ingest, not refused.
	resized := opt
	resized.Size = 20
	mustIngest(t, root, resized)
	opt.Overwrite = true
	if rep := mustIngest(t, other, opt); rep.Written["train"] == 0 {
		t.Fatal("--overwrite wrote nothing")
	}
}

// The guard holds where meta.json cannot say whose the shards are: an
// interrupted run leaves shards and no meta.json, and a meta.json can be
// damaged. The state folder's mark names the last run's dataset; without
// it (an older build's output), shard files under no readable meta.json
// are refused too, and --overwrite goes ahead.
func TestAnotherDatasetRefusedWithoutMeta(t *testing.T) {
	root, _ := makeTree(t, 6)
	other := withoutLastClass(t, root)
	opt := Options{Out: t.TempDir(), Size: 16, Seed: 7, ShardSize: 5, Workers: 2, Codec: shards.CodecGradZstd}
	ctx, cancel := context.WithCancel(context.Background())
	o := opt
	o.Progress = func(p Progress) {
		if p.Split == "train" && p.Done == 12 {
			cancel()
		}
	}
	if _, err := ingestWith(t, ctx, root, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(opt.Out, shards.MetaFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the interrupted run left a meta.json: %v", err)
	}
	refused := func(what, say string) {
		t.Helper()
		before := outputFiles(t, opt.Out)
		_, err := ingestWith(t, context.Background(), other, opt)
		if !errors.Is(err, ErrOtherDataset) || !strings.Contains(err.Error(), say) {
			t.Fatalf("%s: %v, want ErrOtherDataset saying %q", what, err, say)
		}
		if after := outputFiles(t, opt.Out); !maps.EqualFunc(before, after, bytes.Equal) {
			t.Fatalf("%s: the refused run changed the shards", what)
		}
	}
	refused("after an interrupted run", "the last ingest there was of")
	// An older build's output: no mark. Shards and no meta.json.
	mark := filepath.Join(opt.Out, stateDir, datasetFile)
	if err := os.Remove(mark); err != nil {
		t.Fatal(err)
	}
	refused("without a mark or meta.json", "holds shard files (train-00000.shard, train-00001.shard")
	refused("without a mark or meta.json", "and there is no meta.json to say whose they are")
	// Nothing can tell the same dataset either: --overwrite goes ahead,
	// and still resumes the shards that match (it only lifts the guard).
	ow := opt
	ow.Overwrite = true
	if rep := mustIngest(t, root, ow); rep.ResumedShards == 0 {
		t.Fatal("--overwrite over the same dataset's interrupted run resumed nothing")
	}
	// Its meta.json is then damaged: the mark lets a rerun (which
	// rewrites it) go ahead.
	if err := os.WriteFile(filepath.Join(opt.Out, shards.MetaFile), []byte(`{"format_version": 2, "cla`), 0o644); err != nil {
		t.Fatal(err)
	}
	mustIngest(t, root, opt)
	fresh := opt
	fresh.Out = t.TempDir()
	mustIngest(t, root, fresh)
	sameOutput(t, outputFiles(t, fresh.Out), outputFiles(t, opt.Out))
	// Damaged again, and no mark: another dataset is refused, naming why.
	if err := os.WriteFile(filepath.Join(opt.Out, shards.MetaFile), []byte(`{"a":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(mark)
	refused("under a damaged meta.json", "its meta.json cannot be read")
	opt.Overwrite = true
	if rep := mustIngest(t, other, opt); rep.Written["train"] == 0 {
		t.Fatal("--overwrite wrote nothing")
	}
}

// The mark is written before a run's first change to --out, and a mark of
// another dataset refuses only where shards it could cost are there: a run
// stopped before its first shard, an --out emptied by hand, and an
// --overwrite stopped before its first shard all leave the right dataset
// free to go on.
func TestMarkRefusesOnlyWithShards(t *testing.T) {
	root, _ := makeTree(t, 6)
	other := withoutLastClass(t, root)
	opt := Options{Out: t.TempDir(), Size: 16, Seed: 7, ShardSize: 5, Workers: 2, Codec: shards.CodecGradZstd}
	stopAtStart := func(src string, o Options) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		o.Progress = func(Progress) { cancel() } // the first call comes before any record
		if _, err := ingestWith(t, ctx, src, o); !errors.Is(err, context.Canceled) {
			t.Fatalf("the stopped run: %v", err)
		}
	}
	// Stopped before its first shard: no mark, no shards.
	stopAtStart(other, opt)
	if _, err := os.Stat(filepath.Join(opt.Out, stateDir, datasetFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a run stopped before its first shard left a mark: %v", err)
	}
	mustIngest(t, root, opt)
	// Emptied by hand (the hidden state folder stays), then another dataset.
	ents, _ := os.ReadDir(opt.Out)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			os.RemoveAll(filepath.Join(opt.Out, e.Name()))
		}
	}
	mustIngest(t, other, opt)
	// An --overwrite back to root stopped before its first shard: the mark
	// still names other, whose shards are intact, and other goes on.
	ow := opt
	ow.Overwrite = true
	stopAtStart(root, ow)
	before := outputFiles(t, opt.Out)
	rep := mustIngest(t, other, opt)
	if rep.ProcessedRun != 0 {
		t.Fatalf("the rerun over intact shards decoded %d images", rep.ProcessedRun)
	}
	sameOutput(t, before, outputFiles(t, opt.Out))
	// And root without --overwrite is still refused.
	if _, err := ingestWith(t, context.Background(), root, opt); !errors.Is(err, ErrOtherDataset) {
		t.Fatalf("root over other's shards: %v, want ErrOtherDataset", err)
	}
}

// One bad file alone in its shard (the split's last shard holds one
// image) is skipped as any bad file is: the guard against a source gone
// bad needs a shard of two images or more, every one skipped.
func TestOneBadFileAloneInItsShard(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	opt := Options{Out: out, Size: 24, Seed: 7, Workers: 2, Codec: shards.CodecGradZstd}
	first, err := ingestWith(t, context.Background(), root, Options{Out: t.TempDir(), Size: 24, Seed: 7, ShardSize: 1 << 20, Workers: 2, Codec: shards.CodecGradZstd})
	if err != nil {
		t.Fatal(err)
	}
	n := first.Images["train"]
	opt.ShardSize = n - 1 // the last shard holds one image
	if _, err := ingestWith(t, context.Background(), root, opt); err != nil {
		t.Fatal(err)
	}
	// Which file is alone in the last shard: its record id is the largest
	// the plan put last; find it through the shard itself.
	r, err := shards.Open(filepath.Join(out, "train-00001.shard"))
	if err != nil {
		t.Fatal(err)
	}
	var rec shards.Record
	if _, err := r.ReadRecord(0, &rec, nil); err != nil {
		t.Fatal(err)
	}
	r.Close()
	matches, _ := filepath.Glob(filepath.Join(root, "train", "*", rec.Name))
	if len(matches) != 1 {
		t.Fatalf("%s: %v", rec.Name, matches)
	}
	if err := os.WriteFile(matches[0], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := ingestWith(t, context.Background(), root, opt)
	if err != nil {
		t.Fatalf("one bad file alone in its shard stopped the run: %v", err)
	}
	if rep.SkippedCount["train"] != first.SkippedCount["train"]+1 {
		t.Errorf("skipped %v, want one more than %v", rep.SkippedCount, first.SkippedCount)
	}
}

// Run itself refuses splits that have no image in the dataset, before it
// makes or touches out: a direct caller gets no empty meta.json either.
func TestRunNothingToWrite(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 2, 0)
	out := filepath.Join(t.TempDir(), "shards")
	_, err := ingestWith(t, context.Background(), root, Options{Out: out, Size: 16, ShardSize: 5, Workers: 1, Codec: shards.CodecGradHuff, Splits: []string{"val"}})
	if !errors.Is(err, ErrNothingToWrite) || !strings.Contains(err.Error(), "has no images for --splits val") {
		t.Fatalf("Run with no val images: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("out was made: %v", err)
	}
}

// A symbolic link where ingest keeps its own files is refused before any
// image is decoded, and its target is left as it was: written through, a
// link planted in an --out others can write in would have a root ingest
// replace any file.
func TestOwnFilesNotWrittenThroughLinks(t *testing.T) {
	root, _ := makeTree(t, 2)
	for _, name := range []string{ReportFile, shards.MetaFile, stateDir, filepath.Join(stateDir, "train-00000.shard.json"), filepath.Join(stateDir, "train-00001.shard.json"), filepath.Join(stateDir, datasetFile)} {
		t.Run(name, func(t *testing.T) {
			out := t.TempDir()
			victim := filepath.Join(t.TempDir(), "precious")
			if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			target := victim
			if name == stateDir {
				target = t.TempDir()
			}
			os.MkdirAll(filepath.Dir(filepath.Join(out, name)), 0o755)
			if err := os.Symlink(target, filepath.Join(out, name)); err != nil {
				t.Fatal(err)
			}
			_, err := ingestDir(t, root, out, 2, context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
				t.Fatalf("a link at %s: %v", name, err)
			}
			if entries, _ := filepath.Glob(filepath.Join(out, "*.shard")); len(entries) > 0 {
				t.Fatalf("a link at %s was refused only after %v were written", name, entries)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Fatalf("the link's target was written: %q", b)
			}
			if name == stateDir {
				if ents, _ := os.ReadDir(target); len(ents) != 0 {
					t.Fatalf("the linked state folder got %v", ents)
				}
			}
		})
	}
}

// A run with other settings, stopped after it replaced some of a split's
// shards, leaves a meta.json that no longer lists that split (it would
// list shards of the old size, which readers would call damaged) and
// names the unfinished run; a --splits run of the other split keeps the
// note; the same command then finishes as an uninterrupted run would.
func TestStoppedRewriteUnlistsSplit(t *testing.T) {
	root, _ := makeTree(t, 10)
	out := t.TempDir()
	opt := func(size int, splits ...string) Options {
		return Options{Out: out, Size: size, Seed: 7, ShardSize: 5, Workers: 2, Codec: shards.CodecGradZstd, Splits: splits}
	}
	mustIngest(t, root, opt(16))
	ctx, cancel := context.WithCancel(context.Background())
	o := opt(24)
	o.Progress = func(p Progress) {
		if p.Split == "train" && p.Done == 12 { // two shards sealed
			cancel()
		}
	}
	if _, err := ingestWith(t, ctx, root, o); !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped run: %v", err)
	}
	m, err := shards.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Splits["train"]; ok || m.Stats != nil || m.Splits["val"].Records == 0 {
		t.Errorf("meta.json after the stop lists train %v (stats %v), val %d records; want val only", ok, m.Stats != nil, m.Splits["val"].Records)
	}
	if note := m.Unfinished["train"]; !strings.Contains(note, "the same ingest command resumes it") || len(m.Unfinished) != 1 {
		t.Errorf("unfinished: %q", m.Unfinished)
	}
	// A reader names the unfinished run rather than damage.
	_, err = pipeline.New(context.Background(), out, pipeline.Options{Mode: pipeline.Train, Batch: 4, Crop: 8, Epochs: 1})
	if err == nil || !strings.Contains(err.Error(), "meta.json lists no train split: an ingest run") {
		t.Errorf("pipeline on the stopped rewrite: %v", err)
	}
	// val at the old size, alone: train is still unfinished.
	mustIngest(t, root, opt(16, "val"))
	if m, err := shards.ReadMeta(out); err != nil || m.Unfinished["train"] == "" || m.Splits["train"].Records != 0 {
		t.Errorf("after a val-only run: unfinished %q, train %d records (%v)", m.Unfinished, m.Splits["train"].Records, err)
	}
	mustIngest(t, root, opt(24))
	if m, err := shards.ReadMeta(out); err != nil || m.Unfinished != nil {
		t.Errorf("after the finished run: unfinished %q (%v)", m.Unfinished, err)
	}
	sameAsFresh(t, root, out)
}

// A damaged meta.json is rewritten by the next run. When that run writes
// every split, nothing of the old one is lost and the warning says just
// that; when it writes one, the other's listing is gone and it says so.
func TestDamagedMetaRewritten(t *testing.T) {
	root, _ := makeTree(t, 6)
	for _, c := range []struct {
		splits []string
		say    string
	}{
		{nil, "; this run wrote every split, so the new meta.json lists them all"},
		{[]string{"train"}, "splits this run did not write are no longer listed"},
	} {
		out := t.TempDir()
		if _, err := ingestDir(t, root, out, 2, context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(filepath.Join(out, shards.MetaFile))
		os.WriteFile(filepath.Join(out, shards.MetaFile), bytes.Replace(want, []byte(`"width"`), []byte(` "width"`), 1), 0o644)
		rep, err := ingestWith(t, context.Background(), root, Options{Out: out, Size: 24, Seed: 7, ShardSize: 5, Workers: 2, Codec: shards.CodecGradZstd, Splits: c.splits})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, c.say) }) {
			t.Errorf("--splits %v over a damaged meta.json: warnings %q lack %q", c.splits, rep.Warnings, c.say)
		}
		if got, _ := os.ReadFile(filepath.Join(out, shards.MetaFile)); c.splits == nil && !bytes.Equal(got, want) {
			t.Errorf("the rewritten meta.json differs from the first run's")
		}
	}
}

// An interruption's report says that complete shards are kept only when
// there are some: one stopped before the first shard says it starts again.
func TestInterruptedBeforeAnyShard(t *testing.T) {
	root, _ := makeTree(t, 6)
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := ingestWith(t, ctx, root, Options{Out: out, Size: 24, Seed: 7, ShardSize: 1000, Workers: 1, Codec: shards.CodecGradZstd,
		Progress: func(p Progress) {
			if p.Done >= 1 { // out is changed by now: the report is written
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run returned %v", err)
	}
	r := readReport(t, out)
	// One worker and one shard of all the images: nothing is complete.
	if HasShards(out) {
		t.Fatalf("a shard was complete: %v", shardFiles(out))
	}
	if r.ExitCode != cli.ExitInterrupted || !strings.HasPrefix(r.Error, "interrupted before any shard was complete") {
		t.Errorf("report after an interruption with %d shards on disk: exit_code %d, error %q", len(shardFiles(out)), r.ExitCode, r.Error)
	}
}
