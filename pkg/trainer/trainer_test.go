package trainer

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/pkg/alexnet"
	"github.com/alexnet-repro/alexnet/pkg/pipeline"
	"gonum.org/v1/plot/plotter"

	"github.com/alexnet-repro/alexnet/internal/fixtures"
)

func TestCheckpointRoundTripAndDamage(t *testing.T) {
	c := &Checkpoint{Model: "small", Classes: 10, InputHW: 28, Seed: 3, Step: 17, Epoch: 2, Position: Position{2, 5},
		Schedule: Schedule{Kind: "plateau", LR: 0.01, Patience: 2, MaxDrops: 3, Best: 0.3},
		Mean:     [3]float32{1, 2, 3}, Std: [3]float32{4, 5, 6}, Hyper: &Hyper{Momentum: 0.9, WeightDecay: 5e-4, Lighting: 0.1},
		Tensors: []Tensor{{Name: "a", Shape: []int{2, 3}, W: []float32{1, 2, 3, 4, 5, 6}, V: []float32{-1, 0, 1, 2, 3, 4}},
			{Name: "b", Shape: []int{1}, W: []float32{7}, V: []float32{8}}}}
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	c.Encode(&a)
	got.Encode(&b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) || got.Tensors[0].V[0] != -1 || got.Position.Batch != 5 {
		t.Fatalf("round trip changed the checkpoint: %+v", got)
	}
	raw := a.Bytes()
	if h, err := ReadHeader(path); err != nil || h.Model != "small" || h.Step != 17 || len(h.Tensors) != 2 || h.Tensors[0].W != nil {
		t.Fatalf("ReadHeader: %+v, %v", h, err)
	}
	// ReadHeader checks the CRC too: a flip anywhere, the tensors
	// included, is damage, not a header to take flags from.
	badPath := filepath.Join(t.TempDir(), "bad.ckpt")
	for _, pos := range []int{0, 9, 20, len(raw) - 10, len(raw) - 1} {
		bad := bytes.Clone(raw)
		bad[pos] ^= 4
		if _, err := Decode(bad); !errors.Is(err, ErrCheckpoint) {
			t.Fatalf("flip at %d: %v", pos, err)
		}
		if err := os.WriteFile(badPath, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadHeader(badPath); !errors.Is(err, ErrCheckpoint) {
			t.Fatalf("ReadHeader, flip at %d: %v", pos, err)
		}
	}
	if _, err := Decode(raw[:len(raw)/2]); err == nil {
		t.Fatal("truncated checkpoint accepted")
	}
	os.WriteFile(badPath, raw[:len(raw)/2], 0o644)
	if _, err := ReadHeader(badPath); err == nil {
		t.Fatal("ReadHeader accepted a truncated checkpoint")
	}
	// Cut inside its header: said as such, not as a bare "header length".
	hdr := int(binary.LittleEndian.Uint32(raw[8:]))
	os.WriteFile(badPath, raw[:16+hdr/2], 0o644)
	if _, err := ReadHeader(badPath); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), fmt.Sprintf("its header says %d bytes, and the file holds %d after the first 16: cut short", hdr, hdr/2)) {
		t.Fatalf("a checkpoint cut inside its header: %v", err)
	}
	// Settings no run can have, under a valid CRC, are damage too.
	for _, h := range []Hyper{{Momentum: 1}, {Momentum: 0.999999999}, {Momentum: -0.1}, {WeightDecay: -1}, {WeightDecay: math.Inf(1)}, {WeightDecay: 1e300}, {Lighting: -1},
		{Lighting: float32(math.Inf(1))}, {Momentum: math.NaN()}} {
		bad := *c
		bad.Hyper = &h
		var b bytes.Buffer
		if err := bad.Encode(&b); err != nil {
			continue // NaN cannot even be written as JSON
		}
		if _, err := Decode(b.Bytes()); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("hyper %+v: %v", h, err)
		}
		if err := os.WriteFile(badPath, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadHeader(badPath); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("ReadHeader, hyper %+v: %v", h, err)
		}
	}
	// Shapes that do not fill the tensor bytes exactly, under a valid CRC:
	// both readers refuse them, ReadHeader without reading any value.
	payload := raw[12+int(binary.LittleEndian.Uint32(raw[8:])) : len(raw)-4]
	for _, tc := range []struct {
		shape []int
		want  string
	}{{[]int{7}, "tensor b truncated"}, {[]int{2, 2}, "16 bytes after the last tensor"}, {[]int{2, -3}, "has shape"}} {
		bad := *c
		bad.Tensors = slices.Clone(c.Tensors)
		bad.Tensors[0].Shape = tc.shape
		hdr, err := json.Marshal(&bad)
		if err != nil {
			t.Fatal(err)
		}
		b := binary.LittleEndian.AppendUint32(append([]byte{}, ckptMagic[:]...), uint32(len(hdr)))
		b = append(append(b, hdr...), payload...)
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
		if _, err := Decode(b); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("shape %v: Decode: %v, want %q", tc.shape, err, tc.want)
		}
		if err := os.WriteFile(badPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadHeader(badPath); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("shape %v: ReadHeader: %v, want %q", tc.shape, err, tc.want)
		}
	}
}

func TestPlateauSchedule(t *testing.T) {
	s, err := ParseSchedule("plateau", 0.01, 2)
	if err != nil {
		t.Fatal(err)
	}
	// After the first drop, 0.41 is no improvement on the run's best
	// (0.40) but is the new rate's first figure: the paper's rule counts
	// from it ("stopped improving with the current learning rate").
	errs := []float64{0.5, 0.4, 0.41, 0.42, 0.41, 0.405, 0.41, 0.41, 0.39, 0.39, 0.39, 0.39, 0.39, 0.39}
	var lrs []float64
	for i, e := range errs {
		s.EndEpoch(i+1, e)
		lrs = append(lrs, s.LR)
	}
	// Drops after two epochs without improvement on the current rate's
	// best, at most three times. The run's best would have dropped again
	// after epoch 6 (0.41 and 0.405 both above 0.40).
	want := []float64{0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.001, 0.0001, 0.0001, 0.0001, 0.00001, 0.00001, 0.00001, 0.00001}
	for i := range want {
		if d := lrs[i] - want[i]; d > 1e-12 || d < -1e-12 {
			t.Fatalf("epoch %d lr %g want %g (all %v)", i+1, lrs[i], want[i], lrs)
		}
	}
	st, _ := ParseSchedule("step:3", 0.1, 0)
	for i := 1; i <= 6; i++ {
		st.EndEpoch(i, 0)
	}
	if st.LR > 0.0011 || st.LR < 0.0009 {
		t.Fatalf("step:3 after 6 epochs: %g", st.LR)
	}
	for _, bad := range []string{"step:0", "step:x", "cosine"} {
		if _, err := ParseSchedule(bad, 0.1, 1); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzCheckpoint(f *testing.F) {
	// A header Decode accepts, so that mutations reach the tensors.
	c := &Checkpoint{Model: "m", InputHW: 8, Mean: [3]float32{1, 2, 3}, Std: [3]float32{4, 5, 6},
		Tensors: []Tensor{{Name: "a", Shape: []int{2}, W: []float32{1, 2}, V: []float32{3, 4}}}}
	var seed bytes.Buffer
	c.Encode(&seed)
	if _, err := Decode(seed.Bytes()); err != nil {
		f.Fatalf("the seed is refused: %v", err)
	}
	f.Add(seed.Bytes())
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		full, err := Decode(data)
		// ReadHeader streams the file instead of holding it, and checks
		// the same CRC, header and shapes: it takes exactly what Decode
		// takes, reads it alike, and never panics on the rest.
		path := filepath.Join(dir, "ck")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		h, herr := ReadHeader(path)
		if (err == nil) != (herr == nil) {
			t.Fatalf("Decode: %v; ReadHeader: %v", err, herr)
		}
		if err == nil && (h.Model != full.Model || h.InputHW != full.InputHW || len(h.Tensors) != len(full.Tensors)) {
			t.Fatalf("Decode took it, ReadHeader gives %+v", h)
		}
	})
}

func TestMetricsResumeAndPlots(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenMetrics(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for s := int64(1); s <= 10; s++ {
		l.Add(Metric{Kind: "step", Step: s, Loss: 2.3 / float64(s), LR: 0.01})
		if s%5 == 0 {
			l.Add(Metric{Kind: "epoch", Step: s, Epoch: int(s / 5), Top1Err: 0.5 / float64(s), Top5Err: 0.1, ValLoss: 1})
		}
	}
	l.Close()
	// Resuming from step 5 drops what came after it.
	l, err = OpenMetrics(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(l.All()); n != 6 {
		t.Fatalf("kept %d lines, want 6", n)
	}
	l.Close()
	if err := WritePlots(dir, l.All()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"loss.png", "error.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() < 1000 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	w := make([]float32, 4*3*5*5)
	for i := range w {
		w[i] = float32(i%7) - 3
	}
	p := filepath.Join(dir, "f.png")
	if err := WriteFilters(p, w, []int{4, 3, 5, 5}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFilters(p, w, []int{4, 1, 5, 5}); err == nil {
		t.Fatal("accepted a non-RGB filter bank")
	}
}

// train --json: snake_case keys like --eval-only's, and no error rates
// for a run that measured none.
func TestResultJSON(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want string
	}{
		{Result{Steps: 7, Epoch: 0, Seconds: 1.5, RunSeconds: 1.5, Checkpoint: "c", Stopped: "max-steps"},
			`{"stopped":"max-steps","steps":7,"epochs":0,"seconds":1.5,"run_seconds":1.5,"evaluated":false,"checkpoint":"c"}`},
		{Result{Steps: 90, Epoch: 3, Top1Err: 0.25, Top5Err: 0, Seconds: 2, RunSeconds: 9, Evaluated: true, ValStep: 90, Checkpoint: "c", Stopped: "epochs"},
			`{"stopped":"epochs","steps":90,"epochs":3,"seconds":2,"run_seconds":9,"evaluated":true,"top1_err":0.25,"top5_err":0,"val_step":90,"checkpoint":"c"}`},
	} {
		b, err := json.Marshal(tc.r)
		if err != nil || string(b) != tc.want {
			t.Errorf("got %s (%v)\nwant %s", b, err, tc.want)
		}
	}
}

func TestEpochLeft(t *testing.T) {
	for _, tc := range []struct {
		batches, batch int
		rate           float64
		want           string
	}{
		{10008, 128, 3000, "7m7s"}, // ImageNet's rest of an epoch on a GPU
		{100, 128, 640, "20s"},     // 12,800 images at 640 img/s
		{3, 128, 1000, "400ms"},    // under a minute: tenths
		{0, 128, 1000, "0s"},       // the epoch's last batch
		{5, 128, 0, "?"},           // no rate yet
		{5, 128, math.Inf(1), "?"}, // a log line with no elapsed time
	} {
		if got := epochLeft(tc.batches, tc.batch, tc.rate); got != tc.want {
			t.Errorf("epochLeft(%d, %d, %g) = %q, want %q", tc.batches, tc.batch, tc.rate, got, tc.want)
		}
	}
}

// A checkpoint names what its reader must understand: a pending
// validation is a resume need this build knows; a need it does not know
// is refused as a newer build's, not read as if it were not there, by
// every reader (Needs) or by a resume only (ResumeNeeds).
func TestCheckpointNeeds(t *testing.T) {
	c := &Checkpoint{Model: "small", Classes: 10, InputHW: 28, Step: 4, Epoch: 1, Position: Position{1, 0},
		Schedule: Schedule{Kind: "plateau", LR: 0.01}, Mean: [3]float32{1, 2, 3}, Std: [3]float32{4, 5, 6},
		Tensors: []Tensor{{Name: "a", Shape: []int{1}, W: []float32{1}, V: []float32{0}}}}
	encode := func(c *Checkpoint) []byte {
		var b bytes.Buffer
		if err := c.Encode(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	if bytes.Contains(encode(c), []byte(`needs"`)) {
		t.Error("a plain checkpoint names needs")
	}
	c.ValPending = true
	got, err := Decode(encode(c))
	if err != nil || !slices.Equal(got.ResumeNeeds, []string{"val_pending"}) || got.Needs != nil || !got.ValPending || got.CheckNeeds(true) != nil {
		t.Fatalf("a pending validation: needs %v, resume needs %v, %v", got.Needs, got.ResumeNeeds, err)
	}
	// Re-encoding what was read repeats the bytes.
	if !bytes.Equal(encode(got), encode(c)) {
		t.Error("a decoded checkpoint with needs encodes to other bytes")
	}
	// A resume need this build does not know stops a resume only.
	c.ResumeNeeds = []string{"future_state"}
	got, err = Decode(encode(c))
	if err != nil {
		t.Fatalf("an unknown resume need stopped a reader of the weights: %v", err)
	}
	if err := got.CheckNeeds(true); !errors.Is(err, ErrNewerCheckpoint) || !strings.Contains(err.Error(), `resuming it needs "future_state"`) {
		t.Errorf("resuming with an unknown resume need: %v", err)
	}
	// A need this build does not know stops every reader.
	c.Needs = []string{"fp16_tensors"}
	raw := encode(c)
	_, err = Decode(raw)
	if !errors.Is(err, ErrNewerCheckpoint) || errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), `needs "fp16_tensors"`) {
		t.Errorf("an unknown need: %v, want ErrNewerCheckpoint naming it", err)
	}
	path := filepath.Join(t.TempDir(), "c.ckpt")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHeader(path); !errors.Is(err, ErrNewerCheckpoint) {
		t.Errorf("ReadHeader of an unknown need: %v", err)
	}
	// Damage in such a file is damage, located where it is, not a newer
	// build's header.
	bad := bytes.Clone(raw)
	bad[len(bad)-6] ^= 1 // in the last tensor's momenta
	if _, err := Decode(bad); !errors.Is(err, ErrCheckpoint) || errors.Is(err, ErrNewerCheckpoint) || !strings.Contains(err.Error(), "in tensor a") {
		t.Errorf("a flipped bit in a newer build's tensor: %v", err)
	}
}

// A checkpoint's first bytes say whether a file is a damaged checkpoint
// or another file, and an empty file is called empty.
func TestCheckpointStartWords(t *testing.T) {
	good := ckptMagic
	oneBit := good
	oneBit[3] ^= 0x10
	twoBits := oneBit
	twoBits[6] ^= 0x01
	threeBits := twoBits
	threeBits[0] ^= 0x80
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not an intact checkpoint: empty (0 bytes)"},
		{"short", []byte("0123456789"), "not an intact checkpoint: 10 bytes, shorter than any checkpoint"},
		{"one bit", append(oneBit[:], make([]byte, 64)...), "its first 8 bytes are a checkpoint's but for 1 flipped bit: damaged"},
		{"two bits", append(twoBits[:], make([]byte, 64)...), "but for 2 flipped bits: damaged"},
		{"three bits", append(threeBits[:], make([]byte, 64)...), "it does not begin as one (a file train did not write?)"},
	} {
		p := filepath.Join(dir, tc.name+".ckpt")
		if err := os.WriteFile(p, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, lerr := Load(p)
		_, derr := Decode(tc.data)
		for _, err := range []error{lerr, derr} {
			if !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), strings.TrimPrefix(tc.want, "not an intact checkpoint: ")) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
			}
		}
	}
}

// What is not a checkpoint is refused from its first bytes, or before it
// is opened: a huge file is not read into memory, a device not read
// without end, a named pipe not waited on.
func TestLoadRefusesNonCheckpointsEarly(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.tar")
	if err := os.WriteFile(big, []byte("ustar not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 8<<30); err != nil { // sparse: no blocks written
		t.Skipf("sparse file: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := fixtures.Mkfifo(fifo); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	shardDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(shardDir, "meta.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	prevOnly := t.TempDir()
	if err := os.WriteFile(filepath.Join(prevOnly, PrevCheckpointFile), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want, wantHeader string }{
		{prevOnly, "holds no checkpoint.ckpt, and the run's previous checkpoint cannot be used either: " + filepath.Join(prevOnly, PrevCheckpointFile), "is a directory, not a checkpoint file"},
		{big, "it does not begin as one", ""},
		{"/dev/zero", "not a checkpoint file", ""},
		{fifo, "not a checkpoint file", ""},
		{dir + "/missing", "no such file", ""},
		// Load takes a run folder; ReadHeader a file only.
		{shardDir, "is a shard directory (it holds meta.json), not a run folder or a checkpoint", "is a directory, not a checkpoint file"},
		{t.TempDir(), "holds no checkpoint.ckpt: not a run folder", "is a directory, not a checkpoint file"},
	} {
		done := make(chan error, 2)
		go func() {
			_, err := Load(tc.path)
			done <- err
			_, err = ReadHeader(tc.path)
			done <- err
		}()
		for _, fn := range []string{"Load", "ReadHeader"} {
			want := tc.want
			if fn == "ReadHeader" && tc.wantHeader != "" {
				want = tc.wantHeader
			}
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s(%s): %v, want %q", fn, tc.path, err, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s(%s) did not return", fn, tc.path)
			}
		}
	}
}

// A checkpoint whose checksum fails says where: which tensor's bytes hold
// the damage (by its own CRC, kept in the header), or that every tensor is
// intact and the header or the checksum is what changed. One written before
// tensors had CRCs says only that it is damaged.
func TestCheckpointDamageLocated(t *testing.T) {
	c := &Checkpoint{Model: "small", Classes: 10, InputHW: 28, Mean: [3]float32{1, 2, 3}, Std: [3]float32{4, 5, 6},
		Tensors: []Tensor{{Name: "conv1.weight", Shape: []int{4}, W: []float32{1, 2, 3, 4}, V: []float32{5, 6, 7, 8}},
			{Name: "conv1.bias", Shape: []int{1}, W: []float32{9}, V: []float32{10}},
			{Name: "fc.weight", Shape: []int{2, 2}, W: []float32{11, 12, 13, 14}, V: []float32{15, 16, 17, 18}}}}
	var enc bytes.Buffer
	if err := c.Encode(&enc); err != nil {
		t.Fatal(err)
	}
	if c.Tensors[0].CRC != 0 {
		t.Fatal("Encode changed the checkpoint it was given")
	}
	raw := enc.Bytes()
	n := int(binary.LittleEndian.Uint32(raw[8:]))
	data := 12 + n // where the tensors begin: 32, 8 and 32 bytes
	key := bytes.Index(raw, []byte(`"input_hw":28`)) + len(`"input_hw":2`)
	old := func() []byte { // the same checkpoint as written before tensor CRCs
		hdr, _ := json.Marshal(c)
		var b bytes.Buffer
		b.Write(ckptMagic[:])
		binary.Write(&b, binary.LittleEndian, uint32(len(hdr)))
		b.Write(hdr)
		b.Write(raw[data : len(raw)-4])
		binary.Write(&b, binary.LittleEndian, crc32.Checksum(b.Bytes(), crcTable))
		return b.Bytes()
	}()
	if _, err := Decode(old); err != nil {
		t.Fatalf("a checkpoint without tensor CRCs: %v", err)
	}
	for _, c := range []struct {
		name string
		raw  []byte
		at   []int
		want string
	}{
		{"first tensor", raw, []int{data + 5}, fmt.Sprintf("checksum mismatch, in tensor conv1.weight (bytes %d–%d, or its CRC in the header); the other 2 tensors are intact", data, data+31)},
		{"last byte of the last tensor", raw, []int{len(raw) - 5}, fmt.Sprintf("in tensor fc.weight (bytes %d–%d, or its CRC in the header); the other 2", data+40, data+71)},
		{"two tensors", raw, []int{data + 32, data + 45}, "in tensor conv1.bias (bytes " + fmt.Sprint(data+32) + "–" + fmt.Sprint(data+39) + ", or its CRC in the header) and tensor fc.weight (bytes " + fmt.Sprint(data+40) + "–" + fmt.Sprint(data+71) + ", or its CRC in the header); the other tensor is intact"},
		{"the header, still JSON", raw, []int{key}, "checksum mismatch, in the header or the checksum (every tensor is intact)"},
		{"the header, no longer JSON", raw, []int{12}, "checksum mismatch, in the header, whose JSON no longer reads (invalid character"},
		{"the checksum", raw, []int{len(raw) - 2}, "in the header or the checksum (every tensor is intact)"},
		{"an older checkpoint", old, []int{len(old) - 20}, "checksum mismatch"},
		{"cut short", raw[:len(raw)-9], nil, "checksum mismatch, in the file's length: its header's tensors take 72 bytes and the file holds 63 for them (a torn or appended copy, or a damaged header)"},
		{"appended to", append(bytes.Clone(raw), 1, 2, 3, 4), nil, "in the file's length: its header's tensors take 72 bytes and the file holds 76 for them"},
	} {
		bad := bytes.Clone(c.raw)
		for _, at := range c.at {
			bad[at] ^= 0x01 // 28 becomes 29: the header still reads
		}
		_, err := Decode(bad)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if c.name == "an older checkpoint" && strings.Contains(err.Error(), ", in ") {
			t.Errorf("%s: located without CRCs to go by: %v", c.name, err)
		}
		path := filepath.Join(t.TempDir(), "c.ckpt")
		os.WriteFile(path, bad, 0o644)
		if _, err := ReadHeader(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s, ReadHeader: %v, want %q", c.name, err, c.want)
		}
	}
}

// The memory of a float32 slice is written as it is only where it already
// reads as the file's little-endian bytes; the converting path, which a
// big-endian machine takes, gives the same bytes and the same values.
func TestCheckpointBytesEitherEndian(t *testing.T) {
	n := 800000 // over 3 of the 1 MiB chunks, and many 64 KiB conversion blocks
	w, v := make([]float32, n), make([]float32, n)
	for i := range w {
		w[i], v[i] = float32(i)*0.37-5, float32(-i)/3
	}
	w[7], v[9] = float32(math.Inf(-1)), math.Float32frombits(0x7fc00001) // a NaN payload kept bit for bit
	c := &Checkpoint{Model: "m", InputHW: 8, Mean: [3]float32{1, 2, 3}, Std: [3]float32{4, 5, 6},
		Tensors: []Tensor{{Name: "w", Shape: []int{n}, W: w, V: v}, {Name: "empty", Shape: []int{1}, W: []float32{0}, V: []float32{1}}}}
	encode := func(native bool) []byte {
		defer func(was bool) { littleEndian = was }(littleEndian)
		littleEndian = native
		var b bytes.Buffer
		if err := c.Encode(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	fast, slow := encode(true), encode(false)
	if !littleEndian {
		t.Skip("a big-endian machine: its memory is not the file's bytes")
	}
	if !bytes.Equal(fast, slow) {
		t.Fatal("the two paths wrote different bytes")
	}
	for _, native := range []bool{true, false} {
		littleEndian = native
		got, err := Decode(fast)
		littleEndian = true
		if err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if math.Float32bits(got.Tensors[0].W[i]) != math.Float32bits(w[i]) || math.Float32bits(got.Tensors[0].V[i]) != math.Float32bits(v[i]) {
				t.Fatalf("native %v: value %d read back as %v, %v", native, i, got.Tensors[0].W[i], got.Tensors[0].V[i])
			}
		}
	}
}

// Saving an AlexNet-sized checkpoint (61M parameters and their momenta,
// 0.49 GB) is a pause in training; this measures the encode and the CRCs
// without the disk.
func BenchmarkCheckpointEncode(b *testing.B) {
	c := bigCheckpoint()
	b.SetBytes(int64(8 * len(c.Tensors[0].W)))
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Encode(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckpointDecode(b *testing.B) {
	var enc bytes.Buffer
	if err := bigCheckpoint().Encode(&enc); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(enc.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(enc.Bytes()); err != nil {
			b.Fatal(err)
		}
	}
}

func bigCheckpoint() *Checkpoint {
	n := 61_000_000
	w, v := make([]float32, n), make([]float32, n)
	for i := range w { // touched, so the pages are real ones and not the zero page
		w[i], v[i] = float32(i), -float32(i)
	}
	return &Checkpoint{Model: "m", InputHW: 8, Mean: [3]float32{1, 2, 3}, Std: [3]float32{4, 5, 6},
		Tensors: []Tensor{{Name: "all", Shape: []int{n}, W: w, V: v}}}
}

// A checkpoint's tensors must be its model's parameters as this build
// defines them, in order and shape: the same element count in another
// shape, an extra tensor or a renamed one is refused, naming the tensor.
func TestCheckpointParamsMatchSpec(t *testing.T) {
	spec, err := alexnet.Build("small", 4, 20)
	if err != nil {
		t.Fatal(err)
	}
	var good []Tensor
	for _, p := range spec.Params() {
		good = append(good, Tensor{Name: p.Name, Shape: p.Shape, W: make([]float32, p.Size()), V: make([]float32, p.Size())})
	}
	ck := &Checkpoint{Model: "small", Classes: 4, InputHW: 20, Tensors: good}
	if params, err := ck.Params(spec); err != nil || len(params) != len(good) {
		t.Fatalf("the spec's own tensors: %v", err)
	}
	reversed := slices.Clone(good[0].Shape)
	slices.Reverse(reversed)
	for _, tc := range []struct {
		name string
		edit func([]Tensor) []Tensor
		want string
	}{
		{"same count, other shape", func(ts []Tensor) []Tensor { ts[0].Shape = reversed; return ts }, "tensor 0 is conv1.weight"},
		{"renamed", func(ts []Tensor) []Tensor { ts[1].Name = "conv1.weight"; return ts }, "tensor 1 is conv1.weight"},
		{"extra", func(ts []Tensor) []Tensor { return append(ts, Tensor{Name: "extra", Shape: []int{1}}) }, "holds 9 tensors"},
		{"missing", func(ts []Tensor) []Tensor { return ts[:len(ts)-1] }, "holds 7 tensors"},
	} {
		bad := *ck
		ts := make([]Tensor, len(good))
		for i, g := range good {
			ts[i] = g
			ts[i].Shape = slices.Clone(g.Shape)
		}
		bad.Tensors = tc.edit(ts)
		if _, err := bad.Params(spec); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "another model definition") {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestReadableTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		whole  bool
		want   string
	}{
		{100, 1404, false, "200 400 600 800 1000 1200 1400"},
		{0.33, 1.15, false, "0.4 0.5 0.6 0.7 0.8 0.9 1.0 1.1"},
		{-0.02, 2.3, false, "0.00 0.25 0.50 0.75 1.00 1.25 1.50 1.75 2.00 2.25"},
		{0, 2, true, "0 1 2"},
		{0, 89, true, "0 10 20 30 40 50 60 70 80"},
		{0, 90, true, "0 10 20 30 40 50 60 70 80 90"},
		{0.57, 22.3, false, "2.5 5.0 7.5 10.0 12.5 15.0 17.5 20.0"},
		{0.57, 19.3, false, "2 4 6 8 10 12 14 16 18"},
		{-3, 3, false, "-3 -2 -1 0 1 2 3"},
	} {
		var got []string
		for _, tk := range (readableTicks{whole: c.whole}).Ticks(c.lo, c.hi) {
			if tk.Value < c.lo-1e-9 || tk.Value > c.hi+1e-9 {
				t.Errorf("%g..%g: tick %g outside the range", c.lo, c.hi, tk.Value)
			}
			got = append(got, tk.Label)
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("%g..%g (whole %v): ticks %q, want %q", c.lo, c.hi, c.whole, g, c.want)
		}
	}
	// A flat or unbounded axis gets no ticks rather than a loop.
	for _, r := range [][2]float64{{1, 1}, {0, math.Inf(1)}, {math.NaN(), 1}} {
		if ts := (readableTicks{}).Ticks(r[0], r[1]); len(ts) != 0 {
			t.Errorf("%g..%g: ticks %v", r[0], r[1], ts)
		}
	}
}

// A one-epoch run's error.png spans epochs 0 to 1, not -1 to 1.
func TestErrorPlotOfOneEpoch(t *testing.T) {
	pt := plotter.XYs{{X: 0, Y: 12}}
	p, err := errorPlot(pt, pt, pt)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, tk := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
		labels = append(labels, tk.Label)
	}
	if p.X.Min != 0 || p.X.Max != 1 || strings.Join(labels, " ") != "0 1" {
		t.Fatalf("epoch axis %g..%g, ticks %v", p.X.Min, p.X.Max, labels)
	}
	// Errors near 100%: room above the lines for the legend, and no
	// error rate over 100% labelled in it.
	hi := plotter.XYs{{X: 0, Y: 100}, {X: 1, Y: 98}}
	if p, err = errorPlot(hi, plotter.XYs{{X: 0, Y: 97}, {X: 1, Y: 96}}, hi); err != nil {
		t.Fatal(err)
	}
	labels = nil
	for _, tk := range p.Y.Tick.Marker.Ticks(p.Y.Min, p.Y.Max) {
		labels = append(labels, tk.Label)
	}
	if p.Y.Max < 100+0.3*(100-96)-1e-9 || labels[len(labels)-1] != "100" {
		t.Fatalf("error axis %g..%g, ticks %v: want room above 100 and no label past it", p.Y.Min, p.Y.Max, labels)
	}
}

// The CPU backend's logits of a ten-crop slot, converted a batch at a
// time, are those of the whole slot converted at once and evaluated in
// batches, bit for bit.
func TestCPULogitsOfTenCrops(t *testing.T) {
	spec, err := alexnet.Build("small", 4, 16)
	if err != nil {
		t.Fatal(err)
	}
	params, err := alexnet.InitParams(spec, "he", 3)
	if err != nil {
		t.Fatal(err)
	}
	mean, std := [3]float32{120, 110, 100}, [3]float32{60, 55, 50}
	be, err := NewCPU(spec, 3, params, 1, mean, std)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	s := pipeline.NewSlot(2, 10, 16) // 20 crops: 6 whole batches of 3 and 2 over
	s.N, s.Crop, s.Views = 20, 16, 10
	for i := range s.Pixels {
		s.Pixels[i] = uint8(i * 7)
	}
	for i := range s.Offsets[:s.N] {
		s.Offsets[i] = [3]float32{float32(i), -float32(i), 0.5}
	}
	got, err := be.Logits(s)
	if err != nil {
		t.Fatal(err)
	}
	net := be.(*cpuBackend).net
	x := s.Normalize(nil, mean, std)
	per := 3 * 16 * 16
	var want []float32
	for lo := 0; lo < s.N; lo += 3 {
		n := min(3, s.N-lo)
		l, err := net.Eval(x[lo*per:(lo+n)*per], n)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, l...)
	}
	if len(got) != 20*4 || !slices.Equal(got, want) {
		t.Errorf("logits %v\nwant %v", got, want)
	}
}
