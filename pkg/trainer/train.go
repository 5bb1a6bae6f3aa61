package trainer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alexnet-repro/alexnet/augment"
	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/dirlock"
	"github.com/alexnet-repro/alexnet/internal/errs"
	"github.com/alexnet-repro/alexnet/internal/regfile"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/blas"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/shards"
)

// Config is a training run's settings; the train command's flags.
type Config struct {
	Shards      string
	Model       string
	Init        string // "paper" (default) or "he"
	Epochs      int
	Batch       int
	Crop        int // 0: 7/8 of the shards' side, as 224 of 256
	LR          float64
	Momentum    float64
	WeightDecay float64
	// NoBiasDecay spares the biases weight decay, as the authors'
	// cuda-convnet did; the zero value decays them, as PyTorch's SGD does.
	NoBiasDecay bool
	// PaperDropout trains with the paper's dropout rather than the
	// inverted form (alexnet.Spec.PaperDropout).
	PaperDropout bool
	Schedule     string // "plateau" or "step:N"
	Patience     int
	Out          string
	Resume       bool
	Overwrite    bool // start afresh even where Out already holds a run's checkpoint
	Seed         uint64
	MaxSteps     int64 // stop (with a checkpoint) after this many steps in all; 0: no limit
	LogEvery     int
	CkptEvery    int // steps between checkpoints, besides every epoch's end; 0: epochs only
	Workers      int // pipeline decoders; 0: GOMAXPROCS
	Sigma        float32
	EvalBatch    int
	ShuffleBuf   int
	MaxValImages int // evaluate on at most this many validation images each epoch; 0: all
	// NewBackend builds the device backend; nil means the CPU's (NewCPU).
	NewBackend BackendFactory
	// Note is a line for the log once the settings have passed their
	// checks, before the model is built (the command's "no usable GPU,
	// training on the CPU"): in front of a mistake in the flags it would
	// be noise.
	Note string
}

// BackendFactory builds a backend for spec at a batch size with initial
// parameters; NewCPU is one, and the GPU backend provides another.
type BackendFactory func(spec alexnet.Spec, batch int, params map[string][]float32, seed uint64, mean, std [3]float32) (Backend, error)

// CheckpointFile is the run directory's latest checkpoint.
const CheckpointFile = "checkpoint.ckpt"

// PrevCheckpointFile is the checkpoint before the latest, kept (as a hard
// link, so no copy is written) each time a new one replaces it: when the
// latest is found damaged, a resume can go on from this one instead of
// from the start.
const PrevCheckpointFile = "checkpoint.prev.ckpt"

// Result summarises a run.
type Result struct {
	Steps   int64
	Epoch   int
	Top1Err float64
	Top5Err float64
	Seconds float64 // this process's time
	// RunSeconds is the run's wall time across resumes, as metrics.jsonl
	// counts it (the time between a stop and its resume left out).
	RunSeconds float64
	// Evaluated says whether Top1Err and Top5Err hold a validation pass
	// of this run: false when it stopped before its first epoch ended or
	// the shards have no validation split.
	Evaluated bool
	// ValStep is the step Top1Err and Top5Err were measured at: the last
	// epoch's end, which is before Steps when --max-steps stopped the run
	// within an epoch.
	ValStep int64
	// Unscored says a validation pass ran but had no labelled image to
	// score (a val split without labels), which is not "no pass".
	Unscored   bool
	Checkpoint string
	Stopped    string // why the run ended: "epochs", "max-steps"
}

// MarshalJSON writes a Result as `train --json` prints it: snake_case keys,
// as `--eval-only --json` and metrics.jsonl use, and the validation errors
// only when a validation pass measured them (a 0 there would read as a
// perfect model).
func (r Result) MarshalJSON() ([]byte, error) {
	out := struct {
		Stopped    string   `json:"stopped"`
		Steps      int64    `json:"steps"`
		Epochs     int      `json:"epochs"`
		Seconds    float64  `json:"seconds"`
		RunSeconds float64  `json:"run_seconds"`
		Evaluated  bool     `json:"evaluated"`
		Top1Err    *float64 `json:"top1_err,omitempty"`
		Top5Err    *float64 `json:"top5_err,omitempty"`
		ValStep    *int64   `json:"val_step,omitempty"`
		Checkpoint string   `json:"checkpoint"`
	}{Stopped: r.Stopped, Steps: r.Steps, Epochs: r.Epoch, Seconds: r.Seconds, RunSeconds: r.RunSeconds, Evaluated: r.Evaluated, Checkpoint: r.Checkpoint}
	if r.Evaluated {
		out.Top1Err, out.Top5Err, out.ValStep = &r.Top1Err, &r.Top5Err, &r.ValStep
	}
	return json.Marshal(out)
}

// climbsEarly reports whether the spec under the scheme ("" for its own)
// starts with an FC layer fed by a layer whose biases are 1, as the
// paper's fc6, fc7 and fc8 are: inputs of about 1 on every unit, so that
// one SGD step at a small batch raises the logits of the batch's classes
// by several units, and the next batch, of other classes, pays for it in
// loss.
func climbsEarly(spec alexnet.Spec, scheme string) bool {
	if scheme == "" {
		scheme = spec.InitScheme
	}
	if scheme != "paper" {
		return false
	}
	biased := false
	for _, l := range spec.Layers {
		switch {
		case l.Kind == alexnet.FC && biased:
			return true
		case l.HasParams():
			biased = l.BiasInit != 0
		}
	}
	return false
}

// MetricsFile is the run's log, one JSON object a line.
const MetricsFile = "metrics.jsonl"

// replacedFiles are a run's files that an --overwrite removes, the previous
// checkpoint first: a run killed in between leaves the latest, a whole
// run, not a previous one alone. metrics.jsonl is rewritten, not removed.
var replacedFiles = append([]string{PrevCheckpointFile, CheckpointFile, ClockFile, MetricsFile + ".bak"}, plotFiles...)

// plotFiles are the plots a run draws.
var plotFiles = []string{"loss.png", "error.png", "conv1-filters.png"}

// RestartAdvice says how to start again a run in dir that stopped before
// its first checkpoint: the same command, unless it left a log with lines
// or plots, which a new run there refuses without --overwrite.
func RestartAdvice(dir string) string {
	if LeftOutputs(dir) {
		return "run it again with --overwrite"
	}
	return "run the same command again"
}

// LeftOutputs reports whether dir holds a run's log with lines or plots,
// which a new run there refuses without --overwrite.
func LeftOutputs(dir string) bool { return len(earlierOutputs(dir)) > 0 }

// earlierOutputs lists the outputs of an earlier run in dir besides its
// checkpoints: a metrics.jsonl with lines, and plots.
func earlierOutputs(dir string) []string {
	var found []string
	for _, f := range append([]string{MetricsFile}, plotFiles...) {
		fi, err := os.Lstat(filepath.Join(dir, f))
		if err == nil && (f != MetricsFile || fi.Size() > 0 || !fi.Mode().IsRegular()) {
			found = append(found, f)
		}
	}
	return found
}

// ErrInterrupted marks a run stopped by a signal (a cancelled context)
// that left its folder as a resume expects: the state after its last step
// saved, or the last checkpoint as it was. A save that failed on the way
// out is not one.
var ErrInterrupted = errors.New("interrupted")

type interruptedError struct{ error }

func (e interruptedError) Is(target error) bool { return target == ErrInterrupted }
func (e interruptedError) Unwrap() error        { return e.error }

// saidError is a failure whose message already says what the run keeps
// and how to go on.
type saidError struct{ error }

func (e saidError) Unwrap() error { return e.error }

// ErrNonFinite marks a loss that became NaN or infinite.
var ErrNonFinite = errors.New("not finite")

// ErrRunExists marks a new run asked for where a run's checkpoint already
// is: the flags must say whether to continue it or to replace it, since a
// forgotten --resume would otherwise lose days of training.
var ErrRunExists = errors.New("the run directory already holds a run")

// ErrConfig marks settings that cannot make a run on these shards (a crop
// larger than their images, a batch larger than the split): found before
// anything in the run directory is touched.
var ErrConfig = errors.New("settings do not fit the shards")

// ErrBadOut marks an --out train must not write in as it is (a file of
// its own there is a symbolic link): the user's to fix, like ErrConfig,
// but no fault of the shards.
var ErrBadOut = errors.New("--out cannot be used")

// ErrResumeMismatch marks a --resume whose flags or shards differ from the
// checkpoint's in a way that would not continue the same run.
var ErrResumeMismatch = errors.New("does not match the checkpoint")

// mismatch is a --resume refusal: the message says what differs, and
// errors.Is finds ErrResumeMismatch in it without its text repeating that.
func mismatch(format string, a ...any) error {
	return errs.Mark(fmt.Errorf(format, a...), ErrResumeMismatch)
}

// ErrNoRun marks a --resume where --out holds no checkpoint to continue.
var ErrNoRun = errors.New("no run to resume")

// ClassListID names a class list by the hash of its WNIDs in order, so a
// checkpoint knows the classes its outputs mean.
func ClassListID(classes []shards.Class) string {
	h := sha256.New()
	for _, c := range classes {
		io.WriteString(h, c.WNID)
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// valImages says what a --max-val-images value validates on.
func valImages(n int) string {
	if n == 0 {
		return "every val image"
	}
	return fmt.Sprintf("at most %d val images", n)
}

// TrainSetID names the train split's shards by their files, record
// counts and checksums: what a checkpoint's epoch position and shuffle
// order index. The same images re-ingested byte-identically (ingest is
// deterministic) keep it; other images, or the same ones cut into other
// shards, change it.
func TrainSetID(sp shards.Split) string {
	h := sha256.New()
	for _, s := range sp.Shards {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", s.File, s.Records, s.CRC32C)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// cropFor is the crop a run takes: --crop, else 7/8 of the shards' side
// (224 of 256, the paper's), at least 1 px, since 0 means "the model's
// default" to alexnet.Build and would hide that tiny shards fit no model.
func cropFor(meta *shards.Meta, crop int) int {
	if crop > 0 {
		return crop
	}
	return max(meta.Width*7/8, 1)
}

// tooSmallHint says, for a model that does not fit a crop, the smallest
// crop it takes and the images that gives it, and the models that do fit
// the shards' side.
func tooSmallHint(model string, crop, side int) string {
	need := alexnet.MinInput(model)
	if need == 0 || crop >= need {
		return ""
	}
	hint := fmt.Sprintf(". %s needs crops of at least %d px", model, need)
	if need <= side {
		hint += fmt.Sprintf(" (--crop %d or more)", need)
	} else {
		// The default crop is 7/8 of the side.
		hint += fmt.Sprintf(": ingest at --size %d or more", (need*8+6)/7)
	}
	// The other models named are those that fit where this one does not:
	// at the crop given, when the shards hold the crop this one needs; at
	// the shards' default crop otherwise.
	limit, where := side*7/8, fmt.Sprintf("on these %d-px shards", side)
	if need <= side {
		limit, where = crop, fmt.Sprintf("at a %d-px crop", crop)
	}
	var fit []string
	for _, v := range alexnet.Variants() {
		if m := alexnet.MinInput(v); v != model && m > 0 && m <= limit {
			fit = append(fit, v)
		}
	}
	if len(fit) > 0 {
		hint += fmt.Sprintf("; %s, --model %s", where, strings.Join(fit, " or "))
	}
	return hint
}

// Train runs (or, with cfg.Resume, continues) a training run, logging to
// log. The CPU backend is used; the GPU backend plugs in through Backend.
func Train(ctx context.Context, cfg Config, log io.Writer) (*Result, error) {
	start := time.Now()
	ckPath := filepath.Join(cfg.Out, CheckpointFile)
	prevPath := filepath.Join(cfg.Out, PrevCheckpointFile)
	// A run kept in the shards folder works (it holds that folder's lock
	// as its run's), but is most likely a slip of the flags, and the run
	// goes with the shards when they are removed to ingest again.
	if sameDir(cfg.Shards, cfg.Out) {
		fmt.Fprintf(log, "train: note: --out %s is the shards folder: the run's checkpoint, log and plots are kept among the shards, and removing them to ingest again removes the run too\n", cfg.Out)
	}
	// A checkpoint that is a symbolic link would be written through:
	// into another run's folder, behind that run's lock, leaving its
	// metrics and previous checkpoint behind. Dangling, it would read as
	// no run at all.
	// The same holds for the log and the plots: a link planted in an
	// --out others can write in would have train replace what it points to.
	own := []string{ckPath, prevPath, filepath.Join(cfg.Out, ClockFile), filepath.Join(cfg.Out, MetricsFile), filepath.Join(cfg.Out, MetricsFile+".bak")}
	for _, f := range plotFiles {
		own = append(own, filepath.Join(cfg.Out, f))
	}
	for _, p := range own {
		if target, isLink := cli.LinkTarget(p); isLink {
			return nil, fmt.Errorf("%w: %s is a symbolic link (to %s): train writes its files in --out itself, and would write through the link; put the file itself there (a copy), or use another --out",
				ErrBadOut, p, cli.Name(target))
		}
	}
	if cfg.Resume {
		// Before the folder and its lock exist: a mistyped --out must not
		// be left behind as an empty run directory. And before the flags
		// are judged against the shards: the model and crop a resume
		// leaves out are the run's, and with no run there the defaults'
		// failings would hide that.
		if _, err := os.Stat(ckPath); errors.Is(err, fs.ErrNotExist) {
			// A run there that has not saved yet is the likelier story
			// than a run that never was: say so, not "leave out --resume"
			// (which that run's lock would then refuse).
			if err := dirlock.Probe(cfg.Out); err != nil {
				return nil, fmt.Errorf("--resume: %s holds no checkpoint yet, and %w", cfg.Out, err)
			}
			if h, ok, err := previousIntact(cfg.Out); ok {
				return nil, fmt.Errorf("--resume: %s: %w, but %s", ckPath, ErrNoRun, h)
			} else if err != nil {
				// The run's one checkpoint left is damaged: nothing to
				// continue, and "leave out --resume" would be refused
				// beside it.
				return nil, fmt.Errorf("--resume: %s: %w: the folder's only checkpoint cannot be used (%v); --overwrite in place of --resume starts a new run there, replacing it",
					ckPath, ErrNoRun, err)
			}
			// A run killed before its first checkpoint left its log: a
			// plain run would refuse that folder, so the advice is the
			// one that starts again there.
			if found := earlierOutputs(cfg.Out); len(found) > 0 {
				return nil, fmt.Errorf("--resume: %s: %w: the folder holds %s but no checkpoint (a run stopped before its first, or one whose checkpoints were removed); --overwrite in place of --resume starts a new run there, replacing them",
					ckPath, ErrNoRun, strings.Join(found, ", "))
			}
			return nil, fmt.Errorf("--resume: %s: %w (leave out --resume to start a run there)", ckPath, ErrNoRun)
		}
	}
	// An ingest rewriting the shards mid-run would stop it at the first
	// record that changed: the two refuse each other instead.
	// A run kept in its shards folder (--out = --shards) is guarded by
	// its own lock on that folder, which a shared one would contend with.
	if !sameDir(cfg.Shards, cfg.Out) {
		shardLock, err := dirlock.AcquireShared(cfg.Shards, "train", shards.MetaFile)
		if err != nil {
			return nil, err
		}
		defer shardLock.Release()
	}
	meta, err := shards.ReadMeta(cfg.Shards)
	if err != nil {
		return nil, err
	}
	// A run on a folder an ingest is midway through rewriting would train
	// without the split it unlisted: without validation, say, silently.
	if split := slices.Sorted(maps.Keys(meta.Unfinished)); len(split) > 0 {
		return nil, fmt.Errorf("%s/%s", cfg.Shards, meta.Missing(split[0]))
	}
	if meta.Stats == nil {
		return nil, fmt.Errorf("%s/meta.json has no train statistics: was the train split ingested?", cfg.Shards)
	}
	for c, sd := range meta.Stats.Std {
		if sd <= 0 {
			return nil, fmt.Errorf("%s/meta.json: channel %d of the train images has standard deviation %g: every pixel the same, and normalising would divide by zero", cfg.Shards, c, sd)
		}
	}
	crop := cropFor(meta, cfg.Crop)
	if cfg.Resume {
		// A resume's flags are judged against its run before the shards:
		// --model alexnet given to a small run would otherwise be told
		// its crop is too small, not that the run is another model's.
		// A newer build's checkpoint is refused as such, before its flags
		// are compared with a run this build cannot continue.
		h, err := ReadHeader(ckPath)
		if err == nil {
			err = h.CheckNeeds(true)
			if err != nil {
				err = fmt.Errorf("%s: %w", ckPath, err)
			}
		}
		if errors.Is(err, ErrNewerCheckpoint) {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		if err == nil {
			if err := resumeDiffers(h, cfg, ckPath, crop, len(meta.Classes)); err != nil {
				return nil, err
			}
		}
	}
	if crop > meta.Width || crop > meta.Height {
		return nil, fmt.Errorf("%w: --crop %d is larger than the shards' %d×%d images", ErrConfig, crop, meta.Width, meta.Height)
	}
	if n := meta.Splits["train"].Records; cfg.Batch > n {
		return nil, fmt.Errorf("%w: --batch %d is larger than the train split's %d images", ErrConfig, cfg.Batch, n)
	}
	spec, err := alexnet.Build(cfg.Model, len(meta.Classes), crop)
	if err != nil {
		// A model whose layers do not fit the crop is a flag that cannot
		// mean a run, as a crop larger than the images is.
		// The package's prefix reads as the model's name ("alexnet: small
		// at 8x8: ...").
		return nil, fmt.Errorf("%w: --model %s at a %d-px crop: %s%s", ErrConfig, cfg.Model, crop, strings.TrimPrefix(err.Error(), "alexnet: "), tooSmallHint(cfg.Model, crop, meta.Width))
	}
	// The paper's dropout on a model without dropout changes nothing; the
	// run is the inverted one's, whose checkpoint any build reads. (Said
	// with cfg.Note, once the settings have passed their checks: in front
	// of a refusal it would be noise.)
	noDropout := cfg.PaperDropout && !spec.HasDropout()
	if noDropout {
		cfg.PaperDropout = false
	}
	spec.PaperDropout = cfg.PaperDropout
	// A shard missing, cut short or from another ingest would stop the run
	// at the first batch or validation that reads it: after an --overwrite
	// has removed the old run. Each is found here, before --out is touched.
	for _, split := range []string{"train", "val"} {
		if err := pipeline.CheckShards(cfg.Shards, meta, split); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Shards, err)
		}
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	// Two runs in one folder would write one checkpoint through one
	// temporary name and interleave metrics.jsonl.
	lock, err := dirlock.Acquire(cfg.Out, "train")
	if err != nil {
		return nil, err
	}
	defer lock.Release()
	// Under the lock, no other run is writing here: temporary files are
	// what a killed run left (a checkpoint's can be hundreds of MB).
	clearTemps(cfg.Out)
	sched, err := ParseSchedule(cfg.Schedule, cfg.LR, cfg.Patience)
	if err != nil {
		return nil, err
	}
	var mean, pixelStd [3]float32
	for c := 0; c < 3; c++ {
		mean[c], pixelStd[c] = float32(meta.Stats.Mean[c]), float32(meta.Stats.Std[c])
	}
	std := spec.InputStdFor(cfg.Init, pixelStd)
	classList := ClassListID(meta.Classes)
	trainSet := TrainSetID(meta.Splits["train"])
	// "none" for shards without a val split: a checkpoint's empty field is
	// an older build's, which kept no record of either.
	valSet := "none"
	if len(meta.Splits["val"].Shards) > 0 {
		valSet = TrainSetID(meta.Splits["val"])
	}
	var ck *Checkpoint
	var params map[string][]float32
	if !cfg.Resume && !cfg.Overwrite {
		// The previous checkpoint alone is a run too: a new run must not
		// leave it beside its own checkpoints, for a later damage report
		// to offer.
		if _, err := os.Stat(ckPath); err == nil {
			return nil, fmt.Errorf("%w: %s exists; --resume continues that run, --overwrite starts a new one in its place", ErrRunExists, ckPath)
		}
		if _, err := os.Stat(prevPath); err == nil {
			if _, err := loadPrevious(cfg.Out); err != nil {
				return nil, fmt.Errorf("%w: %s holds a run's previous checkpoint without its latest, and it cannot be used (%v): --overwrite starts a new run in its place, or choose another --out",
					ErrRunExists, cfg.Out, err)
			}
			return nil, fmt.Errorf("%w: %s exists (a run's previous checkpoint, without its latest): move it to %s and --resume to continue that run, or --overwrite to start a new one in its place",
				ErrRunExists, prevPath, ckPath)
		}
		// A run whose checkpoints are gone (deleted for space, or a run
		// stopped before its first) still has its metrics and plots: a new
		// run would rewrite the metrics and leave plots it did not draw.
		if found := earlierOutputs(cfg.Out); len(found) > 0 {
			return nil, fmt.Errorf("%w: %s holds an earlier run's %s, without its checkpoints: --overwrite starts a new run in its place, or choose another --out",
				ErrRunExists, cfg.Out, strings.Join(found, ", "))
		}
	}
	if cfg.Resume {
		// Its own advice for the previous checkpoint: moved into place
		// and resumed, not given instead.
		if ck, err = loadFile(ckPath, ""); err != nil {
			return nil, fmt.Errorf("--resume: %w", withPrevious(err, cfg.Out))
		}
		if err := ck.CheckNeeds(true); err != nil {
			return nil, fmt.Errorf("--resume: %s: %w", ckPath, err)
		}
		// Only a resume reads the schedule (evaluation and predict do
		// not): a hand-made one is refused here, not an epoch later.
		if err := ck.Schedule.check(); err != nil {
			return nil, fmt.Errorf("--resume: %s: %w: schedule: %v", ckPath, ErrCheckpoint, err)
		}
		// Validation is pending only at an epoch's end, which the
		// position after it is the start of.
		if ck.ValPending && (ck.Position.Batch != 0 || ck.Position.Epoch < 1) {
			return nil, fmt.Errorf("--resume: %s: %w: its validation is pending at %+v, which is not an epoch's end", ckPath, ErrCheckpoint, ck.Position)
		}
		if err := resumeDiffers(ck, cfg, ckPath, crop, len(meta.Classes)); err != nil {
			return nil, err
		}
		// Its outputs mean its own classes; checkpoints from before these
		// fields were kept leave them empty and cannot be checked.
		if ck.ImageHW != 0 && ck.ImageHW != meta.Width {
			return nil, mismatch("--resume: %s was trained on %d-px images, %s holds %d-px ones", ckPath, ck.ImageHW, cfg.Shards, meta.Width)
		}
		if ck.ClassList != "" && ck.ClassList != classList {
			return nil, mismatch("--resume: %s was trained on another class list than %s/meta.json's", ckPath, cfg.Shards)
		}
		if ck.TrainSet != "" && ck.TrainSet != trainSet {
			// The same classes and image size, but other shards: the
			// checkpoint's position would skip or repeat images.
			tr := meta.Splits["train"]
			return nil, mismatch("--resume: %s was trained on other train shards than %s holds (%s, %s; their files, record counts or checksums differ), and its epoch position and shuffle order index those: resume with the shards it was trained on, or start a new run (--overwrite, or another --out)",
				ckPath, cfg.Shards, cli.Count(len(tr.Shards), "shard", "shards"), cli.Count(tr.Records, "image", "images"))
		}
		sched = ck.Schedule
		cfg.Init = ck.Init // the run's own, whatever --init says now
		std = spec.InputStdFor(cfg.Init, pixelStd)
		if ck.Mean != mean || ck.Std != std {
			// The weights were learnt on the checkpoint's input scale
			// (a run from before the paper's net was MeanOnly divides
			// by the std); it stays, as the checkpoint is what predict
			// and --eval-only read.
			fmt.Fprintf(log, "train: note: --resume continues with the checkpoint's input normalisation (mean %v, std %v), not %v, %v\n",
				ck.Mean, ck.Std, mean, std)
			mean, std = ck.Mean, ck.Std
		}
		if h := ck.Hyper; h != nil {
			// Like the learning rate, these continue as the run had them;
			// a changed value is named rather than silently obeyed or
			// dropped. The note does not say the flag was given: a default
			// can differ from what the run was started with.
			now := cfg.hyper()
			for _, d := range []struct {
				flag      string
				was, want float64
			}{{"momentum", h.Momentum, now.Momentum}, {"weight-decay", h.WeightDecay, now.WeightDecay}, {"lighting", float64(h.Lighting), float64(now.Lighting)}} {
				if d.was != d.want {
					// All three become float32s; their shortest float32 form
					// is what a user typed (0.1, not 0.10000000149011612).
					fmt.Fprintf(log, "train: note: --resume continues with the checkpoint's --%s %s, not %s\n", d.flag,
						strconv.FormatFloat(d.was, 'g', -1, 32), strconv.FormatFloat(d.want, 'g', -1, 32))
				}
			}
			if h.NoBiasDecay != now.NoBiasDecay {
				fmt.Fprintf(log, "train: note: --resume continues with the checkpoint's --bias-decay=%t, not %t\n", !h.NoBiasDecay, !now.NoBiasDecay)
			}
			cfg.Momentum, cfg.WeightDecay, cfg.Sigma, cfg.NoBiasDecay = h.Momentum, h.WeightDecay, h.Lighting, h.NoBiasDecay
			if h.Lighting == 0 {
				cfg.Sigma = -1
			}
		}
		if params, err = ck.Params(spec); err != nil {
			return nil, fmt.Errorf("--resume: %s: %w", ckPath, err)
		}
	} else {
		if params, err = alexnet.InitParams(spec, cfg.Init, cfg.Seed); err != nil {
			return nil, err
		}
	}
	newBackend := cfg.NewBackend
	if newBackend == nil {
		newBackend = NewCPU
	}
	if cfg.Note != "" {
		fmt.Fprintf(log, "train: %s\n", cfg.Note)
	}
	if noDropout {
		fmt.Fprintf(log, "train: note: --dropout paper changes nothing: %s has no dropout layer\n", cfg.Model)
	}
	if cfg.NoBiasDecay && cfg.WeightDecay == 0 && !cfg.Resume {
		fmt.Fprintln(log, "train: note: --bias-decay=false changes nothing at --weight-decay 0")
	}
	if !cfg.Resume && cfg.Batch < 64 && climbsEarly(spec, cfg.Init) {
		// Seen as a fault otherwise: 6.3 → 11.5 in four steps at batch 16.
		fmt.Fprintf(log, "train: note: at batch %d, below the paper's 128, its initialisation (biases of 1 before fc layers) makes the loss climb for the first steps before it falls, as it does in PyTorch (README, train)\n", cfg.Batch)
	}
	be, err := newBackend(spec, cfg.Batch, params, cfg.Seed, mean, std)
	if err != nil {
		return nil, err
	}
	defer be.Close()
	step := int64(0)
	pos := pipeline.Position{}
	// run is what the log line and the epoch's figures have summed so far;
	// a checkpoint keeps it, so a resumed run reports what an
	// uninterrupted one would.
	var run Running
	if ck != nil {
		if err := be.SetMomenta(ck.Tensors); err != nil {
			return nil, fmt.Errorf("--resume: %w", err)
		}
		step = ck.Step
		pos = pipeline.Position{Epoch: ck.Position.Epoch, Batch: ck.Position.Batch}
		if ck.Running != nil {
			run = *ck.Running
		}
	}
	be.SetStep(uint64(step))
	be.SetBiasDecay(!cfg.NoBiasDecay)
	if ck != nil && ck.Arith != "" && ck.Arith != be.Arith() {
		// Not refused: the run goes on as well, but a user comparing it
		// with an uninterrupted run (or a rerun) must know why it differs.
		fmt.Fprintf(log, "train: note: the run was trained with %s, and this resume computes with %s: it goes on, but its results will not repeat an uninterrupted run's bit for bit\n", ck.Arith, be.Arith())
	}
	fmt.Fprintf(log, "train: %s, %d parameters, input %dx%dx3, %d classes; %s\n", spec.Name, spec.NumParams(), crop, crop, len(meta.Classes), be.Describe())
	// The authors' forms, where chosen: seen nowhere else but in the
	// checkpoint.
	var forms []string
	if spec.PaperDropout {
		forms = append(forms, "the paper's dropout (--dropout paper: kept units ×1, evaluation ×(1−p))")
	}
	if cfg.NoBiasDecay && cfg.WeightDecay > 0 {
		forms = append(forms, "weight decay on the weights alone (--bias-decay=false)")
	}
	if len(forms) > 0 {
		fmt.Fprintf(log, "train: the authors' forms: %s\n", strings.Join(forms, "; "))
	}
	if _, cpu := be.(*cpuBackend); cpu {
		if note := blas.KernelNote(); note != "" {
			fmt.Fprintf(log, "train: note: %s\n", note)
		}
	}
	if ck != nil {
		fmt.Fprintf(log, "train: resuming %s after step %d; next: %v, lr %g\n", ckPath, step, pos, sched.LR)
		if ck.Epochs > 0 && cfg.Epochs != ck.Epochs {
			// --epochs is the one setting a resume may change: said, as
			// it moves the run's end (and a plateau schedule's horizon).
			which := "extends"
			if cfg.Epochs < ck.Epochs {
				which = "shortens"
			}
			fmt.Fprintf(log, "train: --epochs %d %s the run, which was to train %d\n", cfg.Epochs, which, ck.Epochs)
		}
		if ck.LogEvery != nil && cfg.LogEvery != *ck.LogEvery {
			// Allowed (the log's spacing changes no step), and said: the
			// log and the checkpoint's sums then differ from an
			// uninterrupted run's.
			fmt.Fprintf(log, "train: --log-every %d changes the run's log spacing from here (it logged every %d)\n", cfg.LogEvery, *ck.LogEvery)
		}
		// Allowed too, but the validation set decides the error figures,
		// and a plateau schedule's drops follow them: an uninterrupted
		// run would not have seen that change.
		if ck.MaxValImages == nil && valSet != "none" {
			// An older build's checkpoint: the run's setting is not known,
			// so whatever this resume validates on may not be it.
			fmt.Fprintf(log, "train: note: the checkpoint, from an older build, does not say what the run validated on; this resume validates on %s (--max-val-images %d)\n",
				valImages(cfg.MaxValImages), cfg.MaxValImages)
		}
		if n := ck.MaxValImages; n != nil && cfg.MaxValImages != *n {
			fmt.Fprintf(log, "train: note: --max-val-images %d changes the run's validation set from here, to %s (it validated on %s): its error figures, and the learning-rate drops of a plateau schedule, follow the new set\n",
				cfg.MaxValImages, valImages(cfg.MaxValImages), valImages(*n))
		}
		switch {
		case ck.ValSet == "" || ck.ValSet == valSet:
		case valSet == "none":
			fmt.Fprintf(log, "train: note: %s has no val split, and the run validated on one: from here its epochs are not validated, and a plateau schedule follows the training error\n", cfg.Shards)
		case ck.ValSet == "none":
			fmt.Fprintf(log, "train: note: %s has a val split, and the run had none: from here its epochs are validated, and a plateau schedule follows the validation error, not the training error\n", cfg.Shards)
		default:
			fmt.Fprintf(log, "train: note: %s's val split is not the one the run validated on (its files, record counts or checksums differ): its error figures from here are on other images, and the learning-rate drops of a plateau schedule follow them\n", cfg.Shards)
		}
		// --max-steps counts steps in all: a checkpoint already there
		// must not take another step (each resume would add one).
		// A checkpoint whose validation is pending has that left to do.
		if cfg.MaxSteps > 0 && step >= cfg.MaxSteps && !ck.ValPending {
			fmt.Fprintf(log, "train: the checkpoint is already at step %d, --max-steps %d: nothing to train\n", step, cfg.MaxSteps)
			return nothingToTrain(&Result{Steps: step, Epoch: pos.Epoch, Checkpoint: ckPath, Stopped: "max-steps", Seconds: time.Since(start).Seconds()}, cfg.Out), nil
		}
		// Likewise --epochs counts epochs in all.
		if pos.Epoch >= cfg.Epochs && !ck.ValPending {
			// Within an epoch past --epochs, its steps are in the
			// checkpoint: said, as they are not undone.
			within := ""
			if pos.Batch > 0 {
				within = fmt.Sprintf(" and %s of the next", cli.Count(pos.Batch, "step", "steps"))
			}
			fmt.Fprintf(log, "train: the checkpoint has done %s%s, --epochs %d: nothing to train\n", cli.Count(pos.Epoch, "epoch", "epochs"), within, cfg.Epochs)
			return nothingToTrain(&Result{Steps: step, Epoch: pos.Epoch, Checkpoint: ckPath, Stopped: "epochs", Seconds: time.Since(start).Seconds()}, cfg.Out), nil
		}
	}

	// elapsed is the run's wall time: this process's, on top of the time a
	// resume finds at its checkpoint (clock.json, or where that is not of
	// its step, the last metrics line it keeps). The time between that
	// checkpoint and the stop is not counted.
	var before float64
	elapsed := func() float64 { return before + time.Since(start).Seconds() }
	// mlog is opened once the run can start (below); save syncs it.
	var mlog *MetricsLog
	// savedStep is the step of the last checkpoint this process wrote, and
	// last the positions of the last step whose bookkeeping is done: what
	// an interrupted run saves, unless it saved it already.
	savedStep := int64(-1)
	// haveCheckpoint says whether ckPath holds this run's state: one it
	// resumed from or one it wrote.
	haveCheckpoint := func() bool { return savedStep >= 0 || ck != nil }
	// kept says what a run that stops on a non-finite number leaves: a
	// fresh run that has saved nothing yet has no good checkpoint to name.
	// diverged says what to change for one that diverged: the same
	// command would diverge the same way (a run is deterministic).
	keptAfter := func(diverged bool) string {
		if haveCheckpoint() {
			at := savedStep
			if at < 0 {
				at = ck.Step
			}
			return fmt.Sprintf("the last good checkpoint, %s (step %d), is left as it was", ckPath, at)
		}
		if !diverged {
			return "this run has written no checkpoint yet: " + RestartAdvice(cfg.Out)
		}
		again := "run it again"
		if LeftOutputs(cfg.Out) {
			again = "run it again with --overwrite"
		}
		return "this run has written no checkpoint yet: lower --lr (the same command diverges the same way) and " + again
	}
	kept := func() string { return keptAfter(false) }
	diverged := func() string { return keptAfter(true) }
	var last struct {
		at, resume pipeline.Position
		ok         bool
	}
	prevNoted := false // the log has said that no previous checkpoint is kept
	// save checkpoints the state after the step that ran batch at; next is
	// where the run goes on from, which the checkpoint keeps, and
	// valPending says the epoch that ended at at has yet to be validated.
	save := func(at, next pipeline.Position, valPending bool) error {
		// A finite loss can still leave non-finite weights behind (the
		// update that follows it overflows); such a state must not replace
		// the last good checkpoint.
		ts, err := be.Tensors()
		if err != nil {
			return fmt.Errorf("step %d (%v): %w; %s", step, at, err, kept())
		}
		for _, t := range ts {
			for i, v := range t.W {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return fmt.Errorf("step %d (%v): parameter %s[%d] is %v: %w; %s", step, at, t.Name, i, v, ErrNonFinite, diverged())
				}
			}
		}
		// The log's lines up to this step must be on disk before the
		// checkpoint is: a resume keeps the lines up to its step and
		// never writes them again.
		if mlog != nil {
			if err := mlog.Sync(); err != nil {
				return fmt.Errorf("step %d (%v): %w; %s", step, at, err, kept())
			}
		}
		c := &Checkpoint{Model: cfg.Model, Classes: len(meta.Classes), ClassList: classList, InputHW: crop, ImageHW: meta.Width,
			TrainSet: trainSet, Batch: cfg.Batch, Init: cfg.Init, Seed: cfg.Seed, Step: step, Epoch: next.Epoch, Epochs: cfg.Epochs,
			Position: Position{Epoch: next.Epoch, Batch: next.Batch}, Schedule: sched, Mean: mean, Std: std, Tensors: ts, ValPending: valPending, Arith: be.Arith(),
			PaperDropout: spec.PaperDropout}
		hyper := cfg.hyper()
		c.Hyper = &hyper
		c.LogEvery = &cfg.LogEvery
		c.MaxValImages, c.ValSet = &cfg.MaxValImages, valSet
		if run != (Running{}) {
			r := run
			c.Running = &r
		}
		// The latest is linked under a temporary name first and becomes
		// the previous one only once the new one is saved: a failed save
		// leaves both as they were.
		var prevTmp string
		// The state after a resumed validation replaces the pending
		// checkpoint of its step, not the one before it: the previous
		// checkpoint stays the uninterrupted run's, and one that is
		// pending would, moved into place, validate the epoch again.
		replacesPending := ck != nil && ck.ValPending && savedStep < 0 && step == ck.Step
		if haveCheckpoint() && !replacesPending {
			var err error
			if prevTmp, err = linkTemp(ckPath, prevPath); err != nil && !prevNoted {
				prevNoted = true
				fmt.Fprintf(log, "train: note: cannot keep the previous checkpoint beside the latest (%v); only the latest is kept\n", err)
			}
		}
		if err := saveCheckpoint(c, ckPath); err != nil {
			if prevTmp != "" {
				os.Remove(prevTmp)
			}
			// Save writes a temporary file and renames it: a failure (a
			// full disk) leaves the last checkpoint whole.
			hint := ""
			if errors.Is(err, syscall.ENOSPC) && haveCheckpoint() {
				// The save needs room for the new checkpoint beside the
				// latest and the previous one (a hard link costs none
				// until the latest is replaced).
				hint = ": free space for another checkpoint, then --resume continues from it"
			}
			return fmt.Errorf("step %d (%v): saving %s: %w; %s%s", step, at, ckPath, err, kept(), hint)
		}
		if prevTmp != "" {
			if err := os.Rename(prevTmp, prevPath); err != nil {
				os.Remove(prevTmp)
				if !prevNoted {
					prevNoted = true
					fmt.Fprintf(log, "train: note: cannot keep the previous checkpoint beside the latest (%v); only the latest is kept\n", err)
				}
			}
		}
		savedStep = step
		// The clock is a report, not the run's state: one that cannot be
		// written costs a resume its time since the last metrics line,
		// as before it was kept, and nothing else.
		_ = writeClock(cfg.Out, step, elapsed())
		return nil
	}
	// A pending validation resumed with a smaller --epochs runs and then
	// trains nothing: the pipeline starts at its end, never past it.
	popt := pipeline.Options{Mode: pipeline.Train, Batch: cfg.Batch, Crop: crop, Seed: cfg.Seed,
		Start: pos, Epochs: max(cfg.Epochs, pos.Epoch), Decoders: cfg.Workers, Sigma: cfg.Sigma, ShuffleBuffer: cfg.ShuffleBuf}
	streamer, streaming := be.(Streamer)
	if streaming {
		// Slots: the pipeline's default count, in the backend's memory.
		slots, free, err := streamer.Slots(4, cfg.Batch, crop)
		if err != nil {
			return nil, err
		}
		// Deferred before the pipeline and the stream, so it runs after
		// they have stopped touching the slots (and before the backend
		// closes, which the slots' memory may belong to).
		defer func() {
			if err := free(); err != nil {
				fmt.Fprintf(log, "train: freeing the batch slots: %v\n", err)
			}
		}()
		popt.Slots = slots
	}
	pl, err := pipeline.New(ctx, cfg.Shards, popt)
	if err != nil {
		return nil, err
	}
	defer pl.Close()
	if pl.BatchesPerEpoch() == 0 {
		return nil, fmt.Errorf("%w: the train split has fewer images than one batch of %d", ErrConfig, cfg.Batch)
	}
	// Only now that the run can start may an --overwrite remove the old
	// one, and the metrics log be rewritten.
	if cfg.Overwrite && ck == nil {
		// What would stop the new run writing is found before anything of
		// the old one goes: an --overwrite that cannot start leaves the
		// old run as it was.
		if _, err := shards.AtomicTarget(filepath.Join(cfg.Out, MetricsFile)); err != nil {
			return nil, fmt.Errorf("--overwrite: %w (the old run is left as it was)", err)
		}
		for _, f := range replacedFiles {
			if fi, err := os.Lstat(filepath.Join(cfg.Out, f)); err == nil && fi.IsDir() {
				return nil, fmt.Errorf("--overwrite: %s is a directory, not a file of a run: not removing it (the old run is left as it was)", filepath.Join(cfg.Out, f))
			}
		}
		// The old run's checkpoint and plots go now, not at the new run's
		// first checkpoint: a new run stopped before that must not leave
		// the old checkpoint beside the new run's metrics, for a later
		// --resume to continue the wrong run.
		for _, f := range replacedFiles {
			if err := os.Remove(filepath.Join(cfg.Out, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("--overwrite: %w", err)
			}
		}
	}
	keep := step
	if ck == nil {
		keep = -1 // a new run: the old log is not read, only replaced
	}
	mlog, err = openMetrics(cfg.Out, keep, ck != nil && ck.ValPending)
	if err != nil {
		return nil, err
	}
	if n := len(mlog.Dropped); n > 0 {
		nums := make([]string, n)
		for i, l := range mlog.Dropped {
			nums[i] = strconv.Itoa(l)
		}
		word := "lines"
		if n == 1 {
			word = "line"
		}
		fmt.Fprintf(log, "train: note: %s: %d %s that did not read as train's metrics left out (%s %s); the file as it was is kept as %s.bak\n",
			mlog.path, n, word, word, cli.FirstFew(nums, 5), mlog.path)
	}
	if ck != nil && mlog.Gone && step > 0 {
		// Its lines are not in the checkpoint, so they are not rebuilt:
		// the plots start again here (the run's time is clock.json's).
		fmt.Fprintf(log, "train: note: %s was gone: it starts again after step %d, so its plots leave out the steps before\n", mlog.path, step)
	}
	if ck != nil {
		before = priorSeconds(mlog.All(), cfg.Out, step)
	}
	defer mlog.Close()

	var st Stream = &syncStream{be: be, pl: pl}
	if streaming {
		if st, err = streamer.Stream(pl); err != nil {
			return nil, err
		}
		fmt.Fprintf(log, "train: batches stream to the device one step ahead of the loop\n")
	}
	defer func() {
		if err := st.Close(); err != nil {
			fmt.Fprintf(log, "train: closing the batch stream: %v\n", err)
		}
	}()
	// Epoch counts the epochs done, those of the run resumed included.
	res := &Result{Checkpoint: ckPath, Stopped: "epochs", Epoch: pos.Epoch}
	// Until this process ends an epoch, the run's last validation is the
	// one its log kept: a resume that ends within an epoch still reports it.
	res.lastValidation(mlog.All())
	if meta.Splits["val"].Records == 0 && sched.Kind == "plateau" {
		fmt.Fprintf(log, "train: %s has no validation split: the plateau schedule follows each epoch's training error instead (--schedule step:N fixes when lr falls)\n", cfg.Shards)
	}
	// A 0 that measures nothing would read as a result.
	if n := len(meta.Classes); n <= 5 && meta.Splits["val"].Records > 0 {
		fmt.Fprintf(log, "train: note: with %d classes every label is among the top 5: top-5 error is 0 by construction\n", n)
	}
	// result is res once the run ends, with its step and clocks.
	result := func() *Result {
		res.Steps = step
		res.Seconds = time.Since(start).Seconds()
		res.RunSeconds = before + res.Seconds
		return res
	}
	// endEpoch does an epoch's end once its validation pass ev is in: the
	// schedule's step, the epoch's line in the log and metrics, the plots.
	// at is the epoch's last batch.
	endEpoch := func(at pipeline.Position, ev EvalResult, took string) error {
		trainErr := errorRate(run.Hits, run.Seen)
		trainLoss := run.EpochLoss / float64(max(run.EpochSteps, 1))
		verr := ev.Top1Err
		unscored := ""
		if ev.Unlabelled > 0 {
			// As --eval-only notes them: figures over fewer images than
			// the split holds.
			unscored = fmt.Sprintf("; %d without a label, not scored", ev.Unlabelled)
		}
		val := fmt.Sprintf("val top-1 err %.2f%%, top-5 err %.2f%%, val loss %.4f (%d images%s)", 100*ev.Top1Err, 100*ev.Top5Err, ev.Loss, ev.Images, unscored)
		if ev.Images == 0 {
			// No labelled validation image: there is no validation
			// error to report, and the schedule follows the training
			// error instead.
			verr = trainErr
			val = "no labelled validation images"
			if sched.Kind == "plateau" {
				val += " (lr follows the training error)"
			}
		}
		// The epoch's line carries the rate it trained at; a drop
		// shows in the next one (and in the log's "lr ->").
		epochLR := sched.LR
		dropped := sched.EndEpoch(at.Epoch+1, verr)
		fmt.Fprintf(log, "epoch %3d %s: train loss %.4f, train top-1 err %.2f%%, %s%s\n",
			at.Epoch, took, trainLoss, 100*trainErr, val,
			map[bool]string{true: fmt.Sprintf("; lr -> %g", sched.LR), false: ""}[dropped])
		res.Top1Err, res.Top5Err, res.Epoch, res.Evaluated, res.ValStep = ev.Top1Err, ev.Top5Err, at.Epoch+1, ev.Images > 0, step
		res.Unscored = ev.Images == 0 && meta.Splits["val"].Records > 0
		if err := mlog.Add(Metric{Kind: "epoch", Step: step, Epoch: at.Epoch, LR: epochLR, Top1Err: ev.Top1Err, Top5Err: ev.Top5Err,
			ValLoss: ev.Loss, NoVal: ev.Images == 0, TrainErr: trainErr, TrainLoss: trainLoss, Seconds: elapsed()}); err != nil {
			return err
		}
		if err := WritePlots(cfg.Out, mlog.All()); err != nil {
			return fmt.Errorf("step %d (%v): plots: %w", step, at, err)
		}
		if err := writeConv1(cfg.Out, be); err != nil {
			return err
		}
		run.Hits, run.Seen, run.EpochLoss, run.EpochSteps = 0, 0, 0, 0
		return nil
	}
	// valFailed words a validation pass that did not finish. An interrupt
	// or data that cannot be read there (a damaged shard, a meta.json
	// edited since the run began) costs no training: the epoch's state is
	// saved as one whose validation is pending, which --resume runs first
	// (before, it saved nothing, and with --checkpoint-every 0 a Ctrl-C
	// there lost the epoch). saved says the checkpoint already holds that
	// state (a resume validating it).
	valFailed := func(at, next pipeline.Position, err error, saved bool) error {
		err = fmt.Errorf("step %d (%v): validation after epoch %d: %w", step, at, at.Epoch, err)
		stopped := ctx.Err() != nil
		if !stopped && !errors.As(err, new(valDataError)) {
			return fmt.Errorf("%w; %s", err, kept())
		}
		if !saved {
			if serr := save(at, next, true); serr != nil {
				// serr says what is kept: stoppedInside must not say it
				// again. Not ErrInterrupted even when stopped: a save
				// that failed on the way out is exit 1, as interrupted's.
				return saidError{fmt.Errorf("%w; saving epoch %d's training failed too: %w", err, at.Epoch, serr)}
			}
		}
		if stopped {
			return interruptedError{fmt.Errorf("%w; epoch %d's training is saved in %s, and --resume validates it before going on", err, at.Epoch, ckPath)}
		}
		return fmt.Errorf("%w; epoch %d's training is saved in %s: after the repair, --resume validates it before going on", err, at.Epoch, ckPath)
	}
	if ck != nil && ck.ValPending {
		// The run stopped in this epoch's validation: it runs now, on the
		// weights it was to judge, and the state after it is saved before
		// any step, so the run goes on as an uninterrupted one would.
		at := pipeline.Position{Epoch: pos.Epoch - 1, Batch: pl.BatchesPerEpoch() - 1}
		fmt.Fprintf(log, "train: the run stopped in epoch %d's validation: running it first\n", at.Epoch)
		ev, err := evaluate(ctx, be, cfg.Shards, meta, crop, cfg.EvalBatch, pipeline.Center, cfg.MaxValImages, cfg.Workers)
		if err != nil {
			return nil, valFailed(at, pos, err, true)
		}
		if err := endEpoch(at, ev, "validated"); err != nil {
			return nil, err
		}
		if err := save(at, pos, false); err != nil {
			return nil, err
		}
		last.at, last.resume, last.ok = at, pos, true
		if cfg.MaxSteps > 0 && step >= cfg.MaxSteps {
			res.Stopped = "max-steps"
			return result(), nil
		}
	}
	timed := 0 // steps since logStart in this process, for img/s
	epochStart, logStart := time.Now(), time.Now()
	// finish does a step's bookkeeping once its result is in: the loss
	// check, the log, and at a boundary the evaluation, schedule and
	// checkpoint. n is the step's number (1-based), so step counts n.
	finish := func(q QueuedStep, n int64) (stop bool, err error) {
		loss, c1, err := q.Wait()
		if err != nil {
			return false, fmt.Errorf("step %d: %w", n, err)
		}
		at, resume := q.Pos, q.Resume
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			// The usual cause is a learning rate too high for the run.
			return false, fmt.Errorf("step %d (%v): the loss is %w (%v): the run diverged (too high a learning rate, --lr, for it?); %s", n, at, ErrNonFinite, loss, diverged())
		}
		step = n
		run.LogLoss += loss
		run.LogSteps++
		run.EpochLoss += loss
		run.EpochSteps++
		run.Hits += c1
		run.Seen += cfg.Batch
		timed++
		if cfg.LogEvery > 0 && step%int64(cfg.LogEvery) == 0 {
			wait, total := st.DataWait()
			m := Metric{Kind: "step", Step: step, Epoch: at.Epoch, Loss: run.LogLoss / float64(run.LogSteps), LR: sched.LR,
				ImgPerS: float64(timed*cfg.Batch) / time.Since(logStart).Seconds(), DataWait: frac(wait, total), Seconds: elapsed()}
			fmt.Fprintf(log, "step %6d  epoch %3d  batch %5d/%d  loss %.4f  lr %.2g  %.1f img/s  data wait %.1f%%  epoch ends in %s\n",
				step, at.Epoch, at.Batch+1, pl.BatchesPerEpoch(), m.Loss, sched.LR, m.ImgPerS, 100*m.DataWait,
				epochLeft(pl.BatchesPerEpoch()-at.Batch-1, cfg.Batch, m.ImgPerS))
			if err := mlog.Add(m); err != nil {
				return false, err
			}
			run.LogLoss, run.LogSteps, timed, logStart = 0, 0, 0, time.Now()
		}
		endOfEpoch := resume.Epoch != at.Epoch
		saving := endOfEpoch || (cfg.CkptEvery > 0 && step%int64(cfg.CkptEvery) == 0)
		paused := time.Now()
		if endOfEpoch {
			ev, err := evaluate(ctx, be, cfg.Shards, meta, crop, cfg.EvalBatch, pipeline.Center, cfg.MaxValImages, cfg.Workers)
			if err != nil {
				return false, valFailed(at, resume, err, false)
			}
			if err := endEpoch(at, ev, "done in "+time.Since(epochStart).Round(time.Second).String()); err != nil {
				return false, err
			}
			epochStart = time.Now()
		}
		if saving {
			if err := save(at, resume, false); err != nil {
				return false, err
			}
		}
		if cfg.MaxSteps > 0 && step >= cfg.MaxSteps {
			// Saved just above, the same state would be written again and
			// push out the previous checkpoint.
			if savedStep != step {
				if err := save(at, resume, false); err != nil {
					return false, err
				}
			}
			// A run stopped inside an epoch has plots of what it did.
			if err := WritePlots(cfg.Out, mlog.All()); err != nil {
				return false, fmt.Errorf("step %d (%v): plots: %w", step, at, err)
			}
			if err := writeConv1(cfg.Out, be); err != nil {
				return false, err
			}
			res.Stopped = "max-steps"
			return true, nil
		}
		last.at, last.resume, last.ok = at, resume, true
		if saving {
			// Evaluation and checkpoints are not training time: the log's
			// img/s leaves them out, and the device's idle time across
			// them is not data wait.
			logStart = logStart.Add(time.Since(paused))
			st.Idle()
		}
		return false, nil
	}
	// boundary says whether step n, batch q, needs the loop to stop
	// running ahead: its bookkeeping reads or changes the parameters or
	// the learning rate, so nothing may be queued after it first.
	boundary := func(q QueuedStep, n int64) bool {
		return q.Resume.Epoch != q.Pos.Epoch || (cfg.CkptEvery > 0 && n%int64(cfg.CkptEvery) == 0) ||
			(cfg.MaxSteps > 0 && n >= cfg.MaxSteps)
	}
	// interrupted ends a run stopped by Ctrl-C, SIGTERM or SIGHUP between steps:
	// the step already queued is finished and the state after it saved,
	// as --max-steps would have, so --resume continues it exactly and
	// loses no step. A stop inside an epoch's validation is valFailed's.
	var pending *QueuedStep
	// finishPending finishes the step queued before step n, if any; and
	// saveLast saves the state after the last whole step, unless it is
	// saved already. Together they are what a run stopped between steps
	// keeps, so that --resume loses no step.
	finishPending := func(n int64) error {
		if pending == nil {
			return nil
		}
		_, err := finish(*pending, n-1)
		pending = nil
		return err
	}
	saveLast := func() error {
		if savedStep == step {
			return nil
		}
		return save(last.at, last.resume, false)
	}
	interrupted := func(n int64, cause error) error {
		// The signal, where the context says which (cli.Stopped), reads
		// better than "context canceled"; errors.Is still finds cause.
		if why := context.Cause(ctx); why != nil && why != ctx.Err() {
			cause = namedCause{why, cause}
		}
		if err := finishPending(n); err != nil {
			return fmt.Errorf("interrupted (%v), and finishing step %d: %w", cause, n-1, err)
		}
		switch {
		case !last.ok && !haveCheckpoint():
			// Not ErrInterrupted: there is no run to --resume.
			return fmt.Errorf("interrupted (%w) before the run's first step: nothing to save; %s", cause, RestartAdvice(cfg.Out))
		case !last.ok:
			return interruptedError{fmt.Errorf("interrupted (%w) before step %d; %s is as it was, and --resume continues from it", cause, n, ckPath)}
		}
		if err := saveLast(); err != nil {
			return fmt.Errorf("interrupted (%w) after step %d, and saving it failed: %w", cause, step, err)
		}
		return interruptedError{fmt.Errorf("interrupted (%w) after step %d, saved in %s; --resume continues it", cause, step, ckPath)}
	}
	// unreadable ends a run whose batch for step n could not be read from
	// the shards (a damaged or missing shard): no step trained on it, so
	// the state after the last whole step is saved as an interrupt saves
	// it, and a --resume after the repair loses nothing. Before, the steps
	// since the last checkpoint (up to --checkpoint-every) were lost.
	unreadable := func(n int64, cause error) error {
		// The cause names the batch (epoch and batch), which the
		// pipeline reads ahead of the steps: prefixing the step that was
		// queued (an earlier one) would point at the wrong batch.
		if err := finishPending(n); err != nil {
			return fmt.Errorf("%w; finishing step %d: %w", cause, n-1, err)
		}
		if !last.ok {
			return fmt.Errorf("%w; %s", cause, kept())
		}
		if err := saveLast(); err != nil {
			return fmt.Errorf("%w; saving the state after step %d failed too: %w", cause, step, err)
		}
		return fmt.Errorf("%w; the state after step %d, which trained on intact records only, is saved in %s", cause, step, ckPath)
	}
	// stoppedInside words an interrupt that landed inside a step's
	// bookkeeping where nothing more could be saved (an interrupted
	// validation saves its own, and says so): the user must know where
	// --resume goes on from.
	stoppedInside := func(err error) error {
		if ctx.Err() == nil || errors.Is(err, ErrInterrupted) || errors.As(err, new(saidError)) {
			return err
		}
		if !haveCheckpoint() {
			return fmt.Errorf("%w; interrupted before this run wrote a checkpoint: nothing to resume; %s", err, RestartAdvice(cfg.Out))
		}
		return interruptedError{fmt.Errorf("%w; interrupted there, nothing more was saved: --resume continues from %s, as it was before", err, ckPath)}
	}
	queued := step
	for {
		q, err := st.Queue(float32(sched.LR), float32(cfg.Momentum), float32(cfg.WeightDecay))
		if err == io.EOF {
			break
		}
		if err != nil && ctx.Err() != nil {
			return nil, interrupted(queued+1, err)
		}
		if re := (*shards.RecordError)(nil); err != nil && errors.As(err, &re) {
			return nil, unreadable(queued+1, err)
		}
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", queued+1, err)
		}
		queued++
		// The previous step's result is read while this one runs.
		if pending != nil {
			if _, err := finish(*pending, queued-1); err != nil {
				return nil, stoppedInside(err)
			}
			pending = nil
		}
		// Only a streaming backend gains from running ahead; the
		// synchronous loop finishes each step at once, and so is the
		// reference the streamed loop is tested against.
		if streaming && !boundary(q, queued) {
			pending = &q
			continue
		}
		stop, err := finish(q, queued)
		if err != nil {
			return nil, stoppedInside(err)
		}
		if stop {
			break
		}
	}
	if pending != nil {
		if _, err := finish(*pending, queued); err != nil {
			return nil, err
		}
	}
	return result(), nil
}

// priorSeconds is the run's wall time before this process: the clock
// at its checkpoint of step, or where that was not kept, of the last of
// ms, the lines of dir's metrics.jsonl a resume keeps (up to step).
func priorSeconds(ms []Metric, dir string, step int64) float64 {
	return max(lastSeconds(ms), clockAt(dir, step))
}

// ClockFile holds the run's wall time at its latest checkpoint. Not in
// the checkpoint, which would then differ from an uninterrupted run's;
// without it a resume counted the run's time from its last metrics line,
// losing up to an epoch's hours under --log-every 0.
const ClockFile = "clock.json"

type runClock struct {
	Step    int64   `json:"step"`
	Seconds float64 `json:"seconds"`
}

// writeClock keeps the run's time at the checkpoint of step.
func writeClock(dir string, step int64, seconds float64) error {
	b, err := json.Marshal(runClock{step, seconds})
	if err != nil {
		return err
	}
	return shards.WriteFileAtomic(filepath.Join(dir, ClockFile), append(b, '\n'))
}

// clockAt is the run's time kept at its checkpoint of step; 0 when none
// was, or the file is of another step (a checkpoint saved, then the
// process killed before the clock was) or does not read as one.
func clockAt(dir string, step int64) float64 {
	b, err := regfile.ReadFile(filepath.Join(dir, ClockFile), 1<<10)
	if err != nil {
		return 0
	}
	var c runClock
	if json.Unmarshal(b, &c) != nil || c.Step != step || !(c.Seconds >= 0) || math.IsInf(c.Seconds, 0) {
		return 0
	}
	return c.Seconds
}

// lastSeconds is the latest clock among ms.
func lastSeconds(ms []Metric) float64 {
	var sec float64
	for _, m := range ms {
		sec = max(sec, m.Seconds)
	}
	return sec
}

// epochLeft estimates the training time left in an epoch of which batches
// remain, at the last log line's rate; validation comes on top.
func epochLeft(batches, batch int, imgPerS float64) string {
	if imgPerS <= 0 || math.IsInf(imgPerS, 0) || math.IsNaN(imgPerS) {
		return "?"
	}
	d := time.Duration(float64(batches*batch) / imgPerS * float64(time.Second))
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// frac is a/b, or 0 when b is not positive.
func frac(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func writeConv1(dir string, be Backend) error {
	ts, err := be.Tensors()
	if err != nil {
		return err
	}
	for _, t := range ts {
		if t.Name == "conv1.weight" {
			return WriteFilters(filepath.Join(dir, "conv1-filters.png"), t.W, t.Shape)
		}
	}
	return nil
}

// EvalResult is a validation pass's outcome. Errors are fractions.
type EvalResult struct {
	Images  int
	Top1Err float64
	Top5Err float64
	Loss    float64
	// Note is Checkpoint.ScaleNote for EvaluateCheckpoint: set when the
	// shards' images are not the size the model trained on.
	Note string
	// Unlabelled counts the images passed over for want of a label (a
	// --val-labels file that covers only part of the split).
	Unlabelled int
	// Batch is the batch EvaluateCheckpoint ran at: --eval-batch, or
	// the run's, at most the images there are.
	Batch int
}

// evaluate runs the val split through be in mode (Center or TenCrop; ten
// crops average their softmax probabilities, as the paper did).
// meta is dir's meta.json, which every caller has already read.
func evaluate(ctx context.Context, be Backend, dir string, meta *shards.Meta, crop, batch int, mode pipeline.Mode, maxImages, workers int) (EvalResult, error) {
	if meta.Splits["val"].Records == 0 {
		return EvalResult{}, nil
	}
	pl, err := pipeline.New(ctx, dir, pipeline.Options{Mode: mode, Split: "val", Batch: batch, Crop: crop, Epochs: 1, Decoders: workers})
	if err != nil {
		return EvalResult{}, valDataError{err}
	}
	defer pl.Close()
	var r EvalResult
	var lossSum float64
	var top1, top5 int
	classes := len(meta.Classes)
	probs := make([]float64, classes)
	for {
		s, err := pl.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return r, valDataError{err}
		}
		logits, err := be.Logits(s)
		if err != nil {
			s.Release()
			return r, err
		}
		// Ranking NaN probabilities would count every image a hit: a
		// model that overflowed would score 0% error.
		for i, v := range logits[:s.N*classes] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				s.Release()
				return r, fmt.Errorf("validation image %d: output %d is %v: the model's outputs are %w",
					r.Images+r.Unlabelled+i/(classes*s.Views)+1, i%classes, v, ErrNonFinite)
			}
		}
		for img := 0; img < s.N/s.Views; img++ {
			label := int(s.Labels[img*s.Views])
			clear(probs)
			for v := 0; v < s.Views; v++ {
				softmaxAdd(probs, logits[(img*s.Views+v)*classes:(img*s.Views+v+1)*classes], 1/float64(s.Views))
			}
			if label < 0 {
				r.Unlabelled++ // not scored
				continue
			}
			rank := 0
			for c, p := range probs {
				if p > probs[label] || (p == probs[label] && c < label) {
					rank++
				}
			}
			if rank == 0 {
				top1++
			}
			if rank < 5 {
				top5++
			}
			lossSum -= math.Log(math.Max(probs[label], 1e-30))
			r.Images++
			if maxImages > 0 && r.Images >= maxImages {
				break
			}
		}
		s.Release()
		if maxImages > 0 && r.Images >= maxImages {
			break
		}
	}
	if r.Images > 0 {
		r.Top1Err = errorRate(top1, r.Images)
		r.Top5Err = errorRate(top5, r.Images)
		r.Loss = lossSum / float64(r.Images)
	}
	return r, nil
}

func softmaxAdd(dst []float64, logits []float32, weight float64) {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - m)
	}
	for i, v := range logits {
		dst[i] += weight * math.Exp(float64(v)-m) / sum
	}
}

// valDataError is a validation pass's failure to read its data (a shard
// damaged or gone, meta.json changed since the run began), as against the
// model's (outputs not finite) or the device's: the training before it is
// sound and worth saving.
type valDataError struct{ err error }

func (e valDataError) Error() string { return e.err.Error() }
func (e valDataError) Unwrap() error { return e.err }

// evalBatch is the validation batch for a requested one: no more than the
// images there are to score. Batches are sized (slots, the backend's
// buffers) by the request, so --eval-batch 100000 over 500 images cost
// 200 times the memory and time of one that fits, and more killed the
// process; the result is the same whatever the batch.
func evalBatch(meta *shards.Meta, batch, maxImages int) int {
	n := meta.Splits["val"].Records
	if maxImages > 0 {
		n = min(n, maxImages)
	}
	if n > 0 {
		batch = min(batch, n)
	}
	return batch
}

// EvaluateCheckpoint loads a checkpoint and reports its validation error on
// the shards in dir, centre crop or the paper's ten crops, over at most
// maxImages labelled images (0: all), decoded by workers goroutines (0:
// GOMAXPROCS).
func EvaluateCheckpoint(ctx context.Context, path, dir string, tenCrop bool, batch, maxImages, workers int, newBackend BackendFactory) (EvalResult, *Checkpoint, error) {
	ck, err := Load(path)
	if err != nil {
		return EvalResult{}, nil, err
	}
	shardLock, err := dirlock.AcquireShared(dir, "train --eval-only", shards.MetaFile)
	if err != nil {
		return EvalResult{}, nil, err
	}
	defer shardLock.Release()
	meta, err := shards.ReadMeta(dir)
	if err != nil {
		return EvalResult{}, nil, err
	}
	if err := ck.MatchesClasses(meta, dir); err != nil {
		return EvalResult{}, nil, err
	}
	if err := ck.CropFits(meta, dir); err != nil {
		return EvalResult{}, nil, err
	}
	if meta.Unfinished["val"] != "" {
		return EvalResult{}, nil, fmt.Errorf("%s/%s", dir, meta.Missing("val"))
	}
	batch = evalBatch(meta, batch, maxImages)
	be, err := BackendFromCheckpoint(ck, batch, newBackend)
	if err != nil {
		return EvalResult{}, nil, err
	}
	defer be.Close()
	mode := pipeline.Center
	if tenCrop {
		mode = pipeline.TenCrop
	}
	r, err := evaluate(ctx, be, dir, meta, ck.InputHW, batch, mode, maxImages, workers)
	r.Note, r.Batch = ck.ScaleNote(meta, dir), batch
	if tenCrop && ck.InputHW == min(meta.Width, meta.Height) {
		// Not the paper's ten patches, which a reader of "10 crops" takes
		// them for.
		r.Note = strings.TrimPrefix(r.Note+"; "+fmt.Sprintf("the %d-px crop is the images' whole side, so the four corner crops are the centre one: the ten views are two (the centre and its mirror image)", ck.InputHW), "; ")
	}
	return r, ck, err
}

// BackendFromCheckpoint builds a backend (the CPU's when newBackend is nil)
// holding a checkpoint's weights.
func BackendFromCheckpoint(ck *Checkpoint, batch int, newBackend BackendFactory) (Backend, error) {
	spec, err := alexnet.Build(ck.Model, ck.Classes, ck.InputHW)
	if err != nil {
		return nil, err
	}
	spec.PaperDropout = ck.PaperDropout
	params, err := ck.Params(spec)
	if err != nil {
		return nil, err
	}
	if newBackend == nil {
		newBackend = NewCPU
	}
	return newBackend(spec, batch, params, ck.Seed, ck.Mean, ck.Std)
}

// TopK returns the k best classes of one row of logits with their softmax
// probabilities, best first.
func TopK(logits []float32, k int) ([]int, []float64) {
	p := make([]float64, len(logits))
	softmaxAdd(p, logits, 1)
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return p[idx[a]] > p[idx[b]] })
	k = min(k, len(idx))
	out := make([]float64, k)
	for i := 0; i < k; i++ {
		out[i] = p[idx[i]]
	}
	return idx[:k], out
}

// errorRate is the share of n images that were not hits, 0 for none.
// Misses over n, not 1 − hits/n: the same value without the float noise
// that --json printed as 0.050000000000000044.
func errorRate(hits, n int) float64 {
	if n <= 0 {
		return 0
	}
	return float64(n-hits) / float64(n)
}

// hyper is what a checkpoint keeps of cfg's momentum, weight decay (and
// whether the biases take it) and lighting, the lighting resolved as the
// pipeline resolves it.
func (cfg *Config) hyper() Hyper {
	return Hyper{Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay, Lighting: augment.SigmaFor(cfg.Sigma), NoBiasDecay: cfg.NoBiasDecay}
}

// linkTemp hard-links the latest checkpoint (through a symbolic link, to
// the file itself) under a new temporary name beside prev, and returns
// that name: renamed to prev once the new checkpoint is saved, it keeps
// the state before it without a second write. A crash at any point leaves
// a whole latest checkpoint, and at worst a temporary file the next run
// clears. An error (a file system without hard links) keeps only the
// latest.
func linkTemp(latest, prev string) (string, error) {
	src, err := filepath.EvalSymlinks(latest)
	if err != nil {
		return "", err
	}
	return shards.MakeTemp(prev, func(tmp string) error { return os.Link(src, tmp) })
}

// sameDir says whether a and b are one existing folder, however spelt.
func sameDir(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// ReadRunHeader is ReadHeader of the run directory's checkpoint; when that
// one is damaged, the error says whether the previous one is intact, and
// how to go on from it.
func ReadRunHeader(dir string) (*Checkpoint, error) {
	h, err := ReadHeader(filepath.Join(dir, CheckpointFile))
	return h, withPrevious(err, dir)
}

// withPrevious adds previousIntact's advice to a damaged checkpoint's error.
func withPrevious(err error, dir string) error {
	if errors.Is(err, ErrCheckpoint) {
		if h, _, _ := previousIntact(dir); h != "" {
			return fmt.Errorf("%w; %s", err, h)
		}
	}
	return err
}

// previousIntact is previousNote with --resume's advice.
func previousIntact(dir string) (note string, intact bool, damage error) {
	return previousNote(dir, fmt.Sprintf("move it to %s and --resume again to go on from there", filepath.Join(dir, CheckpointFile)))
}

// loadPrevious reads the run's previous checkpoint whole (a header that
// reads is not a checkpoint that loads; this is a failure's path, where a
// second's read is no cost): nil and no error when there is none.
func loadPrevious(dir string) (*Checkpoint, error) {
	prev := filepath.Join(dir, PrevCheckpointFile)
	if _, err := os.Lstat(prev); err != nil {
		return nil, nil
	}
	return loadFile(prev, "")
}

// previousNote describes the run's previous checkpoint: when it is
// intact (read whole, every checksum), with advice on what to do with it
// and intact true; when it is damaged too, saying so, so that a user does
// not move it into place to find that out, and giving the damage; ""
// when there is none.
func previousNote(dir, advice string) (note string, intact bool, damage error) {
	prev := filepath.Join(dir, PrevCheckpointFile)
	c, err := loadPrevious(dir)
	switch {
	case err != nil:
		return fmt.Sprintf("the checkpoint before it is not usable either: %v", err), false, err
	case c == nil:
		return "", false, nil
	case c.CheckNeeds(true) != nil:
		return "", false, nil // a newer build's: nothing to offer
	}
	return fmt.Sprintf("the checkpoint before it, %s (step %d; epochs done: %d), is intact: %s", prev, c.Step, c.Position.Epoch, advice), true, nil
}

// saveCheckpoint is Checkpoint.Save; a test makes it fail as a full disk
// would.
var saveCheckpoint = (*Checkpoint).Save

// Dropout is the checkpoint's dropout form as --dropout names it: "paper"
// only where the run trained with it and its model has dropout (a
// checkpoint of a model without saying "paper" trained as any other).
func (c *Checkpoint) Dropout() string {
	return DropoutForm(c.PaperDropout && modelHasDropout(c.Model))
}

// modelHasDropout says whether the variant drops units; an unknown one
// counts as dropping, so that its form is not passed over.
func modelHasDropout(model string) bool {
	s, err := alexnet.Build(model, 10, 0)
	return err != nil || s.HasDropout()
}

// DropoutForm is --dropout's name of a form: "paper" or "inverted".
func DropoutForm(paper bool) string {
	if paper {
		return "paper"
	}
	return "inverted"
}

// resumeDiffers refuses a resume whose model, crop, seed, dropout or batch differ
// from its checkpoint's, or whose shards hold another number of classes.
func resumeDiffers(ck *Checkpoint, cfg Config, ckPath string, crop, classes int) error {
	var differ []string
	if ck.Model != cfg.Model {
		differ = append(differ, fmt.Sprintf("--model %s, not %s", ck.Model, cfg.Model))
	}
	if ck.InputHW != crop {
		differ = append(differ, fmt.Sprintf("--crop %d, not %d", ck.InputHW, crop))
	}
	if ck.Seed != cfg.Seed {
		differ = append(differ, fmt.Sprintf("--seed %d, not %d", ck.Seed, cfg.Seed))
	}
	// The form matters only to a model with dropout: a run of one
	// without it continues whichever form either names.
	if ck.PaperDropout != cfg.PaperDropout && modelHasDropout(ck.Model) {
		differ = append(differ, fmt.Sprintf("--dropout %s, not %s", ck.Dropout(), DropoutForm(cfg.PaperDropout)))
	}
	if len(differ) > 0 {
		return mismatch("--resume: %s is a run with %s (leave those flags out and --resume takes the run's)",
			ckPath, strings.Join(differ, "; "))
	}
	if ck.Classes != classes {
		return mismatch("--resume: %s is a run with %d classes, not the %d of %s: resume it with the shards it was trained on",
			ckPath, ck.Classes, classes, cfg.Shards)
	}
	// The checkpoint's position counts batches of its own size;
	// checkpoints from before the field was kept leave it 0.
	if ck.Batch != 0 && ck.Batch != cfg.Batch {
		return mismatch("--resume: %s was trained with --batch %d, not %d, and its epoch position counts batches of %d (leave --batch out and --resume takes the run's)",
			ckPath, ck.Batch, cfg.Batch, ck.Batch)
	}
	return nil
}

// runFiles are the files train writes atomically in its run directory.
var runFiles = []string{CheckpointFile, PrevCheckpointFile, ClockFile, MetricsFile, MetricsFile + ".bak", "loss.png", "error.png", "conv1-filters.png"}

// clearTemps removes the temporary files of runFiles in dir (and those of
// builds that used one fixed name, name.tmp), matched by exact name: dir
// is the user's, and may hold other files, or be named like a pattern.
func clearTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		for _, f := range runFiles {
			if shards.IsTempOf(e.Name(), f) {
				os.Remove(filepath.Join(dir, e.Name()))
				break
			}
		}
	}
}

// namedCause is an error that reads as why and unwraps to err.
type namedCause struct{ why, err error }

func (c namedCause) Error() string { return c.why.Error() }
func (c namedCause) Unwrap() error { return c.err }

// lastValidation sets r's validation figures from the last epoch line of
// ms that scored one: the run's latest, where this process has not yet
// measured its own.
func (r *Result) lastValidation(ms []Metric) {
	for i := len(ms) - 1; i >= 0; i-- {
		if m := ms[i]; m.Kind == "epoch" && !m.NoVal {
			r.Top1Err, r.Top5Err, r.ValStep, r.Evaluated = m.Top1Err, m.Top5Err, m.Step, true
			return
		}
	}
}

// nothingToTrain completes the Result of a resume that finds its run
// already at --max-steps or --epochs: the run's last validation, from its
// log, and the run's time as it was (this process did none of its work,
// and a requeue that finds it done must not add to it).
func nothingToTrain(r *Result, out string) *Result {
	ms := readMetrics(out, r.Steps)
	r.lastValidation(ms)
	r.RunSeconds = priorSeconds(ms, out, r.Steps)
	return r
}
