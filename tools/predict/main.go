// Command predict classifies image files with a checkpoint: each file gets
// the same preprocessing as ingest (shorter side to the shards' size,
// centre crop), then the centre crop the model was trained at, and the top
// five classes are printed with their names and probabilities.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/alexnet-repro/alexnet/augment"
	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/regfile"
	"github.com/alexnet-repro/alexnet/pkg/imageio"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"github.com/alexnet-repro/alexnet/pkg/trainer"
	"github.com/alexnet-repro/alexnet/shards"
)

func main() {
	ctx, stop := cli.InterruptContext()
	code := runContext(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type prediction struct {
	File string `json:"file"`
	// FileQuoted is File Go-quoted when it is not UTF-8, which JSON
	// would carry with U+FFFD in place of the bytes that name the file.
	FileQuoted string `json:"file_quoted,omitempty"`
	Error      string `json:"error,omitempty"`
	// Warning is the decoder's, for an image decoded past damage (rows
	// after it may be flat grey): classified, but not on the whole image.
	Warning string `json:"warning,omitempty"`
	// Classes is each class's name, or its WNID where meta.json has no
	// name (a display label); WNIDs and Names are the two apart, Names
	// "" where there is none.
	Classes []string  `json:"classes,omitempty"`
	WNIDs   []string  `json:"wnids,omitempty"`
	Names   []string  `json:"names,omitempty"`
	Indices []int     `json:"indices,omitempty"`
	Probs   []float64 `json:"probs,omitempty"`
}

func run(args []string, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdout, stderr)
}

// runContext is predict; a cancelled ctx (Ctrl-C, SIGTERM, SIGHUP) stops
// it between files, with those done printed and, under --json, a closing
// error line, as train and ingest end when stopped.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	o := cli.NewOutcome("predict", args, stdout, stderr)
	defer func() { code = o.Finish(code) }()
	stdout = o.Stdout()
	fs := cli.NewFlags("predict", stdout, stderr, "Usage: predict --checkpoint FILE|RUN_DIR --shards DIR [--k 5] [--json] IMAGE|FOLDER|- ...\n\nA folder stands for the image files under it (by name: .jpeg, .jpg, .jfif, .png,\n.gif, .bmp, .tif, .tiff, .webp), in name order; - reads one image from standard input.\n\nExamples:\n  predict --checkpoint runs/demo/checkpoint.ckpt --shards demo/shards demo/fashion-mnist/val/ILSVRC2012_val_00000001.JPEG\n  curl -s https://example.com/cat.jpg | predict --checkpoint runs/alexnet --shards shards -\n\nExit codes: 0 all classified, 1 some file failed, 2 usage (or a --checkpoint or --shards that does not exist, a file for --shards, or a checkpoint whose classes or crop do not fit the shards), 130 interrupted (Ctrl-C, SIGTERM, SIGHUP; the files before it are printed).\nA closed output pipe (predict ... | head) ends it quietly by SIGPIPE, as it ends cat.\n\nFlags:\n")
	ckpt := fs.String("checkpoint", "", "checkpoint written by train, or its run folder (train's --out) (required)")
	shardDir := fs.String("shards", "", "shard directory whose meta.json names the classes (and gives the image size for checkpoints that do not record it) (required)")
	k := fs.Int("k", 5, "classes to print per image")
	asJSON := fs.Bool("json", false, "JSON lines on stdout")
	// Flags may follow the images too: `predict ... a.JPEG --json` must
	// not read "--json" as a file.
	images, err := cli.ParseInterspersed(fs, args)
	if err != nil {
		return o.ParseFailed(fs, args, err)
	}
	o.JSON = *asJSON
	if err := cli.StrayBoolValue(fs, args, images); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	// Standard input holds one image: a second - would find it read.
	stdins := 0
	for _, im := range images {
		if im == "-" {
			stdins++
		}
	}
	if stdins > 1 {
		return o.Failf(cli.ExitUsage, "- (standard input) given %d times: it holds one image", stdins)
	}
	var missing []string
	for _, m := range []struct {
		lack bool
		what string
	}{{*ckpt == "", "--checkpoint"}, {*shardDir == "", "--shards"}, {len(images) == 0, "an IMAGE, FOLDER or -"}} {
		if m.lack {
			missing = append(missing, m.what)
		}
	}
	if len(missing) > 0 {
		return o.Failf(cli.ExitUsage, "missing %s (see --help)", strings.Join(missing, ", "))
	}
	if *k < 1 {
		return o.Failf(cli.ExitUsage, "--k %d: want at least 1 class per image", *k)
	}
	if err := cli.Missing("--checkpoint", *ckpt, "--shards", *shardDir); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	meta, err := shards.ReadMeta(*shardDir)
	if errors.Is(err, shards.ErrNoDir) {
		return o.Fail(cli.ExitUsage, err)
	}
	if err != nil {
		return o.Fail(cli.ExitFailure, err)
	}
	ck, err := trainer.Load(*ckpt)
	if err != nil {
		return o.Fail(cli.ExitFailure, err)
	}
	if err := ck.MatchesClasses(meta, *shardDir); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	// Images are resized to the side the model's crops were taken from;
	// checkpoints that do not record it take the shards'.
	size := meta.Width
	if ck.ImageHW != 0 {
		size = ck.ImageHW
	} else if err := ck.CropFits(meta, *shardDir); err != nil {
		return o.Fail(cli.ExitUsage, err)
	}
	// Only a --k given: its default, 5, is more than a small model's
	// classes without anyone having asked for it.
	if n := len(meta.Classes); *k > n && cli.Given(fs, "k") {
		fmt.Fprintf(stderr, "predict: note: --k %d is more than the model's %d classes: each image gets all %d\n", *k, n, n)
	}
	be, err := trainer.BackendFromCheckpoint(ck, 1, nil)
	if err != nil {
		return o.Failf(cli.ExitFailure, "%s: %v", cli.Name(*ckpt), err)
	}
	defer be.Close()
	dec := imageio.NewDecoder()
	defer dec.Close()
	full := make([]byte, size*size*3)
	slot := pipeline.NewSlot(1, 1, ck.InputHW)
	slot.N, slot.Crop, slot.Views = 1, ck.InputHW, 1
	failed := 0
	enc := json.NewEncoder(stdout)
	inputs := expand(images, stderr)
	for i, in := range inputs {
		f := in.path
		if ctx.Err() != nil {
			code := o.Failf(cli.ExitInterrupted, "interrupted after %d of %d files; %s and those after it are not classified", i, len(inputs), cli.Name(f))
			if *asJSON {
				// The closing line, after the files' lines too (Finish
				// writes one only where nothing came before): a script
				// reading the stream learns it was cut short, not done.
				o.WriteError(code)
			}
			return code
		}
		p := prediction{File: f}
		var data []byte
		err := in.err
		switch {
		case err != nil:
		case f == "-":
			data, err = readStdin()
		default:
			data, err = readImage(f)
		}
		if err == nil {
			err = dec.Preprocess(data, size, full)
			if w := dec.Warning(); err == nil && w != "" {
				p.Warning = "decoded past damage: " + w
				fmt.Fprintf(stderr, "predict: %s: %s\n", cli.Name(f), p.Warning)
			}
		}
		if err == nil {
			augment.CenterCrop(slot.Pixels, full, size, size, ck.InputHW)
			var logits []float32
			if logits, err = be.Logits(slot); err == nil && slices.ContainsFunc(logits, notFinite) {
				err = errors.New("the model's outputs are not finite numbers (NaN or ±Inf): the checkpoint is not a usable model")
			}
			if err == nil {
				p.Indices, p.Probs = trainer.TopK(logits, *k)
				for _, i := range p.Indices {
					c := meta.Classes[i]
					p.WNIDs = append(p.WNIDs, c.WNID)
					p.Names = append(p.Names, c.Name)
					p.Classes = append(p.Classes, cmp.Or(c.Name, c.WNID))
				}
			}
		}
		if err != nil {
			p.Error = err.Error()
			failed++
			// On stderr in both modes; --json also keeps it in the file's
			// line, so that stdout has one line per file.
			fmt.Fprintf(stderr, "predict: %s: %s\n", cli.Name(f), p.Error)
		}
		if *asJSON {
			if !utf8.ValidString(f) {
				p.FileQuoted = strconv.Quote(f)
			}
			if err := enc.Encode(p); err != nil {
				return o.Failf(cli.ExitFailure, "%s: writing its JSON line: %v", cli.Name(f), err)
			}
			continue
		}
		if p.Error != "" {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s\n", cli.Name(f))
		for i := range p.Indices {
			// A class without a name is its WNID alone, not printed twice.
			fmt.Fprintf(&b, "  %5.1f%%  %4d %s\n", 100*p.Probs[i], p.Indices[i], cli.Printable(strings.TrimSpace(p.WNIDs[i]+" "+p.Names[i])))
		}
		if _, err := io.WriteString(stdout, b.String()); err != nil {
			return o.Failf(cli.ExitFailure, "writing the result: %v", err)
		}
	}
	if failed > 0 {
		return cli.ExitFailure
	}
	return cli.ExitOK
}

func notFinite(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }

// maxImageBytes bounds an image file read whole: far above any photo
// (ImageNet's largest JPEG is a few MB), far below a disk image given by
// mistake.
const maxImageBytes = 1 << 30

// readImage reads an image file whole. Anything but a regular file is
// refused before it is opened (a named pipe would wait for a writer, a
// device be read without end), and so is one over maxImageBytes. Errors
// do not repeat the path, which the caller prints.
func readImage(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		// A link whose target is gone reads as the file missing; say
		// which it is, as ingest does.
		if d := cli.DanglingLink(path); d != "" {
			return nil, errors.New(d)
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s, not an image file", cli.FileKind(fi.Mode()))
	case fi.Size() > maxImageBytes:
		return nil, fmt.Errorf("%d bytes: larger than any image (limit %d)", fi.Size(), maxImageBytes)
	}
	// The signature first: a large file that is no image (a disk image, a
	// video) is refused before it is read whole.
	if f, _, err := regfile.Open(path); err == nil {
		head := make([]byte, 32) // enough for the text signatures CheckSignature names
		n, _ := io.ReadFull(f, head)
		f.Close()
		if n > 0 {
			if err := imageio.CheckSignature(head[:n]); err != nil {
				return nil, err
			}
		}
	}
	b, err := regfile.ReadFile(path, maxImageBytes)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return b, err
}
