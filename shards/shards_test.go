package shards

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/internal/fixtures"
)

// photoLike makes a smooth image with noise, so the predictor has something
// realistic to chew on; pure noise would not compress at all.
func photoLike(rng *rand.Rand, w, h int) []byte {
	p := make([]byte, w*h*3)
	fx, fy := rng.Float64()*0.1, rng.Float64()*0.1
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				v := 128 + 60*float64(c+1)/3*sinApprox(fx*float64(x)+fy*float64(y)+float64(c)) + float64(rng.IntN(9)) - 4
				p[(y*w+x)*3+c] = byte(max(0, min(255, v)))
			}
		}
	}
	return p
}

func sinApprox(x float64) float64 {
	// A triangle wave is smooth enough and keeps the test free of math.
	x = x - 2*float64(int(x/2))
	if x < 0 {
		x += 2
	}
	if x < 1 {
		return 2*x - 1
	}
	return 3 - 2*x
}

// refGradFilter is the obvious per-channel form of the predictor that
// gradFilter computes in one pass.
func refGradFilter(pix []byte, w, h int) []byte {
	at := func(x, y, c int) byte {
		if x < 0 || y < 0 {
			return 0
		}
		return pix[(y*w+x)*3+c]
	}
	res := make([]byte, len(pix))
	np := w * h
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var e [3]byte
			for c := 0; c < 3; c++ {
				e[c] = at(x, y, c) - (at(x-1, y, c) + at(x, y-1, c) - at(x-1, y-1, c))
			}
			res[y*w+x] = e[0] - e[1]
			res[np+y*w+x] = e[1]
			res[2*np+y*w+x] = e[2] - e[1]
		}
	}
	return res
}

func TestGradFilterMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range [][2]int{{1, 1}, {1, 7}, {7, 1}, {3, 5}, {64, 48}, {256, 256}} {
		w, h := sz[0], sz[1]
		for _, pix := range [][]byte{photoLike(rng, w, h), randBytes(rng, w*h*3)} {
			got := make([]byte, len(pix))
			gradFilter(got, pix, w, h, make([]byte, 6*w))
			if want := refGradFilter(pix, w, h); !bytes.Equal(got, want) {
				t.Fatalf("%dx%d: gradFilter differs from reference", w, h)
			}
			back := make([]byte, len(pix))
			gradUnfilter(back, got, w, h)
			if !bytes.Equal(back, pix) {
				t.Fatalf("%dx%d: unfilter does not invert filter", w, h)
			}
		}
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, codec := range allCodecs {
		enc, err := NewEncoder(codec)
		if err != nil {
			t.Fatal(err)
		}
		for _, sz := range [][2]int{{1, 1}, {5, 3}, {256, 256}, {32, 32}} {
			pix := photoLike(rng, sz[0], sz[1])
			payload, err := enc.Encode(nil, pix, sz[0], sz[1])
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(pix))
			if err := dec.Decode(got, codec, payload, sz[0], sz[1]); err != nil {
				t.Fatalf("%v %v: %v", codec, sz, err)
			}
			if !bytes.Equal(got, pix) {
				t.Fatalf("%v %v: round trip differs", codec, sz)
			}
			// A payload for another size must be rejected, not mis-decoded.
			if sz[0] > 1 {
				if err := dec.Decode(make([]byte, 3*(sz[0]-1)*sz[1]), codec, payload, sz[0]-1, sz[1]); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%v: wrong-size decode gave %v", codec, err)
				}
			}
		}
		enc.Close()
	}
}

func writeTestShard(t testing.TB, path string, n int, codec Codec) ([]Record, [][]byte) {
	return writeTestShardSized(t, path, n, codec, 8, 24)
}

func writeTestShardSized(t testing.TB, path string, n int, codec Codec, minSide, spread int) ([]Record, [][]byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(n), 9))
	enc, err := NewEncoder(codec)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	var pixs [][]byte
	for i := 0; i < n; i++ {
		wd, ht := minSide+rng.IntN(spread), minSide+rng.IntN(spread)
		pix := photoLike(rng, wd, ht)
		payload, err := enc.Encode(nil, pix, wd, ht)
		if err != nil {
			t.Fatal(err)
		}
		r := Record{ID: uint64(1000 + i), Label: int32(i%7) - 1, Name: fmt.Sprintf("n%08d_%d.JPEG", i%7, i), Codec: codec, W: wd, H: ht, Channels: 3, Payload: payload}
		if err := w.Append(&r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		pixs = append(pixs, pix)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("shard visible before Close: %v", err)
	}
	info, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if info.Records != n || info.File != filepath.Base(path) {
		t.Fatalf("info %+v", info)
	}
	if left, _ := filepath.Glob(TempPattern(path)); len(left) > 0 {
		t.Fatalf("temporary files left behind: %v", left)
	}
	return recs, pixs
}

func sameRecord(a, b *Record) bool {
	return a.ID == b.ID && a.Label == b.Label && a.Name == b.Name && a.Codec == b.Codec && a.W == b.W && a.H == b.H && bytes.Equal(a.Payload, b.Payload)
}

func TestWriteReadScan(t *testing.T) {
	for _, n := range []int{0, 1, 37} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "train-00000.shard")
			want, pixs := writeTestShard(t, path, n, CodecGradZstd)
			r, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Len() != n {
				t.Fatalf("Len %d want %d", r.Len(), n)
			}
			dec, _ := NewDecoder()
			var buf []byte
			var rec Record
			// Random access in reverse order.
			for i := n - 1; i >= 0; i-- {
				if buf, err = r.ReadRecord(i, &rec, buf); err != nil {
					t.Fatal(err)
				}
				if !sameRecord(&rec, &want[i]) {
					t.Fatalf("record %d differs", i)
				}
				pix := make([]byte, rec.W*rec.H*3)
				if err := dec.Decode(pix, rec.Codec, rec.Payload, rec.W, rec.H); err != nil || !bytes.Equal(pix, pixs[i]) {
					t.Fatalf("record %d pixels: %v", i, err)
				}
			}
			f, _ := os.Open(path)
			defer f.Close()
			sc := NewScanner("x", f)
			for i := 0; ; i++ {
				got, err := sc.Next()
				if err == io.EOF {
					if i != n {
						t.Fatalf("scanned %d records, want %d", i, n)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if !sameRecord(got, &want[i]) {
					t.Fatalf("scan record %d differs", i)
				}
			}
			if v := Verify(path, true); len(v.Damage) != 0 || v.Records != n {
				t.Fatalf("verify: %+v", v)
			}
		})
	}
}

// Every single-byte change anywhere in a shard must be caught, and a change
// inside a record must be pinned to that record.
func TestVerifyCatchesEveryFlippedByte(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "val-00000.shard")
	writeTestShardSized(t, path, 4, CodecZstd, 2, 3)
	orig, _ := os.ReadFile(path)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	spans := make([][2]int64, r.Len())
	for i := range spans {
		off, n := r.span(i)
		spans[i] = [2]int64{off, off + n}
	}
	r.Close()
	bad := filepath.Join(dir, "bad.shard")
	for pos := 0; pos < len(orig); pos++ {
		b := bytes.Clone(orig)
		b[pos] ^= 0x10
		if err := os.WriteFile(bad, b, 0o644); err != nil {
			t.Fatal(err)
		}
		v := Verify(bad, false)
		if len(v.Damage) == 0 {
			t.Fatalf("flip at byte %d not detected", pos)
		}
		for i, sp := range spans {
			// Bytes inside a record's body and CRC (not its length field,
			// which breaks framing) must be attributed to that record.
			if int64(pos) >= sp[0]+4 && int64(pos) < sp[1] {
				want := fmt.Sprintf("record %d ", i)
				if !strings.Contains(v.Damage[0].Error(), want) || !strings.Contains(v.Damage[0].Error(), "bad.shard") {
					t.Fatalf("flip at %d in record %d reported as %v", pos, i, v.Damage[0])
				}
				// The whole-file CRC fails too; nothing else may.
				if len(v.Damage) > 2 || v.Records != len(spans)-1 {
					t.Fatalf("flip at %d: %d damages, %d good records", pos, len(v.Damage), v.Records)
				}
			}
		}
	}
}

// TestReaderCatchesEveryFlippedByte: the training read path (Open, then
// ReadRecord of each record) finds a flipped byte anywhere in a shard but
// two places. The header's flags and reserved bytes are ignored by design
// (FORMAT.md), and the trailer's file CRC is not recomputed by a reader:
// Verify finds both, and the pipeline compares the file CRC with
// meta.json's when it opens a shard.
func TestReaderCatchesEveryFlippedByte(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "val-00000.shard")
	writeTestShardSized(t, path, 4, CodecGradHuff, 2, 3)
	orig, _ := os.ReadFile(path)
	var rec Record
	var buf []byte
	for pos := 0; pos < len(orig); pos++ {
		if pos >= 10 && pos < headerSize || pos >= len(orig)-trailerSize+20 && pos < len(orig)-trailerSize+24 {
			continue
		}
		b := bytes.Clone(orig)
		b[pos] ^= 0x04
		r, err := NewReader("bad.shard", bytes.NewReader(b), int64(len(b)))
		for i := 0; err == nil && i < r.Len(); i++ {
			buf, err = r.ReadRecord(i, &rec, buf)
		}
		if err == nil {
			t.Fatalf("flip at byte %d of %d passed Open and every ReadRecord", pos, len(b))
		}
		if !strings.Contains(err.Error(), "bad.shard") {
			t.Fatalf("flip at byte %d: %v does not name the shard", pos, err)
		}
	}
}

// A record length damaged to near maxBody in a short file costs the
// Scanner what the file holds, not the gigabyte the length claims
// (shardtool verify runs one Scanner a worker).
func TestScannerDoesNotTrustTheLength(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.shard")
	writeTestShard(t, path, 3, CodecGradHuff)
	b, _ := os.ReadFile(path)
	binary.LittleEndian.PutUint32(b[headerSize:], maxBody-1) // the first record's length field
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	sc := NewScanner("t", bytes.NewReader(b))
	_, err := sc.Next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("a length past the file's end: %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 8<<20 {
		t.Fatalf("the Scanner allocated %d MB for a %d-byte file", got>>20, len(b))
	}
}

// openTestShard writes a 3-record grad-huff shard in a folder of its own
// and opens it; the caller closes it.
func openTestShard(t *testing.T) (dir, path string, r *Reader) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "t.shard")
	writeTestShard(t, path, 3, CodecGradHuff)
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return dir, path, r
}

// A bit flipped in the end-of-records marker reads, to a sequential
// reader, as a record of absurd length: the error says what it more
// likely is. Verify, which also reads the index, names the marker once,
// in the index check's words; before, it named the one fault twice.
func TestScannerNamesADamagedEndMarker(t *testing.T) {
	dir, path, r := openTestShard(t)
	marker := int(r.t.indexOffset) - 4
	r.Close()
	b, _ := os.ReadFile(path)
	b[marker+1] ^= 0x08
	sc := NewScanner("bad.shard", bytes.NewReader(b))
	var err error
	for err == nil {
		_, err = sc.Next()
	}
	if !strings.Contains(err.Error(), "or the end-of-records marker 0xffffffff damaged") {
		t.Fatalf("the scanner on a damaged end marker: %v", err)
	}
	bad := filepath.Join(dir, "bad.shard")
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v := Verify(bad, false)
	if len(v.Damage) != 1 || v.Records != 3 || !strings.Contains(v.Damage[0].Error(), "the end-of-records marker before the index reads 0xfffff7ff") {
		t.Fatalf("verify on a damaged end marker: %d records ok, %v", v.Records, v.Damage)
	}
}

// A record's length field grown past the records reads to the sequential
// pass as a file cut short; with the file's end intact, Verify says the
// length field is damaged, and checks the records after it by the index.
// A file really cut short still reads as truncated.
func TestVerifyNamesADamagedLength(t *testing.T) {
	dir, path, r := openTestShard(t)
	second := r.offsets[1]
	r.Close()
	good, _ := os.ReadFile(path)
	for _, bit := range []byte{0x01, 0x10, 0x40} {
		b := bytes.Clone(good)
		b[second+2] ^= bit // the length's third byte: at least 64 KiB more
		bad := filepath.Join(dir, "bad.shard")
		if err := os.WriteFile(bad, b, 0o644); err != nil {
			t.Fatal(err)
		}
		v := Verify(bad, false)
		var re *RecordError
		if len(v.Damage) != 1 || v.Records != 2 || !errors.As(v.Damage[0], &re) || re.Index != 1 ||
			!strings.Contains(v.Damage[0].Error(), "runs past the end of the records") || strings.Contains(v.Damage[0].Error(), "truncated") {
			t.Fatalf("bit %#x in record 1's length: %d records ok, %v", bit, v.Records, v.Damage)
		}
	}
	cut := filepath.Join(dir, "cut.shard")
	if err := os.WriteFile(cut, good[:second+100], 0o644); err != nil {
		t.Fatal(err)
	}
	if v := Verify(cut, false); len(v.Damage) != 1 || !strings.Contains(v.Damage[0].Error(), "truncated") {
		t.Fatalf("a shard cut short: %v", v.Damage)
	}
}

func TestTruncatedShardIsRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.shard")
	writeTestShard(t, path, 3, CodecGradZstd)
	b, _ := os.ReadFile(path)
	for _, n := range []int{0, 10, len(b) / 2, len(b) - 1} {
		if _, err := NewReader("t", bytes.NewReader(b[:n]), int64(n)); err == nil {
			t.Fatalf("reader accepted %d of %d bytes", n, len(b))
		}
		sc := NewScanner("t", bytes.NewReader(b[:n]))
		var err error
		for err == nil {
			_, err = sc.Next()
		}
		if err == io.EOF {
			t.Fatalf("scanner accepted %d of %d bytes", n, len(b))
		}
	}
}

// A folder or a named pipe where a shard should be is refused by name,
// before it is opened: a pipe would otherwise block Open (and a training
// run) until some writer came.
func TestOpenRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "folder.shard")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ path, want string }{{folder, "a directory, not a shard file"}}
	pipe := filepath.Join(dir, "pipe.shard")
	if err := fixtures.Mkfifo(pipe); err == nil {
		cases = append(cases, struct{ path, want string }{pipe, "a named pipe, not a shard file"})
	} else {
		t.Logf("no named pipe here (%v): only the folder is tried", err)
	}
	for _, c := range cases {
		done := make(chan struct{})
		go func() {
			defer close(done)
			r, err := Open(c.path)
			var re *RecordError
			if err == nil || !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Base(c.path)) {
				t.Errorf("Open(%s) = %v, %v; want a RecordError saying %q", filepath.Base(c.path), r, err, c.want)
			}
			v := Verify(c.path, true)
			if len(v.Damage) != 1 || !strings.Contains(v.Damage[0].Error(), c.want) {
				t.Errorf("Verify(%s) = %v; want one damage saying %q", filepath.Base(c.path), v.Damage, c.want)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("Open(%s) still blocked after 10 s", filepath.Base(c.path))
		}
	}
}

func TestWriterAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "a.shard"))
	if err != nil {
		t.Fatal(err)
	}
	w.Append(&Record{Name: "x", W: 1, H: 1, Channels: 3, Payload: []byte{1}})
	w.Abort()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := &Meta{FormatVersion: Version, Width: 256, Height: 256, Channels: 3,
		Classes: []Class{{0, "n01440764", "tench"}, {1, "n01443537", "goldfish"}},
		Splits:  map[string]Split{"train": {Records: 3, Shards: []ShardInfo{{File: "train-00000.shard", Records: 3, Bytes: 10, CRC32C: "00000000"}}}},
		Stats:   &Stats{Pixels: 5, Mean: [3]float64{1, 2, 3}}}
	if err := WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Classes[1].Name != "goldfish" || got.Splits["train"].Records != 3 || got.Stats.Mean[2] != 3 {
		t.Fatalf("%+v", got)
	}
	bad := []string{`{}`, `{"format_version":1,"width":1,"height":1,"channels":3,"classes":[{"index":3}]}`,
		`{"format_version":1,"width":1,"height":1,"channels":3,"splits":{"train":{"records":2,"shards":[{"file":"../x","records":2}]}}}`,
		`{"format_version":1,"width":1,"height":1,"channels":3,"splits":{"train":{"records":5,"shards":[{"file":"x","records":2}]}}}`}
	for _, b := range bad {
		if _, err := ParseMeta(strings.NewReader(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
}

func FuzzReader(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.shard")
	writeTestShard(f, path, 3, CodecGradZstd)
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	path = filepath.Join(f.TempDir(), "huff.shard")
	writeTestShard(f, path, 3, CodecGradHuff)
	seed, _ = os.ReadFile(path)
	f.Add(seed)
	f.Add([]byte("ALXSHARD"))
	f.Fuzz(func(t *testing.T, b []byte) {
		dec, _ := NewDecoder()
		defer dec.Close()
		if r, err := NewReader("fuzz", bytes.NewReader(b), int64(len(b))); err == nil {
			var rec Record
			var buf []byte
			for i := 0; i < r.Len(); i++ {
				if buf, err = r.ReadRecord(i, &rec, buf); err == nil && rec.W*rec.H <= 1<<16 {
					pix := make([]byte, rec.W*rec.H*3)
					whole := dec.Decode(pix, rec.Codec, rec.Payload, rec.W, rec.H)
					// The row decoder agrees with the whole-image one on
					// whatever the record holds, mirrored or not.
					for _, mirror := range []bool{false, true} {
						rows := dec.DecodeRows(rec.Codec, rec.Payload, rec.W, rec.H, rec.H, mirror, func(y int, row []byte, mirrored bool) {
							want := pix[y*3*rec.W : (y+1)*3*rec.W]
							if mirrored {
								want = refMirror(want)
							}
							if !bytes.Equal(row, want) {
								t.Fatalf("record %d row %d: DecodeRows (mirror %v) differs from Decode", i, y, mirror)
							}
						})
						if (rows == nil) != (whole == nil) {
							t.Fatalf("record %d: Decode says %v, DecodeRows %v", i, whole, rows)
						}
					}
				}
			}
		}
		sc := NewScanner("fuzz", bytes.NewReader(b))
		for i := 0; i < 1000; i++ {
			if _, err := sc.Next(); err != nil && !errors.Is(err, ErrChecksum) {
				break
			}
		}
		// Verify, which mixes the two readers and rewords their faults,
		// names the shard in each fault, and a file it passes whole is one
		// the random-access reader reads whole.
		if len(b) > 1<<20 {
			return
		}
		p := filepath.Join(t.TempDir(), "f.shard")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		v := Verify(p, true)
		for _, err := range v.Damage {
			if err == nil || !strings.Contains(err.Error(), "f.shard") {
				t.Fatalf("a fault that does not name the shard: %v", err)
			}
		}
		if len(v.Damage) == 0 {
			r, err := NewReader("fuzz", bytes.NewReader(b), int64(len(b)))
			if err != nil || r.Len() != v.Records {
				t.Fatalf("verify passed %d records, the reader says %v", v.Records, err)
			}
		}
	})
}

func FuzzMeta(f *testing.F) {
	f.Add([]byte(`{"format_version":1,"width":256,"height":256,"channels":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseMeta(bytes.NewReader(b))
	})
}

func benchImages(b *testing.B) ([][]byte, int, int) {
	rng := rand.New(rand.NewPCG(5, 6))
	var ims [][]byte
	for i := 0; i < 8; i++ {
		ims = append(ims, photoLike(rng, 256, 256))
	}
	return ims, 256, 256
}

func BenchmarkEncode(b *testing.B) {
	for _, codec := range allCodecs {
		b.Run(codec.String(), func(b *testing.B) {
			ims, w, h := benchImages(b)
			enc, _ := NewEncoder(codec)
			var out []byte
			b.SetBytes(int64(w * h * 3))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				out, _ = enc.Encode(out[:0], ims[i%len(ims)], w, h)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, codec := range allCodecs {
		b.Run(codec.String(), func(b *testing.B) {
			ims, w, h := benchImages(b)
			dec, _ := NewDecoder()
			payloads := encodeAll(b, codec, ims, w, h)
			pix := make([]byte, w*h*3)
			b.SetBytes(int64(w * h * 3))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := dec.Decode(pix, codec, payloads[i%len(payloads)], w, h); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGradFilter(b *testing.B) {
	ims, w, h := benchImages(b)
	res := make([]byte, w*h*3)
	scratch := make([]byte, 6*w)
	b.SetBytes(int64(len(res)))
	b.ReportAllocs()
	for b.Loop() {
		gradFilter(res, ims[0], w, h, scratch)
	}
}

func BenchmarkGradUnfilter(b *testing.B) {
	ims, w, h := benchImages(b)
	res := make([]byte, w*h*3)
	gradFilter(res, ims[0], w, h, make([]byte, 6*w))
	pix := make([]byte, len(res))
	b.SetBytes(int64(len(res)))
	b.ReportAllocs()
	for b.Loop() {
		gradUnfilter(pix, res, w, h)
	}
}

// WriteFileAtomic writes through a symbolic link and refuses to replace
// what is not a regular file (a folder here; a device or pipe alike).
func TestWriteFileAtomicTargets(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target.png")
	link := filepath.Join(dir, "link.png")
	if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target.png", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(link, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Errorf("target holds %q", b)
	}
	if err := WriteFileAtomic(dir, []byte("x")); err == nil || !strings.Contains(err.Error(), "is a directory, not a regular file") {
		t.Errorf("a folder: %v", err)
	}
	if err := os.Symlink("missing.png", filepath.Join(dir, "dangling.png")); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "dangling.png"), []byte("x")); err == nil {
		t.Error("a dangling link accepted")
	}
}

// The temporary file is always new: a symbolic link planted where an
// earlier build put it (path.tmp) is neither written through nor renamed
// into place, and writers to one path at once never share a temporary
// file, so the result is always one writer's whole bytes.
func TestWriteFileAtomicTempIsNew(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim.txt")
	if err := os.WriteFile(victim, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "v.png")
	if err := os.Symlink(victim, out+".tmp"); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(out, []byte("png")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "mine" {
		t.Errorf("the planted link's target now holds %q", b)
	}
	if fi, err := os.Lstat(out); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s: %v, %v; want a regular file", out, fi, err)
	}
	w, err := Create(filepath.Join(dir, "a.shard"))
	if err != nil {
		t.Fatal(err)
	}
	if w.tmp == filepath.Join(dir, "a.shard.tmp") || !strings.HasSuffix(w.tmp, ".tmp") {
		t.Errorf("shard temporary %s", w.tmp)
	}
	w.Abort()

	same := filepath.Join(dir, "same.json")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte('a' + g)}, 1<<16)
			for range 20 {
				if err := WriteFileAtomic(same, data); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(same)
	if err != nil || len(b) != 1<<16 || !bytes.Equal(b, bytes.Repeat(b[:1], 1<<16)) {
		t.Errorf("after concurrent writes: %d bytes, %v: not one writer's whole bytes", len(b), err)
	}
	if left, _ := filepath.Glob(TempPattern(same)); len(left) > 0 {
		t.Errorf("left %v", left)
	}
}

func TestTempBase(t *testing.T) {
	for _, tc := range []struct {
		name, base string
		ok         bool
	}{
		{"checkpoint.ckpt.0badf00d.tmp", "checkpoint.ckpt", true},
		{"checkpoint.ckpt.tmp", "checkpoint.ckpt", true},
		{"checkpoint.ckpt.old.tmp", "checkpoint.ckpt.old", true},
		{"checkpoint.ckpt.0BADF00D.tmp", "checkpoint.ckpt.0BADF00D", true},
		{".0badf00d.tmp", ".0badf00d", true},
		{"a.0badf00d.tmp", "a", true},
		{".tmp", "", false},
		{"notes.txt", "", false},
	} {
		base, ok := TempBase(tc.name)
		if base != tc.base || ok != tc.ok {
			t.Errorf("TempBase(%q) = %q, %v; want %q, %v", tc.name, base, ok, tc.base, tc.ok)
		}
		if ok && !IsTempOf(tc.name, base) {
			t.Errorf("TempBase(%q) = %q, which IsTempOf does not match", tc.name, base)
		}
	}
}

// IsTempOf matches exactly the temporary names made for a file, never a
// user's file that merely ends in .tmp.
func TestIsTempOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"checkpoint.ckpt.0badf00d.tmp", true},
		{"checkpoint.ckpt.tmp", true},
		{"checkpoint.ckpt.old.tmp", false},
		{"checkpoint.ckpt.0BADF00D.tmp", false},
		{"checkpoint.ckpt.0badf00d1.tmp", false},
		{"checkpoint.ckpt", false},
		{"xcheckpoint.ckpt.0badf00d.tmp", false},
	} {
		if got := IsTempOf(tc.name, "checkpoint.ckpt"); got != tc.want {
			t.Errorf("IsTempOf(%q) = %v", tc.name, got)
		}
	}
	// What createTemp makes, it matches.
	f, tmp, err := createTemp(filepath.Join(t.TempDir(), "checkpoint.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !IsTempOf(filepath.Base(tmp), "checkpoint.ckpt") {
		t.Errorf("createTemp's %s is not matched", tmp)
	}
}

// A folder where a shard belongs is refused when the writer is created,
// by name, not by the rename at the end ("file exists").
func TestCreateRefusesDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "train-00000.shard")
	if err := os.MkdirAll(filepath.Join(p, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(p); err == nil || !strings.Contains(err.Error(), "is a directory, not a shard") {
		t.Fatalf("Create over a folder: %v", err)
	}
}
