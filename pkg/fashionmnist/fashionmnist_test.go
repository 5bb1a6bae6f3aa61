package fashionmnist

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/alexnet-repro/alexnet/internal/testdata"
)

// idx builds an IDX ubyte file with the given dimensions and data.
func idx(dims []uint32, data []byte) []byte {
	b := []byte{0, 0, idxUbyte, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, d)
	}
	return append(b, data...)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestReadImages(t *testing.T) {
	good := idx([]uint32{3, 2, 4}, seq(24))
	for _, tc := range []struct {
		name    string
		in      []byte
		n, r, c int
		format  bool // want ErrFormat
	}{
		{"plain", good, 3, 2, 4, false},
		{"gzip", gz(good), 3, 2, 4, false},
		{"zero images", idx([]uint32{0, 28, 28}, nil), 0, 28, 28, false},
		{"empty input", nil, 0, 0, 0, true},
		{"short magic", []byte{0, 0, 8}, 0, 0, 0, true},
		{"labels magic", idx([]uint32{24}, seq(24)), 0, 0, 0, true},
		{"int32 type", append([]byte{0, 0, 0x0c, 3}, good[4:]...), 0, 0, 0, true},
		{"truncated dims", good[:10], 0, 0, 0, true},
		{"truncated data", good[:len(good)-1], 0, 0, 0, true},
		{"truncated gzip data", gz(good[:len(good)-1]), 0, 0, 0, true},
		{"trailing data", append(slices.Clone(good), 0), 0, 0, 0, true},
		{"zero cols", idx([]uint32{1, 28, 0}, nil), 0, 0, 0, true},
		{"huge dimension", idx([]uint32{1 << 30, 28, 28}, nil), 0, 0, 0, true},
		{"dimensions overflow int64", idx([]uint32{1 << 28, 1 << 28, 1 << 28}, nil), 0, 0, 0, true},
		{"huge product, no data", idx([]uint32{1 << 28, 1 << 10, 1 << 10}, nil), 0, 0, 0, true},
		{"large claim, little data", idx([]uint32{1 << 20, 28, 28}, seq(100)), 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, r, c, pix, err := ReadImages(bytes.NewReader(tc.in))
			if tc.format {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.n || r != tc.r || c != tc.c || len(pix) != n*r*c {
				t.Fatalf("got %d×%d×%d (%d bytes), want %d×%d×%d", n, r, c, len(pix), tc.n, tc.r, tc.c)
			}
			if n > 0 && !bytes.Equal(pix, seq(24)) {
				t.Fatalf("pixels %v", pix)
			}
		})
	}
}

func TestReadImagesCorruptGzipChecksum(t *testing.T) {
	z := gz(idx([]uint32{1, 2, 2}, seq(4)))
	z[len(z)-8] ^= 0xff // CRC-32 in the gzip trailer
	if _, _, _, _, err := ReadImages(bytes.NewReader(z)); err == nil {
		t.Fatal("corrupt gzip checksum accepted")
	}
}

func TestReadLabels(t *testing.T) {
	good := idx([]uint32{5}, []byte{0, 9, 3, 3, 1})
	for _, tc := range []struct {
		name   string
		in     []byte
		want   []byte
		format bool
	}{
		{"plain", good, []byte{0, 9, 3, 3, 1}, false},
		{"gzip", gz(good), []byte{0, 9, 3, 3, 1}, false},
		{"empty", idx([]uint32{0}, nil), []byte{}, false},
		{"images magic", idx([]uint32{1, 1, 1}, []byte{1}), nil, true},
		{"truncated", good[:len(good)-2], nil, true},
		{"nothing", []byte{}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadLabels(bytes.NewReader(tc.in))
			if tc.format {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("err = %v, want ErrFormat", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestWNID(t *testing.T) {
	ids := make([]string, NumClasses)
	for i := range ids {
		ids[i] = WNID(i)
		if len(ids[i]) != 9 || ids[i][0] != 'n' {
			t.Errorf("WNID(%d) = %q, not n + 8 digits", i, ids[i])
		}
	}
	if ids[0] != "n99000000" || ids[9] != "n99000009" {
		t.Errorf("ids %v", ids)
	}
	if !sort.StringsAreSorted(ids) {
		t.Errorf("WNIDs do not sort in label order: %v", ids)
	}
}

func TestLoadSynthetic(t *testing.T) {
	for _, tc := range []struct {
		name    string
		images  []byte
		labels  []byte
		gzipped bool
		ok      bool
	}{
		{"gz", idx([]uint32{2, 1, 2}, seq(4)), idx([]uint32{2}, []byte{4, 7}), true, true},
		{"uncompressed only", idx([]uint32{2, 1, 2}, seq(4)), idx([]uint32{2}, []byte{4, 7}), false, true},
		{"count mismatch", idx([]uint32{2, 1, 2}, seq(4)), idx([]uint32{1}, []byte{4}), true, false},
		{"label out of range", idx([]uint32{2, 1, 2}, seq(4)), idx([]uint32{2}, []byte{4, 10}), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img, lab := Files(dir, "t10k")
			if tc.gzipped {
				write(t, img, gz(tc.images))
				write(t, lab, gz(tc.labels))
			} else {
				write(t, img[:len(img)-3], tc.images)
				write(t, lab[:len(lab)-3], tc.labels)
			}
			s, err := Load(dir, "t10k")
			if !tc.ok {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.N != 2 || !bytes.Equal(s.Image(1), seq(4)[2:]) || s.Labels[1] != 7 {
				t.Fatalf("got %+v", s)
			}
		})
	}
	if _, err := Load(t.TempDir(), "train"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing files: err = %v, want ErrNotExist", err)
	}
	if _, err := Load(t.TempDir(), "test"); err == nil {
		t.Error("bad split name accepted")
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadReal(t *testing.T) {
	dir := testdata.FashionMNIST(t)
	for _, tc := range []struct {
		split    string
		n        int
		perClass int
	}{
		{"train", 60000, 6000},
		{"t10k", 10000, 1000},
	} {
		t.Run(tc.split, func(t *testing.T) {
			s, err := Load(dir, tc.split)
			if err != nil {
				t.Fatal(err)
			}
			if s.N != tc.n || s.Rows != 28 || s.Cols != 28 || len(s.Pixels) != tc.n*784 {
				t.Fatalf("got %d images of %dx%d", s.N, s.Rows, s.Cols)
			}
			var hist [NumClasses]int
			for _, l := range s.Labels {
				hist[l]++
			}
			for c, k := range hist {
				if k != tc.perClass {
					t.Errorf("class %d has %d images, want %d", c, k, tc.perClass)
				}
			}
			// Images must not be blank: the background is 0, so some ink
			// shows up in the first image.
			if slices.Max(s.Image(0)) == 0 {
				t.Error("first image is blank")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "train-labels-idx1-ubyte.gz")); err != nil {
		t.Fatal(err)
	}
}

func FuzzReadImages(f *testing.F) {
	good := idx([]uint32{2, 2, 3}, seq(12))
	f.Add(good)
	f.Add(gz(good))
	f.Add(idx([]uint32{1 << 27, 1 << 10, 1 << 10}, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		n, r, c, pix, err := ReadImages(bytes.NewReader(in))
		if err == nil && len(pix) != n*r*c {
			t.Fatalf("%d×%d×%d but %d bytes", n, r, c, len(pix))
		}
	})
}

func FuzzReadLabels(f *testing.F) {
	good := idx([]uint32{3}, []byte{1, 2, 3})
	f.Add(good)
	f.Add(gz(good))
	f.Add([]byte{0, 0, 8, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		lab, err := ReadLabels(bytes.NewReader(in))
		if err == nil && len(in) > 8 && in[0] == 0 && len(lab) != int(binary.BigEndian.Uint32(in[4:8])) {
			t.Fatalf("%d labels, header says %d", len(lab), binary.BigEndian.Uint32(in[4:8]))
		}
	})
}

func BenchmarkReadImagesGzip(b *testing.B) {
	raw := idx([]uint32{1000, 28, 28}, seq(1000*784))
	z := gz(raw)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, _, err := ReadImages(bytes.NewReader(z)); err != nil {
			b.Fatal(err)
		}
	}
}
