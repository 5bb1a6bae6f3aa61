// Command benchingest is `just bench-ingest`: it measures ingest's rate on
// one core against a reference that does the same job the way a user would
// script it (PIL bilinear resize + centre crop + python-zstandard level 3),
// both pinned to the same core and interleaved round by round, and prints
// the ratio, the libjpeg-turbo decode-only ceiling, the all-cores rate and
// the shard bytes per image.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/testdata"
	"github.com/alexnet-repro/alexnet/pkg/imageio"
	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

func main() {
	benchstat.Main("benchingest", run)
}

type result struct {
	Images         int       `json:"images"`
	Core           int       `json:"core"`
	OursPerCore    float64   `json:"ours_img_per_s_1_worker"`
	RefPerCore     float64   `json:"pil_zstd_img_per_s"`
	Ratio          float64   `json:"ratio"`
	DecodeOnly     float64   `json:"turbojpeg_decode_only_img_per_s"`
	AllCores       float64   `json:"ours_img_per_s_all_cores"`
	Cores          int       `json:"cores"`
	Scaling        float64   `json:"scaling"`
	BytesPerImage  float64   `json:"shard_bytes_per_image"`
	RawRatio       float64   `json:"shard_bytes_ratio_to_raw"`
	RefBytesPerImg float64   `json:"ref_bytes_per_image"`
	Decoder        string    `json:"decoder"`
	OursRounds     []float64 `json:"ours_rounds"`
	RefRounds      []float64 `json:"ref_rounds"`
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlags("benchingest", stdout, stderr, "Usage: benchingest [flags]\n\nExample:\n  just bench-ingest --rounds 5\n\nExit codes: 0 done, 1 failed (or the report could not be written), 2 usage.\n\nFlags:\n")
	images := fs.String("images", testdata.ImageNetSampleDir(), "folder of real JPEGs named <wnid>_*.JPEG")
	reps := fs.Int("reps", 5, "times each image is listed (as distinct files), so runs are long enough to time")
	rounds := fs.Int("rounds", 3, "interleaved rounds; the median is reported")
	core := fs.Int("core", 1, "CPU core both single-core runs are pinned to")
	size := fs.Int("size", 256, "output side")
	py := fs.String("python", "/usr/bin/python3", "Python with PIL and zstandard (Debian's python3-pil, python3-zstandard)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	mode := fs.String("mode", "", "internal: 'decode' runs the decode-only loop on the files given as arguments")
	if err := cli.Parse(fs, args); err != nil {
		return cli.ExitCode(err)
	}
	// The decode-only child takes its files as arguments; the bench itself
	// takes flags only, as cli.ParseFlags has the other benches.
	if *mode == "decode" {
		return decodeOnly(fs.Args(), stdout)
	}
	if code, ok := cli.FlagsOnly(fs); !ok {
		return code
	}
	if *mode != "" {
		fmt.Fprintf(stderr, "benchingest: --mode %q: the only mode is decode, for the bench's own child\n", *mode)
		return cli.ExitUsage
	}
	switch {
	case *rounds < 1:
		fmt.Fprintf(stderr, "benchingest: --rounds %d: want at least 1\n", *rounds)
		return cli.ExitUsage
	case *reps < 1:
		fmt.Fprintf(stderr, "benchingest: --reps %d: want at least 1\n", *reps)
		return cli.ExitUsage
	case *size < 1 || *size > 4096:
		fmt.Fprintf(stderr, "benchingest: --size %d: want 1 to 4096\n", *size)
		return cli.ExitUsage
	}
	if err := checkCore(*core); err != nil {
		fmt.Fprintf(stderr, "benchingest: %v\n", err)
		return cli.ExitUsage
	}
	src, err := realJPEGs(*images)
	if err != nil || len(src) == 0 {
		fmt.Fprintf(stderr, "benchingest: no real JPEGs in %s (the ImageNet sample is not in this clone); pass --images DIR with <wnid>_*.JPEG files\n", *images)
		return 1
	}
	self, _ := os.Executable()
	bin := filepath.Dir(self)
	ingestBin := filepath.Join(bin, "ingest")
	if _, err := os.Stat(ingestBin); err != nil {
		fmt.Fprintf(stderr, "benchingest: %s not found: run `just build` first\n", ingestBin)
		return 1
	}
	refScript := filepath.Join(testdata.RepoRoot(), "tools", "bench", "pil_ingest.py")
	if msg := benchstat.PythonCannotImport(*py, "PIL", "zstandard"); msg != "" {
		fmt.Fprintf(stderr, "benchingest: %s cannot import PIL and zstandard (%s): run `just setup` (python3-pil, python3-zstandard), or pass --python\n", *py, msg)
		return 1
	}
	tmp, err := os.MkdirTemp("", "benchingest")
	if err != nil {
		fmt.Fprintln(stderr, "benchingest:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	tree := filepath.Join(tmp, "tree")
	files, err := linkTree(src, *reps, tree)
	if err != nil {
		fmt.Fprintln(stderr, "benchingest:", err)
		return 1
	}
	res := result{Images: len(files), Core: *core, Cores: runtime.NumCPU(), Decoder: imageio.Backend()}
	pin := func(name string, a ...string) *exec.Cmd {
		return exec.Command("taskset", append([]string{"-c", fmt.Sprint(*core), name}, a...)...)
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		fmt.Fprintln(stderr, "benchingest: taskset not found; runs are not pinned")
		pin = exec.Command
	}
	fmt.Fprintf(stderr, "benchingest: %d files (%d real JPEGs × %d), %d rounds, pinned to core %d\n", len(files), len(src), *reps, *rounds, *core)
	var oursBytes float64
	for r := 0; r < *rounds; r++ {
		out := filepath.Join(tmp, fmt.Sprintf("ours-%d", r))
		rep, err := runIngest(pin(ingestBin, "--workers", "1", "--quiet", "--json", "--splits", "train", "--size", fmt.Sprint(*size), "--out", out, tree))
		if err != nil {
			fmt.Fprintln(stderr, "benchingest: ingest:", err)
			return 1
		}
		os.RemoveAll(out)
		res.OursRounds = append(res.OursRounds, rep.rate)
		oursBytes = rep.bytesPerImage
		refOut := filepath.Join(tmp, "ref.bin")
		cmd := pin(*py, append([]string{refScript, refOut, fmt.Sprint(*size)}, files...)...)
		var refErr strings.Builder
		cmd.Stderr = &refErr
		b, err := cmd.Output()
		if err != nil {
			// The script's own words (a file PIL cannot open, a missing
			// module) say more than its exit status.
			fmt.Fprintf(stderr, "benchingest: reference %s: %v\n%s", refScript, err, lastLines(refErr.String(), 5))
			return 1
		}
		var ref struct {
			Images  int     `json:"images"`
			Seconds float64 `json:"seconds"`
		}
		if err := json.Unmarshal(b, &ref); err != nil || ref.Images != len(files) {
			fmt.Fprintf(stderr, "benchingest: reference printed %q\n", b)
			return 1
		}
		if st, err := os.Stat(refOut); err == nil {
			res.RefBytesPerImg = float64(st.Size()-4*int64(ref.Images)) / float64(ref.Images)
		}
		res.RefRounds = append(res.RefRounds, float64(ref.Images)/ref.Seconds)
		fmt.Fprintf(stderr, "  round %d: ours %.1f img/s, PIL+zstd %.1f img/s\n", r+1, rep.rate, float64(ref.Images)/ref.Seconds)
	}
	res.OursPerCore, res.RefPerCore = benchstat.Median(res.OursRounds), benchstat.Median(res.RefRounds)
	res.Ratio = res.OursPerCore / res.RefPerCore
	res.BytesPerImage = oursBytes
	res.RawRatio = oursBytes / float64(*size**size*3)
	b, err := pin(self, append([]string{"--mode", "decode"}, files...)...).Output()
	if err == nil {
		fmt.Sscan(string(b), &res.DecodeOnly)
	}
	all, err := runIngest(exec.Command(ingestBin, "--workers", fmt.Sprint(res.Cores), "--quiet", "--json", "--splits", "train", "--size", fmt.Sprint(*size), "--out", filepath.Join(tmp, "all"), tree))
	if err != nil {
		fmt.Fprintln(stderr, "benchingest: ingest (all cores):", err)
		return 1
	}
	res.AllCores = all.rate
	res.Scaling = res.AllCores / res.OursPerCore
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return 0
	}
	fmt.Fprintf(stdout, "\nbench-ingest: %d real ImageNet JPEGs, %d px output, decoder %s\n\n", res.Images, *size, res.Decoder)
	fmt.Fprintf(stdout, "| measure (core %d unless noted)            | img/s   | ratio |\n|---|---|---|\n", *core)
	fmt.Fprintf(stdout, "| ingest --workers 1                       | %7.1f | %.2f× PIL |\n", res.OursPerCore, res.Ratio)
	fmt.Fprintf(stdout, "| PIL bilinear + crop + zstd -3 (reference) | %7.1f | 1.00 |\n", res.RefPerCore)
	fmt.Fprintf(stdout, "| libjpeg-turbo decode only (ceiling)      | %7.1f | %.2f× PIL |\n", res.DecodeOnly, res.DecodeOnly/res.RefPerCore)
	fmt.Fprintf(stdout, "| ingest, all %d cores                      | %7.1f | %.2f× one core |\n", res.Cores, res.AllCores, res.Scaling)
	fmt.Fprintf(stdout, "\nshard bytes/image: %.0f (%.3f of raw %d); reference zstd -3 of raw pixels: %.0f (%.3f)\n",
		res.BytesPerImage, res.RawRatio, *size**size*3, res.RefBytesPerImg, res.RefBytesPerImg/float64(*size**size*3))
	return 0
}

type ingestRun struct{ rate, bytesPerImage float64 }

func runIngest(cmd *exec.Cmd) (ingestRun, error) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return ingestRun{}, fmt.Errorf("%v: %s", err, stderr.String())
	}
	var rep struct {
		Processed     int     `json:"processed_this_run"`
		Seconds       float64 `json:"seconds"`
		BytesPerImage float64 `json:"shard_bytes_per_image"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return ingestRun{}, err
	}
	return ingestRun{rate: float64(rep.Processed) / rep.Seconds, bytesPerImage: rep.BytesPerImage}, nil
}

func decodeOnly(files []string, stdout io.Writer) int {
	var data [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 1
		}
		data = append(data, b)
	}
	d := imageio.NewDecoder()
	defer d.Close()
	start := time.Now()
	for _, b := range data {
		d.DecodeFull(b)
	}
	fmt.Fprintf(stdout, "%f\n", float64(len(data))/time.Since(start).Seconds())
	return 0
}

// realJPEGs lists the .JPEG files in dir, sorted, as absolute paths: the
// tree links to them from a temporary directory, where a relative target
// (--images sample) would name nothing and every link dangle.
func realJPEGs(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	src, err := filepath.Glob(filepath.Join(abs, "*.JPEG"))
	sort.Strings(src)
	return src, err
}

// linkTree makes tree/train/<wnid>/ of symbolic links to src's files
// (<wnid>_*.JPEG), each listed reps times under its own name, and returns
// the links.
func linkTree(src []string, reps int, tree string) ([]string, error) {
	var files []string
	for _, f := range src {
		base := filepath.Base(f)
		wnid, _, ok := strings.Cut(base, "_")
		if !ok {
			continue
		}
		dir := filepath.Join(tree, "train", wnid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		for r := 0; r < reps; r++ {
			link := filepath.Join(dir, fmt.Sprintf("%s_r%d.JPEG", strings.TrimSuffix(base, ".JPEG"), r))
			if err := os.Symlink(f, link); err != nil {
				return nil, err
			}
			files = append(files, link)
		}
	}
	return files, nil
}

// lastLines returns the last n lines of s, each indented, for quoting a
// child's stderr.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	for _, l := range lines {
		if l != "" {
			b.WriteString("  | " + l + "\n")
		}
	}
	return b.String()
}
