package imagenet

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// testMetaSynsets lists ILSVRC2012_IDs in an order unlike sorted WNIDs, as
// the real meta.mat does, with two inner nodes after the leaves.
var testMetaSynsets = []testSynset{
	{id: 1, wnid: "n04000004", words: "dddd, the fourth"},
	{id: 2, wnid: "n01000001", words: "aaaa"},
	{id: 3, wnid: "n03000003", words: "cccc, café"},
	{id: 4, wnid: "n05000005", words: "eeee"},
	{id: 5, wnid: "n02000002", words: "bbbb"},
	{id: 6, wnid: "n09000006", words: "inner", children: []float64{1, 2, 3}},
	{id: 7, wnid: "n09000007", words: "root", children: []float64{4, 5, 6}},
}

func wantSynsets(ss []testSynset) []synset {
	var out []synset
	for _, s := range ss {
		out = append(out, synset{id: s.id, wnid: s.wnid, words: s.words, numChildren: len(s.children)})
	}
	return out
}

func TestMetaSynsets(t *testing.T) {
	for _, tc := range []struct {
		name     string
		order    byteOrder
		compress bool
	}{
		{"little-endian compressed", binary.LittleEndian, true},
		{"little-endian plain", binary.LittleEndian, false},
		{"big-endian compressed", binary.BigEndian, true},
		{"big-endian plain", binary.BigEndian, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := matWriter{order: tc.order, compress: tc.compress}.metaMat(testMetaSynsets)
			got, err := metaSynsets(b)
			if err != nil {
				t.Fatal(err)
			}
			if want := wantSynsets(testMetaSynsets); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			dk := &devkit{synsets: got}
			var leaves []int
			for _, s := range dk.leaves() {
				leaves = append(leaves, s.id)
			}
			if !reflect.DeepEqual(leaves, []int{1, 2, 3, 4, 5}) {
				t.Errorf("leaves %v, want IDs 1..5", leaves)
			}
		})
	}
}

func TestParseMATValues(t *testing.T) {
	w := matWriter{order: binary.LittleEndian}
	// A 2x3 char matrix is stored column-major: rows "abc" and "de ".
	charMat := w.matrix(mxCHAR, []int{2, 3}, "cm", w.elem(miUINT8, []byte("adbec ")))
	cell := w.matrix(mxCELL, []int{1, 2}, "c", w.doubles(3.25), w.chars("x", true))
	vars, err := parseMAT(w.file(charMat, cell, w.elem(miINT32, []byte{1, 2, 3, 4})))
	if err != nil {
		t.Fatal(err)
	}
	if len(vars) != 2 {
		t.Fatalf("%d variables, want 2 (the stray miINT32 holds none)", len(vars))
	}
	if vars[0].name != "cm" || vars[0].str != "abc\nde" {
		t.Errorf("char matrix %q = %q, want cm = \"abc\\nde\"", vars[0].name, vars[0].str)
	}
	if c := vars[1].cells; len(c) != 2 || c[0].num[0] != 3.25 || c[1].str != "x" {
		t.Errorf("cell = %+v", c)
	}
}

func TestParseMATErrors(t *testing.T) {
	le := matWriter{order: binary.LittleEndian}
	good := le.metaMat(testMetaSynsets[:2])
	v73 := make([]byte, 128)
	copy(v73, "MATLAB 7.3 MAT-file")
	binary.LittleEndian.PutUint16(v73[124:], 0x0200)
	copy(v73[126:], "IM")
	noSynsets := le.file(le.structArray("other", []string{"a"}, [][][]byte{{le.doubles(1)}}))
	dupID := le.metaMat([]testSynset{{id: 1, wnid: "n01000001"}, {id: 1, wnid: "n02000002"}})
	badWNID := le.metaMat([]testSynset{{id: 1, wnid: "dog"}})
	zeroID := le.metaMat([]testSynset{{id: 0, wnid: "n01000001"}})
	badZlib := le.file()
	badZlib = le.order.AppendUint32(badZlib, miCOMPRESSED)
	badZlib = le.order.AppendUint32(badZlib, 4)
	badZlib = append(badZlib, 1, 2, 3, 4)
	deep := le.doubles(1)
	for range matMaxDepth + 2 {
		deep = le.matrix(mxCELL, []int{1, 1}, "", deep)
	}

	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "shorter than the 128-byte header"},
		{"no indicator", make([]byte, 200), "no endian indicator"},
		{"v7.3", v73, "HDF5"},
		{"truncated", good[:len(good)-10], "claims"},
		{"truncated tag", append(le.file(), 1, 2, 3), "truncated data element tag"},
		{"no synsets", noSynsets, "no struct array"},
		{"duplicate id", dupID, "appears twice"},
		{"bad wnid", badWNID, "not a WordNet ID"},
		{"zero id", zeroID, "not a positive integer"},
		{"bad zlib", badZlib, "compressed element"},
		{"too deep", le.file(deep), "nested deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := metaSynsets(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, errMAT) {
				t.Errorf("err = %v, does not wrap errMAT", err)
			}
		})
	}
}

func FuzzMetaMat(f *testing.F) {
	for _, w := range []matWriter{
		{order: binary.LittleEndian, compress: true},
		{order: binary.LittleEndian},
		{order: binary.BigEndian},
	} {
		f.Add(w.metaMat(testMetaSynsets[:3]))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := metaSynsets(b)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, s := range ss {
			if s.id < 1 || seen[s.id] || !validWNID(s.wnid) {
				t.Fatalf("accepted bad synset %+v", s)
			}
			seen[s.id] = true
		}
	})
}
