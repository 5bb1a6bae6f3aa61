// Command train trains AlexNet on shards written by ingest, as the paper
// did (SGD with momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10 on
// validation plateaus, batch 128, random 224 crops with flips and PCA
// lighting), checkpoints and resumes exactly, and evaluates with the
// centre crop or the paper's ten crops.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/nn/gpu"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
	"github.com/alexnet-repro/alexnet/shards"
)

func main() {
	ctx, stop := cli.InterruptContext()
	cli.OutliveReaders()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageHead = `Usage: train --shards DIR [flags]

Trains AlexNet on shards written by ingest. Defaults follow the paper; the
README lists each place where this code departs from it.

Examples:
  train --shards ./shards --out runs/alexnet
  train --shards demo/shards --model small --init he --epochs 3 --batch 64 --lr 0.01 --out runs/demo
  train --shards ./shards --out runs/alexnet --resume
  train --shards ./shards --out runs/alexnet --overwrite
  train --shards ./shards --eval-only --checkpoint runs/alexnet/checkpoint.ckpt --ten-crop

Output in --out: checkpoint.ckpt (every --checkpoint-every steps and every
epoch; the one before it kept as checkpoint.prev.ckpt), clock.json (the
run's time at it), metrics.jsonl, loss.png, error.png, conv1-filters.png.

Exit codes: 0 done, 1 failed (or stopped before the run's first
checkpoint), 2 usage: a bad flag, a --shards or --checkpoint that does
not exist (or a file for --shards), --out already holding a run without
--resume or --overwrite, or --resume with flags or shards that do not
continue the checkpoint's run (--eval-only: a checkpoint whose crop or
classes do not fit the shards); 130 interrupted (Ctrl-C, SIGTERM, SIGHUP)
with the run saved: --resume continues it (--eval-only: nothing to save).

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	o := cli.NewOutcome("train", args, stdout, stderr)
	defer func() { code = o.Finish(code) }()
	stdout = o.Stdout()
	fs := cli.NewFlags("train", stdout, stderr, usageHead)
	var c trainer.Config
	fs.StringVar(&c.Shards, "shards", "", "shard directory written by ingest (required)")
	fs.StringVar(&c.Model, "model", "alexnet", "model: "+strings.Join(alexnet.Variants(), ", "))
	fs.StringVar(&c.Init, "init", "", "initialisation: paper (N(0,0.01), biases 1 in conv2/4/5, fc6/7) or he (N(0, 2/fan_in), biases 0; inputs divided by the std for every model); default: the model's ("+modelInits()+")")
	fs.IntVar(&c.Epochs, "epochs", 90, "epochs")
	fs.IntVar(&c.Batch, "batch", 128, "batch size")
	fs.IntVar(&c.Crop, "crop", 0, "crop side (0: 7/8 of the shards' side, 224 from 256)")
	fs.Float64Var(&c.LR, "lr", 0.01, "initial learning rate")
	fs.Float64Var(&c.Momentum, "momentum", 0.9, "momentum")
	fs.Float64Var(&c.WeightDecay, "weight-decay", 5e-4, "weight decay")
	dropout := fs.String("dropout", "inverted", "dropout's form: inverted (kept units ×2 in training, as Caffe and PyTorch) or paper (the paper's: kept units ×1, and evaluation ×0.5)")
	biasDecay := fs.Bool("bias-decay", true, "apply --weight-decay to the biases too, as PyTorch's SGD does (false: to the weights alone, as the authors' cuda-convnet did)")
	fs.StringVar(&c.Schedule, "schedule", "plateau", "lr schedule: plateau (÷10 when val error stalls, at most 3 times) or step:N (÷10 every N epochs)")
	fs.IntVar(&c.Patience, "patience", 3, "plateau: epochs without a new best validation error at the current lr before it falls (1 lets one noisy epoch drop it)")
	device := fs.String("device", "auto", "auto (cuda when a GPU and its libraries load, else cpu), cpu or cuda")
	precision := fs.String("precision", "tf32", "GPU math: tf32 or fp32")
	deterministic := fs.Bool("deterministic", false, "GPU: only deterministic cuDNN algorithms and pooling, so a rerun repeats bit for bit (may be slower); CPU runs always do")
	fs.StringVar(&c.Out, "out", "runs/alexnet", "run directory")
	fs.BoolVar(&c.Resume, "resume", false, "continue from --out's checkpoint (its learning-rate schedule included)")
	fs.BoolVar(&c.Overwrite, "overwrite", false, "start a new run even where --out already holds one (its checkpoint is replaced)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of initialisation, shuffling, augmentation and dropout")
	fs.Int64Var(&c.MaxSteps, "max-steps", 0, "stop after this many steps in all, with a checkpoint (0: no limit)")
	fs.IntVar(&c.LogEvery, "log-every", 50, "steps between log lines (0: epoch lines only)")
	fs.IntVar(&c.CkptEvery, "checkpoint-every", 1000, "steps between checkpoints, which are also written every epoch (0: every epoch only)")
	fs.IntVar(&c.Workers, "workers", 0, "pipeline decode workers (0: all cores)")
	sigma := fs.Float64("lighting", 0.1, "PCA lighting σ (0 turns it off)")
	fs.IntVar(&c.EvalBatch, "eval-batch", 0, "validation batch (0: --batch; with --eval-only and no --batch, the batch the checkpoint's run trained at)")
	fs.IntVar(&c.MaxValImages, "max-val-images", 0, "validate on at most this many images each epoch, or with --eval-only (0: all)")
	evalOnly := fs.Bool("eval-only", false, "evaluate --checkpoint on the val split and exit")
	ckpt := fs.String("checkpoint", "", "checkpoint file, or a run folder (train's --out), for --eval-only")
	tenCrop := fs.Bool("ten-crop", false, "--eval-only: average the paper's ten crops")
	asJSON := fs.Bool("json", false, "print the result as JSON on stdout")
	// Interspersed, so that flags after a stray argument (--json among
	// them) are still read, and the argument named.
	pos, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return o.ParseFailed(fs, args, err)
	}
	o.JSON = *asJSON
	c.NoBiasDecay = !*biasDecay
	c.PaperDropout = *dropout == "paper"
	if len(pos) != 0 {
		// `--bias-decay false`: Go's true/false flags take no separate value.
		if err := cli.StrayBoolValue(fs, args, pos[:1]); err != nil {
			return o.Fail(cli.ExitUsage, err)
		}
		return o.Failf(cli.ExitUsage, "unexpected argument %q: train takes flags only, the shards as --shards DIR (see --help)", pos[0])
	}
	if c.Shards == "" {
		return o.Fail(cli.ExitUsage, "--shards DIR is required (see --help)")
	}
	if c.Out == "" && !*evalOnly {
		return o.Fail(cli.ExitUsage, "--out DIR must name a folder (the default is runs/alexnet)")
	}
	// Before resumeDefaults, whose notes would read as if the resume
	// were going ahead.
	if c.Resume && c.Overwrite {
		return o.Fail(cli.ExitUsage, "--resume and --overwrite contradict each other")
	}
	if c.Resume && !*evalOnly {
		if err := resumeDefaults(fs, &c, sigma, stderr); err != nil {
			return o.Fail(cli.ExitFailure, "--resume:", err)
		}
	}
	// Usage errors come before the device probe, whose "no usable GPU"
	// line would be noise in front of them.
	if *evalOnly && *ckpt == "" {
		return o.Fail(cli.ExitUsage, "--eval-only needs --checkpoint FILE (or a run folder)")
	}
	if *ckpt != "" && !*evalOnly {
		// Read by a user of other frameworks as "start from these
		// weights"; training would silently start from scratch.
		return o.Fail(cli.ExitUsage, "--checkpoint is for --eval-only; to continue a run use --resume with its --out (starting a new run from a checkpoint's weights is not supported)")
	}
	if err := check(c, *sigma, *precision, *dropout, *evalOnly, *tenCrop); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	// An --out that cannot be a folder is a mistake in the flags, as
	// ingest's is, and is named as one before any work.
	if !*evalOnly {
		folder, p := cli.NearestFolder(c.Out)
		if p != "" {
			return o.Failf(cli.ExitUsage, "--out %s: %s is a file, not a folder", c.Out, p)
		}
		// Nor would one train cannot write in (another user's, a
		// read-only mount) be found only after the model is built.
		if err := cli.CannotWrite(c.Out, folder); err != nil {
			return o.Fail(cli.ExitFailure, err)
		}
	}
	if *evalOnly {
		// The checkpoint fixes the network; a flag that looks obeyed but
		// is not would mislead.
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "model", "crop", "init", "seed", "dropout":
				fmt.Fprintf(stderr, "train: --%s is ignored with --eval-only: the checkpoint's is used\n", f.Name)
			case "epochs", "lr", "momentum", "weight-decay", "bias-decay", "schedule", "patience", "resume", "overwrite", "out",
				"max-steps", "log-every", "checkpoint-every", "lighting":
				fmt.Fprintf(stderr, "train: --%s is ignored with --eval-only: nothing is trained\n", f.Name)
			}
		})
	}
	if c.Resume && !*evalOnly {
		// The schedule, its learning rate included, continues from the
		// checkpoint; say so rather than let a changed flag look obeyed.
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "lr", "schedule", "patience", "init":
				fmt.Fprintf(stderr, "train: --%s is ignored with --resume: the run continues with the checkpoint's\n", f.Name)
			}
		})
	}
	// A path that names nothing is a typo: a usage error, said before
	// the device probe (as ingest's missing dataset is).
	if err := cli.Missing("--shards", c.Shards, "--checkpoint", *ckpt); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	c.Sigma = sigmaOption(*sigma)
	if c.EvalBatch == 0 && *evalOnly && !cli.Given(fs, "batch") {
		// The batch the run validated at, so that --eval-only repeats
		// its logged val_loss to the last digit (a sum's order is the
		// batch's); a checkpoint that cannot be read is Evaluate's to
		// report.
		if h, err := trainer.ReadHeader(checkpointFile(*ckpt)); err == nil && h.Batch > 0 {
			c.EvalBatch = h.Batch
		}
	}
	if c.EvalBatch == 0 {
		c.EvalBatch = c.Batch
	}
	// While training, the network is built for --batch: a smaller
	// validation batch would be padded to it, each one costing a whole
	// batch's pass (--eval-batch 1 made validation 5× slower) and saving
	// no memory. --eval-only builds its own at --eval-batch.
	if !*evalOnly && c.EvalBatch > 0 && c.EvalBatch < c.Batch {
		fmt.Fprintf(stderr, "train: note: --eval-batch %d is below --batch %d: validation during training runs at %d, the batch the network is built for (a smaller one saves no memory there); --eval-only uses --eval-batch\n", c.EvalBatch, c.Batch, c.Batch)
		c.EvalBatch = c.Batch
	}
	// --precision is the GPU's math: on the CPU, a given one is noted as
	// ignored rather than taken in silence (the CPU backend is float32).
	precisionNote := ""
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "precision" {
			precisionNote = "--precision " + *precision + " is for the GPU and is ignored: the CPU computes in float32"
		}
	})
	cpuNote := func(note string) string {
		if precisionNote == "" || note == "" {
			return note + precisionNote
		}
		return note + "; " + precisionNote
	}
	switch *device {
	case "cpu":
		if *evalOnly && precisionNote != "" {
			fmt.Fprintln(stderr, "train: note: "+precisionNote)
		} else {
			c.Note = cpuNote("")
		}
	case "auto", "cuda":
		if _, err := cuda.Init(); err != nil {
			if *device == "cuda" {
				return o.Failf(cli.ExitFailure, "--device cuda: %v", err)
			}
			if *evalOnly {
				fmt.Fprintln(stderr, "train: "+cpuNote("no usable GPU, evaluating on the CPU"))
			} else {
				// Said once Train has checked the settings against the
				// shards and --out, after which it is news.
				c.Note = cpuNote("no usable GPU, training on the CPU")
			}
			break
		}
		c.NewBackend = func(spec alexnet.Spec, batch int, params map[string][]float32, seed uint64, mean, std [3]float32) (trainer.Backend, error) {
			p, err := gpu.ParsePrecision(*precision) // check has accepted it
			if err != nil {
				return nil, err
			}
			return gpu.NewBackend(spec, batch, params, gpu.Options{
				Precision: p, Seed: seed, Mean: mean, Std: std, Deterministic: *deterministic,
			})
		}
	default:
		return o.Failf(cli.ExitUsage, "unknown --device %q (want auto, cpu or cuda)", *device)
	}
	if *evalOnly {
		r, ck, err := trainer.EvaluateCheckpoint(ctx, *ckpt, c.Shards, *tenCrop, c.EvalBatch, c.MaxValImages, c.Workers, c.NewBackend)
		if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
			// A scheduler's requeue reads the code: an interrupt, not a failure.
			return o.Failf(cli.ExitInterrupted, "interrupted: the evaluation stopped before it ended, with nothing to save; run it again")
		}
		if errors.Is(err, shards.ErrNoDir) || errors.Is(err, trainer.ErrConfig) {
			return o.Fail(cli.ExitUsage, err)
		}
		if err != nil {
			return o.Failf(cli.ExitFailure, "%v%s", err, repairHint(err, c.Shards, ""))
		}
		addNote := func(note string) { r.Note = strings.TrimPrefix(r.Note+"; "+note, "; ") }
		if r.Unlabelled > 0 {
			addNote(fmt.Sprintf("%d of the validation images read have no label and were not scored", r.Unlabelled))
		}
		// The run's validation figures were over its --max-val-images:
		// these are over what this evaluation read, and would not repeat
		// them without a word.
		if n := ck.MaxValImages; n != nil && *n > 0 && *n < r.Images && !cli.Given(fs, "max-val-images") {
			addNote(fmt.Sprintf("the run validated on its first %d images (--max-val-images %d); these figures are over %d: give --max-val-images %d to score the images it validated on", *n, *n, r.Images, *n))
		}
		if ck.Dropout() == "paper" {
			addNote("the run trained with the paper's dropout, so evaluation multiplies the dropout layers' units by 1−p")
		}
		if ck.Classes <= 5 {
			addNote(fmt.Sprintf("with %d classes every label is among the top 5: top-5 error is 0 by construction", ck.Classes))
		}
		if r.Note != "" {
			fmt.Fprintln(stderr, "train: note:", r.Note)
		}
		if r.Images == 0 {
			return o.Failf(cli.ExitFailure, "%s has no labelled validation images to evaluate on", c.Shards)
		}
		views := "centre crop"
		if *tenCrop {
			views = "10 crops"
		}
		if *asJSON {
			if err := json.NewEncoder(stdout).Encode(map[string]any{"checkpoint": checkpointFile(*ckpt), "model": ck.Model, "step": ck.Step, "views": views,
				"images": r.Images, "unlabelled": r.Unlabelled, "top1_err": r.Top1Err, "top5_err": r.Top5Err, "loss": r.Loss, "note": r.Note, "batch": r.Batch,
				"dropout": ck.Dropout()}); err != nil {
				return o.Fail(cli.ExitFailure, "--json:", err)
			}
			return cli.ExitOK
		}
		table := fmt.Sprintf("| model | checkpoint step | views | images | top-1 error | top-5 error |\n|---|---|---|---|---|---|\n"+
			"| %s | %d | %s | %d | %.2f%% | %.2f%% |\n", ck.Model, ck.Step, views, r.Images, 100*r.Top1Err, 100*r.Top5Err)
		if _, err := io.WriteString(stdout, table); err != nil {
			return o.Fail(cli.ExitFailure, "writing the result:", err)
		}
		return cli.ExitOK
	}
	// Which checkpoint --out held before the run, so that a damaged-shard
	// hint offers --resume only for this run's own: under --overwrite the
	// shards are read before the old run's checkpoint is replaced.
	ckptPath := filepath.Join(c.Out, trainer.CheckpointFile)
	before, _ := os.Stat(ckptPath)
	res, err := trainer.Train(ctx, c, stderr)
	if err != nil {
		code := cli.ExitFailure
		if errors.Is(err, trainer.ErrRunExists) || errors.Is(err, trainer.ErrResumeMismatch) || errors.Is(err, trainer.ErrConfig) ||
			errors.Is(err, trainer.ErrNoRun) || errors.Is(err, trainer.ErrBadOut) || errors.Is(err, shards.ErrNoDir) {
			code = cli.ExitUsage
		}
		if errors.Is(err, trainer.ErrInterrupted) {
			code = cli.ExitInterrupted
		}
		// A run that stopped before its first checkpoint starts again; with
		// --overwrite where it left a log or plots, which a plain run
		// refuses.
		then := "; then run the same train command again"
		if trainer.LeftOutputs(c.Out) && !c.Overwrite {
			then += ", with --overwrite"
		}
		if after, serr := os.Stat(ckptPath); serr == nil {
			// Under --overwrite, a checkpoint unchanged since the start is
			// the run being replaced; a new one is this run's own.
			if c.Overwrite && before != nil && os.SameFile(before, after) && before.ModTime().Equal(after.ModTime()) {
				then = "; then run the same train command again"
			} else {
				then = "; then --resume this run"
			}
		}
		return o.Failf(code, "%v%s", err, repairHint(err, c.Shards, then))
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			return o.Fail(cli.ExitFailure, "--json:", err)
		}
	}
	val := "no validation pass in this run"
	if res.Unscored {
		val = "no labelled validation images to score"
	}
	if res.Evaluated {
		val = fmt.Sprintf("val top-1 error %.2f%% (accuracy %.2f%%), top-5 error %.2f%%", 100*res.Top1Err, 100*(1-res.Top1Err), 100*res.Top5Err)
		if res.ValStep != res.Steps {
			// --max-steps within an epoch: the figures are the last
			// epoch's, not the checkpoint's, which a script reading
			// top1_err beside it would take them for.
			val += fmt.Sprintf(" at step %d, the last epoch's end (--eval-only scores the step-%d checkpoint)", res.ValStep, res.Steps)
		}
	}
	var plots []string
	for _, f := range []string{"loss.png", "error.png", "conv1-filters.png"} {
		if _, err := os.Stat(filepath.Join(c.Out, f)); err == nil {
			plots = append(plots, f)
		}
	}
	plotsAt := "no plots"
	if len(plots) > 0 {
		plotsAt = fmt.Sprintf("%s in %s", strings.Join(plots, ", "), c.Out)
	}
	secs := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)).Round(time.Second) } // as the epoch lines round them
	took := fmt.Sprintf("in %s", secs(res.Seconds))
	if res.RunSeconds >= res.Seconds+1 {
		took += fmt.Sprintf(" (the run %s in all, across resumes)", secs(res.RunSeconds))
	}
	fmt.Fprintf(stderr, "train: done (%s): %s, %s %s; %s; checkpoint %s; %s\n",
		res.Stopped, cli.Count(int(res.Steps), "step", "steps"), cli.Count(res.Epoch, "epoch", "epochs"), took, val, res.Checkpoint, plotsAt)
	return cli.ExitOK
}

// modelInits says which initialisation each model defaults to, from the
// specs themselves: "paper for alexnet, alexnet-convnet and alexnet-owt, he for small and
// small-fc".
func modelInits() string {
	var order []string
	by := map[string][]string{}
	for _, v := range alexnet.Variants() {
		spec, err := alexnet.Build(v, 10, 0)
		if err != nil {
			continue
		}
		if by[spec.InitScheme] == nil {
			order = append(order, spec.InitScheme)
		}
		by[spec.InitScheme] = append(by[spec.InitScheme], v)
	}
	var parts []string
	for _, scheme := range order {
		models := by[scheme]
		list := models[0]
		if n := len(models); n > 1 {
			list = strings.Join(models[:n-1], ", ") + " and " + models[n-1]
		}
		parts = append(parts, scheme+" for "+list)
	}
	return strings.Join(parts, ", ")
}

// repairHint says how to repair damaged shards when err is damage in
// one, "" otherwise. Rerunning ingest keeps a shard whose sources are
// unchanged, so the repair takes deleting the damaged ones first.
func repairHint(err error, dir, then string) string {
	// A shard's own fault: damaged, malformed, cut short or missing.
	// A shard this user may not read is not damage: deleting it would
	// lose a good shard.
	var re *shards.RecordError
	if !errors.Is(err, shards.ErrChecksum) && !errors.Is(err, shards.ErrFormat) && !errors.As(err, &re) || errors.Is(err, os.ErrPermission) {
		return ""
	}
	return fmt.Sprintf("\n(`shardtool verify %s` names every damaged shard: delete those and run the same ingest command again, which remakes only them%s)", dir, then)
}

// checkpointFile is the checkpoint file --checkpoint names: the run
// folder's checkpoint.ckpt where it names a folder, as trainer.Load reads.
func checkpointFile(p string) string {
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return filepath.Join(p, trainer.CheckpointFile)
	}
	return p
}

// resumeDefaults takes the run's --model, --batch, --crop, --seed, --dropout,
// --epochs, --log-every and --max-val-images from --out's checkpoint
// where the command line leaves them out, so that `train --shards S --out
// R --resume` continues any run to its end. A flag given stays: Train
// refuses any that differs from the run's but --epochs (which may extend
// or shorten the run), --log-every (the log's spacing) and
// --max-val-images (the validation set), which it notes. A
// damaged checkpoint is the error returned, before any flag is judged at
// its default; one that is missing or cannot be opened is left to Train
// to report.
func resumeDefaults(fs *flag.FlagSet, c *trainer.Config, sigma *float64, stderr io.Writer) error {
	h, err := trainer.ReadRunHeader(c.Out)
	if errors.Is(err, trainer.ErrCheckpoint) || errors.Is(err, trainer.ErrNewerCheckpoint) {
		return err
	}
	if err != nil {
		return nil
	}
	if err := h.CheckNeeds(true); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(c.Out, trainer.CheckpointFile), err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var took []string
	// take assigns a flag left out from the run's value, and names it on
	// stderr unless it is what the flag would have given anyway (usual).
	take := func(flag string, v any, usual string, assign func()) {
		if set[flag] {
			return
		}
		assign()
		if fmt.Sprint(v) != usual {
			took = append(took, fmt.Sprintf("--%s %v", flag, v))
		}
	}
	def := func(flag string) string { return fs.Lookup(flag).DefValue }
	take("model", h.Model, def("model"), func() { c.Model = h.Model })
	if h.Batch > 0 { // kept since checkpoints hold it
		take("batch", h.Batch, def("batch"), func() { c.Batch = h.Batch })
	}
	// The crop is the model's input side, which every checkpoint holds.
	// It is named unless it is --crop's default, 7/8 of the image side,
	// which checkpoints from before that side was kept cannot tell.
	usualCrop := ""
	if h.ImageHW != 0 {
		usualCrop = fmt.Sprint(h.ImageHW * 7 / 8)
	}
	take("crop", h.InputHW, usualCrop, func() { c.Crop = h.InputHW })
	take("seed", h.Seed, def("seed"), func() { c.Seed = h.Seed })
	form := h.Dropout()
	take("dropout", form, def("dropout"), func() { c.PaperDropout = form == "paper" })
	if h.Epochs > 0 { // kept since checkpoints hold it
		take("epochs", h.Epochs, def("epochs"), func() { c.Epochs = h.Epochs })
	}
	// The log's spacing too: metrics.jsonl would change it mid-run
	// otherwise, and the checkpoint's sums toward the next line with it.
	if n := h.LogEvery; n != nil {
		take("log-every", *n, def("log-every"), func() { c.LogEvery = *n })
	}
	// And the validation set: the error figures, and a plateau
	// schedule's drops, follow it.
	if n := h.MaxValImages; n != nil {
		take("max-val-images", *n, def("max-val-images"), func() { c.MaxValImages = *n })
	}
	if len(took) > 0 {
		fmt.Fprintf(stderr, "train: --resume: the run's %s, from its checkpoint\n", strings.Join(took, ", "))
	}
	// Momentum, weight decay (the biases' too) and lighting continue as
	// the run had them whatever the flags say, and the trainer names one
	// given with another value. Left out, they are the run's, silently: a
	// note that the run keeps --lighting 0, "not 0.1", read as a flag
	// never given.
	if hy := h.Hyper; hy != nil {
		if !set["momentum"] {
			c.Momentum = hy.Momentum
		}
		if !set["weight-decay"] {
			c.WeightDecay = hy.WeightDecay
		}
		if !set["bias-decay"] {
			c.NoBiasDecay = hy.NoBiasDecay
		}
		if !set["lighting"] {
			*sigma = float64(hy.Lighting)
		}
	}
	return nil
}

// check rejects flag values that cannot mean a run, before any work: a
// mistyped value must not train for hours at a default, or loop forever.
func check(c trainer.Config, sigma float64, precision, dropout string, evalOnly, tenCrop bool) error {
	if _, err := gpu.ParsePrecision(precision); err != nil {
		return fmt.Errorf("--precision: want fp32 or tf32, not %q", precision)
	}
	if tenCrop && !evalOnly {
		return errors.New("--ten-crop is for --eval-only (validation during training uses the centre crop)")
	}
	// What evaluation uses is checked either way; what only training
	// uses, and the checkpoint's own settings (model, crop, init), only
	// for training: --eval-only ignores them with a note.
	for _, f := range []struct {
		name string
		bad  bool
		want string
	}{
		{"batch", c.Batch < 1, "at least 1"},
		{"eval-batch", c.EvalBatch < 0, "0 (--batch) or more"},
		{"workers", c.Workers < 0 || c.Workers > cli.MaxWorkers, fmt.Sprintf("0 (all cores) to %d", cli.MaxWorkers)},
		{"max-val-images", c.MaxValImages < 0, "0 (all) or more"},
	} {
		if f.bad {
			return fmt.Errorf("--%s: want %s", f.name, f.want)
		}
	}
	if evalOnly {
		return nil
	}
	if !slices.Contains(alexnet.Variants(), c.Model) {
		return fmt.Errorf("unknown --model %q (want %s)", c.Model, strings.Join(alexnet.Variants(), ", "))
	}
	if _, err := trainer.ParseSchedule(c.Schedule, c.LR, c.Patience); err != nil {
		return err
	}
	if dropout != "inverted" && dropout != "paper" {
		return fmt.Errorf("--dropout: want inverted or paper, not %q", dropout)
	}
	for _, f := range []struct {
		name string
		bad  bool
		want string
	}{
		{"init", c.Init != "" && c.Init != "paper" && c.Init != "he", "paper or he"},
		{"epochs", c.Epochs < 1, "at least 1"},
		{"crop", c.Crop < 0, "0 (7/8 of the shards' side) or more"},
		// The updates and the pipeline take float32s: a value must still be
		// what was asked for once converted (1e39 is +Inf there, 1e-46 is 0).
		{"lr", !(float32(c.LR) > 0) || !finite32(c.LR), "a positive number a float32 holds"},
		{"momentum", !(c.Momentum >= 0 && float32(c.Momentum) < 1), "in [0, 1)"},
		{"weight-decay", !(c.WeightDecay >= 0) || !finite32(c.WeightDecay), "0 or more, as a float32 holds"},
		{"patience", c.Patience < 1, "at least 1"},
		{"max-steps", c.MaxSteps < 0, "0 (no limit) or more"},
		{"log-every", c.LogEvery < 0, "0 (epoch lines only) or more"},
		{"checkpoint-every", c.CkptEvery < 0, "0 (every epoch only) or more"},
		{"lighting", !(sigma >= 0) || !finite32(sigma), "0 (off) or more, as a float32 holds"},
	} {
		if f.bad {
			return fmt.Errorf("--%s: want %s", f.name, f.want)
		}
	}
	return nil
}

// sigmaOption is --lighting as trainer.Config.Sigma: 0 is off there
// only when negative, as the pipeline reads 0 as its default, and a value
// that rounds to 0 in float32 (1e-46) is off as well.
func sigmaOption(flag float64) float32 {
	if float32(flag) == 0 {
		return -1
	}
	return float32(flag)
}

// finite32 says whether v is finite once it is a float32.
func finite32(v float64) bool {
	f := float64(float32(v))
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}
