package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	files := map[string]string{
		"bench.jsonl": `{"kind":"bench","model":"alexnet-owt","precision":"tf32","batch":128,"img_s":11000,"img_s_synced":10800,"tflops":25.1,"used_mib":3000,"net_mib":2100}
{"kind":"bench","model":"alexnet","precision":"tf32","batch":128,"img_s":8000,"img_s_synced":7900,"tflops":20,"used_mib":3500,"net_mib":2600}
{"kind":"bench_deterministic","model":"alexnet-owt","precision":"tf32","batch":128,"img_s":9900,"img_s_synced":9800,"tflops":22}
{"kind":"bench","model":"alexnet-owt","precision":"fp32","img_s":5000`, // a line cut short by a timeout
		"torch.jsonl": `{"kind":"torch_bench","model":"torchvision","precision":"tf32","img_s":10000,"max_reserved_mib":4100,"tf32":{"matmul_fp32_precision":"tf32","cudnn_conv_fp32_precision":"tf32"}}
{"kind":"torch_bench","model":"alexnet","precision":"tf32","img_s":8500,"max_reserved_mib":4500,"tf32":{"matmul_allow_tf32":true,"cudnn_allow_tf32":false,"float32_matmul_precision":"highest"}}
`,
		// alexnet's is the record kept before a feed Close that hung.
		"pipeline.jsonl": `{"kind":"pipeline","model":"alexnet-owt","precision":"tf32","img_s":10900,"data_wait":0.005,"max_wait":0.031,"input_wait":0.001,"copy_wait":0.003,"loop_wait":0.001,"overlap":0.99,"copy_ms":1.6,"records":2880,"decoders":16,"cpus":16,"steps":200,"timed_steps":200,"close":"ok"}
{"kind":"pipeline","model":"alexnet","precision":"tf32","img_s":7000,"data_wait":0.03,"max_wait":0.2,"overlap":0.9,"copy_ms":1.6,"steps":200,"timed_steps":198,"close":"pending"}
`,
		"crosscheck.jsonl": `{"kind":"crosscheck","model":"alexnet","precision":"fp32","worst":2.5e-6,"worst_what":"grad conv1.weight","ok":true}
{"kind":"crosscheck","model":"alexnet","precision":"tf32","worst":0.03,"worst_what":"grad fc8.bias","ok":false,"input_exact":true,"masks_equal":true}
{"kind":"crosscheck","model":"alexnet-owt","precision":"fp32","worst":"NaN","worst_what":"logits","ok":false,"input_exact":true,"masks_equal":true,"logits":"NaN","loss_err":"+Inf"}
{"kind":"crosscheck_deterministic","model":"alexnet-owt","precision":"fp32","worst":3e-6,"worst_what":"grad fc6.weight","ok":true}
{"kind":"crosscheck_deterministic","model":"alexnet-owt","precision":"tf32","worst":4e-3,"worst_what":"logits","ok":true}
{"kind":"crosscheck","model":"small-fc","precision":"fp32","dropout":"paper","worst":7e-7,"worst_what":"grad fc1.weight","ok":true}
{"kind":"crosscheck","model":"alexnet","precision":"fp32","dropout":"paper","worst":9e-9,"worst_what":"logits","ok":true}
`,
		"oracle.jsonl": `{"kind":"oracle","model":"alexnet","precision":"fp32","logits_maxdiff":1e-6,"loss_diff":2e-7,"worst_grad":"conv1.weight","worst_grad_rel":3e-6,"worst_after_rel":1e-7,"ok":true}
`,
		"tests.jsonl":    `{"kind":"test","binary":"cuda.test","verdict":"PASS","pass":14,"fail":0,"skip":0}` + "\n",
		"machine.jsonl":  `{"kind":"machine","date":"2026-11-30T10:00Z","seconds":312,"python":"/usr/bin/python3","nvcc":"not found","cores":16,"torch_info":{"torch":"2.9.0","torch_cuda":"13.0","torch_cudnn":91000}}` + "\n",
		"nvidia-smi.txt": "NVIDIA H100 80GB HBM3, 580.65, 81559 MiB",
		// run.sh's verdicts on steps that left no record.
		"run.log": "== [0s] nvidia-smi\n== [100s] TIMEOUT bench-alexnet-owt-tf32\n== [200s] TIMEOUT bench-alexnet-fp32\n== [210s] FAILED torch-bench-fp32 (exit 1)\n" +
			"== [300s] SKIP export-alexnet-owt: budget of 450s spent\n== [301s] SKIP oracle-alexnet-owt: budget of 450s spent\n",
		"probe.md":       "| component | version | path |",
		"train-cuda.log": "train: alexnet-owt, ...\nstep 60 ...\ntrain: done (max-steps): 60 steps, 2 epochs in 14s; no validation pass in this run; checkpoint x\n",
		// As train --json writes them.
		"learn-cpu.json":  `{"stopped":"epochs","steps":279,"epochs":3,"seconds":0.09,"run_seconds":40.35,"evaluated":true,"top1_err":0.1666,"top5_err":0.0026,"val_step":279,"checkpoint":"x"}`,
		"learn-cuda.json": `{"stopped":"epochs","steps":279,"epochs":3,"seconds":0.01,"run_seconds":6.2,"evaluated":true,"top1_err":0.1702,"top5_err":0.003,"val_step":279,"checkpoint":"y"}`,
		// As benchpipeline --json writes it (abridged).
		"pipeline-cpu.json": `{"cores": 16, "one_core": {"label": "1 worker, 1 core", "img_per_cpu_s": 4210.4},
  "all_cores": {"decoders": 16, "img_per_s": 61234.4}, "scaling_of_linear": 0.93, "digests_match": true,
  "pytorch_dataloader": {"torch": "2.9.0", "runs": [], "medians": [
    {"mode": "resized", "all_cores": false, "img_per_s_or_cpu_s": 1400, "ours_over_reference": 3.01},
    {"mode": "original", "all_cores": false, "img_per_s_or_cpu_s": 250, "ours_over_reference": 16.8},
    {"mode": "resized", "all_cores": true, "img_per_s_or_cpu_s": 15000, "ours_over_reference": 4.08}]}}`,
	}
	got := renderTable(t, files)
	wantInTable(t, got,
		"| ours, img/s, tf32, batch 128: queued · loss read every step | 11000 · 10800 (25.1 TFLOP/s) | 8000 · 7900 (20.0 TFLOP/s) |  |",
		// The deterministic bench, written after the default one, is its own row.
		"| ours with --deterministic, tf32: img/s (share of the default's) | 9900 (90%) | — |",
		"| ratio ours/PyTorch, tf32 | **1.10×** (met) | **0.94×** (NOT met) | ≥ 1.0× |",
		"| PyTorch, img/s, tf32 (owt: torchvision; alexnet: our layers) | 10000 | 8500 (NOT tf32: cudnn_allow_tf32=false) |",
		"| 10900 (99%); 2880 records, 16/16 | 7000 (88%) (the feed's Close did not end: timings of 198 of 200 steps) |",
		"| data wait, GPU clock: mean · worst step | **0.50%** · 3.1% (input 0.10%, copy 0.30%, loop 0.10%) | **3.00%** (NOT met) · 20.0% | < 2% |",
		"| GPU memory, tf32: device in use during ours (context included) · ours allocated · PyTorch max reserved (MiB) | 3000 · 2100 · 4100 |",
		"2.5e-06 (grad conv1.weight)",
		"3.0e-02 (grad fc8.bias) NOT OK",
		// The deterministic cross-check has its own row; the default rows do not pick it up.
		"| cross-check vs CPU with --deterministic: fp32 · tf32 | 3.0e-06 (grad fc6.weight) · 4.0e-03 (logits) | — · — | as above |",
		// The plain row's record, not the later --dropout paper one.
		"2.5e-06 (grad conv1.weight) | ≤ 1e-3",
		// --dropout paper's row: the fp32 record; tf32's step has no record.
		"| cross-check vs CPU, small-fc with --dropout paper: fp32 · tf32 | 7.0e-07 (grad fc1.weight) · ",
		"cuda.test: PASS (14 passed, 0 failed, 0 skipped)",
		"PyTorch 2.9.0 (CUDA 13.0, cuDNN 91000)",
		"PyTorch AlexNet (torchvision), batch 128, tf32, synthetic data on the device: 10000 img/s",
		// A step's verdict stands in for the result it did not write; a
		// value that is not finite shows as such, not as a dash.
		"| ours, img/s, fp32, batch 128: queued · loss read every step | — | timed out: bench-alexnet-fp32 |",
		"| PyTorch, img/s, fp32 (owt: torchvision; alexnet: our layers) | failed: torch-bench-fp32 (exit 1) | failed: torch-bench-fp32 (exit 1) |",
		"| cross-check vs CPU, fp32: worst rel err (where) | NaN (logits) NOT OK: input exact true, masks true |",
		"| PyTorch oracle, fp32: max abs diff logits · loss · worst grad rel · after step rel | skipped: export-alexnet-owt (budget of 450s spent) |",
		"| `train --device cuda` (alexnet-owt, real pipeline, 60 steps) | train: done (max-steps): 60 steps, 2 epochs in 14s; no validation pass in this run; checkpoint x |",
		// Its throughput recorded, alexnet-owt's bench then timed out: in its profile.
		"alexnet-owt, tf32: our profile did not end (timed out: bench-alexnet-owt-tf32)",
		"| 17.02% (279 steps, 6 s), +0.36 points (met) | CPU 16.66% (279 steps, 40 s) | within 1.5 points |",
		"| 4210 img/CPU-s · 61234 img/s on 16 (93% of linear) | DataLoader + PIL, 256-px JPEGs: 1 core 1400 (ours **3.0×**) · all 15000 (ours **4.1×**) | near-linear |",
	)
	if i, j := strings.Index(got, "## GPU machine"), strings.Index(got, "## gpu-check results"); i < 0 || j < i {
		t.Errorf("the machine facts must come first and the table last:\n%s", got)
	}
	if t.Failed() {
		t.Log(got)
	}
}

// The learning row: a GPU run that learnt less than the CPU's is not met,
// one that ended without a test error says so, and a run without
// Fashion-MNIST at build says why there is nothing to compare.
func TestTableLearn(t *testing.T) {
	cpu := `{"steps":279,"run_seconds":40,"top1_err":0.1666}`
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"worse", map[string]string{"learn-cpu.json": cpu, "learn-cuda.json": `{"steps":279,"run_seconds":6,"top1_err":0.2}`},
			"| 20.00% (279 steps, 6 s), +3.34 points (NOT met) | CPU 16.66% (279 steps, 40 s) |"},
		// 75 of 5,000 images: 1.5 points exactly, whatever the floats' rounding.
		{"on the bound", map[string]string{"learn-cpu.json": `{"top1_err":0.1666}`, "learn-cuda.json": `{"top1_err":0.1816}`},
			"+1.50 points (met)"},
		{"on the bound below", map[string]string{"learn-cpu.json": `{"top1_err":0.1816}`, "learn-cuda.json": `{"top1_err":0.1666}`},
			"-1.50 points (met)"},
		{"better by more", map[string]string{"learn-cpu.json": cpu, "learn-cuda.json": `{"steps":279,"run_seconds":6,"top1_err":0.14}`},
			"-2.66 points (NOT met)"},
		{"no test error", map[string]string{"learn-cpu.json": cpu, "learn-cuda.json": `{"stopped":"max-steps","steps":3}`},
			"| no test error in learn-cuda.json: {\"stopped\":\"max-steps\",\"steps\":3} | CPU 16.66%"},
		{"timed out, output cut", map[string]string{"learn-cpu.json": cpu, "run.log": "== [300s] TIMEOUT learn-cuda\n", "learn-cuda.json": `{"stopped":"ep`},
			"| timed out: learn-cuda; no test error in learn-cuda.json: {\"stopped\":\"ep | CPU 16.66%"},
		{"failed", map[string]string{"learn-cpu.json": cpu, "run.log": "== [300s] FAILED learn-cuda (exit 1)\n"},
			"| failed: learn-cuda (exit 1) | CPU 16.66% (279 steps, 40 s) |"},
		{"failed with train's report", map[string]string{"learn-cpu.json": cpu, "run.log": "== [300s] FAILED learn-cuda (exit 1)\n",
			"learn-cuda.json": `{"command":"train","error":"--device cuda: cuda: libcuda.so.1 not found; tried:\n  a | b","exit_code":1}`},
			"| failed: learn-cuda (exit 1): --device cuda: cuda: libcuda.so.1 not found; tried: | CPU 16.66%"},
		{"no dataset at build", map[string]string{"run.log": "== [300s] SKIP learn-cuda: no Fashion-MNIST shards in gpu (just gpu-check found no dataset)\n"},
			"| none (just gpu-check found no Fashion-MNIST) |"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := renderTable(t, tc.files)
			wantInTable(t, got, tc.want)
			if t.Failed() {
				t.Log(got)
			}
		})
	}
}

// wantInTable checks that the table holds every line or cell of want.
func wantInTable(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("table lacks %q", w)
		}
	}
}

// renderTable writes files into a results folder and returns what
// `gpucheck table` prints for it.
func renderTable(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"table", "--dir", dir}, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	return out.String()
}

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Commands:"},
		{[]string{"help"}, 0, "Commands:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"bench", "--help"}, 0, "Example:"},
		{[]string{"bench", "--precision", "fp16"}, 1, "fp16"},
		{[]string{"pipeline"}, 1, "--shards is required"},
		{[]string{"export"}, 1, "--out is required"},
		{[]string{"crosscheck", "--dropout", "half"}, 1, `--dropout: want inverted or paper, not "half"`},
	} {
		var out bytes.Buffer
		code := run(tc.args, &out, &out)
		if code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("gpucheck %v: exit %d, output %q; want %d and %q", tc.args, code, out.String(), tc.code, tc.want)
		}
	}
	var out bytes.Buffer
	if code := run([]string{"spec", "--model", "alexnet"}, &out, &out); code != 0 || !strings.Contains(out.String(), `"out_shape"`) {
		t.Errorf("spec: exit %d: %s", code, out.String())
	}
}

// TestLayersTable lines up a profile of ours with PyTorch's: PyTorch's
// ReLU after a conv joins it, as ours is fused; a module only PyTorch has
// (flatten) keeps its own row; a model without profiles gets no section.
func TestLayersTable(t *testing.T) {
	bench := `{"kind":"bench","model":"alexnet-owt","precision":"tf32","img_s":11000,"profile_steps":10,"layers":[
{"layer":"input","kind":"input","pass":"","ms":0.05},
{"layer":"conv1","kind":"conv","pass":"forward","relu":true,"ms":1.0},
{"layer":"pool1","kind":"maxpool","pass":"forward","ms":0.25},
{"layer":"fc8","kind":"fc","pass":"forward","ms":0.5},
{"layer":"loss","kind":"loss","pass":"","ms":0.02},
{"layer":"fc8","kind":"fc","pass":"backward","ms":1.0},
{"layer":"pool1","kind":"maxpool","pass":"backward","ms":0.5},
{"layer":"conv1","kind":"conv","pass":"backward","relu":true,"ms":2.0},
{"layer":"update","kind":"update","pass":"","ms":0.4}]}`
	torch := `{"kind":"torch_bench","model":"alexnet-owt","precision":"tf32","img_s":10000,"profile_steps":10,"layers":[
{"layer":"conv1","kind":"conv","pass":"forward","ms":0.8},
{"layer":"relu1","kind":"relu","pass":"forward","ms":0.1},
{"layer":"pool1","kind":"maxpool","pass":"forward","ms":0.25},
{"layer":"flatten","kind":"flatten","pass":"forward","ms":0.01},
{"layer":"fc8","kind":"fc","pass":"forward","ms":0.5},
{"layer":"loss","kind":"loss","pass":"","ms":0.04},
{"layer":"fc8","kind":"fc","pass":"backward","ms":1.0},
{"layer":"flatten","kind":"flatten","pass":"backward","ms":0.02},
{"layer":"pool1","kind":"maxpool","pass":"backward","ms":0.5},
{"layer":"relu1","kind":"relu","pass":"backward","ms":0.2},
{"layer":"conv1","kind":"conv","pass":"backward","ms":1.5},
{"layer":"update","kind":"update","pass":"","ms":0.5}]}`
	got := renderTable(t, map[string]string{"bench.jsonl": strings.ReplaceAll(bench, "\n", "") + "\n",
		"torch.jsonl": strings.ReplaceAll(torch, "\n", "") + "\n"})
	wantInTable(t, got,
		"### Where a step's time goes: alexnet-owt, tf32, batch 128",
		"means of 10 synced steps",
		"| input: uint8 → normalised float32 (PyTorch is handed floats) | 0.050 | — | | | |",
		"| conv1 + ReLU | 1.000 | 0.900 | 2.000 | 1.700 | **1.15** (slower) |",
		"| pool1 | 0.250 | 0.250 | 0.500 | 0.500 | 1.00 |",
		"| flatten | — | 0.010 | — | 0.020 | — |",
		"| fc8 | 0.500 | 0.500 | 1.000 | 1.000 | 1.00 |",
		"| loss: softmax cross-entropy and its gradient | 0.020 | 0.040 | | | 0.50 |",
		"| update: SGD with momentum and weight decay | 0.400 | 0.500 | | | 0.80 |",
		"| total: the whole profiled step | **5.72** | **5.42** | | | 1.06 |",
	)
	if i, j := strings.Index(got, "| conv1 + ReLU"), strings.Index(got, "| pool1 |"); i < 0 || j < i {
		t.Error("layers out of forward order")
	}
	if strings.Contains(got, "time goes: alexnet,") {
		t.Error("a section for a model without profiles")
	}
	if t.Failed() {
		t.Log(got)
	}
}

// TestLayersTableOneSided: a profile on one side only (PyTorch absent,
// cut by the budget, or failed) still renders, with "—" for the other,
// and a failed profile is named even when neither side has one.
func TestLayersTableOneSided(t *testing.T) {
	for _, tc := range []struct {
		name, bench, torch string
		want               []string
	}{
		{"ours only",
			`{"kind":"bench","model":"alexnet-owt","precision":"tf32","profile_steps":10,"layers":[{"layer":"conv1","kind":"conv","pass":"forward","relu":true,"ms":1.0},{"layer":"update","kind":"update","pass":"","ms":0.4}]}`,
			"",
			[]string{"| conv1 + ReLU | 1.000 | — | — | — | — |", "| total: the whole profiled step | **1.40** | — | | | — |"}},
		{"PyTorch only, ours failed",
			`{"kind":"bench","model":"alexnet","precision":"tf32","profile_steps":10,"profile_error":"cuEventRecord: boom"}`,
			`{"kind":"torch_bench","model":"alexnet","precision":"tf32","profile_steps":10,"layers":[{"layer":"conv1","kind":"conv","pass":"forward","ms":0.8},{"layer":"relu1","kind":"relu","pass":"forward","ms":0.1}]}`,
			[]string{"time goes: alexnet,", "means of 10 synced steps", "| conv1 + ReLU | — | 0.900 | — | — | — |", "alexnet, tf32: ours profile failed: cuEventRecord: boom"}},
		{"both failed",
			`{"kind":"bench","model":"alexnet","precision":"tf32","profile_error":"ours broke"}`,
			`{"kind":"torch_bench","model":"alexnet","precision":"tf32","profile_error":"theirs broke"}`,
			[]string{"alexnet, tf32: ours profile failed: ours broke", "alexnet, tf32: PyTorch's profile failed: theirs broke"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"bench.jsonl": tc.bench + "\n"}
			if tc.torch != "" {
				files["torch.jsonl"] = tc.torch + "\n"
			}
			got := renderTable(t, files)
			wantInTable(t, got, tc.want...)
			if t.Failed() {
				t.Log(got)
			}
			if !strings.Contains(got, "## gpu-check results") {
				t.Error("the results table is missing")
			}
		})
	}
}
