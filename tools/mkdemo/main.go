// Command mkdemo publishes Fashion-MNIST as a small ILSVRC2012 look-alike,
// a tree of grayscale JPEGs with Kaggle-style synset and validation files,
// so that the real ingest, pipeline and trainer can be run end to end on a
// laptop in minutes. It owns only the conversion; the reading of the IDX
// files lives in pkg/fashionmnist, along with the label-to-WNID mapping.
//
// The output is
//
//	DIR/train/<wnid>/<wnid>_<k>.JPEG   k = 1-based index in train-images
//	DIR/val/ILSVRC2012_val_%08d.JPEG   1-based index in t10k-images
//	DIR/LOC_synset_mapping.txt         "<wnid> <name>", label order
//	DIR/LOC_val_solution.csv           "ImageId,PredictionString"
//	DIR/.complete                      the parameters, written last
//
// The tree is built in a sibling temporary directory and renamed into
// place, so DIR is either absent, the previous complete tree, or the new
// complete tree. A re-run with the same parameters finds .complete and
// returns at once.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/disintegration/imaging"
	"golang.org/x/sync/errgroup"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/pkg/fashionmnist"
	"github.com/alexnet-repro/alexnet/shards"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(finish(ctx, err, os.Stderr))
}

// finish prints the error run ended with, once (a flag mistake was printed
// as it was parsed), and returns the exit code.
func finish(ctx context.Context, err error, stderr io.Writer) int {
	code := cli.ExitCode(err)
	switch {
	case code != cli.ExitOK && ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "mkdemo: interrupted; the existing tree, if any, is as it was")
	case code != cli.ExitOK && !cli.Reported(err):
		fmt.Fprintf(stderr, "mkdemo: %v\n", err)
	}
	return code
}

// config is the parsed command line. The fields that shape the output are
// also the .complete marker, so a change to any of them rebuilds the tree.
type config struct {
	Format  int    `json:"format"` // bump when the layout changes
	Src     string `json:"src"`
	Train   int    `json:"train"`
	Val     int    `json:"val"`
	Size    int    `json:"size"`
	Quality int    `json:"quality"`

	out     string
	workers int
}

// markerFormat versions the tree layout recorded in .complete.
const markerFormat = 1

const (
	markerName   = ".complete"
	mappingName  = "LOC_synset_mapping.txt"
	solutionName = "LOC_val_solution.csv"
)

const usageText = `Usage: mkdemo --out DIR [flags]

Writes Fashion-MNIST as an ILSVRC2012-layout tree of grayscale JPEGs
(train/<wnid>/*.JPEG, flat val/, LOC_synset_mapping.txt,
LOC_val_solution.csv) that ingest reads like ImageNet. Classes are
n99000000..n99000009 in Fashion-MNIST label order. Re-running with the
same flags is a no-op; with other flags the tree is replaced, unless DIR
holds anything mkdemo did not write.

Exit codes: 0 written or up to date, 1 failed or interrupted, 2 usage.

Example:
  mkdemo --out data/fashion-demo
  mkdemo --out /tmp/tiny --train 2000 --val 500 --size 64

Flags:
`

func parseFlags(args []string, stdout, stderr io.Writer) (config, error) {
	c := config{Format: markerFormat}
	fs := cli.NewFlags("mkdemo", stdout, stderr, usageText)
	fs.StringVar(&c.out, "out", "", "output directory (required)")
	fs.StringVar(&c.Src, "src", "/usr/share/datasets/fashion-mnist", "directory holding the Fashion-MNIST {train,t10k}-*-ubyte[.gz] files")
	fs.IntVar(&c.Train, "train", 60000, "write the first `N` training images")
	fs.IntVar(&c.Val, "val", 10000, "write the first `N` test images as the validation set")
	fs.IntVar(&c.Size, "size", 28, "side of the written images in pixels; other than 28 resamples with Lanczos")
	fs.IntVar(&c.Quality, "quality", 95, "JPEG quality, 1..100")
	fs.IntVar(&c.workers, "workers", 0, "parallel encoders (0: one per CPU)")
	if err := cli.Parse(fs, args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	case c.out == "":
		return c, errors.New("--out is required (see --help)")
	case c.Train < 0 || c.Val < 0:
		return c, fmt.Errorf("--train %d / --val %d: counts cannot be negative", c.Train, c.Val)
	case c.Train == 0 && c.Val == 0:
		return c, errors.New("--train 0 and --val 0 write no image: ingest would refuse the empty tree")
	case c.Size < 1 || c.Size > 4096:
		return c, fmt.Errorf("--size %d: want 1..4096", c.Size)
	case c.Quality < 1 || c.Quality > 100:
		return c, fmt.Errorf("--quality %d: want 1..100", c.Quality)
	case c.workers < 0 || c.workers > cli.MaxWorkers:
		return c, fmt.Errorf("--workers %d: want 0 (one per CPU) to %d", c.workers, cli.MaxWorkers)
	}
	if c.workers == 0 {
		c.workers = runtime.GOMAXPROCS(0)
	}
	if abs, err := filepath.Abs(c.Src); err == nil {
		c.Src = abs
	}
	c.out = filepath.Clean(c.out)
	// The work folder is made beside --out and renamed over it: the
	// current folder, or one holding it, cannot be renamed.
	if abs, err := filepath.Abs(c.out); err == nil {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(abs, wd); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return c, fmt.Errorf("--out %s is the current folder or holds it: name a folder for the tree, e.g. --out fashion-demo", c.out)
			}
		}
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stdout, stderr)
	// A help that could not be written is cli.Parse's failure, printed
	// and not the user's mistake; every other error is a usage error.
	if errors.Is(err, flag.ErrHelp) || cli.Reported(err) && cli.ExitCode(err) == cli.ExitFailure {
		return err
	}
	if err != nil {
		return cli.UsageError{Err: err}
	}
	// Before the up-to-date check: a run that finds the tree complete
	// still clears what a killed run left beside it.
	for _, d := range sweepStale(c.out, processAlive, time.Now()) {
		fmt.Fprintf(stderr, "mkdemo: removed %s, left by a run that was killed\n", d)
	}
	marker, _ := json.Marshal(c)
	act, why, err := checkOut(c.out, marker, c.Train, c.Val)
	if err != nil {
		return err
	}
	if act == rebuild {
		fmt.Fprintf(stderr, "mkdemo: %s %s (files deleted, moved or added since); writing it again\n", c.out, why)
	}
	if act == upToDate {
		fmt.Fprintf(stdout, "mkdemo: %s is up to date (%d train, %d val)\n", c.out, c.Train, c.Val)
		return nil
	}

	train, val, err := loadSource(c)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := os.MkdirAll(filepath.Dir(c.out), 0o755); err != nil {
		return fmt.Errorf("creating parent of %s: %w", c.out, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(c.out), filepath.Base(c.out)+".tmp-")
	if err != nil {
		return fmt.Errorf("creating work directory: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed into place
	// MkdirTemp makes it 0700; the tree it becomes is ordinary data.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	owner := filepath.Join(tmp, ownerName)
	if err := os.WriteFile(owner, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", owner, err)
	}
	bytesOut, err := writeTree(ctx, c, tmp, train, val, stderr)
	if err != nil {
		return err
	}
	if err := os.Remove(owner); err != nil {
		return fmt.Errorf("removing %s: %w", owner, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, markerName), append(marker, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing marker: %w", err)
	}
	// Durable before it is in place: after a crash, a tree with its marker
	// has all its JPEGs, or it is still a work folder the next run sweeps.
	if err := syncTree(tmp); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := publish(tmp, c.out, act != create); err != nil {
		return err
	}
	if err := shards.SyncDir(filepath.Dir(c.out)); err != nil {
		return fmt.Errorf("syncing the folder of %s: %w", c.out, err)
	}
	el := time.Since(start)
	n := c.Train + c.Val
	fmt.Fprintf(stdout, "mkdemo: wrote %d train + %d val JPEGs (%d classes, %dx%d, %.1f MB) to %s in %.1fs (%.0f img/s)\n",
		c.Train, c.Val, fashionmnist.NumClasses, c.Size, c.Size, float64(bytesOut)/1e6, c.out,
		el.Seconds(), float64(n)/max(el.Seconds(), 1e-9))
	return nil
}

// action is what checkOut decided to do with --out.
type action int

const (
	create   action = iota // DIR does not exist
	upToDate               // DIR holds a tree built with the same parameters
	replace                // DIR is ours with other parameters, or empty
	rebuild                // DIR is ours with these parameters, but files are missing
)

// checkOut decides what to do with an existing DIR. It refuses to replace a
// non-empty directory without mkdemo's marker, because removing a tree
// mkdemo did not write could destroy someone's data. why says what a
// rebuild found: the images counted against the marker's.
func checkOut(out string, marker []byte, train, val int) (act action, why string, err error) {
	fi, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return create, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("--out %s: %w", out, err)
	}
	if !fi.IsDir() {
		return 0, "", fmt.Errorf("--out %s exists and is not a directory", out)
	}
	old, err := os.ReadFile(filepath.Join(out, markerName))
	if err == nil {
		act = replace
		if bytes.Equal(bytes.TrimSpace(old), marker) {
			// The marker says what was written, not what is there now: a
			// class folder deleted since would be a smaller dataset that
			// ingests without a word. Counting names is milliseconds.
			t, v := countImages(out)
			if t == train && v == val {
				return upToDate, "", nil
			}
			act, why = rebuild, fmt.Sprintf("holds %d train and %d val images, not the %d and %d its marker records", t, v, train, val)
		}
		// The whole folder is replaced: anything put there since (shards
		// ingested into it, notes) would go with it.
		if foreign := foreignEntries(out); len(foreign) > 0 {
			return 0, "", fmt.Errorf("refusing to replace %s: besides mkdemo's tree it holds %s, which mkdemo did not write; move them out, or choose another --out",
				out, cli.FirstFew(foreign, 5))
		}
		return act, why, nil
	}
	ents, _ := os.ReadDir(out)
	if len(ents) == 0 {
		return replace, "", nil
	}
	return 0, "", fmt.Errorf("refusing to replace %s: it exists, is not empty and has no %s from mkdemo; remove it or choose another --out", out, markerName)
}

// treeEntries are the names mkdemo writes at the top of a tree.
var treeEntries = []string{"train", "val", mappingName, solutionName, markerName, ownerName}

// foreignEntries lists what dir holds besides what mkdemo writes: at its
// top, treeEntries; in train/, a folder per demo class of
// <wnid>_<n>.JPEG files; in val/, ILSVRC2012_val_<8 digits>.JPEG files.
// A class folder or a note dropped into the tree is someone's too, and
// replacing the tree would delete it. What cannot be listed is listed
// as such.
func foreignEntries(dir string) []string {
	var foreign []string
	list := func(rel string, ok func(e os.DirEntry) bool) {
		ents, err := os.ReadDir(filepath.Join(dir, rel))
		if err != nil {
			foreign = append(foreign, fmt.Sprintf("%s: entries that cannot be listed (%v)", cli.Name(rel), err))
			return
		}
		for _, e := range ents {
			if !ok(e) {
				foreign = append(foreign, cli.Name(filepath.Join(rel, e.Name())))
			}
		}
	}
	var classes []string
	list(".", func(e os.DirEntry) bool { return slices.Contains(treeEntries, e.Name()) })
	if len(foreign) > 0 {
		return foreign
	}
	isFile := func(e os.DirEntry) bool { return e.Type().IsRegular() }
	if exists(filepath.Join(dir, "train")) {
		list("train", func(e os.DirEntry) bool {
			for l := range fashionmnist.NumClasses {
				if e.Name() == fashionmnist.WNID(l) && e.IsDir() {
					classes = append(classes, e.Name())
					return true
				}
			}
			return false
		})
	}
	for _, w := range classes {
		list(filepath.Join("train", w), func(e os.DirEntry) bool {
			n, ok := strings.CutPrefix(e.Name(), w+"_")
			n, ok2 := strings.CutSuffix(n, ".JPEG")
			return ok && ok2 && isFile(e) && digits(n)
		})
	}
	if exists(filepath.Join(dir, "val")) {
		list("val", func(e os.DirEntry) bool {
			n, ok := strings.CutPrefix(e.Name(), "ILSVRC2012_val_")
			n, ok2 := strings.CutSuffix(n, ".JPEG")
			return ok && ok2 && isFile(e) && len(n) == 8 && digits(n)
		})
	}
	return foreign
}

// countImages counts the regular files in dir's train/<class>/ folders and
// in val/: what a complete tree holds, --train and --val of them.
func countImages(dir string) (train, val int) {
	files := func(rel string) int {
		ents, _ := os.ReadDir(filepath.Join(dir, rel))
		n := 0
		for _, e := range ents {
			if e.Type().IsRegular() {
				n++
			}
		}
		return n
	}
	classes, _ := os.ReadDir(filepath.Join(dir, "train"))
	for _, e := range classes {
		if e.IsDir() {
			train += files(filepath.Join("train", e.Name()))
		}
	}
	return train, files("val")
}

// digits reports whether s is a run of decimal digits.
func digits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// loadSource reads both splits, turning a missing dataset into advice.
func loadSource(c config) (train, val *fashionmnist.Set, err error) {
	for _, split := range []string{"train", "t10k"} {
		img, lab := fashionmnist.Files(c.Src, split)
		for _, p := range []string{img, lab} {
			if !exists(p) && !exists(strings.TrimSuffix(p, ".gz")) {
				return nil, nil, fmt.Errorf("Fashion-MNIST not found: %s is missing; run `just setup` or `apt-get install dataset-fashion-mnist`, or point --src at a directory holding the {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz files", p)
			}
		}
	}
	var g errgroup.Group
	g.Go(func() (err error) { train, err = fashionmnist.Load(c.Src, "train"); return err })
	g.Go(func() (err error) { val, err = fashionmnist.Load(c.Src, "t10k"); return err })
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	// A count past the source's is a bad flag value (exit 2), known only
	// once the source is read.
	if c.Train > train.N {
		return nil, nil, cli.UsageError{Err: fmt.Errorf("--train %d: the source has only %d training images", c.Train, train.N)}
	}
	if c.Val > val.N {
		return nil, nil, cli.UsageError{Err: fmt.Errorf("--val %d: the source has only %d test images", c.Val, val.N)}
	}
	return train, val, nil
}

// ownerName is the file, inside a work directory, that holds the pid of
// the mkdemo writing it, so a later run can tell a killed run's leftovers
// (tens of thousands of JPEGs) from a run still in progress.
const ownerName = ".mkdemo-owner"

// sweepStale removes the work directories of out (out.tmp-*, and the
// previous tree a replace had moved aside, out.tmp-*.old) whose owner
// process is gone. One without an owner file (killed before writing it) is
// removed once it is an hour old. It returns what it removed.
func sweepStale(out string, alive func(pid int) bool, now time.Time) []string {
	// Only names of MkdirTemp's form (digits after ".tmp-"), listed rather
	// than globbed, so that --out is never read as a pattern.
	parent, prefix := filepath.Dir(out), filepath.Base(out)+".tmp-"
	ents, _ := os.ReadDir(parent)
	var removed []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		if digits := strings.TrimSuffix(rest, ".old"); digits == "" || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		d := filepath.Join(parent, e.Name())
		base := strings.TrimSuffix(d, ".old")
		stale := false
		if b, err := os.ReadFile(filepath.Join(base, ownerName)); err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			stale = err != nil || !alive(pid)
		} else if fi, err := os.Stat(d); err == nil {
			// No owner: killed before it wrote one, or not mkdemo's at
			// all. Only an old folder holding nothing but a tree's parts.
			stale = now.Sub(fi.ModTime()) > time.Hour && len(foreignEntries(d)) == 0
		}
		if base != d {
			// A moved-aside tree belongs to its work directory's run; with
			// that directory gone the run either finished or died.
			if _, err := os.Stat(base); errors.Is(err, fs.ErrNotExist) {
				stale = true
			}
		}
		if stale && os.RemoveAll(d) == nil {
			removed = append(removed, d)
		}
	}
	return removed
}

// processAlive reports whether pid is a running process. Anything but a
// clear "no such process" counts as alive, so a live run is never swept.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return !(errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH))
}

// publish moves the finished tree into place. When replacing, the old tree
// is first renamed aside, so DIR is never a half-written mixture; the gap
// between the two renames is the only moment DIR is absent.
func publish(tmp, out string, replaceOld bool) error {
	var old string
	if replaceOld {
		old = tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("moving the previous %s aside: %w", out, err)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		if old != "" {
			os.Rename(old, out)
		}
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			// mkdemo holds no lock on --out: another run (or anything
			// else) made it between the check and here. Its tree stays.
			return fmt.Errorf("%s appeared while this run was writing (another mkdemo?); it is left as it is, and this run's tree is discarded", out)
		}
		return fmt.Errorf("renaming %s to %s: %w", tmp, out, err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("removing the previous tree %s: %w", old, err)
		}
	}
	return nil
}

// writeTree writes the index files and all JPEGs under root and returns the
// JPEG bytes written.
func writeTree(ctx context.Context, c config, root string, train, val *fashionmnist.Set, stderr io.Writer) (int64, error) {
	var mapping strings.Builder
	for l := range fashionmnist.NumClasses {
		wnid := fashionmnist.WNID(l)
		fmt.Fprintf(&mapping, "%s %s\n", wnid, fashionmnist.ClassNames[l])
		// Every class gets its directory even if --train leaves it empty,
		// so class indices never depend on N.
		if err := os.MkdirAll(filepath.Join(root, "train", wnid), 0o755); err != nil {
			return 0, fmt.Errorf("creating class directory: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "val"), 0o755); err != nil {
		return 0, fmt.Errorf("creating val directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(root, mappingName), []byte(mapping.String()), 0o644); err != nil {
		return 0, fmt.Errorf("writing %s: %w", mappingName, err)
	}
	var sol strings.Builder
	sol.WriteString("ImageId,PredictionString\n")
	for i := range c.Val {
		fmt.Fprintf(&sol, "%s,%s 0 0 %d %d\n", valID(i), fashionmnist.WNID(int(val.Labels[i])), c.Size-1, c.Size-1)
	}
	if err := os.WriteFile(filepath.Join(root, solutionName), []byte(sol.String()), 0o644); err != nil {
		return 0, fmt.Errorf("writing %s: %w", solutionName, err)
	}

	total := c.Train + c.Val
	var next, done, written atomic.Int64
	prog := startProgress(stderr, total, &done)
	defer prog.stop()
	g, ctx := errgroup.WithContext(ctx)
	for range c.workers {
		g.Go(func() error {
			var buf bytes.Buffer
			// Workers claim small chunks so the shared counter is touched
			// once per chunk, not once per file.
			const chunk = 64
			for {
				if err := ctx.Err(); err != nil {
					return err
				}
				lo := int(next.Add(chunk)) - chunk
				if lo >= total {
					return nil
				}
				for i := lo; i < min(lo+chunk, total); i++ {
					set, k, path := train, i, ""
					if i < c.Train {
						path = filepath.Join(root, "train", trainName(int(train.Labels[k]), k))
					} else {
						set, k = val, i-c.Train
						path = filepath.Join(root, "val", valName(k))
					}
					buf.Reset()
					if err := encode(&buf, set, k, c); err != nil {
						return fmt.Errorf("%s: encoding: %w", path, err)
					}
					if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
						return fmt.Errorf("writing image: %w", err)
					}
					written.Add(int64(buf.Len()))
				}
				done.Add(int64(min(chunk, total-lo)))
			}
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	prog.stop()
	return written.Load(), nil
}

// trainName is "<wnid>/<wnid>_<k>.JPEG" with k 1-based in the source file,
// so a file can be traced back to its Fashion-MNIST record.
func trainName(label, i int) string {
	w := fashionmnist.WNID(label)
	return fmt.Sprintf("%s/%s_%d.JPEG", w, w, i+1)
}

// valID is the validation image id as LOC_val_solution.csv spells it,
// without the extension.
func valID(i int) string { return fmt.Sprintf("ILSVRC2012_val_%08d", i+1) }

func valName(i int) string { return valID(i) + ".JPEG" }

// encode writes image i of set as a single-channel JPEG, resampled when
// --size differs from the source.
func encode(w io.Writer, set *fashionmnist.Set, i int, c config) error {
	img := &image.Gray{Pix: set.Image(i), Stride: set.Cols, Rect: image.Rect(0, 0, set.Cols, set.Rows)}
	if c.Size != set.Cols || c.Size != set.Rows {
		rgba := imaging.Resize(img, c.Size, c.Size, imaging.Lanczos)
		g := image.NewGray(rgba.Rect)
		for p := range g.Pix {
			g.Pix[p] = rgba.Pix[4*p] // R = G = B for a grey source
		}
		img = g
	}
	return jpeg.Encode(w, img, &jpeg.Options{Quality: c.Quality})
}
