package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/pkg/nn/gpu"
)

// results is everything run.sh left in its results folder, by kind.
type results struct {
	dir     string
	records map[string][]map[string]any
	steps   map[string]string // run.log's verdict on a step that left no record
}

// stepLine is run.log's line for a step that failed, timed out or was
// skipped (run.sh's say).
var stepLine = regexp.MustCompile(`^== \[\d+s\] (FAILED|TIMEOUT|SKIP) ([^ :]+)(.*)$`)

// readSteps collects run.log's verdicts, so a cell without a result says
// why ("failed", "timed out", "skipped") rather than a bare dash.
func (r *results) readSteps() {
	b, err := os.ReadFile(filepath.Join(r.dir, "run.log"))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		m := stepLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		detail := strings.TrimSpace(strings.TrimPrefix(m[3], ":"))
		switch m[1] {
		case "FAILED":
			r.steps[m[2]] = "failed: " + m[2] + " " + detail
		case "TIMEOUT":
			r.steps[m[2]] = "timed out: " + m[2]
			if detail != "" {
				r.steps[m[2]] += " (" + detail + ")"
			}
		case "SKIP":
			r.steps[m[2]] = "skipped: " + m[2] + " (" + detail + ")"
		}
	}
}

// why is the first verdict run.log gives for steps, or a dash.
func (r *results) why(steps ...string) string {
	for _, st := range steps {
		if v, ok := r.steps[st]; ok {
			return v
		}
	}
	return none
}

func loadResults(dir string) (*results, error) {
	r := &results{dir: dir, records: map[string][]map[string]any{}, steps: map[string]string{}}
	r.readSteps()
	files, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue // a half-written line from a killed step
			}
			k, _ := m["kind"].(string)
			r.records[k] = append(r.records[k], m)
		}
		fh.Close()
	}
	return r, nil
}

// find returns the last record of kind whose fields equal want; a field
// the record lacks reads as "" (so "dropout": "" finds the plain
// cross-checks, whose records have none, and not a --dropout paper one).
func (r *results) find(kind string, want map[string]string) map[string]any {
	recs := r.records[kind]
	for i := len(recs) - 1; i >= 0; i-- {
		ok := true
		for k, v := range want {
			got, has := recs[i][k]
			if s := fmt.Sprint(got); !has && v != "" || has && s != v {
				ok = false
				break
			}
		}
		if ok {
			return recs[i]
		}
	}
	return nil
}

// torch finds PyTorch's result for a model; torchvision's AlexNet falls
// back to our one-tower layers (the same net) where torchvision is
// missing.
func (r *results) torch(model, prec string) map[string]any {
	t := r.find("torch_bench", map[string]string{"model": model, "precision": prec})
	if t == nil && model == "torchvision" {
		t = r.find("torch_bench", map[string]string{"model": "alexnet-owt", "precision": prec})
	}
	return t
}

func (r *results) text(name string) string {
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// num reads a number, or the string gpu.JSONFloat and the Python scripts
// write for one that is not finite ("NaN", "+Inf", "-Inf").
func num(m map[string]any, key string) (float64, bool) {
	if m == nil {
		return 0, false
	}
	switch v := m[key].(type) {
	case float64:
		return v, true
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	}
	return 0, false
}

func str(m map[string]any, key string) string {
	if m == nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

const none = "—"

func fmtNum(m map[string]any, key, format string) string {
	if v, ok := num(m, key); ok {
		return fmt.Sprintf(format, v)
	}
	return none
}

func ratio(ours, theirs map[string]any) string {
	a, ok1 := num(ours, "img_s")
	b, ok2 := num(theirs, "img_s")
	if !ok1 || !ok2 || b == 0 {
		return none
	}
	mark := "met"
	if a < b {
		mark = "NOT met"
	}
	return fmt.Sprintf("**%.2f×** (%s)", a/b, mark)
}

func runTable(args []string, stdout io.Writer) error {
	fs := newFlags("table", "gpucheck table --dir gpu/results", stdout)
	dir := fs.String("dir", "gpu/results", "results folder written by gpu/run.sh")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	r, err := loadResults(*dir)
	if err != nil {
		return err
	}
	writeMachine(stdout, r)
	// The split comes before the table, so the table is what a
	// truncated log's tail still shows. A GPU session is rare: whatever
	// goes wrong drawing the split must not cost the table after it.
	func() {
		defer func() {
			if v := recover(); v != nil {
				fmt.Fprintf(stdout, "\n(the per-layer split could not be drawn: %v)\n", v)
			}
		}()
		writeLayers(stdout, r)
	}()
	writeTable(stdout, r)
	return nil
}

// writeMachine prints what the run learnt about the machine, as a
// section for docs/gpu-machine.md.
func writeMachine(w io.Writer, r *results) {
	mach := r.find("machine", nil)
	fmt.Fprintf(w, "\n## GPU machine (measured by gpu/run.sh, which `just gpu-check` builds, %s)\n\n", orNone(str(mach, "date")))
	fmt.Fprintf(w, "- GPU (nvidia-smi): %s\n", orNone(r.text("nvidia-smi.txt")))
	fmt.Fprintf(w, "- CPU: %s, %s cores; memory %s\n", orNone(str(mach, "cpu")), orNone(fmt.Sprint(mach["cores"])), orNone(str(mach, "mem")))
	fmt.Fprintf(w, "- nvcc: %s\n", orNone(str(mach, "nvcc")))
	ti, _ := mach["torch_info"].(map[string]any)
	cudnn := none
	if v, ok := num(ti, "torch_cudnn"); ok {
		cudnn = fmt.Sprintf("%.0f", v)
	}
	fmt.Fprintf(w, "- Python: `%s`; PyTorch %s (CUDA %s, cuDNN %s), torchvision %s\n", orNone(str(mach, "python")),
		orNone(str(ti, "torch")), orNone(str(ti, "torch_cuda")), cudnn, orNone(str(ti, "torchvision")))
	fmt.Fprintf(w, "- nvidia wheels' library folders: `%s`\n", orNone(str(mach, "nvidia_libs")))
	fmt.Fprintf(w, "- CUDA libraries: %s\n", orNone(str(mach, "library_search")))
	fmt.Fprintf(w, "- Build measured: %s\n", orNone(str(mach, "build")))
	for _, prec := range []string{"tf32", "fp32"} {
		t := r.torch("torchvision", prec)
		fmt.Fprintf(w, "- PyTorch AlexNet (%s), batch 128, %s, synthetic data on the device: %s img/s\n", orNone(str(t, "model")), prec, fmtNum(t, "img_s", "%.0f"))
	}
	fmt.Fprintf(w, "\nLibraries as pkg/cuda found them (cuda.Probe):\n\n%s\n", orNone(r.text("probe.md")))
}

func orNone(s string) string {
	if s == "" || s == "<nil>" {
		return none
	}
	return s
}

// writeTable prints the one results table: speed against PyTorch, the
// pipeline's data wait, memory, the cross-checks and the tests.
func writeTable(w io.Writer, r *results) {
	models := []string{"alexnet-owt", "alexnet"}
	torchName := map[string]string{"alexnet-owt": "torchvision", "alexnet": "alexnet"}
	row := func(label string, cell func(model string) string, goal string) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", label, cell(models[0]), cell(models[1]), goal)
	}
	fmt.Fprintf(w, "\n## gpu-check results\n\n| check | alexnet-owt | alexnet | goal |\n|---|---|---|---|\n")
	for _, prec := range []string{"tf32", "fp32"} {
		ours := func(m string) map[string]any {
			return r.find("bench", map[string]string{"model": m, "precision": prec})
		}
		theirs := func(m string) map[string]any { return r.torch(torchName[m], prec) }
		row(fmt.Sprintf("ours, img/s, %s, batch 128: queued · loss read every step", prec), func(m string) string {
			o := ours(m)
			if o == nil {
				return r.why("bench-" + m + "-" + prec)
			}
			return fmtNum(o, "img_s", "%.0f") + " · " + fmtNum(o, "img_s_synced", "%.0f") + " (" + fmtNum(o, "tflops", "%.1f") + " TFLOP/s)"
		}, "")
		row(fmt.Sprintf("PyTorch, img/s, %s (owt: torchvision; alexnet: our layers)", prec), func(m string) string {
			if theirs(m) == nil {
				return r.why("torch-bench-" + prec)
			}
			return fmtNum(theirs(m), "img_s", "%.0f") + tf32Mismatch(theirs(m), prec)
		}, "")
		row(fmt.Sprintf("ratio ours/PyTorch, %s", prec), func(m string) string { return ratio(ours(m), theirs(m)) }, "≥ 1.0×")
	}
	row("ours with --deterministic, tf32: img/s (share of the default's)", func(m string) string {
		d := r.find("bench_deterministic", map[string]string{"model": m, "precision": "tf32"})
		if d == nil {
			return r.why("bench-" + m + "-tf32-det")
		}
		s := fmtNum(d, "img_s", "%.0f")
		if dv, ok := num(d, "img_s"); ok {
			if bv, ok := num(r.find("bench", map[string]string{"model": m, "precision": "tf32"}), "img_s"); ok && bv > 0 {
				s += fmt.Sprintf(" (%.0f%%)", 100*dv/bv)
			}
		}
		return s
	}, "")
	row("GPU memory, tf32: device in use during ours (context included) · ours allocated · PyTorch max reserved (MiB)", func(m string) string {
		o := r.find("bench", map[string]string{"model": m, "precision": "tf32"})
		t := r.torch(torchName[m], "tf32")
		return fmtNum(o, "used_mib", "%.0f") + " · " + fmtNum(o, "net_mib", "%.0f") + " · " + fmtNum(t, "max_reserved_mib", "%.0f")
	}, "")
	pipe := func(m string) map[string]any {
		return r.find("pipeline", map[string]string{"model": m, "precision": "tf32"})
	}
	// The shards are ingest's of the carried JPEGs, read from the page
	// cache: the row measures decoding, the copy and the feed, not a
	// disk's reads.
	row("real pipeline → pkg/feed, tf32: img/s (vs queued bench); records, decoders/CPUs (shards in page cache)", func(m string) string {
		p := pipe(m)
		if p == nil {
			return r.why("ingest", "pipeline-"+m)
		}
		b := r.find("bench", map[string]string{"model": m, "precision": "tf32"})
		s := fmtNum(p, "img_s", "%.0f")
		if pv, ok := num(p, "img_s"); ok {
			if bv, ok := num(b, "img_s"); ok && bv > 0 {
				s += fmt.Sprintf(" (%.0f%%)", 100*pv/bv)
			}
		}
		if n, ok := num(p, "records"); ok {
			s += fmt.Sprintf("; %.0f records", n)
		}
		if d, ok := num(p, "decoders"); ok {
			s += fmt.Sprintf(", %.0f", d)
			if c, ok := num(p, "cpus"); ok {
				s += fmt.Sprintf("/%.0f", c)
			}
		}
		// The record kept before the feed's Close is the last there is
		// when Close hung: its last steps' timings were never read.
		t, okT := num(p, "timed_steps")
		n, okN := num(p, "steps")
		switch c := str(p, "close"); {
		case c == "pending":
			s += " (the feed's Close did not end"
			if okT && okN {
				s += fmt.Sprintf(": timings of %.0f of %.0f steps", t, n)
			}
			s += ")"
		case strings.HasPrefix(c, "error"):
			s += " (the feed's Close failed, " + c + ")"
		}
		return s
	}, "")
	row("data wait, GPU clock: mean · worst step", func(m string) string {
		p := pipe(m)
		s := fmtNum(p, "data_wait", "%.4f")
		if v, ok := num(p, "data_wait"); ok {
			s = fmt.Sprintf("**%.2f%%**", 100*v)
			if v >= 0.02 {
				s += " (NOT met)"
			}
		}
		if v, ok := num(p, "max_wait"); ok {
			s += fmt.Sprintf(" · %.1f%%", 100*v)
		}
		// What the GPU waited on: a miss that is the loop's own time is
		// not the feed's.
		in, ok1 := num(p, "input_wait")
		cp, ok2 := num(p, "copy_wait")
		lp, ok3 := num(p, "loop_wait")
		if ok1 && ok2 && ok3 {
			s += fmt.Sprintf(" (input %.2f%%, copy %.2f%%, loop %.2f%%)", 100*in, 100*cp, 100*lp)
		}
		return s
	}, "< 2%")
	row("copy: ms per batch · steps overlapped by the next copy", func(m string) string {
		p := pipe(m)
		s := fmtNum(p, "copy_ms", "%.2f") + " · "
		if v, ok := num(p, "overlap"); ok {
			return s + fmt.Sprintf("%.0f%%", 100*v)
		}
		return s + none
	}, "")
	for _, prec := range []string{"fp32", "tf32"} {
		goal := "≤ 1e-3"
		if prec == "tf32" {
			goal = "≤ 1e-2"
		}
		row(fmt.Sprintf("cross-check vs CPU, %s: worst rel err (where)", prec), func(m string) string {
			return crossCell(r.find("crosscheck", map[string]string{"model": m, "precision": prec, "dropout": ""}), r.why("crosscheck"))
		}, goal+"; input, masks exact (conv gradients: pooling flips break it on some batches, docs/gpu-machine.md)")
	}
	row("cross-check vs CPU with --deterministic: fp32 · tf32", func(m string) string {
		det := func(prec string) string {
			return crossCell(r.find("crosscheck_deterministic", map[string]string{"model": m, "precision": prec, "dropout": ""}), r.why("crosscheck-det"))
		}
		return det("fp32") + " · " + det("tf32")
	}, "as above")
	row("layer check (each layer fed its GPU inputs, against float64; gpu.test): fp32 · tf32, the error nearest its bound (layer)", func(m string) string {
		cell := func(prec string) string {
			c := r.find("layercheck", map[string]string{"model": m, "precision": prec})
			if c == nil {
				return r.why("layer-check")
			}
			// where may be an error's text: one line, no cell breaks.
			where := strings.NewReplacer("\n", " ", "|", "/").Replace(str(c, "where"))
			s := fmtNum(c, "worst", "%.1e") + " (" + where + ")"
			if ok, _ := c["ok"].(bool); !ok {
				s += " NOT OK"
			}
			return s
		}
		return cell("fp32") + " · " + cell("tf32")
	}, "conv, fc ≤ 1e-3 · 1e-2; LRN ≤ 1e-4; others ≤ 1e-5")
	fmt.Fprintf(w, "| cross-check vs CPU, small: fp32 · tf32 | %s · %s |  | |\n",
		crossCell(r.find("crosscheck", map[string]string{"model": "small", "precision": "fp32", "dropout": ""}), r.why("crosscheck")),
		crossCell(r.find("crosscheck", map[string]string{"model": "small", "precision": "tf32", "dropout": ""}), r.why("crosscheck")))
	fmt.Fprintf(w, "| cross-check vs CPU, small-fc with --dropout paper: fp32 · tf32 | %s · %s |  | |\n",
		crossCell(r.find("crosscheck", map[string]string{"model": "small-fc", "precision": "fp32", "dropout": "paper"}), r.why("crosscheck-paper-dropout")),
		crossCell(r.find("crosscheck", map[string]string{"model": "small-fc", "precision": "tf32", "dropout": "paper"}), r.why("crosscheck-paper-dropout")))
	row("PyTorch oracle, fp32: max abs diff logits · loss · worst grad rel · after step rel", func(m string) string {
		o := r.find("oracle", map[string]string{"model": m, "precision": "fp32"})
		if o == nil {
			return r.why("export-"+m, "oracle-"+m)
		}
		s := fmtNum(o, "logits_maxdiff", "%.1e") + " · " + fmtNum(o, "loss_diff", "%.1e") + " · " + fmtNum(o, "worst_grad_rel", "%.1e") +
			" (" + str(o, "worst_grad") + ") · " + fmtNum(o, "worst_after_rel", "%.1e")
		if ok, _ := o["ok"].(bool); !ok {
			s += " NOT OK"
		}
		return s
	}, "≤ 1e-3 rel (conv gradients: pooling flips break it on some batches, docs/gpu-machine.md)")
	row("PyTorch oracle, tf32: worst grad rel vs PyTorch's fp32 step: ours · PyTorch's own TF32 (the floor); ours vs PyTorch tf32", func(m string) string {
		o := r.find("oracle", map[string]string{"model": m, "precision": "tf32"})
		if o == nil {
			return r.why("export-"+m+"-tf32", "oracle-"+m+"-tf32")
		}
		s := fmtNum(o, "ours_vs_fp32", "%.1e") + " (" + str(o, "ours_vs_fp32_where") + ") · " +
			fmtNum(o, "torch_vs_fp32", "%.1e") + " (" + str(o, "torch_vs_fp32_where") + "); " +
			fmtNum(o, "worst_grad_rel", "%.1e") + " (" + str(o, "worst_grad") + ")"
		if ok, _ := o["ok"].(bool); !ok {
			s += " NOT OK"
		}
		return s
	}, "ours ≤ 1e-2 vs PyTorch tf32")
	writePipelineCPU(w, r)
	writeTrainCUDA(w, r)
	writeLearn(w, r)
	var tests []string
	for _, t := range r.records["test"] {
		tests = append(tests, fmt.Sprintf("%s: %s (%v passed, %v failed, %v skipped)", str(t, "binary"), str(t, "verdict"), t["pass"], t["fail"], t["skip"]))
	}
	fmt.Fprintf(w, "| test binaries | %s | | all pass |\n", orNone(strings.Join(tests, "; ")))
	if mach := r.find("machine", nil); mach != nil {
		fmt.Fprintf(w, "| run | %s, %vs in all | | ≤ 480 s |\n", orNone(r.text("nvidia-smi.txt")), mach["seconds"])
	}
}

// crossCell shows a cross-check record, or why there is none.
func crossCell(c map[string]any, why string) string {
	if c == nil {
		return why
	}
	s := fmtNum(c, "worst", "%.1e") + " (" + str(c, "worst_what") + ")"
	if ok, _ := c["ok"].(bool); !ok {
		s += fmt.Sprintf(" NOT OK: input exact %v, masks %v", c["input_exact"], c["masks_equal"])
	}
	return s
}

// pipelineCPU is the part of benchpipeline's JSON report the table shows.
type pipelineCPU struct {
	Cores int `json:"cores"`
	One   struct {
		ImgPerCPUSec float64 `json:"img_per_cpu_s"`
	} `json:"one_core"`
	All struct {
		ImgPerSec float64 `json:"img_per_s"`
		Decoders  int     `json:"decoders"`
	} `json:"all_cores"`
	Scaling   float64 `json:"scaling_of_linear"`
	Same      bool    `json:"digests_match"`
	Reference *struct {
		Skipped string `json:"skipped"`
		Rows    []struct {
			Mode  string  `json:"mode"`
			All   bool    `json:"all_cores"`
			Rate  float64 `json:"img_per_s_or_cpu_s"`
			Ratio float64 `json:"ours_over_reference"`
		} `json:"medians"`
	} `json:"pytorch_dataloader"`
}

// writePipelineCPU adds the row for the input pipeline on the GPU
// machine's cores (bench-pipeline's report, pipeline-cpu.json), beside
// PyTorch's DataLoader over the same images as 256-px JPEGs.
func writePipelineCPU(w io.Writer, r *results) {
	ours, ref := r.why("ingest", "pipeline-cpu"), none
	var p pipelineCPU
	if b := r.text("pipeline-cpu.json"); b != "" && json.Unmarshal([]byte(b), &p) == nil && p.All.ImgPerSec > 0 {
		ours = fmt.Sprintf("%.0f img/CPU-s · %.0f img/s on %d (%.0f%% of linear)", p.One.ImgPerCPUSec, p.All.ImgPerSec, p.All.Decoders, 100*p.Scaling)
		if !p.Same {
			ours += " NOT deterministic"
		}
		switch {
		case p.Reference == nil:
		case p.Reference.Skipped != "":
			ref = "skipped: " + p.Reference.Skipped
		default:
			var cells []string
			for _, all := range []bool{false, true} {
				for _, row := range p.Reference.Rows {
					if row.Mode == "resized" && row.All == all {
						what := "1 core"
						if all {
							what = "all"
						}
						cells = append(cells, fmt.Sprintf("%s %.0f (ours **%.1f×**)", what, row.Rate, row.Ratio))
					}
				}
			}
			ref = orNone(strings.Join(cells, " · "))
		}
	}
	fmt.Fprintf(w, "| input pipeline on this machine's CPUs (bench-pipeline): ours 1 core · all cores | %s | DataLoader + PIL, 256-px JPEGs: %s | near-linear |\n", ours, ref)
}

// writeTrainCUDA adds the row for the train command itself on the GPU:
// its last line, which says how the run ended, or why it did not run.
func writeTrainCUDA(w io.Writer, r *results) {
	cell := r.why("ingest", "train-cuda")
	if log := r.text("train-cuda.log"); log != "" {
		lines := strings.Split(log, "\n")
		cell = strings.TrimSpace(lines[len(lines)-1])
		for _, l := range lines {
			if strings.HasPrefix(l, "train: done") {
				cell = strings.TrimSpace(l)
			}
		}
		if v := r.why("train-cuda"); v != none {
			cell = v + ": " + cell
		}
		cell = strings.ReplaceAll(cell, "|", "/")
	}
	fmt.Fprintf(w, "| `train --device cuda` (alexnet-owt, real pipeline, 60 steps) | %s | | runs to the end |\n", cell)
}

// learnGoal is how far the GPU's test error may lie from the CPU's after
// the same short training: TF32 and cuDNN's sums take another path, so
// the runs part after the first steps, and three CPU seeds of it spread
// 0.5 points (16.40–16.92%, 2026-11-30). A backend that learns wrongly
// (a gradient off, an update skipped) lands well outside.
const learnGoal = 1.5

// trainJSON is the part of `train --json` the learning row reads.
type trainJSON struct {
	Steps      int64    `json:"steps"`
	RunSeconds float64  `json:"run_seconds"`
	Top1Err    *float64 `json:"top1_err"`
	Error      string   `json:"error"` // a run that failed: train's message
}

// writeLearn adds the row for the CPU's short Fashion-MNIST training
// (at build) and the same on the GPU: each one's test error, and the
// distance between them against learnGoal.
func writeLearn(w io.Writer, r *results) {
	parse := func(name string) (t trainJSON, ok bool) {
		b := r.text(name)
		ok = b != "" && json.Unmarshal([]byte(b), &t) == nil && t.Top1Err != nil
		return t, ok
	}
	cell := func(t trainJSON) string {
		return fmt.Sprintf("%.2f%% (%d steps, %.0f s)", 100**t.Top1Err, t.Steps, t.RunSeconds)
	}
	ours := r.why("learn-cuda")
	// after puts what the results say after the step's verdict, if any.
	after := func(sep, s string) {
		if ours == none {
			ours = s
		} else {
			ours += sep + s
		}
	}
	cpu, cpuOK := parse("learn-cpu.json")
	ref := "none (just gpu-check found no Fashion-MNIST)"
	if cpuOK {
		ref = "CPU " + cell(cpu)
	}
	switch gpuRun, ok := parse("learn-cuda.json"); {
	case ok:
		ours = cell(gpuRun)
		if cpuOK {
			// To the hundredth of a point it prints at: errors are counts
			// of 5,000 images, and a gap of exactly 75 would otherwise be
			// judged by its float rounding either way.
			d := math.Round(10000*(*gpuRun.Top1Err-*cpu.Top1Err)) / 100
			verdict := "met"
			if math.Abs(d) > learnGoal || math.IsNaN(d) {
				verdict = "NOT met"
			}
			ours += fmt.Sprintf(", %+.2f points (%s)", d, verdict)
		}
	case gpuRun.Error != "":
		// The first line names the fault; the rest (where a library was
		// looked for, say) is in learn-cuda.json.
		msg, _, _ := strings.Cut(gpuRun.Error, "\n")
		after(": ", strings.ReplaceAll(msg, "|", "/"))
	case r.text("learn-cuda.json") != "":
		after("; ", "no test error in learn-cuda.json: "+strings.ReplaceAll(r.text("learn-cuda.json"), "|", "/"))
	}
	fmt.Fprintf(w, "| learning: Fashion-MNIST (12,000 train, 5,000 test), small-fc, 3 epochs, seed 1: test error, GPU · CPU | %s | %s | within %.1f points |\n", ours, ref, learnGoal)
}

// layersOf reads a bench record's profile (ours or PyTorch's: both write
// gpu.LayerTime's fields).
func layersOf(m map[string]any) []gpu.LayerTime {
	if m == nil || m["layers"] == nil {
		return nil
	}
	b, err := json.Marshal(m["layers"])
	if err != nil {
		return nil
	}
	var out []gpu.LayerTime
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

// stepSplit is one side's profile keyed by part: forward and backward
// per layer, and the parts outside the layers.
type stepSplit struct {
	order []string // layers in forward order
	fwd   map[string]float64
	bwd   map[string]float64
	other map[string]float64 // input, loss, update
	relu  map[string]bool    // ours: the layer's ReLU is fused into it
	total float64
}

// splitOf keys a profile by part. fold adds each ReLU that directly
// follows a conv or fc layer into that layer, as our Net fuses them, so
// PyTorch's separate ReLU modules line up with our fused layers.
func splitOf(parts []gpu.LayerTime, fold bool) *stepSplit {
	if parts == nil {
		return nil
	}
	s := &stepSplit{fwd: map[string]float64{}, bwd: map[string]float64{}, other: map[string]float64{}, relu: map[string]bool{}}
	into := map[string]string{} // a folded ReLU → the layer it joins
	prev, prevKind := "", ""
	for _, p := range parts {
		s.total += p.Ms
		if p.Pass != "forward" {
			continue
		}
		if fold && p.Kind == "relu" && (prevKind == "conv" || prevKind == "fc") {
			into[p.Layer] = prev
			s.relu[prev] = true
			continue
		}
		s.order = append(s.order, p.Layer)
		prev, prevKind = p.Layer, p.Kind
	}
	for _, p := range parts {
		layer := p.Layer
		if to, ok := into[layer]; ok {
			layer = to
		}
		switch p.Pass {
		case "forward":
			s.fwd[layer] += p.Ms
		case "backward":
			s.bwd[layer] += p.Ms
		default:
			s.other[layer] += p.Ms
		}
		if p.ReLU {
			s.relu[layer] = true
		}
	}
	return s
}

// cell formats one part of one side: fwd, bwd or other; "—" where that
// side has no profile (s nil: not run, failed, or cut by the budget) or no
// such part.
func (s *stepSplit) cell(part, key string) string {
	if s == nil {
		return none
	}
	v, ok := map[string]map[string]float64{"fwd": s.fwd, "bwd": s.bwd, "other": s.other}[part][key]
	if !ok {
		return none
	}
	return fmt.Sprintf("%.3f", v)
}

// writeLayers prints, per model, where a tf32 training step's time goes:
// ours per layer beside PyTorch's modules (our spec built in PyTorch), so
// a ratio below 1.0× points at the layers to work on.
func writeLayers(w io.Writer, r *results) {
	for _, model := range []string{"alexnet-owt", "alexnet"} {
		o := r.find("bench", map[string]string{"model": model, "precision": "tf32"})
		t := r.find("torch_bench", map[string]string{"model": model, "precision": "tf32"})
		ours, theirs := splitOf(layersOf(o), false), splitOf(layersOf(t), true)
		failed := func() {
			for _, m := range []map[string]any{o, t} {
				if e := str(m, "profile_error"); e != "" {
					who := map[string]string{"bench": "ours", "torch_bench": "PyTorch's"}[str(m, "kind")]
					fmt.Fprintf(w, "\n%s, %s: %s profile failed: %s\n", model, "tf32", who, e)
				}
			}
			// The bench's throughput is recorded before its profile: a
			// record without one, from a step run.log says did not end
			// well, is a profile that hung or crashed.
			if ours == nil && o != nil && str(o, "profile_error") == "" {
				if v := r.why("bench-" + model + "-tf32"); v != none {
					fmt.Fprintf(w, "\n%s, tf32: our profile did not end (%s)\n", model, v)
				}
			}
		}
		if ours == nil && theirs == nil {
			failed()
			continue
		}
		steps := fmtNum(o, "profile_steps", "%.0f")
		if ours == nil {
			steps = fmtNum(t, "profile_steps", "%.0f")
		}
		fmt.Fprintf(w, "\n### Where a step's time goes: %s, tf32, batch 128\n\n", model)
		fmt.Fprintf(w, "ms per step, means of %s synced steps with a CUDA event after every layer (PyTorch: our layers as modules, its ReLUs added to the conv or fc layer they follow, as ours are fused). Profiled steps add up to more than a bench step; read the shares.\n\n", steps)
		fmt.Fprintf(w, "| part | ours: forward (or whole part) | PyTorch: forward (or whole part) | ours: backward | PyTorch: backward | ours ÷ PyTorch, both passes |\n|---|---|---|---|---|---|\n")
		order := []string{}
		if theirs != nil {
			order = append(order, theirs.order...)
		}
		if ours != nil {
			for _, l := range ours.order {
				if !slices.Contains(order, l) {
					order = append(order, l)
				}
			}
		}
		rowRatio := func(a, b float64, okA, okB bool) string {
			if !okA || !okB || b <= 0 {
				return none
			}
			s := fmt.Sprintf("%.2f", a/b)
			if a/b > 1.1 {
				s = "**" + s + "** (slower)"
			}
			return s
		}
		sum := func(s *stepSplit, l string) (float64, bool) {
			if s == nil {
				return 0, false
			}
			f, ok1 := s.fwd[l]
			b, ok2 := s.bwd[l]
			return f + b, ok1 || ok2
		}
		for _, l := range []string{"input"} {
			v, ok := 0.0, false
			if ours != nil {
				v, ok = ours.other[l]
			}
			if ok {
				fmt.Fprintf(w, "| input: uint8 → normalised float32 (PyTorch is handed floats) | %.3f | %s | | | |\n", v, none)
			}
		}
		for _, l := range order {
			name := l
			if (ours != nil && ours.relu[l]) || (theirs != nil && theirs.relu[l]) {
				name += " + ReLU"
			}
			a, okA := sum(ours, l)
			b, okB := sum(theirs, l)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", name, ours.cell("fwd", l), theirs.cell("fwd", l),
				ours.cell("bwd", l), theirs.cell("bwd", l), rowRatio(a, b, okA, okB))
		}
		for _, l := range []string{"loss", "update"} {
			var a, b float64
			var okA, okB bool
			if ours != nil {
				a, okA = ours.other[l]
			}
			if theirs != nil {
				b, okB = theirs.other[l]
			}
			label := map[string]string{"loss": "loss: softmax cross-entropy and its gradient", "update": "update: SGD with momentum and weight decay"}[l]
			fmt.Fprintf(w, "| %s | %s | %s | | | %s |\n", label, ours.cell("other", l), theirs.cell("other", l), rowRatio(a, b, okA, okB))
		}
		tot := func(s *stepSplit) string {
			if s == nil {
				return none
			}
			return fmt.Sprintf("**%.2f**", s.total)
		}
		var a, b float64
		if ours != nil {
			a = ours.total
		}
		if theirs != nil {
			b = theirs.total
		}
		fmt.Fprintf(w, "| total: the whole profiled step | %s | %s | | | %s |\n", tot(ours), tot(theirs), rowRatio(a, b, ours != nil, theirs != nil))
		failed()
	}
}

// tf32Mismatch says when PyTorch's own reading of its TF32 switches
// (torch_model.tf32_settings, in the record as "tf32") is not what the
// row's precision asked for: a tf32 ratio against IEEE fp32 convolutions,
// or the reverse, would compare unlike arithmetic. "" when they agree or
// the record does not say.
func tf32Mismatch(m map[string]any, prec string) string {
	set, ok := m["tf32"].(map[string]any)
	if !ok {
		return ""
	}
	var wrong, unknown []string
	for _, k := range []string{"matmul_fp32_precision", "cudnn_conv_fp32_precision", "matmul_allow_tf32", "cudnn_allow_tf32"} {
		v, ok := set[k]
		if !ok {
			continue
		}
		if str, ok := v.(string); ok && strings.HasPrefix(str, "unreadable") {
			unknown = append(unknown, k)
			continue
		}
		on := v == "tf32" || v == true
		off := v == "ieee" || v == false
		if (prec == "tf32" && !on) || (prec == "fp32" && !off) {
			wrong = append(wrong, fmt.Sprintf("%s=%v", k, v))
		}
	}
	switch {
	case len(wrong) > 0:
		return fmt.Sprintf(" (NOT %s: %s)", prec, strings.Join(wrong, ", "))
	case len(unknown) > 0:
		return fmt.Sprintf(" (%s not confirmed: %s unreadable)", prec, strings.Join(unknown, ", "))
	}
	return ""
}
