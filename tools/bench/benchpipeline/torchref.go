package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/testdata"
	"github.com/alexnet-repro/alexnet/shards"
	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

// The reference loaders: PyTorch's DataLoader over JPEGs, as most users
// feed a model (tools/bench/torch_loader.py says exactly what it does).
const (
	refResized  = "resized"  // 256-px JPEGs made once, quality 90
	refOriginal = "original" // the original JPEGs, resized at every read
)

// refConfig is how the reference runs are made.
type refConfig struct {
	Python  string // a python3 that imports torch, PIL and numpy
	Alloc   benchstat.Allocator
	Script  string // torch_loader.py
	Images  string // folder of <wnid>_<name>.JPEG
	Meta    string // the shards' meta.json (PCA lighting)
	Cache   string // where the resized JPEGs go
	Batch   int
	Size    int
	Crop    int
	Seed    uint64
	Batches map[string]int // timed batches per mode
}

// refRun is one reference run beside the run of ours it is compared with:
// for one core, ours and the reference are images per CPU-second on the
// same pinned CPU in the same round; for all cores, images per second.
type refRun struct {
	Round      int     `json:"round"`
	Mode       string  `json:"mode"`
	Workers    int     `json:"workers"` // DataLoader num_workers: 0 is the main process alone
	CPU        int     `json:"cpu"`     // -1: not pinned
	Images     int     `json:"images"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Rate       float64 `json:"img_per_s_or_cpu_s"`
	Ours       float64 `json:"ours"`
	Ratio      float64 `json:"ours_over_reference"`
}

// refRow is the median of one mode's runs at one width.
type refRow struct {
	Mode    string  `json:"mode"`
	AllCore bool    `json:"all_cores"`
	Rate    float64 `json:"img_per_s_or_cpu_s"`
	Ours    float64 `json:"ours"` // the median of the runs of ours the ratios pair with
	Ratio   float64 `json:"ours_over_reference"`
}

type reference struct {
	Python string `json:"python,omitempty"`
	// Allocator is the reference's (jemalloc by default: on glibc's
	// malloc its per-batch buffers cost page faults); AllocNote says why
	// it is not the one asked for.
	Allocator string   `json:"allocator,omitempty"`
	AllocNote string   `json:"allocator_note,omitempty"`
	Torch     string   `json:"torch,omitempty"`
	PIL       string   `json:"pil,omitempty"`
	Skipped   string   `json:"skipped,omitempty"`
	Runs      []refRun `json:"runs,omitempty"`
	Rows      []refRow `json:"medians,omitempty"`
}

// refScript is torch_loader.py in this checkout.
func refScript() string {
	return filepath.Join(testdata.RepoRoot(), "tools", "bench", "torch_loader.py")
}

// refAvailable says why the reference cannot run, or "" when it can.
func refAvailable(python string) string {
	if msg := benchstat.PythonCannotImport(python, "torch", "PIL", "numpy"); msg != "" {
		return fmt.Sprintf("%s cannot import torch, PIL and numpy (%s): install python3-torch and python3-pil (`bash scripts/setup.sh torch`), or pass --python", python, msg)
	}
	return ""
}

type refOutput struct {
	Images     int     `json:"images"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Torch      string  `json:"torch"`
	PIL        string  `json:"pil"`
}

// runRef runs the reference once: workers 0 pinned to cpu for the one-core
// figure (the rate is then per CPU-second), or workers N unpinned.
func runRef(c refConfig, mode string, workers, cpu int) (refOutput, error) {
	batches := c.Batches[mode]
	if workers > 0 {
		// Several batches per worker, so that the timed span is the
		// workers' steady rate, not one wave of batches finishing at once.
		batches = max(batches, 4*workers)
	}
	args := []string{c.Script, "--images", c.Images, "--mode", mode, "--cache", c.Cache,
		"--workers", strconv.Itoa(workers), "--batches", strconv.Itoa(batches),
		"--batch", strconv.Itoa(c.Batch), "--size", strconv.Itoa(c.Size), "--crop", strconv.Itoa(c.Crop),
		"--seed", strconv.FormatUint(c.Seed, 10)}
	if c.Meta != "" {
		args = append(args, "--meta", c.Meta)
	}
	if cpu >= 0 {
		args = append(args, "--cpus", strconv.Itoa(cpu))
	}
	var o refOutput
	if err := benchstat.RunJSON(c.Python, c.Alloc, args, &o); err != nil {
		return refOutput{}, fmt.Errorf("%s --workers %d: %w", mode, workers, err)
	}
	if o.Images == 0 || o.Seconds <= 0 || o.CPUSeconds <= 0 {
		return refOutput{}, fmt.Errorf("%s %s: no images timed: %+v", filepath.Base(c.Script), mode, o)
	}
	return o, nil
}

// measureRef runs each mode once and appends the runs, each compared with
// ours (the rate of ours measured the same way in the same round).
func measureRef(c refConfig, ref *reference, round, workers, cpu int, ours float64) error {
	for _, mode := range []string{refResized, refOriginal} {
		o, err := runRef(c, mode, workers, cpu)
		if err != nil {
			return err
		}
		ref.Torch, ref.PIL = o.Torch, o.PIL
		r := refRun{Round: round, Mode: mode, Workers: workers, CPU: cpu, Images: o.Images, Seconds: o.Seconds,
			CPUSeconds: o.CPUSeconds, Ours: ours}
		if workers == 0 {
			r.Rate = float64(o.Images) / o.CPUSeconds
		} else {
			r.Rate = float64(o.Images) / o.Seconds
		}
		r.Ratio = ours / r.Rate
		ref.Runs = append(ref.Runs, r)
	}
	return nil
}

// summarise fills ref.Rows with each mode's medians, one-core then all-cores.
func (ref *reference) summarise() {
	ref.Rows = nil
	for _, all := range []bool{false, true} {
		for _, mode := range []string{refResized, refOriginal} {
			var rates, ours, ratios []float64
			for _, r := range ref.Runs {
				if r.Mode == mode && (r.Workers > 0) == all {
					rates, ours, ratios = append(rates, r.Rate), append(ours, r.Ours), append(ratios, r.Ratio)
				}
			}
			if len(rates) > 0 {
				ref.Rows = append(ref.Rows, refRow{Mode: mode, AllCore: all, Rate: benchstat.Median(rates),
					Ours: benchstat.Median(ours), Ratio: benchstat.Median(ratios)})
			}
		}
	}
}

func refLabel(mode string, size int) string {
	if mode == refResized {
		return fmt.Sprintf("DataLoader + PIL, %d-px JPEGs (q90)", size)
	}
	return "DataLoader + PIL, original JPEGs"
}

func printRef(w io.Writer, r *report) {
	ref := r.Reference
	if ref == nil {
		return
	}
	if ref.Skipped != "" {
		fmt.Fprintf(w, "\nPyTorch DataLoader reference: skipped: %s\n", ref.Skipped)
		return
	}
	fmt.Fprintf(w, "\nagainst PyTorch's DataLoader (torch %s, PIL %s, %s, allocator %s): the same random crops, flips and lighting\n", ref.Torch, ref.PIL, ref.Python, ref.Allocator)
	if ref.AllocNote != "" {
		fmt.Fprintf(w, "note: %s\n", ref.AllocNote)
	}
	fmt.Fprintf(w, "offsets as uint8 batches of %d; one core: num_workers=0 pinned to the CPU of the round's first one-core\n", r.Batch)
	fmt.Fprintf(w, "run of ours, right after it, img/CPU-s; all cores: num_workers=%d after our all-cores run, img/s; medians of the\n", r.All.Decoders)
	fmt.Fprintf(w, "rounds, ratios taken within each round (ours: the runs the ratios pair with):\n")
	fmt.Fprintf(w, "  %-40s %13s %8s %13s %8s\n", "loader", "1 core", "ours ×", fmt.Sprintf("%d cores", r.All.Procs), "ours ×")
	oursCell := func(all bool) string {
		for _, row := range ref.Rows {
			if row.AllCore == all {
				return fmt.Sprintf(" %13.0f %8s", row.Ours, "")
			}
		}
		return fmt.Sprintf(" %13s %8s", "—", "")
	}
	fmt.Fprintf(w, "  %-40s%s%s\n", "ours, "+r.Codec+" shards", oursCell(false), oursCell(true))
	for _, mode := range []string{refResized, refOriginal} {
		fmt.Fprintf(w, "  %-40s", refLabel(mode, r.Width))
		for _, all := range []bool{false, true} {
			cell := fmt.Sprintf(" %13s %8s", "—", "")
			for _, row := range ref.Rows {
				if row.Mode == mode && row.AllCore == all {
					cell = fmt.Sprintf(" %13.0f %7.1f×", row.Rate, row.Ratio)
				}
			}
			fmt.Fprint(w, cell)
		}
		fmt.Fprintln(w)
	}
}

// refMismatch says why the JPEGs in images are not the ones the shards'
// train split was made from, or "" when they may be: as many .JPEG files
// (the reference script's listing) as train records, or up to as many
// more as ingest skipped, and the first record of each shard named by
// one of them. A ratio against other
// images (full-size photos against 28-px digits, say) would be printed
// as a like-for-like comparison and mean nothing.
func refMismatch(dir string, meta *shards.Meta, images string) string {
	ents, err := os.ReadDir(images)
	if err != nil {
		return fmt.Sprintf("--reference-images: %v", err)
	}
	have := map[string]bool{}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".JPEG") {
			have[e.Name()] = true
		}
	}
	train := meta.Splits["train"]
	if n := len(have); n < train.Records || n > train.Records+train.Skipped {
		skipped := ""
		if train.Skipped > 0 {
			skipped = fmt.Sprintf(" (and %d skipped)", train.Skipped)
		}
		return fmt.Sprintf("%s holds %s and the shards' train split %s%s: not the JPEGs the shards were made from (give those with --reference-images, or --reference=false)",
			images, cli.Count(n, ".JPEG file", ".JPEG files"), cli.Count(train.Records, "record", "records"), skipped)
	}
	var rec shards.Record
	for _, p := range meta.ShardPaths(dir, "train") {
		r, err := shards.Open(p)
		if err != nil {
			return err.Error()
		}
		_, err = r.ReadRecord(0, &rec, nil)
		r.Close()
		if err != nil {
			return err.Error()
		}
		if name := filepath.Base(rec.Name); !have[name] {
			return fmt.Sprintf("%s has no JPEG named %s, as the first record of %s is: not the JPEGs the shards were made from (give those with --reference-images, or --reference=false)",
				images, cli.Name(name), filepath.Base(p))
		}
	}
	return ""
}
