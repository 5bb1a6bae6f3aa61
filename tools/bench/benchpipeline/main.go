// Command benchpipeline is `just bench-pipeline`: it measures the input
// pipeline (shards → augmented uint8 batches) on one core and on all
// cores, shows where each stage spends its time, compares the one-core
// rate with what the codec's entropy stage (zstd, or Huffman for
// grad-huff) and memcpy alone could do with the
// same records, checks that both runs deliver the same batches (by
// digest), and prints the shuffle buffer's quality on a simulated
// ImageNet-sized split beside a true global shuffle.
//
// With no --shards it builds its input: the real ImageNet sample, ingested
// at 256 px into a temporary directory, when present; otherwise the demo
// shards (demo/shards, from `just demo`).
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/testdata"
	"github.com/alexnet-repro/alexnet/pkg/imagenet"
	"github.com/alexnet-repro/alexnet/pkg/ingest"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/shards"
	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

func main() {
	benchstat.Main("benchpipeline", run)
}

// minCeilingTime is the shortest --ceiling-time: long enough for a
// ceiling loop to decode a 256-px record many times.
const minCeilingTime = 10 * time.Millisecond

// Goals the report checks against.
const (
	goalPerCore      = 3000 // augmented crops/s on one core
	goalOfCeiling    = 0.80 // of the entropy-decode-only rate
	goalScalingShare = 0.80 // of linear, taken as "near-linear"
)

type runResult struct {
	Label        string  `json:"label"`
	Decoders     int     `json:"decoders"`
	Readers      int     `json:"readers"`
	Procs        int     `json:"gomaxprocs"`
	Batches      int     `json:"batches_timed"`
	Images       int     `json:"images_timed"`
	Seconds      float64 `json:"seconds"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	ImgPerSec    float64 `json:"img_per_s"`
	ImgPerCPUSec float64 `json:"img_per_cpu_s"`
	CoresUsed    float64 `json:"cores_used"` // CPU seconds per second: below Procs when other work shares the machine
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	// InflateSeconds is the decode workers' time in the codec's entropy
	// stage (zstd, or Huffman for grad-huff) during the timed batches, and
	// InflateShare that over CPUSeconds: the
	// decompress-only ceiling measured inside the run itself, immune to
	// the machine's speed drifting between two measurements.
	InflateSeconds float64                 `json:"inflate_s"`
	InflateShare   float64                 `json:"inflate_share_of_cpu"`
	Stages         []pipeline.StageMetrics `json:"stages"`
	OpenShards     int                     `json:"open_shards"`
	metrics        pipeline.Metrics
}

type ceilings struct {
	InflateOnly float64 `json:"inflate_only_img_per_s"`
	FullDecode  float64 `json:"record_decode_img_per_s"`
	Memcpy      float64 `json:"memcpy_img_per_s"`
}

// oneCoreFigures is one one-core run and the ceilings measured right
// after it on the same CPU.
type oneCoreFigures struct {
	Round            int      `json:"round"`
	CPU              int      `json:"cpu"` // -1: not pinned
	OneImgPerCPUSec  float64  `json:"one_core_img_per_cpu_s"`
	Ceilings         ceilings `json:"ceilings_one_core"`
	OfInflateCeiling float64  `json:"ours_over_inflate_ceiling"`
	InflateShare     float64  `json:"inflate_share_of_cpu"`
}

// allCoresFigures is a round's all-cores run, and its rate over the sum
// of what the round's one-core runs did on each core.
type allCoresFigures struct {
	Round        int     `json:"round"`
	AllImgPerSec float64 `json:"all_cores_img_per_s"`
	Scaling      float64 `json:"scaling_of_linear"`
}

type goal struct {
	Goal string  `json:"goal"`
	Got  float64 `json:"got"`
	Want float64 `json:"want"`
	Met  bool    `json:"met"`
}

type report struct {
	Input          string  `json:"input"`
	Codec          string  `json:"codec"`
	Dir            string  `json:"dir"`
	Records        int     `json:"records"`
	Shards         int     `json:"shards"`
	Width          int     `json:"width"`
	Height         int     `json:"height"`
	BytesPerRecord float64 `json:"bytes_per_record"`
	Batch          int     `json:"batch"`
	Crop           int     `json:"crop"`
	Batches        int     `json:"batches"`
	Cores          int     `json:"cores"`
	// Warning is set when the run was too short for its figures to mean
	// much (work done before the timer started weighs in).
	Warning string    `json:"warning,omitempty"`
	LoadAvg string    `json:"load_average_before"`
	One     runResult `json:"one_core"`
	All     runResult `json:"all_cores"`
	Scaling float64   `json:"scaling_of_linear"`
	// ScalingPerCPU is the all-cores run's images per CPU-second over the
	// one-core run's: 1 means no cost from parallelism, whatever share of
	// the machine the runs got.
	ScalingPerCPU    float64  `json:"scaling_per_cpu_second"`
	Ceilings         ceilings `json:"ceilings_one_core"`
	OfInflateCeiling float64  `json:"ours_over_inflate_ceiling"`
	OfDecode         float64  `json:"ours_over_record_decode"`
	Digest           string   `json:"digest"`
	DigestAll        string   `json:"digest_all_cores"`
	DigestsMatch     bool     `json:"digests_match"`
	Goals            []goal   `json:"goals"`
	// OneCore and AllCores hold every run's figures; the ones above are
	// medians of them, each ratio taken between measurements made back to
	// back on the same CPU, so that the drifts of a shared machine fall on
	// both sides of it.
	OneCore  []oneCoreFigures  `json:"one_core_runs"`
	AllCores []allCoresFigures `json:"all_cores_runs"`
	Quality  []qualityRow      `json:"shuffle_quality"`
	// Reference is PyTorch's DataLoader doing the same job from JPEGs.
	Reference *reference `json:"pytorch_dataloader,omitempty"`
}

// profileStop ends the CPU profile, when there is one, after the timed runs.
var profileStop = func() {}

func run(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlags("benchpipeline", stdout, stderr, "Usage: benchpipeline [flags]\n\nExamples:\n  just bench-pipeline\n  just bench-pipeline --shards demo/shards --batches 200 --json\n\nExit codes: 0 done, 1 failed (or the report could not be written), 2 usage, 3 ours alone: the reference did not run (the report says why).\n\nFlags:\n")
	dir := fs.String("shards", "", "shard directory (with meta.json) to read; default: ingest the ImageNet sample, else demo/shards")
	batches := fs.Int("batches", 30, "batches per run (the sample's 200 images make 2 an epoch, so runs span many epochs)")
	rounds := fs.Int("rounds", 5, "rounds of (one-core run, ceilings, all-cores run); the report gives medians")
	batch := fs.Int("batch", 128, "images per batch")
	crop := fs.Int("crop", 0, "crop side; 0 is 7/8 of the shards' side (224 from 256)")
	workers := fs.Int("workers", runtime.NumCPU(), "decode workers (and GOMAXPROCS) for the all-cores run")
	seed := fs.Uint64("seed", 1, "pipeline seed")
	codecName := fs.String("codec", "grad-huff", "codec for the input this tool ingests (not for --shards): grad-huff, grad-zstd or zstd")
	minTime := fs.Duration("ceiling-time", 500*time.Millisecond, "how long each single-core ceiling loop runs, per round")
	quality := fs.Bool("quality", true, "print the shuffle quality of a simulated ImageNet-sized split")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	pin := fs.Bool("pin", true, "pin each one-core run and its ceilings to one CPU, taking up to 4 CPUs in turn each round")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed runs to this file")
	refOn := fs.Bool("reference", true, "run PyTorch's DataLoader over the same images as JPEGs in every round, beside ours")
	python := fs.String("python", "/usr/bin/python3", "Python for the reference (torch, PIL and numpy: Debian's python3-torch, python3-pil)")
	refImages := fs.String("reference-images", "", "JPEGs (<wnid>_<name>.JPEG) for the reference; default: the ImageNet sample when this tool ingests it")
	refScriptPath := fs.String("reference-script", refScript(), "tools/bench/torch_loader.py (the default is this checkout's)")
	allocChoice := fs.String("reference-alloc", "glibc-thp", "the reference's allocator: glibc-thp (glibc on huge pages, its best here), system (glibc as it comes) or jemalloc (purging off)")
	refBatches := fs.Int("reference-batches", 20, "timed reference batches from resized JPEGs (from the original JPEGs: 3/10 of it)")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	if *batches < 2 || *batch <= 0 || *workers <= 0 || *rounds < 1 || *refBatches < 1 {
		fmt.Fprintln(stderr, "benchpipeline: --batches must be at least 2 (the first is a warm-up), --batch, --workers, --rounds and --reference-batches positive")
		return 2
	}
	log := func(format string, a ...any) { fmt.Fprintf(stderr, "benchpipeline: "+format+"\n", a...) }
	// One of 0 or less runs no ceiling loop, rating it 0 and every ratio
	// against it infinite (a goal "met"; --json cannot encode it); one of
	// a few microseconds times a handful of decodes, no figure either.
	if *minTime < minCeilingTime {
		log("--ceiling-time %v: want at least %v (each ceiling loop runs that long per round)", *minTime, minCeilingTime)
		return 2
	}
	if *crop < 0 {
		log("--crop %d: want 0 (7/8 of the shards' side) or a side up to the shards'", *crop)
		return 2
	}
	if err := cli.Missing("--shards", *dir); err != nil {
		log("%v", err)
		return 2
	}
	codec, err := shards.ParseCodec(*codecName)
	if err != nil {
		log("%v", err)
		return 2
	}
	rep := report{Batches: *batches, Batch: *batch, Cores: runtime.NumCPU(), LoadAvg: loadAvg()}
	if *batches < minSteadyBatches {
		// The decoders run ahead of the timer by up to a batch, and the
		// stage clocks count records begun before it: over a few batches
		// that edge gives scaling and shares above 100%.
		rep.Warning = fmt.Sprintf("--batches %d is too few for steady figures (work begun before the timer weighs in; scaling and shares can exceed 100%%): use %d or more", *batches, minSteadyBatches)
		log("%s", rep.Warning)
	}

	fromSample := false
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "benchpipeline")
		if err != nil {
			log("%v", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		d, what, err := buildInput(tmp, codec, log)
		if err != nil {
			log("%v", err)
			return 1
		}
		*dir, rep.Input = d, what
		fromSample = d != filepath.Join(testdata.RepoRoot(), "demo", "shards")
	} else {
		rep.Input = "--shards " + *dir
	}
	rep.Dir = *dir
	meta, err := shards.ReadMeta(*dir)
	if errors.Is(err, shards.ErrNoDir) {
		log("%v", err)
		return 2
	}
	if err != nil {
		log("%v", err)
		return 1
	}
	if rep.Codec, err = firstCodec(*dir, meta); err != nil {
		log("%v", err)
		return 1
	}
	split := meta.Splits["train"]
	if split.Records == 0 {
		log("%s has no train split", *dir)
		return 1
	}
	rep.Records, rep.Shards, rep.Width, rep.Height = split.Records, len(split.Shards), meta.Width, meta.Height
	if split.Records < *batch {
		w := fmt.Sprintf("the train split has %d records, fewer than one --batch of %d: every batch is short, so per-batch figures are not those of %d-image batches", split.Records, *batch, *batch)
		rep.Warning = strings.TrimPrefix(rep.Warning+"; "+w, "; ")
		log("%s", w)
	}
	var bytes int64
	for _, sh := range split.Shards {
		bytes += sh.Bytes
	}
	rep.BytesPerRecord = float64(bytes) / float64(split.Records)
	log("input: %s: %d records in %d shards, %d×%d, %.0f KB a record (%.2f of raw)", rep.Input, rep.Records, rep.Shards,
		rep.Width, rep.Height, rep.BytesPerRecord/1e3, rep.BytesPerRecord/float64(rep.Width*rep.Height*3))

	cropSide := *crop
	if cropSide == 0 {
		cropSide = rep.Width * 7 / 8
	}
	if side := min(rep.Width, rep.Height); cropSide > side {
		log("--crop %d: want at most %d, the shards' side", cropSide, side)
		return 2
	}
	var refCfg *refConfig
	if *refOn {
		alloc, note, err := benchstat.ReferenceAllocator(*allocChoice)
		if err != nil {
			log("--reference-alloc: %v", err)
			return 2
		}
		if note != "" {
			log("warning: %s", note)
		}
		rep.Reference = &reference{Python: *python, Allocator: alloc.Name, AllocNote: note}
		images := *refImages
		if images == "" && fromSample {
			images = testdata.ImageNetSampleDir()
		}
		switch {
		case images == "":
			rep.Reference.Skipped = "it needs the JPEGs the shards were made from: the ImageNet sample (when this tool ingests it) or --reference-images DIR"
		case rep.Width != rep.Height:
			rep.Reference.Skipped = fmt.Sprintf("the shards are %d×%d, not square", rep.Width, rep.Height)
		default:
			rep.Reference.Skipped = refMismatch(*dir, meta, images)
			if rep.Reference.Skipped == "" {
				rep.Reference.Skipped = refAvailable(*python)
			}
		}
		if rep.Reference.Skipped != "" {
			log("PyTorch DataLoader reference skipped: %s", rep.Reference.Skipped)
		} else {
			cache, err := os.MkdirTemp("", "benchpipeline-ref")
			if err != nil {
				log("%v", err)
				return 1
			}
			defer os.RemoveAll(cache)
			refCfg = &refConfig{Python: *python, Alloc: alloc, Script: *refScriptPath, Images: images, Meta: filepath.Join(*dir, shards.MetaFile),
				Cache: cache, Batch: *batch, Size: rep.Width, Crop: cropSide, Seed: *seed,
				Batches: map[string]int{refResized: *refBatches, refOriginal: max(1, *refBatches*3/10)}}
		}
	}
	// refFailed stops the reference after an error, which the report shows
	// instead of its figures: ours are still measured.
	refFailed := func(err error) {
		log("PyTorch DataLoader reference failed: %v", err)
		rep.Reference.Skipped, rep.Reference.Runs, refCfg = "failed: "+err.Error(), nil, nil
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			log("%v", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log("%v", err)
			return 1
		}
		stop := pprof.StopCPUProfile
		defer func() { stop() }()
		profileStop = func() { stop(); stop = func() {} }
	}

	base := pipeline.Options{Batch: *batch, Crop: *crop, Seed: *seed, Partial: pipeline.PartialKeep}
	oneCore := base
	oneCore.Decoders, oneCore.Readers = 1, 1
	allCores := base
	allCores.Decoders = *workers

	var ones, alls []runResult
	// A shared VM's vCPUs can run at different speeds: each round measures
	// the one-core rate on several of them (all, up to 4), and linear
	// scaling is the sum of those rates.
	cpus := []int{-1}
	if *pin {
		cpus = spread(runtime.NumCPU(), 4)
	}
	for r := range *rounds {
		log("round %d of %d: on each of CPUs %v %d batches with 1 decode worker and the ceilings (%v each); then %d batches with %d workers on %d cores",
			r+1, *rounds, cpus, *batches, *minTime, *batches, *workers, *workers)
		sum := 0.0
		for _, cpu := range cpus {
			restore := func() {}
			if cpu >= 0 {
				if restore, err = pinTo(cpu); err != nil {
					log("cannot pin to CPU %d (%v): the one-core figures may mix two cores' speeds", cpu, err)
				}
			}
			one, err := timedRun(*dir, oneCore, *batches, 1)
			if err != nil {
				restore()
				log("%v", err)
				return 1
			}
			// The ceilings' records are loaded afresh each time and
			// dropped before the next run, so that no run's peak RSS
			// counts them.
			c, err := measureCeilings(*dir, meta, *minTime)
			restore()
			if err != nil {
				log("%v", err)
				return 1
			}
			if refCfg != nil && cpu == cpus[0] {
				// On the same CPU, right after ours and its ceilings.
				if err := measureRef(*refCfg, rep.Reference, r+1, 0, cpu, one.ImgPerCPUSec); err != nil {
					refFailed(err)
				}
			}
			ones = append(ones, one)
			sum += one.ImgPerSec
			rep.OneCore = append(rep.OneCore, oneCoreFigures{Round: r + 1, CPU: cpu,
				OneImgPerCPUSec: one.ImgPerCPUSec, Ceilings: c, OfInflateCeiling: one.ImgPerCPUSec / c.InflateOnly, InflateShare: one.InflateShare})
		}
		all, err := timedRun(*dir, allCores, *batches, *workers)
		if err != nil {
			log("%v", err)
			return 1
		}
		if refCfg != nil {
			if err := measureRef(*refCfg, rep.Reference, r+1, *workers, -1, all.ImgPerSec); err != nil {
				refFailed(err)
			}
		}
		alls = append(alls, all)
		rep.AllCores = append(rep.AllCores, allCoresFigures{Round: r + 1, AllImgPerSec: all.ImgPerSec,
			Scaling: all.ImgPerSec / (sum / float64(len(cpus)) * float64(*workers))})
	}
	rep.One = medianRun(ones, func(r runResult) float64 { return r.ImgPerCPUSec })
	rep.One.Label = "1 worker, 1 core"
	rep.All = medianRun(alls, func(r runResult) float64 { return r.ImgPerSec })
	rep.All.Label = fmt.Sprintf("%d workers, %d cores", *workers, *workers)
	med := func(f func(oneCoreFigures) float64) float64 {
		v := make([]float64, len(rep.OneCore))
		for i, r := range rep.OneCore {
			v[i] = f(r)
		}
		return benchstat.Median(v)
	}
	rep.Ceilings = ceilings{
		InflateOnly: med(func(r oneCoreFigures) float64 { return r.Ceilings.InflateOnly }),
		FullDecode:  med(func(r oneCoreFigures) float64 { return r.Ceilings.FullDecode }),
		Memcpy:      med(func(r oneCoreFigures) float64 { return r.Ceilings.Memcpy }),
	}
	rep.OfInflateCeiling = med(func(r oneCoreFigures) float64 { return r.OfInflateCeiling })
	rep.OfDecode = med(func(r oneCoreFigures) float64 { return r.OneImgPerCPUSec / r.Ceilings.FullDecode })
	scal := make([]float64, len(rep.AllCores))
	for i, a := range rep.AllCores {
		scal[i] = a.Scaling
	}
	rep.Scaling = benchstat.Median(scal)
	rep.ScalingPerCPU = rep.All.ImgPerCPUSec / rep.One.ImgPerCPUSec
	if rep.Reference != nil {
		rep.Reference.summarise()
	}

	profileStop()
	log("digesting the batch sequence of both runs (untimed: the digest costs the consumer CPU)")
	var cropUsed int
	if rep.Digest, cropUsed, err = digestRun(*dir, oneCore, *batches, 1); err != nil {
		log("%v", err)
		return 1
	}
	if rep.DigestAll, _, err = digestRun(*dir, allCores, *batches, *workers); err != nil {
		log("%v", err)
		return 1
	}
	rep.Crop = cropUsed
	rep.DigestsMatch = rep.Digest == rep.DigestAll

	rep.Goals = []goal{
		{"augmented crops/s per core", rep.One.ImgPerCPUSec, goalPerCore, rep.One.ImgPerCPUSec >= goalPerCore},
		{"share of the decompress-only ceiling", rep.OfInflateCeiling, goalOfCeiling, rep.OfInflateCeiling >= goalOfCeiling},
		{"scaling, share of linear", rep.Scaling, goalScalingShare, rep.Scaling >= goalScalingShare},
	}
	if *quality {
		log("shuffle quality of a simulated ImageNet train split")
		rep.Quality = simulatedQuality(*seed, *batch)
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			log("%v", err)
			return 1
		}
	} else {
		printReport(stdout, &rep)
	}
	if !rep.DigestsMatch {
		log("the runs delivered different batches: the pipeline is not deterministic")
		return 1
	}
	if rep.Reference != nil && rep.Reference.Skipped != "" {
		return benchstat.NoReference(stderr, "benchpipeline", rep.Reference.Skipped, "--reference=false")
	}
	return 0
}

// buildInput ingests the ImageNet sample into tmp, or falls back to the
// demo shards, and says which.
func buildInput(tmp string, codec shards.Codec, log func(string, ...any)) (dir, what string, err error) {
	sample := testdata.ImageNetSampleDir()
	files, _ := filepath.Glob(filepath.Join(sample, "*.JPEG"))
	if len(files) > 0 {
		tree := filepath.Join(tmp, "tree")
		for _, f := range files {
			wnid, _, ok := strings.Cut(filepath.Base(f), "_")
			if !ok {
				continue
			}
			d := filepath.Join(tree, "train", wnid)
			if err := os.MkdirAll(d, 0o755); err != nil {
				return "", "", err
			}
			if err := os.Symlink(f, filepath.Join(d, filepath.Base(f))); err != nil {
				return "", "", err
			}
		}
		ds, err := imagenet.Open(tree, imagenet.Options{})
		if err != nil {
			return "", "", err
		}
		defer ds.Close()
		out := filepath.Join(tmp, "shards")
		log("ingesting the ImageNet sample (%d JPEGs in %s) at 256 px", len(files), sample)
		// Shards of 50 give the sample's 200 records 4 shards, so the
		// shard cache and permutation have something to do.
		if _, err := ingest.Run(context.Background(), ds, ingest.Options{Out: out, Size: 256, Seed: 1, ShardSize: 50,
			Workers: runtime.NumCPU(), Codec: codec, Splits: []string{"train"}}); err != nil {
			return "", "", err
		}
		return out, fmt.Sprintf("the real ImageNet sample (%d photos, ingested at 256 px with %v)", len(files), codec), nil
	}
	demo := filepath.Join(testdata.RepoRoot(), "demo", "shards")
	if _, err := os.Stat(filepath.Join(demo, shards.MetaFile)); err == nil {
		return demo, "the demo shards (Fashion-MNIST: small, flat synthetic-looking images that compress and decode unlike photos)", nil
	}
	return "", "", fmt.Errorf("no input: the ImageNet sample is not at %s (set IMAGENET_SAMPLE) and %s does not exist (run `just demo`); or pass --shards DIR", sample, demo)
}

// firstCodec is the codec of the first train record: what the ceilings
// measure, whatever meta.json says (hand-made shards may not say).
func firstCodec(dir string, meta *shards.Meta) (string, error) {
	paths := meta.ShardPaths(dir, "train")
	if len(paths) == 0 {
		return "", fmt.Errorf("%s has no train shards", dir)
	}
	r, err := shards.Open(paths[0])
	if err != nil {
		return "", err
	}
	defer r.Close()
	if r.Len() == 0 {
		return meta.Ingest.Codec, nil
	}
	var rec shards.Record
	if _, err := r.ReadRecord(0, &rec, nil); err != nil {
		return "", err
	}
	return rec.Codec.String(), nil
}

// entropyStage names a codec's entropy stage, the decompress-only ceiling.
func entropyStage(codec string) string {
	if codec == shards.CodecGradHuff.String() {
		return "Huffman"
	}
	return "zstd"
}

// spread picks up to k of CPUs 0..n−1, evenly spaced, the last always in.
func spread(n, k int) []int {
	k = min(n, k)
	out := make([]int, k)
	for i := range out {
		out[i] = n - 1 - i*n/k
	}
	return out
}

// medianRun is the run whose key is the median (the lower middle one when
// the count is even), so that its stage metrics are a real run's.
func medianRun(runs []runResult, key func(runResult) float64) runResult {
	idx := make([]int, len(runs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(key(runs[a]), key(runs[b])) })
	return runs[idx[(len(idx)-1)/2]]
}

// timedRun runs the pipeline for n batches under GOMAXPROCS procs, timing
// all but the first (a warm-up that grows buffers and opens shards).
func timedRun(dir string, opt pipeline.Options, n, procs int) (runResult, error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	p, err := pipeline.New(context.Background(), dir, opt)
	if err != nil {
		return runResult{}, err
	}
	defer p.Close()
	res := runResult{Decoders: p.Options().Decoders, Readers: p.Options().Readers, Procs: procs}
	s, err := p.Next()
	if err != nil {
		return res, err
	}
	s.Release()
	m0 := p.Metrics()
	t0, c0 := time.Now(), benchstat.CPUTime()
	for range n - 1 {
		s, err := p.Next()
		if err != nil {
			return res, err
		}
		res.Images += s.N
		res.Batches++
		s.Release()
	}
	res.Seconds = time.Since(t0).Seconds()
	res.CPUSeconds = (benchstat.CPUTime() - c0).Seconds()
	res.ImgPerSec = float64(res.Images) / res.Seconds
	res.ImgPerCPUSec = float64(res.Images) / res.CPUSeconds
	res.CoresUsed = res.CPUSeconds / res.Seconds
	res.metrics = p.Metrics()
	res.InflateSeconds = (res.metrics.Inflate - m0.Inflate).Seconds()
	res.InflateShare = res.InflateSeconds / res.CPUSeconds
	res.Stages, res.OpenShards = res.metrics.Stages, res.metrics.OpenShards
	res.PeakRSSMB = peakRSS() / 1e6
	return res, p.Close()
}

// digestRun runs the same batches again and returns their digest and the
// crop side used.
func digestRun(dir string, opt pipeline.Options, n, procs int) (string, int, error) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	p, err := pipeline.New(context.Background(), dir, opt)
	if err != nil {
		return "", 0, err
	}
	defer p.Close()
	d := pipeline.NewDigest()
	for range n {
		s, err := p.Next()
		if err != nil {
			return "", 0, err
		}
		d.Add(s)
		s.Release()
	}
	return d.Sum(), p.Crop(), p.Close()
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux ≥ 4.0),
// so each run reports its own peak rather than ingest's.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is VmHWM in bytes, or 0 where /proc is missing.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb * 1024
		}
	}
	return 0
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// minSteadyBatches is the shortest run whose figures the bench stands by.
const minSteadyBatches = 10

func printReport(w io.Writer, r *report) {
	if r.Warning != "" {
		fmt.Fprintf(w, "WARNING: %s\n\n", r.Warning)
	}
	fmt.Fprintf(w, "input: %s\n  codec %s, %d records in %d shards at %d×%d, %.0f KB a record; batches of %d crops of %d, %d batches a run (first untimed)\n",
		r.Input, r.Codec, r.Records, r.Shards, r.Width, r.Height, r.BytesPerRecord/1e3, r.Batch, r.Crop, r.Batches)
	fmt.Fprintf(w, "  %s, each a one-core run and the one-core ceilings per CPU, then an all-cores run; figures are medians\n", cli.Count(len(r.AllCores), "round", "rounds"))
	fmt.Fprintf(w, "  load average before: %s on %d cores (other work on the machine makes the figures noisy)\n\n", r.LoadAvg, r.Cores)
	fmt.Fprintf(w, "%-22s %10s %12s %12s %11s %10s\n", "run", "img/s", "img/CPU-s", "img/s/core", "cores used", "peak RSS")
	for _, x := range []runResult{r.One, r.All} {
		fmt.Fprintf(w, "%-22s %10.0f %12.0f %12.0f %11.2f %7.0f MB\n", x.Label, x.ImgPerSec, x.ImgPerCPUSec, x.ImgPerSec/float64(x.Procs), x.CoresUsed, x.PeakRSSMB)
	}
	fmt.Fprintf(w, "scaling: %.0f%% of linear (median of the rounds, linear being the sum of each core's one-core rate); per CPU-second %.0f%% of the one-core run's\n",
		100*r.Scaling, 100*r.ScalingPerCPU)
	if r.All.CoresUsed < 0.9*float64(r.All.Procs) {
		fmt.Fprintf(w, "  (the all-cores run got %.2f of %d cores: other work shares the machine, so wall-clock scaling understates)\n", r.All.CoresUsed, r.All.Procs)
	}
	printRef(w, r)
	for _, x := range []runResult{r.One, r.All} {
		fmt.Fprintf(w, "\nstages, %s (busy / waiting for input / waiting on output, as shares of each stage's worker-time):\n", x.Label)
		x.metrics.Print(w)
	}
	c := r.Ceilings
	ent := entropyStage(r.Codec)
	fmt.Fprintf(w, "\none-core runs: img/CPU-s (ours / %s-only ceiling measured right after it on the same CPU):\n", ent)
	for _, x := range r.OneCore {
		fmt.Fprintf(w, "  round %d, CPU %2d: %6.0f  (%3.0f%% of %4.0f; %s in-run %3.0f%% of CPU)\n", x.Round, x.CPU, x.OneImgPerCPUSec, 100*x.OfInflateCeiling, x.Ceilings.InflateOnly, ent, 100*x.InflateShare)
	}
	fmt.Fprintf(w, "all-cores runs: img/s (share of the round's one-core rates summed over the cores):\n")
	for _, x := range r.AllCores {
		fmt.Fprintf(w, "  round %d: %6.0f  (%3.0f%%)\n", x.Round, x.AllImgPerSec, 100*x.Scaling)
	}
	fmt.Fprintf(w, "\nceilings on one core, the same records, per CPU-second (medians):\n")
	fmt.Fprintf(w, "  %-52s %8.0f img/CPU-s\n", ent+" decoding alone (Decoder.Inflate, no unfilter)", c.InflateOnly)
	fmt.Fprintf(w, "  %-52s %8.0f img/CPU-s\n", "record decode ("+ent+" + unfilter, shards.Decoder)", c.FullDecode)
	fmt.Fprintf(w, "  %-52s %8.0f img/CPU-s\n", fmt.Sprintf("memcpy of the %d×%d×3 raw bytes", r.Width, r.Height), c.Memcpy)
	fmt.Fprintf(w, "  ours (1 core, per CPU-second) / %s alone: %.0f%%; / record decode: %.0f%% (medians of the rounds' ratios)\n", ent, 100*r.OfInflateCeiling, 100*r.OfDecode)
	fmt.Fprintf(w, "  %s's share of the one-core run's own CPU time: %.0f%% (timed inside the run, where the read stage has\n", ent, 100*r.One.InflateShare)
	fmt.Fprintf(w, "  just brought each payload into cache; the ceiling above reads payloads from memory)\n")
	fmt.Fprintf(w, "\ngoals:\n")
	for _, g := range r.Goals {
		mark := "MISSED"
		if g.Met {
			mark = "met"
		}
		if g.Want < 2 {
			fmt.Fprintf(w, "  %-34s %6.0f%%  (goal ≥ %.0f%%)  %s\n", g.Goal, 100*g.Got, 100*g.Want, mark)
		} else {
			fmt.Fprintf(w, "  %-34s %7.0f  (goal ≥ %.0f)  %s\n", g.Goal, g.Got, g.Want, mark)
		}
	}
	same := "the same: deterministic"
	if !r.DigestsMatch {
		same = "DIFFERENT"
	}
	fmt.Fprintf(w, "\ndigest of the %d batches: 1 worker %s\n", r.Batches, r.Digest)
	fmt.Fprintf(w, "                           %d workers %s  (%s)\n", r.All.Decoders, r.DigestAll, same)
	if len(r.Quality) > 0 {
		printQuality(w, r.Quality)
	}
}
