package imagenet

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/regfile"
)

const (
	groundTruthName = "ILSVRC2012_validation_ground_truth.txt"
	// Label and metadata files are at most a few megabytes.
	maxMetaFile = 64 << 20
)

// metaFiles finds and caches the class and label files beside a dataset.
type metaFiles struct {
	dirs []string

	mappingDone bool
	mapping     []synsetEntry
	mappingPath string
	mappingErr  error

	devkitDone bool
	dk         *devkit
	dkErr      error
}

// devkit is what this package needs from ILSVRC2012_devkit_t12.
type devkit struct {
	metaPath  string // for messages, e.g. "/d/ILSVRC2012_devkit_t12.tar.gz:ILSVRC2012_devkit_t12/data/meta.mat"
	synsets   []synset
	truthPath string
	truth     []int // nil when the devkit has no ground truth
}

// find returns the first existing file among dirs/rel, or "". An entry of
// that name that is not a directory counts, whatever it is: a named pipe
// or a device there is refused when it is read, naming it, where passing
// it over would leave every val image unlabelled under a warning that the
// file is missing.
func (m *metaFiles) find(rel string) string {
	for _, d := range m.dirs {
		if p := filepath.Join(d, rel); present(p) {
			return p
		}
	}
	return ""
}

// present says whether a file a listing reads is there: any entry that is
// not a directory, so that one that is not a regular file is refused by
// the read, naming it, rather than taken for missing.
func present(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// where lists the searched folders, for messages.
func (m *metaFiles) where() string {
	return strings.Join(m.dirs, ", ")
}

// synsetMapping loads LOC_synset_mapping.txt if there is one.
func (m *metaFiles) synsetMapping() ([]synsetEntry, string, error) {
	if !m.mappingDone {
		m.mappingDone = true
		if p := m.find(synsetMappingName); p != "" {
			m.mappingPath = p
			b, err := readFileLimit(p)
			if err == nil {
				m.mapping, err = parseSynsetMapping(b)
			}
			if err == nil && len(m.mapping) == 0 {
				// Taken for "no mapping", it would only warn that the
				// file was not found.
				err = errors.New("empty: no synsets in it")
			}
			if err != nil {
				m.mappingErr = pathErr(p, err)
			}
		}
	}
	return m.mapping, m.mappingPath, m.mappingErr
}

// devkit loads the devkit, from its tar.gz or an extracted copy, if there
// is one.
func (m *metaFiles) devkit() (*devkit, error) {
	if !m.devkitDone {
		m.devkitDone = true
		if p := m.find(devkitTarGzName); p != "" {
			m.dk, m.dkErr = loadDevkitTarGz(p)
		} else if p := m.find(filepath.Join(devkitDirName, "data", "meta.mat")); p != "" {
			m.dk, m.dkErr = loadDevkitDir(filepath.Dir(p))
		}
	}
	return m.dk, m.dkErr
}

func readFileLimit(p string) ([]byte, error) {
	f, _, err := regfile.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimit(f, maxMetaFile)
}

// errEmptyTruth is a ground-truth file without IDs: taken for "no ground
// truth", it would leave every validation image unlabelled under a warning
// that there is no devkit ground truth at all.
var errEmptyTruth = errors.New("empty: no ILSVRC2012_IDs in it")

// loadDevkitTarGz reads meta.mat and the ground truth out of the devkit's
// gzipped tar, wherever in it they are, as long as they sit in data/.
func loadDevkitTarGz(p string) (*devkit, error) {
	f, _, err := regfile.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, &PathError{Path: p, Err: fmt.Errorf("opening the gzip stream: %w", err)}
	}
	dk := &devkit{}
	tr := tar.NewReader(zr)
	for dk.synsets == nil || dk.truth == nil {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, pathErr(p, err)
		}
		if !h.FileInfo().Mode().IsRegular() || path.Base(path.Dir(h.Name)) != "data" {
			continue
		}
		member := p + ":" + h.Name
		switch path.Base(h.Name) {
		case "meta.mat":
			b, err := readAllLimit(tr, maxMetaFile)
			if err == nil {
				dk.synsets, err = metaSynsets(b)
			}
			if err != nil {
				return nil, pathErr(member, err)
			}
			dk.metaPath = member
		case groundTruthName:
			b, err := readAllLimit(tr, maxMetaFile)
			if err == nil {
				dk.truth, err = parseGroundTruth(b)
			}
			if err == nil && len(dk.truth) == 0 {
				err = errEmptyTruth
			}
			if err != nil {
				return nil, pathErr(member, err)
			}
			dk.truthPath = member
		}
	}
	if dk.synsets == nil {
		return nil, &PathError{Path: p, Err: fmt.Errorf("no data/meta.mat in it")}
	}
	return dk, nil
}

// loadDevkitDir reads an extracted devkit's data folder.
func loadDevkitDir(data string) (*devkit, error) {
	dk := &devkit{metaPath: filepath.Join(data, "meta.mat")}
	b, err := readFileLimit(dk.metaPath)
	if err == nil {
		dk.synsets, err = metaSynsets(b)
	}
	if err != nil {
		return nil, pathErr(dk.metaPath, err)
	}
	if p := filepath.Join(data, groundTruthName); present(p) {
		b, err := readFileLimit(p)
		if err == nil {
			dk.truth, err = parseGroundTruth(b)
		}
		if err == nil && len(dk.truth) == 0 {
			err = errEmptyTruth
		}
		if err != nil {
			return nil, pathErr(p, err)
		}
		dk.truthPath = p
	}
	return dk, nil
}

// fullWNIDs is the whole class list's WNIDs, in file order, from the
// synset mapping or else the devkit: nil when there is neither.
func (m *metaFiles) fullWNIDs() ([]string, error) {
	mapping, _, err := m.synsetMapping()
	if err != nil {
		return nil, err
	}
	var w []string
	if mapping != nil {
		for _, e := range mapping {
			w = append(w, e.wnid)
		}
		return w, nil
	}
	dk, err := m.devkit()
	if err != nil || dk == nil {
		return nil, err
	}
	for _, s := range dk.leaves() {
		w = append(w, s.wnid)
	}
	return w, nil
}

// leaves are the synsets that are classes: those without children, or,
// should the field be missing, ILSVRC2012_IDs 1..1000.
func (dk *devkit) leaves() []synset {
	var out []synset
	for _, s := range dk.synsets {
		if s.numChildren == 0 || (s.numChildren < 0 && s.id <= 1000) {
			out = append(out, s)
		}
	}
	return out
}

// resolveClasses fixes the class list, renumbers the provisional labels of
// both splits to class indices, and names the classes.
func (d *Dataset) resolveClasses(train, val *split, m *metaFiles) error {
	var wnids []string
	if len(train.wnids) > 0 {
		wnids = slices.Clone(train.wnids)
		// The folders are the classes; a mapping that does not know some
		// of them says the tree is not what it claims to be.
		if mapping, p, err := m.synsetMapping(); err == nil && mapping != nil {
			known := make(map[string]bool, len(mapping))
			for _, e := range mapping {
				known[e.wnid] = true
			}
			// One the list does not know and that holds no image is no
			// class at all (a stray folder), and taking it for one would
			// shift the labels after it: the list decides.
			var unknown, dropped []string
			drop := map[string]bool{}
			train.empty = slices.DeleteFunc(train.empty, func(e emptyClass) bool {
				if !known[e.wnid] {
					drop[e.wnid] = true
					dropped = append(dropped, e.where)
				}
				return drop[e.wnid]
			})
			wnids = slices.DeleteFunc(wnids, func(w string) bool { return drop[w] })
			if n := len(dropped); n > 0 {
				d.warn("train: skipped %d %s with no images and not in %s, not %s: %s", n, cli.Plural(n, "folder or archive", "folders or archives"), p, cli.Plural(n, "a class", "classes"), cli.FirstFew(dropped, 5))
			}
			for _, w := range wnids {
				if !known[w] {
					unknown = append(unknown, w)
				}
			}
			if n := len(unknown); n > 0 {
				slices.Sort(unknown)
				d.warn("train: %d class %s not in %s, kept as %s: %s", n, cli.Plural(n, "folder", "folders"), p, cli.Plural(n, "a class", "classes"), cli.FirstFew(unknown, 5))
			}
			// The reverse: classes the list names that the split lacks.
			// The folders still decide (a chosen subset is a real use),
			// but a half-done extraction must not pass for the dataset.
			have := make(map[string]bool, len(wnids))
			for _, w := range wnids {
				have[w] = true
			}
			var absent []string
			for _, e := range mapping {
				if !have[e.wnid] {
					absent = append(absent, e.wnid)
				}
			}
			if n := len(absent); n > 0 {
				what := "folder"
				if d.Layout == LayoutTars {
					what = "archive"
				}
				slices.Sort(absent)
				d.warn("train: %d of the %d classes in %s have no class %s here (%s), so the classes are the %d there are: is the extraction complete?",
					n, len(mapping), p, what, cli.FirstFew(absent, 5), len(wnids))
			}
		}
	} else {
		full, err := m.fullWNIDs()
		switch {
		case err != nil:
			return err
		case full != nil:
			wnids = full
		case len(val.wnids) > 0:
			wnids = slices.Clone(val.wnids)
			d.warn("classes: no training split and no %s or devkit in %s; the classes are the val folders", synsetMappingName, m.where())
		default:
			return fmt.Errorf("%s: no class list: no training split, and no %s or devkit (%s or %s/) in %s",
				d.Root, synsetMappingName, devkitTarGzName, devkitDirName, m.where())
		}
	}
	slices.Sort(wnids)
	index := make(map[string]int, len(wnids))
	d.Classes = make([]Class, len(wnids))
	for i, w := range wnids {
		index[w] = i
		d.Classes[i] = Class{Index: i, WNID: w}
	}

	for _, s := range []*split{train, val} {
		outside := 0
		var folders []string
		for i := range s.items {
			it := &s.items[i]
			if it.Label < 0 {
				continue
			}
			if c, ok := index[s.wnids[it.Label]]; ok {
				it.Label = c
			} else {
				if w := s.wnids[it.Label]; !slices.Contains(folders, w) {
					folders = append(folders, w)
				}
				it.Label = -1
				outside++
			}
		}
		s.outside = outside
		if outside > 0 {
			slices.Sort(folders)
			d.warn("%s: %d %s in %s with no training images (label -1): %s", s.name, outside, cli.Plural(outside, "image", "images"),
				cli.Plural(len(folders), "the folder of a class", "folders of classes"), cli.FirstFew(folders, 5))
		}
	}
	return d.nameClasses(m)
}

// nameClasses fills in class names from the synset mapping, else meta.mat.
func (d *Dataset) nameClasses(m *metaFiles) error {
	names := make(map[string]string)
	mapping, p, err := m.synsetMapping()
	if err != nil {
		return err
	}
	if mapping != nil {
		for _, e := range mapping {
			names[e.wnid] = e.name
		}
	} else {
		dk, err := m.devkit()
		if err != nil {
			return err
		}
		if dk == nil {
			d.warn("classes: names not found (no %s or devkit in %s)", synsetMappingName, m.where())
			return nil
		}
		for _, s := range dk.synsets {
			names[s.wnid] = s.words
		}
		p = dk.metaPath
	}
	d.ClassNameSource = p
	missing := 0
	for i := range d.Classes {
		n, ok := names[d.Classes[i].WNID]
		if !ok {
			missing++
		}
		d.Classes[i].Name = n
	}
	if missing > 0 {
		d.warn("classes: %d of %d have no name in %s", missing, len(d.Classes), p)
	}
	return nil
}

// labelVal labels the validation images. A --val-labels file overrides
// every label; otherwise the first label file found fills in the images
// that no folder labelled.
func (d *Dataset) labelVal(val *split, m *metaFiles, override string) error {
	folders := false
	unlabelled := 0
	for i := range val.items {
		if val.items[i].Label >= 0 {
			folders = true
		} else {
			unlabelled++
		}
	}
	if folders {
		d.ValLabelSource = "folders"
	}
	if flat := unlabelled - val.outside; folders && flat > 0 {
		// What a sorting script (valprep.sh) stopped part-way leaves. The
		// images in folders of classes train lacks are in folders too.
		inFolders := len(val.items) - flat
		how := "The folders label theirs (checked against a label file, when there is one), the label file the rest"
		if override != "" {
			how = "--val-labels labels them all"
		}
		d.warn("val: %s in class folders and %s not: was a sorting into folders stopped part-way? %s",
			cli.Count(inFolders, "image is", "images are"), cli.Count(flat, "is", "are"), how)
	}

	var src *valLabels
	var srcPath string
	switch {
	case override != "":
		b, err := readFileLimit(override)
		if err == nil {
			src, err = parseValLabelsFile(b)
		}
		if err != nil {
			return pathErr(override, err)
		}
		srcPath = override
	case unlabelled > 0 || folders:
		var err error
		src, srcPath, err = m.defaultValLabels()
		if err != nil && unlabelled > 0 {
			return err
		}
		// Two label sources: the one taken is said, not only in the
		// report's val_label_source.
		if err == nil && src != nil && unlabelled > 0 && filepath.Base(srcPath) == valSolutionName &&
			(m.find(devkitTarGzName) != "" || m.find(filepath.Join(devkitDirName, "data", groundTruthName)) != "") {
			d.warn("val: labels read from %s; the devkit's ground truth beside it is not used (--val-labels FILE uses the one named)", srcPath)
		}
		if err != nil {
			d.warn("val: the folders' labels were not checked against the label file: %v", err)
			src = nil
		}
	}
	// With every val image in a class folder, the label file is only a
	// check: a script that sorted val into folders wrongly would
	// otherwise go unnoticed, the file that catches it lying beside.
	check := override == "" && unlabelled == 0
	if src != nil {
		// The report's root and out are absolute; so is this, in the
		// report and the warnings, or a run from another folder could not
		// tell which file it was.
		if a, aerr := filepath.Abs(srcPath); aerr == nil {
			srcPath = a
		}
		err := d.applyValLabels(val, src, srcPath, override != "", check, m)
		switch {
		case err != nil && check:
			d.warn("val: the folders' labels were not checked against %s: %v", srcPath, err)
		case err != nil:
			return err
		case check:
			d.ValLabelSource = "folders, checked against " + srcPath
		case folders && override == "":
			d.ValLabelSource = "folders, then " + srcPath
		default:
			d.ValLabelSource = srcPath
		}
	}

	unlabelled = 0
	first := ""
	for i := range val.items {
		if val.items[i].Label < 0 {
			if unlabelled == 0 {
				first = val.items[i].Path // the name may repeat across folders (cat/000.jpg)
			}
			unlabelled++
		}
	}
	if unlabelled > 0 {
		msg := fmt.Sprintf("val: %d %s without labels (label -1; first: %s)", unlabelled, cli.Plural(unlabelled, "image", "images"), first)
		// Images of a folder whose class train lacks have their warning;
		// the missing label file explains only the others.
		if src == nil && unlabelled > val.outside {
			msg += fmt.Sprintf("; no %s or devkit ground truth in %s (see --val-labels)", valSolutionName, m.where())
		}
		d.Warnings = append(d.Warnings, msg)
	}
	return nil
}

// defaultValLabels reads the label file found beside the dataset:
// LOC_val_solution.csv, else the devkit's ground truth; nil if neither.
func (m *metaFiles) defaultValLabels() (*valLabels, string, error) {
	if p := m.find(valSolutionName); p != "" {
		b, err := readFileLimit(p)
		var src *valLabels
		if err == nil {
			src, err = parseValSolution(b)
		}
		if err != nil {
			return nil, "", pathErr(p, err)
		}
		return src, p, nil
	}
	dk, err := m.devkit()
	if err != nil {
		return nil, "", err
	}
	if dk != nil && dk.truth != nil {
		return groundTruthLabels(dk.truth), dk.truthPath, nil
	}
	return nil, "", nil
}

// applyValLabels sets the labels src gives, to every image it names when
// overriding, else only to unlabelled ones. With check, it sets none, and
// warns where src disagrees with the folders.
func (d *Dataset) applyValLabels(val *split, src *valLabels, srcPath string, override, check bool, m *metaFiles) error {
	index := make(map[string]int, len(d.Classes))
	for _, c := range d.Classes {
		index[c.WNID] = c.Index
	}
	var idWNID map[int]string
	if src.numbers == ilsvrcID {
		dk, err := m.devkit()
		if err != nil {
			return err
		}
		if dk == nil {
			return &PathError{Path: srcPath, Err: fmt.Errorf("holds ILSVRC2012_IDs, which need the devkit's meta.mat to map to WNIDs, and there is no %s or %s/ in %s", devkitTarGzName, devkitDirName, m.where())}
		}
		idWNID = make(map[int]string, len(dk.synsets))
		for _, s := range dk.synsets {
			idWNID[s.id] = s.wnid
		}
	}

	// Class indices count in the sorted WNIDs of the whole class list
	// (Caffe's val.txt indexes ImageNet's 1000), which the train folders
	// give only when they hold every class: a mapping or the devkit, when
	// there is one, says which WNID an index is.
	var byIndex []string
	if src.numbers == classIndex {
		if full, err := m.fullWNIDs(); err == nil && full != nil {
			byIndex = slices.Sorted(slices.Values(full))
		} else {
			for _, c := range d.Classes {
				byIndex = append(byIndex, c.WNID)
			}
		}
	}

	outside, changed, matched := 0, 0, 0
	var firstChanged, firstOutside string
	// notClass counts an image given a class this dataset does not have,
	// keeping the first for the warning; not one whose folder's label stays.
	applies := false
	notClass := func(it *Item, class string) {
		if !applies {
			return
		}
		if outside++; outside == 1 {
			firstOutside = it.Name + " as " + class
		}
	}
	for i := range val.items {
		it := &val.items[i]
		// A folder's label stays unless --val-labels overrides it; the
		// file is compared with it all the same, whether every image is
		// in a folder (check) or only some are (a sorting stopped
		// part-way, where a wrong folder is as likely).
		folderLabel := it.Label >= 0 && !override
		applies = !check && !folderLabel
		ref, ok := src.refs[imageKey(it.Name)]
		if !ok {
			continue
		}
		matched++
		label := -1
		switch {
		case ref.wnid != "":
			if c, ok := index[ref.wnid]; ok {
				label = c
			} else {
				notClass(it, ref.wnid)
			}
		case src.numbers == classIndex:
			if ref.n >= len(byIndex) {
				return &PathError{Path: srcPath, Err: fmt.Errorf("image %s: class index %d, but there are %d classes (indices are 0-based)", it.Name, ref.n, len(byIndex))}
			}
			if c, ok := index[byIndex[ref.n]]; ok {
				label = c
			} else {
				notClass(it, byIndex[ref.n])
			}
		default:
			w, ok := idWNID[ref.n]
			if !ok {
				return &PathError{Path: srcPath, Err: fmt.Errorf("image %s: ILSVRC2012_ID %d is not in %s", it.Name, ref.n, m.dk.metaPath)}
			}
			if c, ok := index[w]; ok {
				label = c
			} else {
				notClass(it, w)
			}
		}
		if it.Label >= 0 && it.Label != label {
			if changed++; changed == 1 {
				says := "no class of this dataset"
				if label >= 0 {
					says = d.Classes[label].WNID
				}
				firstChanged = fmt.Sprintf("%s is in %s's folder, the file says %s", it.Name, d.Classes[it.Label].WNID, says)
			}
		}
		if applies {
			it.Label = label
		}
	}
	// Rows naming no image here: a partial extraction (49,000 of 50,000
	// val images) would otherwise pass without a word.
	present := make(map[string]bool, len(val.items))
	for i := range val.items {
		present[imageKey(val.items[i].Name)] = true
	}
	var absent []string
	for k := range src.refs {
		if !present[k] {
			absent = append(absent, k)
		}
	}
	// A check of folders may be of a subset (some classes' folders) beside
	// the whole file: rows for other images say nothing there.
	if len(absent) > 0 && len(val.items) > 0 && !check {
		slices.Sort(absent)
		d.warn("val: %s labels %d %s that %s not in the val split (first: %s): is the extraction complete?", srcPath, len(absent), cli.Plural(len(absent), "image", "images"), cli.Plural(len(absent), "is", "are"), absent[0])
	}
	if override && matched == 0 && len(val.items) > 0 {
		// A file the user named that labels nothing would leave the whole
		// split unlabelled: a run whose validation measures nothing.
		return fmt.Errorf("val: --val-labels %s names none of the %d val images (first: %s): is it this dataset's?", srcPath, len(val.items), val.items[0].Name)
	}
	if changed > 0 && !override {
		use := ""
		if fi, err := os.Stat(srcPath); err == nil && fi.Mode().IsRegular() { // not a member of the devkit's tar
			use = fmt.Sprintf(" (--val-labels %s uses the file's)", srcPath)
		}
		d.warn("val: %s disagrees with the folders for %d %s (first: %s); the folders' labels are kept%s", srcPath, changed, cli.Plural(changed, "image", "images"), firstChanged, use)
	}
	if outside > 0 {
		d.warn("val: %s labels %d %s with classes outside this dataset's %d (first: %s); they get label -1", srcPath, outside, cli.Plural(outside, "image", "images"), len(d.Classes), firstOutside)
	}
	if changed > 0 && override {
		d.warn("val: %s disagrees with the folders for %d %s (first: %s); using the file", srcPath, changed, cli.Plural(changed, "image", "images"), firstChanged)
	}
	return nil
}
