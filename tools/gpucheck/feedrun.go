package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/feed"
	"github.com/alexnet-repro/alexnet/pkg/nn/gpu"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/shards"
)

// PipelineResult is one training run fed by the real pipeline.
type PipelineResult struct {
	Kind      string  `json:"kind"` // "pipeline"
	Model     string  `json:"model"`
	Precision string  `json:"precision"`
	Batch     int     `json:"batch"`
	Classes   int     `json:"classes"`
	Steps     int     `json:"steps"` // measured, after the warm-up
	Records   int     `json:"records"`
	Decoders  int     `json:"decoders"`
	CPUs      int     `json:"cpus"`
	ImgS      float64 `json:"img_s"`     // wall clock over the measured steps
	DataWait  float64 `json:"data_wait"` // fraction of the compute stream's time spent waiting for data
	MaxWait   float64 `json:"max_wait"`  // worst single step after the warm-up
	// DataWait split by feed.StepTiming.WaitParts, as fractions of the
	// same time: the copy not begun (pipeline or copier late), running,
	// or landed with the step queued late (the loop's own time).
	InputWait  float64 `json:"input_wait"`
	CopyWait   float64 `json:"copy_wait"`
	LoopWait   float64 `json:"loop_wait"`
	TimedSteps int     `json:"timed_steps"`  // measured steps whose GPU timing was read (all, once the feed closed)
	Close      string  `json:"close"`        // the feed's Close: "pending" (the record kept before it), "ok", or "error: …"
	Overlap    float64 `json:"overlap"`      // fraction of steps whose copy started before the previous step ended
	CopyMs     float64 `json:"copy_ms"`      // mean H2D copy time per batch
	HostWaitMs float64 `json:"host_wait_ms"` // mean host time to queue a step (Feed.Next included)
	LossFirst  float64 `json:"loss_first"`
	LossLast   float64 `json:"loss_last"`
}

func runPipeline(args []string, stdout io.Writer) error {
	fs := newFlags("pipeline", "gpucheck pipeline --shards gpu/work/shards --model alexnet-owt --steps 200", stdout)
	dir := fs.String("shards", "", "shard directory (ingest's --out)")
	model := fs.String("model", "alexnet-owt", "model: "+strings.Join(alexnet.Variants(), ", "))
	prec := fs.String("precision", "tf32", "tf32 or fp32")
	batch := fs.Int("batch", 128, "images per step")
	warmup := fs.Int("warmup", 20, "steps before the measurement starts")
	steps := fs.Int("steps", 200, "measured steps")
	decoders := fs.Int("workers", 0, "pipeline decode workers (0: GOMAXPROCS)")
	slots := fs.Int("slots", 6, "pinned host slots")
	logEvery := fs.Int("log-every", 25, "log the data wait every N steps")
	jsonOut := fs.String("json", "", "append the result to this JSON-lines file")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--shards is required")
	}
	p, err := gpu.ParsePrecision(*prec)
	if err != nil {
		return err
	}
	meta, err := shards.ReadMeta(*dir)
	if err != nil {
		return err
	}
	if meta.Stats == nil {
		return fmt.Errorf("%s/meta.json has no train statistics", *dir)
	}
	crop := meta.Width * 7 / 8
	spec, err := alexnet.Build(*model, len(meta.Classes), crop)
	if err != nil {
		return err
	}
	var mean, std [3]float32
	for c := range 3 {
		mean[c], std[c] = float32(meta.Stats.Mean[c]), float32(meta.Stats.Std[c])
	}
	std = spec.InputStd(std)
	dev, err := cuda.Init()
	if err != nil {
		return err
	}
	net, err := gpu.New(spec, *batch, nil, gpu.Options{Precision: p, Seed: 1, Mean: mean, Std: std, Device: dev})
	if err != nil {
		return err
	}
	defer net.Close()
	layout := net.InputLayout()
	pinned, freePinned, err := feed.PinnedSlots(dev, *slots, layout)
	if err != nil {
		return err
	}
	defer freePinned()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pl, err := pipeline.New(ctx, *dir, pipeline.Options{Mode: pipeline.Train, Batch: *batch, Crop: crop, Seed: 1, Decoders: *decoders, Slots: pinned})
	if err != nil {
		return err
	}
	defer pl.Close()
	fd, err := feed.NewCUDADevice(dev, net.Stream(), layout, 2)
	if err != nil {
		return err
	}
	defer fd.Close()
	r := PipelineResult{Kind: "pipeline", Model: *model, Precision: p.String(), Batch: *batch, Classes: len(meta.Classes),
		Steps: *steps, Records: meta.Splits["train"].Records, Decoders: pl.Options().Decoders, CPUs: runtime.NumCPU()}
	var waited, total, copyTime, inWait, cpWait, loopWait time.Duration
	var overlapped, timed int
	var prevEnd time.Duration
	f, err := feed.New(pl, fd, feed.Options{Log: stdout, LogEvery: *logEvery, OnTiming: func(t feed.StepTiming) {
		if t.Seq >= int64(*warmup) {
			waited += t.Wait()
			total += t.Total()
			in, cp, host := t.WaitParts()
			inWait += in
			cpWait += cp
			loopWait += host
			// The worst step over the measured ones, as the mean is:
			// the first steps after the pipeline starts wait the most.
			r.MaxWait = max(r.MaxWait, t.WaitFraction())
			copyTime += t.CopyEnd - t.CopyStart
			if t.CopyStart < prevEnd {
				overlapped++
			}
			timed++
		}
		prevEnd = t.End
	}})
	if err != nil {
		return err
	}
	// Stop the copier before the device buffers go (deferred calls run
	// last first); Close is idempotent.
	defer f.Close()
	fmt.Fprintf(stdout, "pipeline %s %s batch %d: %d records, %d classes, crop %d, %d decoders, %d CPUs\n",
		*model, p, *batch, r.Records, r.Classes, crop, r.Decoders, runtime.NumCPU())
	var prev *gpu.Pending
	var hostWait time.Duration
	var t0 time.Time
	for i := range *warmup + *steps {
		if i == *warmup {
			t0 = time.Now()
		}
		tn := time.Now()
		_, pd, err := net.StepFeed(f, 0.01, 0.9, 0.0005)
		if err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		if i >= *warmup {
			// Queueing a step costs the host little; what it waits for
			// here is the pipeline (Feed.Next) and a full result ring.
			hostWait += time.Since(tn)
		}
		// Read the previous step's loss while this one runs: the loop
		// stays one step ahead of the GPU and still sees every loss.
		if prev != nil {
			loss, _, err := prev.Wait()
			if err != nil {
				return err
			}
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return fmt.Errorf("step %d: loss %v", i-1, loss)
			}
			if i == 1 {
				r.LossFirst = loss
			}
			r.LossLast = loss
		}
		prev = pd
	}
	if _, _, err := prev.Wait(); err != nil {
		return err
	}
	el := time.Since(t0)
	r.ImgS = float64(*steps**batch) / el.Seconds()
	r.HostWaitMs = float64(hostWait) / float64(*steps) / 1e6
	summarise := func(closeWas string) error {
		r.Close = closeWas
		if total > 0 {
			r.DataWait = float64(waited) / float64(total)
			r.InputWait, r.CopyWait, r.LoopWait = float64(inWait)/float64(total), float64(cpWait)/float64(total), float64(loopWait)/float64(total)
		}
		if timed > 0 {
			r.Overlap = float64(overlapped) / float64(timed)
			r.CopyMs = float64(copyTime) / float64(timed) / 1e6
		}
		r.TimedSteps = timed
		when := "the feed's Close failed"
		switch closeWas {
		case "pending":
			when = "before the feed closed, its last steps' timings not yet read"
		case "ok":
			when = "all steps"
		}
		fmt.Fprintf(stdout, "pipeline %s %s (%s): data wait split: input %.2f%%, copy %.2f%%, loop %.2f%%\n", *model, p, when, 100*r.InputWait, 100*r.CopyWait, 100*r.LoopWait)
		fmt.Fprintf(stdout, "pipeline %s %s (%s): %.0f img/s, data wait %.2f%% over %d timed steps (worst step %.1f%%), copy %.2f ms/batch overlapping %.0f%% of steps, host wait %.3f ms/step, loss %.4f -> %.4f\n",
			*model, p, when, r.ImgS, 100*r.DataWait, timed, 100*r.MaxWait, r.CopyMs, 100*r.Overlap, r.HostWaitMs, r.LossFirst, r.LossLast)
		return appendJSON(*jsonOut, r)
	}
	// The figures are kept before Close, whose end of the copier has never
	// run on a device: if it hangs, the run's measurement is not lost with
	// it. The record written after Close, with every step's timing, is the
	// one the table reads (the last of its kind and model).
	if err := summarise("pending"); err != nil {
		return err
	}
	closed := make(chan error, 1)
	go func() { closed <- f.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			// The record says Close ended, with this error; the timings it
			// read before failing are in it.
			if jerr := summarise("error: " + err.Error()); jerr != nil {
				return jerr
			}
			return err
		}
	case <-time.After(closeWait):
		// The deferred releases would wait on the same stuck device;
		// the figures are written, so end here, with timeout(1)'s status
		// so that run.sh takes it for the hang it is (and skips the
		// other steps that run the same feed).
		fmt.Fprintf(stdout, "pipeline %s %s: the feed's Close did not return in %v: the figures above are from before it\n", *model, p, closeWait)
		os.Exit(exitHung)
	}
	if err := summarise("ok"); err != nil {
		return err
	}
	m := pl.Metrics()
	fmt.Fprintf(stdout, "pipeline metrics: %+v\n", m)
	return nil
}

// closeWait bounds the feed's Close: it drains at most two steps' copies.
const closeWait = 60 * time.Second

// exitHung is timeout(1)'s status for a command it stopped, which run.sh
// counts as a hang.
const exitHung = 124
