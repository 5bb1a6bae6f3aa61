package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/alexnet-repro/alexnet/shards"
	"github.com/alexnet-repro/alexnet/tools/bench/internal/benchstat"
)

// writeShards makes a small train split: n records of w×h noise in
// shards of per, labels cycling through 4 classes.
func writeShards(t *testing.T, n, per, w, h int) string {
	t.Helper()
	dir := t.TempDir()
	enc, err := shards.NewEncoder(shards.CodecGradHuff)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	m := &shards.Meta{FormatVersion: shards.Version, Width: w, Height: h, Channels: 3, Splits: map[string]shards.Split{},
		Stats: &shards.Stats{Mean: [3]float64{120, 115, 100}, Std: [3]float64{60, 58, 57}, PCAEigval: [3]float64{3, 2, 1},
			PCAEigvec: [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}}
	for c := range 4 {
		m.Classes = append(m.Classes, shards.Class{Index: c, WNID: fmt.Sprintf("n%08d", c)})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	split := shards.Split{Records: n}
	for s := 0; s*per < n; s++ {
		wr, err := shards.Create(filepath.Join(dir, shards.ShardName("train", s)))
		if err != nil {
			t.Fatal(err)
		}
		for id := s * per; id < min(n, (s+1)*per); id++ {
			pix := make([]byte, w*h*3)
			for i := range pix {
				pix[i] = byte(rng.IntN(64) + i%97)
			}
			payload, err := enc.Encode(nil, pix, w, h)
			if err != nil {
				t.Fatal(err)
			}
			rec := shards.Record{ID: uint64(id), Label: int32(id % 4), Name: fmt.Sprintf("n0000000%d_img%d.JPEG", id%2, id), Codec: shards.CodecGradHuff, W: w, H: h, Channels: 3, Payload: payload}
			if err := wr.Append(&rec); err != nil {
				t.Fatal(err)
			}
		}
		info, err := wr.Close()
		if err != nil {
			t.Fatal(err)
		}
		split.Shards = append(split.Shards, info)
	}
	m.Splits["train"] = split
	if err := shards.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRunJSON(t *testing.T) {
	dir := writeShards(t, 30, 8, 40, 36)
	var out, errs bytes.Buffer
	code := run([]string{"--shards", dir, "--batches", "7", "--batch", "8", "--workers", "3", "--ceiling-time", "20ms", "--rounds", "2", "--quality=false", "--json"}, &out, &errs)
	// Shards without their JPEGs: ours alone, and exit 3 says so.
	if code != benchstat.ExitNoReference {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	if !strings.Contains(rep.Warning, "--batches 7") {
		t.Errorf("a 7-batch run carries no warning: %q", rep.Warning)
	}
	if !rep.DigestsMatch || len(rep.Digest) != 64 || rep.Digest != rep.DigestAll {
		t.Errorf("digests %q and %q", rep.Digest, rep.DigestAll)
	}
	if want := 2 * len(spread(runtime.NumCPU(), 4)); len(rep.OneCore) != want || len(rep.AllCores) != 2 {
		t.Errorf("%d one-core runs (want %d), %d all-cores runs", len(rep.OneCore), want, len(rep.AllCores))
	}
	for _, r := range rep.OneCore {
		if r.Ceilings.InflateOnly <= 0 || r.OfInflateCeiling <= 0 || r.CPU < 0 {
			t.Errorf("one-core run %+v", r)
		}
	}
	if rep.AllCores[1].Scaling <= 0 {
		t.Errorf("all-cores runs %+v", rep.AllCores)
	}
	if rep.Crop != 36*7/8 || rep.Records != 30 || rep.Shards != 4 {
		t.Errorf("crop %d, %d records in %d shards", rep.Crop, rep.Records, rep.Shards)
	}
	for _, r := range []runResult{rep.One, rep.All} {
		// 6 timed batches of 8 from 30 records, the last of each epoch
		// short: 8 8 8 6 | 8 8 8 6 | ..., warm-up batch first.
		if r.Batches != 6 || r.Images != 8+8+6+8+8+8 || r.ImgPerSec <= 0 || len(r.Stages) != 4 {
			t.Errorf("%s: %d batches, %d images, %.0f img/s, %d stages", r.Label, r.Batches, r.Images, r.ImgPerSec, len(r.Stages))
		}
	}
	if rep.All.Decoders != 3 || rep.One.Decoders != 1 {
		t.Errorf("decoders %d and %d", rep.One.Decoders, rep.All.Decoders)
	}
	c := rep.Ceilings
	if c.InflateOnly <= 0 || c.FullDecode <= 0 || c.Memcpy <= c.FullDecode || len(rep.Goals) != 3 {
		t.Errorf("ceilings %+v, goals %+v", c, rep.Goals)
	}
	// Shards from elsewhere come without their JPEGs: the reference says
	// why it did not run, and ours is measured all the same.
	if ref := rep.Reference; ref == nil || !strings.Contains(ref.Skipped, "--reference-images") || len(ref.Runs) != 0 {
		t.Errorf("reference %+v", ref)
	}
}

func TestRunText(t *testing.T) {
	dir := writeShards(t, 20, 10, 32, 32)
	var out, errs bytes.Buffer
	if code := run([]string{"--shards", dir, "--batches", "3", "--batch", "4", "--workers", "2", "--ceiling-time", "10ms"}, &out, &errs); code != benchstat.ExitNoReference {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	for _, want := range []string{"1 worker, 1 core", "2 workers, 2 cores", "Huffman decoding alone", "goals:", "the same: deterministic",
		"stage    workers", "decode", "class-sorted", "global", "WARNING: --batches 3 is too few"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSimulatedQuality(t *testing.T) {
	rows := simulatedQuality(1, 128)
	if len(rows) != 6 {
		t.Fatalf("%d rows", len(rows))
	}
	get := func(layout, buffer string) float64 {
		for _, r := range rows {
			if strings.HasPrefix(r.Layout, layout) && strings.HasPrefix(r.Buffer, buffer) {
				return r.Q.ClassesPerBatch
			}
		}
		t.Fatalf("no row %s/%s", layout, buffer)
		return 0
	}
	// 128 draws from 1000 equal classes show 1000·(1 − 0.999¹²⁸) ≈ 120.2.
	for _, c := range []struct {
		layout, buffer string
		lo, hi         float64
	}{
		{"ingest", "none", 119, 121.5}, {"ingest", "global", 119, 121.5}, {"class-sorted", "global", 119, 121.5},
		{"class-sorted", "none", 1, 2}, {"class-sorted", "4096", 5, 60},
	} {
		if got := get(c.layout, c.buffer); got < c.lo || got > c.hi {
			t.Errorf("%s/%s: %.1f classes per batch, want %.1f..%.1f", c.layout, c.buffer, got, c.lo, c.hi)
		}
	}
}

func TestFlags(t *testing.T) {
	shardDir := writeShards(t, 8, 4, 16, 16)
	for _, tc := range []struct {
		args []string
		say  string
	}{
		{[]string{"--batches", "1"}, "--batches must be at least 2"},
		{[]string{"--batch", "0"}, "--batch"},
		{[]string{"--nonsense"}, "flag provided but not defined"},
		{[]string{"--ceiling-time", "0"}, "--ceiling-time 0s: want at least 10ms"},
		{[]string{"--ceiling-time", "-5s"}, "--ceiling-time -5s"},
		{[]string{"--crop", "-4"}, "--crop -4"},
		{[]string{"--shards", filepath.Join(shardDir, "absent")}, "absent does not exist"},
		// Known only once the shards are read, and still before any run.
		{[]string{"--shards", shardDir, "--crop", "17"}, "--crop 17: want at most 16, the shards' side"},
	} {
		var out, errs bytes.Buffer
		if code := run(tc.args, &out, &errs); code != 2 || !strings.Contains(errs.String(), tc.say) || strings.Contains(errs.String(), "round 1") {
			t.Errorf("%v: exit %d, want 2 saying %q:\n%s", tc.args, code, tc.say, errs.String())
		}
	}
	var out, errs bytes.Buffer
	if code := run([]string{"--help"}, &out, &errs); code != 0 || !strings.Contains(out.String(), "Example") || errs.Len() != 0 {
		t.Errorf("--help: exit %d, stdout %q, stderr %q: want the usage on stdout", code, out.String(), errs.String())
	}
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		n, k int
		want []int
	}{
		{1, 4, []int{0}},
		{2, 4, []int{1, 0}},
		{4, 4, []int{3, 2, 1, 0}},
		{16, 4, []int{15, 11, 7, 3}},
		{6, 4, []int{5, 4, 2, 1}},
	} {
		if got := spread(tc.n, tc.k); !slices.Equal(got, tc.want) {
			t.Errorf("spread(%d, %d) = %v, want %v", tc.n, tc.k, got, tc.want)
		}
	}
}

// A split smaller than one batch makes every batch short: said, not hidden.
func TestShortSplitWarns(t *testing.T) {
	dir := writeShards(t, 20, 10, 32, 32)
	var out, errs bytes.Buffer
	if code := run([]string{"--shards", dir, "--batches", "10", "--batch", "64", "--workers", "2", "--ceiling-time", "10ms", "--rounds", "1", "--quality=false", "--json", "--reference=false"}, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rep.Warning, "fewer than one --batch of 64") {
		t.Errorf("warning %q", rep.Warning)
	}
}
