package imagenet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/errs"
	"github.com/alexnet-repro/alexnet/internal/regfile"
)

// Layout names how a dataset is stored on disk.
type Layout string

// The layouts Open recognises; Layouts describes them.
const (
	LayoutTars   Layout = "tars"
	LayoutTree   Layout = "tree"
	LayoutKaggle Layout = "kaggle"
)

// File names of the official release and of Kaggle's copy.
const (
	trainTarName      = "ILSVRC2012_img_train.tar"
	valTarName        = "ILSVRC2012_img_val.tar"
	devkitTarGzName   = "ILSVRC2012_devkit_t12.tar.gz"
	devkitDirName     = "ILSVRC2012_devkit_t12"
	valSolutionName   = "LOC_val_solution.csv"
	synsetMappingName = "LOC_synset_mapping.txt"
	kaggleDataDir     = "ILSVRC/Data/CLS-LOC"
)

// Class is one ImageNet class. Index is its position in sorted-WNID order.
type Class struct {
	Index int    `json:"index"`
	WNID  string `json:"wnid"`
	Name  string `json:"name"`
}

// Item is one image of a split. Records downstream are named by Name, which
// is the same whatever the layout.
type Item struct {
	// Name is the file's base name, e.g. "n01440764_10026.JPEG" or
	// "ILSVRC2012_val_00000001.JPEG"; class/base ("cat/000.jpg") for the
	// items of a split whose base names repeat across class folders (an
	// unlabelled one's folder/base, its folder being no class).
	Name string
	// Path says where the image came from, for reports: a path relative to
	// Dataset.Root ("train/n01440764/n01440764_10026.JPEG"), or inside
	// archives "ILSVRC2012_img_train.tar:n01440764.tar:n01440764_10026.JPEG".
	Path string
	// Label is the class index, or -1 when unknown.
	Label int

	arc  int32  // 1 + index into Dataset.archives; 0 for a plain file
	file string // plain file: path relative to Dataset.Root (shares Path's bytes)
	off  int64  // archive member: where its bytes start
	size int64  // archive member: how many bytes
}

// Size is the image's size in bytes when it is known without a stat (an
// archive member), else -1.
func (it *Item) Size() int64 {
	if it.arc == 0 {
		return -1
	}
	return it.size
}

// ItemStamp says which bytes the item holds now, without reading them:
// a plain file's size and modification time, or an archive member's size
// and place with the archive's modification time when it was listed ("?"
// when a stat fails). Resuming compares it with what a finished shard was made from,
// so a file replaced since, a fixed truncated image, say, is read again,
// even when the repair left its length as it was. A copy of the dataset
// that does not keep times makes a resume decode everything again: slow,
// never wrong.
func (d *Dataset) ItemStamp(it *Item) string {
	if it.arc != 0 {
		// The time when the archive was listed, as the offsets are: one
		// stat per archive, not one per member of a 1.28M-image tar.
		if int(it.arc) > len(d.archTime) {
			return "?"
		}
		return fmt.Sprintf("%d@%d %d", it.size, it.off, d.archTime[it.arc-1])
	}
	fi, err := os.Stat(filepath.Join(d.Root, it.file))
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%d %d", fi.Size(), fi.ModTime().UnixNano())
}

// Dataset is an ImageNet dataset found on disk.
type Dataset struct {
	Root   string // the directory the dataset was found in; Item paths are relative to it
	Layout Layout
	// Classes are sorted by WNID; Index is the position.
	Classes []Class
	// Train and Val are each sorted by Name.
	Train, Val []Item
	// Warnings are problems that did not stop Open, one line each, e.g.
	// "val: 12 images without labels (label -1)".
	Warnings []string
	// Skipped are the entries named as images that are not readable files
	// (a dangling symbolic link, a directory), and the stretches of a tar
	// skipped past a damaged header (named archive:@offset, Name empty), in
	// listing order; they are in neither Train nor Val.
	Skipped []Skipped
	// LeftOut are the entries in class folders (or archives) whose names
	// are not ImageExts', and those outside any class folder or archive
	// of a split that has them: not listed, and not skipped (a README, an
	// annotation .xml). The warnings name the first few.
	LeftOut []string
	// ValLabelSource is the file the validation labels came from, "folders"
	// when they came from val/<wnid>/ folders ("folders, checked against
	// FILE" with a label file beside them), or "" when there are none.
	ValLabelSource string
	// ClassNameSource is the file the class names came from, or "".
	ClassNameSource string

	archives []*os.File
	archTime []int64         // each archive's modification time (ns) when opened, for ItemStamp
	ctx      context.Context // Open's, checked as listing goes
	exclude  []os.FileInfo   // Options.Exclude's folders that exist
	// splitDirs are the split folders' real paths, by split name, for
	// linkBack.
	splitDirs map[string]string
}

// stopped is ctx's error once it is cancelled: listing ImageNet takes
// minutes, and Ctrl-C must not wait for it.
func (d *Dataset) stopped() error {
	if err := d.ctx.Err(); err != nil {
		return fmt.Errorf("listing %s: %w", d.Root, err)
	}
	return nil
}

// Skipped is a directory entry named as an image that Open could not list
// as one, or a stretch of a tar lost to a damaged header.
type Skipped struct {
	Split  string // "train" or "val"
	Path   string // relative to Dataset.Root, as Item.Path; archive:@offset for a lost stretch
	Name   string // base name; empty for a lost stretch
	Reason string // e.g. "dangling symbolic link to /gone/x.JPEG"
}

// Options adjust Open.
type Options struct {
	// ValLabels is a file of validation labels that overrides every other
	// source (the --val-labels flag); Layouts describes the formats.
	ValLabels string
	// Layout forces a layout instead of detecting one.
	Layout Layout
	// Exclude names folders that are never a class or part of one: the
	// ingest's own --out, which may lie inside train/ or val/ (compared
	// by identity, so another spelling of the path is the same folder).
	Exclude []string
	// TrainOnly leaves the validation split out: not listed, not
	// labelled (ingest --splits train). A val archive still downloading
	// or a damaged label file then cannot stop the training split.
	TrainOnly bool
	// Progress, when set, is called as listing advances: what is being
	// listed (an archive or split), and done out of total (bytes of an
	// archive, or class folders).
	Progress func(what string, done, total int64)
}

// PathError is a problem with one file of a dataset. Path is a file path,
// or for a member of an archive
// "/data/ILSVRC2012_img_train.tar:n01440764.tar:n01440764_10026.JPEG".
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

// pathErr wraps err with path unless it already names a path.
func pathErr(path string, err error) error {
	var pe *PathError
	if errors.As(err, &pe) {
		return err
	}
	var oe *fs.PathError
	if errors.As(err, &oe) {
		return err // os errors already name the file
	}
	return &PathError{Path: path, Err: err}
}

// Layouts describes the layouts Open recognises and the label files it
// reads, for --help.
func Layouts() string {
	return `Dataset layouts (detected under the root directory):
  tars    the official archives, read in place (never extracted):
            ILSVRC2012_img_train.tar   1000 <wnid>.tar, each of <wnid>_<n>.JPEG
            ILSVRC2012_img_val.tar     ILSVRC2012_val_<8 digits>.JPEG
          either may be missing (that split is then empty). The root may
          also be the path of one of the tars, which stands for its
          folder: the other tar beside it is read too (--splits picks).
  tree    train/<wnid>/*.JPEG, and val/ either flat (ILSVRC2012_val_*.JPEG)
          or as val/<wnid>/*.JPEG (labels from the folders, checked
          against a label file when there is one).
  kaggle  Kaggle's copy: ILSVRC/Data/CLS-LOC/{train/<wnid>/, val/} with
          LOC_val_solution.csv and LOC_synset_mapping.txt beside ILSVRC/.
          The root may also be the CLS-LOC folder itself.
  Images are named .JPEG, .jpg, .jpeg, .jfif, .png, .gif, .bmp, .webp, .tif
  or .tiff, in any case; hidden files are ignored,
  and so are system folders without images (__MACOSX, $RECYCLE.BIN,
  lost+found, ...), which would otherwise become class 0.

Classes: the WNIDs of the training folders or member tars, sorted; the class
index is the position (as torchvision, Caffe and FFCV). Without a training
split, the 1000 classes of LOC_synset_mapping.txt or the devkit's meta.mat.
Names from LOC_synset_mapping.txt, else meta.mat.

Validation labels, first found in the root (or, for kaggle, beside ILSVRC/):
  LOC_val_solution.csv            ImageId,PredictionString (first WNID)
  ILSVRC2012_devkit_t12.tar.gz    or the extracted ILSVRC2012_devkit_t12/:
                                  data/ILSVRC2012_validation_ground_truth.txt,
                                  mapped to WNIDs through data/meta.mat
  --val-labels FILE overrides them; its format is recognised by content:
    LOC_val_solution.csv rows   ILSVRC2012_val_00000001,n01751748 ...
    one image per line          ILSVRC2012_val_00000001.JPEG 65
                                (whitespace or comma separated; the label is
                                a WNID or a 0-based index in sorted-WNID
                                order, as Caffe's val.txt)
    one number per line         the devkit's ground truth (ILSVRC2012_IDs;
                                needs the devkit's meta.mat to be found)
  Validation images without a label get label -1 and a warning.
`
}

// plan is what detection found: where each part of the dataset lies.
type plan struct {
	layout           Layout
	root             string
	trainTar, valTar string   // file names in root; "" when absent
	trainDir, valDir string   // relative to root; "" when absent
	metaDirs         []string // searched, in order, for label and synset files
	alsoFound        []Layout // other layouts present, for a warning
}

// checkTreeAgainstTars refuses an extracted training split that holds
// fewer classes than the training tar beside it, none included, when the
// layout was detected rather than chosen: the tree is taken first, and a
// half-done extraction (val extracted, train not yet; or a loop over the
// class tars, stopped) would otherwise make a dataset of the classes it
// reached, with a warning that is easy to miss. It runs before the
// listing, which takes minutes on ImageNet, and counts folders and the
// tar's own headers only. --layout tree takes the folders as they are,
// --layout tars the archive.
func (p *plan) checkTreeAgainstTars(force Layout) error {
	if force != "" || p.layout == LayoutTars || !slices.Contains(p.alsoFound, LayoutTars) {
		return nil
	}
	tp := detectTars(p.root)
	if tp == nil || tp.trainTar == "" {
		return nil
	}
	have := 0
	if p.trainDir != "" {
		dir := filepath.Join(p.root, p.trainDir)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil // the listing says what is wrong with it
		}
		for _, e := range entries {
			if n := e.Name(); !isHidden(n) && systemFolder(n) == "" && isDir(filepath.Join(dir, n)) {
				have++
			}
		}
	}
	n, err := countTrainTarClasses(p.root, tp.trainTar)
	if err != nil || n <= have {
		return nil // unreadable, it is not the one to be read: no verdict
	}
	split := "no train/ folder"
	if p.trainDir != "" {
		split = fmt.Sprintf("%s in %s", cli.Count(have, "class folder", "class folders"), p.trainDir)
	}
	return errs.Mark(&PathError{Path: p.root, Err: fmt.Errorf(
		"the %s layout has %s, and %s beside it %d class archives: is the extraction finished? "+
			"Finish it, or choose: --layout %s reads the %d there, --layout tars the archive's %d",
		p.layout, split, tp.trainTar, n, p.layout, have, n)}, ErrOtherLayout)
}

// outInSplit refuses an output folder (out, whose FileInfo is fi) that is
// one of the dataset's split folders: ingest's own files among a split's
// images would be listed as entries that are not images by every later
// run, and a later --overwrite would clear them from the dataset.
func (p *plan) outInSplit(out string, fi os.FileInfo) error {
	for _, s := range []struct{ dir, name string }{{p.trainDir, "train"}, {p.valDir, "val"}} {
		if sf, err := os.Stat(filepath.Join(p.root, s.dir)); s.dir != "" && err == nil && os.SameFile(fi, sf) {
			return errs.Mark(&PathError{Path: out, Err: fmt.Errorf("--out is the dataset's %s folder (%s): the shards and meta.json would lie among its images; give --out a folder of its own, outside %s", s.name, s.dir, s.dir)}, ErrOutInDataset)
		}
	}
	return nil
}

// CheckOut is OpenContext's refusal of an output folder that is one of
// the dataset's split folders, for before anything is made there (ingest
// locks its --out before the listing). It finds the layout as Open does,
// but lists nothing; where no layout is found, Open will say why.
func CheckOut(root string, force Layout, out string) error {
	fi, err := os.Stat(out)
	if err != nil {
		return nil // made later, so no split folder
	}
	p, err := detect(root, force)
	if err != nil {
		return nil
	}
	return p.outInSplit(out, fi)
}

// Open finds the dataset under root, lists both splits, and resolves
// classes and labels. Its error lists the layouts it looked for when none
// matched.
func Open(root string, opt Options) (*Dataset, error) {
	return OpenContext(context.Background(), root, opt)
}

// OpenContext is Open, stopped early with ctx's error when ctx is
// cancelled during the listing.
func OpenContext(ctx context.Context, root string, opt Options) (*Dataset, error) {
	p, err := detect(root, opt.Layout)
	if err != nil {
		return nil, err
	}
	if err := p.checkTreeAgainstTars(opt.Layout); err != nil {
		return nil, err
	}
	d := &Dataset{Root: p.root, Layout: p.layout, ctx: ctx}
	for _, x := range opt.Exclude {
		if fi, err := os.Stat(x); err == nil {
			d.exclude = append(d.exclude, fi)
			if err := p.outInSplit(x, fi); err != nil {
				return nil, err
			}
		}
	}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	for _, l := range p.alsoFound {
		d.warn("%s also holds a %s layout; using %s (choose with --layout)", p.root, l, p.layout)
	}

	train := newSplit("train")
	val := newSplit("val")
	switch p.layout {
	case LayoutTars:
		if p.trainTar != "" {
			err = d.listTrainTar(train, p.trainTar, opt.Progress)
		}
		if err == nil && p.valTar != "" && !opt.TrainOnly {
			err = d.listValTar(val, p.valTar, opt.Progress)
		}
	default:
		d.splitDirs = map[string]string{}
		for name, dir := range map[string]string{"train": p.trainDir, "val": p.valDir} {
			if real, err := realPath(filepath.Join(d.Root, dir)); dir != "" && err == nil {
				d.splitDirs[name] = real
			}
		}
		// An --out made inside a split by this run is not there for the
		// listing to pass: said now, not only by the next run.
		for _, x := range opt.Exclude {
			if split, in := d.insideSplit(x); in {
				d.warn("%s: --out %s lies inside the dataset's %s folder, where ingest's files would sit among its images; keep --out outside the dataset", split, x, split)
			}
		}
		if p.trainDir != "" {
			err = d.listTree(train, p.trainDir, false, opt.Progress)
		}
		if err == nil && p.valDir != "" && !opt.TrainOnly {
			err = d.listTree(val, p.valDir, true, opt.Progress)
		}
		// train/ extracted and the val tar beside it not (a common
		// half-way state): val is read from the tar, as --layout tars
		// would, rather than left out. Only where the layout was
		// detected: --layout tree means the folders alone.
		if tp := detectTars(p.root); err == nil && !opt.TrainOnly && p.layout == LayoutTree && opt.Layout == "" && len(val.items) == 0 && len(val.skipped) == 0 && tp != nil && tp.valTar != "" {
			where := "no val/ folder"
			if p.valDir != "" {
				where = p.valDir + " holds no images"
			}
			d.warn("val: %s; reading %s beside it instead", where, tp.valTar)
			err = d.listValTar(val, tp.valTar, opt.Progress)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(train.items) == 0 && len(val.items) == 0 {
		// An empty tree beside the tars (an extraction not yet done) is
		// taken first; say what else is there rather than only fail.
		also := ""
		for _, l := range p.alsoFound {
			also += fmt.Sprintf("; it also holds a %s layout (--layout %s)", l, l)
		}
		if opt.TrainOnly {
			return nil, fmt.Errorf("%s: %s layout found, but no training images in it (--splits train: val is not read)%s", p.root, p.layout, also)
		}
		return nil, fmt.Errorf("%s: %s layout found, but no images in it%s", p.root, p.layout, also)
	}
	for _, s := range []*split{train, val} {
		if n := len(s.leftOut); n > 0 {
			named := &tally{n: n, first: s.leftOut[:min(n, 5)]}
			d.warn("%s: left out %s not named as %s (%s): %s", s.name, cli.Count(n, "entry", "entries"), cli.Plural(n, "an image", "images"), ImageExts, named)
		}
		if n := len(s.stray); n > 0 {
			named := &tally{n: n, first: s.stray[:min(n, 5)]}
			d.warn("%s: left out %s outside class folders or archives: %s", s.name, cli.Count(n, "entry", "entries"), named)
		}
		if n := s.dirLink.n; n > 0 {
			d.warn("%s: %s to folders inside class folders not followed (one could lead round, or to another class's images): %s", s.name, cli.Count(n, "link", "links"), &s.dirLink)
		}
		for _, e := range s.tarNotes {
			d.warn("%s: %s", s.name, e)
		}
		d.Skipped = append(d.Skipped, s.skipped...)
		d.LeftOut = append(append(d.LeftOut, s.leftOut...), s.stray...)
	}

	// meta.json is JSON, whose strings are UTF-8: a class named otherwise
	// would be written with U+FFFD for its bytes, and two such folders
	// (n01\xfe, n01\xff) would become two classes of one WNID.
	for _, s := range []*split{train, val} {
		for _, w := range s.wnids {
			if !utf8.ValidString(w) {
				return nil, &PathError{Path: p.root, Err: fmt.Errorf("%s class %q (a folder or archive name) is not valid UTF-8, which meta.json cannot record; rename it", s.name, w)}
			}
		}
	}
	m := &metaFiles{dirs: p.metaDirs}
	if err := d.resolveClasses(train, val, m); err != nil {
		return nil, err
	}
	// An empty class folder still takes a class index, so that the other
	// classes keep theirs; it is most likely a copy that went wrong, though.
	// (resolveClasses drops those a class list says are no class.)
	if n := len(train.empty); n > 0 {
		noun := "class folder"
		if p.layout == LayoutTars {
			noun = "class archive"
		}
		var where []string
		for _, e := range train.empty {
			where = append(where, e.where)
		}
		d.warn("train: %d %s%s with no images, kept as %s without records so that no class index shifts: %s", n, noun, cli.Plural(n, "", "s"), cli.Plural(n, "a class", "classes"), cli.FirstFew(where, 5))
	}
	if !opt.TrainOnly {
		if err := d.labelVal(val, m, opt.ValLabels); err != nil {
			return nil, err
		}
	}
	d.Train, d.Val = train.items, val.items
	for _, s := range []struct {
		name  string
		dir   string // the split's folder, relative to the root ("" for an archive)
		items []Item
	}{{"train", p.trainDir, d.Train}, {"val", p.valDir, d.Val}} {
		items := s.items
		// Stable, and by path among equal names: the warning below names
		// the same pair whatever order the listing found them in.
		slices.SortStableFunc(items, func(a, b Item) int {
			return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Path, b.Path))
		})
		// ImageNet's names are unique in a split (n01440764_10026.JPEG),
		// and they name the records. Class folders of other datasets
		// often repeat names (cat/000.jpg, dog/000.jpg): then every
		// labelled record of the split is named class/file, which is
		// unique, and is the same whatever order the files were listed.
		// An unlabelled image in a folder of its own (val/zebra/001.jpg,
		// zebra no training class) is named folder/file the same way.
		if i := repeatedName(items); i > 0 {
			// Said where names repeat across classes; a repeat within one
			// class alone gets its own warning below.
			if i := repeatedAcross(items, s.dir); i > 0 {
				d.warn("%s: file names repeat across class folders (%s at %s and %s), so this split's records in folders are named class/file",
					s.name, items[i].Name, d.describe(&items[i-1]), d.describe(&items[i]))
			}
			for j := range items {
				if l := items[j].Label; l >= 0 {
					items[j].Name = d.Classes[l].WNID + "/" + items[j].Name
				} else if f := folderOf(items[j].Path, s.dir); f != "" {
					items[j].Name = f + "/" + items[j].Name
				}
			}
			slices.SortFunc(items, func(a, b Item) int { return strings.Compare(a.Name, b.Name) })
		}
		// A name twice in one class, in two of its folders (an archive
		// extracted into itself, a backup/ copy): those records are
		// named by their path in the class folder, class/a/x.JPEG.
		if i := repeatedName(items); i > 0 && items[i].Label >= 0 {
			d.warn("%s: file names repeat within a class's folders (%s at %s and %s), so this split's records in folders are named class/file, and class/folder/file in folders inside class folders",
				s.name, items[i].Name[strings.IndexByte(items[i].Name, '/')+1:], d.describe(&items[i-1]), d.describe(&items[i]))
			for j := range items {
				if l := items[j].Label; l >= 0 {
					items[j].Name = d.Classes[l].WNID + "/" + pathInClass(items[j].Path, s.dir)
				}
			}
			slices.SortFunc(items, func(a, b Item) int { return strings.Compare(a.Name, b.Name) })
		}
		if i := repeatedName(items); i > 0 {
			return nil, &PathError{Path: d.describe(&items[i]), Err: fmt.Errorf("name %s also at %s; names must be unique within a folder", items[i].Name, d.describe(&items[i-1]))}
		}
	}
	ok = true
	return d, nil
}

// pathInClass is an item's path inside its class folder or class archive
// ("a/x.JPEG" of "train/n01/a/x.JPEG"), with forward slashes.
func pathInClass(p, splitDir string) string {
	if i := strings.LastIndexByte(p, ':'); i >= 0 {
		return strings.TrimLeft(path.Clean("/"+p[i+1:]), "/") // the member's own path
	}
	rel, err := filepath.Rel(filepath.Clean(splitDir), p)
	if err != nil {
		return filepath.ToSlash(p)
	}
	if _, sub, ok := strings.Cut(filepath.ToSlash(rel), "/"); ok {
		return sub
	}
	return filepath.ToSlash(rel)
}

// folderOf is the name of the folder below its split's own (splitDir,
// relative to the root) that an item's file is in ("zebra" of
// "val/zebra/001.jpg"), or "" for one directly in the split's folder or
// at an archive's top.
func folderOf(path, splitDir string) string {
	if i := strings.LastIndexByte(path, ':'); i >= 0 {
		path, splitDir = path[i+1:], "" // inside an archive: the member's own path
	}
	if dir := filepath.Dir(path); dir != "." && dir != "/" && dir != filepath.Clean(splitDir) {
		return filepath.Base(dir)
	}
	return ""
}

// repeatedName is the index of the first item of sorted items whose name
// the one before it has too, or 0 when every name is unique.
// repeatedAcross is repeatedName for names met in two classes (or two
// folders of unlabelled images), not twice in one: items sorted by name.
func repeatedAcross(items []Item, splitDir string) int {
	for i := 1; i < len(items); i++ {
		a, b := &items[i-1], &items[i]
		if a.Name == b.Name && (a.Label != b.Label || a.Label < 0 && folderOf(a.Path, splitDir) != folderOf(b.Path, splitDir)) {
			return i
		}
	}
	return 0
}

func repeatedName(items []Item) int {
	for i := 1; i < len(items); i++ {
		if items[i].Name == items[i-1].Name {
			return i
		}
	}
	return 0
}

// Close closes the archives. Items can no longer be read afterwards.
func (d *Dataset) Close() error {
	var errs []error
	for _, f := range d.archives {
		errs = append(errs, f.Close())
	}
	d.archives = nil
	return errors.Join(errs...)
}

func (d *Dataset) warn(format string, args ...any) {
	d.Warnings = append(d.Warnings, fmt.Sprintf(format, args...))
}

// describe is an item's full location, for errors.
func (d *Dataset) describe(it *Item) string {
	return filepath.Join(d.Root, it.Path)
}

// ReadItem appends the item's bytes to buf[:0] and returns the result, so
// a caller can reuse one buffer. It is safe for concurrent use.
func (d *Dataset) ReadItem(it *Item, buf []byte) ([]byte, error) {
	buf = buf[:0]
	if it.arc == 0 {
		if it.file == "" {
			return buf, fmt.Errorf("imagenet: item %q was not listed by Open", it.Name)
		}
		return readFile(filepath.Join(d.Root, it.file), buf)
	}
	if int(it.arc) > len(d.archives) {
		return buf, &PathError{Path: d.describe(it), Err: errors.New("archive not open (dataset closed, or item from another dataset)")}
	}
	if it.size > maxItemBytes {
		return buf, &PathError{Path: d.describe(it), Err: fmt.Errorf("%d bytes: %w", it.size, ErrTooLarge)}
	}
	buf = slices.Grow(buf, int(it.size))[:it.size]
	n, err := d.archives[it.arc-1].ReadAt(buf, it.off)
	if n == len(buf) {
		return buf, nil
	}
	if err == io.EOF {
		err = fmt.Errorf("archive ends %d bytes into the member's %d (changed since it was listed?): %w", n, it.size, io.ErrUnexpectedEOF)
	}
	return buf[:n], &PathError{Path: d.describe(it), Err: err}
}

// ErrTooLarge marks an item over maxItemBytes, refused unread: a property
// of the file, which reading it again cannot change.
var ErrTooLarge = errors.New("too large for an image")

// maxItemBytes bounds the bytes read for one image, in a tar or a folder:
// a 100-megapixel PNG (the decoders' limit) stores well under it, and a
// file of gigabytes named .JPEG must not be read whole by every worker.
const maxItemBytes = 1 << 30

// readFile appends a whole file to buf, which has length 0.
// The listing skipped what was not a regular file; one swapped in since (a
// pipe would block the open, a device read without end) is refused too.
func readFile(path string, buf []byte) ([]byte, error) {
	f, fi, err := regfile.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	if fi.Size() > maxItemBytes {
		return buf, fmt.Errorf("%d bytes: %w", fi.Size(), ErrTooLarge)
	} else if fi.Size() > 0 {
		// One byte beyond the size lets the read that sees EOF need no growth.
		buf = slices.Grow(buf, int(fi.Size())+1)
	}
	for {
		if len(buf) > maxItemBytes {
			return buf[:0], fmt.Errorf("more than %d bytes (grown while read?): too large for an image", maxItemBytes)
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// insideSplit says which split folder an output folder that does not
// exist yet would be made in (its nearest existing folder at or under
// the split's).
func (d *Dataset) insideSplit(out string) (string, bool) {
	if _, err := os.Lstat(out); err == nil {
		return "", false // there: the listing passes it, and says so
	}
	folder, _ := cli.NearestFolder(out)
	if folder == "" {
		return "", false
	}
	real, err := realPath(folder)
	if err != nil {
		return "", false
	}
	for _, name := range []string{"train", "val"} {
		dir, ok := d.splitDirs[name]
		if rel, err := filepath.Rel(dir, real); ok && err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return name, true
		}
	}
	return "", false
}
