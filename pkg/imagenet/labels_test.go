package imagenet

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestImageKey(t *testing.T) {
	for in, want := range map[string]string{
		"ILSVRC2012_val_00000001.JPEG":         "ILSVRC2012_val_00000001",
		"ILSVRC2012_val_00000001":              "ILSVRC2012_val_00000001",
		"val/ILSVRC2012_val_00000001.jpeg":     "ILSVRC2012_val_00000001",
		`C:\val\ILSVRC2012_val_00000001.png`:   "ILSVRC2012_val_00000001",
		"n01440764_10026.JPEG":                 "n01440764_10026",
		"weird.name.JPG":                       "weird.name",
		"archive.tar":                          "archive.tar", // not an image extension
		"ILSVRC2012_val_00000001.JPEG.bak.txt": "ILSVRC2012_val_00000001.JPEG.bak.txt",
	} {
		if got := imageKey(in); got != want {
			t.Errorf("imageKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidWNID(t *testing.T) {
	for in, want := range map[string]bool{
		"n01440764": true, "n0144076": false, "n014407640": false, "N01440764": false,
		"n0144076x": false, "": false, "n01440764 ": false,
	} {
		if got := validWNID(in); got != want {
			t.Errorf("validWNID(%q) = %v", in, got)
		}
	}
}

func TestParseValSolution(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want map[string]labelRef
		err  string
	}{
		{name: "kaggle", in: "ImageId,PredictionString\n" +
			"ILSVRC2012_val_00008726,n02119789 255 142 454 329 n02119789 44 21 322 295 \n" +
			"ILSVRC2012_val_00000001,n01751748 1 2 3 4\n",
			want: map[string]labelRef{"ILSVRC2012_val_00008726": {wnid: "n02119789"}, "ILSVRC2012_val_00000001": {wnid: "n01751748"}}},
		{name: "bom crlf quotes", in: "\xef\xbb\xbf\"ImageId\",\"PredictionString\"\r\n\"ILSVRC2012_val_00000002\",\"n01751748 1 2 3 4\"\r\n\r\n",
			want: map[string]labelRef{"ILSVRC2012_val_00000002": {wnid: "n01751748"}}},
		{name: "header only", in: "ImageId,PredictionString\n", want: map[string]labelRef{}},
		{name: "empty", in: "", err: "empty"},
		{name: "no header", in: "ILSVRC2012_val_00000001,n01751748 1 2 3 4\n", err: "line 1: header"},
		{name: "no comma", in: "ImageId,PredictionString\nILSVRC2012_val_00000001 n01751748\n", err: "line 2: no comma"},
		{name: "no wnid", in: "ImageId,PredictionString\nILSVRC2012_val_00000001,\n", err: "line 2: prediction string"},
		{name: "empty id", in: "ImageId,PredictionString\n,n01751748 1 2 3 4\n", err: "line 2: empty image name"},
		{name: "conflict", in: "ImageId,PredictionString\na,n01751748\na,n01751749\n", err: "line 3: image a labelled twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseValSolution([]byte(tc.in))
			checkErr(t, err, tc.err)
			if tc.err == "" && !reflect.DeepEqual(got.refs, tc.want) {
				t.Errorf("got %v, want %v", got.refs, tc.want)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want one containing %q", err, want)
	}
	if !errors.Is(err, errFormat) {
		t.Errorf("err = %v does not wrap errFormat", err)
	}
}

func TestParseGroundTruth(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []int
		err  string
	}{
		{name: "plain", in: "490\n361\n171\n", want: []int{490, 361, 171}},
		{name: "crlf trailing blanks", in: "490\r\n361\r\n\n\n", want: []int{490, 361}},
		{name: "empty", in: ""},
		{name: "zero", in: "1\n0\n", err: "line 2"},
		{name: "word", in: "1\ntwo\n", err: "line 2: \"two\""},
		{name: "gap", in: "1\n\n3\n", err: "line 3: blank line"},
		{name: "two columns", in: "1 2\n", err: "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseGroundTruth([]byte(tc.in))
			checkErr(t, err, tc.err)
			if tc.err == "" && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	v := groundTruthLabels([]int{490, 361})
	if want := map[string]labelRef{"ILSVRC2012_val_00000001": {n: 490}, "ILSVRC2012_val_00000002": {n: 361}}; !reflect.DeepEqual(v.refs, want) || v.numbers != ilsvrcID {
		t.Errorf("groundTruthLabels = %+v", v)
	}
}

func TestParseSynsetMapping(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []synsetEntry
		err  string
	}{
		{name: "kaggle", in: "n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n",
			want: []synsetEntry{{"n01440764", "tench, Tinca tinca"}, {"n01443537", "goldfish, Carassius auratus"}}},
		{name: "tab and crlf", in: "n01440764\ttench\r\nn01443537\r\n",
			want: []synsetEntry{{"n01440764", "tench"}, {"n01443537", ""}}},
		{name: "not a wnid", in: "tench n01440764\n", err: "line 1"},
		{name: "duplicate", in: "n01440764 a\nn01440764 b\n", err: "line 2: n01440764 listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSynsetMapping([]byte(tc.in))
			checkErr(t, err, tc.err)
			if tc.err == "" && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseValLabelsFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    map[string]labelRef
		numbers numbering
		err     string
	}{
		{name: "caffe val.txt", in: "ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n",
			want: map[string]labelRef{"ILSVRC2012_val_00000001": {n: 65}, "ILSVRC2012_val_00000002": {n: 970}}},
		{name: "wnids, comma", in: "ILSVRC2012_val_00000001, n01751748\n",
			want: map[string]labelRef{"ILSVRC2012_val_00000001": {wnid: "n01751748"}}},
		{name: "loc csv", in: "ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3 4 n01751748 5 6 7 8\n",
			want: map[string]labelRef{"ILSVRC2012_val_00000001": {wnid: "n01751748"}}},
		{name: "loc rows without header", in: "ILSVRC2012_val_00000001,n01751748 1 2 3 4\n",
			want: map[string]labelRef{"ILSVRC2012_val_00000001": {wnid: "n01751748"}}},
		{name: "ground truth", in: "490\n361\n", numbers: ilsvrcID,
			want: map[string]labelRef{"ILSVRC2012_val_00000001": {n: 490}, "ILSVRC2012_val_00000002": {n: 361}}},
		{name: "mixed ground truth", in: "490\nILSVRC2012_val_00000002.JPEG 3\n", err: "line 2"},
		{name: "negative", in: "a.JPEG -1\n", err: "neither a WNID nor a class index"},
		{name: "three fields", in: "a.JPEG 1 2\n", err: "line 1"},
		{name: "empty", in: "\n\n", err: "no labels"},
		{name: "conflict", in: "a.JPEG 1\na.jpg 2\n", err: "labelled twice"},
		{name: "same twice", in: "a.JPEG 1\na 1\n", want: map[string]labelRef{"a": {n: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseValLabelsFile([]byte(tc.in))
			checkErr(t, err, tc.err)
			if tc.err == "" && (!reflect.DeepEqual(got.refs, tc.want) || got.numbers != tc.numbers) {
				t.Errorf("got %+v, want %v (numbers %d)", got, tc.want, tc.numbers)
			}
		})
	}
}

func FuzzValSolutionCSV(f *testing.F) {
	f.Add(newFixture().valSolutionCSV())
	f.Add([]byte("ImageId,PredictionString\n\"a\",\"n01751748 1\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseValSolution(b)
		if err != nil {
			return
		}
		for k, r := range v.refs {
			if k == "" || !validWNID(r.wnid) {
				t.Fatalf("accepted %q -> %+v", k, r)
			}
		}
	})
}

func FuzzGroundTruth(f *testing.F) {
	f.Add(newFixture().groundTruth())
	f.Add([]byte("1\r\n2\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := parseGroundTruth(b)
		if err != nil {
			return
		}
		for _, id := range ids {
			if id < 1 {
				t.Fatalf("accepted ID %d", id)
			}
		}
	})
}

func FuzzSynsetMapping(f *testing.F) {
	f.Add(newFixture().synsetMapping())
	f.Add([]byte("n01440764\ttench\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseSynsetMapping(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range es {
			if !validWNID(e.wnid) || seen[e.wnid] {
				t.Fatalf("accepted %+v", e)
			}
			seen[e.wnid] = true
		}
	})
}

func FuzzValLabelsFile(f *testing.F) {
	fx := newFixture()
	f.Add(fx.valSolutionCSV())
	f.Add(fx.groundTruth())
	f.Add([]byte("ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG n01751748\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseValLabelsFile(b)
		if err != nil {
			return
		}
		if len(v.refs) == 0 {
			t.Fatal("accepted a file without labels")
		}
		for k, r := range v.refs {
			if k == "" || (r.wnid == "" && r.n < 0) || (r.wnid != "" && !validWNID(r.wnid)) {
				t.Fatalf("accepted %q -> %+v", k, r)
			}
		}
	})
}
