package imagenet

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/fixtures"
)

// TestLayoutsAgree writes one fixture in every layout and label source and
// checks that each lists the same (Name, Label) pairs and classes, and
// reads back every image's bytes.
func TestLayoutsAgree(t *testing.T) {
	f := newFixture()
	for _, tc := range []struct {
		name      string
		layout    Layout
		write     func(t *testing.T, root string) string // returns the root to open
		valSource string                                 // file name the labels must come from
		noNames   bool
	}{
		{"tars ustar devkit", LayoutTars, func(t *testing.T, root string) string {
			f.writeTars(t, root, tar.FormatUSTAR)
			return root
		}, devkitTarGzName + ":" + devkitDirName + "/data/" + groundTruthName, false},
		{"tars pax csv", LayoutTars, func(t *testing.T, root string) string {
			writeFile(t, filepath.Join(root, trainTarName), f.trainTar(t, tar.FormatPAX))
			writeFile(t, filepath.Join(root, valTarName), f.valTar(t, tar.FormatPAX))
			writeFile(t, filepath.Join(root, valSolutionName), f.valSolutionCSV())
			writeFile(t, filepath.Join(root, synsetMappingName), f.synsetMapping())
			return root
		}, valSolutionName, false},
		{"tars gnu, root is the train tar", LayoutTars, func(t *testing.T, root string) string {
			writeFile(t, filepath.Join(root, trainTarName), f.trainTar(t, tar.FormatGNU))
			writeFile(t, filepath.Join(root, valTarName), f.valTar(t, tar.FormatGNU))
			f.writeDevkitDir(t, root)
			return filepath.Join(root, trainTarName)
		}, groundTruthName, false},
		{"tree flat val csv", LayoutTree, func(t *testing.T, root string) string {
			f.writeTree(t, root, false)
			writeFile(t, filepath.Join(root, valSolutionName), f.valSolutionCSV())
			return root
		}, valSolutionName, true},
		{"tree flat val devkit dir", LayoutTree, func(t *testing.T, root string) string {
			f.writeTree(t, root, false)
			f.writeDevkitDir(t, root)
			return root
		}, groundTruthName, false},
		{"tree val folders", LayoutTree, func(t *testing.T, root string) string {
			f.writeTree(t, root, true)
			writeFile(t, filepath.Join(root, synsetMappingName), f.synsetMapping())
			return root
		}, "folders", false},
		{"kaggle", LayoutKaggle, func(t *testing.T, root string) string {
			f.writeKaggle(t, root)
			return root
		}, valSolutionName, false},
		{"kaggle rooted at CLS-LOC", LayoutKaggle, func(t *testing.T, root string) string {
			f.writeKaggle(t, root)
			return filepath.Join(root, "ILSVRC", "Data", "CLS-LOC")
		}, valSolutionName, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := tc.write(t, t.TempDir())
			d, err := Open(root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if d.Layout != tc.layout {
				t.Errorf("layout %s, want %s", d.Layout, tc.layout)
			}
			wantClasses := f.classes()
			if tc.noNames {
				for i := range wantClasses {
					wantClasses[i].Name = ""
				}
				if !hasWarning(d, "names not found") {
					t.Errorf("no warning about missing names in %q", d.Warnings)
				}
			}
			if !reflect.DeepEqual(d.Classes, wantClasses) {
				t.Errorf("classes\n got %+v\nwant %+v", d.Classes, wantClasses)
			}
			if got, want := listing(d.Train), f.want(f.train); !reflect.DeepEqual(got, want) {
				t.Errorf("train\n got %v\nwant %v", got, want)
			}
			if got, want := listing(d.Val), f.want(f.val); !reflect.DeepEqual(got, want) {
				t.Errorf("val\n got %v\nwant %v", got, want)
			}
			if !strings.HasSuffix(d.ValLabelSource, tc.valSource) {
				t.Errorf("val labels from %q, want %q", d.ValLabelSource, tc.valSource)
			}
			if hasWarning(d, "without labels") {
				t.Errorf("unexpected warnings %q", d.Warnings)
			}
			checkContents(t, d, f.contents())
		})
	}
}

func hasWarning(d *Dataset, sub string) bool {
	for _, w := range d.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}

// checkContents reads every item, reusing one buffer, and compares bytes.
func checkContents(t *testing.T, d *Dataset, want map[string][]byte) {
	t.Helper()
	var buf []byte
	var err error
	for _, items := range [][]Item{d.Train, d.Val} {
		for i := range items {
			it := &items[i]
			buf, err = d.ReadItem(it, buf)
			if err != nil {
				t.Fatalf("%s: %v", it.Path, err)
			}
			if !bytes.Equal(buf, want[it.Name]) {
				t.Fatalf("%s: read %d bytes that differ from the %d written", it.Path, len(buf), len(want[it.Name]))
			}
			if it.Size() >= 0 && it.Size() != int64(len(buf)) {
				t.Errorf("%s: Size %d, read %d", it.Path, it.Size(), len(buf))
			}
		}
	}
}

func TestItemPaths(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeTars(t, root, tar.FormatUSTAR)
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, want := d.Train[0].Path, trainTarName+":n01000001.tar:n01000001_1.JPEG"; got != want {
		t.Errorf("train path %q, want %q", got, want)
	}
	if got, want := d.Val[0].Path, valTarName+":ILSVRC2012_val_00000001.JPEG"; got != want {
		t.Errorf("val path %q, want %q", got, want)
	}

	root = t.TempDir()
	f.writeTree(t, root, false)
	d, err = Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.Train[0].Path, filepath.Join("train", "n01000001", "n01000001_1.JPEG"); got != want {
		t.Errorf("tree path %q, want %q", got, want)
	}
	if d.Train[0].Size() != -1 {
		t.Errorf("a plain file's Size is %d, want -1", d.Train[0].Size())
	}
}

// TestDevkitIDOrder pins the classic bug: the ground truth holds
// ILSVRC2012_IDs in meta.mat order, and using them as sorted-WNID indices
// (or off by one) mislabels nearly every image.
func TestDevkitIDOrder(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, valTarName), f.valTar(t, tar.FormatUSTAR))
	writeFile(t, filepath.Join(root, devkitTarGzName), f.devkitTarGz(t))
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// Without a training split the classes come from meta.mat's leaves.
	if !reflect.DeepEqual(d.Classes, f.classes()) {
		t.Fatalf("classes %+v, want %+v", d.Classes, f.classes())
	}
	// Image 1 has ILSVRC2012_ID 1, which is n04000004: sorted index 3.
	if d.Val[0].Name != "ILSVRC2012_val_00000001.JPEG" || d.Val[0].Label != 3 {
		t.Errorf("first val image %s label %d, want ILSVRC2012_val_00000001.JPEG label 3", d.Val[0].Name, d.Val[0].Label)
	}
	if got, want := listing(d.Val), f.want(f.val); !reflect.DeepEqual(got, want) {
		t.Errorf("val\n got %v\nwant %v", got, want)
	}
	if len(d.Train) != 0 {
		t.Errorf("%d training items without a training tar", len(d.Train))
	}
}

func TestValLabelsOverride(t *testing.T) {
	f := newFixture()
	classes := f.classes()
	caffe := func(sep string, asWNID bool) []byte {
		var b bytes.Buffer
		for _, im := range f.val {
			label := im.wnid
			if !asWNID {
				label = strconv.Itoa(f.index(im.wnid))
			}
			b.WriteString(im.name + sep + label + "\n")
		}
		return b.Bytes()
	}
	// onlySecondLabelled is the listing when a label file names only the
	// second val image (label 0).
	onlySecondLabelled := func() []named {
		w := f.want(f.val)
		for i := range w {
			w[i].Label = -1
		}
		w[1].Label = 0
		return w
	}
	for _, tc := range []struct {
		name    string
		file    []byte
		folders bool // val in class folders, all labelled wrongly by the file
		devkit  bool
		want    func() []named
		warn    string
		errSub  string
	}{
		{name: "LOC csv", file: f.valSolutionCSV()},
		{name: "caffe val.txt", file: caffe(" ", false)},
		{name: "comma separated wnids", file: caffe(",", true)},
		{name: "tab separated", file: caffe("\t", false)},
		{name: "ground truth with devkit", file: f.groundTruth(), devkit: true},
		{name: "ground truth without devkit", file: f.groundTruth(), errSub: "need the devkit"},
		{name: "index out of range", file: []byte("ILSVRC2012_val_00000001.JPEG 5\n"), errSub: "class index 5, but there are 5 classes"},
		{name: "not a label file", file: []byte("hello world again\n"), errSub: "want \"<image> <wnid or class index>\""},
		{name: "partial", file: []byte("ILSVRC2012_val_00000002 0\n"), want: onlySecondLabelled, warn: "val: 9 images without labels (label -1; first: " + filepath.Join("val", "ILSVRC2012_val_00000001.JPEG") + ")"},
		// A row for an image that is not there: a partial extraction.
		{name: "rows for absent images", file: []byte("ILSVRC2012_val_00000002 0\nILSVRC2012_val_00000099 1\n"), want: onlySecondLabelled, warn: "labels 1 image that is not in the val split (first: ILSVRC2012_val_00000099)"},
		// A file the user named that labels none of the images is an
		// error, not a split left unlabelled with a warning.
		{name: "another dataset's file", file: []byte("other_image_1.JPEG 0\nother_image_2.JPEG 1\n"), errSub: "names none of the 10 val images"},
		{name: "overrides folders", folders: true, file: []byte("ILSVRC2012_val_00000001 n01000001\n"), want: func() []named {
			w := f.want(f.val)
			w[0].Label = 0
			return w
		}, warn: "disagrees with the folders for 1 image (first: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			f.writeTree(t, root, tc.folders)
			// A wrong CSV beside the data must lose to the override.
			writeFile(t, filepath.Join(root, valSolutionName), []byte("ImageId,PredictionString\nILSVRC2012_val_00000001,n05000005 1 1 2 2\n"))
			if tc.devkit {
				f.writeDevkitDir(t, root)
			}
			labels := filepath.Join(t.TempDir(), "labels.txt")
			writeFile(t, labels, tc.file)
			d, err := Open(root, Options{ValLabels: labels})
			if tc.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSub) || !strings.Contains(err.Error(), labels) {
					t.Fatalf("err = %v, want one naming %s and containing %q", err, labels, tc.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := f.want(f.val)
			if tc.want != nil {
				want = tc.want()
			}
			if got := listing(d.Val); !reflect.DeepEqual(got, want) {
				t.Errorf("val\n got %v\nwant %v", got, want)
			}
			if tc.warn != "" && !hasWarning(d, tc.warn) {
				t.Errorf("warnings %q, want one containing %q", d.Warnings, tc.warn)
			}
			if d.ValLabelSource != labels {
				t.Errorf("ValLabelSource %q, want %q", d.ValLabelSource, labels)
			}
			if !reflect.DeepEqual(d.Classes[0].WNID, classes[0].WNID) {
				t.Errorf("classes changed: %+v", d.Classes)
			}
		})
	}
}

func TestUnlabelledVal(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeTree(t, root, false)
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range d.Val {
		if it.Label != -1 {
			t.Fatalf("%s has label %d without a label source", it.Name, it.Label)
		}
	}
	if !hasWarning(d, "val: 10 images without labels (label -1; first: "+filepath.Join("val", "ILSVRC2012_val_00000001.JPEG")+")") || !hasWarning(d, "--val-labels") {
		t.Errorf("warnings %q", d.Warnings)
	}
	if d.ValLabelSource != "" {
		t.Errorf("ValLabelSource %q, want empty", d.ValLabelSource)
	}
}

// TestSubsetLabels: a training subset with full-size label files keeps the
// subset's classes and marks the other validation images -1.
func TestSubsetLabels(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeKaggle(t, root)
	if err := os.RemoveAll(filepath.Join(root, "ILSVRC", "Data", "CLS-LOC", "train", "n05000005")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Classes) != 4 {
		t.Fatalf("%d classes, want 4", len(d.Classes))
	}
	n := 0
	for _, it := range d.Val {
		if it.Label == -1 {
			n++
		}
	}
	if n != 2 || !hasWarning(d, "LOC_val_solution.csv labels 2 images with classes outside this dataset's 4 (first: ILSVRC2012_val_00000004.JPEG as n05000005); they get label -1") {
		t.Errorf("%d unlabelled, warnings %q", n, d.Warnings)
	}
}

// A val folder of a class the train split lacks is named in the warning
// that its images are unlabelled.
func TestValFolderOfUnknownClass(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeTree(t, root, true)
	writeFile(t, filepath.Join(root, "val", "n09999999", "x.JPEG"), []byte{0xFF, 0xD8, 1})
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !hasWarning(d, "val: 1 image in the folder of a class with no training images (label -1): n09999999") ||
		hasWarning(d, "devkit ground truth") {
		t.Errorf("warnings %q", d.Warnings)
	}
}

func TestSkippedFiles(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeTree(t, root, false)
	writeFile(t, filepath.Join(root, "train", "n01000001", "README.txt"), []byte("x"))
	writeFile(t, filepath.Join(root, "train", "stray.JPEG"), []byte("x"))
	writeFile(t, filepath.Join(root, "train", "n01000001", ".hidden.JPEG"), []byte("x"))
	// Named as the other formats the decoder reads (ImageFolder's names):
	// listed, whatever the case.
	others := []string{"a.webp", "b.BMP", "c.jfif", "d.gif", "e.TIFF", "f.tif"}
	for _, n := range others {
		writeFile(t, filepath.Join(root, "train", "n01000001", n), []byte("x"))
	}
	elsewhere := t.TempDir()
	writeFile(t, filepath.Join(elsewhere, "n06000006_1.jpeg"), []byte("linked"))
	if err := os.Symlink(elsewhere, filepath.Join(root, "train", "n06000006")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(d, "train: left out 1 entry not named as an image (.JPEG, .jpg, .jpeg, .jfif, .png, .gif, .bmp, .webp, .tif, .tiff): "+filepath.Join("train", "n01000001", "README.txt")) || !hasWarning(d, "train: left out 1 entry outside class folders or archives: "+filepath.Join("train", "stray.JPEG")) {
		t.Errorf("warnings %q", d.Warnings)
	}
	// Both are left out, and both listed whole for the report.
	if !slices.Equal(d.LeftOut, []string{filepath.Join("train", "n01000001", "README.txt"), filepath.Join("train", "stray.JPEG")}) {
		t.Errorf("left out %q", d.LeftOut)
	}
	for _, n := range others {
		if !slices.ContainsFunc(d.Train, func(it Item) bool { return it.Name == n && it.Label == 0 }) {
			t.Errorf("%s is not listed in class 0", n)
		}
	}
	// The symlinked folder is a class like the others.
	last := d.Train[len(d.Train)-1]
	if len(d.Classes) != 6 || d.Classes[5].WNID != "n06000006" || last.Name != "n06000006_1.jpeg" || last.Label != 5 {
		t.Errorf("symlinked class: classes %+v, last item %+v", d.Classes, last)
	}
}

// A class folder that is a link back up the tree (to a split folder or
// above it) or into the other split is not a class: listed, it would give
// every image again under one label, and val's images to train. The
// listing is the one without it, and a warning names it.
func TestClassLinkBack(t *testing.T) {
	f := newFixture()
	plain := t.TempDir()
	f.writeTree(t, plain, false)
	want, err := Open(plain, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	for _, tc := range []struct {
		name, link, target, warning string
	}{
		{"parent", "train/n09999999", "..", "a link to " + "ROOT" + ", which holds the train folder"},
		{"grandparent", "train/n09999999", "../..", "a link to ROOT/.., which holds the train folder"},
		{"the root by its absolute path", "train/n09999999", "ROOT", "a link to ROOT, which holds the train folder"},
		{"itself", "train/n09999999", ".", "a link to ROOT/train, which holds the train folder"},
		{"root of the file system", "train/n09999999", "/", "a link to /, which holds the train folder"},
		{"the val folder", "train/n09999999", "../val", "a link into the val folder (ROOT/val)"},
		{"a train class from val", "val/n01000001", "../train/n01000001", "a link into the train folder (ROOT/train/n01000001)"},
	} {
		// Opened by its absolute path, and by a relative one from the
		// folder above it (ingest .. or ingest ./data).
		for _, relative := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s relative=%v", tc.name, relative), func(t *testing.T) {
				root := t.TempDir()
				real, _ := filepath.EvalSymlinks(root)
				f.writeTree(t, root, false)
				if err := os.Symlink(strings.ReplaceAll(tc.target, "ROOT", root), filepath.Join(root, tc.link)); err != nil {
					t.Fatal(err)
				}
				open := root
				if relative {
					t.Chdir(filepath.Dir(root))
					open = filepath.Base(root)
				}
				d, err := Open(open, Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer d.Close()
				w := strings.ReplaceAll(tc.warning, "ROOT/..", filepath.Dir(real))
				w = strings.ReplaceAll(w, "ROOT", real)
				split := strings.Split(tc.link, "/")[0]
				if !hasWarning(d, split+": skipped "+tc.link+": "+w) {
					t.Errorf("no warning %q in %q", w, d.Warnings)
				}
				if len(d.Classes) != len(want.Classes) || len(d.Train) != len(want.Train) || len(d.Val) != len(want.Val) {
					t.Errorf("%d classes, %d train and %d val images; without the link %d, %d, %d",
						len(d.Classes), len(d.Train), len(d.Val), len(want.Classes), len(want.Train), len(want.Val))
				}
			})
		}
	}
}

// An entry named as an image that is not a readable file is skipped with
// its path and reason, and the rest lists as before; only an unreadable
// entry that may be a class folder stops Open.
func TestUnusableEntries(t *testing.T) {
	link := func(target, name string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	mkdir := func(name string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name    string
		setup   func(t *testing.T, root string)
		skip    *Skipped // Reason is a substring
		openErr string
		warning string
		classes int
		train   int // images added to the fixture's
	}{
		{name: "dangling link in a class folder", setup: link("/nonexistent/foo.JPEG", "train/n01000001/gone.JPEG"),
			skip: &Skipped{"train", "train/n01000001/gone.JPEG", "gone.JPEG", "dangling symbolic link to /nonexistent/foo.JPEG"}},
		{name: "link loop in a class folder", setup: link("loop.JPEG", "train/n01000001/loop.JPEG"),
			skip: &Skipped{"train", "train/n01000001/loop.JPEG", "loop.JPEG", "too many levels of symbolic links"}},
		{name: "directory named as an image", setup: mkdir("train/n01000001/x.JPEG"),
			skip: &Skipped{"train", "train/n01000001/x.JPEG", "x.JPEG", "a directory, not a file"}},
		{name: "dangling link in flat val", setup: link("/nonexistent/v.JPEG", "val/ILSVRC2012_val_09999999.JPEG"),
			skip: &Skipped{"val", "val/ILSVRC2012_val_09999999.JPEG", "ILSVRC2012_val_09999999.JPEG", "dangling symbolic link"}},
		{name: "dangling link without an image name", setup: link("/nonexistent/notes", "train/n01000001/notes"),
			warning: "train: left out 1 entry not named as an image (.JPEG, .jpg, .jpeg, .jfif, .png, .gif, .bmp, .webp, .tif, .tiff): train/n01000001/notes"},
		{name: "dangling link that may be a class folder", setup: link("/nonexistent/n09000009", "train/n09000009"),
			openErr: "train/n09000009: dangling symbolic link to /nonexistent/n09000009, so whether it is a class folder cannot be told"},
		{name: "empty class folder", setup: mkdir("train/n09000009"), classes: 1,
			warning: "train: 1 class folder with no images, kept as a class without records so that no class index shifts: train/n09000009"},
		{name: "empty class folders", setup: func(t *testing.T, root string) {
			for i := 1; i <= 7; i++ {
				mkdir(fmt.Sprintf("train/n0900000%d", i))(t, root)
			}
		}, classes: 7, warning: "train: 7 class folders with no images, kept as classes without records so that no class index shifts: " +
			"train/n09000001, train/n09000002, train/n09000003, train/n09000004, train/n09000005 and 2 more"},
		// A zip made on a Mac: __MACOSX would sort first and shift every
		// label by one.
		{name: "macOS metadata folder", setup: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "train", "__MACOSX", "n01000001", "._x.JPEG"), []byte("x"))
			writeFile(t, filepath.Join(root, "train", "__MACOSX", "._y.JPEG"), []byte("x"))
		}, warning: "train: skipped train/__MACOSX: macOS's archive metadata folder, not a class"},
		{name: "lost+found", setup: mkdir("train/lost+found"), warning: "train: skipped train/lost+found: a file system's lost+found, not a class"},
		// One holding images is a class: leaving it out would shift labels.
		{name: "system folder holding an image", setup: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "train", "$RECYCLE.BIN", "a.JPEG"), []byte("x"))
		}, classes: 1, train: 1},
		// A class list that does not know an empty folder says it is none.
		{name: "empty folder the class list lacks", setup: func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, synsetMappingName), newFixture().synsetMapping())
			mkdir("train/n09000009")(t, root)
		}, warning: "with no images and not in "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			root := t.TempDir()
			f.writeTree(t, root, false)
			tc.setup(t, root)
			d, err := Open(root, Options{})
			if tc.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.openErr) {
					t.Fatalf("Open: err = %v, want one containing %q", err, tc.openErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if len(d.Train) != len(f.train)+tc.train || len(d.Val) != len(f.val) || len(d.Classes) != len(f.classes())+tc.classes {
				t.Errorf("%d train, %d val, %d classes; want %d, %d, %d", len(d.Train), len(d.Val), len(d.Classes), len(f.train)+tc.train, len(f.val), len(f.classes())+tc.classes)
			}
			var want []Skipped
			if tc.skip != nil {
				want = []Skipped{*tc.skip}
			}
			if len(d.Skipped) != len(want) {
				t.Fatalf("skipped %+v, want %+v", d.Skipped, want)
			}
			for i, w := range want {
				g := d.Skipped[i]
				if g.Split != w.Split || g.Path != w.Path || g.Name != w.Name || !strings.Contains(g.Reason, w.Reason) {
					t.Errorf("skipped %+v, want %+v", g, w)
				}
			}
			if tc.warning != "" && !hasWarning(d, tc.warning) {
				t.Errorf("warnings %q lack %q", d.Warnings, tc.warning)
			}
			if tc.classes == 0 && hasWarning(d, "kept as a class") {
				t.Errorf("warnings %q keep a class", d.Warnings)
			}
		})
	}

	// The same warning for a class archive with no images in it.
	f := newFixture()
	root := t.TempDir()
	im := f.train[0]
	writeFile(t, filepath.Join(root, trainTarName), tarBytes(t, tar.FormatPAX, []tarFile{
		{name: im.wnid + ".tar", data: tarBytes(t, tar.FormatPAX, []tarFile{{name: im.name, data: im.data}})},
		{name: "n09000009.tar", data: tarBytes(t, tar.FormatPAX, []tarFile{{name: "README.txt", data: []byte("x")}})},
	}))
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if len(d.Classes) != 2 || !hasWarning(d, "train: 1 class archive with no images, kept as a class without records so that no class index shifts: "+trainTarName+":n09000009.tar") {
		t.Errorf("classes %+v, warnings %q", d.Classes, d.Warnings)
	}
}

// Names that repeat across class folders (cat/000.jpg, dog/000.jpg, as
// ImageFolder-style datasets have them) make every labelled record of
// that split class/file, with a warning; a name that repeats within one
// class (an archive holding a member twice) is still an error.
func TestDuplicateNames(t *testing.T) {
	f := newFixture()
	if f.val[0].wnid == "n01000001" {
		t.Fatal("fixture changed: val[0] must not be in n01000001")
	}
	jpeg := []byte{0xFF, 0xD8, 1, 2}
	t.Run("val across class folders", func(t *testing.T) {
		root := t.TempDir()
		f.writeTree(t, root, true)
		writeFile(t, filepath.Join(root, "val", "n01000001", f.val[0].name), []byte("again"))
		d, err := Open(root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		want := map[string]bool{"n01000001/" + f.val[0].name: true, f.val[0].wnid + "/" + f.val[0].name: true}
		for _, it := range d.Val {
			delete(want, it.Name)
		}
		if len(want) != 0 || !hasWarning(d, "val: file names repeat across class folders ("+f.val[0].name) {
			t.Errorf("names %v not found, warnings %q", want, d.Warnings)
		}
		for _, it := range d.Train { // train's names did not repeat: left as they were
			if strings.Contains(it.Name, "/") {
				t.Fatalf("train record named %s", it.Name)
			}
		}
	})
	t.Run("train across class folders", func(t *testing.T) {
		root := t.TempDir()
		for _, c := range []string{"cat", "dog", "hot dog"} {
			for _, n := range []string{"000.jpg", "001.jpg"} {
				writeFile(t, filepath.Join(root, "train", c, n), jpeg)
			}
		}
		writeFile(t, filepath.Join(root, "train", "dog", "002.jpg"), jpeg)
		d, err := Open(root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var names []string
		for _, it := range d.Train {
			if got := d.Classes[it.Label].WNID + "/" + filepath.Base(it.Path); got != it.Name {
				t.Errorf("%s named %s, want %s", it.Path, it.Name, got)
			}
			names = append(names, it.Name)
		}
		if !slices.IsSorted(names) || len(names) != 7 {
			t.Errorf("names %q", names)
		}
	})
	// Folders that are no training class give no label; their images,
	// when names repeat, are named folder/file as well.
	t.Run("val in folders that are no class", func(t *testing.T) {
		root := t.TempDir()
		for _, c := range []string{"cat", "dog"} {
			writeFile(t, filepath.Join(root, "train", c, "000.jpg"), jpeg)
			writeFile(t, filepath.Join(root, "val", c, "000.jpg"), jpeg)
		}
		writeFile(t, filepath.Join(root, "val", "zebra", "001.jpg"), jpeg)
		writeFile(t, filepath.Join(root, "val", "horse", "001.jpg"), jpeg)
		// One directly in val/ keeps its name; a folder named val below
		// it is a folder like the others.
		writeFile(t, filepath.Join(root, "val", "002.jpg"), jpeg)
		writeFile(t, filepath.Join(root, "val", "val", "002.jpg"), jpeg)
		d, err := Open(root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var got []string
		for _, it := range d.Val {
			got = append(got, fmt.Sprintf("%s %d", it.Name, it.Label))
		}
		if want := []string{"002.jpg -1", "cat/000.jpg 0", "dog/000.jpg 1", "horse/001.jpg -1", "val/002.jpg -1", "zebra/001.jpg -1"}; !slices.Equal(got, want) {
			t.Errorf("val records %q, want %q", got, want)
		}
	})
	t.Run("within a class", func(t *testing.T) {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, trainTarName), tarBytes(t, tar.FormatPAX, []tarFile{
			{name: "n01000001.tar", data: tarBytes(t, tar.FormatPAX, []tarFile{{name: "a.JPEG", data: jpeg}, {name: "a.JPEG", data: jpeg}})},
			{name: "n01000002.tar", data: tarBytes(t, tar.FormatPAX, []tarFile{{name: "a.JPEG", data: jpeg}})},
		}))
		_, err := Open(root, Options{})
		if err == nil || !strings.Contains(err.Error(), "n01000001.tar: two members named a.JPEG") {
			t.Fatalf("err = %v, want a duplicate-name error", err)
		}
	})
}

func TestSymlinkedTree(t *testing.T) {
	f := newFixture()
	real := t.TempDir()
	f.writeTree(t, real, false)
	root := t.TempDir()
	if err := os.Symlink(filepath.Join(real, "train"), filepath.Join(root, "train")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "val"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, im := range f.val {
		if err := os.Symlink(filepath.Join(real, "val", im.name), filepath.Join(root, "val", im.name)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Train) != len(f.train) || len(d.Val) != len(f.val) {
		t.Fatalf("%d train, %d val; want %d, %d", len(d.Train), len(d.Val), len(f.train), len(f.val))
	}
	checkContents(t, d, f.contents())
}

func TestDetect(t *testing.T) {
	f := newFixture()
	empty := t.TempDir()
	_, err := Open(empty, Options{})
	for _, want := range []string{"no ImageNet dataset found", "tars:", "tree:", "kaggle:", trainTarName, kaggleDataDir} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want one containing %q", err, want)
		}
	}
	if _, err := Open(filepath.Join(empty, "missing"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing root: err = %v", err)
	}
	// What is there instead is named: another layout than the one asked
	// for, or a split's folder given for the dataset's.
	tree := t.TempDir()
	f.writeTree(t, tree, false)
	if _, err := Open(tree, Options{Layout: LayoutKaggle}); err == nil || !strings.Contains(err.Error(), "no kaggle layout found") ||
		!strings.Contains(err.Error(), tree+" holds the tree layout: leave out --layout, or give --layout tree") {
		t.Errorf("--layout kaggle over a tree: %v", err)
	}
	if _, err := Open(filepath.Join(tree, "train"), Options{}); err == nil ||
		!strings.Contains(err.Error(), "looks like a dataset's train/ folder: give the folder that holds it, "+tree) {
		t.Errorf("the train/ folder for the dataset: %v", err)
	}

	both := t.TempDir()
	f.writeTree(t, both, true)
	f.writeTars(t, both, tar.FormatUSTAR)
	d, err := Open(both, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Layout != LayoutTree || !hasWarning(d, "also holds a tars layout") {
		t.Errorf("layout %s, warnings %q", d.Layout, d.Warnings)
	}
	d, err = Open(both, Options{Layout: LayoutTars})
	if err != nil {
		t.Fatal(err)
	}
	if d.Layout != LayoutTars || len(d.Train) != len(f.train) {
		t.Errorf("forced tars: layout %s, %d train", d.Layout, len(d.Train))
	}
	d.Close()
	if _, err := Open(both, Options{Layout: LayoutKaggle}); err == nil || !strings.Contains(err.Error(), "no kaggle layout") {
		t.Errorf("forced kaggle: err = %v", err)
	}
	if _, err := Open(both, Options{Layout: "zip"}); err == nil || !strings.Contains(err.Error(), "unknown layout") {
		t.Errorf("unknown layout: err = %v", err)
	}

	// train/ extracted and the val tar beside it not: val comes from the
	// tar, with the labels the devkit beside it gives, and a warning;
	// --layout tree reads the folders alone.
	halfway := t.TempDir()
	f.writeTree(t, halfway, false)
	f.writeTars(t, halfway, tar.FormatUSTAR)
	if err := os.RemoveAll(filepath.Join(halfway, "val")); err != nil {
		t.Fatal(err)
	}
	d, err = Open(halfway, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(d.Val); d.Layout != LayoutTree || len(d.Train) != len(f.train) || !reflect.DeepEqual(got, f.want(f.val)) ||
		!hasWarning(d, "val: no val/ folder; reading "+valTarName+" beside it instead") {
		t.Errorf("train/ beside the val tar: layout %s, %d train, val %v (want %v), warnings %q", d.Layout, len(d.Train), got, f.want(f.val), d.Warnings)
	}
	d.Close()
	d, err = Open(halfway, Options{Layout: LayoutTree})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Val) != 0 {
		t.Errorf("--layout tree read %d val images from the tar", len(d.Val))
	}
	d.Close()

	// A tree with fewer classes than the training tar beside it, as a
	// stopped extraction leaves, is refused unless a layout is chosen.
	entries, err := os.ReadDir(filepath.Join(both, "train"))
	if err != nil {
		t.Fatal(err)
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() {
			classes = append(classes, e.Name())
		}
	}
	n := len(classes)
	if n < 2 {
		t.Fatalf("train/ holds %d class folders", n)
	}
	if err := os.RemoveAll(filepath.Join(both, "train", classes[n-1])); err != nil {
		t.Fatal(err)
	}
	_, err = Open(both, Options{})
	if want := fmt.Sprintf("has %d class folders in train, and %s beside it %d class archives: is the extraction finished?", n-1, trainTarName, n); err == nil ||
		!errors.Is(err, ErrOtherLayout) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--layout tree reads the") {
		t.Errorf("a half-extracted tree beside the tars: err = %v, want ErrOtherLayout saying %q", err, want)
	}
	for _, l := range []Layout{LayoutTree, LayoutTars} {
		d, err := Open(both, Options{Layout: l})
		if err != nil {
			t.Fatalf("--layout %s over a half-extracted tree: %v", l, err)
		}
		if want := map[Layout]int{LayoutTree: n - 1, LayoutTars: n}[l]; len(d.Classes) != want {
			t.Errorf("--layout %s: %d classes, want %d", l, len(d.Classes), want)
		}
		d.Close()
	}
	// Val extracted, train not yet: an empty train/, or none at all.
	for _, empty := range []bool{true, false} {
		if err := os.RemoveAll(filepath.Join(both, "train")); err != nil {
			t.Fatal(err)
		}
		say := "has no train/ folder"
		if empty {
			if err := os.Mkdir(filepath.Join(both, "train"), 0o755); err != nil {
				t.Fatal(err)
			}
			say = "has 0 class folders in train"
		}
		if _, err := Open(both, Options{}); err == nil || !errors.Is(err, ErrOtherLayout) || !strings.Contains(err.Error(), say) {
			t.Errorf("val beside the tars, train/ empty %v: err = %v, want ErrOtherLayout saying %q", empty, err, say)
		}
	}

	noImages := t.TempDir()
	writeFile(t, filepath.Join(noImages, "train", "n01000001", "notes.txt"), []byte("x"))
	if _, err := Open(noImages, Options{}); err == nil || !strings.Contains(err.Error(), "no images") {
		t.Errorf("no images: err = %v", err)
	}

	noClasses := t.TempDir()
	writeFile(t, filepath.Join(noClasses, "val", f.val[0].name), []byte("x"))
	if _, err := Open(noClasses, Options{}); err == nil || !strings.Contains(err.Error(), "no class list") {
		t.Errorf("no classes: err = %v", err)
	}
}

// TestCorruptInputs checks that each broken file fails Open with an error
// naming it, down to the member inside an archive.
func TestCorruptInputs(t *testing.T) {
	f := newFixture()
	train := f.trainTar(t, tar.FormatUSTAR)
	// A class tar that is not a tar. (One with a damaged header goes on
	// past it: TestTarEntries.)
	badInner := tarBytes(t, tar.FormatUSTAR, []tarFile{{name: "n02000002.tar", data: bytes.Repeat([]byte("x"), 1024)}})
	// Garble meta.mat inside the devkit.
	badMeta := func() []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		writeTar(t, zw, tar.FormatUSTAR, []tarFile{{name: devkitDirName + "/data/meta.mat", data: []byte("not a mat file")}})
		zw.Close()
		return b.Bytes()
	}()
	// A devkit whose ground truth is empty: taken for "no ground truth",
	// the warning would say there is none beside the dataset.
	emptyTruth := func() []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		writeTar(t, zw, tar.FormatUSTAR, []tarFile{
			{name: devkitDirName + "/data/meta.mat", data: f.metaMat()},
			{name: devkitDirName + "/data/" + groundTruthName, data: []byte("\r\n\n")},
		})
		zw.Close()
		return b.Bytes()
	}()
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string // the path the error must name
	}{
		{"empty ground truth", map[string][]byte{trainTarName: train, valTarName: f.valTar(t, tar.FormatUSTAR), filepath.Join(devkitDirName, "data", "meta.mat"): f.metaMat(), filepath.Join(devkitDirName, "data", groundTruthName): nil}, filepath.Join(devkitDirName, "data", groundTruthName) + ": empty"},
		{"empty ground truth in the tar.gz", map[string][]byte{trainTarName: train, valTarName: f.valTar(t, tar.FormatUSTAR), devkitTarGzName: emptyTruth}, devkitTarGzName + ":" + devkitDirName + "/data/" + groundTruthName + ": empty"},
		{"truncated train tar", map[string][]byte{trainTarName: train[:len(train)-2000]}, trainTarName},
		{"bad inner tar", map[string][]byte{trainTarName: badInner}, trainTarName + ":n02000002.tar"},
		{"bad val tar", map[string][]byte{valTarName: []byte(strings.Repeat("x", 1024))}, valTarName},
		{"bad meta.mat", map[string][]byte{valTarName: f.valTar(t, tar.FormatUSTAR), devkitTarGzName: badMeta}, devkitTarGzName + ":" + devkitDirName + "/data/meta.mat"},
		{"not gzip", map[string][]byte{valTarName: f.valTar(t, tar.FormatUSTAR), devkitTarGzName: []byte("plain")}, devkitTarGzName},
		{"bad csv", map[string][]byte{valTarName: f.valTar(t, tar.FormatUSTAR), synsetMappingName: f.synsetMapping(), valSolutionName: []byte("ImageId,PredictionString\nILSVRC2012_val_00000001,1 2 3 4\n")}, valSolutionName},
		{"bad mapping", map[string][]byte{valTarName: f.valTar(t, tar.FormatUSTAR), synsetMappingName: []byte("tench\n")}, synsetMappingName},
		{"bad ground truth", map[string][]byte{trainTarName: train, valTarName: f.valTar(t, tar.FormatUSTAR), filepath.Join(devkitDirName, "data", "meta.mat"): f.metaMat(), filepath.Join(devkitDirName, "data", groundTruthName): []byte("1\nx\n")}, filepath.Join(devkitDirName, "data", groundTruthName)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, b := range tc.files {
				writeFile(t, filepath.Join(root, name), b)
			}
			_, err := Open(root, Options{})
			if err == nil || !strings.Contains(err.Error(), filepath.Join(root, tc.want)) {
				t.Fatalf("err = %v, want one naming %s", err, filepath.Join(root, tc.want))
			}
			t.Log(err)
		})
	}
	// A ground truth that is a named pipe is refused, naming it, where it
	// was taken for missing (every val image unlabelled, exit 0).
	t.Run("ground truth a named pipe", func(t *testing.T) {
		root := t.TempDir()
		for name, b := range map[string][]byte{trainTarName: train, valTarName: f.valTar(t, tar.FormatUSTAR), filepath.Join(devkitDirName, "data", "meta.mat"): f.metaMat()} {
			writeFile(t, filepath.Join(root, name), b)
		}
		p := filepath.Join(root, devkitDirName, "data", groundTruthName)
		if err := fixtures.Mkfifo(p); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		_, err := Open(root, Options{})
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "a named pipe") {
			t.Fatalf("err = %v, want one naming %s as a named pipe", err, p)
		}
	})
}

func TestReadItemErrors(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeTars(t, root, tar.FormatUSTAR)
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadItem(&Item{Name: "x"}, nil); err == nil {
		t.Error("reading a zero Item succeeded")
	}
	// An archive cut short after listing: the error names the member.
	it := d.Train[len(d.Train)-1]
	if err := os.Truncate(filepath.Join(root, trainTarName), it.off+1); err != nil {
		t.Fatal(err)
	}
	_, err = d.ReadItem(&it, nil)
	if it.size > 1 && (err == nil || !strings.Contains(err.Error(), filepath.Join(root, it.Path))) {
		t.Errorf("truncated archive: err = %v, want one naming %s", err, it.Path)
	}
	d.Close()
	if _, err := d.ReadItem(&d.Val[0], nil); err == nil || !strings.Contains(err.Error(), "not open") {
		t.Errorf("after Close: err = %v", err)
	}

	root = t.TempDir()
	f.writeTree(t, root, false)
	d, err = Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, d.Train[0].Path))
	if _, err := d.ReadItem(&d.Train[0], nil); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), d.Train[0].Path) {
		t.Errorf("removed file: err = %v", err)
	}
}

// TestConcurrentReadItem reads all items in shuffled order from many
// goroutines, each reusing its buffer, as ingest does.
func TestConcurrentReadItem(t *testing.T) {
	f := newFixture()
	want := f.contents()
	for _, layout := range []string{"tars", "tree"} {
		t.Run(layout, func(t *testing.T) {
			root := t.TempDir()
			if layout == "tars" {
				f.writeTars(t, root, tar.FormatPAX)
			} else {
				f.writeTree(t, root, true)
			}
			d, err := Open(root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var items []*Item
			for range 20 {
				for i := range d.Train {
					items = append(items, &d.Train[i])
				}
				for i := range d.Val {
					items = append(items, &d.Val[i])
				}
			}
			rand.New(rand.NewPCG(3, 4)).Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for w := range 8 {
				wg.Go(func() {
					var buf []byte
					for i := w; i < len(items); i += 8 {
						var err error
						buf, err = d.ReadItem(items[i], buf)
						if err != nil {
							errs <- err
							return
						}
						if !bytes.Equal(buf, want[items[i].Name]) {
							errs <- errors.New(items[i].Path + ": wrong bytes")
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestProgress(t *testing.T) {
	f := newFixture()
	for _, tc := range []struct {
		name  string
		write func(root string)
		want  []string // what, in the order first reported
	}{
		{"tars", func(root string) { f.writeTars(t, root, tar.FormatUSTAR) }, []string{trainTarName, valTarName}},
		{"tree", func(root string) { f.writeTree(t, root, true) }, []string{"train", "val"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.write(root)
			var order []string
			last := map[string][2]int64{}
			d, err := Open(root, Options{Progress: func(what string, done, total int64) {
				if _, ok := last[what]; !ok {
					order = append(order, what)
				}
				if prev := last[what]; done < prev[0] || done > total {
					t.Errorf("%s: progress %d/%d after %d", what, done, total, prev[0])
				}
				last[what] = [2]int64{done, total}
			}})
			if err != nil {
				t.Fatal(err)
			}
			d.Close()
			if !reflect.DeepEqual(order, tc.want) {
				t.Errorf("progress reported for %v, want %v", order, tc.want)
			}
			for what, p := range last {
				if p[0] != p[1] {
					t.Errorf("%s: progress ended at %d of %d", what, p[0], p[1])
				}
			}
		})
	}
}

func TestLayoutsHelp(t *testing.T) {
	s := Layouts()
	for _, want := range []string{"tars", "tree", "kaggle", trainTarName, valTarName, devkitTarGzName, valSolutionName, synsetMappingName, "--val-labels", "0-based"} {
		if !strings.Contains(s, want) {
			t.Errorf("Layouts() does not mention %q", want)
		}
	}
}

// TestNASMetadataAndUnknownFolders: a NAS's metadata folders (@eaDir) in
// the train tree are not classes, and class folders the synset mapping
// does not know are kept but named in a warning.
func TestNASMetadataAndUnknownFolders(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeKaggle(t, root)
	train := filepath.Join(root, "ILSVRC", "Data", "CLS-LOC", "train")
	ents, err := os.ReadDir(filepath.Join(train, "n05000005"))
	if err != nil || len(ents) == 0 {
		t.Fatal(ents, err)
	}
	img, err := os.ReadFile(filepath.Join(train, "n05000005", ents[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"@eaDir/n05000005_0.JPEG", "n09999999/n09999999_0.JPEG"} {
		os.MkdirAll(filepath.Join(train, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(train, p), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wnids []string
	for _, c := range d.Classes {
		wnids = append(wnids, c.WNID)
	}
	if slices.Contains(wnids, "@eaDir") || !slices.Contains(wnids, "n09999999") || wnids[0] == "@eaDir" {
		t.Errorf("classes %v", wnids)
	}
	if !hasWarning(d, "train: 1 class folder not in") || !hasWarning(d, "n09999999") {
		t.Errorf("warnings %q", d.Warnings)
	}
}

// An empty LOC_synset_mapping.txt is an error naming it, not "not found".
func TestEmptySynsetMapping(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeKaggle(t, root)
	writeFile(t, filepath.Join(root, synsetMappingName), nil)
	_, err := Open(root, Options{})
	if err == nil || !strings.Contains(err.Error(), synsetMappingName) || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("err = %v", err)
	}
}

// A class folder whose name is not UTF-8 cannot be written into meta.json
// as it is: encoding/json would put U+FFFD for its bytes, and two such
// folders would become two classes of one WNID. Open must stop, naming it
// with its bytes escaped.
func TestNonUTF8ClassNames(t *testing.T) {
	for _, tc := range []struct {
		name    string
		folders []string // extra class folders under train/ (or val/ when val is set)
		val     bool
		says    string
	}{
		{"one train folder", []string{"n01\xff629819"}, false, `train class "n01\xff629819"`},
		{"two that differ only in invalid bytes", []string{"n01\xfea", "n01\xffa"}, false, `"n01\xfea"`},
		{"val folder", []string{"n01\xff000001"}, true, `val class "n01\xff000001"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture()
			root := t.TempDir()
			f.writeTree(t, root, true)
			split := "train"
			if tc.val {
				split = "val"
			}
			for i, dir := range tc.folders {
				writeFile(t, filepath.Join(root, split, dir, fmt.Sprintf("odd_%d.JPEG", i)), []byte("bytes"))
			}
			_, err := Open(root, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "UTF-8") {
				t.Fatalf("err = %v, want an error naming %s", err, tc.says)
			}
		})
	}
}

// An --out put inside train/ (or val/) holds meta.json and shards after the
// first run: the next listing must not make it a class, which would shift
// every label after it, nor list its files.
func TestIngestOutputInsideTreeIsNotAClass(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeTree(t, root, true)
	want, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		data       []byte
		exclude    bool // the folder is this run's --out
		why        string
	}{
		{"meta.json", "meta.json", []byte("{\n  \"format_version\": 1,\n  \"checksum\": \"00000000\"\n}\n"), false, "it holds an earlier ingest's output (meta.json)"},
		{"state folder", ".ingest-state/train-00000.json", []byte("{}"), false, "it holds an earlier ingest's output (.ingest-state/)"},
		// Locked before the listing, this run's --out holds only .lock.
		{"this run's --out", ".lock", []byte("1 ingest\n"), true, "it is this run's --out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var exclude []string
			for _, sp := range []string{"train", "val"} {
				out := filepath.Join(root, sp, "aaa-shards") // sorts before every WNID
				writeFile(t, filepath.Join(out, tc.file), tc.data)
				writeFile(t, filepath.Join(out, "train-00000.shard"), []byte("ALXSHARD"))
				defer os.RemoveAll(out)
				if tc.exclude {
					// Another spelling of the same folder.
					exclude = append(exclude, filepath.Join(root, sp, ".", "aaa-shards"))
				}
			}
			d, err := Open(root, Options{Exclude: exclude})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Classes, want.Classes) || !slices.Equal(listing(d.Train), listing(want.Train)) || !slices.Equal(listing(d.Val), listing(want.Val)) {
				t.Fatalf("the output folder changed the listing: %d classes (want %d), %d train, %d val", len(d.Classes), len(want.Classes), len(d.Train), len(d.Val))
			}
			for _, sp := range []string{"train", "val"} {
				if !hasWarning(d, sp+": skipped "+filepath.Join(sp, "aaa-shards")+": "+tc.why) {
					t.Errorf("no warning for %s's output folder: %q", sp, d.Warnings)
				}
			}
		})
	}
	// An --out this run has not made yet, inside a split (directly, in a
	// class folder, or deeper), is warned of on the first run too; one
	// beside the dataset is not.
	for _, tc := range []struct {
		out, split string
	}{
		{filepath.Join(root, "train", "shards"), "train"},
		{filepath.Join(root, "train", f.train[0].wnid, "out", "shards"), "train"},
		{filepath.Join(root, "val", "shards"), "val"},
		{filepath.Join(root, "shards"), ""},
		{filepath.Join(t.TempDir(), "shards"), ""},
	} {
		d, err := Open(root, Options{Exclude: []string{tc.out}})
		if err != nil {
			t.Fatal(err)
		}
		warned := hasWarning(d, tc.split+": --out "+tc.out+" lies inside the dataset's "+tc.split+" folder")
		if warned != (tc.split != "") || !slices.Equal(d.Classes, want.Classes) {
			t.Errorf("--out %s: warned %v: %q", tc.out, warned, d.Warnings)
		}
	}
	// --out given as a class folder, which holds images: leaving the class
	// out would shift every label after it, so the listing stops, naming it.
	cls := filepath.Join(root, "train", f.train[0].wnid)
	if _, err := Open(root, Options{Exclude: []string{cls}}); err == nil || !strings.Contains(err.Error(), "it is a class folder of the dataset") || !strings.Contains(err.Error(), cls) {
		t.Errorf("--out as a class folder: %v", err)
	}
	// A class folder holding some other meta.json (custom datasets keep
	// notes there) stays a class.
	other := filepath.Join(root, "train", f.train[0].wnid, "meta.json")
	writeFile(t, other, []byte(`{"source": "camera 3"}`))
	defer os.Remove(other)
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Classes, want.Classes) {
		t.Fatalf("a class folder with its own meta.json was dropped: %d classes, want %d", len(d.Classes), len(want.Classes))
	}
}

// A cancelled context stops the listing, in every layout, with its error.
func TestOpenContextCancelled(t *testing.T) {
	f := newFixture()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, root string)
	}{
		{"tree", func(t *testing.T, root string) { f.writeTree(t, root, false) }},
		{"kaggle", func(t *testing.T, root string) { f.writeKaggle(t, root) }},
		{"tars", func(t *testing.T, root string) { f.writeTars(t, root, tar.FormatPAX) }},
		{"train tar only", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, trainTarName), f.trainTar(t, tar.FormatPAX))
		}},
		{"val tar only", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, valTarName), f.valTar(t, tar.FormatPAX))
			writeFile(t, filepath.Join(root, synsetMappingName), f.synsetMapping())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.write(t, root)
			if _, err := OpenContext(ctx, root, Options{}); !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled listing: %v", err)
			}
			if _, err := OpenContext(context.Background(), root, Options{}); err != nil {
				t.Fatalf("the same listing, not cancelled: %v", err)
			}
		})
	}
}

// Caffe-style class indices count in the sorted WNIDs of the whole class
// list: with train/ holding only some classes, the synset mapping says
// which WNID an index is; without one, the train folders are the list.
func TestValClassIndicesOverASubset(t *testing.T) {
	all := []string{"n01440764", "n01443537", "n01484850", "n01491361"}
	for _, tc := range []struct {
		name    string
		mapping bool
		index   int
		want    string // the WNID labelled, "" for none
	}{
		{"mapping, a class train holds", true, 1, "n01443537"},
		{"mapping, another", true, 3, "n01491361"},
		{"mapping, a class train lacks", true, 0, ""},
		{"no mapping: the train folders", false, 1, "n01491361"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.mapping {
				var m string
				for _, w := range all {
					m += w + " the " + w + "\n"
				}
				writeFile(t, filepath.Join(root, "LOC_synset_mapping.txt"), []byte(m))
			}
			for _, w := range []string{all[1], all[3]} {
				writeFile(t, filepath.Join(root, "train", w, w+"_1.JPEG"), []byte("x"))
			}
			writeFile(t, filepath.Join(root, "val", "ILSVRC2012_val_00000001.JPEG"), []byte("x"))
			lab := filepath.Join(root, "val.txt")
			writeFile(t, lab, []byte(fmt.Sprintf("ILSVRC2012_val_00000001.JPEG %d\n", tc.index)))
			d, err := Open(root, Options{ValLabels: lab})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if l := d.Val[0].Label; l >= 0 {
				got = d.Classes[l].WNID
			}
			if got != tc.want {
				t.Fatalf("index %d labelled %q, want %q (classes %v, warnings %q)", tc.index, got, tc.want, d.Classes, d.Warnings)
			}
			// The classes the mapping names and train/ lacks are named:
			// a half-done extraction must not pass for the dataset.
			warned := hasWarning(d, "2 of the 4 classes in "+filepath.Join(root, "LOC_synset_mapping.txt")+
				" have no class folder here (n01440764, n01484850), so the classes are the 2 there are")
			if warned != tc.mapping {
				t.Errorf("subset warning %v, want %v: %q", warned, tc.mapping, d.Warnings)
			}
		})
	}
}

// A file of gigabytes named as an image is refused by its size, not read
// whole (each worker would hold it).
func TestReadItemRefusesHugeFile(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "train", "n01440764", "huge.JPEG")
	writeFile(t, p, nil)
	if err := os.Truncate(p, maxItemBytes+1); err != nil { // sparse: no disk used
		t.Skip("cannot make a sparse file here:", err)
	}
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, err := d.ReadItem(&d.Train[0], nil)
	if err == nil || !strings.Contains(err.Error(), "too large for an image") || cap(b) > 1<<20 {
		t.Fatalf("ReadItem of a %d-byte file: %v, a %d-byte buffer", maxItemBytes+1, err, cap(b))
	}
}

// With val sorted into class folders, LOC_val_solution.csv beside it is a
// check: labels stay the folders', and where the file disagrees a warning
// names the first image; a file that cannot be read only says so.
func TestValFoldersCheckedAgainstFile(t *testing.T) {
	f := newFixture()
	wrongFirst := func() []byte {
		b := bytes.Replace(f.valSolutionCSV(), []byte(imageKey(f.val[0].name)+","+f.val[0].wnid), []byte(imageKey(f.val[0].name)+",n09999999"), 1)
		return b
	}
	for _, tc := range []struct {
		name, warn, source string
		csv                []byte
	}{
		{name: "agrees", csv: f.valSolutionCSV(), source: "folders, checked against "},
		{name: "disagrees", csv: wrongFirst(), source: "folders, checked against ",
			warn: fmt.Sprintf("disagrees with the folders for 1 image (first: %s is in %s's folder, the file says no class of this dataset); the folders' labels are kept (--val-labels ", f.val[0].name, f.val[0].wnid)},
		{name: "unreadable", csv: []byte("not,a,solution\n"), source: "folders", warn: "val: the folders' labels were not checked against the label file: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			f.writeTree(t, root, true)
			writeFile(t, filepath.Join(root, valSolutionName), tc.csv)
			d, err := Open(root, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if got, want := listing(d.Val), f.want(f.val); !reflect.DeepEqual(got, want) {
				t.Errorf("val\n got %v\nwant %v", got, want)
			}
			if !strings.HasPrefix(d.ValLabelSource, tc.source) {
				t.Errorf("ValLabelSource %q, want %q…", d.ValLabelSource, tc.source)
			}
			if tc.warn != "" && !hasWarning(d, tc.warn) || tc.warn == "" && hasWarning(d, "disagrees") {
				t.Errorf("warnings %q, want one containing %q", d.Warnings, tc.warn)
			}
		})
	}
	// Sorted part-way (valprep.sh stopped): the flat images take the
	// file's labels, the folders keep theirs and are checked all the same,
	// and a warning says val is half sorted.
	t.Run("half sorted", func(t *testing.T) {
		root := t.TempDir()
		f.writeTree(t, root, true)
		writeFile(t, filepath.Join(root, valSolutionName), wrongFirst())
		last := f.val[len(f.val)-1]
		if err := os.Rename(filepath.Join(root, "val", last.wnid, last.name), filepath.Join(root, "val", last.name)); err != nil {
			t.Fatal(err)
		}
		d, err := Open(root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		got := map[string]int{}
		for _, it := range d.Val {
			got[it.Name] = it.Label
		}
		want := map[string]int{}
		for _, it := range f.want(f.val) {
			want[it.Name] = it.Label
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("val labels\n got %v\nwant %v", got, want)
		}
		n := len(f.val)
		for _, w := range []string{
			fmt.Sprintf("disagrees with the folders for 1 image (first: %s is in %s's folder, the file says no class of this dataset); the folders' labels are kept", f.val[0].name, f.val[0].wnid),
			fmt.Sprintf("val: %d images are in class folders and 1 is not: was a sorting into folders stopped part-way?", n-1),
		} {
			if !hasWarning(d, w) {
				t.Errorf("warnings %q lack %q", d.Warnings, w)
			}
		}
		if hasWarning(d, "outside this dataset") || !strings.HasPrefix(d.ValLabelSource, "folders, then ") {
			t.Errorf("source %q, warnings %q", d.ValLabelSource, d.Warnings)
		}
	})
	// Folders of some classes beside the whole file: the file's rows for
	// the others are no sign of a partial extraction there.
	root := t.TempDir()
	f.writeTree(t, root, true)
	writeFile(t, filepath.Join(root, valSolutionName), f.valSolutionCSV())
	if err := os.Remove(filepath.Join(root, "val", f.val[0].wnid, f.val[0].name)); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if hasWarning(d, "not in the val split") || len(d.Val) != len(f.val)-1 {
		t.Errorf("a subset of val's folders: %d images, warnings %q", len(d.Val), d.Warnings)
	}
}

// TestTrainOnly: with the val split left out (ingest --splits train), a
// val archive still downloading and a damaged label file stop nothing, and
// the training split is what a full open lists.
func TestTrainOnly(t *testing.T) {
	f := newFixture()
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, root string)
	}{
		{"val tar cut short", func(t *testing.T, root string) {
			f.writeTars(t, root, tar.FormatUSTAR)
			b := f.valTar(t, tar.FormatUSTAR)
			writeFile(t, filepath.Join(root, valTarName), b[:len(b)/2+100])
		}},
		{"damaged label file beside a tree", func(t *testing.T, root string) {
			f.writeTree(t, root, false)
			writeFile(t, filepath.Join(root, synsetMappingName), f.synsetMapping())
			writeFile(t, filepath.Join(root, valSolutionName), []byte("garbage\n"))
		}},
		{"kaggle with a damaged label file", func(t *testing.T, root string) {
			f.writeKaggle(t, root)
			writeFile(t, filepath.Join(root, valSolutionName), []byte("garbage\n"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.write(t, root)
			if d, err := Open(root, Options{}); err == nil {
				d.Close()
				t.Fatal("the damaged val split opened: the test shows nothing")
			}
			d, err := Open(root, Options{TrainOnly: true})
			if err != nil {
				t.Fatalf("TrainOnly: %v", err)
			}
			defer d.Close()
			if len(d.Val) != 0 || d.ValLabelSource != "" {
				t.Errorf("TrainOnly listed %d val images (labels %q)", len(d.Val), d.ValLabelSource)
			}
			if got, want := listing(d.Train), f.want(f.train); !slices.Equal(got, want) {
				t.Errorf("train:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// TestNestedClassFolders: images in folders inside a class folder are of
// the class, named by their file, as torchvision's ImageFolder and a tar
// of the tree read them (Tiny ImageNet's train/<wnid>/images/). A link to
// a folder there is not followed, and reported; a system's folder and
// ingest's output are left out with a warning.
func TestNestedClassFolders(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeTree(t, root, false)
	writeFile(t, filepath.Join(root, synsetMappingName), f.synsetMapping())
	w0, w1, w1name := f.train[0].wnid, "", ""
	moved := 0
	for _, im := range f.train {
		switch {
		case im.wnid == w0:
			// Every image of the first class one folder down.
			mustRename(t, filepath.Join(root, "train", im.wnid, im.name), filepath.Join(root, "train", im.wnid, "images", im.name))
			moved++
		case w1 == "" || im.wnid == w1 && moved < 100:
			// One of the second class two folders down.
			w1, w1name = im.wnid, im.name
			mustRename(t, filepath.Join(root, "train", im.wnid, im.name), filepath.Join(root, "train", im.wnid, "a", "b", im.name))
			moved = 100
		}
	}
	writeFile(t, filepath.Join(root, "train", w0, "n_boxes.txt"), []byte("x"))
	writeFile(t, filepath.Join(root, "train", w0, "__MACOSX", "junk.JPEG"), []byte("x"))
	writeFile(t, filepath.Join(root, "train", w0, ".hidden", "h.JPEG"), []byte("x"))
	writeFile(t, filepath.Join(root, "train", w1, "shards", "meta.json"), []byte(`{"format_version": 2}`))
	writeFile(t, filepath.Join(root, "train", w1, "shards", "x.JPEG"), []byte("x"))
	if err := os.Symlink(filepath.Join(root, "train"), filepath.Join(root, "train", w1, "up")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, want := listing(d.Train), f.want(f.train); !reflect.DeepEqual(got, want) {
		t.Errorf("train\n got %v\nwant %v", got, want)
	}
	for _, w := range []string{
		"train: left out 1 entry not named as an image (.JPEG, .jpg, .jpeg, .jfif, .png, .gif, .bmp, .webp, .tif, .tiff): " + filepath.Join("train", w0, "n_boxes.txt"),
		"train: skipped " + filepath.Join("train", w0, "__MACOSX") + ": macOS's archive metadata folder",
		"train: skipped " + filepath.Join("train", w1, "shards") + ": it holds an earlier ingest's output (meta.json), not images of the class",
	} {
		if !hasWarning(d, w) {
			t.Errorf("no warning %q in %q", w, d.Warnings)
		}
	}
	// A link to a folder is a warning, not a skipped image: --strict
	// counts only images.
	if len(d.Skipped) != 0 || !hasWarning(d, "train: 1 link to folders inside class folders not followed (one could lead round, or to another class's images): "+filepath.Join("train", w1, "up")) {
		t.Errorf("skipped %+v, warnings %q", d.Skipped, d.Warnings)
	}

	// A name twice in one class, in two of its folders (a backup copy):
	// those records are named by their path in the class folder, the
	// others class/file.
	writeFile(t, filepath.Join(root, "train", w0, "more", f.train[0].name), []byte("x"))
	d2, err := Open(root, Options{})
	if err != nil {
		t.Fatalf("a name twice in one class: %v", err)
	}
	defer d2.Close()
	names := map[string]bool{}
	for _, it := range d2.Train {
		names[it.Name] = true
	}
	for _, want := range []string{w0 + "/images/" + f.train[0].name, w0 + "/more/" + f.train[0].name, w1 + "/a/b/" + w1name} {
		if !names[want] {
			t.Errorf("no record named %s among %v", want, names)
		}
	}
	if !hasWarning(d2, "file names repeat within a class's folders ("+f.train[0].name+" at ") || hasWarning(d2, "repeat across class folders") {
		t.Errorf("want the repeat within a class, and none across classes, warned of: %q", d2.Warnings)
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// With both label files beside the tree, the one used is said.
func TestTwoLabelSourcesNamed(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	f.writeTree(t, root, false)
	writeFile(t, filepath.Join(root, valSolutionName), f.valSolutionCSV())
	f.writeDevkitDir(t, root)
	d, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !hasWarning(d, valSolutionName+"; the devkit's ground truth beside it is not used (--val-labels FILE uses the one named)") {
		t.Errorf("no warning naming the label file used: %q", d.Warnings)
	}
	if got, want := listing(d.Val), f.want(f.val); !reflect.DeepEqual(got, want) {
		t.Errorf("val\n got %v\nwant %v", got, want)
	}
}

// TrainOnly over a dataset with val images and no training ones says
// which split it looked for.
func TestTrainOnlyWithoutTrain(t *testing.T) {
	f := newFixture()
	root := t.TempDir()
	for _, im := range f.val {
		writeFile(t, filepath.Join(root, "val", im.name), im.data)
	}
	if err := os.MkdirAll(filepath.Join(root, "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Open(root, Options{TrainOnly: true})
	if err == nil || !strings.Contains(err.Error(), "no training images in it (--splits train: val is not read)") {
		t.Errorf("TrainOnly without training images: %v", err)
	}
}
