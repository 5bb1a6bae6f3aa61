package imagenet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// This file parses the text files that name classes and label validation
// images. Each parser takes the file's bytes and reports errors by line
// number; callers add the file's path.

// errFormat marks a label or synset file that does not have the expected form.
var errFormat = errors.New("malformed file")

// maxLine bounds one line of a text file. LOC_val_solution.csv rows with
// many boxes run to a few kilobytes.
const maxLine = 1 << 20

// validWNID reports whether s looks like a WordNet noun ID such as n01440764.
func validWNID(s string) bool {
	if len(s) != 9 || s[0] != 'n' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// lines calls fn for each line of b with its 1-based number, the line
// without its end-of-line characters, skipping blank lines. A UTF-8 byte
// order mark, as spreadsheet programs write, is dropped.
func lines(b []byte, fn func(n int, line string) error) error {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %v", errFormat, err)
	}
	return nil
}

// imageKey is the name by which label files and items meet: the base name
// without an image extension, e.g. "ILSVRC2012_val_00000001".
func imageKey(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 && isImageExt(name[i:]) {
		name = name[:i]
	}
	return name
}

// ImageExts are the names (in any case) under which files are listed as
// images: ImageNet's JPEG and PNG, and the formats the decoder reads that
// torchvision's ImageFolder also lists, so that a dataset of one's own
// loses none of its images by their names.
const ImageExts = ".JPEG, .jpg, .jpeg, .jfif, .png, .gif, .bmp, .webp, .tif, .tiff"

// isImageExt reports whether ext (with its dot) is one of ImageExts, in
// any case.
func isImageExt(ext string) bool {
	switch strings.ToLower(ext) {
	case ".jpeg", ".jpg", ".jfif", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff":
		return true
	}
	return false
}

// labelRef is the class a label file gives one image: a WNID, or a number
// whose meaning depends on the file (see valLabels.numbers).
type labelRef struct {
	wnid string
	n    int
}

// numbering says what the numbers in a label file mean.
type numbering int

const (
	classIndex numbering = iota // 0-based position in sorted-WNID order (Caffe's val.txt)
	ilsvrcID                    // 1-based ILSVRC2012_ID, in meta.mat order (the devkit)
)

// valLabels is a parsed source of validation labels, keyed by imageKey.
type valLabels struct {
	refs    map[string]labelRef
	numbers numbering
}

func (v *valLabels) set(n int, key string, ref labelRef) error {
	if key == "" {
		return fmt.Errorf("%w: line %d: empty image name", errFormat, n)
	}
	if old, ok := v.refs[key]; ok && old != ref {
		return fmt.Errorf("%w: line %d: image %s labelled twice, differently", errFormat, n, key)
	}
	v.refs[key] = ref
	return nil
}

// parseValSolution reads Kaggle's LOC_val_solution.csv. Each row is
// "ImageId,PredictionString"; the prediction string lists boxes as
// "wnid xmin ymin xmax ymax ...", and all boxes of an image share its class,
// so the first WNID is the label.
func parseValSolution(b []byte) (*valLabels, error) {
	v := &valLabels{refs: make(map[string]labelRef)}
	header := false
	err := lines(b, func(n int, line string) error {
		if !header {
			if !strings.EqualFold(strings.ReplaceAll(line, `"`, ""), "ImageId,PredictionString") {
				return fmt.Errorf("%w: line %d: header %q, want ImageId,PredictionString", errFormat, n, clip(line))
			}
			header = true
			return nil
		}
		id, pred, ok := strings.Cut(line, ",")
		if !ok {
			return fmt.Errorf("%w: line %d: no comma", errFormat, n)
		}
		id = strings.Trim(strings.TrimSpace(id), `"`)
		f := strings.Fields(strings.Trim(pred, `"`))
		if len(f) == 0 || !validWNID(f[0]) {
			return fmt.Errorf("%w: line %d: prediction string does not start with a WNID", errFormat, n)
		}
		return v.set(n, imageKey(id), labelRef{wnid: f[0]})
	})
	if err == nil && !header {
		err = fmt.Errorf("%w: empty, want an ImageId,PredictionString header", errFormat)
	}
	return v, err
}

// parseGroundTruth reads the devkit's ILSVRC2012_validation_ground_truth.txt:
// line i holds the ILSVRC2012_ID of ILSVRC2012_val_%08d(i).
func parseGroundTruth(b []byte) ([]int, error) {
	var ids []int
	err := lines(b, func(n int, line string) error {
		id, err := strconv.Atoi(line)
		if err != nil || id < 1 {
			return fmt.Errorf("%w: line %d: %q is not an ILSVRC2012_ID", errFormat, n, clip(line))
		}
		if len(ids) != n-1 {
			return fmt.Errorf("%w: line %d: blank line before it; line i must label image i", errFormat, n)
		}
		ids = append(ids, id)
		return nil
	})
	return ids, err
}

// groundTruthLabels turns ground-truth IDs into labels keyed by image name.
func groundTruthLabels(ids []int) *valLabels {
	v := &valLabels{refs: make(map[string]labelRef, len(ids)), numbers: ilsvrcID}
	for i, id := range ids {
		v.refs[valImageKey(i+1)] = labelRef{n: id}
	}
	return v
}

// valImageKey is the key of the i-th (1-based) validation image.
func valImageKey(i int) string {
	return fmt.Sprintf("ILSVRC2012_val_%08d", i)
}

// synsetEntry is one line of LOC_synset_mapping.txt.
type synsetEntry struct {
	wnid, name string
}

// parseSynsetMapping reads LOC_synset_mapping.txt (also Caffe's
// synset_words.txt): "n01440764 tench, Tinca tinca" per line.
func parseSynsetMapping(b []byte) ([]synsetEntry, error) {
	var out []synsetEntry
	seen := make(map[string]bool)
	err := lines(b, func(n int, line string) error {
		wnid, name := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 { // some copies use a tab
			wnid, name = line[:i], strings.TrimSpace(line[i:])
		}
		if !validWNID(wnid) {
			return fmt.Errorf("%w: line %d: %q does not start with a WNID", errFormat, n, clip(line))
		}
		if seen[wnid] {
			return fmt.Errorf("%w: line %d: %s listed twice", errFormat, n, wnid)
		}
		seen[wnid] = true
		out = append(out, synsetEntry{wnid: wnid, name: name})
		return nil
	})
	return out, err
}

// parseValLabelsFile reads a file given with --val-labels, recognising by
// content:
//   - LOC_val_solution.csv (the ImageId,PredictionString header, or rows
//     "id,wnid x y x y ...");
//   - "<image name or id> <wnid or class index>" per line, whitespace or
//     comma separated, as Caffe's val.txt; indices are 0-based in
//     sorted-WNID order;
//   - one ILSVRC2012_ID per line, as the devkit's ground truth.
func parseValLabelsFile(b []byte) (*valLabels, error) {
	v := &valLabels{refs: make(map[string]labelRef), numbers: classIndex}
	var ids []int
	first := true
	err := lines(b, func(n int, line string) error {
		if first {
			first = false
			if strings.EqualFold(strings.ReplaceAll(line, `"`, ""), "ImageId,PredictionString") {
				return nil
			}
			if _, err := strconv.Atoi(line); err == nil {
				ids = []int{}
			}
		}
		if ids != nil {
			id, err := strconv.Atoi(line)
			if err != nil || id < 1 {
				return fmt.Errorf("%w: line %d: %q is not an ILSVRC2012_ID (the file's first line was a lone number)", errFormat, n, clip(line))
			}
			if len(ids) != n-1 {
				return fmt.Errorf("%w: line %d: blank line before it; line i must label image i", errFormat, n)
			}
			ids = append(ids, id)
			return nil
		}
		var key, label string
		if k, rest, ok := strings.Cut(line, ","); ok {
			key = k
			if f := strings.Fields(strings.Trim(rest, `" `)); len(f) > 0 {
				label = f[0]
			}
		} else if f := strings.Fields(line); len(f) == 2 {
			key, label = f[0], f[1]
		}
		key = strings.Trim(strings.TrimSpace(key), `"`)
		if key == "" || label == "" {
			return fmt.Errorf("%w: line %d: %q: want \"<image> <wnid or class index>\"", errFormat, n, clip(line))
		}
		ref := labelRef{wnid: label}
		if !validWNID(label) {
			i, err := strconv.Atoi(label)
			if err != nil || i < 0 {
				return fmt.Errorf("%w: line %d: label %q is neither a WNID nor a class index", errFormat, n, clip(label))
			}
			ref = labelRef{n: i}
		}
		return v.set(n, imageKey(key), ref)
	})
	if err != nil {
		return nil, err
	}
	if ids != nil {
		return groundTruthLabels(ids), nil
	}
	if len(v.refs) == 0 {
		return nil, fmt.Errorf("%w: no labels in it", errFormat)
	}
	return v, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// readAllLimit reads r, failing when it holds more than limit bytes: label
// and metadata files are small, and a huge one means a wrong path.
func readAllLimit(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes; not a label or metadata file", limit)
	}
	return b, nil
}
