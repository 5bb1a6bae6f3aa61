package trainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/shards"
)

// A figure a line measures is written even when it is 0: a top-5 error of
// 0 on a small validation set must not read as a missing field.
func TestMetricZerosAreWritten(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Metric
		want []string // keys that must be present
		not  []string // keys that must be absent
	}{
		{"epoch with perfect top-5", Metric{Kind: "epoch", Step: 9, Top1Err: 0.5, Top5Err: 0, ValLoss: 0.7, TrainErr: 0, TrainLoss: 0.3},
			[]string{"top1_err", "top5_err", "val_loss", "train_top1_err", "train_loss", "lr", "seconds"}, []string{"loss", "img_per_s", "data_wait", "no_val"}},
		{"epoch without validation", Metric{Kind: "epoch", Step: 9, NoVal: true, TrainErr: 0.25, TrainLoss: 0.3},
			[]string{"no_val", "train_top1_err", "train_loss"}, []string{"top1_err", "top5_err", "val_loss"}},
		{"step with no data wait", Metric{Kind: "step", Step: 5, Loss: 1.5, ImgPerS: 100, DataWait: 0},
			[]string{"loss", "img_per_s", "data_wait"}, []string{"top1_err", "top5_err", "val_loss", "train_top1_err", "train_loss"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			for _, k := range tc.want {
				if _, ok := got[k]; !ok {
					t.Errorf("%s: no %q", b, k)
				}
			}
			for _, k := range tc.not {
				if _, ok := got[k]; ok {
					t.Errorf("%s: has %q", b, k)
				}
			}
			var back Metric
			if err := json.Unmarshal(b, &back); err != nil || back != tc.m {
				t.Errorf("round trip: %+v, want %+v (%v)", back, tc.m, err)
			}
		})
	}
}

// --max-steps counts steps in all: resuming a checkpoint already at or
// past it trains nothing and leaves the checkpoint as it was; the result
// counts the checkpoint's epochs.
func TestResumeAtMaxStepsTrainsNothing(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16) // 4 steps an epoch at batch 16
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps = 5
	if r, err := Train(context.Background(), cfg, io.Discard); err != nil || r.Steps != 5 {
		t.Fatalf("first run: %+v %v", r, err)
	}
	ckPath := filepath.Join(out, CheckpointFile)
	before, _ := os.ReadFile(ckPath)
	for _, max := range []int64{5, 3} {
		res := cfg
		res.Resume, res.MaxSteps = true, max
		r, err := Train(context.Background(), res, io.Discard)
		if err != nil || r.Steps != 5 || r.Stopped != "max-steps" || r.Epoch != 1 {
			t.Fatalf("--resume --max-steps %d: %+v %v, want 5 steps, 1 epoch done", max, r, err)
		}
		if after, _ := os.ReadFile(ckPath); string(after) != string(before) {
			t.Fatalf("--resume --max-steps %d changed the checkpoint", max)
		}
	}
	// A finished run resumed reports its epochs, not 0, and its last
	// validation and time (clock.json's) as the run that finished had them (a requeue of
	// a finished job must not lose its result, nor add to its time).
	res := cfg
	res.Resume, res.MaxSteps = true, 0
	done, err := Train(context.Background(), res, io.Discard)
	if err != nil || done.Steps != 8 || done.Epoch != 2 || !done.Evaluated || done.ValStep != 8 {
		t.Fatalf("finishing: %+v %v", done, err)
	}
	if r, err := Train(context.Background(), res, io.Discard); err != nil || r.Steps != 8 || r.Epoch != 2 || !r.Evaluated ||
		r.Top1Err != done.Top1Err || r.Top5Err != done.Top5Err || r.ValStep != 8 || r.RunSeconds != clockAt(out, 8) || r.RunSeconds <= 0 {
		t.Fatalf("resuming a finished run: %+v %v, want 8 steps, 2 epochs, and the finished run's validation and time (%+v)", r, err, done)
	}
	// Within an epoch: the run's last epoch end, from before this process.
	within := res
	within.Resume, within.MaxSteps, within.Epochs, within.Out = false, 6, 3, t.TempDir()
	mustTrain(t, within) // steps 1-6: epoch 1 ends at step 4
	within.Resume, within.MaxSteps = true, 7
	if r, err := Train(context.Background(), within, io.Discard); err != nil || r.Steps != 7 || !r.Evaluated || r.ValStep != 4 {
		t.Fatalf("a resume that ends within an epoch: %+v %v, want the validation at step 4", r, err)
	}
	// --epochs counts epochs in all: fewer than done trains nothing, and
	// says so.
	before, _ = os.ReadFile(ckPath)
	res.Epochs = 1
	var log strings.Builder
	if r, err := Train(context.Background(), res, &log); err != nil || r.Steps != 8 || r.Epoch != 2 || !strings.Contains(log.String(), "has done 2 epochs, --epochs 1: nothing to train") ||
		!strings.Contains(log.String(), "--epochs 1 shortens the run, which was to train 2") {
		t.Fatalf("resume --epochs 1 of a 2-epoch run: %+v %v\n%s", r, err, log.String())
	}
	if after, _ := os.ReadFile(ckPath); string(after) != string(before) {
		t.Fatal("--resume --epochs 1 changed the checkpoint")
	}
	// Stopped within epoch 1 (step 5 of 4 an epoch): the step past the
	// shortened run's end is in the checkpoint, and said to be.
	mid := cfg
	mid.Out = t.TempDir()
	if _, err := Train(context.Background(), mid, io.Discard); err != nil {
		t.Fatal(err)
	}
	mid.Resume, mid.MaxSteps, mid.Epochs = true, 0, 1
	log.Reset()
	if r, err := Train(context.Background(), mid, &log); err != nil || r.Steps != 5 || !strings.Contains(log.String(), "has done 1 epoch and 1 step of the next, --epochs 1: nothing to train") {
		t.Fatalf("resume --epochs 1 within epoch 1: %+v %v\n%s", r, err, log.String())
	}
}

// A model whose layers do not fit the crop is a setting that cannot make
// a run (exit 2), found before the run directory is touched.
func TestModelThatDoesNotFitTheCrop(t *testing.T) {
	for _, c := range []struct {
		model      string
		side, crop int // crop 0: the default, 7/8 of the side
		want       string
	}{
		{"alexnet", 24, 20, fmt.Sprintf("alexnet needs crops of at least %d px: ingest at --size %d or more; on these %d-px shards, --model small or small-fc",
			alexnet.MinInput("alexnet"), (alexnet.MinInput("alexnet")*8+6)/7, 24)},
		// 7/8 of 1 px is 0, which alexnet.Build reads as "the model's
		// default": the crop must be 1 px, and the message the same.
		{"small", 1, 0, "--model small at a 1-px crop: small at 1x1: "},
		{"small", 1, 0, fmt.Sprintf("small needs crops of at least %d px: ingest at --size %d or more", alexnet.MinInput("small"), (alexnet.MinInput("small")*8+6)/7)},
		// Shards big enough, the crop given too small: the models named
		// are those that fit at that crop, not at the shards' default.
		{"alexnet", 72, 62, "alexnet needs crops of at least 63 px (--crop 63 or more); at a 62-px crop, --model small or small-fc"},
		{"small-fc", 40, 6, "small-fc needs crops of at least 7 px (--crop 7 or more)"}, // and no model fits at 6
	} {
		shardDir := syntheticShardsOfSide(t, 32, 8, c.side)
		out := filepath.Join(t.TempDir(), "run")
		cfg := smallConfig(shardDir, out)
		cfg.Model, cfg.Crop = c.model, c.crop
		_, err := Train(context.Background(), cfg, io.Discard)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) || c.crop == 6 && !strings.HasSuffix(err.Error(), c.want) {
			t.Errorf("%s on %d-px shards: %v, want ErrConfig saying %q", c.model, c.side, err, c.want)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s on %d-px shards: the run directory was made: %v", c.model, c.side, err)
		}
	}
}

// Shards changed since ingest wrote meta.json (one deleted, cut short, or
// replaced by another ingest's) are found before --out is touched: an
// --overwrite on them must stop with the shard's name and leave the old
// run's checkpoint as it was, not remove it and fail at the first batch.
func TestOverwriteOnAlteredShardsKeepsOldRun(t *testing.T) {
	good := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(good, out)
	cfg.Epochs = 1
	mustTrain(t, cfg)
	ckPath := filepath.Join(out, CheckpointFile)
	before, err := os.ReadFile(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	// Another ingest of other images: same counts, shapes and classes.
	other := t.TempDir()
	tr, tl := synthetic(64, 24, 7)
	va, vl := synthetic(16, 24, 8)
	// Flat top rows: other payload sizes. (Same-size records with their
	// own CRCs leave the whole-file CRC unchanged, so sizes must differ
	// for the shard to be told apart; shards/FORMAT.md's trailer.)
	for _, im := range append(tr, va...) {
		clear(im[:24*3*6])
	}
	writeShards(t, other, 24, tr, va, tl, vl, 4)
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		alter func(dir string)
		says  string
	}{
		{"train shard deleted", func(dir string) { os.Remove(filepath.Join(dir, "train-00000.shard")) }, "train-00000.shard"},
		{"train shard cut short", func(dir string) { os.Truncate(filepath.Join(dir, "train-00000.shard"), 100) }, "train-00000.shard"},
		{"train shard from another ingest", func(dir string) {
			copyFile(filepath.Join(other, "train-00000.shard"), filepath.Join(dir, "train-00000.shard"))
		}, "not the shard meta.json lists"},
		{"val shard from another ingest", func(dir string) {
			copyFile(filepath.Join(other, "val-00000.shard"), filepath.Join(dir, "val-00000.shard"))
		}, "val-00000.shard"},
		{"meta.json from another ingest", func(dir string) {
			copyFile(filepath.Join(other, "meta.json"), filepath.Join(dir, "meta.json"))
		}, "not the shard meta.json lists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ents, err := os.ReadDir(good)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				copyFile(filepath.Join(good, e.Name()), filepath.Join(dir, e.Name()))
			}
			tc.alter(dir)
			c := smallConfig(dir, out)
			c.Epochs, c.Overwrite = 1, true
			_, err = Train(context.Background(), c, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("--overwrite on altered shards: %v, want an error saying %q", err, tc.says)
			}
			if after, err := os.ReadFile(ckPath); err != nil || string(after) != string(before) {
				t.Fatalf("the old run's checkpoint was not left as it was (%v)", err)
			}
		})
	}
}

// What a run folder holds besides a whole run: an --overwrite that cannot
// write the new metrics removes nothing; a resume takes only the file
// checkpoint.ckpt, never a folder of that name; and a folder whose
// checkpoints are gone but whose metrics and plots remain is still a run,
// which a plain new run does not silently rewrite.
func TestRunFolderOddities(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	fresh := func(t *testing.T) (Config, string) {
		out := t.TempDir()
		cfg := smallConfig(shardDir, out)
		cfg.MaxSteps, cfg.LogEvery = 2, 1
		mustTrain(t, cfg)
		return cfg, out
	}
	t.Run("overwrite that cannot write its metrics", func(t *testing.T) {
		for _, kind := range []string{"dangling link", "directory", "backup a directory"} {
			cfg, out := fresh(t)
			m := filepath.Join(out, MetricsFile)
			switch kind {
			case "directory":
				os.Remove(m)
				os.Mkdir(m, 0o755)
			case "dangling link":
				os.Remove(m)
				os.Symlink(filepath.Join(out, "gone", MetricsFile), m)
			default:
				os.MkdirAll(filepath.Join(m+".bak", "x"), 0o755)
			}
			cfg.Overwrite = true
			_, err := Train(context.Background(), cfg, io.Discard)
			// A link is refused first of all, before anything is read.
			if err == nil || !strings.Contains(err.Error(), "the old run is left as it was") && !(kind == "dangling link" && errors.Is(err, ErrBadOut)) {
				t.Fatalf("%s: %v, want a refusal that keeps the old run", kind, err)
			}
			if _, err := os.Stat(filepath.Join(out, CheckpointFile)); err != nil {
				t.Fatalf("%s: the old checkpoint went: %v", kind, err)
			}
		}
	})
	t.Run("checkpoint.ckpt a folder", func(t *testing.T) {
		cfg, out := fresh(t)
		ck := filepath.Join(out, CheckpointFile)
		b, err := os.ReadFile(ck)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(ck)
		os.Mkdir(ck, 0o755)
		os.WriteFile(filepath.Join(ck, CheckpointFile), b, 0o644) // a whole checkpoint inside
		cfg.Resume, cfg.MaxSteps = true, 3
		_, err = Train(context.Background(), cfg, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Fatalf("--resume with checkpoint.ckpt a folder: %v, want it refused as a directory", err)
		}
	})
	t.Run("checkpoint a symbolic link", func(t *testing.T) {
		_, other := fresh(t)
		target := filepath.Join(other, CheckpointFile)
		before, _ := os.ReadFile(target)
		for _, to := range []string{target, filepath.Join(other, "gone.ckpt")} {
			out := t.TempDir()
			os.Symlink(to, filepath.Join(out, CheckpointFile))
			cfg := smallConfig(shardDir, out)
			cfg.Resume, cfg.MaxSteps = true, 4
			_, err := Train(context.Background(), cfg, io.Discard)
			if !errors.Is(err, ErrBadOut) || !strings.Contains(err.Error(), "--out cannot be used: "+filepath.Join(out, CheckpointFile)+" is a symbolic link (to "+to+")") {
				t.Fatalf("--resume through a link to %s: %v", to, err)
			}
		}
		if after, _ := os.ReadFile(target); string(after) != string(before) {
			t.Fatal("the other run's checkpoint was written through the link")
		}
		// The log and the plots likewise: a new run is refused before it
		// writes anything through them.
		for _, name := range []string{MetricsFile, MetricsFile + ".bak", "loss.png"} {
			out := t.TempDir()
			victim := filepath.Join(t.TempDir(), "precious")
			os.WriteFile(victim, []byte("precious"), 0o644)
			os.Symlink(victim, filepath.Join(out, name))
			cfg := smallConfig(shardDir, out)
			cfg.MaxSteps, cfg.Overwrite = 2, true
			_, err := Train(context.Background(), cfg, io.Discard)
			if !errors.Is(err, ErrBadOut) || !strings.Contains(err.Error(), "is a symbolic link (to "+victim+")") {
				t.Fatalf("a run with %s a link: %v", name, err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Fatalf("%s's target was written through the link", name)
			}
		}
	})
	t.Run("metrics and plots without checkpoints", func(t *testing.T) {
		cfg, out := fresh(t)
		before, _ := os.ReadFile(filepath.Join(out, MetricsFile))
		os.Remove(filepath.Join(out, CheckpointFile))
		os.Remove(filepath.Join(out, PrevCheckpointFile))
		_, err := Train(context.Background(), cfg, io.Discard)
		if !errors.Is(err, ErrRunExists) || !strings.Contains(err.Error(), MetricsFile) || !strings.Contains(err.Error(), "--overwrite") {
			t.Fatalf("new run over a run's metrics: %v, want ErrRunExists naming %s", err, MetricsFile)
		}
		if after, _ := os.ReadFile(filepath.Join(out, MetricsFile)); string(after) != string(before) || len(before) == 0 {
			t.Fatal("the earlier run's metrics were rewritten")
		}
		// Plots alone are a run's outputs too; an empty metrics file is not.
		os.WriteFile(filepath.Join(out, MetricsFile), nil, 0o644)
		if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, ErrRunExists) || !strings.Contains(err.Error(), "loss.png") {
			t.Fatalf("new run over a run's plots: %v", err)
		}
		for _, f := range []string{"loss.png", "error.png", "conv1-filters.png"} {
			os.Remove(filepath.Join(out, f))
		}
		mustTrain(t, cfg)
		cfg.Overwrite = true
		mustTrain(t, cfg)
	})
}

// A damaged record stops a run before any step trains on it, and the
// state after the last whole step is saved, not lost back to the last
// checkpoint: repaired, the run resumes from there and ends with the
// checkpoint an undamaged run ends with.
func TestDamagedRecordSavesTheStepsBefore(t *testing.T) {
	shardDir := syntheticShards(t, 160, 40) // 10 steps an epoch at batch 16
	ref := smallConfig(shardDir, t.TempDir())
	ref.Epochs, ref.CkptEvery = 1, 1000
	mustTrain(t, ref)
	want, err := os.ReadFile(filepath.Join(ref.Out, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(shardDir, "train-00000.shard")
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)/2] ^= 0x40 // a record's bytes
	os.WriteFile(p, bad, 0o644)
	cfg := ref
	cfg.Out = t.TempDir()
	_, err = Train(context.Background(), cfg, io.Discard)
	var re *shards.RecordError
	if !errors.As(err, &re) || !errors.Is(err, shards.ErrChecksum) || !strings.Contains(err.Error(), "which trained on intact records only, is saved in "+filepath.Join(cfg.Out, CheckpointFile)) {
		t.Fatalf("a damaged record mid-epoch: %v", err)
	}
	// The message names the batch, not the step queued when the
	// pipeline, reading ahead, found it.
	if !strings.HasPrefix(err.Error(), "pipeline: ") {
		t.Errorf("the message does not begin with the damaged batch: %v", err)
	}
	h, herr := ReadHeader(filepath.Join(cfg.Out, CheckpointFile))
	if herr != nil || h.Step < 1 || !strings.Contains(err.Error(), fmt.Sprintf("the state after step %d,", h.Step)) {
		t.Fatalf("saved checkpoint %+v (%v) for %v", h, herr, err)
	}
	os.WriteFile(p, good, 0o644) // the repair: ingest remakes the shard as it was
	cfg.Resume = true
	mustTrain(t, cfg)
	if got, _ := os.ReadFile(filepath.Join(cfg.Out, CheckpointFile)); !bytes.Equal(got, want) {
		t.Fatal("the run resumed after the repair ends with another checkpoint than the undamaged run")
	}
}

// A resume rewrites metrics.jsonl with the lines up to its step: lines
// that do not read as train's metrics are named in a note and the file as
// it was kept beside it.
func TestResumeNotesDamagedMetrics(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps, cfg.CkptEvery, cfg.LogEvery = 4, 2, 1
	mustTrain(t, cfg)
	m := filepath.Join(out, MetricsFile)
	b, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	damaged := strings.Join(append(append(slices.Clone(lines[:2]), "garbage\n", "{}\n"), lines[2:]...), "")
	os.WriteFile(m, []byte(damaged), 0o644)
	res := cfg
	res.Resume, res.MaxSteps = true, 6
	var log bytes.Buffer
	if _, err := Train(context.Background(), res, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "2 lines that did not read as train's metrics left out (lines 3, 4); the file as it was is kept as "+m+".bak") {
		t.Errorf("no note on the dropped lines:\n%s", log.String())
	}
	if bak, _ := os.ReadFile(m + ".bak"); string(bak) != damaged {
		t.Error("metrics.jsonl.bak is not the file as it was")
	}
	after, _ := os.ReadFile(m)
	if strings.Contains(string(after), "garbage") || strings.Contains(string(after), `"kind":""`) || !strings.HasPrefix(string(after), lines[0]+lines[1]) {
		t.Errorf("metrics.jsonl after the resume:\n%s", after)
	}
	// A log deleted by hand: the resume says it starts again, as its
	// plots do.
	os.Remove(m)
	res.MaxSteps = 7
	log.Reset()
	if _, err := Train(context.Background(), res, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "train: note: "+m+" was gone: it starts again after step 6, so its plots leave out the steps before\n") {
		t.Errorf("no note on the log that was gone:\n%s", log.String())
	}
	// A new run in its place does not read the old log: no note, no
	// backup of it, and an old backup goes with the old run.
	os.WriteFile(m, []byte(damaged), 0o644)
	fresh := cfg
	fresh.Overwrite = true
	log.Reset()
	if _, err := Train(context.Background(), fresh, &log); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "did not read") {
		t.Errorf("a new run noted the old log's lines:\n%s", log.String())
	}
	if _, err := os.Stat(m + ".bak"); err == nil {
		t.Error("an --overwrite left the old run's metrics.jsonl.bak")
	}
}

// Each checkpoint keeps the one before it. When the latest is damaged, a
// resume refuses it, naming the previous one, intact, and what to do; moved
// into place, that one resumes. A new run where only the previous one is
// left is refused like any run, and --overwrite removes both.
func TestDamagedCheckpointOffersPrevious(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16) // 4 steps an epoch at batch 16
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps, cfg.CkptEvery = 6, 2
	if _, err := Train(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	ckPath, prevPath := filepath.Join(out, CheckpointFile), filepath.Join(out, PrevCheckpointFile)
	latest, err := ReadHeader(ckPath)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := ReadHeader(prevPath)
	if err != nil || prev.Step != 4 || latest.Step != 6 {
		t.Fatalf("previous checkpoint: %+v, %v; latest at step %d: want steps 4 and 6", prev, err, latest.Step)
	}
	b, _ := os.ReadFile(ckPath)
	b[len(b)/2] ^= 1
	if err := os.WriteFile(ckPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res := cfg
	res.Resume, res.MaxSteps = true, 8
	_, err = Train(context.Background(), res, io.Discard)
	if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), PrevCheckpointFile+" (step 4; epochs done: 1), is intact: move it to") ||
		strings.Count(err.Error(), "is intact") != 1 {
		t.Fatalf("resume from a damaged checkpoint: want the previous one offered once, to move and resume: %v", err)
	}
	// Evaluation and predict (Load, of the file or the run folder) name
	// the previous checkpoint too.
	for _, p := range []string{ckPath, out} {
		if _, err := Load(p); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), prevPath+" (step 4; epochs done: 1), is intact: give that one instead") {
			t.Fatalf("Load(%s) of a damaged checkpoint: %v", p, err)
		}
	}
	// Both damaged (the previous one in a tensor, which its header does
	// not show): neither is offered as intact, and the second is named.
	pb, _ := os.ReadFile(prevPath)
	spoilt := slices.Clone(pb)
	spoilt[len(spoilt)-len(spoilt)/4] ^= 1
	os.WriteFile(prevPath, spoilt, 0o644)
	_, err = Train(context.Background(), res, io.Discard)
	if !errors.Is(err, ErrCheckpoint) || strings.Contains(err.Error(), "is intact") || !strings.Contains(err.Error(), "the checkpoint before it is not usable either: "+prevPath) {
		t.Fatalf("resume with both checkpoints damaged: %v", err)
	}
	os.WriteFile(prevPath, pb, 0o644)
	if err := os.Rename(prevPath, ckPath); err != nil {
		t.Fatal(err)
	}
	if r, err := Train(context.Background(), res, io.Discard); err != nil || r.Steps != 8 {
		t.Fatalf("resume from the previous checkpoint: %+v, %v", r, err)
	}
	// Only the previous one left: a run all the same.
	if err := os.Remove(ckPath); err != nil {
		t.Fatal(err)
	}
	if _, err := Train(context.Background(), cfg, io.Discard); !errors.Is(err, ErrRunExists) || !strings.Contains(err.Error(), PrevCheckpointFile) {
		t.Fatalf("new run beside a previous checkpoint: %v", err)
	}
	if _, err := Train(context.Background(), res, io.Discard); !errors.Is(err, ErrNoRun) || !strings.Contains(err.Error(), "is intact: move it to") {
		t.Fatalf("resume with only the previous checkpoint: %v", err)
	}
	if _, err := Load(out); err == nil || !strings.Contains(err.Error(), "only the run's previous checkpoint, which is intact: give "+prevPath) {
		t.Fatalf("Load of a folder with only an intact previous checkpoint: %v", err)
	}
	// That one damaged too: neither a resume nor a new run sends the
	// user to move it into place; both say --overwrite.
	pb, _ = os.ReadFile(prevPath)
	os.WriteFile(prevPath, spoilt, 0o644)
	_, err = Train(context.Background(), res, io.Discard)
	if !errors.Is(err, ErrNoRun) || !strings.Contains(err.Error(), "the folder's only checkpoint cannot be used ("+prevPath) || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("resume with only a damaged previous checkpoint: %v", err)
	}
	_, err = Train(context.Background(), cfg, io.Discard)
	if !errors.Is(err, ErrRunExists) || strings.Contains(err.Error(), "move it") || !strings.Contains(err.Error(), "it cannot be used ("+prevPath) {
		t.Fatalf("new run beside a damaged previous checkpoint: %v", err)
	}
	os.WriteFile(prevPath, pb, 0o644)
	fresh := cfg
	fresh.Overwrite, fresh.MaxSteps = true, 1
	if _, err := Train(context.Background(), fresh, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(prevPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("--overwrite left the old run's previous checkpoint: %v", err)
	}
}

// A checkpoint that cannot be written (a full disk, which saveCheckpoint
// plays here) names the step and says what is left.
func TestCheckpointWriteFailureSaysWhatIsLeft(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps = 2
	cfg.LogEvery = 1
	saveCheckpoint = func(_ *Checkpoint, path string) error {
		return &os.PathError{Op: "write", Path: path + ".tmp", Err: syscall.ENOSPC}
	}
	t.Cleanup(func() { saveCheckpoint = (*Checkpoint).Save })
	_, err := Train(context.Background(), cfg, io.Discard)
	// No checkpoint to --resume: the advice is to start again, which the
	// log's lines make an --overwrite.
	if err == nil || !strings.Contains(err.Error(), "step 2 (") || !strings.Contains(err.Error(), "this run has written no checkpoint yet: run it again with --overwrite") ||
		strings.Contains(err.Error(), "--resume") {
		t.Fatalf("got %v", err)
	}
}

// A save that fails (a full disk) leaves both checkpoints as they were:
// the previous one is replaced only once the new one is written.
func TestFailedSaveKeepsBothCheckpoints(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps, cfg.CkptEvery = 6, 2
	if _, err := Train(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	saveCheckpoint = func(_ *Checkpoint, path string) error {
		return &os.PathError{Op: "write", Path: path + ".tmp", Err: syscall.ENOSPC}
	}
	t.Cleanup(func() { saveCheckpoint = (*Checkpoint).Save })
	res := cfg
	res.Resume, res.MaxSteps = true, 8
	if _, err := Train(context.Background(), res, io.Discard); err == nil || !strings.Contains(err.Error(), "no space left") ||
		!strings.Contains(err.Error(), "the last good checkpoint, "+filepath.Join(out, CheckpointFile)+" (step 6), is left as it was: free space for another checkpoint, then --resume continues from it") {
		t.Fatalf("resume with saves failing: %v", err)
	}
	for f, step := range map[string]int64{CheckpointFile: 6, PrevCheckpointFile: 4} {
		if h, err := ReadHeader(filepath.Join(out, f)); err != nil || h.Step != step {
			t.Errorf("%s after the failed save: %+v, %v; want step %d", f, h, err, step)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(out, "*.tmp")); len(left) > 0 {
		t.Errorf("left %v", left)
	}
}

// A run clears the temporary files a killed run left in its directory
// (its own names only: a user's file that ends in .tmp stays).
func TestRunClearsStaleTemps(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	// A folder named like a pattern must not widen what is removed: run1's
	// temporary files, beside it, are another run's.
	parent := t.TempDir()
	out, other := filepath.Join(parent, "run[1]"), filepath.Join(parent, "run1")
	for _, d := range []string{out, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(other, CheckpointFile+".0badf00d.tmp"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	stale := []string{CheckpointFile + ".0badf00d.tmp", CheckpointFile + ".tmp", "loss.png.12345678.tmp"}
	for _, f := range append(stale, "notes.tmp", "loss.png.old.tmp") {
		if err := os.WriteFile(filepath.Join(out, f), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps = 1
	if _, err := Train(context.Background(), cfg, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range stale {
		if _, err := os.Stat(filepath.Join(out, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", f, err)
		}
	}
	for _, f := range []string{filepath.Join(out, "notes.tmp"), filepath.Join(out, "loss.png.old.tmp"), filepath.Join(other, CheckpointFile+".0badf00d.tmp")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s, not this run's temporary file: %v", f, err)
		}
	}
}

// Larger images than the checkpoint trained on make objects larger in the
// crop: the note's factor is the shards' side over the training side.
func TestScaleNote(t *testing.T) {
	ck := &Checkpoint{ImageHW: 32, InputHW: 28}
	for _, tc := range []struct {
		side int
		want string
	}{
		{64, "objects appear 2.00× their training size"},
		{16, "objects appear 0.50× their training size"},
		{32, ""},
	} {
		got := ck.ScaleNote(&shards.Meta{Width: tc.side, Height: tc.side}, "sh")
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%d-px shards: note %q, want %q", tc.side, got, tc.want)
		}
	}
}

func TestErrorRate(t *testing.T) {
	for _, tc := range []struct {
		hits, n int
		want    string
	}{{19, 20, "0.05"}, {7, 10, "0.3"}, {0, 0, "0"}, {3, 3, "0"}, {0, 4, "1"}} {
		b, _ := json.Marshal(errorRate(tc.hits, tc.n))
		if string(b) != tc.want {
			t.Errorf("errorRate(%d, %d) = %s, want %s", tc.hits, tc.n, b, tc.want)
		}
	}
}

// overflowBackend is the CPU backend with validation logits that
// overflowed (+Inf and NaN in the third image of every batch, at 4 classes).
type overflowBackend struct{ Backend }

func (b overflowBackend) Logits(s *pipeline.Slot) ([]float32, error) {
	l, err := b.Backend.Logits(s)
	if err == nil && len(l) > 12 {
		l[11], l[12] = float32(math.Inf(1)), float32(math.NaN())
	}
	return l, err
}

// A model whose outputs overflow is not scored: ranking NaN probabilities
// counted every image a top-1 hit, so such a model scored 0% error, and
// --json then lost its NaN loss. Training stops on it naming the step, as
// it does for a non-finite loss, and --eval-only reports it.
func TestNonFiniteLogitsAreNotScored(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	overflow := func(spec alexnet.Spec, batch int, params map[string][]float32, seed uint64, mean, std [3]float32) (Backend, error) {
		b, err := NewCPU(spec, batch, params, seed, mean, std)
		return overflowBackend{b}, err
	}
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.Epochs, cfg.NewBackend = 1, overflow
	_, err := Train(context.Background(), cfg, io.Discard)
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "step 4 (") ||
		!strings.Contains(err.Error(), "validation image 3: output 3 is +Inf") {
		t.Fatalf("training: got %v", err)
	}
	// The same weights, finite: --eval-only scores them; overflowing: an error.
	cfg.NewBackend, cfg.Overwrite = nil, true
	mustTrain(t, cfg)
	ck := filepath.Join(out, CheckpointFile)
	if _, _, err := EvaluateCheckpoint(context.Background(), ck, shardDir, false, 16, 0, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := EvaluateCheckpoint(context.Background(), ck, shardDir, false, 16, 0, 0, overflow); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("--eval-only: got %v", err)
	}
}

// SetMomenta takes a checkpoint's tensors in spec order, and refuses a
// list that does not match the model rather than copying what fits.
func TestCPUSetMomenta(t *testing.T) {
	spec, err := alexnet.Build("small", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	be, err := NewCPU(spec, 2, nil, 1, [3]float32{}, [3]float32{1, 1, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	live, err := be.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	set := func() []Tensor {
		ts := make([]Tensor, len(live))
		for i, l := range live {
			ts[i] = Tensor{Name: l.Name, V: make([]float32, len(l.V))}
			for j := range ts[i].V {
				ts[i].V[j] = float32(i) + 0.5
			}
		}
		return ts
	}
	for _, tc := range []struct {
		name string
		edit func([]Tensor) []Tensor
	}{
		{"count", func(ts []Tensor) []Tensor { return ts[1:] }},
		{"name", func(ts []Tensor) []Tensor { ts[2].Name = "nope"; return ts }},
		{"size", func(ts []Tensor) []Tensor { ts[3].V = ts[3].V[1:]; return ts }},
	} {
		if err := be.SetMomenta(tc.edit(set())); err == nil {
			t.Errorf("%s: a mismatched list was accepted", tc.name)
		}
	}
	for _, l := range live {
		for _, v := range l.V {
			if v != 0 {
				t.Fatalf("a refused SetMomenta changed %s", l.Name)
			}
		}
	}
	if err := be.SetMomenta(set()); err != nil {
		t.Fatal(err)
	}
	now, err := be.Tensors()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range now {
		if l.V[len(l.V)-1] != float32(i)+0.5 {
			t.Fatalf("%s: momentum %v, want %v", l.Name, l.V[len(l.V)-1], float32(i)+0.5)
		}
	}
}

// otherArith is the CPU backend under another name for its arithmetic, as
// a resume on a machine whose OpenBLAS picks other kernels would be.
type otherArith struct{ Backend }

func (otherArith) Arith() string { return "other kernels" }

// A checkpoint names the arithmetic that made it, and a resume under
// another says that the run no longer repeats bit for bit; under the same
// it says nothing.
func TestResumeNotesOtherArith(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps = 2
	mustTrain(t, cfg)
	h, err := ReadHeader(filepath.Join(out, CheckpointFile))
	if err != nil || !strings.HasPrefix(h.Arith, "cpu ") || !strings.Contains(h.Arith, "BLAS ") {
		t.Fatalf("the checkpoint's arith: %q, %v", h.Arith, err)
	}
	cfg.Resume, cfg.MaxSteps = true, 3
	var log bytes.Buffer
	if _, err := Train(context.Background(), cfg, &log); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "bit for bit") {
		t.Errorf("a resume under the same arithmetic noted a change:\n%s", log.String())
	}
	cfg.MaxSteps = 4
	cfg.NewBackend = func(spec alexnet.Spec, batch int, params map[string][]float32, seed uint64, mean, std [3]float32) (Backend, error) {
		be, err := NewCPU(spec, batch, params, seed, mean, std)
		return otherArith{be}, err
	}
	log.Reset()
	if _, err := Train(context.Background(), cfg, &log); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("the run was trained with %s, and this resume computes with other kernels: it goes on, but its results will not repeat an uninterrupted run's bit for bit", h.Arith)
	if !strings.Contains(log.String(), want) {
		t.Errorf("no note of the other arithmetic:\n%s", log.String())
	}
	if h, _ := ReadHeader(filepath.Join(out, CheckpointFile)); h == nil || h.Arith != "other kernels" {
		t.Errorf("the resumed run's checkpoint names %v, want the arithmetic that made it", h)
	}
}

// A validation batch larger than the images to score is cut to them: the
// batch sizes the slots and the backend, so --eval-batch 100000 over 500
// images was 200 times the memory of one that fits (and more killed the
// process), for the same result.
func TestEvalBatchFitsTheImages(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16) // 16 val images
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.MaxSteps = 1
	mustTrain(t, cfg)
	ck := filepath.Join(out, CheckpointFile)
	errStop := errors.New("recorded")
	for _, tc := range []struct{ batch, maxImages, want int }{
		{1 << 20, 0, 16}, {8, 0, 8}, {1 << 20, 5, 5}, {3, 5, 3},
	} {
		var got int
		record := func(_ alexnet.Spec, batch int, _ map[string][]float32, _ uint64, _, _ [3]float32) (Backend, error) {
			got = batch
			return nil, errStop
		}
		if _, _, err := EvaluateCheckpoint(context.Background(), ck, shardDir, false, tc.batch, tc.maxImages, 0, record); !errors.Is(err, errStop) || got != tc.want {
			t.Errorf("--eval-batch %d, --max-val-images %d: backend batch %d (%v), want %d", tc.batch, tc.maxImages, got, err, tc.want)
		}
	}
	// Scored whole, the result is the same as at a batch that fits.
	small, _, err := EvaluateCheckpoint(context.Background(), ck, shardDir, false, 4, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	huge, _, err := EvaluateCheckpoint(context.Background(), ck, shardDir, false, 1<<20, 0, 0, nil)
	if err != nil || huge.Images != small.Images || huge.Top1Err != small.Top1Err || math.Abs(huge.Loss-small.Loss) > 1e-6 {
		t.Errorf("batch 1<<20: %+v (%v); batch 4: %+v", huge, err, small)
	}
}

// --out the shards folder itself trains (TestTrainRefusesShardsBeingWritten)
// with a note: the run's files are among ingest's, and go with them.
func TestOutIsTheShardsFolder(t *testing.T) {
	shardDir := syntheticShardsOfSide(t, 32, 8, 24)
	cfg := smallConfig(shardDir, shardDir+string(filepath.Separator))
	cfg.MaxSteps = 1
	var log bytes.Buffer
	if _, err := Train(context.Background(), cfg, &log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "is the shards folder: the run's checkpoint, log and plots are kept among the shards") {
		t.Errorf("no note that --out is the shards folder:\n%s", log.String())
	}
}

// A resume counts the run's time up to its checkpoint, kept in
// clock.json, not up to its last metrics line: under --log-every 0 a
// stop within the first epoch has no line at all, and its time was lost.
func TestResumeCountsTimeToTheCheckpoint(t *testing.T) {
	shardDir := syntheticShards(t, 64, 16) // 4 steps an epoch at batch 16
	out := t.TempDir()
	cfg := smallConfig(shardDir, out)
	cfg.LogEvery, cfg.MaxSteps = 0, 3
	first, err := Train(context.Background(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(readMetrics(out, 3)); got != 0 {
		t.Fatalf("%d metrics lines before step 3 under --log-every 0: the test needs none", got)
	}
	kept := clockAt(out, 3)
	if !(kept > 0 && kept <= first.RunSeconds) {
		t.Fatalf("clock at step 3: %gs; the leg took %gs", kept, first.RunSeconds)
	}
	res := cfg
	res.Resume, res.MaxSteps = true, 4
	second, err := Train(context.Background(), res, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if second.RunSeconds < second.Seconds+kept {
		t.Errorf("resumed: %gs in all, %gs this leg, %gs before it", second.RunSeconds, second.Seconds, kept)
	}
	// Its epoch line's clock is the run's, not this leg's alone.
	if ms := readMetrics(out, 4); len(ms) != 1 || ms[0].Seconds < kept {
		t.Errorf("epoch line %+v: want the run's clock, at least %gs", ms, kept)
	}
	// A clock of another step (the process killed between checkpoint
	// and clock) is not taken.
	if err := writeClock(out, 99, 1e6); err != nil {
		t.Fatal(err)
	}
	if c := clockAt(out, 4); c != 0 {
		t.Errorf("clock of step 99 read for step 4: %g", c)
	}
	// A new run in the folder removes the old run's clock with its
	// checkpoints, before its first step (here, never taken).
	fresh := cfg
	fresh.Overwrite, fresh.MaxSteps = true, 1
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Train(stopped, fresh, io.Discard); err == nil {
		t.Fatal("a run given a cancelled context trained")
	}
	if _, err := os.Lstat(filepath.Join(out, ClockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--overwrite left the old run's %s: %v", ClockFile, err)
	}
	if _, err := Train(context.Background(), fresh, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c := clockAt(out, 1); !(c > 0 && c < 1e6) {
		t.Errorf("clock after --overwrite: %g", c)
	}
	// A link in its place is refused, as the checkpoint's and the log's
	// are: the clock would be written through it.
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	os.Remove(filepath.Join(out, ClockFile))
	if err := os.Symlink(victim, filepath.Join(out, ClockFile)); err != nil {
		t.Fatal(err)
	}
	res.MaxSteps = 2
	if _, err := Train(context.Background(), res, io.Discard); !errors.Is(err, ErrBadOut) {
		t.Errorf("a run with %s a link: %v", ClockFile, err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the link's target was written: %q", b)
	}
}

// Ten crops of a crop as large as the images are two views, which the
// note says; a crop smaller than them gives ten and no such note.
func TestTenCropOfTheWholeImageIsNoted(t *testing.T) {
	shardDir := syntheticShardsOfSide(t, 32, 8, 20)
	out := t.TempDir()
	cfg := smallConfig(shardDir, out) // --crop 20: the images' whole side
	cfg.Epochs = 1
	mustTrain(t, cfg)
	ck := filepath.Join(out, CheckpointFile)
	const two = "the 20-px crop is the images' whole side, so the four corner crops are the centre one"
	for _, tc := range []struct {
		tenCrop bool
		noted   bool
	}{{true, true}, {false, false}} {
		r, _, err := EvaluateCheckpoint(context.Background(), ck, shardDir, tc.tenCrop, 8, 0, 0, nil)
		if err != nil || strings.Contains(r.Note, two) != tc.noted {
			t.Errorf("ten-crop %v: note %q (%v)", tc.tenCrop, r.Note, err)
		}
	}
	// The same checkpoint on 24-px images: its 20-px crops differ.
	r, _, err := EvaluateCheckpoint(context.Background(), ck, syntheticShards(t, 32, 8), true, 8, 0, 0, nil)
	if err != nil || strings.Contains(r.Note, "whole side") {
		t.Errorf("a 20-px crop of 24-px images: note %q (%v)", r.Note, err)
	}
}
