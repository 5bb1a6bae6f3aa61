package imagenet

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tarsWith writes the fixture as official tars (GNU format, as GNU tar
// writes them) with extra entries: in the first class archive (inner), at
// the end of the training tar (outer) and of the validation tar (val).
// The post functions, when set, rewrite the tars' bytes.
type tarsWith struct {
	inner, outer, val             []tarFile
	postInner, postTrain, postVal func(t testing.TB, b []byte) []byte
}

func (w tarsWith) write(t testing.TB, f *fixture, root string) {
	post := func(p func(testing.TB, []byte) []byte, b []byte) []byte {
		if p == nil {
			return b
		}
		return p(t, b)
	}
	var outer []tarFile
	for i, s := range f.leaves() {
		var inner []tarFile
		for _, im := range f.train {
			if im.wnid == s.wnid {
				inner = append(inner, tarFile{name: im.name, data: im.data})
			}
		}
		b := tarBytes(t, tar.FormatGNU, inner)
		if i == 0 {
			b = post(w.postInner, tarBytes(t, tar.FormatGNU, append(inner, w.inner...)))
		}
		outer = append(outer, tarFile{name: s.wnid + ".tar", data: b})
	}
	writeFile(t, filepath.Join(root, trainTarName), post(w.postTrain, tarBytes(t, tar.FormatGNU, append(outer, w.outer...))))
	var val []tarFile
	for _, im := range f.val {
		val = append(val, tarFile{name: im.name, data: im.data})
	}
	writeFile(t, filepath.Join(root, valTarName), post(w.postVal, tarBytes(t, tar.FormatGNU, append(val, w.val...))))
	writeFile(t, filepath.Join(root, devkitTarGzName), f.devkitTarGz(t))
}

func gzipped(t testing.TB, b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// cutBefore cuts a tar where the header of its last member starts, which
// leaves a tar that parses.
func cutBefore(t testing.TB, b []byte) []byte {
	tr := tar.NewReader(bytes.NewReader(b))
	start, last := int64(0), int64(0)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		last = start
		start += 512 + (h.Size+511)&^511
	}
	if last == 0 {
		t.Fatal("one member: nothing to cut")
	}
	return b[:last]
}

// TestTarEntries checks the official tars against entries that are not
// plain files: named as an image, one is skipped and reported with its
// path inside the archives and why, as in the tree; a hard link is the
// file it links to; named as a class archive, one stops Open, since
// leaving a class out would renumber the labels after it. So do damaged
// or ambiguous archives.
func TestTarEntries(t *testing.T) {
	f := newFixture()
	first := f.leaves()[0].wnid
	var firstImages []tarFile
	for _, im := range f.train {
		if im.wnid == first {
			firstImages = append(firstImages, tarFile{name: im.name, data: im.data})
		}
	}
	img := firstImages[1]
	// Where an entry appended to the first class archive starts.
	appended := len(tarBytes(t, tar.FormatGNU, firstImages)) - 1024
	// Where the second and third images' headers start.
	second := 512 + (len(firstImages[0].data)+511)&^511
	third := second + 512 + (len(firstImages[1].data)+511)&^511
	inner := trainTarName + ":" + first + ".tar:"
	val := valTarName + ":"
	n09 := tarBytes(t, tar.FormatGNU, []tarFile{{name: "n09000009_1.JPEG", data: []byte("n09")}})
	type item struct {
		path string
		data []byte
	}
	cases := []struct {
		name    string
		tars    tarsWith
		skipped []Skipped // Reason is a substring
		items   []item    // listed besides the fixture's images
		classes int       // besides the fixture's
		lost    int       // fixture images made entries to skip
		warning string
		openErr string // with the root before it
		errAlso string
	}{
		// Inside a class archive.
		{name: "symbolic link", tars: tarsWith{inner: []tarFile{{name: "s.JPEG", typ: tar.TypeSymlink, link: "/gone/s.JPEG"}}},
			skipped: []Skipped{{"train", inner + "s.JPEG", "s.JPEG", "symbolic link to /gone/s.JPEG, outside the archive"}}},
		{name: "directory named as an image", tars: tarsWith{inner: []tarFile{{name: "d.JPEG/", dir: true}}},
			skipped: []Skipped{{"train", inner + "d.JPEG/", "d.JPEG", "a directory, not a file"}}},
		{name: "directory", tars: tarsWith{inner: []tarFile{{name: "sub/", dir: true}}}},
		{name: "named pipe", tars: tarsWith{inner: []tarFile{{name: "p.jpg", typ: tar.TypeFifo}}},
			skipped: []Skipped{{"train", inner + "p.jpg", "p.jpg", "a named pipe, not a file"}}},
		{name: "sparse member", tars: tarsWith{inner: []tarFile{{name: "sp.JPEG", data: []byte("sparse")}},
			postInner: func(t testing.TB, b []byte) []byte { return gnuSparse(t, b, "sp.JPEG") }},
			skipped: []Skipped{{"train", inner + "sp.JPEG", "sp.JPEG", "sparse member, not supported"}}},
		{name: "hard link", tars: tarsWith{inner: []tarFile{{name: first + "_9.JPEG", typ: tar.TypeLink, link: img.name}}},
			items: []item{{inner + first + "_9.JPEG", img.data}}},
		{name: "symbolic link to an earlier image", tars: tarsWith{inner: []tarFile{{name: first + "_8.JPEG", typ: tar.TypeSymlink, link: "./" + img.name}}},
			items: []item{{inner + first + "_8.JPEG", img.data}}},
		{name: "hard link to nothing", tars: tarsWith{inner: []tarFile{{name: "h.JPEG", typ: tar.TypeLink, link: "gone.JPEG"}}},
			skipped: []Skipped{{"train", inner + "h.JPEG", "h.JPEG", "hard link to gone.JPEG, which is not in this archive"}}},
		{name: "link without an image name", tars: tarsWith{inner: []tarFile{{name: "notes", typ: tar.TypeSymlink, link: "x"}}},
			warning: "train: left out 1 entry not named as an image (.JPEG, .jpg, .jpeg, .jfif, .png, .gif, .bmp, .webp, .tif, .tiff): " + inner + "notes"},
		{name: "two members of one name", tars: tarsWith{inner: []tarFile{{name: img.name, data: []byte("again")}}},
			openErr: fmt.Sprintf("%s: two members named %s, at offset %d and at offset %d; names must be unique", inner[:len(inner)-1], img.name, 512+(len(firstImages[0].data)+511)&^511, appended)},
		{name: "class archive cut at a member", tars: tarsWith{postInner: cutBefore},
			openErr: inner[:len(inner)-1] + ": ends without tar's end-of-archive blocks, after member " + firstImages[len(firstImages)-2].name + ": it looks truncated"},
		{name: "damaged header", tars: tarsWith{postInner: func(t testing.TB, b []byte) []byte { return damageHeader(t, b, firstImages[1].name) }},
			skipped: []Skipped{{"train", fmt.Sprintf("%s@%d", inner, second), "", fmt.Sprintf("a damaged tar header at offset %d (byte %d of the file), after member %s: its checksum or a field does not parse; skipped %d bytes up to the next header that parses (offset %d)", second, 512+second, firstImages[0].name, 512+(len(firstImages[1].data)+511)&^511, third)}}, lost: 1},
		{name: "damaged last header", tars: tarsWith{postInner: func(t testing.TB, b []byte) []byte { return damageHeader(t, b, firstImages[len(firstImages)-1].name) }},
			skipped: []Skipped{{"train", fmt.Sprintf("%s@%d", inner, appended-512-(len(firstImages[len(firstImages)-1].data)+511)&^511), "", "up to the end-of-archive blocks (offset " + fmt.Sprint(appended) + ")"}}, lost: 1},
		{name: "damaged long-name header", tars: tarsWith{inner: []tarFile{{name: strings.Repeat("d", 100) + "/" + first + "_7.JPEG", data: img.data}},
			postInner: func(t testing.TB, b []byte) []byte { return damageHeader(t, b, "././@LongLink") }},
			warning: fmt.Sprintf("train: %s@%d: a damaged tar header at offset %d (byte %d of the file), after member %s: its checksum or a field does not parse; the 1024 bytes it spans held only a GNU long name, so the member after it is read under the name its own header gives",
				inner, appended, appended, 512+appended, firstImages[len(firstImages)-1].name)},
		{name: "class archive gzipped", tars: tarsWith{postInner: gzipped},
			openErr: inner[:len(inner)-1] + ": gzip-compressed, not a plain tar: decompress it first"},

		// At the top of the training tar.
		{name: "class archive as a symbolic link", tars: tarsWith{outer: []tarFile{{name: "n09000009.tar", typ: tar.TypeSymlink, link: "../n09000009.tar"}}},
			openErr: trainTarName + ":n09000009.tar: symbolic link to ../n09000009.tar, outside the archive; it is named as a class archive, and leaving the class out would renumber the labels after it"},
		{name: "class archive as a directory", tars: tarsWith{outer: []tarFile{{name: "n09000009.tar/", dir: true}}},
			openErr: trainTarName + ":n09000009.tar/: a directory, not a file; it is named as a class archive"},
		{name: "class archive as a hard link", tars: tarsWith{outer: []tarFile{{name: "spare", data: n09}, {name: "n09000009.tar", typ: tar.TypeLink, link: "spare"}}},
			items: []item{{trainTarName + ":n09000009.tar:n09000009_1.JPEG", []byte("n09")}}, classes: 1,
			warning: "train: left out 1 entry outside class folders or archives: " + trainTarName + ":spare"},
		{name: "class archive as a symbolic link to an earlier member", tars: tarsWith{outer: []tarFile{{name: "spare", data: n09}, {name: "n09000009.tar", typ: tar.TypeSymlink, link: "spare"}}},
			items: []item{{trainTarName + ":n09000009.tar:n09000009_1.JPEG", []byte("n09")}}, classes: 1,
			warning: "train: left out 1 entry outside class folders or archives: " + trainTarName + ":spare"},
		{name: "class archive as a hard link to nothing", tars: tarsWith{outer: []tarFile{{name: "n09000009.tar", typ: tar.TypeLink, link: "n08000008.tar"}}},
			openErr: trainTarName + ":n09000009.tar: hard link to n08000008.tar, which is not in this archive; it is named as a class archive"},
		{name: "two class archives for a class", tars: tarsWith{outer: []tarFile{{name: "more/" + first + ".tar", data: n09}}},
			openErr: fmt.Sprintf("%s: two class archives for %s: %s.tar at offset 0 and more/%s.tar at offset", trainTarName, first, first, first)},
		{name: "other entries", tars: tarsWith{outer: []tarFile{{name: "README", typ: tar.TypeSymlink, link: "docs/README"}, {name: "docs/", dir: true}, {name: "._n01000001.tar", typ: tar.TypeSymlink, link: "x"}}},
			warning: "train: skipped 1 entry of " + trainTarName + " that is not a file: " + trainTarName + ":README (symbolic link to docs/README, which is not an earlier member of this archive)"},
		{name: "many other entries", tars: tarsWith{outer: []tarFile{{name: "a", typ: tar.TypeFifo}, {name: "b", typ: tar.TypeFifo}, {name: "c", typ: tar.TypeFifo},
			{name: "d", typ: tar.TypeFifo}, {name: "e", typ: tar.TypeFifo}, {name: "f", typ: tar.TypeFifo}, {name: "g", typ: tar.TypeFifo}}},
			warning: "train: skipped 7 entries of " + trainTarName + " that are not files: " + trainTarName + ":a (a named pipe, not a file), " + trainTarName + ":b (a named pipe, not a file), " +
				trainTarName + ":c (a named pipe, not a file), " + trainTarName + ":d (a named pipe, not a file), " + trainTarName + ":e (a named pipe, not a file) and 2 more"},
		{name: "training tar cut at a member", tars: tarsWith{postTrain: cutBefore},
			openErr: trainTarName + ": ends without tar's end-of-archive blocks, after member " + f.leaves()[len(f.leaves())-2].wnid + ".tar: it looks truncated"},
		{name: "training tar: damaged header", tars: tarsWith{postTrain: func(t testing.TB, b []byte) []byte { return damageHeader(t, b, f.leaves()[1].wnid+".tar") }},
			openErr: trainTarName + ": a damaged tar header at offset ", errAlso: ", after member " + first + ".tar: its checksum or a field does not parse; a class archive may begin in the damaged bytes"},
		{name: "training tar gzipped", tars: tarsWith{postTrain: gzipped},
			openErr: trainTarName + ": gzip-compressed, not a plain tar: decompress it first"},
		{name: "training tar cut in a header", tars: tarsWith{postTrain: func(t testing.TB, b []byte) []byte { return b[:len(cutBefore(t, b))+100] }},
			openErr: trainTarName + ": the archive (", errAlso: "bytes) ends inside the entry at offset"},

		// In the validation tar.
		{name: "val: symbolic link", tars: tarsWith{val: []tarFile{{name: "ILSVRC2012_val_00000099.JPEG", typ: tar.TypeSymlink, link: "x.JPEG"}}},
			skipped: []Skipped{{"val", val + "ILSVRC2012_val_00000099.JPEG", "ILSVRC2012_val_00000099.JPEG", "symbolic link to x.JPEG"}}},
		{name: "val: directory", tars: tarsWith{val: []tarFile{{name: "ILSVRC2012_val_00000099.JPEG/", dir: true}}},
			skipped: []Skipped{{"val", val + "ILSVRC2012_val_00000099.JPEG/", "ILSVRC2012_val_00000099.JPEG", "a directory, not a file"}}},
		{name: "val: sparse member", tars: tarsWith{postVal: func(t testing.TB, b []byte) []byte { return gnuSparse(t, b, f.val[1].name) }},
			skipped: []Skipped{{"val", val + f.val[1].name, f.val[1].name, "sparse member, not supported"}}, lost: 1},
		{name: "val: hard link", tars: tarsWith{val: []tarFile{{name: "ILSVRC2012_val_00000099.JPEG", typ: tar.TypeLink, link: f.val[0].name}}},
			items: []item{{val + "ILSVRC2012_val_00000099.JPEG", f.val[0].data}}, warning: "val: 1 image without labels"},
		{name: "val: two members of one name", tars: tarsWith{val: []tarFile{{name: f.val[0].name, data: []byte("x")}}},
			openErr: valTarName + ": two members named " + f.val[0].name + ", at offset 0 and at offset"},
		{name: "val: cut at a member", tars: tarsWith{postVal: cutBefore},
			openErr: valTarName + ": ends without tar's end-of-archive blocks, after member " + f.val[len(f.val)-2].name + ": it looks truncated"},
		{name: "val: damaged header", tars: tarsWith{postVal: func(t testing.TB, b []byte) []byte { return damageHeader(t, b, f.val[1].name) }},
			skipped: []Skipped{{"val", fmt.Sprintf("%s@%d", val, 512+(len(f.val[0].data)+511)&^511), "", "a damaged tar header at offset " + fmt.Sprint(512+(len(f.val[0].data)+511)&^511) + ", after member " + f.val[0].name + ": its checksum"}}, lost: 1},
		{name: "val: second archive appended", tars: tarsWith{postVal: func(t testing.TB, b []byte) []byte {
			return append(b, tarBytes(t, tar.FormatGNU, []tarFile{{name: f.val[0].name, data: []byte("again")}})...)
		}}, warning: "val: " + valTarName + ":@"},
		{name: "val: gzipped", tars: tarsWith{postVal: gzipped},
			openErr: valTarName + ": gzip-compressed, not a plain tar: decompress it first"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.tars.write(t, f, root)
			d, err := Open(root, Options{})
			if tc.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), filepath.Join(root, tc.openErr)) || !strings.Contains(err.Error(), tc.errAlso) {
					t.Fatalf("Open: err = %v, want one containing %q", err, filepath.Join(root, tc.openErr))
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			contents := f.contents()
			for _, it := range tc.items {
				contents[filepath.Base(strings.ReplaceAll(it.path, ":", "/"))] = it.data
			}
			if got, want := len(d.Train)+len(d.Val), len(f.train)+len(f.val)+len(tc.items)-tc.lost; got != want || len(d.Classes) != len(f.classes())+tc.classes {
				t.Errorf("%d images and %d classes, want %d and %d", got, len(d.Classes), want, len(f.classes())+tc.classes)
			}
			paths := map[string]bool{}
			for _, it := range append(d.Train, d.Val...) {
				paths[it.Path] = true
			}
			for _, it := range tc.items {
				if !paths[it.path] {
					t.Errorf("no item %s among %v", it.path, slices.Sorted(maps.Keys(paths)))
				}
			}
			checkContents(t, d, contents)
			if len(d.Skipped) != len(tc.skipped) {
				t.Fatalf("skipped %+v, want %+v", d.Skipped, tc.skipped)
			}
			for i, w := range tc.skipped {
				g := d.Skipped[i]
				if g.Split != w.Split || g.Path != w.Path || g.Name != w.Name || !strings.Contains(g.Reason, w.Reason) {
					t.Errorf("skipped %+v, want %+v", g, w)
				}
			}
			if tc.warning != "" && !hasWarning(d, tc.warning) {
				t.Errorf("warnings %q lack %q", d.Warnings, tc.warning)
			}
		})
	}
}
