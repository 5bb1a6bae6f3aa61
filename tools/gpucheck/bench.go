package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/nn/gpu"
)

// BenchResult is one bench run: training steps on one synthetic uint8
// batch staged on the device once and normalised every step, as PyTorch's
// baseline keeps its (already float) batch on the device.
type BenchResult struct {
	Kind      string        `json:"kind"` // "bench", or "bench_deterministic" under --deterministic
	Model     string        `json:"model"`
	Precision string        `json:"precision"`
	Batch     int           `json:"batch"`
	Steps     int           `json:"steps"`
	ImgS      float64       `json:"img_s"`        // steps queued back to back, CUDA events around them
	ImgSSync  float64       `json:"img_s_synced"` // waiting for each step's loss, as trainer.Backend's Step does
	StepMs    float64       `json:"step_ms"`
	TFLOPs    float64       `json:"tflops"` // achieved, from spec.TrainFLOPs
	PlanS     float64       `json:"plan_s"` // building the net, cudnnFind included
	NetMiB    float64       `json:"net_mib"`
	UsedMiB   float64       `json:"used_mib"`   // device memory in use (cuMemGetInfo total − free: our context and libraries, and any other process)
	LossFirst gpu.JSONFloat `json:"loss_first"` // a string when not finite
	LossLast  gpu.JSONFloat `json:"loss_last"`
	Device    string        `json:"device"`
	// Layers is where a step's time goes (--profile-steps), beside the
	// same split of PyTorch's step in the table.
	Layers       []gpu.LayerTime `json:"layers,omitempty"`
	ProfileSteps int             `json:"profile_steps,omitempty"`
	ProfileError string          `json:"profile_error,omitempty"`
}

func runBench(args []string, stdout io.Writer) error {
	fs := newFlags("bench", "gpucheck bench --model alexnet --precision tf32 --json results/bench.jsonl", stdout)
	model := fs.String("model", "alexnet-owt", "model: "+strings.Join(alexnet.Variants(), ", "))
	prec := fs.String("precision", "tf32", "tf32 or fp32")
	batch := fs.Int("batch", 128, "images per step")
	classes := fs.Int("classes", 1000, "classes")
	warmup := fs.Int("warmup", 20, "untimed steps first")
	steps := fs.Int("steps", 50, "timed steps")
	heuristic := fs.Bool("heuristic", false, "choose convolution algorithms by cuDNN's heuristics instead of timing them")
	deterministic := fs.Bool("deterministic", false, "only deterministic cuDNN algorithms and pooling, as train --deterministic (recorded as kind bench_deterministic)")
	profileSteps := fs.Int("profile-steps", 0, "then time every layer's forward and backward pass over this many synced steps (0: not)")
	jsonOut := fs.String("json", "", "append the result to this JSON-lines file")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	p, err := gpu.ParsePrecision(*prec)
	if err != nil {
		return err
	}
	dev, err := cuda.Init()
	if err != nil {
		return err
	}
	spec, err := alexnet.Build(*model, *classes, 0)
	if err != nil {
		return err
	}
	t0 := time.Now()
	net, err := gpu.New(spec, *batch, nil, gpu.Options{Precision: p, Seed: 1, Heuristic: *heuristic, Deterministic: *deterministic, Device: dev,
		Mean: alexnet.ImageNetMean, Std: spec.InputStd(alexnet.ImageNetStd)})
	if err != nil {
		return err
	}
	defer net.Close()
	kind := "bench"
	if *deterministic {
		kind = "bench_deterministic"
	}
	r := BenchResult{Kind: kind, Model: *model, Precision: p.String(), Batch: *batch, Steps: *steps,
		PlanS: time.Since(t0).Seconds(), Device: dev.Name}
	fmt.Fprintf(stdout, "bench %s %s batch %d: built in %.2fs\n%s\n", *model, p, *batch, r.PlanS, net.Report())
	db, err := net.Stage(gpu.CrossCheckBatch(spec, *batch, 1))
	if err != nil {
		return err
	}
	step := func() (*gpu.Pending, error) {
		if err := net.Load(db); err != nil {
			return nil, err
		}
		return net.StepLoaded(0.01, 0.9, 0.0005)
	}
	for i := range *warmup {
		pd, err := step()
		if err != nil {
			return err
		}
		loss, _, err := pd.Wait()
		if err != nil {
			return err
		}
		if i == 0 {
			r.LossFirst = gpu.JSONFloat(loss)
		}
	}

	// Queued: the host runs ahead (at most a few steps, bounded by the
	// Net's result ring), as PyTorch's eager loop does.
	start, end, err := events(dev)
	if err != nil {
		return err
	}
	defer start.Destroy()
	defer end.Destroy()
	if err := start.Record(net.Stream()); err != nil {
		return err
	}
	var last *gpu.Pending
	for range *steps {
		if last, err = step(); err != nil {
			return err
		}
	}
	if err := end.Record(net.Stream()); err != nil {
		return err
	}
	if err := end.Synchronize(); err != nil {
		return err
	}
	ms, err := cuda.ElapsedMs(start, end)
	if err != nil {
		return err
	}
	lossLast, _, err := last.Wait()
	if err != nil {
		return err
	}
	r.LossLast = gpu.JSONFloat(lossLast)
	r.ImgS = float64(*steps**batch) / (float64(ms) / 1000)
	r.StepMs = float64(ms) / float64(*steps)
	r.TFLOPs = r.ImgS * float64(spec.TrainFLOPs()) / 1e12

	// Synced: the loss of every step read before the next is queued.
	t1 := time.Now()
	for range *steps {
		pd, err := step()
		if err != nil {
			return err
		}
		if _, _, err := pd.Wait(); err != nil {
			return err
		}
	}
	r.ImgSSync = float64(*steps**batch) / time.Since(t1).Seconds()
	free, total, err := dev.MemGetInfo()
	if err != nil {
		return err
	}
	r.UsedMiB = float64(total-free) / (1 << 20)
	r.NetMiB = net.AllocatedMiB()
	fmt.Fprintf(stdout, "bench %s %s batch %d: %.0f img/s queued (%.2f ms/step, %.1f TFLOP/s), %.0f img/s synced per step; loss %.4f -> %.4f; %.0f MiB in use\n",
		*model, p, *batch, r.ImgS, r.StepMs, r.TFLOPs, r.ImgSSync, float64(r.LossFirst), float64(r.LossLast), r.UsedMiB)
	// The timing stands whatever the loss did; the record keeps both, and
	// a loss that is not finite still fails the step. It is written before
	// the profile, which has never run on a device: a profile that hangs
	// or crashes the process must not take the throughput with it. The
	// profiled record, written after, is the one the table reads (the
	// last of a kind, model and precision).
	if err := appendJSON(*jsonOut, r); err != nil {
		return err
	}
	if *profileSteps > 0 {
		// A failed profile loses only itself: the throughput stands. It
		// times the same kernels whatever the loss is.
		r.ProfileSteps = *profileSteps
		if r.Layers, err = net.Profile(db, *profileSteps, 0.01, 0.9, 0.0005); err != nil {
			r.ProfileError = err.Error()
			fmt.Fprintf(stdout, "bench %s %s: profile: %v\n", *model, p, err)
		} else {
			printLayers(stdout, r.Layers)
		}
		if err := appendJSON(*jsonOut, r); err != nil {
			return err
		}
	}
	if l := float64(r.LossLast); math.IsNaN(l) || math.IsInf(l, 0) {
		return fmt.Errorf("loss became %v", l)
	}
	return nil
}

func events(dev *cuda.Device) (start, end *cuda.Event, err error) {
	if start, err = dev.NewEvent(true); err != nil {
		return nil, nil, err
	}
	if end, err = dev.NewEvent(true); err != nil {
		start.Destroy()
		return nil, nil, err
	}
	return start, end, nil
}

// printLayers writes a profile as the log's record of it.
func printLayers(w io.Writer, parts []gpu.LayerTime) {
	var total float64
	for _, p := range parts {
		total += p.Ms
	}
	for _, p := range parts {
		name := p.Layer
		if p.ReLU {
			name += "+relu"
		}
		fmt.Fprintf(w, "  %-12s %-8s %8.3f ms %5.1f%%\n", name, p.Pass, p.Ms, 100*p.Ms/total)
	}
	fmt.Fprintf(w, "  %-21s %8.3f ms per profiled step\n", "total", total)
}
