package imagenet

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/errs"
)

// detect works out which layout lies under root. When several do, kaggle
// wins over tree and tree over tars: an extracted copy beside its tars is
// faster to read, and Kaggle's folders look like a tree one level down.
func detect(root string, force Layout) (*plan, error) {
	root = filepath.Clean(root)
	fi, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if fi.Mode().IsRegular() {
		// The path of one of the official tars stands for its folder.
		if b := filepath.Base(root); b != trainTarName && b != valTarName {
			return nil, &PathError{Path: root, Err: fmt.Errorf("%w, nor %s or %s", ErrNotFolder, trainTarName, valTarName)}
		}
		root = filepath.Dir(root)
		if force == "" {
			force = LayoutTars
		}
	} else if !fi.IsDir() {
		return nil, &PathError{Path: root, Err: ErrNotFolder}
	}

	var found, other []*plan
	for _, try := range []func(string) *plan{detectKaggle, detectTree, detectTars} {
		if p := try(root); p != nil && (force == "" || p.layout == force) {
			found = append(found, p)
		} else if p != nil {
			other = append(other, p)
		}
	}
	if len(found) == 0 {
		what := "no ImageNet dataset"
		switch force {
		case "":
		case LayoutTars, LayoutTree, LayoutKaggle:
			what = fmt.Sprintf("no %s layout", force)
		default:
			return nil, fmt.Errorf("unknown layout %q (want tars, tree or kaggle)", force)
		}
		// Say what is there instead: another layout than --layout's, or
		// a split's own folder given for the dataset's.
		hint := ""
		switch base := filepath.Base(root); {
		case len(other) > 0:
			hint = fmt.Sprintf("\n%s holds the %s layout: leave out --layout, or give --layout %s", root, other[0].layout, other[0].layout)
		case base == "train" || base == "val":
			hint = fmt.Sprintf("\n%s looks like a dataset's %s/ folder: give the folder that holds it, %s", root, base, filepath.Dir(root))
		}
		err := fmt.Errorf("%s found in %s; looked for:\n"+
			"  tars:   %s and/or %s\n"+
			"  tree:   train/<wnid>/*.JPEG and/or val/\n"+
			"  kaggle: %s/{train,val}%s",
			what, root, trainTarName, valTarName, kaggleDataDir, hint)
		if force != "" && len(other) > 0 {
			return nil, errs.Mark(err, ErrOtherLayout)
		}
		return nil, err
	}
	p := found[0]
	for _, q := range found[1:] {
		// Kaggle's CLS-LOC folder is also a tree of the same files.
		if q.trainDir != p.trainDir || q.valDir != p.valDir || q.trainTar != p.trainTar || q.valTar != p.valTar {
			p.alsoFound = append(p.alsoFound, q.layout)
		}
	}
	return p, nil
}

func detectTars(root string) *plan {
	p := &plan{layout: LayoutTars, root: root, metaDirs: []string{root}}
	if isFile(filepath.Join(root, trainTarName)) {
		p.trainTar = trainTarName
	}
	if isFile(filepath.Join(root, valTarName)) {
		p.valTar = valTarName
	}
	if p.trainTar == "" && p.valTar == "" {
		return nil
	}
	return p
}

func detectTree(root string) *plan {
	p := &plan{layout: LayoutTree, root: root, metaDirs: []string{root}}
	if isDir(filepath.Join(root, "train")) {
		p.trainDir = "train"
	}
	if isDir(filepath.Join(root, "val")) {
		p.valDir = "val"
	}
	if p.trainDir == "" && p.valDir == "" {
		return nil
	}
	return p
}

// detectKaggle accepts the folder holding ILSVRC/, or any folder down to
// CLS-LOC itself; the label files are looked for beside ILSVRC/.
func detectKaggle(root string) *plan {
	parts := strings.Split(kaggleDataDir, "/")
	for i := 0; i <= len(parts); i++ {
		// Does root end with parts[:i], so that parts[i:] lies below it?
		top := root
		matched := true
		for j := i - 1; j >= 0; j-- {
			if filepath.Base(top) != parts[j] {
				matched = false
				break
			}
			top = filepath.Dir(top)
		}
		if !matched {
			continue
		}
		below := filepath.Join(parts[i:]...)
		p := &plan{layout: LayoutKaggle, root: root, metaDirs: []string{top}}
		if top != root {
			p.metaDirs = append(p.metaDirs, root)
		}
		if isDir(filepath.Join(root, below, "train")) {
			p.trainDir = filepath.Join(below, "train")
		}
		if isDir(filepath.Join(root, below, "val")) {
			p.valDir = filepath.Join(below, "val")
		}
		if p.trainDir != "" || p.valDir != "" {
			return p
		}
	}
	return nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// ErrOtherLayout marks a dataset folder that holds another layout than
// --layout names: the flag is the mistake, not the data.
var ErrOtherLayout = errors.New("the dataset holds another layout than the one asked for")

// ErrNotFolder marks a dataset path that names a file (other than one
// of the official tars) or a device: a mistake in the command, as a
// dataset that does not exist is.
var ErrNotFolder = errors.New("not a directory")

// ErrOutInDataset marks an Options.Exclude (ingest's --out) that is one of
// the dataset's split folders.
var ErrOutInDataset = errors.New("--out is inside the dataset")
