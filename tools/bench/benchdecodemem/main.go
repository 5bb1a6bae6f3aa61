// Command benchdecodemem is `just bench-decode-memory`: it ingests a
// folder of huge, highly compressible PNGs (one colour at 10,000², 419 KB
// a file, 700 MB to decode) under several --decode-memory budgets, and
// prints each run's peak RSS and time beside the unbounded run's, the
// reference measured in the same invocation.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

func main() {
	benchstat.Main("benchdecodemem", run)
}

// measure is one ingest run.
type measure struct {
	BudgetMiB  int64   `json:"decode_memory_mib"` // 0: no bound
	Round      int     `json:"round"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	Seconds    float64 `json:"seconds"`
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlags("benchdecodemem", stdout, stderr, "Usage: benchdecodemem [flags]\n\nExample:\n  just bench-decode-memory --rounds 2\n\nExit codes: 0 done, 1 failed (or the report could not be written), 2 usage.\n\nFlags:\n")
	side := fs.Int("side", 10000, "the PNGs' side in pixels")
	images := fs.Int("images", 6, "PNGs in the folder (copies of one)")
	workers := fs.Int("workers", 2, "ingest workers")
	budgets := fs.String("budgets", "0,2048,800", "comma-separated --decode-memory values in MiB; 0 (no bound) is the reference")
	rounds := fs.Int("rounds", 2, "rounds over the budgets, interleaved")
	ingestBin := fs.String("ingest", "", "the ingest binary (default: ingest beside this one, as just build puts it)")
	asJSON := fs.Bool("json", false, "print the runs as JSON")
	if code, ok := cli.ParseFlags(fs, args); !ok {
		return code
	}
	var mibs []int64
	for _, f := range strings.Split(*budgets, ",") {
		v, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || v < 0 {
			fmt.Fprintf(stderr, "benchdecodemem: --budgets: %q is not a MiB count\n", f)
			return cli.ExitUsage
		}
		mibs = append(mibs, v)
	}
	if *side < 1 || *images < 1 || *workers < 1 || *rounds < 1 {
		fmt.Fprintln(stderr, "benchdecodemem: --side, --images, --workers and --rounds must be positive")
		return cli.ExitUsage
	}
	bin := *ingestBin
	if bin == "" {
		self, _ := os.Executable()
		bin = filepath.Join(filepath.Dir(self), "ingest")
	}
	if _, err := os.Stat(bin); err != nil {
		fmt.Fprintf(stderr, "benchdecodemem: %s not found: run `just build` first, or pass --ingest\n", bin)
		return 1
	}
	tmp, err := os.MkdirTemp("", "benchdecodemem")
	if err != nil {
		fmt.Fprintln(stderr, "benchdecodemem:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	size, err := makeTree(filepath.Join(tmp, "tree"), *side, *images)
	if err != nil {
		fmt.Fprintln(stderr, "benchdecodemem:", err)
		return 1
	}
	fmt.Fprintf(stderr, "benchdecodemem: %d PNGs of %d² (%d bytes each), %d workers, %d rounds\n", *images, *side, size, *workers, *rounds)
	var runs []measure
	for r := range *rounds {
		for _, mib := range mibs {
			out := filepath.Join(tmp, "out")
			cmd := exec.Command(bin, "--quiet", "--splits", "train", "--size", "64", "--workers", fmt.Sprint(*workers),
				"--decode-memory", fmt.Sprint(mib), "--out", out, filepath.Join(tmp, "tree"))
			var errb bytes.Buffer
			cmd.Stderr = &errb
			start := time.Now()
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(stderr, "benchdecodemem: ingest --decode-memory %d: %v\n%s", mib, err, errb.String())
				return 1
			}
			m := measure{BudgetMiB: mib, Round: r + 1, Seconds: time.Since(start).Seconds(), PeakRSSMiB: benchstat.PeakRSSMiB(cmd.ProcessState)}
			os.RemoveAll(out)
			runs = append(runs, m)
			fmt.Fprintf(stderr, "  round %d, --decode-memory %d: peak RSS %.0f MiB, %.1f s\n", m.Round, mib, m.PeakRSSMiB, m.Seconds)
		}
	}
	if *asJSON {
		b, _ := json.MarshalIndent(map[string]any{"side": *side, "images": *images, "file_bytes": size, "workers": *workers, "runs": runs}, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	fmt.Fprint(stdout, table(runs, mibs, *images, *side, *workers))
	return 0
}

// table gives each budget's worst peak RSS and time range over the
// rounds, and its peak as a share of the unbounded run's.
func table(runs []measure, mibs []int64, images, side, workers int) string {
	worst := map[int64]float64{}
	lo, hi := map[int64]float64{}, map[int64]float64{}
	for _, m := range runs {
		worst[m.BudgetMiB] = max(worst[m.BudgetMiB], m.PeakRSSMiB)
		if l, ok := lo[m.BudgetMiB]; !ok || m.Seconds < l {
			lo[m.BudgetMiB] = m.Seconds
		}
		hi[m.BudgetMiB] = max(hi[m.BudgetMiB], m.Seconds)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d PNGs of %d², %d workers: peak RSS (worst of the rounds) and time\n\n", images, side, workers)
	fmt.Fprintf(&b, "| --decode-memory | peak RSS | of unbounded | time |\n|---|---|---|---|\n")
	ref, hasRef := worst[0]
	for _, mib := range mibs {
		name := fmt.Sprintf("%d MiB", mib)
		share := "—"
		if mib == 0 {
			name = "0 (no bound: the reference)"
		} else if hasRef && ref > 0 {
			share = fmt.Sprintf("%.2f×", worst[mib]/ref)
		}
		fmt.Fprintf(&b, "| %s | %.0f MiB | %s | %.1f–%.1f s |\n", name, worst[mib], share, lo[mib], hi[mib])
	}
	return b.String()
}

// makeTree writes images copies of one side² PNG of one colour
// (transparent black RGBA: 419 KB at 10,000², decoded as 4 bytes a pixel)
// into an ingest tree (train/<wnid>/), named .JPEG as ImageNet names its
// files, and returns the file's size.
func makeTree(dir string, side, images int) (int, error) {
	class := filepath.Join(dir, "train", "n00000001")
	if err := os.MkdirAll(class, 0o755); err != nil {
		return 0, err
	}
	m := image.NewRGBA(image.Rect(0, 0, side, side))
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		return 0, err
	}
	for i := range images {
		if err := os.WriteFile(filepath.Join(class, fmt.Sprintf("p%03d.JPEG", i)), buf.Bytes(), 0o644); err != nil {
			return 0, err
		}
	}
	return buf.Len(), nil
}
