// Command ingest turns an ILSVRC2012 dataset (the official tars, the
// extracted tree or the Kaggle layout) into compressed shards of
// size×size RGB images, with meta.json (classes, shard list, the train
// pixels' mean/std and RGB PCA) and ingest-report.json (every skipped file
// and why).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/dirlock"
	"github.com/alexnet-repro/alexnet/pkg/imageio"
	"github.com/alexnet-repro/alexnet/pkg/imagenet"
	"github.com/alexnet-repro/alexnet/pkg/ingest"
	"github.com/alexnet-repro/alexnet/shards"
)

func main() {
	ctx, stop := cli.InterruptContext()
	cli.OutliveReaders()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usage is --help's text; the flags' defaults follow it.
func usage() string {
	return fmt.Sprintf(`Usage: ingest [flags] DATASET_DIR

Turns ImageNet (ILSVRC2012) JPEGs into shards for training: each image is
decoded, converted to RGB, its shorter side resized to --size with an
antialiased bilinear filter, and centre-cropped to size×size.

Example:
  ingest --out /data/shards ./ILSVRC2012
  ingest --size 32 --workers 2 --out demo/shards demo/fashion-mnist

%s
Output (in --out): train-NNNNN.shard, val-NNNNN.shard, meta.json,
ingest-report.json. A killed run, started again with the same arguments,
resumes from the shards already complete; the result is byte-identical to
an uninterrupted run. So does one stopped by Ctrl-C, SIGTERM or SIGHUP
(exit 130). A run with other settings rewrites the shards and removes
those of the earlier run that meta.json no longer lists. Until a run
ends, meta.json does not list a split whose shards it has begun to
replace (its "unfinished" field says so), so a stopped run leaves no
listing of changed shards: train and shardtool verify call the split
unfinished, not damaged. Shards of another dataset (another class list)
are only replaced with --overwrite. So are a split's records when the
first shard to write had every image skipped (a source gone bad): the
run stops before it replaces any of them (exit 1); the splits it wrote
before are listed in meta.json.

Exit codes: 0 done, 1 failed or every image of a split skipped, 2 usage
(a dataset folder or --val-labels file that does not exist, a file given
for the dataset folder, or an --out holding another dataset's shards, Go
source, or that is the dataset's train/ or val/ folder), 3 done but files were skipped (or kept though
decoded past damage, or val images have no label) and --strict was
given, 130 interrupted with the complete shards kept (the same command
resumes).

Flags:
`, imagenet.Layouts())
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	o := cli.NewOutcome("ingest", args, stdout, stderr)
	defer func() { code = o.Finish(code) }()
	stdout = o.Stdout()
	fs := cli.NewFlags("ingest", stdout, stderr, usage())
	out := fs.String("out", "./shards", "output directory")
	size := fs.Int("size", 256, "output side in pixels (the paper uses 256)")
	seed := fs.Uint64("seed", 1, "seed of the train shuffle across shards")
	shardSize := fs.Int("shard-size", 1024, "records per shard (1024 × ~92 KB ≈ 94 MB at 256 px)")
	workers := fs.Int("workers", 0, "decode workers; 0 means one per CPU (GOMAXPROCS)")
	codec := fs.String("codec", "grad-huff", "pixel codec: grad-huff (0.47× raw on photos), grad-zstd (0.56×) or zstd (0.89×)")
	valLabels := fs.String("val-labels", "", "validation labels `FILE` (LOC_val_solution.csv, or lines of 'name label'), overriding what is found")
	splits := fs.String("splits", "train,val", "splits to write")
	strict := fs.Bool("strict", false, "exit with code 3 if any file was skipped, or kept although decoded past damage, or a val image has no label")
	quiet := fs.Bool("quiet", false, "no progress display")
	asJSON := fs.Bool("json", false, "print the report as JSON on stdout")
	overwrite := fs.Bool("overwrite", false, "replace the shards of another dataset (another class list) found in --out, or a split's records even when every image of the first shard to write was skipped")
	decodeMem := fs.Int64("decode-memory", imageio.DefaultDecodeBudget>>20, "`MiB` the decodes of large images (tens of megapixels) may hold at once, all workers together; one needing more than this waits for the others, then decodes alone (0: no bound)")
	layout := fs.String("layout", "auto", "dataset layout: auto (detect; kaggle, then tree, then tars), tars, tree or kaggle")
	// Flags may follow the dataset too (`ingest ./ILSVRC2012 --size 32`),
	// as predict's and shardtool's may.
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return o.ParseFailed(fs, args, err)
	}
	o.JSON = *asJSON
	if err := cli.StrayBoolValue(fs, args, pos); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	if len(pos) != 1 {
		return o.Failf(cli.ExitUsage, "want exactly one dataset directory, got %d (see --help)", len(pos))
	}
	if len(splitFields(*splits)) == 0 {
		return o.Failf(cli.ExitUsage, "--splits %q names no split (want train, val or train,val)", *splits)
	}
	if *decodeMem < 0 || *decodeMem > math.MaxInt64>>20 {
		return o.Failf(cli.ExitUsage, "--decode-memory %d must be 0 (no bound) or more MiB, and at most %d", *decodeMem, int64(math.MaxInt64>>20))
	}
	imageio.SetDecodeBudget(*decodeMem << 20)
	c, err := shards.ParseCodec(*codec)
	if err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	var bar *cli.Progress
	var barSplit string
	opt := ingest.Options{Out: *out, Size: *size, Seed: *seed, ShardSize: *shardSize, Workers: *workers, Codec: c, Splits: splitFields(*splits), Overwrite: *overwrite,
		Progress: func(p ingest.Progress) {
			if p.Split != barSplit {
				if bar != nil {
					bar.Finish()
				}
				barSplit = p.Split
				if p.ResumedDone > 0 {
					fmt.Fprintf(stderr, "ingest: %s: resuming, %s already done (in complete shards, or skipped)\n", p.Split, cli.Count(p.ResumedDone, "image", "images"))
				}
				bar = cli.NewProgress(os.Stderr, "ingest "+p.Split, p.Total, *quiet)
			}
			bar.Set(p.Done)
		}}
	// Before the listing, which takes minutes on ImageNet.
	if err := opt.Validate(); err != nil {
		return o.Failf(cli.ExitUsage, "%v (see --help)", err)
	}
	var force imagenet.Layout
	switch l := imagenet.Layout(*layout); l {
	case "auto":
	case imagenet.LayoutTars, imagenet.LayoutTree, imagenet.LayoutKaggle:
		force = l
	default:
		return o.Failf(cli.ExitUsage, "unknown --layout %q (want auto, tars, tree or kaggle)", *layout)
	}
	// Before the checks of --out below and its lock, which would make a
	// .lock among the images, or fail for a read-only dataset mount.
	if err := imagenet.CheckOut(pos[0], force, *out); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	// The val split is not looked at when it is not written: a val
	// archive still downloading must not stop the training split.
	trainOnly := slices.Equal(opt.Splits, []string{"train"})
	if trainOnly && *valLabels != "" {
		fmt.Fprintf(stderr, "ingest: note: --val-labels %s is not read: --splits train writes no val split\n", *valLabels)
		*valLabels = ""
	}
	// The paths given are checked before the listing, naming their flag.
	if *valLabels != "" {
		fi, err := os.Stat(*valLabels)
		switch {
		case err != nil:
			return o.Failf(cli.ExitUsage, "--val-labels %s: %v", *valLabels, errors.Unwrap(err))
		case !fi.Mode().IsRegular():
			// A folder, /dev/null, a pipe: a label file is read whole, and
			// the listing would only refuse it later, as a failure (exit 1).
			return o.Failf(cli.ExitUsage, "--val-labels %s: %s, not a regular file", *valLabels, cli.FileKind(fi.Mode()))
		}
	}
	// An --out that cannot be a folder is refused now, not after the
	// listing: the file itself, or a file where a parent folder should be.
	folder, file := cli.NearestFolder(*out)
	if file != "" {
		return o.Failf(cli.ExitUsage, "--out %s: %s is a file, not a folder", *out, file)
	}
	// A link that leads nowhere would fail only after the listing, as
	// "mkdir: file exists".
	// Cleaned: "link/" would have Lstat follow the link.
	link := filepath.Clean(*out)
	if target, isLink := cli.LinkTarget(link); isLink {
		if _, err := os.Stat(link); err != nil {
			why := "does not exist"
			if !errors.Is(err, os.ErrNotExist) {
				why = "cannot be reached: " + cause(err).Error()
			}
			return o.Failf(cli.ExitUsage, "--out %s: a symbolic link to %s, which %s", *out, cli.Name(target), why)
		}
	}
	// Shards written among Go sources are a mess to clean: the default
	// ./shards, run from this repository's root, is its shards package.
	if src := goSources(*out); src != "" {
		return o.Failf(cli.ExitUsage, "--out %s holds Go source (%s), not shards: run from elsewhere or give --out a data folder (the default ./shards is this repository's shards package when run from its root)", *out, src)
	}
	// Nor would one ingest cannot write in (another user's, a read-only
	// mount) be found only after the listing.
	if err := cli.CannotWrite(*out, folder); err != nil {
		return o.Fail(cli.ExitFailure, err)
	}
	// A folder another ingest is writing is refused now, not after the
	// listing; one that does not exist yet is locked by Run.
	if fi, err := os.Stat(*out); err == nil && fi.IsDir() {
		lock, err := dirlock.Acquire(*out, "ingest")
		if err != nil {
			return o.Fail(cli.ExitFailure, err)
		}
		defer lock.Release()
		opt.Locked = true
	}
	if _, err := os.Stat(pos[0]); err != nil {
		// A path that is not there is a mistake in the command, as a
		// --val-labels file that is not there is (exit 2 for both).
		code := cli.ExitFailure
		if errors.Is(err, os.ErrNotExist) {
			code = cli.ExitUsage
		}
		return o.Failf(code, "the dataset %s: %v", pos[0], errors.Unwrap(err))
	}
	ds, err := imagenet.OpenContext(ctx, pos[0], imagenet.Options{ValLabels: *valLabels, Layout: force, Exclude: []string{*out}, TrainOnly: trainOnly})
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return o.Failf(cli.ExitInterrupted, "interrupted while listing the dataset; nothing was written")
	}
	if errors.Is(err, imagenet.ErrOtherLayout) || errors.Is(err, imagenet.ErrOutInDataset) || errors.Is(err, imagenet.ErrNotFolder) {
		return o.Fail(cli.ExitUsage, err)
	}
	if err != nil {
		// Found no layout in a folder it cannot list: that is the likelier
		// story (the layouts are looked up by name, so a folder that can
		// be entered but not listed still ingests).
		if unreadable := unlistable(pos[0]); unreadable != nil {
			return o.Failf(cli.ExitFailure, "%v\n(the dataset folder %s cannot be listed: %v)", err, pos[0], unreadable)
		}
		return o.Fail(cli.ExitFailure, err)
	}
	defer ds.Close()
	for _, w := range ds.Warnings {
		fmt.Fprintln(stderr, "ingest: warning:", cli.Printable(w))
	}
	// Entries named as images that are not files (a folder, a dangling
	// link), and a tar's stretches past a damaged header, are counted with
	// the skipped in the report: say so here, or the counts would not add up.
	notFiles := ""
	if n := len(ds.Skipped); n > 0 {
		notFiles = fmt.Sprintf(" (and %s that cannot be read as %s, to be reported as skipped)", cli.Count(n, "entry", "entries"), map[bool]string{true: "an image", false: "images"}[n == 1])
	}
	vals := " and " + cli.Count(len(ds.Val), "val image", "val images")
	if trainOnly {
		vals = " (val not read: --splits train)"
	}
	fmt.Fprintf(stderr, "ingest: %s layout at %s: %s, %s%s%s; decoder %s\n", ds.Layout, ds.Root, cli.Count(len(ds.Classes), "class", "classes"), cli.Count(len(ds.Train), "train image", "train images"), vals, notFiles, imageio.Backend())
	rep, err := ingest.Run(ctx, ds, opt)
	if bar != nil {
		bar.Finish()
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		if !ingest.HasShards(*out) {
			return o.Failf(cli.ExitInterrupted, "interrupted before any shard was complete: nothing in %s to keep; run the same command again to start", *out)
		}
		return o.Failf(cli.ExitInterrupted, "interrupted; the complete shards in %s are kept: run the same command again to resume", *out)
	}
	if errors.Is(err, ingest.ErrOtherDataset) {
		return o.Fail(cli.ExitUsage, err)
	}
	// A split stopped by its all-skipped first shard still has a report
	// (with nothing written, or the splits before it): it is printed and
	// recorded as the failures found after a run are.
	stopped := err != nil && rep != nil && errors.Is(err, ingest.ErrAllSkipped)
	if err != nil && !stopped {
		return o.Fail(cli.ExitFailure, err)
	}
	for _, w := range rep.Warnings[len(ds.Warnings):] { // the listing's were printed above
		fmt.Fprintln(stderr, "ingest: warning:", cli.Printable(w))
	}
	if n := len(rep.Removed); n > 0 {
		fmt.Fprintf(stderr, "ingest: removed %s of an earlier run that meta.json no longer lists: %s\n", cli.Count(n, "stale shard", "stale shards"), cli.FirstFew(rep.Removed, 5))
	}
	skipped := len(rep.Skipped)
	for _, s := range rep.Skipped {
		fmt.Fprintf(stderr, "ingest: skipped %s: %s\n", cli.Name(s.Path), s.Reason)
	}
	for _, s := range rep.Damaged {
		fmt.Fprintf(stderr, "ingest: kept %s, %s\n", cli.Name(s.Path), s.Reason)
	}
	// The splits asked for only: "0 val records" after --splits train
	// would read as a val split lost.
	var written []string
	for _, sp := range []string{"train", "val"} {
		if slices.Contains(opt.Splits, sp) {
			written = append(written, fmt.Sprintf("%d %s", rep.Written[sp], sp))
		}
	}
	records := strings.Join(written, " + ") + " records"
	if len(written) == 1 && strings.HasPrefix(written[0], "1 ") {
		records = written[0] + " record"
	}
	fmt.Fprintf(stderr, "ingest: %s: %s, %d skipped, %s, %s in %.1fs (%.1f img/s, %s), %.0f B/image (%.3f of raw) -> %s\n",
		map[bool]string{true: "stopped", false: "done"}[stopped], records, skipped, cli.Count(rep.ResumedShards, "resumed shard", "resumed shards"),
		cli.Count(rep.ProcessedRun, "image", "images"), rep.Seconds, rep.ImagesPerSec, cli.Count(rep.Workers, "worker", "workers"),
		rep.BytesPerImage, rep.BytesPerImage/float64(rep.RawPerImage), *out)
	code = cli.ExitOK
	if stopped {
		code = o.Fail(cli.ExitFailure, err)
	}
	// Shards without a record are not a dataset: every image of a split
	// failing is a failure of the run, --strict or not.
	for _, split := range []string{"train", "val"} {
		if n := rep.Images[split]; n > 0 && rep.Written[split] == 0 && code == cli.ExitOK {
			code = o.Failf(cli.ExitFailure, "all %d %s images were skipped (the reasons are listed on stderr and in %s/ingest-report.json): no %s records were written",
				n, split, *out, split)
		}
	}
	// A val image without a label is lost to validation as a skipped one
	// is to training: --strict counts both.
	unlabelled := 0
	for _, it := range ds.Val {
		if it.Label < 0 {
			unlabelled++
		}
	}
	if *strict && skipped+len(rep.Damaged)+unlabelled > 0 && code == cli.ExitOK {
		msg := fmt.Sprintf("--strict: %s skipped and %s kept decoded past damage (listed in %s/ingest-report.json)",
			cli.Count(skipped, "file was", "files were"), cli.Count(len(rep.Damaged), "file", "files"), *out)
		if unlabelled > 0 {
			msg += fmt.Sprintf("; %s no label (see the warning)", cli.Count(unlabelled, "val image has", "val images have"))
		}
		code = o.Fail(cli.ExitSkipped, msg)
	}
	// The report is the one JSON document, a failure found in it too; so
	// is the copy on disk, which a later reader otherwise takes for a
	// success.
	rep.Error, rep.ExitCode = o.Reason(code), code
	if code != cli.ExitOK {
		if err := recordFailure(*out, opt.Locked, rep); err != nil {
			fmt.Fprintln(stderr, "ingest: recording the failure in ingest-report.json:", err)
		}
	}
	if *asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			return o.Fail(cli.ExitFailure, "--json:", err)
		}
	}
	return code
}

// recordFailure rewrites out's ingest-report.json as report, which carries
// the failure. An --out that did not exist before the run was locked by
// Run alone, and is locked again for this write: another ingest may have
// begun there since.
func recordFailure(out string, locked bool, report *ingest.Report) error {
	if !locked {
		lock, err := dirlock.Acquire(out, "ingest")
		if err != nil {
			return err
		}
		defer lock.Release()
	}
	return ingest.WriteReport(out, report)
}

// cause is err without the path a *fs.PathError repeats, for a message
// that names the path itself.
func cause(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// unlistable is why dir, a folder, cannot be listed; nil when it can, or
// when it is not a folder.
func unlistable(dir string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	f, err := os.Open(dir)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	if err == nil || err == io.EOF {
		return nil
	}
	return cause(err)
}
