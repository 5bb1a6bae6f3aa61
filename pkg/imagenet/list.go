package imagenet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/regfile"
	"github.com/alexnet-repro/alexnet/shards"
)

// split collects one split's items while listing. Until the class list is
// known, an item's Label indexes wnids (the folders or member tars in the
// order met), or is -1.
type split struct {
	name     string
	items    []Item
	wnids    []string
	wnidIdx  map[string]int
	leftOut  []string     // entries left out for their name
	stray    []string     // entries outside class folders or archives (left out too)
	dirLink  tally        // links to folders inside class folders, not followed
	skipped  []Skipped    // entries named as images that cannot be read as files, and tar stretches lost to damage
	tarNotes []string     // damaged extension headers (their member was still read), appended archives
	empty    []emptyClass // class folders or member tars without images
	outside  int          // images in folders of classes the train split lacks (warned of apart)
}

// tally counts entries of one kind, keeping the first few names for the
// warning that lists them.
type tally struct {
	n     int
	first []string
}

func (t *tally) add(name string) {
	if t.n++; len(t.first) < 5 {
		t.first = append(t.first, name)
	}
}

// String lists the names kept: "a, b, c, d, e and 7 more".
func (t *tally) String() string {
	s := strings.Join(t.first, ", ")
	if more := t.n - len(t.first); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// emptyClass is a class folder or member tar without images: its WNID,
// and where it is (train/n01, or train.tar:n01.tar) for the warning.
type emptyClass struct{ wnid, where string }

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

// addStray notes an entry outside class folders or archives: left out,
// as a file not named as an image is, and listed whole in the report.
func (s *split) addStray(rel string) {
	s.stray = append(s.stray, rel)
}

// isHidden reports whether a base name is hidden (".DS_Store", "._x.JPEG")
// or a NAS's metadata folder ("@eaDir" on Synology, "@Recycle" on QNAP),
// which a dataset copied onto such a share holds in every folder: taken
// for a class folder, it would become class 0 and shift every label.
func isHidden(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "@")
}

// systemFolder says what an operating system or file system keeps in a
// folder of that name, or "": copied with the dataset (a zip made on a
// Mac, a USB disk's root, an ext4 mount point as train/), and taken for
// a class, it would shift the labels after it: most sort before the
// WNIDs, so every label.
func systemFolder(name string) string {
	switch strings.ToLower(name) {
	case "__macosx":
		return "macOS's archive metadata folder"
	case "$recycle.bin", "recycler", "recycled":
		return "Windows's recycle bin"
	case "system volume information":
		return "Windows's system folder"
	case "lost+found":
		return "a file system's lost+found"
	case "#recycle", "#snapshot":
		return "a Synology share's folder"
	}
	return ""
}

// wantImage filters a base name: hidden names are ignored silently, other
// non-images are counted, the first few by rel, their path for the warning.
func (s *split) wantImage(name, rel string) bool {
	if isHidden(name) || name == "" {
		return false
	}
	if !isImageExt(path.Ext(name)) {
		s.leftOut = append(s.leftOut, rel)
		return false
	}
	return true
}

// listTree lists dir (relative to d.Root): class folders of images, and,
// when flat is set, images directly in dir (unlabelled until labelVal).
//
// An entry named as an image that is not a readable file (a dangling
// symbolic link, a directory, a device) is skipped with its reason rather
// than failing the listing, as a file that cannot be decoded is skipped
// later. Only an entry that may be a class folder fails it: leaving a
// class out would renumber every label after it.
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
		rel := filepath.Join(dir, name)
		typ, err := entryType(full, e)
		image := isImageExt(path.Ext(name))
		switch {
		case err != nil && !image:
			return &PathError{Path: filepath.Join(d.Root, rel), Err: fmt.Errorf("%s, so whether it is a class folder cannot be told (and a class left out would shift the others' labels): restore what it points to, or remove it", unusable(full, name, err))}
		case err != nil && flat:
			s.skip(rel, name, unusable(full, name, err))
		case err != nil:
			s.addStray(rel)
		case typ.IsDir():
			classes = append(classes, name)
		case !flat:
			s.addStray(rel) // a training image must sit in its class folder
		case !s.wantImage(name, rel): // counted there
		case !typ.IsRegular():
			s.skip(rel, name, notRegular(typ))
		default:
			s.add(rel, len(name), -1)
		}
	}
	for i, c := range classes {
		if err := d.stopped(); err != nil {
			return err
		}
		cdir := filepath.Join(dir, c)
		cfull := filepath.Join(d.Root, cdir)
		if why := d.outputFolder(cfull); why != "" {
			// An --out put inside the dataset: its shards are not
			// images, and its folder must not become a class that
			// shifts every label after it. One that holds images is a
			// class all the same (--out given as a class folder):
			// leaving it out would drop that class and shift every
			// label after it, so the run stops instead.
			if n := imageEntries(cfull); n > 0 {
				return &PathError{Path: cfull, Err: fmt.Errorf("%s, but it holds %s: it is a class folder of the dataset, and leaving it out would shift the labels of every class after it; give --out a folder outside the dataset", why, cli.Count(n, "image", "images"))}
			}
			d.warn("%s: skipped %s: %s, not a class; keep --out outside the dataset", s.name, cdir, why)
			continue
		}
		if why := d.linkBack(cfull, s.name); why != "" {
			// Not a class, whatever it holds: its images are the
			// dataset's own, listed already under their classes or in
			// the other split.
			d.warn("%s: skipped %s: %s", s.name, cdir, why)
			continue
		}
		if why := systemFolder(c); why != "" && imageEntries(cfull) == 0 {
			// One holding images is a class all the same: leaving it
			// out would shift the labels after it.
			d.warn("%s: skipped %s: %s, not a class", s.name, cdir, why)
			continue
		}
		label := s.class(c)
		n := len(s.items)
		if err := d.listClassFolder(s, cdir, label, 0); err != nil {
			return err
		}
		if len(s.items) == n {
			s.empty = append(s.empty, emptyClass{c, cdir})
		}
		if progress != nil {
			progress(s.name, int64(i+1), int64(len(classes)))
		}
	}
	return nil
}

// linkBack says why a class folder of split that is a symbolic link is not a class,
// or "": it leads to a split folder or above one (train/n0 -> .. lists the
// dataset again, as one class, the val images among it), or into the
// other split's folder (its images would become training images, or the
// reverse). A link elsewhere, as trees built from other trees hold, is a
// class like any other.
func (d *Dataset) linkBack(dir, split string) string {
	if fi, err := os.Lstat(dir); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return ""
	}
	real, err := realPath(dir)
	if err != nil {
		return ""
	}
	within := func(p, folder string) bool {
		return p == folder || strings.HasPrefix(p, strings.TrimSuffix(folder, string(filepath.Separator))+string(filepath.Separator))
	}
	for _, name := range []string{"train", "val"} {
		sd, ok := d.splitDirs[name]
		switch {
		case !ok:
		case name != split && within(real, sd):
			return fmt.Sprintf("a link into the %s folder (%s): its images would be listed in both splits", name, real)
		case within(sd, real):
			return fmt.Sprintf("a link to %s, which holds the %s folder: it would list the dataset again as one class", real, name)
		}
	}
	return ""
}

// realPath is p absolute with every link resolved, so that two of them
// compare whatever the folder ingest runs from (EvalSymlinks alone keeps a
// relative path relative, and a link's absolute target absolute).
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// maxFolderDepth bounds the folders read inside a class folder.
const maxFolderDepth = 16

// listClassFolder lists the images of a class folder (dir, relative to
// the root), and of the folders inside it, as torchvision's ImageFolder
// and a tar of the tree do (Tiny ImageNet keeps train/<wnid>/images/):
// every one is of the class, named by its file. A link to a folder
// inside a class folder is not followed: one to a folder above it would
// go round, one to another class's would give its images this label.
func (d *Dataset) listClassFolder(s *split, dir string, label, depth int) error {
	full := filepath.Join(d.Root, dir)
	ents, err := os.ReadDir(full)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		rel := filepath.Join(dir, name)
		if isHidden(name) || name == "" {
			continue
		}
		if !isImageExt(path.Ext(name)) {
			switch typ, err := entryType(full, e); {
			case err != nil || !typ.IsDir():
				s.wantImage(name, rel) // counted as no image
			case e.Type()&fs.ModeSymlink != 0:
				s.dirLink.add(rel)
			case d.wantFolder(s, rel, depth+1):
				if err := d.listClassFolder(s, rel, label, depth+1); err != nil {
					return err
				}
			}
			continue
		}
		typ, err := entryType(full, e)
		switch {
		case err != nil:
			s.skip(rel, name, unusable(full, name, err))
		case !typ.IsRegular():
			s.skip(rel, name, notRegular(typ))
		default:
			s.add(rel, len(name), label)
		}
	}
	return nil
}

// wantFolder says whether a folder inside a class folder, depth folders
// down, is read: not ingest's output, nor a system's folder, nor deeper
// than maxFolderDepth. dir is relative to the root.
func (d *Dataset) wantFolder(s *split, dir string, depth int) bool {
	full := filepath.Join(d.Root, dir)
	if why := d.outputFolder(full); why != "" {
		d.warn("%s: skipped %s: %s, not images of the class; keep --out outside the dataset", s.name, dir, why)
		return false
	}
	if why := systemFolder(filepath.Base(dir)); why != "" {
		d.warn("%s: skipped %s: %s", s.name, dir, why)
		return false
	}
	if depth > maxFolderDepth {
		d.warn("%s: skipped %s: more than %d folders deep in its class folder", s.name, dir, maxFolderDepth)
		return false
	}
	return true
}

// imageEntries counts the entries of dir named as images.
func imageEntries(dir string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if !isHidden(e.Name()) && isImageExt(path.Ext(e.Name())) { // as wantImage
			n++
		}
	}
	return n
}

// outputFolder says why dir is an ingest output folder rather than a
// class, or "": it is this run's --out (Options.Exclude), or an earlier
// run's, which keeps its state in an .ingest-state folder and writes a
// meta.json that opens with its format version. A class folder that only
// holds some other meta.json stays a class.
func (d *Dataset) outputFolder(dir string) string {
	if len(d.exclude) > 0 {
		if fi, err := os.Stat(dir); err == nil {
			for _, x := range d.exclude {
				if os.SameFile(fi, x) {
					return "it is this run's --out"
				}
			}
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, shards.IngestStateDir)); err == nil && fi.IsDir() {
		return "it holds an earlier ingest's output (.ingest-state/)"
	}
	if f, _, err := regfile.Open(filepath.Join(dir, "meta.json")); err == nil {
		var head [64]byte
		n, _ := io.ReadFull(f, head[:])
		f.Close()
		if b := bytes.TrimLeft(head[:n], " \t\r\n"); bytes.HasPrefix(b, []byte("{")) &&
			bytes.HasPrefix(bytes.TrimLeft(b[1:], " \t\r\n"), []byte(`"format_version"`)) {
			return "it holds an earlier ingest's output (meta.json)"
		}
	}
	return ""
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

// unusable says why entryType failed, without the path the report already
// gives beside it.
func unusable(dir, name string, err error) string {
	if d := cli.DanglingLink(filepath.Join(dir, name)); d != "" && errors.Is(err, fs.ErrNotExist) {
		return d
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

func notRegular(typ fs.FileMode) string { return cli.FileKind(typ) + ", not a file" }

func (s *split) skip(rel, name, reason string) {
	s.skipped = append(s.skipped, Skipped{Split: s.name, Path: rel, Name: name, Reason: reason})
}

// add appends a plain-file item; its Name is the last nameLen bytes of rel.
func (s *split) add(rel string, nameLen, label int) {
	s.items = append(s.items, Item{Name: rel[len(rel)-nameLen:], Path: rel, Label: label, file: rel})
}

// openArchive opens an archive for the dataset's lifetime and returns its
// item reference (1-based), its full path and size.
func (d *Dataset) openArchive(name string) (int32, string, int64, error) {
	full := filepath.Join(d.Root, name)
	f, fi, err := regfile.Open(full)
	if err != nil {
		return 0, full, 0, err
	}
	d.archives = append(d.archives, f)
	d.archTime = append(d.archTime, fi.ModTime().UnixNano())
	return int32(len(d.archives)), full, fi.Size(), nil
}

// countTrainTarClasses counts the class archives in the training tar from
// its own headers (a thousand of them), reading none of the images'. It
// stops quietly at damage: it is a comparison, and listing the tar, if
// chosen, reports the damage.
func countTrainTarClasses(root, name string) (int, error) {
	full := filepath.Join(root, name)
	f, fi, err := regfile.Open(full)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	errDamage := errors.New("damaged")
	err = walkTar(f, 0, fi.Size(), full, func(m tarMember) error {
		if m.lost {
			return errDamage
		}
		if base := path.Base(m.name); m.file && !isHidden(base) && strings.HasSuffix(strings.ToLower(base), ".tar") {
			n++
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDamage) {
		return n, err
	}
	return n, nil
}

// listTrainTar lists ILSVRC2012_img_train.tar: a tar of <wnid>.tar, each a
// tar of that class's images. Only headers are read.
//
// A member named as a class archive that cannot be read as one stops the
// listing, as a class folder does in the tree: leaving the class out would
// renumber every label after it. So do two archives for one class, since
// which one holds it is ambiguous.
func (d *Dataset) listTrainTar(s *split, name string, progress func(string, int64, int64)) error {
	arc, full, size, err := d.openArchive(name)
	if err != nil {
		return err
	}
	f := d.archives[arc-1]
	classAt := make(map[string]tarMember)
	var notFiles tally
	err = walkTar(f, 0, size, full, func(m tarMember) error {
		if err := d.stopped(); err != nil {
			return err
		}
		if m.lost && m.appended {
			s.tarNotes = append(s.tarNotes, fmt.Sprintf("%s@%d: %s", name, m.at, m.why))
			return nil
		}
		if m.lost {
			// Going on would read the class tars' own headers, found in
			// the damaged stretch, as members of this one.
			return &PathError{Path: full, Err: fmt.Errorf("%s; a class archive may begin in the damaged bytes, and leaving the class out would renumber the labels after it: download the archive again, or extract what GNU tar can of it and ingest the tree", m.why)}
		}
		base := path.Base(m.name)
		if isHidden(base) {
			return nil
		}
		if !strings.HasSuffix(strings.ToLower(base), ".tar") {
			switch {
			case m.file:
				s.addStray(name + ":" + m.name)
			case !m.dir: // a directory is only structure
				notFiles.add(fmt.Sprintf("%s:%s (%s)", name, m.name, m.why))
			}
			return nil
		}
		if !m.file {
			return &PathError{Path: full + ":" + m.name, Err: fmt.Errorf("%s; it is named as a class archive, and leaving the class out would renumber the labels after it", m.why)}
		}
		wnid := base[:len(base)-len(".tar")]
		if prev, ok := classAt[wnid]; ok {
			return &PathError{Path: full, Err: fmt.Errorf("two class archives for %s: %s %s and %s %s; which one holds the class is ambiguous", wnid, prev.name, atOffset(prev.at), m.name, atOffset(m.at))}
		}
		classAt[wnid] = m
		label := s.class(wnid)
		where := full + ":" + m.name
		prefix := name + ":" + m.name + ":"
		n := len(s.items)
		err := walkTar(f, m.off, m.size, where, func(im tarMember) error {
			return s.addTarMember(where, prefix, im, func(string) int { return label }, arc)
		})
		if err != nil {
			return err
		}
		if len(s.items) == n {
			s.empty = append(s.empty, emptyClass{wnid, name + ":" + m.name})
		}
		if progress != nil && m.link == "" { // a hard link's bytes lie before it
			progress(name, m.off+m.size, size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n := notFiles.n; n > 0 {
		d.warn("%s: skipped %s of %s that %s: %s", s.name, cli.Count(n, "entry", "entries"), name, cli.Plural(n, "is not a file", "are not files"), &notFiles)
	}
	if progress != nil {
		progress(name, size, size) // the end-of-archive blocks follow the last member
	}
	return nil
}

// addTarMember lists one entry of a tar of images, where is the tar's full
// path for errors and prefix its path for items; label gives an image's
// label from its member name. An entry named as an image
// that is not a file is skipped with its reason, as in the tree; a
// directory otherwise is only structure.
func (s *split) addTarMember(where, prefix string, m tarMember, label func(string) int, arc int32) error {
	if m.lost {
		// The images in it have no names to give; where it lies does.
		switch {
		case m.appended:
			s.tarNotes = append(s.tarNotes, fmt.Sprintf("%s@%d: %s", prefix, m.at, m.why))
		case m.ext != "":
			s.tarNotes = append(s.tarNotes, fmt.Sprintf("%s@%d: %s; the %s it spans held only %s, so the member after it is read under the name its own header gives", prefix, m.at, m.why, cli.Count(int(m.resume-m.at), "byte", "bytes"), m.ext))
		default:
			s.skip(fmt.Sprintf("%s@%d", prefix, m.at), "", fmt.Sprintf("%s; skipped %s up to %s: any images in them are lost", m.why, cli.Count(int(m.resume-m.at), "byte", "bytes"), resumeWords(m)))
		}
		return nil
	}
	b := path.Base(m.name)
	if m.dir && !isImageExt(path.Ext(b)) {
		return nil
	}
	if !s.wantImage(b, prefix+m.name) {
		return nil
	}
	if m.dup {
		// Open's check for names met twice would name the same path twice.
		return &PathError{Path: where, Err: fmt.Errorf("two members named %s, %s and %s; names must be unique", m.name, atOffset(m.dupAt), atOffset(m.at))}
	}
	if !m.file {
		s.skip(prefix+m.name, b, m.why)
		return nil
	}
	s.items = append(s.items, tarItem(prefix+m.name, len(b), label(m.name), arc, m))
	return nil
}

// resumeWords says where a walk went on after the lost stretch m.
func resumeWords(m tarMember) string {
	if m.resumeEnd {
		return fmt.Sprintf("the end-of-archive blocks (offset %d)", m.resume)
	}
	return fmt.Sprintf("the next header that parses (offset %d)", m.resume)
}

// atOffset says where a tar entry begins, when that is known.
func atOffset(at int64) string {
	if at < 0 {
		return "at an unknown offset"
	}
	return fmt.Sprintf("at offset %d", at)
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
	label := func(member string) int {
		if dir := path.Base(path.Dir(member)); validWNID(dir) {
			return s.class(dir)
		}
		return -1
	}
	err = walkTar(d.archives[arc-1], 0, size, full, func(m tarMember) error {
		if err := d.stopped(); err != nil {
			return err
		}
		if err := s.addTarMember(full, prefix, m, label, arc); err != nil {
			return err
		}
		// A hard link's bytes lie before it, so it would move progress back.
		if !m.file || m.link != "" {
			return nil
		}
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
