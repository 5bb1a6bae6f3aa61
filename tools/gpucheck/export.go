package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
	"github.com/alexnet-repro/alexnet/pkg/nn/gpu"
)

func runSpec(args []string, stdout io.Writer) error {
	fs := newFlags("spec", "gpucheck spec --model alexnet > alexnet.json", stdout)
	model := fs.String("model", "alexnet", "model: "+strings.Join(alexnet.Variants(), ", "))
	classes := fs.Int("classes", 1000, "classes")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	spec, err := alexnet.Build(*model, *classes, 0)
	if err != nil {
		return err
	}
	js, err := gpu.NewSpecJSON(spec)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", " ")
	return enc.Encode(js)
}

// CrossCheckRecord is one gpu.CrossCheckResult, for the table.
type CrossCheckRecord struct {
	Kind       string        `json:"kind"` // "crosscheck", or "crosscheck_deterministic" with --deterministic
	Model      string        `json:"model"`
	Precision  string        `json:"precision"`
	Dropout    string        `json:"dropout,omitempty"` // "paper" for train --dropout paper
	Batch      int           `json:"batch"`
	Worst      gpu.JSONFloat `json:"worst"` // "NaN" when a compared value was not finite
	WorstWhat  string        `json:"worst_what"`
	Tolerance  float64       `json:"tolerance"`
	OK         bool          `json:"ok"`
	InputExact bool          `json:"input_exact"`
	MasksEqual bool          `json:"masks_equal"`
	Logits     gpu.JSONFloat `json:"logits"`
	LossErr    gpu.JSONFloat `json:"loss_err"`
}

func runCrossCheck(args []string, stdout io.Writer) error {
	fs := newFlags("crosscheck", "gpucheck crosscheck --models small,alexnet-owt,alexnet --batch 8", stdout)
	models := fs.String("models", "small,alexnet-owt,alexnet", "comma-separated models")
	batch := fs.Int("batch", 8, "images (small uses twice as many)")
	precs := fs.String("precisions", "fp32,tf32", "comma-separated precisions")
	seed := fs.Uint64("seed", 3, "weights, batch and dropout seed")
	det := fs.Bool("deterministic", false, "run the GPU as train --deterministic does (records kind crosscheck_deterministic)")
	dropout := fs.String("dropout", "inverted", "dropout's form, as train --dropout: inverted or paper")
	jsonOut := fs.String("json", "", "append the results to this JSON-lines file")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	kind := "crosscheck"
	if *det {
		kind = "crosscheck_deterministic"
	}
	if *dropout != "inverted" && *dropout != "paper" {
		return fmt.Errorf("--dropout: want inverted or paper, not %q", *dropout)
	}
	var ps []gpu.Precision
	for _, s := range splitList(*precs) {
		p, err := gpu.ParsePrecision(s)
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	dev, err := cuda.Init()
	if err != nil {
		return err
	}
	var failed []string
	for _, m := range strings.Split(*models, ",") {
		classes, b := 1000, *batch
		if m == "small" || m == "small-fc" {
			classes, b = 10, 2**batch
		}
		spec, err := alexnet.Build(m, classes, 0)
		if err != nil {
			return err
		}
		spec.PaperDropout = *dropout == "paper"
		rs, err := gpu.CrossCheck(spec, b, *seed, ps, *det, dev)
		if err != nil {
			// The other models still get their records: one failing
			// model must not blank the whole row of the table.
			fmt.Fprintf(stdout, "crosscheck %s: %v\n", m, err)
			failed = append(failed, fmt.Sprintf("%s (%v)", m, err))
			continue
		}
		for _, r := range rs {
			fmt.Fprint(stdout, r.String())
			rec := CrossCheckRecord{Kind: kind, Model: m, Precision: r.Precision.String(), Dropout: strings.TrimPrefix(*dropout, "inverted"), Batch: b, Worst: gpu.JSONFloat(r.Worst()),
				Tolerance: r.Tolerance, OK: r.OK(), InputExact: r.InputExact, MasksEqual: r.MasksEqual, Logits: gpu.JSONFloat(r.Logits), LossErr: gpu.JSONFloat(r.LossErr)}
			rec.WorstWhat = "logits"
			w := r.Logits
			if r.LossErr > w {
				w, rec.WorstWhat = r.LossErr, "loss"
			}
			for _, g := range r.Grads {
				if g.RelErr > w {
					w, rec.WorstWhat = g.RelErr, "grad "+g.Name
				}
			}
			for _, g := range r.Params {
				if g.RelErr > w {
					w, rec.WorstWhat = g.RelErr, "step "+g.Name
				}
			}
			if err := appendJSON(*jsonOut, rec); err != nil {
				return err
			}
			if !r.OK() {
				failed = append(failed, m+" "+r.Precision.String())
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("outside tolerance: %s", strings.Join(failed, ", "))
	}
	return nil
}

func runExport(args []string, stdout io.Writer) error {
	fs := newFlags("export", "gpucheck export --model alexnet --batch 16 --out gpu/work/oracle-alexnet", stdout)
	model := fs.String("model", "alexnet", "model: "+strings.Join(alexnet.Variants(), ", "))
	batch := fs.Int("batch", 16, "images")
	prec := fs.String("precision", "fp32", "tf32 or fp32")
	out := fs.String("out", "", "folder to write (created)")
	seed := fs.Uint64("seed", 5, "weights, batch and dropout seed")
	input := fs.String("input", "pixels", "pixels (uint8, normalised on the GPU) or continuous (gpu.CrossCheckInput's uniform floats)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *input != "continuous" && *input != "pixels" {
		return fmt.Errorf("--input %q: want continuous or pixels", *input)
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	p, err := gpu.ParsePrecision(*prec)
	if err != nil {
		return err
	}
	classes := 1000
	if *model == "small" {
		classes = 10
	}
	spec, err := alexnet.Build(*model, classes, 0)
	if err != nil {
		return err
	}
	params, err := alexnet.InitParams(spec, "", *seed)
	if err != nil {
		return err
	}
	net, err := gpu.New(spec, *batch, params, gpu.Options{Precision: p, Seed: *seed,
		Mean: alexnet.ImageNetMean, Std: spec.InputStd(alexnet.ImageNetStd)})
	if err != nil {
		return err
	}
	defer net.Close()
	var x []float32
	if *input == "continuous" {
		x = gpu.CrossCheckInput(spec, *batch, *seed)
	}
	m, err := gpu.WriteOracle(*out, net, params, gpu.CrossCheckBatch(spec, *batch, *seed), x, 0.01, 0.9, 0.0005)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "export %s %s batch %d, %s input: loss %.6f, %d tensors -> %s\n", *model, p, *batch, *input, m.Loss, len(m.Tensors), *out)
	return nil
}
