// Command benchtraincpu is `just bench-train-cpu`: the CPU backend's
// training speed beside PyTorch's on the same machine, the same network
// and the same step, and beside SGEMM's rate. In each round, for each
// model, it times our TrainStep + Update, then the same step in PyTorch
// (tools/bench/torch_train_cpu.py, our spec built as a PyTorch module by
// tools/gpucheck/torch_model.py), then SGEMM at a conv3-like shape; the
// report gives medians, and ratios taken within each round, so that a
// shared machine's drifting speed falls on both sides of each.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/testdata"
	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/blas"
	"github.com/alexnet-repro/alexnet/pkg/nn/cpu"
	"github.com/alexnet-repro/alexnet/pkg/nn/gpu"
	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

func main() {
	benchstat.Main("benchtraincpu", run)
}

// model is one benchmarked network: the shapes the README's table has
// always used (alexnet at batch 32: a step at 128 takes most of a minute
// on 2 cores).
type model struct {
	Name    string `json:"model"`
	Classes int    `json:"classes"`
	Batch   int    `json:"batch"`
	Steps   int    `json:"steps"`
}

var defaultModels = []model{
	{"small", 10, 128, 10},
	{"small-fc", 10, 128, 10},
	{"alexnet", 1000, 32, 3},
}

// measure is one timed run: images over wall seconds and CPU seconds.
type measure struct {
	Images     int     `json:"images"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

func (m measure) rate() float64 { return float64(m.Images) / m.Seconds }

type roundResult struct {
	Round     int     `json:"round"`
	Model     string  `json:"model"`
	Ours      measure `json:"ours"`
	Torch     measure `json:"pytorch"`
	SGEMM     float64 `json:"sgemm_gflops"` // all cores, wall clock, right after
	OurGFLOPS float64 `json:"ours_gflops"`
	OfSGEMM   float64 `json:"ours_of_sgemm"`
	Ratio     float64 `json:"ours_over_pytorch"` // img/s
}

type row struct {
	model
	TrainGFLOPPerImage float64 `json:"train_gflop_per_image"`
	Ours               float64 `json:"ours_img_per_s"`
	OurGFLOPS          float64 `json:"ours_gflops"`
	OfSGEMM            float64 `json:"ours_of_sgemm"`
	Torch              float64 `json:"pytorch_img_per_s"`
	Ratio              float64 `json:"ours_over_pytorch"`
}

type report struct {
	Cores      int           `json:"cores"`
	OurBLAS    string        `json:"ours_blas"`
	Python     string        `json:"python"`
	Torch      string        `json:"torch,omitempty"`
	TorchBLAS  string        `json:"pytorch_blas,omitempty"`
	TorchDNNL  bool          `json:"pytorch_mkldnn"`
	TorchAlloc string        `json:"pytorch_allocator,omitempty"`
	CoreType   string        `json:"openblas_coretype,omitempty"` // OPENBLAS_CORETYPE, when the environment sets it
	AllocNote  string        `json:"pytorch_allocator_note,omitempty"`
	Skipped    string        `json:"pytorch_skipped,omitempty"`
	SGEMMShape [3]int        `json:"sgemm_mnk"`
	Rounds     []roundResult `json:"rounds"`
	Rows       []row         `json:"medians"`
}

// The SGEMM yardstick, the shape `bench-train-cpu` has always used: a
// conv3-like GEMM (384 filters, 1,352 output columns, 3·3·256 depth).
var sgemmShape = [3]int{384, 1352, 2304}

func run(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlags("benchtraincpu", stdout, stderr, "Usage: benchtraincpu [flags]\n\nExamples:\n  just bench-train-cpu\n  just bench-train-cpu --models small --rounds 5 --json\n\nExit codes: 0 done, 1 failed (or the report could not be written), 2 usage, 3 ours alone: the reference did not run (the report says why).\n\nFlags:\n")
	models := fs.String("models", "small,small-fc,alexnet-owt,alexnet", "comma-separated models (small, small-fc, alexnet-owt, alexnet)")
	rounds := fs.Int("rounds", 3, "rounds; the report gives medians")
	steps := fs.Int("steps", 0, "timed steps per run; 0: 10 for the small models, 3 for the AlexNets")
	batch := fs.Int("batch", 0, "batch; 0: 128 for the small models, 32 for the AlexNets")
	python := fs.String("python", "/usr/bin/python3", "Python with torch for the reference (Debian's python3-torch); empty: no reference")
	script := fs.String("script", filepath.Join(testdata.RepoRoot(), "tools", "bench", "torch_train_cpu.py"), "tools/bench/torch_train_cpu.py (the default is this checkout's)")
	allocChoice := fs.String("reference-alloc", "jemalloc", "the PyTorch reference's allocator: jemalloc (purging off: its best here; on glibc, or jemalloc's defaults, it loses time to page faults), glibc-thp (glibc on huge pages) or system")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	log := func(format string, a ...any) { fmt.Fprintf(stderr, "benchtraincpu: "+format+"\n", a...) }
	alloc, allocNote, err := benchstat.ReferenceAllocator(*allocChoice)
	if err != nil {
		log("--reference-alloc: %v", err)
		return 2
	}
	if allocNote != "" {
		log("warning: %s", allocNote)
	}
	if *rounds < 1 || *steps < 0 || *batch < 0 {
		log("--rounds must be positive, --steps and --batch not negative")
		return 2
	}
	var ms []model
	for _, name := range strings.Split(*models, ",") {
		// "small, alexnet" is how people write lists; an empty name
		// (a trailing comma) would otherwise reach alexnet.Build as "".
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if slices.ContainsFunc(ms, func(m model) bool { return m.Name == name }) {
			log("--models names %s twice", name)
			return 2
		}
		m := model{Name: name, Classes: 1000, Batch: 32, Steps: 3}
		if i := slices.IndexFunc(defaultModels, func(d model) bool { return d.Name == name }); i >= 0 {
			m = defaultModels[i]
		} else if _, err := alexnet.Build(name, 1000, 0); err != nil {
			log("%v", err)
			return 2
		}
		if *steps > 0 {
			m.Steps = *steps
		}
		if *batch > 0 {
			m.Batch = *batch
		}
		ms = append(ms, m)
	}
	if len(ms) == 0 {
		log("--models names no model: give one or more of small, small-fc, alexnet-owt, alexnet")
		return 2
	}

	tmp, err := os.MkdirTemp("", "benchtraincpu")
	if err != nil {
		log("%v", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	rep := report{Cores: runtime.NumCPU(), Python: *python, SGEMMShape: sgemmShape, TorchAlloc: alloc.Name, AllocNote: allocNote, CoreType: os.Getenv("OPENBLAS_CORETYPE")}
	if *python == "" {
		rep.Skipped = "--python is empty"
	} else if msg := benchstat.PythonCannotImport(*python, "torch"); msg != "" {
		rep.Skipped = fmt.Sprintf("%s cannot import torch (%s): install python3-torch (`bash scripts/setup.sh torch`) or pass --python", *python, msg)
	}
	if rep.Skipped != "" {
		log("PyTorch reference skipped: %s", rep.Skipped)
	}
	specs := map[string]alexnet.Spec{}
	for _, m := range ms {
		s, err := alexnet.Build(m.Name, m.Classes, 0)
		if err != nil {
			log("%v", err)
			return 2
		}
		specs[m.Name] = s
		js, err := gpu.NewSpecJSON(s)
		if err != nil {
			log("%v", err)
			return 1
		}
		b, _ := json.Marshal(js)
		if err := os.WriteFile(filepath.Join(tmp, m.Name+".json"), b, 0o644); err != nil {
			log("%v", err)
			return 1
		}
	}

	// A reference that fails for one model (PyTorch out of memory at
	// alexnet's batch, say) says nothing of the others: only that
	// model's rounds lose their PyTorch figures.
	torchFailed := map[string]string{}
	for r := range *rounds {
		for _, m := range ms {
			log("round %d of %d: %s, batch %d, %d steps: ours, PyTorch, SGEMM", r+1, *rounds, m.Name, m.Batch, m.Steps)
			res := roundResult{Round: r + 1, Model: m.Name}
			if res.Ours, err = timeOurs(specs[m.Name], m); err != nil {
				log("%s: %v", m.Name, err)
				return 1
			}
			rep.OurBLAS = blas.Backend()
			if _, failed := torchFailed[m.Name]; rep.Skipped == "" && !failed {
				t, err := timeTorch(*python, alloc, *script, filepath.Join(tmp, m.Name+".json"), m)
				if err != nil {
					// Ours is still worth reporting: the reference says why it is missing.
					log("PyTorch reference failed for %s: %v", m.Name, err)
					torchFailed[m.Name] = err.Error()
				} else {
					res.Torch = t.measure
					rep.Torch, rep.TorchBLAS, rep.TorchDNNL = t.Torch, t.BLAS, t.MKLDNN
					res.Ratio = res.Ours.rate() / res.Torch.rate()
				}
			}
			blas.SetThreads(runtime.NumCPU())
			res.SGEMM = blas.MeasureSgemmGFLOPS(sgemmShape[0], sgemmShape[1], sgemmShape[2], time.Second)
			blas.SetThreads(1)
			res.OurGFLOPS = res.Ours.rate() * float64(specs[m.Name].TrainFLOPs()) / 1e9
			res.OfSGEMM = res.OurGFLOPS / res.SGEMM
			rep.Rounds = append(rep.Rounds, res)
		}
	}
	if len(torchFailed) > 0 {
		var why []string
		for _, m := range ms {
			if e, ok := torchFailed[m.Name]; ok {
				why = append(why, m.Name+": "+e)
			}
		}
		rep.Skipped = "failed for " + strings.Join(why, "; ")
		for i := range rep.Rounds {
			if _, ok := torchFailed[rep.Rounds[i].Model]; ok {
				rep.Rounds[i].Torch, rep.Rounds[i].Ratio = measure{}, 0
			}
		}
	}
	for _, m := range ms {
		var ours, gf, of, torch, ratio []float64
		for _, r := range rep.Rounds {
			if r.Model != m.Name {
				continue
			}
			ours, gf, of = append(ours, r.Ours.rate()), append(gf, r.OurGFLOPS), append(of, r.OfSGEMM)
			if r.Ratio > 0 {
				torch, ratio = append(torch, r.Torch.rate()), append(ratio, r.Ratio)
			}
		}
		rep.Rows = append(rep.Rows, row{model: m, TrainGFLOPPerImage: float64(specs[m.Name].TrainFLOPs()) / 1e9,
			Ours: benchstat.Median(ours), OurGFLOPS: benchstat.Median(gf), OfSGEMM: benchstat.Median(of), Torch: benchstat.Median(torch), Ratio: benchstat.Median(ratio)})
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
	if rep.Skipped != "" && *python != "" {
		return benchstat.NoReference(stderr, "benchtraincpu", rep.Skipped, `--python ""`)
	}
	return 0
}

// timeOurs builds the CPU backend's net, runs one warm-up step (which
// touches every buffer, momentum included) and times m.Steps more.
func timeOurs(s alexnet.Spec, m model) (measure, error) {
	n, err := cpu.New(s, m.Batch, nil, 1)
	if err != nil {
		return measure{}, err
	}
	defer n.Close()
	r := rand.New(rand.NewPCG(1, 7))
	x := make([]float32, m.Batch*s.Input[0]*s.Input[1]*s.Input[2])
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	labels := make([]int32, m.Batch)
	for i := range labels {
		labels[i] = int32(r.IntN(s.Classes))
	}
	step := func() error {
		if _, _, _, err := n.TrainStep(x, labels); err != nil {
			return err
		}
		n.Update(0.01, 0.9, 0.0005)
		return nil
	}
	if err := step(); err != nil {
		return measure{}, err
	}
	t0, c0 := time.Now(), benchstat.CPUTime().Seconds()
	for range m.Steps {
		if err := step(); err != nil {
			return measure{}, err
		}
	}
	return measure{Images: m.Batch * m.Steps, Seconds: time.Since(t0).Seconds(), CPUSeconds: benchstat.CPUTime().Seconds() - c0}, nil
}

type torchResult struct {
	measure
	Torch  string `json:"torch"`
	BLAS   string `json:"blas"`
	MKLDNN bool   `json:"mkldnn"`
}

func timeTorch(python string, alloc benchstat.Allocator, script, spec string, m model) (torchResult, error) {
	args := []string{script, "--spec", spec, "--batch", strconv.Itoa(m.Batch), "--steps", strconv.Itoa(m.Steps),
		"--threads", strconv.Itoa(runtime.NumCPU())}
	var t torchResult
	// The errors leave the model out: the caller names it.
	if err := benchstat.RunJSON(python, alloc, args, &t); err != nil {
		return torchResult{}, err
	}
	if t.Images != m.Batch*m.Steps || t.Seconds <= 0 {
		return torchResult{}, fmt.Errorf("%s: %d images in %gs, want %d", filepath.Base(script), t.Images, t.Seconds, m.Batch*m.Steps)
	}
	return t, nil
}

func printReport(w io.Writer, r *report) {
	fmt.Fprintf(w, "CPU training step (forward, backward, SGD with momentum and weight decay) on %d cores, random data;\n", r.Cores)
	fmt.Fprintf(w, "medians of %d round(s), ratios taken within each round\n", len(r.Rounds)/max(1, len(r.Rows)))
	fmt.Fprintf(w, "  ours: %s; SGEMM yardstick %d×%d×%d on all cores through the same library\n", r.OurBLAS, r.SGEMMShape[0], r.SGEMMShape[1], r.SGEMMShape[2])
	if r.CoreType != "" {
		// It overrides OpenBLAS's choice of kernels for ours and for the
		// reference's GEMMs, not for its oneDNN convolutions.
		fmt.Fprintf(w, "  note: OPENBLAS_CORETYPE=%s is set: OpenBLAS runs that core's kernels, not those it would choose for this CPU\n", r.CoreType)
	}
	if r.Torch != "" {
		fmt.Fprintf(w, "  PyTorch %s (%s), oneDNN %v, BLAS %s, allocator %s; our spec as a PyTorch module\n", r.Torch, r.Python, r.TorchDNNL, r.TorchBLAS, r.TorchAlloc)
		if r.AllocNote != "" {
			fmt.Fprintf(w, "  note: %s\n", r.AllocNote)
		}
	}
	if strings.HasPrefix(r.Skipped, "failed") {
		fmt.Fprintf(w, "  PyTorch %s\n", r.Skipped)
	} else if r.Skipped != "" {
		fmt.Fprintf(w, "  PyTorch: skipped: %s\n", r.Skipped)
	}
	fmt.Fprintf(w, "\n%-10s %6s %11s %10s %9s %14s %9s\n", "model", "batch", "ours img/s", "GFLOP/s", "of SGEMM", "PyTorch img/s", "ours ×")
	for _, x := range r.Rows {
		torch, ratio := "—", ""
		if x.Ratio > 0 {
			torch, ratio = fmt.Sprintf("%.1f", x.Torch), fmt.Sprintf("%.2f×", x.Ratio)
		}
		fmt.Fprintf(w, "%-10s %6d %11.1f %10.1f %8.1f%% %14s %9s\n", x.Name, x.Batch, x.Ours, x.OurGFLOPS, 100*x.OfSGEMM, torch, ratio)
	}
	fmt.Fprintf(w, "\nevery run:\n")
	for _, x := range r.Rounds {
		fmt.Fprintf(w, "  round %d %-10s ours %8.1f img/s (%.2f CPU-s/s)", x.Round, x.Model, x.Ours.rate(), x.Ours.CPUSeconds/x.Ours.Seconds)
		if x.Ratio > 0 {
			fmt.Fprintf(w, "  PyTorch %8.1f img/s (%.2f CPU-s/s)  %.2f×", x.Torch.rate(), x.Torch.CPUSeconds/x.Torch.Seconds, x.Ratio)
		}
		fmt.Fprintf(w, "  SGEMM %.1f GFLOP/s\n", x.SGEMM)
	}
}
