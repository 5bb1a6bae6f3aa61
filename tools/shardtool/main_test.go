package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alexnet-repro/alexnet/internal/cli"
	"github.com/alexnet-repro/alexnet/internal/cli/clitest"
	"github.com/alexnet-repro/alexnet/internal/dirlock"
	"github.com/alexnet-repro/alexnet/internal/fixtures"
	"github.com/alexnet-repro/alexnet/pkg/imagenet"
	"github.com/alexnet-repro/alexnet/pkg/ingest"
	"github.com/alexnet-repro/alexnet/shards"
)

func makeShards(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	fixtures.Tree(t, root, 8, 5)
	ds, err := imagenet.Open(root, imagenet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	out := t.TempDir()
	if _, err := ingest.Run(context.Background(), ds, ingest.Options{Out: out, Size: 32, Seed: 1, ShardSize: 6, Workers: 2, Codec: shards.CodecGradZstd}); err != nil {
		t.Fatal(err)
	}
	return out
}

func runTool(args ...string) (int, string, string) {
	var so, se bytes.Buffer
	code := run(context.Background(), args, &so, &se)
	return code, so.String(), se.String()
}

func TestVerifyNamesDamage(t *testing.T) {
	dir := makeShards(t)
	if code, out, errs := runTool("verify", dir); code != cli.ExitOK || !strings.Contains(out, "0 damaged") {
		t.Fatalf("clean verify: exit %d\n%s%s", code, out, errs)
	}
	// Flip one byte inside the third record of the second train shard.
	p := filepath.Join(dir, "train-00001.shard")
	r, err := shards.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var rec shards.Record
	if _, err := r.ReadRecord(2, &rec, nil); err != nil {
		t.Fatal(err)
	}
	r.Close()
	b, _ := os.ReadFile(p)
	pos := bytes.Index(b, rec.Payload[:8]) + 5
	b[pos] ^= 0x01
	os.WriteFile(p, b, 0o644)
	code, out, errs := runTool("verify", dir, "--decode")
	if code != cli.ExitDamaged {
		t.Fatalf("damaged verify: exit %d\n%s", code, out)
	}
	if !strings.Contains(errs, "delete the damaged shard (train-00001.shard) and run the same ingest command again") {
		t.Errorf("no word on how to repair:\n%s", errs)
	}
	if !regexp.MustCompile(`shard train-00001.shard record 2 .*checksum mismatch`).MatchString(out) {
		t.Fatalf("damage not named by shard and record:\n%s", out)
	}
	// One flipped bit is one fault: not again as the whole-file CRC.
	if n := strings.Count(out, "DAMAGED"); n != 1 {
		t.Fatalf("one flipped bit reported %d times:\n%s", n, out)
	}
	// A shard that is gone is not to be deleted: ingest writes it anew.
	names, _ := filepath.Glob(filepath.Join(dir, "*.shard"))
	var other string
	for _, n := range names {
		if filepath.Base(n) != "train-00001.shard" {
			other = n
			break
		}
	}
	if other == "" {
		t.Fatalf("one shard only in %s", dir)
	}
	keep, _ := os.ReadFile(other)
	os.Remove(other)
	_, _, errs = runTool("verify", dir)
	if want := fmt.Sprintf("delete the damaged shard (train-00001.shard) and run the same ingest command again: it remakes it, and writes the missing shard (%s) anew", filepath.Base(other)); !strings.Contains(errs, want) {
		t.Errorf("repair advice with a shard gone lacks %q:\n%s", want, errs)
	}
	damaged := filepath.Join(dir, "train-00001.shard")
	keepDamaged, _ := os.ReadFile(damaged)
	os.Remove(damaged)
	_, _, errs = runTool("verify", dir)
	if !strings.Contains(errs, "to repair, run the same ingest command again: it writes the missing shards (") || strings.Contains(errs, "delete") {
		t.Errorf("repair advice with both shards gone:\n%s", errs)
	}
	os.WriteFile(damaged, keepDamaged, 0o644)
	os.WriteFile(other, keep, 0o644)
	code, out, _ = runTool("verify", "--json", dir)
	var res struct{ Damaged int }
	if json.Unmarshal([]byte(out), &res); code != cli.ExitDamaged || res.Damaged != 1 {
		t.Fatalf("json verify: exit %d %s", code, out)
	}

	// Nor is a shard cut short named again for its size against
	// meta.json, or a flipped bit in the trailer's whole-file CRC again
	// as a CRC differing from meta.json's.
	for _, tc := range []struct {
		name  string
		spoil func([]byte) []byte
	}{
		{"cut short", func(b []byte) []byte { return b[:len(b)-100] }},
		{"whole-file CRC field", func(b []byte) []byte { b[len(b)-12+1] ^= 0x10; return b }},
	} {
		d := makeShards(t)
		p := filepath.Join(d, "train-00000.shard")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, tc.spoil(b), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runTool("verify", d)
		if n := strings.Count(out, "DAMAGED"); code != cli.ExitDamaged || n != 1 {
			t.Errorf("%s: exit %d, %d DAMAGED lines, want one:\n%s", tc.name, code, n, out)
		}
	}
}

func TestInspectAndGrid(t *testing.T) {
	dir := makeShards(t)
	code, out, errs := runTool("inspect", dir)
	if code != 0 || !strings.Contains(out, "train") || !strings.Contains(out, "mean RGB") || !strings.Contains(out, "n01440764") {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errs)
	}
	// Each PCA line pairs an eigenvalue with its eigenvector: a column
	// of meta.json's pca_eigvec, not a row.
	m, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := m.Stats
	for j := range 3 {
		want := fmt.Sprintf("%9.2f  %7.2f   (%6.3f %6.3f %6.3f)", st.PCAEigval[j], math.Sqrt(st.PCAEigval[j]), st.PCAEigvec[0][j], st.PCAEigvec[1][j], st.PCAEigvec[2][j])
		if !strings.Contains(out, want) {
			t.Errorf("inspect lacks component %d as %q:\n%s", j, want, out)
		}
	}
	code, out, _ = runTool("inspect", dir, "--json")
	var js struct {
		Classes int
		Splits  map[string]struct{ Records int }
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || code != 0 || js.Classes != 3 || js.Splits["train"].Records != 3*8+1 {
		t.Fatalf("inspect --json: %v %s", err, out)
	}
	png1 := filepath.Join(t.TempDir(), "g.png")
	if code, out, errs := runTool("grid", dir, "--n", "10", "--tile", "32", "--out", png1); code != 0 {
		t.Fatalf("grid: %d %s %s", code, out, errs)
	}
	f, _ := os.Open(png1)
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() != 4*32 {
		t.Fatalf("grid png: %v %v", err, img.Bounds())
	}
	// --out naming a folder: refused, the folder left as it was.
	folder := filepath.Join(t.TempDir(), "sheet.png")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runTool("grid", dir, "--n", "4", "--tile", "32", "--out", folder); code != cli.ExitFailure || !strings.Contains(errs, folder) {
		t.Errorf("grid --out FOLDER: exit %d, %q", code, errs)
	}
	if fi, err := os.Stat(folder); err != nil || !fi.IsDir() {
		t.Errorf("grid replaced the folder %s: %v", folder, err)
	}
	if code, _, _ := runTool("grid", t.TempDir()); code != cli.ExitFailure {
		t.Fatalf("grid on an empty dir: exit %d", code)
	}
	if code, _, errs := runTool("grid", filepath.Join(dir, "absent")); code != cli.ExitUsage || !strings.Contains(errs, "absent does not exist") {
		t.Fatalf("grid on a folder that does not exist: exit %d, %s", code, errs)
	}
	for _, bad := range []struct {
		args []string
		say  string
	}{
		{[]string{"--n", "0"}, "--n 0"},
		{[]string{"--tile", "8"}, "--tile 8"},
		{[]string{"--tile", "100000"}, "--tile 100000"},
		{[]string{"--split", "bogus"}, "--split \"bogus\""},
		{[]string{"--out", "sheet.jpg"}, "name it .png"},
	} {
		code, _, errs := runTool(append([]string{"grid", dir}, bad.args...)...)
		if code != cli.ExitUsage || !strings.Contains(errs, bad.say) {
			t.Errorf("grid %v: exit %d, %q", bad.args, code, errs)
		}
	}
	// The sheet's size limit counts the records there are, not --n: a
	// large --n on a small split draws what it holds.
	if code, out, errs := runTool("grid", dir, "--n", "100000", "--tile", "256", "--out", filepath.Join(t.TempDir(), "all.png")); code != cli.ExitOK || strings.Contains(errs, "note:") {
		t.Errorf("grid --n 100000 on a small split: exit %d, %q %q", code, out, errs)
	}
	if code, _, errs := runTool("verify", dir, "--workers", "-1"); code != cli.ExitUsage || !strings.Contains(errs, "--workers -1") {
		t.Errorf("verify --workers -1: exit %d, %q", code, errs)
	}
	if code, _, _ := runTool("frobnicate"); code != cli.ExitUsage {
		t.Fatal("unknown command accepted")
	}
	// The command named is the word the user meant, not a flag before it.
	if code, out, _ := runTool("--json", "bogus"); code != cli.ExitUsage || !strings.Contains(out, `unknown command \"bogus\"`) {
		t.Fatalf("shardtool --json bogus: exit %d, %s", code, out)
	}
}

// A shard that is not the one meta.json lists (rewritten shorter, or
// another copied over it) is refused before anything is drawn: a val
// shard copied over a train shard once drew 8 of 32 silently.
func TestGridRefusesShardsNotListed(t *testing.T) {
	dir := copyShards(t, makeShards(t))
	// train-00000.shard remade with its first record alone: a whole
	// shard, fewer records than meta.json lists.
	p := filepath.Join(dir, "train-00000.shard")
	r, err := shards.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	var rec shards.Record
	if _, err := r.ReadRecord(0, &rec, nil); err != nil {
		t.Fatal(err)
	}
	r.Close()
	w, err := shards.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(&rec); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Not the shard meta.json lists: refused, as the pipeline refuses it,
	// rather than drawn as the split's.
	out := filepath.Join(t.TempDir(), "g.png")
	code, _, errs := runTool("grid", dir, "--out", out)
	if _, err := os.Stat(out); code != cli.ExitFailure || !strings.Contains(errs, "train-00000.shard: holds 1 records, meta.json says") || err == nil {
		t.Fatalf("grid over a rewritten shard: exit %d, %q", code, errs)
	}
	// Nor one copied over another, whose record count is the same.
	dir = copyShards(t, makeShards(t))
	b, err := os.ReadFile(filepath.Join(dir, "train-00001.shard"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "train-00002.shard"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runTool("grid", dir, "--out", out)
	if code != cli.ExitFailure || !strings.Contains(errs, "train-00002.shard") || !strings.Contains(errs, "not the shard meta.json lists") {
		t.Fatalf("grid over a copied shard: exit %d, %q", code, errs)
	}
	// sheetSize counts the empty cells and the captions: 5 tiles are a
	// 3×2 grid.
	if w, h := sheetSize(5, 100); w != 300 || h != 2*(100+captionHeight) {
		t.Fatalf("sheetSize(5, 100) = %d×%d", w, h)
	}
}

// copyShards gives a test case its own copy of a shard directory, so one
// ingest serves a whole table.
func copyShards(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err == nil {
				err = os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

// rewriteRecord edits the body of record i of a shard in place and then
// fixes every checksum (the record's, the whole file's and meta.json's),
// as a writer with a bug would leave it: only checks of what the header
// says can catch it.
func rewriteRecord(t *testing.T, dir, shard string, i int, edit func(body []byte)) {
	t.Helper()
	p := filepath.Join(dir, shard)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	off := 16 // the header
	for k := 0; k < i; k++ {
		off += 4 + int(binary.LittleEndian.Uint32(b[off:])) + 4
	}
	n := int(binary.LittleEndian.Uint32(b[off:]))
	body := b[off+4 : off+4+n]
	edit(body)
	binary.LittleEndian.PutUint32(b[off+4+n:], crc32.Checksum(body, castagnoli))
	// The file CRC covers every byte before its own field, 12 from the
	// end, but the records' CRC fields (format version 2).
	var fileCRC uint32
	at := 16
	fileCRC = crc32.Update(fileCRC, castagnoli, b[:at])
	for binary.LittleEndian.Uint32(b[at:]) != 0xFFFFFFFF {
		l := int(binary.LittleEndian.Uint32(b[at:]))
		fileCRC = crc32.Update(fileCRC, castagnoli, b[at:at+4+l])
		at += 4 + l + 4
	}
	fileCRC = crc32.Update(fileCRC, castagnoli, b[at:len(b)-12])
	binary.LittleEndian.PutUint32(b[len(b)-12:], fileCRC)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range m.Splits {
		for j := range sp.Shards {
			if sp.Shards[j].File == shard {
				sp.Shards[j].CRC32C = fmt.Sprintf("%08x", fileCRC)
			}
		}
	}
	if err := shards.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
}

// Labels and shapes that contradict meta.json pass every CRC; plain verify
// must still name them, where train would fail only on reaching them.
func TestVerifyChecksRecordHeaders(t *testing.T) {
	clean := makeShards(t)
	label := func(l int32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[8:], uint32(l)) }
	}
	size := func(w, h uint16) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint16(b[2:], w); binary.LittleEndian.PutUint16(b[4:], h) }
	}
	for _, c := range []struct {
		name, shard string
		edit        func([]byte)
		want        string // "" for a record verify must accept
	}{
		{"label past the classes", "train-00001.shard", label(999), "shard train-00001.shard record 2: label 999 outside the 3 classes in meta.json"},
		{"unlabelled train record", "train-00001.shard", label(-1), "shard train-00001.shard record 2: train record without a label (-1)"},
		{"negative val label", "val-00000.shard", label(-5), "shard val-00000.shard record 2: label -5 outside the 3 classes"},
		// ingest writes -1 for a validation image it has no label for.
		{"unlabelled val record", "val-00000.shard", label(-1), ""},
		{"huge image", "train-00000.shard", size(65535, 65535), "shard train-00000.shard record 2: 65535×65535×3 image, meta.json says the shards hold 32×32×3"},
		{"small image", "val-00000.shard", size(16, 16), "shard val-00000.shard record 2: 16×16×3 image"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyShards(t, clean)
			rewriteRecord(t, dir, c.shard, 2, c.edit)
			code, out, errs := runTool("verify", dir)
			if c.want == "" {
				if code != cli.ExitOK {
					t.Fatalf("exit %d\n%s%s", code, out, errs)
				}
				return
			}
			if code != cli.ExitDamaged || !strings.Contains(out, "DAMAGED "+c.want) || strings.Count(out, "DAMAGED") != 1 {
				t.Fatalf("exit %d, want %d naming %q\n%s%s", code, cli.ExitDamaged, c.want, out, errs)
			}
			// grid checks each record too, before the record sizes its
			// decode: the 65535² one would have it allocate 12.9 GB.
			if strings.HasPrefix(c.shard, "train") {
				code, out, errs := runTool("grid", dir, "--out", filepath.Join(t.TempDir(), "g.png"))
				if code != cli.ExitFailure || !strings.Contains(errs, c.want) {
					t.Fatalf("grid: exit %d, want %d naming %q\n%s%s", code, cli.ExitFailure, c.want, out, errs)
				}
			}
		})
	}
}

// A meta.json that is there but unusable is damage: exit 4, and --json
// still reports, naming meta.json and why.
func TestVerifyDamagedMeta(t *testing.T) {
	clean := makeShards(t)
	whole, err := os.ReadFile(filepath.Join(clean, shards.MetaFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, content, want string
	}{
		{"empty", "", "meta.json: empty (no JSON in it)"},
		{"truncated", string(whole[:len(whole)/2]), "meta.json: truncated"},
		{"invalid", "{nope", "meta.json: invalid JSON at byte 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyShards(t, clean)
			if err := os.WriteFile(filepath.Join(dir, shards.MetaFile), []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runTool("verify", dir)
			if code != cli.ExitDamaged || !strings.Contains(out, "DAMAGED "+filepath.Join(dir, c.want)) {
				t.Fatalf("exit %d, want %d naming %q\n%s%s", code, cli.ExitDamaged, c.want, out, errs)
			}
			code, out, errs = runTool("verify", dir, "--json")
			var res struct {
				Damaged int
				Results []shardCheck
			}
			if err := json.Unmarshal([]byte(out), &res); err != nil || code != cli.ExitDamaged || res.Damaged != 1 ||
				len(res.Results) != 1 || res.Results[0].Shard != shards.MetaFile || len(res.Results[0].Damage) != 1 ||
				!strings.Contains(res.Results[0].Damage[0], c.want) {
				t.Fatalf("--json: exit %d, %v\n%s%s", code, err, out, errs)
			}
		})
	}
	// Not there at all is the wrong directory rather than damage.
	if code, _, _ := runTool("verify", t.TempDir()); code != cli.ExitFailure {
		t.Fatalf("no meta.json: exit %d", code)
	}
}

// Shards can each be intact while the split is not: one copied over
// another, its meta.json entry edited to match, repeats images and loses
// others. Shard files meta.json does not list are named, not verified.
func TestVerifySplitWide(t *testing.T) {
	src := makeShards(t)
	dir := copyShards(t, src)
	m, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	tr := m.Splits["train"]
	if len(tr.Shards) < 2 {
		t.Fatalf("want 2 train shards, have %d", len(tr.Shards))
	}
	a, b := tr.Shards[0], tr.Shards[1]
	body, _ := os.ReadFile(filepath.Join(dir, a.File))
	if err := os.WriteFile(filepath.Join(dir, b.File), body, 0o644); err != nil {
		t.Fatal(err)
	}
	tr.Records += a.Records - b.Records
	tr.Shards[1] = shards.ShardInfo{File: b.File, Records: a.Records, Bytes: a.Bytes, CRC32C: a.CRC32C}
	m.Splits["train"] = tr
	if err := shards.WriteMeta(dir, m); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runTool("verify", dir)
	if code != cli.ExitDamaged || !strings.Contains(out, "repeat IDs of other shards of split train") || !strings.Contains(out, "also in "+a.File) {
		t.Errorf("a shard copied over another: exit %d\n%s%s", code, out, errs)
	}
	// Copied over without meta.json edited to match, the copy is wrong in
	// itself: it alone is named, not the intact shard it repeats (nor,
	// for a val shard copied over a train shard, every train shard).
	unedited := copyShards(t, src)
	os.WriteFile(filepath.Join(unedited, tr.Shards[0].File), func() []byte {
		v, _ := os.ReadFile(filepath.Join(unedited, m.Splits["val"].Shards[0].File))
		return v
	}(), 0o644)
	code, out, errs = runTool("verify", "--json", unedited)
	var vrep struct {
		Shards []struct {
			Shard  string   `json:"shard"`
			Damage []string `json:"damage"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &vrep); err != nil || code != cli.ExitDamaged || len(vrep.Shards) == 0 {
		t.Fatalf("val copied over train: exit %d, %v\n%s%s", code, err, out, errs)
	}
	for _, sh := range vrep.Shards {
		if (len(sh.Damage) > 0) != (sh.Shard == tr.Shards[0].File) {
			t.Errorf("val copied over %s: %s damage %q", tr.Shards[0].File, sh.Shard, sh.Damage)
		}
	}

	clean := copyShards(t, src)
	os.WriteFile(filepath.Join(clean, "train-09999.shard"), body, 0o644)
	code, out, errs = runTool("verify", clean)
	if code != cli.ExitOK || !strings.Contains(errs, "1 shard file is in "+clean+" not listed in meta.json, so not verified: train-09999.shard") {
		t.Errorf("an unlisted shard file: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runTool("verify", clean, "--json")
	var rep struct{ Unlisted []string }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != cli.ExitOK || fmt.Sprint(rep.Unlisted) != "[train-09999.shard]" {
		t.Errorf("an unlisted shard file, --json: exit %d, %v\n%s", code, err, out)
	}

	// A split an unfinished ingest unlisted: its shards are unlisted ones
	// (counted, not only the first named), and the sound rest does not
	// pass for a folder ready to train on.
	midway := copyShards(t, src)
	um, err := shards.ReadMeta(midway)
	if err != nil {
		t.Fatal(err)
	}
	delete(um.Splits, "train")
	um.Unfinished = map[string]string{"train": "an ingest run (pid 1) has not finished"}
	if err := shards.WriteMeta(midway, um); err != nil {
		t.Fatal(err)
	}
	for i := range 11 { // past the 10 names the note gives
		os.WriteFile(filepath.Join(midway, shards.ShardName("train", 1000+i)), body, 0o644)
	}
	unlisted := len(tr.Shards) + 11
	code, out, errs = runTool("verify", midway)
	wantCount := fmt.Sprintf("%d shard files are in %s not listed", unlisted, midway)
	if code != cli.ExitFailure || !strings.Contains(errs, wantCount) || !strings.Contains(errs, midway+"/meta.json lists no train split: an ingest run (pid 1) has not finished") {
		t.Errorf("an unfinished train split: exit %d, want %d and %q\n%s%s", code, cli.ExitFailure, wantCount, out, errs)
	}
	code, out, _ = runTool("verify", midway, "--json")
	var urep struct {
		Unlisted   []string
		Unfinished map[string]string
	}
	if err := json.Unmarshal([]byte(out), &urep); err != nil || code != cli.ExitFailure || len(urep.Unlisted) != unlisted || urep.Unfinished["train"] == "" {
		t.Errorf("an unfinished train split, --json: exit %d, %v\n%s", code, err, out)
	}
	code, out, errs = runTool("grid", midway, "--out", filepath.Join(t.TempDir(), "g.png"))
	if code != cli.ExitFailure || !strings.Contains(errs, "meta.json lists no train split: an ingest run (pid 1)") {
		t.Errorf("grid of an unfinished train split: exit %d\n%s%s", code, out, errs)
	}
}

// Help asked for goes to stdout (exit 0), for the tool and each command;
// a usage mistake goes to stderr (exit 2).
func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"verify", "--help"}, {"inspect", "-h"}, {"grid", "--help"}} {
		code, out, errs := runTool(args...)
		if code != cli.ExitOK || !strings.Contains(out, "Usage: shardtool") || errs != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	for _, c := range []struct {
		args []string
		says string
	}{{nil, "Usage: shardtool"}, {[]string{"verify", "--bogus"}, "shardtool verify: flag provided but not defined: -bogus (see --help)"}} {
		code, out, errs := runTool(c.args...)
		if code != cli.ExitUsage || !strings.Contains(errs, c.says) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", c.args, code, out, errs)
		}
	}
}

// Edges from an adversarial review: each is refused or reported plainly.
func TestEdgesReportedPlainly(t *testing.T) {
	dir := makeShards(t)
	// A huge --workers is capped at the shard count, not started.
	if code, out, errs := runTool("verify", dir, "--workers", "100000000"); code != cli.ExitOK || !strings.Contains(out, "0 damaged") {
		t.Errorf("--workers 1e8: exit %d\n%s%s", code, out, errs)
	}
	// A report that cannot be written is a failure, not a clean pass.
	for _, args := range [][]string{{"verify", dir}, {"verify", dir, "--json"}, {"inspect", dir}, {"inspect", dir, "--json"}} {
		var se bytes.Buffer
		if code := run(context.Background(), args, failWriter{}, &se); code != cli.ExitFailure || !strings.Contains(se.String(), "writing the") {
			t.Errorf("%v into a full disk: exit %d, stderr %q", args, code, se.String())
		}
	}
	// Usage mistakes say what is wrong.
	if code, _, errs := runTool("inspect", dir, "--classes", "-3"); code != cli.ExitUsage || !strings.Contains(errs, "--classes -3") {
		t.Errorf("--classes -3: exit %d, %q", code, errs)
	}
	// Each is one line on stderr, pointing to --help rather than
	// printing the usage after it.
	for _, args := range [][]string{{"verify"}, {"inspect", dir, dir}, {"grid"}, {"frobnicate"}} {
		code, _, errs := runTool(args...)
		if code != cli.ExitUsage || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "see --help)") {
			t.Errorf("%v: exit %d, stderr %q; want one line pointing to --help", args, code, errs)
		}
	}
	if code, _, errs := runTool("verify"); code != cli.ExitUsage || !strings.Contains(errs, "want one DIR, got 0") {
		t.Errorf("verify without DIR: exit %d, %q", code, errs)
	}
	// Flags may come before the command too.
	if code, out, errs := runTool("--json", "verify", dir); code != cli.ExitOK || !json.Valid([]byte(out)) || !strings.Contains(out, `"damaged": 0`) {
		t.Errorf("--json before verify: exit %d, %s%s", code, out, errs)
	}
	// Under --json a failure with no report is a JSON object on stdout.
	for _, c := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"verify", "--json"}, cli.ExitUsage, "want one DIR, got 0"},
		{[]string{"verify", "--json", "--workers", "x", dir}, cli.ExitUsage, `invalid value "x"`},
		{[]string{"verify", "--json", filepath.Join(dir, "absent")}, cli.ExitUsage, "absent does not exist"},
		{[]string{"verify", "--json", t.TempDir()}, cli.ExitFailure, "meta.json not found"},
		{[]string{"inspect", "--json", dir, "--classes", "-3"}, cli.ExitUsage, "--classes -3"},
		{[]string{"inspect", "--json", filepath.Join(dir, "absent")}, cli.ExitUsage, "absent does not exist"},
		{[]string{"verify", "--json", ""}, cli.ExitUsage, "DIR is an empty name"},
		{[]string{"verify", "--json", filepath.Join(dir, shards.MetaFile)}, cli.ExitUsage, "is a file, not a shard directory"},
		{[]string{"inspect", "--json", ""}, cli.ExitUsage, "DIR is an empty name"},
		{[]string{"--json", "--bogus"}, cli.ExitUsage, `unknown command "--json"`},
		{[]string{"veriffy", dir, "--json"}, cli.ExitUsage, `unknown command "veriffy"; did you mean verify? (see --help)`},
		{[]string{"--json", "list", dir}, cli.ExitUsage, `unknown command "list" (want verify, inspect or grid`},
	} {
		code, out, errs := runTool(c.args...)
		obj := clitest.JSONFailure(t, []byte(out), c.code)
		if msg := obj["error"].(string); code != c.code || !strings.Contains(msg, c.say) || !strings.Contains(errs, msg) || !strings.HasPrefix(obj["command"].(string), "shardtool") {
			t.Errorf("%q: exit %d, stdout %s, stderr %s", c.args, code, out, errs)
		}
	}
	// grid: a missing --out folder is known before drawing, named as the
	// user typed it; an interrupt writes nothing.
	out := filepath.Join(t.TempDir(), "nodir", "g.png")
	if code, _, errs := runTool("grid", dir, "--out", out); code != cli.ExitFailure || !strings.Contains(errs, "--out "+out+": its folder") {
		t.Errorf("grid into a missing folder: exit %d, %q", code, errs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sheet := filepath.Join(t.TempDir(), "g.png")
	var so, se bytes.Buffer
	if code := run(ctx, []string{"grid", dir, "--out", sheet}, &so, &se); code != cli.ExitFailure || !strings.Contains(se.String(), "interrupted") {
		t.Errorf("grid interrupted: exit %d, %q", code, se.String())
	}
	if _, err := os.Stat(sheet); !os.IsNotExist(err) {
		t.Errorf("an interrupted grid wrote %s", sheet)
	}
	// A folder where a shard should be is named as such, once.
	m, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, m.Splits["train"].Shards[0].File)
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	code, outText, _ := runTool("verify", dir)
	if code != cli.ExitDamaged || strings.Count(outText, "DAMAGED") != 1 || !strings.Contains(outText, "a directory, not a shard file") {
		t.Errorf("a folder for a shard: exit %d\n%s", code, outText)
	}
}

// failWriter fails every write, as a full disk does.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A named pipe for meta.json or the lock file is refused at once by
// verify and inspect, which would otherwise wait for a writer for ever.
func TestNamedPipeInShardDir(t *testing.T) {
	for _, name := range []string{"meta.json", ".lock", "train-00001.shard"} {
		dir := makeShards(t)
		p := filepath.Join(dir, name)
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if err := fixtures.Mkfifo(p); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			code, out, errs := runTool("verify", dir)
			if code == cli.ExitOK || !strings.Contains(errs+out, "a named pipe") {
				t.Errorf("verify with a pipe for %s: exit %d\n%s%s", name, code, out, errs)
			}
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("verify hung on a pipe for %s", name)
		}
	}
}

// A shard file larger than its meta.json entry is named from its size
// alone: a trailer claiming an index as large as the file would otherwise
// be allocated. A sparse gigabyte here, which must not be read.
func TestVerifyLargerThanListed(t *testing.T) {
	dir := copyShards(t, makeShards(t))
	m, err := shards.ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	sh := m.Splits["train"].Shards[0]
	if err := os.Truncate(filepath.Join(dir, sh.File), 1<<30); err != nil {
		t.Skipf("sparse file: %v", err)
	}
	code, out, errs := runTool("verify", dir)
	if code != cli.ExitDamaged || !strings.Contains(out, fmt.Sprintf("shard %s: %d bytes, meta.json says %d (not verified further)", sh.File, 1<<30, sh.Bytes)) {
		t.Fatalf("a shard grown to 1 GiB: exit %d\n%s%s", code, out, errs)
	}
}

// verify and grid wait for no ingest: one rewriting the folder is named,
// and neither reads half-written shards as damage.
func TestReadersRefuseAFolderBeingWritten(t *testing.T) {
	dir := makeShards(t)
	lock, err := dirlock.Acquire(dir, "ingest")
	if err != nil {
		t.Fatal(err)
	}
	sheet := filepath.Join(t.TempDir(), "g.png")
	for _, args := range [][]string{{"verify", dir}, {"grid", dir, "--out", sheet}} {
		if code, _, errs := runTool(args...); code != cli.ExitFailure || !strings.Contains(errs, "in use by another run (ingest, pid") {
			t.Errorf("%s while an ingest writes: exit %d, %q", args[0], code, errs)
		}
	}
	lock.Release()
	if code, _, errs := runTool("grid", dir, "--out", sheet); code != cli.ExitOK {
		t.Errorf("grid after the ingest ended: exit %d, %q", code, errs)
	}
}

// A shard the user may not read is not damage: verify says it could not
// be read and exits 1, and gives no advice to delete it. Permissions do
// not bind root, so root runs this as another user.
func TestVerifyUnreadableShardIsNotDamage(t *testing.T) {
	if !fixtures.Unprivileged(t) {
		return
	}
	dir := makeShards(t)
	p := filepath.Join(dir, "train-00001.shard")
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runTool("verify", dir)
	if code != cli.ExitFailure || !strings.Contains(out, "UNREADABLE shard train-00001.shard: open "+p+": permission denied") ||
		!strings.Contains(out, "0 damaged shards, 1 shard that could not be read") || strings.Contains(out, "DAMAGED") ||
		!strings.Contains(errs, "could not be read, so not verified (not damage") || strings.Contains(errs, "delete") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runTool("verify", "--json", dir)
	var rep struct {
		Damaged    int `json:"damaged"`
		Unreadable int `json:"unreadable"`
		Results    []shardCheck
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != cli.ExitFailure || rep.Damaged != 0 || rep.Unreadable != 1 {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, out)
	}
	// Damage elsewhere is still damage, and its exit code wins.
	b, err := os.ReadFile(filepath.Join(dir, "train-00000.shard"))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(filepath.Join(dir, "train-00000.shard"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runTool("verify", dir)
	if code != cli.ExitDamaged || !strings.Contains(out, "1 damaged shard, 1 shard that could not be read") ||
		!strings.Contains(errs, "delete the damaged shard (train-00000.shard)") {
		t.Fatalf("with damage: exit %d\n%s%s", code, out, errs)
	}
}

// A meta.json edited by hand (its checksum removed, as the error for an
// edit says to) with a slip in the edit makes intact shards disagree with
// it: verify says the edit may be the fault, and to rerun ingest before
// deleting anything; that rerun rewrites meta.json and verify passes.
func TestVerifyAfterAHandEditOfMeta(t *testing.T) {
	root := t.TempDir()
	fixtures.Tree(t, root, 8, 5)
	opts := ingest.Options{Out: t.TempDir(), Size: 32, Seed: 1, ShardSize: 6, Workers: 2, Codec: shards.CodecGradZstd}
	ingestOnce := func() {
		ds, err := imagenet.Open(root, imagenet.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer ds.Close()
		if _, err := ingest.Run(context.Background(), ds, opts); err != nil {
			t.Fatal(err)
		}
	}
	ingestOnce()
	dir := opts.Out
	p := filepath.Join(dir, shards.MetaFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "checksum")
	m["classes"] = m["classes"].([]any)[:1] // the slip: classes cut from the list
	b, _ = json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runTool("verify", dir)
	if code != cli.ExitDamaged || !strings.Contains(errs, "meta.json has no checksum (edited by hand since ingest wrote it), so the fault may be that edit") ||
		!strings.Contains(errs, "run the same ingest command again first, deleting nothing (it rewrites meta.json from the shards, undoing the edit)") || strings.Contains(errs, "delete the damaged") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	ingestOnce()
	if code, out, errs := runTool("verify", dir); code != cli.ExitOK {
		t.Fatalf("after the advised rerun: exit %d\n%s%s", code, out, errs)
	}
}
