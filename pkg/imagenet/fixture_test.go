package imagenet

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fixture is a tiny ImageNet: the same images and labels can be written in
// every layout, so the layouts' listings can be compared.
type fixture struct {
	synsets []testSynset   // meta.mat order; leaves are the classes
	train   []fixtureImage // label: WNID
	val     []fixtureImage
}

type fixtureImage struct {
	wnid string
	name string
	data []byte
}

// newFixture makes 5 classes, 3-4 training and 2 validation images each.
// Image sizes straddle tar's 512-byte blocks, so padding is exercised; one
// image is empty and some use other extensions.
func newFixture() *fixture {
	f := &fixture{synsets: testMetaSynsets}
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 511, 512, 513, 1500, 3000}
	img := func(name string) []byte {
		n := sizes[rng.IntN(len(sizes))]
		if strings.HasSuffix(name, "_1.JPEG") {
			n = 0
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if n >= 2 {
			b[0], b[1] = 0xFF, 0xD8 // looks like a JPEG to anyone sniffing
		}
		return b
	}
	v := 1
	for _, s := range f.leaves() {
		for j := 1; j <= 3+len(s.wnid)%2+int(s.wnid[8]-'0')%2; j++ {
			ext := ".JPEG"
			switch j {
			case 3:
				ext = ".jpg"
			case 4:
				ext = ".PNG"
			}
			name := fmt.Sprintf("%s_%d%s", s.wnid, j, ext)
			f.train = append(f.train, fixtureImage{wnid: s.wnid, name: name, data: img(name)})
		}
	}
	// Validation images are numbered across classes in a mixed order.
	for round := 0; round < 2; round++ {
		for _, s := range f.leaves() {
			name := fmt.Sprintf("ILSVRC2012_val_%08d.JPEG", v)
			f.val = append(f.val, fixtureImage{wnid: s.wnid, name: name, data: img(name)})
			v++
		}
	}
	return f
}

func (f *fixture) leaves() []testSynset {
	var out []testSynset
	for _, s := range f.synsets {
		if len(s.children) == 0 {
			out = append(out, s)
		}
	}
	return out
}

// classes is the class list Open must produce.
func (f *fixture) classes() []Class {
	var wnids []string
	words := map[string]string{}
	for _, s := range f.leaves() {
		wnids = append(wnids, s.wnid)
		words[s.wnid] = s.words
	}
	slices.Sort(wnids)
	var out []Class
	for i, w := range wnids {
		out = append(out, Class{Index: i, WNID: w, Name: words[w]})
	}
	return out
}

func (f *fixture) index(wnid string) int {
	for _, c := range f.classes() {
		if c.WNID == wnid {
			return c.Index
		}
	}
	panic("no class " + wnid)
}

// named is an item as the tests compare them: name, label, contents.
type named struct {
	Name  string
	Label int
}

// want returns the expected listing of images, sorted by name.
func (f *fixture) want(images []fixtureImage) []named {
	var out []named
	for _, im := range images {
		out = append(out, named{im.name, f.index(im.wnid)})
	}
	slices.SortFunc(out, func(a, b named) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (f *fixture) contents() map[string][]byte {
	m := map[string][]byte{}
	for _, im := range append(slices.Clone(f.train), f.val...) {
		m[im.name] = im.data
	}
	return m
}

// Label-file writers.

func (f *fixture) valSolutionCSV() []byte {
	var b bytes.Buffer
	b.WriteString("ImageId,PredictionString\r\n")
	for i := len(f.val) - 1; i >= 0; i-- { // row order must not matter
		im := f.val[i]
		fmt.Fprintf(&b, "%s,%s 1 2 30 40 %s 5 6 70 80 \r\n", imageKey(im.name), im.wnid, im.wnid)
	}
	return b.Bytes()
}

func (f *fixture) synsetMapping() []byte {
	var b bytes.Buffer
	for _, c := range f.classes() {
		fmt.Fprintf(&b, "%s %s\n", c.WNID, c.Name)
	}
	return b.Bytes()
}

func (f *fixture) groundTruth() []byte {
	ids := map[string]int{}
	for _, s := range f.synsets {
		ids[s.wnid] = s.id
	}
	var b bytes.Buffer
	for _, im := range f.val { // names are numbered in this order
		fmt.Fprintf(&b, "%d\n", ids[im.wnid])
	}
	return b.Bytes()
}

func (f *fixture) metaMat() []byte {
	return matWriter{order: binary.LittleEndian, compress: true}.metaMat(f.synsets)
}

// devkitTarGz packs meta.mat and the ground truth as the real devkit does,
// among other files.
func (f *fixture) devkitTarGz(t testing.TB) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	writeTar(t, zw, tar.FormatUSTAR, []tarFile{
		{name: devkitDirName + "/", dir: true},
		{name: devkitDirName + "/COPYING", data: []byte("licence")},
		{name: devkitDirName + "/data/", dir: true},
		{name: devkitDirName + "/data/meta.mat", data: f.metaMat()},
		{name: devkitDirName + "/data/" + groundTruthName, data: f.groundTruth()},
		{name: devkitDirName + "/evaluation/demo.val.pred.txt", data: []byte("1 2 3 4 5\n")},
	})
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Layout writers.

type tarFile struct {
	name    string
	data    []byte
	dir     bool
	symlink bool
	typ     byte   // another entry type without data (tar.TypeLink, tar.TypeFifo, ...)
	link    string // typ's link target
}

func writeTar(t testing.TB, w interface{ Write([]byte) (int, error) }, format tar.Format, files []tarFile) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg, Format: format}
		switch {
		case f.dir:
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		case f.symlink:
			h.Typeflag, h.Size, h.Linkname = tar.TypeSymlink, 0, "elsewhere.JPEG"
		case f.typ != 0:
			h.Typeflag, h.Size, h.Linkname = f.typ, 0, f.link
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func tarBytes(t testing.TB, format tar.Format, files []tarFile) []byte {
	var b bytes.Buffer
	writeTar(t, &b, format, files)
	return b.Bytes()
}

// patchHeader rewrites the header block of the member named name, for
// entries Go's writer will not write (sparse members, PAX headers of
// GNU's own records), and fixes its checksum.
func patchHeader(t testing.TB, b []byte, name string, patch func(h []byte)) []byte {
	t.Helper()
	b = bytes.Clone(b)
	for off := 0; off+512 <= len(b); off += 512 {
		h := b[off : off+512]
		if string(bytes.TrimRight(h[:100], "\x00")) != name || (h[156] != tar.TypeReg && h[156] != tar.TypeSymlink) {
			continue
		}
		patch(h)
		copy(h[148:156], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
		return b
	}
	t.Fatalf("no header for %s", name)
	return nil
}

// damageHeader flips a bit in the name of the member named name, as a
// disk or a download might, leaving its checksum wrong.
func damageHeader(t testing.TB, b []byte, name string) []byte {
	t.Helper()
	b = bytes.Clone(b)
	for off := 0; off+512 <= len(b); off += 512 {
		if string(bytes.TrimRight(b[off:off+100], "\x00")) == name {
			b[off] ^= 0x20
			return b
		}
	}
	t.Fatalf("no header for %s", name)
	return nil
}

// gnuSparse makes the member named name of a GNU-format tar an old GNU
// sparse member ('S', as GNU tar -S writes) of one extent holding it all.
func gnuSparse(t testing.TB, b []byte, name string) []byte {
	return patchHeader(t, b, name, func(h []byte) {
		h[156] = tar.TypeGNUSparse
		copy(h[386:398], "00000000000\x00") // the extent's offset
		copy(h[398:410], h[124:136])        // its length: all of the data
		copy(h[483:495], h[124:136])        // the real size
	})
}

// paxSparse returns a PAX tar whose member name is a GNU sparse file of
// format 0.1 (GNU tar -S --format=pax), one extent holding data.
func paxSparse(t testing.TB, name string, data []byte) []byte {
	rec := func(k, v string) string {
		n := len(k) + len(v) + 3
		n += len(strconv.Itoa(n + len(strconv.Itoa(n))))
		return fmt.Sprintf("%d %s=%s\n", n, k, v)
	}
	pax := rec("GNU.sparse.size", strconv.Itoa(len(data))) + rec("GNU.sparse.numblocks", "1") +
		rec("GNU.sparse.map", "0,"+strconv.Itoa(len(data)))
	b := tarBytes(t, tar.FormatUSTAR, []tarFile{{name: "PaxHeaders/" + name, data: []byte(pax)}, {name: name, data: data}})
	return patchHeader(t, b, "PaxHeaders/"+name, func(h []byte) { h[156] = tar.TypeXHeader })
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// trainTar builds ILSVRC2012_img_train.tar: one tar per class, in an order
// other than sorted, plus noise the lister must skip.
func (f *fixture) trainTar(t testing.TB, format tar.Format) []byte {
	var outer []tarFile
	leaves := f.leaves()
	for i := len(leaves) - 1; i >= 0; i-- {
		w := leaves[i].wnid
		var inner []tarFile
		for _, im := range f.train {
			if im.wnid == w {
				inner = append(inner, tarFile{name: im.name, data: im.data})
			}
		}
		inner = append(inner, tarFile{name: "._" + w + "_1.JPEG", data: []byte("AppleDouble")})
		outer = append(outer, tarFile{name: w + ".tar", data: tarBytes(t, format, inner)})
	}
	return tarBytes(t, format, outer)
}

func (f *fixture) valTar(t testing.TB, format tar.Format) []byte {
	var files []tarFile
	for _, im := range f.val {
		files = append(files, tarFile{name: im.name, data: im.data})
	}
	return tarBytes(t, format, files)
}

// writeTree writes train/<wnid>/ and val/, flat or in class folders.
func (f *fixture) writeTree(t testing.TB, root string, valFolders bool) {
	for _, im := range f.train {
		writeFile(t, filepath.Join(root, "train", im.wnid, im.name), im.data)
	}
	for _, im := range f.val {
		p := filepath.Join(root, "val", im.name)
		if valFolders {
			p = filepath.Join(root, "val", im.wnid, im.name)
		}
		writeFile(t, p, im.data)
	}
	writeFile(t, filepath.Join(root, "train", ".DS_Store"), []byte("x"))
	writeFile(t, filepath.Join(root, "val", "._"+f.val[0].name), []byte("x"))
}

func (f *fixture) writeKaggle(t testing.TB, root string) {
	data := filepath.Join(root, "ILSVRC", "Data", "CLS-LOC")
	for _, im := range f.train {
		writeFile(t, filepath.Join(data, "train", im.wnid, im.name), im.data)
	}
	for _, im := range f.val {
		writeFile(t, filepath.Join(data, "val", im.name), im.data)
	}
	writeFile(t, filepath.Join(data, "test", "ILSVRC2012_test_00000001.JPEG"), []byte("t"))
	writeFile(t, filepath.Join(root, valSolutionName), f.valSolutionCSV())
	writeFile(t, filepath.Join(root, synsetMappingName), f.synsetMapping())
	writeFile(t, filepath.Join(root, "LOC_sample_submission.csv"), []byte("ImageId,PredictionString\n"))
}

func (f *fixture) writeTars(t testing.TB, root string, format tar.Format) {
	writeFile(t, filepath.Join(root, trainTarName), f.trainTar(t, format))
	writeFile(t, filepath.Join(root, valTarName), f.valTar(t, format))
	writeFile(t, filepath.Join(root, devkitTarGzName), f.devkitTarGz(t))
}

// writeDevkitDir writes an extracted devkit.
func (f *fixture) writeDevkitDir(t testing.TB, root string) {
	data := filepath.Join(root, devkitDirName, "data")
	writeFile(t, filepath.Join(data, "meta.mat"), f.metaMat())
	writeFile(t, filepath.Join(data, groundTruthName), f.groundTruth())
}

// listing reduces items to what tests compare.
func listing(items []Item) []named {
	out := []named{}
	for _, it := range items {
		out = append(out, named{it.Name, it.Label})
	}
	return out
}
