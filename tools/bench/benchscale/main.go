// Command benchscale is `just bench-scale`: ImageNet's size without
// ImageNet. It writes an ILSVRC2012_img_train.tar of 1000 class tars
// holding 1,281 images each (1,281,000 small JPEGs, as many as the real
// train split's 1,281,167) and an ILSVRC2012_img_val.tar of 50,000 with
// LOC_val_solution.csv, and the same images as an extracted tree of hard
// links, then times and measures, as separate processes: ingest of the
// tars, its resume, ingest of the tree, shardtool verify, a short train
// and an evaluation over the validation split. The two layouts' shards must be byte-identical. What it shows is
// how the listing, the resume, the bookkeeping and the pipeline's epoch
// plan scale with the record count; the images are 80×60, so decoding,
// which dominates a real ingest, is cheap here by design.
package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

func main() {
	benchstat.Main("benchscale", run)
}

// step is one command's run.
type step struct {
	Name       string  `json:"name"`
	Seconds    float64 `json:"seconds"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Result     string  `json:"result"` // the command's summary line
}

// report is the whole run, as --json prints it.
type report struct {
	Classes      int     `json:"classes"`
	PerClass     int     `json:"per_class"`
	Images       int     `json:"images"`
	ValImages    int     `json:"val_images"`
	TarBytes     int64   `json:"tar_bytes"`
	GenerateS    float64 `json:"generate_s"`
	Steps        []step  `json:"steps"`
	DigestTars   string  `json:"digest_tars"`
	DigestTree   string  `json:"digest_tree,omitempty"`
	LayoutsAgree bool    `json:"layouts_agree"`
	// ListingS is ours: the resume's time less the "images in" time its
	// summary gives (the resume's checks of its shards), which leaves the
	// listing of both tars.
	// ReferenceS is Python's tarfile walking the same train tar's
	// members, nested tars included, counting them.
	ListingS      float64 `json:"listing_s,omitempty"`
	ReferenceS    float64 `json:"reference_s,omitempty"`
	ReferenceRSS  float64 `json:"reference_peak_rss_mib,omitempty"`
	ReferenceNote string  `json:"reference_note,omitempty"`
	// SelfRSS is this bench's own peak: a floor under every child's, as
	// Linux carries the parent's peak into a child at its exec.
	SelfRSS float64 `json:"self_peak_rss_mib"`
	CPUs    int     `json:"cpus"`
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlags("benchscale", stdout, stderr, "Usage: benchscale [flags]\n\nExample:\n  just bench-scale\n  just bench-scale --per-class 100\n\nExit codes: 0 done, 1 failed (or the report could not be written), 2 usage, 3 ours alone: the reference did not run (the report says why).\n\nFlags:\n")
	classes := fs.Int("classes", 1000, "classes (class tars in the train tar)")
	per := fs.Int("per-class", 1281, "train images per class (1281 gives 1,281,000 in all: ImageNet's train split)")
	valPer := fs.Int("val-per-class", 50, "validation images per class (50 gives ImageNet's 50,000; 0: no validation split)")
	size := fs.Int("size", 32, "ingest --size (small: the images are 80×60 and decoding is not what this measures)")
	steps := fs.Int("train-steps", 100, "train --max-steps over the shards (0: no train step)")
	tree := fs.Bool("tree", true, "also ingest the same images as an extracted tree, and compare the shards")
	work := fs.String("work", "", "an empty folder for the data and shards (default: a temporary one, removed after); ImageNet's size needs about 6 GB")
	binDir := fs.String("bin", "", "folder holding ingest, shardtool and train (default: the one this binary is in, as just build puts them)")
	python := fs.String("python", "/usr/bin/python3", "Python for the reference (Python's tarfile listing the train tar; \"\" skips it)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if *classes < 1 || *classes > 99_999 || *per < 1 || *valPer < 0 || *size < 8 || *steps < 0 {
		fmt.Fprintln(stderr, "benchscale: --classes 1 to 99999, --per-class 1 or more, --val-per-class 0 or more, --size 8 or more, --train-steps 0 or more")
		return cli.ExitUsage
	}
	bin := *binDir
	if bin == "" {
		self, _ := os.Executable()
		bin = filepath.Dir(self)
	}
	for _, name := range []string{"ingest", "shardtool", "train"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			fmt.Fprintf(stderr, "benchscale: %s not found in %s: run `just build` first, or pass --bin\n", name, bin)
			return 1
		}
	}
	// Ctrl-C or SIGTERM stops the child (exec.CommandContext kills it) and
	// the run, and the deferred removal of the temporary folder (gigabytes)
	// still runs.
	ctx, stop := cli.InterruptContext()
	cli.OutliveReaders()
	defer stop()
	dir := *work
	if dir != "" {
		// What an earlier run left would make a false "shards differ", or
		// an ingest refuse the folder, after minutes of writing.
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			fmt.Fprintf(stderr, "benchscale: --work %s is not empty: give an empty or new folder\n", dir)
			return cli.ExitUsage
		}
	} else {
		tmp, err := os.MkdirTemp("", "benchscale")
		if err != nil {
			fmt.Fprintln(stderr, "benchscale:", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	fail := func(err error) int {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "benchscale: interrupted; the temporary data is removed")
			return cli.ExitInterrupted
		}
		fmt.Fprintln(stderr, "benchscale:", err)
		return 1
	}
	rep := report{Classes: *classes, PerClass: *per, Images: *classes * *per, ValImages: *classes * *valPer, CPUs: runtime.NumCPU()}
	t0 := time.Now()
	fmt.Fprintf(stderr, "benchscale: writing %d train and %d val images (%d classes) as tars", rep.Images, rep.ValImages, *classes)
	if *tree {
		fmt.Fprint(stderr, " and as a tree")
	}
	fmt.Fprintf(stderr, " in %s\n", dir)
	tarBytes, err := writeDataset(ctx, dir, *classes, *per, *valPer, *tree)
	if err != nil {
		return fail(err)
	}
	rep.TarBytes, rep.GenerateS = tarBytes, time.Since(t0).Seconds()
	sh, tars := filepath.Join(dir, "shards-tars"), filepath.Join(dir, "tars")
	progress := func(name string, s step, result string) {
		fmt.Fprintf(stderr, "  %-38s %6.1f s  peak RSS %5.0f MiB  %s\n", name, s.Seconds, s.PeakRSSMiB, result)
	}
	runStep := func(name string, args ...string) error {
		s, err := measure(ctx, filepath.Join(bin, args[0]), args[1:])
		s.Name = name
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		rep.Steps = append(rep.Steps, s)
		progress(name, s, s.Result)
		return nil
	}
	ingestArgs := func(out, data string) []string {
		return []string{"ingest", "--quiet", "--size", fmt.Sprint(*size), "--out", out, data}
	}
	if err := runStep("ingest (tars)", ingestArgs(sh, tars)...); err != nil {
		return fail(err)
	}
	if err := runStep("ingest again (resume: nothing to do)", ingestArgs(sh, tars)...); err != nil {
		return fail(err)
	}
	resumed := rep.Steps[len(rep.Steps)-1]
	if decoding, ok := decodingSeconds(resumed.Result); ok {
		rep.ListingS = resumed.Seconds - decoding
	} else {
		fmt.Fprintf(stderr, "benchscale: no \"images in …s\" in ingest's summary (%q): the listing is not given\n", resumed.Result)
	}
	if *python != "" {
		ref, err := measure(ctx, *python, []string{"-c", referenceScript, filepath.Join(tars, "ILSVRC2012_img_train.tar")})
		switch {
		case ctx.Err() != nil:
			return fail(ctx.Err())
		case err != nil:
			rep.ReferenceNote = "skipped: " + strings.SplitN(err.Error(), "\n", 2)[0]
		default:
			// A walk that saw other members measured something else.
			var members int
			if _, serr := fmt.Sscanf(ref.Result, "tarfile: %d members", &members); serr != nil || members != rep.Images {
				rep.ReferenceNote = fmt.Sprintf("not used: Python's walk said %q, not %d members", ref.Result, rep.Images)
			} else {
				rep.ReferenceS, rep.ReferenceRSS = ref.Seconds, ref.PeakRSSMiB
			}
		}
		progress("reference: Python's tarfile listing", ref, cmp.Or(rep.ReferenceNote, ref.Result))
	}
	if rep.DigestTars, err = digest(sh); err != nil {
		return fail(err)
	}
	rep.LayoutsAgree = true
	if *tree {
		tsh := filepath.Join(dir, "shards-tree")
		if err := runStep("ingest (tree)", ingestArgs(tsh, filepath.Join(dir, "tree"))...); err != nil {
			return fail(err)
		}
		if rep.DigestTree, err = digest(tsh); err != nil {
			return fail(err)
		}
		rep.LayoutsAgree = rep.DigestTree == rep.DigestTars
		os.RemoveAll(tsh)
	}
	if err := runStep("shardtool verify", "shardtool", "verify", sh); err != nil {
		return fail(err)
	}
	if *steps > 0 {
		crop := *size * 7 / 8
		err := runStep(fmt.Sprintf("train (small, %d steps)", *steps), "train", "--shards", sh, "--device", "cpu", "--model", "small",
			"--crop", fmt.Sprint(crop), "--batch", fmt.Sprint(min(128, rep.Images)), "--max-steps", fmt.Sprint(*steps), "--log-every", "0", "--overwrite", "--out", filepath.Join(dir, "run"))
		if err != nil {
			return fail(err)
		}
		if rep.ValImages > 0 {
			err := runStep(fmt.Sprintf("train --eval-only (%d val images)", rep.ValImages), "train", "--shards", sh, "--device", "cpu",
				"--eval-only", "--checkpoint", filepath.Join(dir, "run"))
			if err != nil {
				return fail(err)
			}
		}
	}
	rep.SelfRSS = benchstat.SelfPeakRSSMiB()
	if *asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprint(stdout, table(rep))
	}
	if !rep.LayoutsAgree {
		fmt.Fprintf(stderr, "benchscale: the tree's shards differ from the tars' (%s against %s)\n", rep.DigestTree, rep.DigestTars)
		return 1
	}
	if *python != "" && rep.ReferenceNote != "" {
		return benchstat.NoReference(stderr, "benchscale", rep.ReferenceNote, `--python ""`)
	}
	return 0
}

// table prints the report for a person.
func table(r report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d train images (%d classes × %d, 80×60 JPEGs) and %d val, %.2f GB of tars, written in %.0f s; %d CPUs\n\n",
		r.Images, r.Classes, r.PerClass, r.ValImages, float64(r.TarBytes)/1e9, r.GenerateS, r.CPUs)
	fmt.Fprintf(&b, "| step | time | peak RSS | result |\n|---|---|---|---|\n")
	for _, s := range r.Steps {
		fmt.Fprintf(&b, "| %s | %.1f s | %.0f MiB | %s |\n", s.Name, s.Seconds, s.PeakRSSMiB, s.Result)
	}
	switch {
	case r.ReferenceS > 0:
		fmt.Fprintf(&b, "\nlisting: ours %.1f s for both tars, every record kept (the resume less its \"images in\" time); Python's tarfile %.1f s walking the train tar alone, names counted (peak RSS at most %.0f MiB): ours at **%.2f×** its speed, one run each\n",
			r.ListingS, r.ReferenceS, r.ReferenceRSS, r.ReferenceS/r.ListingS)
	case r.ReferenceNote != "":
		fmt.Fprintf(&b, "\nreference %s\n", r.ReferenceNote)
	}
	fmt.Fprintf(&b, "\npeak RSS: Linux counts in each child the parent's peak at the child's exec, so no figure above is below this bench's own %.0f MiB\n", r.SelfRSS)
	switch {
	case r.DigestTree == "":
		fmt.Fprintf(&b, "\nshards' digest: %s\n", r.DigestTars)
	case r.LayoutsAgree:
		fmt.Fprintf(&b, "\nthe tars' and the tree's shards are byte-identical (digest %s)\n", r.DigestTars)
	default:
		fmt.Fprintf(&b, "\nthe tars' and the tree's shards DIFFER (%s against %s)\n", r.DigestTars, r.DigestTree)
	}
	return b.String()
}

// referenceScript lists a train tar's members the way a Python tool
// would (torchvision's ImageNet class extracts it with tarfile): every
// class tar opened in place and walked, the names counted, none kept.
const referenceScript = `import sys, tarfile
n = 0
with tarfile.open(sys.argv[1]) as outer:
    for m in outer:
        with tarfile.open(fileobj=outer.extractfile(m)) as inner:
            for _ in inner:
                n += 1
print("tarfile: %d members" % n)
`

// measure runs one command and returns its wall time, its peak RSS and
// the last line it wrote on stderr (the commands' summary).
func measure(ctx context.Context, path string, args []string) (step, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	cmd.Stdout = &errb
	start := time.Now()
	err := cmd.Run()
	s := step{Seconds: time.Since(start).Seconds(), Result: lastLine(errb.String())}
	s.PeakRSSMiB = benchstat.PeakRSSMiB(cmd.ProcessState) // nil when it never started
	if err != nil {
		return s, fmt.Errorf("%v\n%s", err, errb.String())
	}
	return s, nil
}

// lastLine is a command's summary without the paths that follow it
// (" -> DIR", "; checkpoint FILE…"), which name the temporary folder.
// decodingSeconds reads the "images in 1.8s" of ingest's summary: the
// time it spent past the listing.
func decodingSeconds(summary string) (float64, bool) {
	_, after, ok := strings.Cut(summary, " images in ")
	if !ok {
		return 0, false
	}
	var v float64
	if _, err := fmt.Sscanf(after, "%fs", &v); err != nil {
		return 0, false
	}
	return v, true
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	// train --eval-only ends with a row of its Markdown table (model,
	// step, views, images, top-1, top-5): inside this bench's own table it
	// would add six columns, so it is said in words.
	if c := strings.Split(strings.Trim(l, "| "), " | "); strings.HasPrefix(l, "|") && len(c) == 6 {
		return fmt.Sprintf("%s at step %s, %s, %s images: top-1 error %s, top-5 error %s", c[0], c[1], c[2], c[3], c[4], c[5])
	}
	for _, cut := range []string{" -> ", "; checkpoint "} {
		if i := strings.Index(l, cut); i >= 0 {
			l = l[:i]
		}
	}
	return l
}

// digest hashes a shard folder's meta.json and its shards, in name order:
// equal digests are byte-identical output.
func digest(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.shard"))
	if err != nil {
		return "", err
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range append([]string{filepath.Join(dir, "meta.json")}, names...) {
		f, err := os.Open(name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00", filepath.Base(name))
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// wnid is class c's made-up WordNet ID.
func wnid(c int) string { return fmt.Sprintf("n%08d", 1_000_000+c) }

// classJPEG is class c's one image: a colour of its own with a sprinkle
// of other pixels, so that no two classes' records are alike.
func classJPEG(c int) ([]byte, error) {
	r := rand.New(rand.NewPCG(uint64(c), 7))
	m := image.NewRGBA(image.Rect(0, 0, 80, 60))
	base := color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255}
	for y := range 60 {
		for x := range 80 {
			m.SetRGBA(x, y, base)
		}
	}
	for range 40 {
		m.SetRGBA(r.IntN(80), r.IntN(60), color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255})
	}
	var b bytes.Buffer
	err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 85})
	return b.Bytes(), err
}

// writeDataset writes dir/tars/ILSVRC2012_img_train.tar (a tar of class
// tars, as ImageNet ships it), with valPer, ILSVRC2012_img_val.tar (flat,
// labelled by LOC_val_solution.csv) and, with tree, dir/tree/ with the same
// files in train/<wnid>/ and val/, each class's images hard links to one
// file. It returns the tars' size.
func writeDataset(ctx context.Context, dir string, classes, per, valPer int, tree bool) (int64, error) {
	tars := filepath.Join(dir, "tars")
	if err := os.MkdirAll(tars, 0o755); err != nil {
		return 0, err
	}
	f, err := os.Create(filepath.Join(tars, "ILSVRC2012_img_train.tar"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	outer := tar.NewWriter(f)
	mtime := time.Unix(1_300_000_000, 0)
	imgs := make([][]byte, classes)
	for c := range imgs {
		if imgs[c], err = classJPEG(c); err != nil {
			return 0, err
		}
	}
	var inner bytes.Buffer
	for c, img := range imgs {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		id := wnid(c)
		inner.Reset()
		tw := tar.NewWriter(&inner)
		for k := range per {
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%s_%d.JPEG", id, k), Mode: 0o644, Size: int64(len(img)), ModTime: mtime, Format: tar.FormatGNU}); err != nil {
				return 0, err
			}
			if _, err := tw.Write(img); err != nil {
				return 0, err
			}
		}
		if err := tw.Close(); err != nil {
			return 0, err
		}
		if err := outer.WriteHeader(&tar.Header{Name: id + ".tar", Mode: 0o644, Size: int64(inner.Len()), ModTime: mtime, Format: tar.FormatGNU}); err != nil {
			return 0, err
		}
		if _, err := outer.Write(inner.Bytes()); err != nil {
			return 0, err
		}
		if tree {
			if err := writeClassTree(filepath.Join(dir, "tree", "train", id), id, img, per, mtime); err != nil {
				return 0, err
			}
		}
	}
	if err := outer.Close(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	if valPer > 0 {
		n, err := writeVal(dir, imgs, valPer, tree, mtime)
		if err != nil {
			return 0, err
		}
		size += n
	}
	return size, nil
}

// writeVal writes the validation split: ILSVRC2012_img_val.tar, flat, as
// ImageNet ships it, image i of class i mod classes, and its labels as
// Kaggle's LOC_val_solution.csv beside the tars and at the tree's root.
func writeVal(dir string, imgs [][]byte, valPer int, tree bool, mtime time.Time) (int64, error) {
	f, err := os.Create(filepath.Join(dir, "tars", "ILSVRC2012_img_val.tar"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	classes := len(imgs)
	var sol strings.Builder
	sol.WriteString("ImageId,PredictionString\n")
	valDir := filepath.Join(dir, "tree", "val")
	if tree {
		if err := os.MkdirAll(valDir, 0o755); err != nil {
			return 0, err
		}
	}
	for i := range classes * valPer {
		c := i % classes
		id := fmt.Sprintf("ILSVRC2012_val_%08d", i+1)
		fmt.Fprintf(&sol, "%s,%s 0 0 79 59\n", id, wnid(c))
		if err := tw.WriteHeader(&tar.Header{Name: id + ".JPEG", Mode: 0o644, Size: int64(len(imgs[c])), ModTime: mtime, Format: tar.FormatGNU}); err != nil {
			return 0, err
		}
		if _, err := tw.Write(imgs[c]); err != nil {
			return 0, err
		}
		if tree {
			p := filepath.Join(valDir, id+".JPEG")
			if err := os.WriteFile(p, imgs[c], 0o644); err != nil {
				return 0, err
			}
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				return 0, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	dirs := []string{filepath.Join(dir, "tars")}
	if tree {
		dirs = append(dirs, filepath.Join(dir, "tree"))
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "LOC_val_solution.csv"), []byte(sol.String()), 0o644); err != nil {
			return 0, err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// writeClassTree writes one class folder of the tree: one file, and its
// other names as hard links (copies where links are refused), all with
// the tar members' modification time.
func writeClassTree(classDir, id string, img []byte, per int, mtime time.Time) error {
	if err := os.MkdirAll(classDir, 0o755); err != nil {
		return err
	}
	first := filepath.Join(classDir, id+"_0.JPEG")
	if err := os.WriteFile(first, img, 0o644); err != nil {
		return err
	}
	if err := os.Chtimes(first, mtime, mtime); err != nil {
		return err
	}
	for k := 1; k < per; k++ {
		p := filepath.Join(classDir, fmt.Sprintf("%s_%d.JPEG", id, k))
		if err := os.Link(first, p); err != nil {
			if err := os.WriteFile(p, img, 0o644); err != nil {
				return err
			}
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				return err
			}
		}
	}
	return nil
}
