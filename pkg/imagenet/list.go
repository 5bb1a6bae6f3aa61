package imagenet

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// split collects one split's items while listing. Until the class list is
// known, an item's Label indexes wnids (the folders or member tars in the
// order met), or is -1.
type split struct {
	name     string
	items    []Item
	wnids    []string
	wnidIdx  map[string]int
	notImage int // files skipped for their extension
	stray    int // entries outside class folders or archives
}

func newSplit(name string) *split {
	return &split{name: name, wnidIdx: make(map[string]int)}
}

// class returns the provisional label of a class folder or member tar.
func (s *split) class(wnid string) int {
	if i, ok := s.wnidIdx[wnid]; ok {
		return i
	}
	s.wnidIdx[wnid] = len(s.wnids)
	s.wnids = append(s.wnids, wnid)
	return len(s.wnids) - 1
}

// isHidden reports whether a base name is hidden (".DS_Store", "._x.JPEG").
func isHidden(name string) bool {
	return strings.HasPrefix(name, ".")
}

// wantImage filters a base name: hidden names are ignored silently, other
// non-images are counted.
func (s *split) wantImage(name string) bool {
	if isHidden(name) || name == "" {
		return false
	}
	if !isImageExt(path.Ext(name)) {
		s.notImage++
		return false
	}
	return true
}

// listTree lists dir (relative to d.Root): class folders of images, and,
// when flat is set, images directly in dir (unlabelled until labelVal).
func (d *Dataset) listTree(s *split, dir string, flat bool, progress func(string, int64, int64)) error {
	full := filepath.Join(d.Root, dir)
	ents, err := os.ReadDir(full)
	if err != nil {
		return err
	}
	var classes []string
	for _, e := range ents {
		name := e.Name()
		if isHidden(name) {
			continue
		}
		typ, err := entryType(full, e)
		if err != nil {
			return err
		}
		switch {
		case typ.IsDir():
			classes = append(classes, name)
		case !typ.IsRegular():
			s.stray++
		case !flat:
			s.stray++ // a training image must sit in its class folder
		case s.wantImage(name):
			s.add(filepath.Join(dir, name), len(name), -1)
		}
	}
	for i, c := range classes {
		label := s.class(c)
		cdir := filepath.Join(dir, c)
		ents, err := os.ReadDir(filepath.Join(d.Root, cdir))
		if err != nil {
			return err
		}
		for _, e := range ents {
			name := e.Name()
			if isHidden(name) {
				continue
			}
			typ, err := entryType(filepath.Join(d.Root, cdir), e)
			if err != nil {
				return err
			}
			if !typ.IsRegular() {
				s.stray++
				continue
			}
			if s.wantImage(name) {
				s.add(filepath.Join(cdir, name), len(name), label)
			}
		}
		if progress != nil {
			progress(s.name, int64(i+1), int64(len(classes)))
		}
	}
	return nil
}

// entryType resolves symbolic links, which trees built from other trees
// often consist of.
func entryType(dir string, e fs.DirEntry) (fs.FileMode, error) {
	if e.Type()&fs.ModeSymlink == 0 {
		return e.Type(), nil
	}
	fi, err := os.Stat(filepath.Join(dir, e.Name()))
	if err != nil {
		return 0, err
	}
	return fi.Mode().Type(), nil
}

// add appends a plain-file item; its Name is the last nameLen bytes of rel.
func (s *split) add(rel string, nameLen, label int) {
	s.items = append(s.items, Item{Name: rel[len(rel)-nameLen:], Path: rel, Label: label, file: rel})
}

// openArchive opens an archive for the dataset's lifetime and returns its
// item reference (1-based), its full path and size.
func (d *Dataset) openArchive(name string) (int32, string, int64, error) {
	full := filepath.Join(d.Root, name)
	f, err := os.Open(full)
	if err != nil {
		return 0, full, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, full, 0, err
	}
	d.archives = append(d.archives, f)
	return int32(len(d.archives)), full, fi.Size(), nil
}

// listTrainTar lists ILSVRC2012_img_train.tar: a tar of <wnid>.tar, each a
// tar of that class's images. Only headers are read.
func (d *Dataset) listTrainTar(s *split, name string, progress func(string, int64, int64)) error {
	arc, full, size, err := d.openArchive(name)
	if err != nil {
		return err
	}
	f := d.archives[arc-1]
	_, err = walkTar(f, 0, size, full, func(m tarMember) error {
		base := path.Base(m.name)
		if isHidden(base) {
			return nil
		}
		if !strings.HasSuffix(strings.ToLower(base), ".tar") {
			s.stray++
			return nil
		}
		label := s.class(base[:len(base)-len(".tar")])
		prefix := name + ":" + m.name + ":"
		_, err := walkTar(f, m.off, m.size, full+":"+m.name, func(im tarMember) error {
			b := path.Base(im.name)
			if s.wantImage(b) {
				s.items = append(s.items, tarItem(prefix+im.name, len(b), label, arc, im))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if progress != nil {
			progress(name, m.off+m.size, size)
		}
		return nil
	})
	if err == nil && progress != nil {
		progress(name, size, size) // the end-of-archive blocks follow the last member
	}
	return err
}

// listValTar lists ILSVRC2012_img_val.tar: images, flat. Should a
// repackaged copy hold <wnid>/ folders, those label their images.
func (d *Dataset) listValTar(s *split, name string, progress func(string, int64, int64)) error {
	arc, full, size, err := d.openArchive(name)
	if err != nil {
		return err
	}
	prefix := name + ":"
	n := 0
	_, err = walkTar(d.archives[arc-1], 0, size, full, func(m tarMember) error {
		b := path.Base(m.name)
		if !s.wantImage(b) {
			return nil
		}
		label := -1
		if dir := path.Base(path.Dir(m.name)); validWNID(dir) {
			label = s.class(dir)
		}
		s.items = append(s.items, tarItem(prefix+m.name, len(b), label, arc, m))
		if n++; progress != nil && n%1000 == 0 {
			progress(name, m.off+m.size, size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if progress != nil {
		progress(name, size, size)
	}
	return nil
}

// tarItem makes an archive item whose Name is the last nameLen bytes of p.
func tarItem(p string, nameLen, label int, arc int32, m tarMember) Item {
	return Item{Name: p[len(p)-nameLen:], Path: p, Label: label, arc: arc, off: m.off, size: m.size}
}
