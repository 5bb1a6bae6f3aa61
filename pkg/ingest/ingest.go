// Package ingest owns the work behind the ingest command: it plans which
// image goes into which shard, decodes and resizes images on a pool of
// workers, writes the shards in a fixed order through a bounded reorder
// window, accumulates the train statistics, resumes from the shards a killed
// run already completed, and writes meta.json and ingest-report.json.
//
// Determinism: the plan depends only on the sorted item names, the seed and
// the shard size, and records are written in plan order whatever worker
// finished first, so the same inputs give byte-identical shards and
// meta.json for any worker count.
//
// Memory: the item lists (about 150 bytes an image, ~200 MB for ImageNet's
// 1.33M), plus a reorder window of 8 results per worker (each one
// compressed image, ~110 KB at 256 px), plus one decode buffer per worker.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/dirlock"
	"github.com/alexnet-repro/alexnet/internal/regfile"
	"github.com/alexnet-repro/alexnet/pkg/imageio"
	"github.com/alexnet-repro/alexnet/pkg/imagenet"
	"github.com/alexnet-repro/alexnet/pkg/stats"
	"github.com/alexnet-repro/alexnet/shards"
)

// Options are ingest's settings.
type Options struct {
	Out       string
	Size      int
	Seed      uint64
	ShardSize int // records per shard
	Workers   int // 0: one per CPU (GOMAXPROCS)
	Codec     shards.Codec
	Splits    []string       // which splits to write; default train and val
	Progress  func(Progress) // called from the writer goroutine after every record
	// Locked says the caller holds Out's dirlock already (taken before
	// the listing, which takes minutes on ImageNet); Run takes it otherwise.
	Locked bool
	// Overwrite lets Run replace shards of another dataset (another class
	// list) found in Out; without it Run refuses with ErrOtherDataset. It
	// also lets a split's earlier records be replaced by a shard whose
	// every image was skipped (ErrAllSkipped).
	Overwrite bool

	mark   func() error             // records the dataset in out before the first change
	unlist func(split string) error // drops split from meta.json before its first shard is replaced
}

// ErrAllSkipped marks a run stopped before it replaced a split's earlier
// records: the first shard it was about to write had every image skipped.
// A source gone bad (files truncated to zero, Git LFS pointers, a decoder
// that refuses them all) must not cost the shards made from it when it
// was good.
var ErrAllSkipped = errors.New("every image of the first shard to write was skipped")

// allSkippedError is the ErrAllSkipped a split stopped with, carrying the
// skips of the shard that stopped it for the report.
type allSkippedError struct {
	msg     string
	skipped []Skip
}

func (e *allSkippedError) Error() string        { return e.msg }
func (e *allSkippedError) Is(target error) bool { return target == ErrAllSkipped }

// ErrNothingToWrite marks a run whose every split asked for has no image
// in the dataset.
var ErrNothingToWrite = errors.New("nothing to write")

// ErrOtherDataset marks an Out that holds the shards of a dataset with
// another class list: a mistyped --out must not cost them.
var ErrOtherDataset = errors.New("holds the shards of another dataset")

// Progress is what the progress display needs.
type Progress struct {
	Split       string
	Done, Total int // images handled in this run (written or skipped), of those this run must handle
	Skipped     int
	ResumedDone int // images in shards already complete from an earlier run
	Elapsed     time.Duration
}

// Skip is one file that could not be used.
type Skip struct {
	Split  string `json:"split"`
	Path   string `json:"path"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// MarshalJSON adds path_quoted and name_quoted, the path and name
// Go-quoted, when they are not UTF-8: JSON would carry them with U+FFFD
// for those bytes, naming a file that does not exist.
func (s Skip) MarshalJSON() ([]byte, error) {
	type plain Skip
	out := struct {
		plain
		PathQuoted string `json:"path_quoted,omitempty"`
		NameQuoted string `json:"name_quoted,omitempty"`
	}{plain: plain(s)}
	if !utf8.ValidString(s.Path) {
		out.PathQuoted = strconv.Quote(s.Path)
	}
	if !utf8.ValidString(s.Name) {
		out.NameQuoted = strconv.Quote(s.Name)
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes, the quoted forms taking
// precedence, so a resumed ingest (which reads finished shards' skips
// back from .ingest-state) reports the same bytes a fresh one does.
func (s *Skip) UnmarshalJSON(b []byte) error {
	type plain Skip
	var in struct {
		plain
		PathQuoted string `json:"path_quoted"`
		NameQuoted string `json:"name_quoted"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*s = Skip(in.plain)
	for _, q := range []struct {
		quoted string
		dst    *string
	}{{in.PathQuoted, &s.Path}, {in.NameQuoted, &s.Name}} {
		if q.quoted == "" {
			continue
		}
		v, err := strconv.Unquote(q.quoted)
		if err != nil {
			return fmt.Errorf("skip entry: bad quoted name %s: %w", q.quoted, err)
		}
		*q.dst = v
	}
	return nil
}

// Report is ingest-report.json.
type Report struct {
	Root    string `json:"root"`
	Layout  string `json:"layout"`
	Out     string `json:"out"`
	Decoder string `json:"decoder"`
	Workers int    `json:"workers"`
	// ValLabelSource says where the val labels came from: a label file,
	// "folders", "folders, checked against FILE", or "" (no val split).
	ValLabelSource string         `json:"val_label_source"`
	Warnings       []string       `json:"warnings"`
	Images         map[string]int `json:"images"`  // per split, found in the source
	Written        map[string]int `json:"written"` // per split, records in the shards
	SkippedCount   map[string]int `json:"skipped_count"`
	Skipped        []Skip         `json:"skipped"`
	// LeftOut are the dataset's entries not named as images (imagenet's
	// Dataset.LeftOut): not decoded, not counted as skipped.
	LeftOut []string `json:"left_out"`
	// Damaged lists the images kept although the decoder recovered from
	// damage in them (libjpeg's "Corrupt JPEG data…": rows past the
	// damage may be flat grey); Reason holds its message.
	Damaged       []Skip `json:"damaged"`
	ResumedShards int    `json:"resumed_shards"`
	// Removed are shard files of an earlier run with other settings (and
	// their state in .ingest-state) that meta.json no longer lists.
	Removed       []string `json:"removed_stale"`
	ProcessedRun  int      `json:"processed_this_run"`
	Seconds       float64  `json:"seconds"`
	ImagesPerSec  float64  `json:"images_per_sec"`
	BytesPerImage float64  `json:"shard_bytes_per_image"`
	RawPerImage   int      `json:"raw_bytes_per_image"`
	// ExitCode is 0 as Run writes the report of a finished run, 1 for one
	// stopped by a split's all-skipped first shard, and 1 in the report
	// Run writes before its first change to out, which stays there if it
	// never ends; the ingest command rewrites the file with its own exit
	// code and error when that is not 0, so a reader of the file needs no
	// default for it. Error says why it is not 0.
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
}

// WriteReport writes rep as out's ReportFile, atomically: what Run
// writes, and what the ingest command rewrites with its failure.
func WriteReport(out string, rep *Report) error {
	b, _ := json.MarshalIndent(rep, "", "  ")
	return writeOwn(filepath.Join(out, ReportFile), append(b, '\n'))
}

// writeOwn is shards.WriteFileAtomic for a file ingest keeps in --out for
// itself (meta.json, the report, its state).
func writeOwn(path string, b []byte) error {
	if err := notALink(path); err != nil {
		return err
	}
	return shards.WriteFileAtomic(path, b)
}

// notALink refuses a symbolic link where ingest keeps a file or its state
// folder: WriteFileAtomic writes through a link, so a link planted in an
// --out others can write in would have ingest (run as root, say) replace
// whatever file it points to.
func notALink(path string) error {
	target, isLink := cli.LinkTarget(path)
	if !isLink {
		return nil
	}
	return fmt.Errorf("%s is a symbolic link (to %s): ingest keeps its own files in --out and would write through the link; remove it (ingest writes the file itself there), or use another --out",
		cli.Name(path), cli.Name(target))
}

// absPath makes the report's paths absolute, so the file names the same
// folders whichever directory it is read from.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

const stateDir = shards.IngestStateDir

// splitNames are the splits ingest writes, in the order it writes them.
var splitNames = []string{"train", "val"}

// shardPlan is one shard to write: which items, in which order.
type shardPlan struct {
	split string
	index int
	items []*imagenet.Item
	ids   []uint64
	// key is planKey, taken once and before any of the shard's images is
	// read: by resumable where a sidecar is there to compare, else by the
	// dispatcher before the shard's first job. A file changed while it was
	// being decoded then no longer matches the stamp its shard records,
	// and the next run reads it again.
	key string
}

func (p *shardPlan) file() string { return shards.ShardName(p.split, p.index) }

// planKey fingerprints a shard's contents and the settings that shape its
// bytes, so a resumed run only reuses a shard made by the same plan. Each
// image's stamp (size and modification time) is in it: a file replaced
// since the shard was made (the truncated image a report listed, fixed)
// changes it, and the shard is made again rather than keeping the old
// pixels or the old skip. So does a resume on the other JPEG decoder, or
// under other resize rules: their pixels differ, and a mix would match
// neither run; or under other rules for what is damaged, whose report
// would differ.
func (p *shardPlan) planKey(ds *imagenet.Dataset, o *Options) string {
	h := fnv.New128a()
	fmt.Fprintf(h, "v%d size=%d codec=%d pixels=%d decoder=%s\n", shards.Version, o.Size, o.Codec, imageio.PixelsVersion, imageio.BackendKind())
	if r := imageio.DamageRules(); r != "" {
		// Written only where set, so shards made before it existed keep
		// their key wherever the rules did not change.
		fmt.Fprintf(h, "damage=%s\n", r)
	}
	for i, it := range p.items {
		fmt.Fprintf(h, "%d %s %d %s\n", p.ids[i], it.Name, it.Label, itemStamp(ds, it))
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// itemStamp is the seam through which tests see when stamps are taken.
var itemStamp = (*imagenet.Dataset).ItemStamp

// readReason begins the reason of a file skipped because reading it failed
// (permissions, an I/O error, a file moved away), not for what its bytes
// hold: the next run reads it again (resumable), since such a failure may
// have passed, although its size and time stay as they were.
const readReason = "read: "

// sidecar is what a finished shard leaves in .ingest-state, so a resumed
// run knows its skips and statistics without decoding it again.
type sidecar struct {
	Plan    string             `json:"plan"`
	Info    shards.ShardInfo   `json:"info"`
	Skipped []Skip             `json:"skipped"`
	Damaged []Skip             `json:"damaged,omitempty"`
	Stats   *stats.Accumulator `json:"stats,omitempty"`
}

// Plan splits a split's items into shards. Train records are permuted once
// by the seed from the canonical sorted-name order, so reading shards in
// sequence through a shuffle buffer already mixes classes; validation stays
// in name order.
func plan(split string, items []imagenet.Item, seed uint64, shardSize int) []*shardPlan {
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	if split == "train" {
		rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	var out []*shardPlan
	for start := 0; start < len(order); start += shardSize {
		end := min(start+shardSize, len(order))
		p := &shardPlan{split: split, index: len(out)}
		for _, k := range order[start:end] {
			p.items = append(p.items, &items[k])
			p.ids = append(p.ids, uint64(k))
		}
		out = append(out, p)
	}
	return out
}

// MaxSize is the largest --size (shards.MaxWrittenSide).
const MaxSize = shards.MaxWrittenSide

// Validate checks the settings that do not depend on the dataset, so a
// command can reject them before listing it.
func (o *Options) Validate() error {
	if o.Size <= 0 || o.Size > MaxSize {
		return fmt.Errorf("size %d out of range 1..%d", o.Size, MaxSize)
	}
	if o.ShardSize <= 0 {
		return fmt.Errorf("shard size %d must be positive", o.ShardSize)
	}
	if o.Workers < 0 || o.Workers > cli.MaxWorkers {
		return fmt.Errorf("workers %d must be 0 (one per CPU) to %d", o.Workers, cli.MaxWorkers)
	}
	for i, s := range o.Splits {
		if !slices.Contains(splitNames, s) {
			return fmt.Errorf("unknown split %q (want train, val or train,val)", s)
		}
		if slices.Contains(o.Splits[:i], s) {
			// The second pass would only resume the first.
			return fmt.Errorf("split %q given twice", s)
		}
	}
	return nil
}

// Run ingests ds into opt.Out.
func Run(ctx context.Context, ds *imagenet.Dataset, opt Options) (_ *Report, err error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if opt.Workers == 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if len(opt.Splits) == 0 {
		opt.Splits = slices.Clone(splitNames)
	}
	// A split asked for with no image in the dataset is left alone (its
	// shards of another copy are kept); every split asked for empty is a
	// run with nothing to do, which a mistyped root or --splits most
	// likely caused: refused before out is made or touched.
	found := map[string]int{"train": len(ds.Train), "val": len(ds.Val)}
	for _, e := range ds.Skipped {
		found[e.Split]++
	}
	if !slices.ContainsFunc(opt.Splits, func(sp string) bool { return found[sp] > 0 }) {
		return nil, fmt.Errorf("%s has no images for --splits %s: %w", ds.Root, strings.Join(opt.Splits, ","), ErrNothingToWrite)
	}
	// Found now, not after hours of decoding.
	for _, f := range []string{stateDir, shards.MetaFile, ReportFile, filepath.Join(stateDir, datasetFile)} {
		if err := notALink(filepath.Join(opt.Out, f)); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(opt.Out, stateDir), 0o755); err != nil {
		return nil, err
	}
	// Two ingests into one folder would write the same shards' temporary
	// files and each remove the other's as stale.
	if !opt.Locked {
		lock, err := dirlock.Acquire(opt.Out, "ingest")
		if err != nil {
			return nil, err
		}
		defer lock.Release()
	}
	if !opt.Overwrite {
		if err := sameDataset(opt.Out, ds.Classes); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	rep := &Report{Root: absPath(ds.Root), Layout: string(ds.Layout), Out: absPath(opt.Out), Workers: opt.Workers, ValLabelSource: ds.ValLabelSource,
		Warnings: append([]string{}, ds.Warnings...), Images: map[string]int{}, Written: map[string]int{},
		SkippedCount: map[string]int{}, Skipped: []Skip{}, LeftOut: append([]string{}, ds.LeftOut...), Damaged: []Skip{}, Removed: []string{}, RawPerImage: opt.Size * opt.Size * 3}
	rep.Decoder = imageio.Backend()
	// Every split asked for has its figures from the start, so that the
	// report of a run that fails midway says what it found and what is on
	// disk, not 0 for a split it did not reach.
	for _, sp := range opt.Splits {
		rep.Images[sp], rep.Written[sp] = found[sp], 0
	}
	marked := false
	mark := func() error {
		if marked {
			return nil
		}
		marked = true
		if err := markDataset(opt.Out, ds.Classes); err != nil {
			return err
		}
		// From here on out changes: until the end rewrites it, the
		// report on disk says this run has not finished, so that a run
		// killed midway does not leave the last run's success there.
		unfinished := *rep
		unfinished.ExitCode = 1
		unfinished.Error = fmt.Sprintf("unfinished: the run started %s (pid %d) was stopped before it ended, or is still running; the same command resumes it",
			start.UTC().Format(time.RFC3339), os.Getpid())
		return WriteReport(opt.Out, &unfinished)
	}
	// A run that changed out and then failed (a full disk, a permission,
	// an interruption) says why in its report, where the placeholder
	// above would tell a reader to resume what may need a fix first. Best
	// effort: the failure may be the very write this needs.
	defer func() {
		if err == nil || !marked || errors.Is(err, ErrAllSkipped) {
			return
		}
		failed := *rep
		failed.ExitCode = 1
		failed.Error = err.Error()
		if errors.Is(err, context.Canceled) {
			failed.ExitCode = cli.ExitInterrupted // as the command exits
			failed.Error = "interrupted; the complete shards are kept: the same command resumes it"
			if len(shardFiles(opt.Out)) == 0 {
				failed.Error = "interrupted before any shard was complete; the same command starts again"
			}
		}
		failed.Seconds = time.Since(start).Seconds()
		_ = WriteReport(opt.Out, &failed)
	}()

	meta := &shards.Meta{FormatVersion: shards.Version, Width: opt.Size, Height: opt.Size, Channels: 3,
		Splits: map[string]shards.Split{},
		Ingest: shards.IngestParams{Size: opt.Size, Codec: opt.Codec.String(), ShardSize: opt.ShardSize, Seed: opt.Seed,
			Resize:      "shorter side to size with antialiased bilinear (triangle filter widened by the scale), centre crop size×size",
			TrainOrder:  "sorted names permuted by seed (PCG), cut into shards in that order",
			ValOrder:    "sorted names",
			ColourSpace: "sRGB, 8-bit interleaved RGB; grayscale replicated, CMYK converted"}}
	for _, c := range ds.Classes {
		meta.Classes = append(meta.Classes, shards.Class{Index: c.Index, WNID: c.WNID, Name: c.Name})
	}

	// unlist drops a split from meta.json just before this run replaces
	// the first of its shards. A run stopped after that point (killed, a
	// full disk) would otherwise leave a meta.json describing shards that
	// now hold another size or other records, which readers call damage
	// and whose repair advice (delete them, run ingest again) is wrong:
	// unlisted, readers say the split is missing, the report says the run
	// did not finish, and the same command resumes it. The end of the run
	// lists it again.
	unlisted := map[string]bool{}
	unlist := func(split string) error {
		if unlisted[split] {
			return nil
		}
		unlisted[split] = true
		old, err := shards.ReadMeta(opt.Out)
		if err != nil {
			return nil // none, or unreadable: it lists nothing readers would trust
		}
		if _, ok := old.Splits[split]; !ok {
			return nil
		}
		delete(old.Splits, split)
		if split == "train" {
			old.Stats = nil // of the records being replaced
		}
		if old.Unfinished == nil {
			old.Unfinished = map[string]string{}
		}
		old.Unfinished[split] = fmt.Sprintf("an ingest run (pid %d, started %s) began rewriting its shards and has not finished, so they are part old, part new; the same ingest command resumes it (ingest-report.json says how it ended)",
			os.Getpid(), start.UTC().Format(time.RFC3339))
		if err := notALink(filepath.Join(opt.Out, shards.MetaFile)); err != nil {
			return err
		}
		return shards.WriteMeta(opt.Out, old)
	}

	var trainAcc stats.Accumulator
	// written lists the splits this run wrote shards for. A requested split
	// with no images in this dataset is not one of them: its shards from an
	// earlier run, of another copy of the dataset, say, are kept, never
	// taken for stale ones.
	var written []string
	// stop is an ErrAllSkipped that ended the splits early: the splits
	// written before it still get a meta.json that lists them, or their
	// new shards would sit under the old run's listing.
	var stop error
	for _, split := range opt.Splits {
		var items []imagenet.Item
		switch split {
		case "train":
			items = ds.Train
		case "val":
			items = ds.Val
		}
		// Entries the listing already rejected come first, in listing order,
		// and count as found and skipped, as an undecodable file does.
		sp := shards.Split{}
		for _, e := range ds.Skipped {
			if e.Split == split {
				rep.Skipped = append(rep.Skipped, Skip{Split: split, Path: e.Path, Name: e.Name, Reason: e.Reason})
				sp.Skipped++
			}
		}
		rep.Images[split] = len(items) + sp.Skipped
		rep.SkippedCount[split] = sp.Skipped
		rep.Written[split] = 0 // every split asked for has a figure in the report
		if len(items) == 0 {
			continue
		}
		plans := plan(split, items, opt.Seed, opt.ShardSize)
		done, todo, remade, err := resumable(ds, opt, plans)
		if err != nil {
			return nil, err
		}
		if n := len(remade); n > 0 {
			list := strings.Join(remade[:min(n, 5)], "; ")
			if n > 5 {
				list += fmt.Sprintf("; and %d more", n-5)
			}
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s: %s an earlier run finished %s damaged or gone, written again (a shard changed on disk is a sign of failing storage; one deleted is not): %s",
				split, cli.Count(n, "shard", "shards"), cli.Plural(n, "is", "are"), list))
		}
		rep.ResumedShards += len(done)
		for _, p := range done {
			if sc, err := readSidecar(opt.Out, p); err == nil {
				rep.Written[split] += sc.Info.Records
			}
		}
		guard := 0 // records of this split already in out, to keep from an all-skipped shard
		if !opt.Overwrite {
			if old, err := shards.ReadMeta(opt.Out); err == nil {
				guard = old.Splits[split].Records
			}
			// A run stopped by an all-skipped shard may have left a
			// meta.json that no longer lists the split (written with other
			// settings), while its shards stay: the next run must still
			// keep them.
			guard = max(guard, recordsOnDisk(opt.Out, split))
		}
		opt.mark, opt.unlist = mark, unlist
		if err := runPlans(ctx, ds, opt, split, todo, done, guard, rep); err != nil {
			if as, ok := errors.AsType[*allSkippedError](err); ok {
				// The stopping shard's skips are this run's too: the
				// report lists them, not only the first in the error.
				rep.Skipped = append(rep.Skipped, as.skipped...)
				rep.SkippedCount[split] += len(as.skipped)
				stop = err
				break
			}
			return nil, err
		}
		// Every shard now has a sidecar: gather them in order.
		for _, p := range plans {
			sc, err := readSidecar(opt.Out, p)
			if err != nil {
				return nil, err
			}
			sp.Shards = append(sp.Shards, sc.Info)
			sp.Records += sc.Info.Records
			sp.Skipped += len(sc.Skipped)
			rep.Skipped = append(rep.Skipped, sc.Skipped...)
			rep.Damaged = append(rep.Damaged, sc.Damaged...)
			if sc.Stats != nil && split == "train" {
				trainAcc.Merge(sc.Stats)
			}
		}
		meta.Splits[split] = sp
		written = append(written, split)
		rep.Written[split] = sp.Records
		rep.SkippedCount[split] = sp.Skipped
	}
	if stop != nil && len(written) == 0 {
		// Nothing written: the shards and meta.json in out are as they
		// were, and the report says why this run stopped, as a stopped
		// run's does.
		rep.Seconds = time.Since(start).Seconds()
		rep.ExitCode = 1
		rep.Error = stop.Error()
		if err := WriteReport(opt.Out, rep); err != nil {
			return nil, err
		}
		return rep, stop
	}
	if trainAcc.Count() > 0 {
		st, err := trainAcc.Stats()
		if err != nil {
			return nil, err
		}
		meta.Stats = &shards.Stats{Pixels: st.Pixels, Mean: st.Mean, Std: st.Std, Cov: st.Cov, PCAEigval: st.EigVal, PCAEigvec: st.EigVec}
	}
	if w := carryOver(opt.Out, written, meta); w != "" {
		rep.Warnings = append(rep.Warnings, w)
	}
	if err := mark(); err != nil {
		return nil, err
	}
	if err := notALink(filepath.Join(opt.Out, shards.MetaFile)); err != nil {
		return nil, err
	}
	if err := shards.WriteMeta(opt.Out, meta); err != nil {
		return nil, err
	}
	// Only now that meta.json no longer lists them may stale shards go: a
	// run killed before this point leaves every file the old meta.json
	// lists in place (those rewritten under the same names already hold
	// the new run's records, and the next run resumes them).
	removed, err := removeStale(opt.Out, written, meta)
	rep.Removed = append(rep.Removed, removed...)
	if err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(start).Seconds()
	if rep.Seconds > 0 {
		rep.ImagesPerSec = float64(rep.ProcessedRun) / rep.Seconds
	}
	var bytes int64
	var recs int
	for _, sp := range meta.Splits {
		for _, sh := range sp.Shards {
			bytes += sh.Bytes
			recs += sh.Records
		}
	}
	if recs > 0 {
		rep.BytesPerImage = float64(bytes) / float64(recs)
	}
	if stop != nil {
		// A stopped run is a failure on disk too, even before (or
		// without) the ingest command's rewrite with its error.
		rep.ExitCode = 1
		rep.Error = stop.Error()
	}
	if err := WriteReport(opt.Out, rep); err != nil {
		return nil, err
	}
	if stop != nil {
		return rep, fmt.Errorf("%w; the splits before it (%s) are written, and meta.json lists them", stop, strings.Join(written, ", "))
	}
	return rep, nil
}

// datasetFile, in the state folder, names the dataset the last run into
// out was of (its class list), written just before that run's first
// change to out (its first shard, or its meta.json): so the shards an
// interrupted run leaves without a meta.json, or those under a meta.json
// since damaged, still say whose they are, and a run stopped before it
// changed anything leaves the mark as it was.
const datasetFile = "dataset.json"

// ReportFile is the report Run writes in out beside meta.json.
const ReportFile = "ingest-report.json"

type datasetMark struct {
	ClassList string `json:"class_list"` // classListID
	Classes   int    `json:"classes"`
	Span      string `json:"span"` // classSpan, for messages
}

// classListID fingerprints a class list by its WNIDs, in order.
func classListID(wnids []string) string {
	h := fnv.New128a()
	for _, w := range wnids {
		fmt.Fprintf(h, "%s\n", w)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// sameDataset refuses an out holding another dataset's shards: one whose
// state folder names another class list as the last run's while shards
// are there to lose, or (without that mark, written by builds before it)
// whose meta.json lists records under another class list, or that holds
// shard files while no readable meta.json or mark says whose they are.
// Other settings (size, codec, shard size) are a re-ingest of the same
// images, which resume and removeStale handle.
func sameDataset(out string, classes []imagenet.Class) error {
	var now []string
	for _, c := range classes {
		now = append(now, c.WNID)
	}
	refuse := func(what string) error {
		return fmt.Errorf("%s %w (%s), not of this one (%s): ingest would replace them; choose another --out, or pass --overwrite to replace them",
			out, ErrOtherDataset, what, classSpan(now))
	}
	if b, err := regfile.ReadFile(filepath.Join(out, stateDir, datasetFile), 0); err == nil {
		var m datasetMark
		if json.Unmarshal(b, &m) == nil && m.ClassList != "" {
			if m.ClassList == classListID(now) || len(shardFiles(out)) == 0 {
				return nil
			}
			return refuse(fmt.Sprintf("the last ingest there was of %s", m.Span))
		}
	}
	old, err := shards.ReadMeta(out)
	if err != nil {
		files := shardFiles(out)
		if len(files) == 0 {
			return nil
		}
		why := "there is no meta.json"
		if _, serr := os.Stat(filepath.Join(out, shards.MetaFile)); !errors.Is(serr, fs.ErrNotExist) {
			why = fmt.Sprintf("its meta.json cannot be read (%v)", err)
		}
		return unknownShards{fmt.Sprintf("%s holds shard files (%s), and %s to say whose they are: ingest would replace them, and they may be another dataset's; choose another --out, or pass --overwrite to go ahead",
			out, firstFewNames(files, 3), why)}
	}
	records := 0
	for _, sp := range old.Splits {
		records += sp.Records
	}
	if records == 0 || slices.EqualFunc(old.Classes, classes, func(a shards.Class, b imagenet.Class) bool { return a.WNID == b.WNID }) {
		return nil
	}
	var was []string
	for _, c := range old.Classes {
		was = append(was, c.WNID)
	}
	return refuse(fmt.Sprintf("%d records; %s", records, classSpan(was)))
}

// unknownShards is ErrOtherDataset where nothing says whose the shards are.
type unknownShards struct{ msg string }

func (e unknownShards) Error() string        { return e.msg }
func (e unknownShards) Is(target error) bool { return target == ErrOtherDataset }

// markDataset records in out's state folder that its shards are now the
// dataset of classes (datasetFile).
func markDataset(out string, classes []imagenet.Class) error {
	var wnids []string
	for _, c := range classes {
		wnids = append(wnids, c.WNID)
	}
	b, _ := json.Marshal(datasetMark{ClassList: classListID(wnids), Classes: len(wnids), Span: classSpan(wnids)})
	return writeOwn(filepath.Join(out, stateDir, datasetFile), b)
}

// shardFiles lists the files in out named as ingest names shards that
// begin as shards do: what a run into out could cost.
// HasShards says whether out holds a shard file of ingest's (its name and
// its first bytes): what an interrupted run can say it kept.
func HasShards(out string) bool { return len(shardFiles(out)) > 0 }

func shardFiles(out string) []string {
	var found []string
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		p := filepath.Join(out, e.Name())
		if _, _, ok := shardNumber(e.Name(), splitNames); ok && e.Type().IsRegular() && shards.IsShardFile(p) {
			found = append(found, p)
		}
	}
	return found
}

// shardNumber reads a shard file name ingest gives (train-00012.shard)
// for one of splits.
func shardNumber(name string, splits []string) (split string, i int, ok bool) {
	for _, split := range splits {
		num, ok := strings.CutPrefix(name, split+"-")
		if !ok {
			continue
		}
		num, ok = strings.CutSuffix(num, ".shard")
		i, err := strconv.Atoi(num)
		if ok && err == nil && i >= 0 && shards.ShardName(split, i) == name {
			return split, i, true
		}
	}
	return "", 0, false
}

// firstFewNames is cli.FirstFew of paths' base names.
func firstFewNames(paths []string, n int) string {
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	return cli.FirstFew(names, n)
}

// classSpan describes a class list by its size and ends.
func classSpan(wnids []string) string {
	switch len(wnids) {
	case 0:
		return "no classes"
	case 1:
		return "1 class, " + wnids[0]
	}
	return fmt.Sprintf("%d classes, %s … %s", len(wnids), wnids[0], wnids[len(wnids)-1])
}

// carryOver keeps in meta the splits of the meta.json already in out that
// this run did not write, with the train statistics when train is one of
// them: ingesting val after train, into the same folder, must not unlist
// the train shards. They are kept only when they were written with the
// same settings and classes, so that meta.json stays true of every shard
// it lists; otherwise the returned warning says what is no longer listed.
func carryOver(out string, written []string, meta *shards.Meta) string {
	if _, err := os.Stat(filepath.Join(out, shards.MetaFile)); errors.Is(err, os.ErrNotExist) {
		return "" // a first run: nothing to keep
	}
	old, err := shards.ReadMeta(out)
	if err != nil && !slices.ContainsFunc(splitNames, func(s string) bool { return !slices.Contains(written, s) }) {
		// Every split was written again: nothing of the old file is lost.
		return fmt.Sprintf("the earlier meta.json could not be read (%v); this run wrote every split, so the new meta.json lists them all", err)
	}
	if err != nil {
		return fmt.Sprintf("the earlier meta.json could not be read (%v): splits this run did not write are no longer listed; their shards are left in place", err)
	}
	var others []string
	for name, sp := range old.Splits {
		if !slices.Contains(written, name) && sp.Records > 0 {
			others = append(others, name)
		}
	}
	// A split an unfinished run unlisted, and this one did not write, is
	// still part old, part new: its note stays.
	for name, note := range old.Unfinished {
		if !slices.Contains(written, name) {
			if meta.Unfinished == nil {
				meta.Unfinished = map[string]string{}
			}
			meta.Unfinished[name] = note
		}
	}
	if len(others) == 0 {
		return ""
	}
	sort.Strings(others)
	// Any format version ReadMeta took is one this build reads: each
	// shard's header gives its own, so an earlier build's split stays.
	same := old.Width == meta.Width && old.Height == meta.Height &&
		old.Channels == meta.Channels && old.Ingest.Size == meta.Ingest.Size && old.Ingest.Codec == meta.Ingest.Codec &&
		old.Ingest.ShardSize == meta.Ingest.ShardSize && old.Ingest.Seed == meta.Ingest.Seed &&
		slices.EqualFunc(old.Classes, meta.Classes, func(a, b shards.Class) bool { return a.WNID == b.WNID && a.Index == b.Index })
	if !same {
		return fmt.Sprintf("meta.json no longer lists the %s split of an earlier run with other settings or classes; its shards are left in place", strings.Join(others, " and "))
	}
	for _, name := range others {
		meta.Splits[name] = old.Splits[name]
		if name == "train" && meta.Stats == nil {
			meta.Stats = old.Stats
		}
	}
	return ""
}

// removeStale removes, from out and its state folder, the shards of the
// written splits that meta does not list: those of an earlier run with a
// larger shard count, which would otherwise lie beside the new ones looking
// current. Only names ShardName gives are touched, and only regular files.
// The other splits' shards are left alone: a --splits val run must not cost
// the train shards of an earlier one. It returns the names removed.
func removeStale(out string, splits []string, meta *shards.Meta) ([]string, error) {
	listed := map[string]bool{}
	for _, sp := range meta.Splits {
		for _, sh := range sp.Shards {
			listed[sh.File] = true
		}
	}
	ours := func(name string) bool {
		_, _, ok := shardNumber(name, splits)
		return ok
	}
	var removed []string
	for _, dir := range []string{out, filepath.Join(out, stateDir)} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return removed, err
		}
		for _, e := range ents {
			shard := e.Name()
			if dir != out {
				shard = strings.TrimSuffix(shard, ".json")
				if shard == e.Name() {
					continue
				}
			}
			if !e.Type().IsRegular() || !ours(shard) || listed[shard] {
				continue
			}
			// Named as a shard is not enough in the user's folder: a file
			// is ingest's to remove when it begins as a shard, or when its
			// sidecar says ingest made it (its header since damaged).
			if dir == out && !shards.IsShardFile(filepath.Join(dir, e.Name())) {
				if _, err := os.Stat(filepath.Join(out, stateDir, shard+".json")); err != nil {
					continue
				}
			}
			p := filepath.Join(dir, e.Name())
			if dir == out {
				// Its sidecar first: a crash between the two must not
				// leave a sidecar whose shard is gone, which a later run
				// of the old settings would report as damage on disk.
				if err := os.Remove(filepath.Join(out, stateDir, shard+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return removed, fmt.Errorf("removing a stale shard's state: %w", err)
				}
			}
			if err := os.Remove(p); err != nil {
				return removed, fmt.Errorf("removing a stale shard: %w", err)
			}
			if dir == out {
				removed = append(removed, shard)
			}
		}
	}
	return removed, nil
}

// recordsOnDisk counts the records of split's shards in out as their
// sidecars give them, for the shards still there: what an earlier run
// wrote, listed in meta.json or not.
func recordsOnDisk(out, split string) int {
	ents, _ := os.ReadDir(filepath.Join(out, stateDir))
	n := 0
	for _, e := range ents {
		shard, ok := strings.CutSuffix(e.Name(), ".json")
		if _, _, named := shardNumber(shard, []string{split}); !ok || !named || !e.Type().IsRegular() {
			continue
		}
		sc, err := readSidecarFile(filepath.Join(out, stateDir, e.Name()))
		if err != nil || sc.Info.Records <= 0 || !shards.IsShardFile(filepath.Join(out, shard)) {
			continue
		}
		n += sc.Info.Records
	}
	return n
}

// wasEmpty says whether the earlier run's shard of p's name had no record
// either (its sidecar says so): then an all-skipped shard is no sign of a
// source gone bad, only the same bad files again.
func wasEmpty(out string, p *shardPlan) bool {
	sc, err := readSidecar(out, p)
	return err == nil && sc.Info.Records == 0
}

func sidecarPath(out string, p *shardPlan) string {
	return filepath.Join(out, stateDir, p.file()+".json")
}

func readSidecar(out string, p *shardPlan) (*sidecar, error) {
	return readSidecarFile(sidecarPath(out, p))
}

func readSidecarFile(path string) (*sidecar, error) {
	b, err := regfile.ReadFile(path, 0)
	if err != nil {
		return nil, err
	}
	var sc sidecar
	if err := json.Unmarshal(b, &sc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &sc, nil
}

// resumable separates shards a previous run finished (shard present, intact
// trailer, sidecar from the same plan) from those still to write. Leftover
// temporary files are removed.
func resumable(ds *imagenet.Dataset, opt Options, plans []*shardPlan) (done, todo []*shardPlan, remade []string, err error) {
	// Under the lock, temporary files of ingest's names are a killed
	// run's: shards, meta.json and the report in out; sidecars and the
	// dataset mark in its state folder. Other .tmp files are the user's.
	shards.RemoveTemps(opt.Out, func(base string) bool {
		_, _, shard := shardNumber(base, splitNames)
		return shard || base == shards.MetaFile || base == ReportFile
	})
	shards.RemoveTemps(filepath.Join(opt.Out, stateDir), func(base string) bool {
		shard, ok := strings.CutSuffix(base, ".json")
		_, _, named := shardNumber(shard, splitNames)
		return base == datasetFile || ok && named
	})
	for _, p := range plans {
		// Found before any decoding, as Run's own files are.
		if err := notALink(sidecarPath(opt.Out, p)); err != nil {
			return nil, nil, nil, err
		}
		sc, err := readSidecar(opt.Out, p)
		if err == nil {
			p.key = p.planKey(ds, &opt)
		}
		ok := err == nil && sc.Plan == p.key && !slices.ContainsFunc(sc.Skipped, func(s Skip) bool { return strings.HasPrefix(s.Reason, readReason) })
		if ok {
			// Finished by an earlier run, as its sidecar says: a shard that
			// is not as written is damage on disk (or another file copied
			// over it), which the user hears of, not only a rewrite.
			why := ""
			r, err := shards.Open(filepath.Join(opt.Out, p.file()))
			switch {
			case errors.Is(err, fs.ErrNotExist):
				why = "missing (deleted since?)"
			case err != nil:
				why = strings.TrimPrefix(err.Error(), "shard "+p.file()+": ")
			case r.Len() != sc.Info.Records:
				why = fmt.Sprintf("%d records, not the %d written", r.Len(), sc.Info.Records)
			case fmt.Sprintf("%08x", r.FileCRC()) != sc.Info.CRC32C:
				why = fmt.Sprintf("its trailer's CRC is %08x, not the %s written (another shard copied over it?)", r.FileCRC(), sc.Info.CRC32C)
			}
			if r != nil {
				r.Close()
			}
			if why != "" {
				ok = false
				remade = append(remade, p.file()+": "+why)
			}
		}
		if ok {
			done = append(done, p)
		} else {
			todo = append(todo, p)
		}
	}
	return done, todo, remade, nil
}

type job struct {
	seq  int
	plan *shardPlan
	pos  int
}

type result struct {
	seq     int
	rec     shards.Record
	skip    *Skip
	damaged *Skip // kept, with the decoder's warning
	acc     stats.Accumulator
	payload []byte
}

// runPlans writes the shards in todo. Workers decode in any order; the
// writer takes results strictly in sequence, and a semaphore of window
// tokens keeps the dispatcher from running more than window results ahead
// of the writer, which bounds memory.
func runPlans(ctx context.Context, ds *imagenet.Dataset, opt Options, split string, todo, done []*shardPlan, guard int, rep *Report) error {
	total := 0
	for _, p := range todo {
		total += len(p.items)
	}
	resumed := 0
	for _, p := range done {
		resumed += len(p.items)
	}
	if opt.Progress != nil {
		opt.Progress(Progress{Split: split, Total: total, ResumedDone: resumed})
	}
	if total == 0 && len(todo) == 0 {
		return nil
	}
	window := 8 * opt.Workers
	g, ctx := errgroup.WithContext(ctx)
	jobs := make(chan job, opt.Workers)
	results := make(chan *result, window)
	tokens := make(chan struct{}, window)

	g.Go(func() error {
		defer close(jobs)
		seq := 0
		for _, p := range todo {
			if p.key == "" && len(p.items) > 0 {
				p.key = p.planKey(ds, &opt) // the writer reads it after a result of p
			}
			for i := range p.items {
				select {
				case tokens <- struct{}{}:
				case <-ctx.Done():
					return ctx.Err()
				}
				select {
				case jobs <- job{seq: seq, plan: p, pos: i}:
				case <-ctx.Done():
					return ctx.Err()
				}
				seq++
			}
		}
		return nil
	})
	workers, wctx := errgroup.WithContext(ctx)
	for w := 0; w < opt.Workers; w++ {
		workers.Go(func() error { return work(wctx, ds, opt, jobs, results) })
	}
	g.Go(func() error {
		err := workers.Wait()
		close(results)
		return err
	})
	g.Go(func() error {
		return write(ctx, ds, opt, split, todo, results, tokens, total, resumed, guard, rep)
	})
	return g.Wait()
}

// bigFile is the size from which a worker gives back its read buffer
// after the file instead of keeping it for the next one.
const bigFile = 32 << 20

func work(ctx context.Context, ds *imagenet.Dataset, opt Options, jobs <-chan job, results chan<- *result) error {
	dec := imageio.NewDecoder()
	defer dec.Close()
	enc, err := shards.NewEncoder(opt.Codec)
	if err != nil {
		return err
	}
	defer enc.Close()
	pix := make([]byte, opt.Size*opt.Size*3)
	var buf []byte
	for j := range jobs {
		it := j.plan.items[j.pos]
		r := &result{seq: j.seq}
		var err error
		if len(it.Name) > shards.MaxNameLen {
			// A PAX member's name has no limit; a record's has. Skipped
			// like any file that cannot be a record: before, the writer
			// refused it and stopped the run, at the same place each time.
			r.skip = &Skip{Split: j.plan.split, Path: it.Path, Name: it.Name,
				Reason: fmt.Sprintf("a name of %d bytes: a shard record's name holds at most %d", len(it.Name), shards.MaxNameLen)}
		} else if buf, err = ds.ReadItem(it, buf); errors.Is(err, imagenet.ErrTooLarge) {
			// Its size, not a failure that may pass: not read again.
			r.skip = &Skip{Split: j.plan.split, Path: it.Path, Name: it.Name, Reason: err.Error()}
		} else if err != nil {
			r.skip = &Skip{Split: j.plan.split, Path: it.Path, Name: it.Name, Reason: readReason + err.Error()}
		} else if err = dec.PreprocessContext(ctx, buf, opt.Size, pix); err != nil {
			var fe *imageio.FormatError
			var ue *imageio.UnsupportedError
			if !errors.As(err, &fe) && !errors.As(err, &ue) {
				// Not a property of the file: stop rather than skip.
				return fmt.Errorf("%s: %w", it.Path, err)
			}
			r.skip = &Skip{Split: j.plan.split, Path: it.Path, Name: it.Name, Reason: err.Error()}
		} else {
			if w := dec.Warning(); w != "" {
				r.damaged = &Skip{Split: j.plan.split, Path: it.Path, Name: it.Name, Reason: "decoded past damage: " + w}
			}
			if j.plan.split == "train" {
				r.acc.Add(pix)
			}
			r.payload, err = enc.Encode(nil, pix, opt.Size, opt.Size)
			if err != nil {
				return err
			}
			r.rec = shards.Record{ID: j.plan.ids[j.pos], Label: int32(it.Label), Name: it.Name, Codec: opt.Codec,
				W: opt.Size, H: opt.Size, Channels: 3, Payload: r.payload}
		}
		if cap(buf) >= bigFile {
			// A 300 MB BMP's bytes, kept for the next file, would sit
			// outside the decode budget for the rest of the run.
			buf = nil
		}
		select {
		case results <- r:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// write seals the shards of todo in order from the workers' results. With
// guard > 0 (the split's records already in Out), a first shard whose
// every image was skipped is not sealed: the run stops with ErrAllSkipped
// before it replaces anything.
func write(ctx context.Context, ds *imagenet.Dataset, opt Options, split string, todo []*shardPlan, results <-chan *result, tokens <-chan struct{}, total, resumed, guard int, rep *Report) error {
	pending := map[int]*result{}
	next := 0
	pi, pos := 0, 0
	var w *shards.Writer
	var sc *sidecar
	start := time.Now()
	handled, skipped := 0, 0
	defer func() {
		if w != nil {
			w.Abort()
		}
	}()
	open := func(p *shardPlan) error {
		if w != nil {
			return nil
		}
		// A stopped run begins no shard (nor its mark): the workers may
		// still hand in results decoded after the stop.
		if err := ctx.Err(); err != nil {
			return err
		}
		if opt.mark != nil {
			if err := opt.mark(); err != nil {
				return err
			}
		}
		var err error
		if w, err = shards.Create(filepath.Join(opt.Out, p.file())); err != nil {
			return err
		}
		// A plan with items is read after one of its results, so after
		// the dispatcher's write; one without has no result to order the
		// read (nor a stamp to take), and the dispatcher leaves its key.
		var key string
		if len(p.items) == 0 {
			key = p.planKey(ds, &opt)
		} else {
			key = p.key
		}
		sc = &sidecar{Plan: key, Skipped: []Skip{}}
		if split == "train" {
			sc.Stats = &stats.Accumulator{}
		}
		return nil
	}
	// A shard is sealed as soon as its last item is handled; one whose
	// items were all skipped is sealed empty, keeping the numbering fixed.
	advance := func() error {
		for pi < len(todo) && pos == len(todo[pi].items) {
			p := todo[pi]
			if err := open(p); err != nil {
				return err
			}
			// One file alone in its shard (a split's last shard of one
			// image, --shard-size 1) says nothing of the source as a
			// whole: it is skipped, as any one bad file is.
			if pi == 0 && guard > 0 && len(p.items) > 1 && len(sc.Skipped) == len(p.items) && !wasEmpty(opt.Out, p) {
				s := sc.Skipped[0]
				return &allSkippedError{skipped: slices.Clone(sc.Skipped), msg: fmt.Sprintf("%v: all %d images of %s (%s: %s%s); stopped before replacing any of the %d %s records already in %s: look at the source, or pass --overwrite to replace them anyway",
					ErrAllSkipped, len(p.items), p.file(), cli.Name(s.Path), s.Reason, ", …", guard, split, opt.Out)}
			}
			if opt.unlist != nil {
				if err := opt.unlist(split); err != nil {
					return err
				}
			}
			info, err := w.Close()
			w = nil
			if err != nil {
				return err
			}
			rep.Written[split] += info.Records // what a failed run's report gives
			sc.Info = info
			b, _ := json.Marshal(sc)
			if err := writeOwn(sidecarPath(opt.Out, p), b); err != nil {
				return err
			}
			pi, pos = pi+1, 0
		}
		return nil
	}
	if err := advance(); err != nil {
		return err
	}
	for r := range results {
		pending[r.seq] = r
		for {
			r, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			p := todo[pi]
			if err := open(p); err != nil {
				return err
			}
			if r.skip != nil {
				sc.Skipped = append(sc.Skipped, *r.skip)
				skipped++
			} else {
				if r.damaged != nil {
					sc.Damaged = append(sc.Damaged, *r.damaged)
				}
				if err := w.Append(&r.rec); err != nil {
					return err
				}
				if sc.Stats != nil {
					sc.Stats.Merge(&r.acc)
				}
			}
			handled++
			rep.ProcessedRun++
			<-tokens
			pos++
			if err := advance(); err != nil {
				return err
			}
			if opt.Progress != nil {
				opt.Progress(Progress{Split: split, Done: handled, Total: total, Skipped: skipped, ResumedDone: resumed, Elapsed: time.Since(start)})
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if pi != len(todo) {
		return fmt.Errorf("ingest: %s stopped after %d of %d shards", split, pi, len(todo))
	}
	return nil
}
