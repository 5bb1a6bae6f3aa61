// Command gpucheck measures and checks the GPU backend on a GPU machine.
// It is built on the development machine (CGO_ENABLED=0) by
// scripts/gpu-check.sh and run there by gpu/run.sh, which strings its
// subcommands together with the test binaries and the PyTorch scripts and
// ends with `gpucheck table`.
//
//	gpucheck probe                  the machine's CUDA stack, as markdown
//	gpucheck bench                  training steps on a synthetic batch kept on the device
//	gpucheck pipeline               training fed by the real pipeline through pkg/feed
//	gpucheck crosscheck             CPU vs GPU: logits, loss, gradients, one SGD step
//	gpucheck export                 weights, batch, masks and our results, for torch_oracle.py
//	gpucheck spec                   a model's layer list as JSON, for torch_bench.py
//	gpucheck table                  the machine facts and the one results table
//
// Each measuring subcommand appends JSON objects to the file named by
// --json, which table reads back, taking the last of each kind, model
// and precision: bench and pipeline write one before a part that has
// never run on a GPU (the profile, the feed's Close) and one after it,
// so a hang there keeps the first.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/pkg/cuda"
)

type command struct {
	name, summary string
	run           func(args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{"probe", "print the CUDA stack (driver, libraries, devices) as markdown", runProbe},
		{"bench", "img/s of training steps on a synthetic batch on the device", runBench},
		{"pipeline", "img/s and data wait of training fed from shards through pkg/feed", runPipeline},
		{"crosscheck", "compare the GPU backend with the CPU backend", runCrossCheck},
		{"export", "write weights, batch, masks and our step's results for torch_oracle.py", runExport},
		{"spec", "print a model's layers as JSON", runSpec},
		{"table", "print the machine facts and the results table from a results folder", runTable},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: gpucheck COMMAND [flags]\n\nMeasures and checks the GPU backend; gpu/run.sh runs it on the GPU machine.\n\nExample:\n  gpucheck bench --model alexnet-owt --precision tf32 --json results/bench.jsonl\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n`gpucheck COMMAND --help` lists a command's flags.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		var b strings.Builder
		usage(&b)
		return cli.PrintHelp("gpucheck", b.String(), stdout, stderr) // asked for: stdout, as every command's --help
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(args[1:], stdout)
			code := cli.ExitCode(err)
			if code == cli.ExitFailure {
				fmt.Fprintf(stderr, "gpucheck %s: %v\n", c.name, err)
			}
			return code
		}
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	if near := cli.Nearest(strings.ToLower(args[0]), names); near != "" {
		fmt.Fprintf(stderr, "gpucheck: unknown command %q; did you mean %s?\n\n", args[0], near)
	} else {
		fmt.Fprintf(stderr, "gpucheck: unknown command %q\n\n", args[0])
	}
	usage(stderr)
	return 2
}

func newFlags(name, example string, w io.Writer) *flag.FlagSet {
	return cli.NewFlags("gpucheck "+name, w, w, fmt.Sprintf("Usage: gpucheck %s [flags]\n\nExample:\n  %s\n\nFlags:\n", name, example))
}

// appendJSON adds one result object as a line to path ("" does nothing).
func appendJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runProbe(args []string, stdout io.Writer) error {
	fs := newFlags("probe", "gpucheck probe > probe.md", stdout)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	fmt.Fprint(stdout, cuda.Probe().Markdown())
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}
