package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/cli/clitest"
	"github.com/alexnet-repro/alexnet/internal/fixtures"
	"github.com/alexnet-repro/alexnet/pkg/imagenet"
	"github.com/alexnet-repro/alexnet/pkg/ingest"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
)

func TestUsageAndDeviceErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		say  string
	}{
		{"help", []string{"--help"}, cli.ExitOK, "Examples"},
		{"no shards", []string{}, cli.ExitUsage, "--shards DIR is required"},
		{"shards as an argument", []string{"--shards", "x", "y"}, cli.ExitUsage, `unexpected argument "y": train takes flags only`},
		{"bad device", []string{"--shards", t.TempDir(), "--device", "tpu"}, cli.ExitUsage, "unknown --device"},
		// No GPU here: the message names the library it could not load.
		{"cuda without a GPU", []string{"--shards", t.TempDir(), "--device", "cuda"}, cli.ExitFailure, "libcuda.so.1"},
		{"missing shards", []string{"--shards", t.TempDir(), "--device", "cpu"}, cli.ExitFailure, "meta.json not found"},
		{"shards that do not exist", []string{"--shards", "absent", "--device", "cpu"}, cli.ExitUsage, "--shards absent does not exist"},
		{"shards a file", []string{"--shards", "main.go", "--device", "cpu", "--out", filepath.Join(t.TempDir(), "run")}, cli.ExitUsage, "main.go is a file, not a shard directory"},
		{"checkpoint that does not exist", []string{"--shards", t.TempDir(), "--eval-only", "--checkpoint", "absent.ckpt"}, cli.ExitUsage, "--checkpoint absent.ckpt does not exist"},
		{"eval without checkpoint", []string{"--shards", "x", "--eval-only"}, cli.ExitUsage, "--checkpoint"},
		{"eval ignores the model", []string{"--shards", "x", "--device", "cpu", "--eval-only", "--checkpoint", "absent.ckpt", "--model", "small"}, cli.ExitUsage, "--model is ignored with --eval-only"},
		{"eval ignores training flags", []string{"--shards", "x", "--device", "cpu", "--eval-only", "--checkpoint", "absent.ckpt", "--epochs", "3"}, cli.ExitUsage, "--epochs is ignored with --eval-only: nothing is trained"},
		{"eval ignores training flags' values", []string{"--shards", "x", "--device", "cpu", "--eval-only", "--checkpoint", "absent.ckpt", "--epochs", "0", "--lr", "-1"}, cli.ExitUsage, "--epochs is ignored with --eval-only: nothing is trained"},
		{"eval checks its own flags", []string{"--shards", "x", "--device", "cpu", "--eval-only", "--checkpoint", "absent.ckpt", "--workers", "-1"}, cli.ExitUsage, "--workers"},
		{"bad schedule", []string{"--shards", "x", "--schedule", "cosine"}, cli.ExitUsage, "unknown schedule"},
		{"bad step schedule", []string{"--shards", "x", "--schedule", "step:0"}, cli.ExitUsage, "step:N"},
		{"bad model", []string{"--shards", "x", "--model", "vgg"}, cli.ExitUsage, "unknown --model"},
		{"bad init", []string{"--shards", "x", "--init", "xavier"}, cli.ExitUsage, "--init"},
		{"bad precision on the CPU too", []string{"--shards", "x", "--device", "cpu", "--precision", "fp16"}, cli.ExitUsage, `--precision: want fp32 or tf32, not "fp16"`},
		{"zero epochs", []string{"--shards", "x", "--epochs", "0"}, cli.ExitUsage, "--epochs"},
		{"zero batch", []string{"--shards", "x", "--batch", "0"}, cli.ExitUsage, "--batch"},
		{"negative eval batch", []string{"--shards", "x", "--eval-batch", "-1"}, cli.ExitUsage, "--eval-batch"},
		{"negative crop", []string{"--shards", "x", "--crop", "-4"}, cli.ExitUsage, "--crop"},
		{"negative lr", []string{"--shards", "x", "--lr", "-1"}, cli.ExitUsage, "--lr"},
		{"NaN lr", []string{"--shards", "x", "--lr", "NaN"}, cli.ExitUsage, "--lr"},
		// float32 is what the updates and the pipeline use: 1e39 overflows
		// it, 1e-46 is 0 there.
		{"lr beyond float32", []string{"--shards", "x", "--lr", "1e39"}, cli.ExitUsage, "--lr"},
		{"lr that rounds to 0", []string{"--shards", "x", "--lr", "1e-46"}, cli.ExitUsage, "--lr"},
		{"weight decay beyond float32", []string{"--shards", "x", "--weight-decay", "1e39"}, cli.ExitUsage, "--weight-decay"},
		{"lighting beyond float32", []string{"--shards", "x", "--lighting", "1e39"}, cli.ExitUsage, "--lighting"},
		{"momentum that rounds to 1", []string{"--shards", "x", "--momentum", "0.99999999999"}, cli.ExitUsage, "--momentum"},
		{"momentum 2", []string{"--shards", "x", "--momentum", "2"}, cli.ExitUsage, "--momentum"},
		{"negative weight decay", []string{"--shards", "x", "--weight-decay", "-1e-4"}, cli.ExitUsage, "--weight-decay"},
		{"unknown dropout form", []string{"--shards", "x", "--dropout", "half"}, cli.ExitUsage, `--dropout: want inverted or paper, not "half"`},
		{"a true/false flag's value apart", []string{"--shards", "x", "--bias-decay", "false"}, cli.ExitUsage, `unexpected argument "false": --bias-decay takes its value after =, as --bias-decay=false`},
		{"another's, spelt 1", []string{"--shards", "x", "--deterministic", "1"}, cli.ExitUsage, `unexpected argument "1": --deterministic takes its value after =, as --deterministic=1`},
		{"zero patience", []string{"--shards", "x", "--patience", "0"}, cli.ExitUsage, "--patience"},
		{"negative max steps", []string{"--shards", "x", "--max-steps", "-1"}, cli.ExitUsage, "--max-steps"},
		{"negative log every", []string{"--shards", "x", "--log-every", "-1"}, cli.ExitUsage, "--log-every"},
		{"negative checkpoint every", []string{"--shards", "x", "--checkpoint-every", "-5"}, cli.ExitUsage, "--checkpoint-every"},
		{"negative workers", []string{"--shards", "x", "--workers", "-1"}, cli.ExitUsage, "--workers"},
		{"a zero too many workers", []string{"--shards", "x", "--workers", "1000000"}, cli.ExitUsage, "--workers: want 0 (all cores) to 1024"},
		{"negative lighting", []string{"--shards", "x", "--lighting", "-0.1"}, cli.ExitUsage, "--lighting"},
		{"negative max val images", []string{"--shards", "x", "--max-val-images", "-3"}, cli.ExitUsage, "--max-val-images"},
		{"ten crop while training", []string{"--shards", "x", "--ten-crop"}, cli.ExitUsage, "--ten-crop"},
		{"checkpoint while training", []string{"--shards", "x", "--checkpoint", "run/checkpoint.ckpt"}, cli.ExitUsage, "--checkpoint is for --eval-only"},
		{"resume and overwrite", []string{"--shards", "x", "--resume", "--overwrite"}, cli.ExitUsage, "contradict"},
		{"empty out", []string{"--shards", "x", "--out", ""}, cli.ExitUsage, "--out DIR must name a folder"},
		{"out is a file", []string{"--shards", "x", "--out", "main.go"}, cli.ExitUsage, "--out main.go: main.go is a file, not a folder"},
		{"out under a file", []string{"--shards", "x", "--out", "main.go/run"}, cli.ExitUsage, "--out main.go/run: main.go is a file, not a folder"},
		{"unknown flag", []string{"--shards", "x", "--learning-rate", "0.1"}, cli.ExitUsage, "flag provided but not defined: -learning-rate"},
		{"bad flag value", []string{"--shards", "x", "--epochs", "ten"}, cli.ExitUsage, "invalid value \"ten\" for flag -epochs"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var so, se bytes.Buffer
			code := run(context.Background(), c.args, &so, &se)
			if code != c.code || !strings.Contains(se.String()+so.String(), c.say) {
				t.Fatalf("exit %d (want %d), output:\n%s%s", code, c.code, so.String(), se.String())
			}
			if c.code == cli.ExitOK {
				return
			}
			// Under --json the same failure is a JSON object on stdout,
			// carrying the reason stderr gives.
			so.Reset()
			se.Reset()
			code = run(context.Background(), append(slices.Clone(c.args), "--json"), &so, &se)
			obj := clitest.JSONFailure(t, so.Bytes(), c.code)
			if code != c.code || !strings.Contains(se.String(), obj["error"].(string)) || obj["command"] != "train" {
				t.Fatalf("--json: exit %d (want %d), stdout %s, stderr:\n%s", code, c.code, so.String(), se.String())
			}
		})
	}
}

// --eval-only with --resume: each ignored flag gets one note, the
// evaluation's, not also the resume's.
func TestEvalOnlyNotesOnce(t *testing.T) {
	var so, se bytes.Buffer
	run(context.Background(), []string{"--shards", "x", "--device", "cpu", "--eval-only", "--checkpoint", "absent.ckpt", "--resume", "--lr", "0.5"}, &so, &se)
	if n := strings.Count(se.String(), "--lr is ignored"); n != 1 {
		t.Errorf("%d notes on --lr, want 1:\n%s", n, se.String())
	}
}

// A flag mistake where "--json" is another flag's value is answered as
// flag.Parse reads it: --json was not asked for, so stdout stays empty.
func TestFlagValueNamedJSON(t *testing.T) {
	for _, c := range []struct {
		args []string
		json bool
	}{
		{[]string{"--out", "--json", "--bogus"}, false},
		{[]string{"--out", "--json", "--json", "--bogus"}, true},
		{[]string{"--resume", "--json", "--bogus"}, true},
	} {
		var so, se bytes.Buffer
		code := run(context.Background(), c.args, &so, &se)
		if code != cli.ExitUsage || !strings.Contains(se.String(), "-bogus") {
			t.Fatalf("%q: exit %d, stderr:\n%s", c.args, code, se.String())
		}
		if !c.json {
			if so.Len() != 0 {
				t.Errorf("%q: stdout %q, want nothing", c.args, so.String())
			}
			continue
		}
		clitest.JSONFailure(t, so.Bytes(), cli.ExitUsage)
	}
}

// Under --overwrite the shards are read before the old run's checkpoint
// is replaced: the repair hint must not offer to --resume that run.
func TestDamagedShardUnderOverwrite(t *testing.T) {
	shardDir, _, args := smallRun(t, "--crop", "16", "--epochs", "1")
	var so, se bytes.Buffer
	// --resume with --overwrite is refused before a note on what the
	// resume would take from the run.
	se.Reset()
	if code := run(context.Background(), append(slices.Clone(args), "--resume", "--overwrite", "--batch", "4"), &so, &se); code != cli.ExitUsage ||
		se.String() != "train: --resume and --overwrite contradict each other\n" {
		t.Fatalf("--resume --overwrite: exit %d, stderr:\n%s", code, se.String())
	}
	p := filepath.Join(shardDir, "train-00000.shard")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-40] ^= 0x40 // the index: found when the shards are opened, before --out is touched
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	so.Reset()
	se.Reset()
	code := run(context.Background(), append(slices.Clone(args), "--overwrite"), &so, &se)
	msg := se.String()
	if code != cli.ExitFailure || !strings.Contains(msg, "then run the same train command again") || strings.Contains(msg, "--resume") {
		t.Fatalf("exit %d, stderr:\n%s", code, msg)
	}
}

// A mistake in the settings that Train finds against the shards (a crop
// larger than the images, a model too big for them) is one line on
// stderr under the default --device auto too: on a machine without a
// GPU, the "training on the CPU" note comes only once the settings pass.
func TestSettingsMistakeIsOneLine(t *testing.T) {
	shardDir := fixtureShards(t, 12, 4, 16)
	for _, args := range [][]string{
		{"--crop", "64", "--model", "small"},
		{"--crop", "14", "--model", "small"},
		{"--batch", "100000", "--model", "small"},
	} {
		var so, se bytes.Buffer
		all := append([]string{"--shards", shardDir, "--out", filepath.Join(t.TempDir(), "run")}, args...)
		if code := run(context.Background(), all, &so, &se); code != cli.ExitUsage || strings.Count(se.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr:\n%s", args, code, se.String())
		}
	}
	// Once they pass, the note is there (where no GPU is), before the
	// model's line.
	var so, se bytes.Buffer
	args := []string{"--shards", shardDir, "--out", filepath.Join(t.TempDir(), "run"), "--model", "small", "--crop", "16",
		"--batch", "8", "--max-steps", "1", "--workers", "1", "--log-every", "0"}
	if code := run(context.Background(), args, &so, &se); code != cli.ExitOK {
		t.Fatalf("exit %d:\n%s", code, se.String())
	}
	if note := "train: no usable GPU, training on the CPU\ntrain: small, "; strings.Contains(se.String(), "no usable GPU") && !strings.Contains(se.String(), note) {
		t.Errorf("stderr lacks %q:\n%s", note, se.String())
	}
}

// A checkpoint from before the image side was kept still gives --resume
// its crop: the model's input side, which every checkpoint holds.
func TestResumeTakesCropFromOldCheckpoint(t *testing.T) {
	shardDir, out, _ := smallRun(t, "--crop", "15", "--max-steps", "1")
	var so, se bytes.Buffer
	path := filepath.Join(out, trainer.CheckpointFile)
	ck, err := trainer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ck.ImageHW = 0 // as older builds wrote it
	if err := ck.Save(path); err != nil {
		t.Fatal(err)
	}
	se.Reset()
	resume := []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--resume", "--max-steps", "2", "--workers", "1", "--log-every", "0"}
	if code := run(context.Background(), resume, &so, &se); code != cli.ExitOK || !strings.Contains(se.String(), "--crop 15") {
		t.Fatalf("--resume of a checkpoint without image_hw: exit %d:\n%s", code, se.String())
	}
	// Nor did older builds keep --max-val-images: the resume cannot know
	// the run's, and says what it validates on instead.
	if ck, err = trainer.Load(path); err != nil {
		t.Fatal(err)
	}
	ck.MaxValImages = nil
	if err := ck.Save(path); err != nil {
		t.Fatal(err)
	}
	se.Reset()
	resume[len(resume)-5] = "3" // --max-steps
	if code := run(context.Background(), resume, &so, &se); code != cli.ExitOK ||
		!strings.Contains(se.String(), "does not say what the run validated on; this resume validates on every val image (--max-val-images 0)") {
		t.Fatalf("--resume of a checkpoint without max_val_images: exit %d:\n%s", code, se.String())
	}
}

func TestSigmaOption(t *testing.T) {
	for _, tc := range []struct {
		flag float64
		want float32
	}{{0, -1}, {1e-46, -1}, {0.1, 0.1}, {2, 2}} {
		if got := sigmaOption(tc.flag); got != tc.want {
			t.Errorf("--lighting %g: Sigma %g, want %g", tc.flag, got, tc.want)
		}
	}
}

// A damaged shard stops the run naming shard and record, and says how to
// repair it: a rerun of ingest alone keeps the shard, its sources being
// unchanged.
func TestDamagedShardSaysHowToRepair(t *testing.T) {
	shardDir := fixtureShards(t, 12, 4, 16)
	p := filepath.Join(shardDir, "train-00000.shard")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40 // inside the records, past the header, before the index
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var so, se bytes.Buffer
	code := run(context.Background(), []string{"--shards", shardDir, "--out", filepath.Join(t.TempDir(), "run"), "--device", "cpu",
		"--model", "small", "--crop", "32", "--batch", "8", "--epochs", "1", "--workers", "1", "--json"}, &so, &se)
	obj := clitest.JSONFailure(t, so.Bytes(), cli.ExitFailure)
	msg := obj["error"].(string)
	for _, want := range []string{"train-00000.shard record", "checksum mismatch", "shardtool verify " + shardDir, "run the same ingest command again"} {
		if code != cli.ExitFailure || !strings.Contains(msg, want) {
			t.Fatalf("exit %d, error %q lacks %q\n%s", code, msg, want, se.String())
		}
	}
}

// A shard this user may not read stops the run with the reason, and no
// advice to delete it: it is not damaged. Root runs this as another user.
func TestUnreadableShardIsNotCalledDamaged(t *testing.T) {
	if !fixtures.Unprivileged(t) {
		return
	}
	shardDir := fixtureShards(t, 12, 4, 16)
	p := filepath.Join(shardDir, "train-00000.shard")
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	var so, se bytes.Buffer
	code := run(context.Background(), []string{"--shards", shardDir, "--out", filepath.Join(t.TempDir(), "run"), "--device", "cpu",
		"--model", "small", "--crop", "32", "--batch", "8", "--epochs", "1", "--workers", "1"}, &so, &se)
	if code != cli.ExitFailure || !strings.Contains(se.String(), p+": permission denied") || strings.Contains(se.String(), "delete") {
		t.Fatalf("exit %d\n%s", code, se.String())
	}
}

// An --out train cannot write in is refused before the model is built,
// with the reason. Root runs this as another user.
func TestUnwritableOut(t *testing.T) {
	if !fixtures.Unprivileged(t) {
		return
	}
	shardDir := fixtureShards(t, 4, 0, 16)
	locked := t.TempDir()
	if err := os.Chmod(locked, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	for _, out := range []string{filepath.Join(locked, "run"), locked} {
		var so, se bytes.Buffer
		code := run(context.Background(), []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--model", "small", "--crop", "32", "--batch", "4"}, &so, &se)
		if code != cli.ExitFailure || !strings.Contains(se.String(), "--out "+out+": cannot write in "+locked+": permission denied") {
			t.Errorf("--out %s: exit %d\n%s", out, code, se.String())
		}
	}
}

// fixtureShards ingests a fixtures.Tree of perClass train and nVal val
// images at 36 px into a new folder, shardSize records a shard.
func fixtureShards(t *testing.T, perClass, nVal, shardSize int) string {
	t.Helper()
	root := t.TempDir()
	fixtures.Tree(t, root, perClass, nVal)
	ds, err := imagenet.Open(root, imagenet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	dir := t.TempDir()
	if _, err := ingest.Run(context.Background(), ds, ingest.Options{Out: dir, Size: 36, ShardSize: shardSize, Workers: 1}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// --eval-only --json names the checkpoint file it read, also when given
// the run folder.
func TestEvalOnlyJSONNamesTheFile(t *testing.T) {
	shardDir := fixtureShards(t, 12, 4, 16)
	out := filepath.Join(t.TempDir(), "run")
	var so, se bytes.Buffer
	if code := run(context.Background(), []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--model", "small", "--crop", "32",
		"--batch", "2", "--max-steps", "2", "--workers", "1"}, &so, &se); code != cli.ExitOK {
		t.Fatalf("training: exit %d\n%s", code, se.String())
	}
	// The fixture's 3 classes make top-5 error 0 whatever the model: said
	// once at the start, and in the evaluation's note.
	const trivial = "with 3 classes every label is among the top 5: top-5 error is 0 by construction"
	if strings.Count(se.String(), trivial) != 1 {
		t.Errorf("training's log does not say once that top-5 is trivial:\n%s", se.String())
	}
	// Its batch is the run's (so its loss repeats the logged val_loss),
	// unless --batch or --eval-batch says otherwise.
	for _, tc := range []struct {
		flags []string
		batch int
	}{{nil, 2}, {[]string{"--batch", "3"}, 3}, {[]string{"--eval-batch", "1"}, 1}} {
		so.Reset()
		args := append([]string{"--shards", shardDir, "--device", "cpu", "--eval-only", "--checkpoint", out, "--json"}, tc.flags...)
		if code := run(context.Background(), args, &so, &se); code != cli.ExitOK {
			t.Fatalf("--eval-only %v: exit %d\n%s", tc.flags, code, se.String())
		}
		var res struct {
			Checkpoint string `json:"checkpoint"`
			Step       int    `json:"step"`
			Batch      int    `json:"batch"`
			Images     int    `json:"images"`
			Note       string `json:"note"`
		}
		if err := json.Unmarshal(so.Bytes(), &res); err != nil || res.Checkpoint != filepath.Join(out, "checkpoint.ckpt") || res.Step != 2 || res.Batch != tc.batch || res.Images <= 3 ||
			!strings.Contains(res.Note, trivial) {
			t.Fatalf("--eval-only %v: %+v (%v), want batch %d of more than 3 images: %s", tc.flags, res, err, tc.batch, so.String())
		}
	}
}

// An --eval-only stopped by a signal exits 130 saying so, as a stopped
// run does, not 1 with a bare "context canceled": a scheduler's requeue
// reads the code.
func TestEvalOnlyInterrupted(t *testing.T) {
	shardDir, out, _ := smallRun(t, "--max-steps", "1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var so, se bytes.Buffer
	code := run(ctx, []string{"--shards", shardDir, "--device", "cpu", "--eval-only", "--checkpoint", out, "--workers", "1", "--json"}, &so, &se)
	var res struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal(so.Bytes(), &res); err != nil || code != cli.ExitInterrupted || res.ExitCode != cli.ExitInterrupted || !strings.HasPrefix(res.Error, "interrupted") {
		t.Fatalf("exit %d, %+v (%v)\n%s%s", code, res, err, so.String(), se.String())
	}
}

// A plain --resume of a run with its own momentum, weight decay (biases
// spared) and lighting says nothing of them (it noted "--lighting 0, not 0.1" of a
// flag never given); one given with another value is named.
func TestResumeNotesOnlyGivenHyper(t *testing.T) {
	shardDir, out, _ := smallRun(t, "--max-steps", "1", "--lighting", "0", "--momentum", "0.8", "--weight-decay", "0.001", "--bias-decay=false", "--dropout", "paper", "--model", "small-fc")
	resume := []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--resume", "--workers", "1", "--log-every", "0"}
	var so, se bytes.Buffer
	if code := run(context.Background(), append(resume, "--max-steps", "2"), &so, &se); code != cli.ExitOK || strings.Contains(se.String(), "continues with the checkpoint's") ||
		!strings.Contains(se.String(), ", --dropout paper, from its checkpoint") {
		t.Errorf("plain resume: exit %d\n%s", code, se.String())
	}
	se.Reset()
	if code := run(context.Background(), append(resume, "--max-steps", "3", "--momentum", "0.5"), &so, &se); code != cli.ExitOK ||
		!strings.Contains(se.String(), "continues with the checkpoint's --momentum 0.8, not 0.5") || strings.Contains(se.String(), "--lighting") {
		t.Errorf("resume with --momentum 0.5: exit %d\n%s", code, se.String())
	}
	ck, err := trainer.Load(filepath.Join(out, trainer.CheckpointFile))
	if err != nil || ck.Hyper == nil || ck.Hyper.Momentum != 0.8 || ck.Hyper.Lighting != 0 || ck.Hyper.WeightDecay != 0.001 || !ck.Hyper.NoBiasDecay || !ck.PaperDropout {
		t.Fatalf("the resumed run's settings: %+v (%v)", ck.Hyper, err)
	}
}

// A plain --resume keeps the run's --log-every: the log keeps its
// spacing, and the run ends with the checkpoint an uninterrupted one ends
// with, byte for byte (--checkpoint-every, which changes no bytes, is the
// command line's: here the resume's default).
func TestResumeKeepsTheLogCadence(t *testing.T) {
	shardDir := fixtureShards(t, 12, 4, 16)
	base := func(out string) []string {
		return []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--model", "small", "--batch", "4", "--workers", "1"}
	}
	var so, se bytes.Buffer
	whole := filepath.Join(t.TempDir(), "whole")
	if code := run(context.Background(), append(base(whole), "--log-every", "1", "--checkpoint-every", "2", "--max-steps", "5"), &so, &se); code != cli.ExitOK {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, se.String())
	}
	parts := filepath.Join(t.TempDir(), "parts")
	if code := run(context.Background(), append(base(parts), "--log-every", "1", "--checkpoint-every", "2", "--max-steps", "2"), &so, &se); code != cli.ExitOK {
		t.Fatalf("first part: exit %d\n%s", code, se.String())
	}
	se.Reset()
	if code := run(context.Background(), append(base(parts), "--resume", "--max-steps", "5"), &so, &se); code != cli.ExitOK ||
		!regexp.MustCompile(`the run's .*--log-every 1, from its checkpoint`).MatchString(se.String()) {
		t.Fatalf("plain resume: exit %d\n%s", code, se.String())
	}
	// Given with another value, it is taken, and said.
	other := filepath.Join(t.TempDir(), "other")
	if code := run(context.Background(), append(base(other), "--log-every", "1", "--max-steps", "2"), &so, &se); code != cli.ExitOK {
		t.Fatalf("first part: exit %d\n%s", code, se.String())
	}
	se.Reset()
	if code := run(context.Background(), append(base(other), "--resume", "--log-every", "2", "--max-steps", "5"), &so, &se); code != cli.ExitOK ||
		!strings.Contains(se.String(), "--log-every 2 changes the run's log spacing from here (it logged every 1)") {
		t.Fatalf("resume with --log-every 2: exit %d\n%s", code, se.String())
	}
	a, _ := os.ReadFile(filepath.Join(whole, trainer.CheckpointFile))
	b, _ := os.ReadFile(filepath.Join(parts, trainer.CheckpointFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the resumed run ends with another checkpoint than the uninterrupted one")
	}
	// The log's lines fall on the same steps (their times differ).
	if a, b := loggedSteps(t, whole), loggedSteps(t, parts); !slices.Equal(a, b) {
		t.Errorf("metrics lines at steps %v, the uninterrupted run's at %v", b, a)
	}
}

// A plain --resume keeps the run's --max-val-images: it validated every
// image and lowered a plateau schedule's rate on figures from another
// set, silently. Given with another value, or on shards with another
// val split, the resume goes on and says so.
func TestResumeKeepsTheValidationSet(t *testing.T) {
	shardDir := fixtureShards(t, 12, 4, 16)
	base := func(out string) []string {
		return []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--model", "small", "--batch", "4", "--workers", "1", "--log-every", "0"}
	}
	var so, se bytes.Buffer
	whole := filepath.Join(t.TempDir(), "whole")
	if code := run(context.Background(), append(base(whole), "--max-val-images", "3", "--epochs", "2"), &so, &se); code != cli.ExitOK {
		t.Fatalf("uninterrupted run: exit %d\n%s", code, se.String())
	}
	parts := filepath.Join(t.TempDir(), "parts")
	if code := run(context.Background(), append(base(parts), "--max-val-images", "3", "--epochs", "1"), &so, &se); code != cli.ExitOK {
		t.Fatalf("first part: exit %d\n%s", code, se.String())
	}
	se.Reset()
	if code := run(context.Background(), []string{"--shards", shardDir, "--out", parts, "--device", "cpu", "--workers", "1", "--resume", "--epochs", "2"}, &so, &se); code != cli.ExitOK ||
		!regexp.MustCompile(`the run's .*--max-val-images 3.*, from its checkpoint`).MatchString(se.String()) || strings.Contains(se.String(), "validation set") {
		t.Fatalf("plain resume: exit %d\n%s", code, se.String())
	}
	a, _ := os.ReadFile(filepath.Join(whole, trainer.CheckpointFile))
	b, _ := os.ReadFile(filepath.Join(parts, trainer.CheckpointFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the resumed run ends with another checkpoint than the uninterrupted one")
	}
	if a, b := valErrors(t, whole), valErrors(t, parts); len(a) != 2 || !slices.Equal(a, b) {
		t.Errorf("validation errors %v, the uninterrupted run's %v", b, a)
	}

	// Given with another value: taken, and said.
	se.Reset()
	if code := run(context.Background(), append(base(parts), "--resume", "--epochs", "3", "--max-val-images", "0"), &so, &se); code != cli.ExitOK ||
		!strings.Contains(se.String(), "--max-val-images 0 changes the run's validation set from here, to every val image (it validated on at most 3 val images)") {
		t.Fatalf("resume with --max-val-images 0: exit %d\n%s", code, se.String())
	}
	// The same train split with another val split: the resume goes on
	// (nothing in the checkpoint indexes val), and says so.
	otherVal := fixtureShards(t, 12, 2, 16)
	se.Reset()
	if code := run(context.Background(), []string{"--shards", otherVal, "--out", parts, "--device", "cpu", "--workers", "1", "--resume", "--epochs", "4"}, &so, &se); code != cli.ExitOK ||
		!strings.Contains(se.String(), "val split is not the one the run validated on") {
		t.Fatalf("resume on another val split: exit %d\n%s", code, se.String())
	}
	// On the same train split without a val split, and the other way.
	noVal := fixtureShards(t, 12, 0, 16)
	se.Reset()
	if code := run(context.Background(), []string{"--shards", noVal, "--out", parts, "--device", "cpu", "--workers", "1", "--resume", "--epochs", "5"}, &so, &se); code != cli.ExitOK ||
		!strings.Contains(se.String(), "has no val split, and the run validated on one: from here its epochs are not validated") || strings.Contains(se.String(), "other images") {
		t.Fatalf("resume without a val split: exit %d\n%s", code, se.String())
	}
	fromNoVal := filepath.Join(t.TempDir(), "novalrun")
	if code := run(context.Background(), []string{"--shards", noVal, "--out", fromNoVal, "--device", "cpu", "--model", "small", "--batch", "4", "--workers", "1", "--epochs", "1"}, &so, &se); code != cli.ExitOK {
		t.Fatalf("run without a val split: exit %d\n%s", code, se.String())
	}
	se.Reset()
	if code := run(context.Background(), []string{"--shards", shardDir, "--out", fromNoVal, "--device", "cpu", "--workers", "1", "--resume", "--epochs", "2"}, &so, &se); code != cli.ExitOK ||
		!strings.Contains(se.String(), "has a val split, and the run had none: from here its epochs are validated") {
		t.Fatalf("resume of a run without a val split on one with: exit %d\n%s", code, se.String())
	}
}

// A run --max-steps stops within an epoch reports the last epoch's
// validation at the step it was measured, not as the checkpoint's.
func TestMaxStepsNamesTheValidationStep(t *testing.T) {
	shardDir := fixtureShards(t, 12, 4, 16)
	out := filepath.Join(t.TempDir(), "run")
	var so, se bytes.Buffer
	// 12 images a class at batch 4: the first epoch ends well before step 40.
	args := []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--model", "small", "--batch", "4", "--workers", "1", "--log-every", "0", "--json"}
	if code := run(context.Background(), append(args, "--max-steps", "40"), &so, &se); code != cli.ExitOK {
		t.Fatalf("exit %d\n%s", code, se.String())
	}
	var res struct {
		Steps     int64 `json:"steps"`
		Epochs    int   `json:"epochs"`
		Evaluated bool  `json:"evaluated"`
		ValStep   int64 `json:"val_step"`
	}
	if err := json.Unmarshal(so.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, so.String())
	}
	// The last epoch line is the validation's: its step is val_step.
	var lastEpoch int64
	b, err := os.ReadFile(filepath.Join(out, trainer.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m struct {
			Kind string `json:"kind"`
			Step int64  `json:"step"`
		}
		if json.Unmarshal([]byte(line), &m) == nil && m.Kind == "epoch" {
			lastEpoch = m.Step
		}
	}
	if !res.Evaluated || res.Steps != 40 || res.ValStep <= 0 || res.ValStep >= 40 || res.ValStep != lastEpoch {
		t.Fatalf("%+v: want the validation at the last epoch's end (step %d), before step 40", res, lastEpoch)
	}
	if want := fmt.Sprintf("at step %d, the last epoch's end (--eval-only scores the step-40 checkpoint)", res.ValStep); !strings.Contains(se.String(), want) {
		t.Errorf("summary lacks %q:\n%s", want, se.String())
	}
}

// valErrors lists the top-1 validation errors of a run's metrics.jsonl.
func valErrors(t *testing.T, dir string) []float64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, trainer.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var errs []float64
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m struct {
			Top1 *float64 `json:"top1_err"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if m.Top1 != nil {
			errs = append(errs, *m.Top1)
		}
	}
	return errs
}

// loggedSteps lists the step of each line of a run's metrics.jsonl.
func loggedSteps(t *testing.T, dir string) []int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, trainer.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for line := range bytes.Lines(data) {
		var m struct{ Step int64 }
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		steps = append(steps, m.Step)
	}
	return steps
}

// --precision is the GPU's: given on the CPU it is noted as ignored, not
// taken in silence; left out, nothing is said.
func TestPrecisionOnTheCPUIsNoted(t *testing.T) {
	shardDir := fixtureShards(t, 12, 4, 16)
	for _, c := range []struct {
		extra []string
		note  bool
	}{{nil, false}, {[]string{"--precision", "fp32"}, true}} {
		args := append([]string{"--shards", shardDir, "--out", filepath.Join(t.TempDir(), "run"), "--device", "cpu", "--model", "small",
			"--batch", "8", "--workers", "1", "--log-every", "0", "--max-steps", "1"}, c.extra...)
		var so, se bytes.Buffer
		code := run(context.Background(), args, &so, &se)
		if said := strings.Contains(se.String(), "--precision fp32 is for the GPU and is ignored"); code != cli.ExitOK || said != c.note {
			t.Errorf("%v: exit %d, note %v (want %v):\n%s", c.extra, code, said, c.note, se.String())
		}
	}
}

// smallRun trains small on 16-px fixture shards (batch 8, one worker) into
// a fresh --out with extra flags, and returns the shards, the --out and
// the arguments it ran with.
func smallRun(t *testing.T, extra ...string) (shardDir, out string, args []string) {
	t.Helper()
	shardDir = fixtureShards(t, 12, 4, 16)
	out = filepath.Join(t.TempDir(), "run")
	args = append([]string{"--shards", shardDir, "--out", out, "--device", "cpu", "--model", "small",
		"--batch", "8", "--workers", "1", "--log-every", "0"}, extra...)
	var so, se bytes.Buffer
	if code := run(context.Background(), args, &so, &se); code != cli.ExitOK {
		t.Fatalf("first run: exit %d:\n%s", code, se.String())
	}
	return shardDir, out, args
}

// A checkpoint that needs what this build does not know is refused by
// name, whether resumed or evaluated, and nothing in the run changes; one
// whose unknown need is its run state's alone is refused for a resume but
// evaluated.
func TestNewerCheckpointRefused(t *testing.T) {
	shardDir, out, _ := smallRun(t, "--max-steps", "1")
	path := filepath.Join(out, trainer.CheckpointFile)
	ck, err := trainer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	resume := []string{"--shards", shardDir, "--out", out, "--device", "cpu", "--resume", "--max-steps", "2", "--workers", "1"}
	eval := []string{"--shards", shardDir, "--device", "cpu", "--eval-only", "--checkpoint", out, "--workers", "1"}
	for _, tc := range []struct {
		needs, resumeNeeds []string
		evalOK             bool
		say                string
	}{
		{needs: []string{"some_future_feature"}, say: `it needs "some_future_feature"`},
		{resumeNeeds: []string{"some_future_state"}, evalOK: true, say: `resuming it needs "some_future_state"`},
	} {
		ck.Needs, ck.ResumeNeeds = tc.needs, tc.resumeNeeds
		if err := ck.Save(path); err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{resume, eval} {
			var so, se bytes.Buffer
			code := run(context.Background(), args, &so, &se)
			if slices.Contains(args, "--eval-only") && tc.evalOK {
				if code != cli.ExitOK {
					t.Errorf("%s: --eval-only: exit %d:\n%s", tc.say, code, se.String())
				}
				continue
			}
			if code != cli.ExitFailure || !strings.Contains(se.String(), tc.say) || !strings.Contains(se.String(), "newer build") {
				t.Errorf("%v: exit %d:\n%s", args, code, se.String())
			}
		}
		if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
			t.Errorf("%s: the refused checkpoint was changed", tc.say)
		}
	}
}

// While training, --eval-batch below --batch runs at --batch, with a note:
// the network is built for --batch, and a smaller validation batch was
// padded to it, each costing a whole batch's pass. A bad value is still a
// usage error.
func TestEvalBatchBelowBatchWhileTraining(t *testing.T) {
	shardDir := fixtureShards(t, 12, 4, 16)
	for _, c := range []struct {
		evalBatch string
		code      int
		note      bool
	}{{"2", cli.ExitOK, true}, {"8", cli.ExitOK, false}, {"16", cli.ExitOK, false}, {"-1", cli.ExitUsage, false}} {
		args := []string{"--shards", shardDir, "--out", filepath.Join(t.TempDir(), "run"), "--device", "cpu", "--model", "small",
			"--batch", "8", "--workers", "1", "--log-every", "0", "--epochs", "1", "--eval-batch", c.evalBatch}
		var so, se bytes.Buffer
		code := run(context.Background(), args, &so, &se)
		said := strings.Contains(se.String(), "--eval-batch "+c.evalBatch+" is below --batch 8: validation during training runs at 8")
		if code != c.code || said != c.note {
			t.Errorf("--eval-batch %s: exit %d, note %v (want %d, %v):\n%s", c.evalBatch, code, said, c.code, c.note, se.String())
		}
	}
}

// --eval-only says what the run's validation did differently: its
// --max-val-images (not taken unless given) and the paper's dropout; and
// the training log names the authors' forms when chosen.
func TestEvalOnlySaysTheRunsForms(t *testing.T) {
	shardDir, out, _ := smallRun(t, "--model", "small-fc", "--dropout", "paper", "--bias-decay=false", "--max-val-images", "2", "--epochs", "1")
	eval := []string{"--shards", shardDir, "--device", "cpu", "--eval-only", "--checkpoint", out, "--workers", "1", "--json"}
	var so, se bytes.Buffer
	if code := run(context.Background(), eval, &so, &se); code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	var res struct {
		Images  int    `json:"images"`
		Note    string `json:"note"`
		Dropout string `json:"dropout"`
	}
	if err := json.Unmarshal(so.Bytes(), &res); err != nil || res.Images != 4 || res.Dropout != "paper" ||
		!strings.Contains(res.Note, "the run validated on its first 2 images (--max-val-images 2); these figures are over 4: give --max-val-images 2 to score the images it validated on") ||
		!strings.Contains(res.Note, "the paper's dropout") {
		t.Errorf("%+v (%v)", res, err)
	}
	so.Reset()
	if code := run(context.Background(), append(eval, "--max-val-images", "2"), &so, &se); code != cli.ExitOK || strings.Contains(so.String(), "validated on its first") {
		t.Errorf("given --max-val-images: exit %d: %s", code, so.String())
	}
	// The training log.
	se.Reset()
	args := []string{"--shards", shardDir, "--out", filepath.Join(t.TempDir(), "r"), "--device", "cpu", "--model", "small-fc", "--batch", "8",
		"--workers", "1", "--log-every", "0", "--max-steps", "1", "--dropout", "paper", "--bias-decay=false"}
	if code := run(context.Background(), args, &so, &se); code != cli.ExitOK ||
		!strings.Contains(se.String(), "train: the authors' forms: the paper's dropout (--dropout paper: kept units ×1, evaluation ×(1−p)); weight decay on the weights alone (--bias-decay=false)") {
		t.Errorf("exit %d: %s", code, se.String())
	}
}
